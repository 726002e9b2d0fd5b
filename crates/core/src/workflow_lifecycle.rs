//! What accepting an event means for the engine beyond recording it: the broker's
//! lifecycle rules as a pure function of the event and the stage its workflow reached
//! ([`crate::workflow`] moves the stage; this says what follows from it). The broker
//! applies the consequences in order; tests drive the rules without an actor.

use crate::events::{
    CorrelationId, Envelope, FailureReason, HaltReason, OutcomeStatus, Payload, RecoveryKind,
    TradingHalted, WorkflowStarted,
};
use crate::workflow::{WorkflowStage, WorkflowStatus};

/// One thing that follows from an accepted event.
#[derive(Clone, Debug, PartialEq)]
pub enum Consequence {
    /// Halt trading (publish `trading.halted.v1`) unless it already is.
    Halt { reason: HaltReason, detail: String },
    /// Trading is halted from now on (the gate closes).
    Halted(TradingHalted),
    /// A halt is lifted (the gate opens).
    Resumed,
    /// A workflow began: its root is shared with the actors; a retry or corrective
    /// workflow is the successor of the one that triggered it.
    Opened {
        started: WorkflowStarted,
        successor_of: Option<CorrelationId>,
    },
    /// A workflow reached its end with this status.
    Closed(WorkflowStatus),
    /// Orders settled with these statuses (for the counters).
    OrdersSettled(Vec<OutcomeStatus>),
    /// Recovery will not retry this failed workflow.
    FinalFailure(CorrelationId),
    /// Recovery decided on this failed workflow (a retry, giving up): its root can go.
    Decided(CorrelationId),
    /// The workflow is done: publish `workflow.completed.v1`.
    Complete,
}

/// Why a new workflow is refused, if it is: none starts while trading is halted.
pub fn refuse_start(env: &Envelope, halted: Option<&TradingHalted>) -> Option<String> {
    match (&env.payload, halted) {
        (Payload::WorkflowStarted(_), Some(h)) => Some(format!("trading is halted: {}", h.detail)),
        _ => None,
    }
}

/// The consequences of accepting `env`, whose workflow is now at `stage`.
pub fn consequences(env: &Envelope, stage: Option<WorkflowStage>) -> Vec<Consequence> {
    let mut out = Vec::new();
    match &env.payload {
        Payload::WorkflowFailed(f) => {
            if f.reason == FailureReason::Unauthorized {
                out.push(Consequence::Halt {
                    reason: HaltReason::Authorization,
                    detail: format!(
                        "venue refused the credentials in step {}: {}",
                        f.step, f.detail
                    ),
                });
            }
            out.push(Consequence::Closed(if f.reason == FailureReason::Timeout {
                WorkflowStatus::TimedOut
            } else {
                WorkflowStatus::Failed
            }));
        }
        Payload::TradingHalted(h) => out.push(Consequence::Halted(h.clone())),
        Payload::TradingResumed(_) => out.push(Consequence::Resumed),
        Payload::WorkflowStarted(started) => out.push(Consequence::Opened {
            started: started.clone(),
            successor_of: env.triggered_by.map(|t| t.correlation_id),
        }),
        Payload::WorkflowCompleted(_) => out.push(Consequence::Closed(WorkflowStatus::Completed)),
        Payload::OrderSettled(settled) => out.push(Consequence::OrdersSettled(
            settled.orders.iter().map(|o| o.status).collect(),
        )),
        Payload::RecoveryAction(a) => {
            if matches!(a.action, RecoveryKind::GiveUp | RecoveryKind::Noted) {
                out.push(Consequence::FinalFailure(a.failed_correlation));
            }
            // Decided: the failed workflow's root is needed no more.
            out.push(Consequence::Decided(a.failed_correlation));
        }
        _ => {}
    }
    // A workflow ends once its account is reconciled after trading, or at once when its
    // plan has nothing to trade.
    let done = matches!(
        (&env.payload, stage),
        (
            Payload::ReconciliationCompleted(_),
            Some(WorkflowStage::Reconciled)
        ) | (
            Payload::RebalancePlanned(_),
            Some(WorkflowStage::NothingToTrade)
        )
    );
    if done {
        out.push(Consequence::Complete);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::events::*;
    use chrono::NaiveDate;
    use rust_decimal::Decimal;

    fn env(payload: impl Into<Payload>) -> Envelope {
        Envelope::root(payload, "test", &SystemClock, None)
    }

    fn failed(reason: FailureReason) -> Envelope {
        env(WorkflowFailed {
            step: "execution".into(),
            reason,
            detail: "why".into(),
        })
    }

    fn started() -> WorkflowStarted {
        WorkflowStarted {
            as_of: NaiveDate::from_ymd_opt(2024, 1, 2).unwrap(),
            mode: Default::default(),
            trigger: crate::domain::Trigger::Test,
            attempt: 0,
        }
    }

    fn plan(trades: bool) -> Envelope {
        let action = if trades {
            crate::domain::PlanAction::Buy
        } else {
            crate::domain::PlanAction::Hold
        };
        env(RebalancePlanned {
            signal_hash: String::new(),
            plan_hash: String::new(),
            account_snapshot_id: String::new(),
            portfolio_value: Decimal::ONE,
            cash: Decimal::ONE,
            investable: Decimal::ONE,
            items: vec![PlanItem {
                symbol: "SPY".into(),
                action,
                qty: Decimal::ONE,
                price: Decimal::ONE,
                target_value: Decimal::ONE,
                current_value: Decimal::ONE,
                delta: Decimal::ZERO,
            }],
        })
    }

    #[test]
    fn the_rules_one_case_each() {
        use Consequence as C;
        use WorkflowStage as S;
        let halt = TradingHalted {
            reason: HaltReason::Manual,
            detail: "operator".into(),
        };
        let reconciled = env(ReconciliationCompleted {
            status: ReconciliationStatus::Ok,
            positions: vec![],
            unexplained_orders: vec![],
            expected_cash: None,
            actual_cash: None,
            detail: None,
        });
        let cases: Vec<(Envelope, Option<S>, Vec<C>)> = vec![
            (
                failed(FailureReason::StepFailed),
                Some(S::Failed),
                vec![C::Closed(WorkflowStatus::Failed)],
            ),
            (
                failed(FailureReason::Timeout),
                Some(S::TimedOut),
                vec![C::Closed(WorkflowStatus::TimedOut)],
            ),
            (
                failed(FailureReason::Unauthorized),
                Some(S::Failed),
                vec![
                    C::Halt {
                        reason: HaltReason::Authorization,
                        detail: "venue refused the credentials in step execution: why".into(),
                    },
                    C::Closed(WorkflowStatus::Failed),
                ],
            ),
            (env(halt.clone()), None, vec![C::Halted(halt.clone())]),
            (
                env(TradingResumed {
                    detail: String::new(),
                }),
                None,
                vec![C::Resumed],
            ),
            (
                env(started()),
                Some(S::Started),
                vec![C::Opened {
                    started: started(),
                    successor_of: None,
                }],
            ),
            (plan(true), Some(S::Planned), vec![]),
            (plan(false), Some(S::NothingToTrade), vec![C::Complete]),
            (reconciled.clone(), Some(S::Reconciled), vec![C::Complete]),
            // A late report of a workflow already over completes nothing.
            (reconciled, Some(S::Failed), vec![]),
            (
                env(WorkflowCompleted {
                    orders_placed: 1,
                    duration_ms: 2,
                }),
                Some(S::Completed),
                vec![C::Closed(WorkflowStatus::Completed)],
            ),
        ];
        for (event, stage, want) in cases {
            assert_eq!(
                consequences(&event, stage),
                want,
                "{} at {stage:?}",
                event.event_type()
            );
        }
    }

    #[test]
    fn no_workflow_starts_while_halted() {
        let halt = TradingHalted {
            reason: HaltReason::Reconciliation,
            detail: "drift".into(),
        };
        assert_eq!(
            refuse_start(&env(started()), Some(&halt)).as_deref(),
            Some("trading is halted: drift")
        );
        assert_eq!(refuse_start(&env(started()), None), None);
        assert_eq!(refuse_start(&plan(true), Some(&halt)), None);
    }
}
