//! A workflow's lifecycle as an explicit `(stage, event) -> stage` transition function.
//!
//! ```text
//! Started -signal-> Signalled -planned-> Planned -execution.started-> Executing
//!   -settled-> Settled -reconciliation.completed-> Reconciled -workflow.completed-> Completed
//! Signalled -planned, no trades-> NothingToTrade -workflow.completed-> Completed
//! any non-terminal -workflow.failed-> Failed | TimedOut (reason timeout)
//! ```
//! Terminal stages stay terminal; the only events a closed workflow still accepts are the
//! after-the-fact ones (recovery actions, reconciliation). Anything else is an
//! [`TransitionError`], never an overwrite.

use serde::Serialize;
use thiserror::Error;

use crate::events::{EventKind, FailureReason, Payload};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowStage {
    Started,
    Signalled,
    Planned,
    /// The plan holds every position: nothing to execute or reconcile, the workflow
    /// completes right after it.
    NothingToTrade,
    Executing,
    Settled,
    Reconciled,
    Completed,
    Failed,
    TimedOut,
}

crate::display_as_wire_name!(WorkflowStage, WorkflowStatus);

/// The coarse status the issue tracker and `status` talk about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowStatus {
    Started,
    Running,
    Completed,
    Failed,
    TimedOut,
}

impl WorkflowStage {
    pub fn status(self) -> WorkflowStatus {
        match self {
            WorkflowStage::Started => WorkflowStatus::Started,
            WorkflowStage::Completed => WorkflowStatus::Completed,
            WorkflowStage::Failed => WorkflowStatus::Failed,
            WorkflowStage::TimedOut => WorkflowStatus::TimedOut,
            _ => WorkflowStatus::Running,
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            WorkflowStage::Completed | WorkflowStage::Failed | WorkflowStage::TimedOut
        )
    }

    /// The next stage after `payload`, or why that event may not happen now.
    pub fn apply(self, payload: &Payload) -> Result<WorkflowStage, TransitionError> {
        use EventKind as K;
        use WorkflowStage as S;
        let kind = payload.kind();
        let next = match (self, kind) {
            // After-the-fact events never move a stage.
            (_, K::RecoveryAction | K::TradingHalted | K::ActorRestarted) => Some(self),
            (s, K::ReconciliationCompleted) if s.is_terminal() => Some(self),
            (s, K::WorkflowFailed) if !s.is_terminal() => match payload {
                Payload::WorkflowFailed(f) if f.reason == FailureReason::Timeout => {
                    Some(S::TimedOut)
                }
                _ => Some(S::Failed),
            },
            (S::Started, K::SignalGenerated) => Some(S::Signalled),
            (S::Signalled, K::AllocationCompared) => Some(S::Signalled),
            (S::Signalled, K::RebalancePlanned) => match payload {
                Payload::RebalancePlanned(plan) if !plan.has_trades() => Some(S::NothingToTrade),
                _ => Some(S::Planned),
            },
            (S::Planned, K::ExecutionStarted) => Some(S::Executing),
            (S::Executing, K::OrderSubmitted | K::OrderFilled | K::OrderDenied) => {
                Some(S::Executing)
            }
            (S::Executing, K::OrderSettled) => Some(S::Settled),
            (S::Settled, K::ReconciliationCompleted) => Some(S::Reconciled),
            (S::Reconciled | S::NothingToTrade, K::WorkflowCompleted) => Some(S::Completed),
            _ => None,
        };
        next.ok_or(TransitionError {
            from: self,
            event: kind,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error("event `{event}` is not allowed in workflow stage {from}")]
pub struct TransitionError {
    pub from: WorkflowStage,
    pub event: EventKind,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::sample::sample;
    use crate::events::*;
    use proptest::prelude::*;
    use rust_decimal::Decimal;

    #[test]
    fn happy_path_reaches_completed() {
        use EventKind as K;
        let mut stage = WorkflowStage::Started;
        for k in [
            K::SignalGenerated,
            K::AllocationCompared,
            K::RebalancePlanned,
            K::ExecutionStarted,
            K::OrderSubmitted,
            K::OrderFilled,
            K::OrderSettled,
            K::ReconciliationCompleted,
            K::WorkflowCompleted,
        ] {
            stage = stage.apply(&sample(k)).unwrap();
        }
        assert_eq!(stage, WorkflowStage::Completed);
    }

    #[test]
    fn a_plan_without_trades_completes_without_execution() {
        use EventKind as K;
        let mut stage = WorkflowStage::Started;
        for k in [K::SignalGenerated, K::AllocationCompared] {
            stage = stage.apply(&sample(k)).unwrap();
        }
        let mut plan = sample(K::RebalancePlanned);
        if let Payload::RebalancePlanned(p) = &mut plan {
            p.items[0].action = crate::domain::PlanAction::Hold;
            p.items[0].qty = Decimal::ZERO;
        }
        stage = stage.apply(&plan).unwrap();
        assert_eq!(stage, WorkflowStage::NothingToTrade);
        let err = stage.apply(&sample(K::ExecutionStarted)).unwrap_err();
        assert_eq!(err.from, WorkflowStage::NothingToTrade);
        assert_eq!(
            stage.apply(&sample(K::WorkflowCompleted)).unwrap(),
            WorkflowStage::Completed
        );
        // With a trade, the plan goes to execution and may not complete the workflow yet.
        let planned = WorkflowStage::Signalled
            .apply(&sample(K::RebalancePlanned))
            .unwrap();
        assert_eq!(planned, WorkflowStage::Planned);
        assert!(planned.apply(&sample(K::WorkflowCompleted)).is_err());
    }

    #[test]
    fn skipping_a_step_is_refused() {
        let err = WorkflowStage::Started
            .apply(&sample(EventKind::RebalancePlanned))
            .unwrap_err();
        assert_eq!(err.from, WorkflowStage::Started);
        assert_eq!(err.event, EventKind::RebalancePlanned);
    }

    #[test]
    fn timeout_failure_is_timed_out() {
        let p = Payload::WorkflowFailed(WorkflowFailed {
            step: "broker".into(),
            reason: FailureReason::Timeout,
            detail: String::new(),
        });
        assert_eq!(
            WorkflowStage::Planned.apply(&p).unwrap(),
            WorkflowStage::TimedOut
        );
    }

    proptest! {
        #[test]
        fn random_sequences_never_leave_a_terminal_stage(ks in proptest::collection::vec(0usize..EventKind::COUNT, 0..40)) {
            let mut stage = WorkflowStage::Started;
            let mut seen_terminal = false;
            for k in ks {
                if let Ok(next) = stage.apply(&sample(EventKind::ALL[k])) {
                    if seen_terminal {
                        prop_assert_eq!(next, stage);
                    }
                    stage = next;
                    seen_terminal |= stage.is_terminal();
                }
            }
        }
    }
}
