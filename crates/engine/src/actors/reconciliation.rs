//! Reconciliation actor: after every settlement, and when asked
//! (`reconciliation.requested.v1`, at engine start), reads the venue's positions and
//! open orders, compares them with what the engine expects (positions before + fills)
//! and publishes `reconciliation.completed.v1`. Drift halts trading or starts a
//! corrective workflow, per `reconciliation.on_drift`.
//!
//! The actor keeps no state between events: the settlement carries the positions
//! before it, so a dead-lettered or redelivered earlier event cannot leave it with a
//! wrong expectation. A settlement of a workflow that has already closed (failed while
//! this actor was restarting, say) is not checked: later workflows may have traded since,
//! so the venue no longer shows that workflow's result, and its retry re-plans from the
//! venue anyway.

use std::collections::HashSet;
use std::sync::Arc;

use rust_decimal::Decimal;

use super::deps::EngineDeps;
use super::supervision::{Emit, EventHandler, HandlerFault, Reaction, Registry};
use crate::clock::Clock;
use crate::config::OnDrift;
use crate::domain::{RunMode, Symbol};
use crate::events::{
    CorrelationId, Envelope, EventKind, FailureReason, HaltReason, Payload,
    ReconciliationCompleted, ReconciliationStatus, TradingHalted, WorkflowFailed, WorkflowStarted,
};
use crate::intents::IntentRecorder;
use crate::journal::outbox::SharedOutbox;
use crate::reconciliation::{expected_after, failed, reconcile, Positions};
use crate::venue::Venue;
use crate::workflow_roots::WorkflowRoots;

pub const NAME: &str = "reconciliation";
pub const CONSUMES: &[EventKind] = &[
    EventKind::OrderSubmitted,
    EventKind::OrderSettled,
    EventKind::ReconciliationRequested,
];

pub struct ReconciliationActor {
    venue: Arc<dyn Venue>,
    tolerance_pct: Decimal,
    policy: DriftPolicy,
    clock: Arc<dyn Clock>,
    roots: WorkflowRoots,
    outbox: Option<SharedOutbox>,
    /// In a worker: the engine's outbox over the bus, the record of every intent.
    remote: Option<Arc<dyn IntentRecorder>>,
    /// Client order ids this engine submitted (without an outbox, the only record).
    submitted: Arc<std::sync::Mutex<HashSet<String>>>,
}

impl ReconciliationActor {
    pub fn new(deps: &EngineDeps) -> Self {
        Self {
            venue: deps.venue.clone(),
            tolerance_pct: deps.config.reconciliation.tolerance_pct,
            policy: DriftPolicy {
                on_drift: deps.config.reconciliation.on_drift,
                mode: deps.config.engine.mode,
            },
            clock: deps.clock.clone(),
            roots: deps.roots.clone(),
            outbox: deps.outbox.clone(),
            remote: deps.remote_intents.clone(),
            submitted: Default::default(),
        }
    }

    /// Reads the venue and compares with `expected` (`None`: nothing journaled, the
    /// venue is the baseline); the error says what could not be read.
    fn check(
        &self,
        expected: Option<Positions>,
    ) -> impl std::future::Future<Output = Result<ReconciliationCompleted, String>> + 'static {
        let venue = self.venue.clone();
        let outbox = self.outbox.clone();
        let remote = self.remote.clone();
        let submitted = self.submitted.clone();
        let tolerance = self.tolerance_pct;
        async move {
            let account = venue.account().await.map_err(|e| format!("account: {e}"))?;
            let open = venue
                .open_orders()
                .await
                .map_err(|e| format!("open orders: {e}"))?;
            let symbols: Vec<Symbol> = account.positions.keys().cloned().collect();
            let prices = venue.prices(&symbols).await.unwrap_or_default();
            let local = |id: &str| {
                let seen = submitted.lock().map(|s| s.contains(id)).unwrap_or(false);
                seen || outbox
                    .as_ref()
                    .and_then(|o| o.with(|o| o.knows(id)).ok())
                    .unwrap_or(false)
            };
            // A worker asks the engine's outbox of each open order it does not know.
            let mut known_remotely = HashSet::new();
            if let Some(remote) = &remote {
                for o in open.iter().filter(|o| !local(&o.client_order_id)) {
                    let id = &o.client_order_id;
                    if remote
                        .knows(id)
                        .await
                        .map_err(|e| format!("the engine's outbox: {e}"))?
                    {
                        known_remotely.insert(id.clone());
                    }
                }
            }
            let explained = |id: &str| local(id) || known_remotely.contains(id);
            let adopted = expected.is_none();
            let expected = expected.unwrap_or_else(|| account.positions.clone());
            let mut report = reconcile(&expected, &account, &open, explained, &prices, tolerance);
            if adopted && report.detail.is_none() {
                report.detail = Some(
                    "no execution journaled yet: the venue's positions are the baseline".into(),
                );
            }
            Ok(report)
        }
    }
}

/// What reconciliation does with a report: publish it and, on drift, halt or start a
/// corrective workflow.
#[derive(Clone)]
struct DriftPolicy {
    on_drift: OnDrift,
    mode: RunMode,
}

impl DriftPolicy {
    /// The report, then on drift a halt, or a corrective workflow as of `as_of` unless
    /// the drifting workflow was itself corrective (then a halt).
    fn react(
        &self,
        report: ReconciliationCompleted,
        handled: &Envelope,
        as_of: chrono::NaiveDate,
        corrective: bool,
    ) -> Vec<Emit> {
        if report.status != ReconciliationStatus::Drift {
            return vec![Emit::from(report)];
        }
        let detail = report.detail.clone().unwrap_or_default();
        tracing::error!(%detail, "reconciliation found drift");
        let halt = |why: &str| {
            Emit::after(
                0,
                TradingHalted {
                    reason: HaltReason::Reconciliation,
                    detail: format!("{why}: {detail}"),
                },
            )
        };
        let next = if !report.unexplained_orders.is_empty() {
            halt("unexplained open orders at the venue")
        } else {
            match (self.on_drift, corrective) {
                (OnDrift::Halt, _) => halt("positions drifted from the journal"),
                (OnDrift::Rebalance, true) => {
                    halt("positions drifted again after a corrective rebalance")
                }
                (OnDrift::Rebalance, false) => Emit::new_workflow(
                    CorrelationId::derived(&[
                        b"reconciliation.corrective",
                        handled.event_id.0.as_bytes(),
                    ]),
                    Some(0),
                    WorkflowStarted {
                        as_of,
                        mode: self.mode,
                        trigger: crate::domain::Trigger::Reconciliation,
                        attempt: 0,
                    },
                ),
            }
        };
        vec![Emit::from(report), next]
    }
}

fn step_failed(detail: String) -> Vec<Emit> {
    vec![Emit::from(WorkflowFailed {
        step: NAME.into(),
        reason: FailureReason::StepFailed,
        detail,
    })]
}

impl EventHandler for ReconciliationActor {
    fn handle(&mut self, event: &Arc<Envelope>) -> Result<Reaction, HandlerFault> {
        let correlation = event.correlation_id;
        match &event.payload {
            Payload::OrderSubmitted(s) => {
                // With an outbox the journal explains every order; only without one is
                // this set the record (and it then grows with the orders of the process).
                if self.outbox.is_none() {
                    if let Ok(mut ids) = self.submitted.lock() {
                        ids.insert(s.client_order_id.clone());
                    }
                }
                Ok(Reaction::nothing())
            }
            Payload::OrderSettled(settled) => {
                if self.roots.is_closed(&correlation) {
                    tracing::warn!(
                        %correlation,
                        "settlement of a closed workflow not reconciled: later workflows may have traded since"
                    );
                    return Ok(Reaction::nothing());
                }
                let Some(before) = settled.positions_before.as_ref() else {
                    return Ok(Reaction::Publish(step_failed(
                        "the settlement carries no pre-trade positions (written by an older version)"
                            .into(),
                    )));
                };
                let expected = expected_after(before, &settled.orders);
                let root = self.roots.get(&correlation);
                let as_of = root.as_ref().map_or_else(
                    || crate::clock::new_york_date(self.clock.now()),
                    |r| r.as_of,
                );
                let corrective =
                    root.is_some_and(|r| r.trigger == crate::domain::Trigger::Reconciliation);
                let check = self.check(Some(expected));
                let policy = self.policy.clone();
                let handled = event.clone();
                Ok(Reaction::Later(Box::pin(async move {
                    match check.await {
                        Err(e) => Ok(step_failed(format!("venue unreadable: {e}"))),
                        Ok(report) => Ok(policy.react(report, &handled, as_of, corrective)),
                    }
                })))
            }
            Payload::ReconciliationRequested(request) => {
                let as_of = request
                    .as_of
                    .unwrap_or_else(|| crate::clock::new_york_date(self.clock.now()));
                let check = self.check(request.expected_positions.clone());
                let policy = self.policy.clone();
                let handled = event.clone();
                Ok(Reaction::Later(Box::pin(async move {
                    match check.await {
                        Err(e) => Ok(vec![Emit::from(failed(format!("venue unreadable: {e}")))]),
                        Ok(report) => Ok(policy.react(report, &handled, as_of, false)),
                    }
                })))
            }
            _ => Ok(Reaction::nothing()),
        }
    }
}

pub fn register(registry: &mut Registry) {
    let deps = registry.deps().clone();
    registry.add(NAME, CONSUMES, move || ReconciliationActor::new(&deps));
}
