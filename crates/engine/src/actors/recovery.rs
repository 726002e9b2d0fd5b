//! Recovery actor: on `workflow.failed.v1` (timeouts included) it cancels the failed
//! workflow's open orders at the venue, then retries it as a new workflow triggered by
//! the failure, or gives up and halts (see [`crate::recovery`]). Every step is a
//! `recovery.action.v1`, so `trace` tells the whole story.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::deps::EngineDeps;
use super::supervision::{Emit, EventHandler, HandlerFault, Reaction, Registry};
use crate::config::RecoveryConfig;
use crate::events::{
    CorrelationId, Envelope, EventKind, Payload, RecoveryAction, RecoveryKind, WorkflowFailed,
};
use crate::journal::outbox::SharedOutbox;
use crate::recovery::{decide, describe, retry_correlation, Decision};
use crate::venue::Venue;
use crate::workflow_roots::WorkflowRoots;

pub const NAME: &str = "recovery";
pub const CONSUMES: &[EventKind] = &[
    EventKind::OrderSubmitted,
    EventKind::WorkflowCompleted,
    EventKind::WorkflowFailed,
];

pub struct RecoveryActor {
    venue: Arc<dyn Venue>,
    config: RecoveryConfig,
    roots: WorkflowRoots,
    outbox: Option<SharedOutbox>,
    /// Client order ids submitted by each open workflow (the outbox, when there is one,
    /// also knows those of workflows from before a restart).
    submitted: HashMap<CorrelationId, BTreeSet<String>>,
}

impl RecoveryActor {
    pub fn new(deps: &EngineDeps) -> Self {
        Self {
            venue: deps.venue.clone(),
            config: deps.config.recovery.clone(),
            roots: deps.roots.clone(),
            outbox: deps.outbox.clone(),
            submitted: HashMap::new(),
        }
    }

    fn orders_of(&mut self, correlation: CorrelationId) -> BTreeSet<String> {
        let mut ids = self.submitted.remove(&correlation).unwrap_or_default();
        if let Some(outbox) = &self.outbox {
            match outbox.with(|o| o.intents_of(correlation)) {
                Ok(known) => ids.extend(known),
                Err(e) => {
                    tracing::warn!(%correlation, error = %e, "cannot read the workflow's intents")
                }
            }
        }
        ids
    }

    fn on_failure(&mut self, event: &Envelope, failure: &WorkflowFailed) -> Reaction {
        let correlation = event.correlation_id;
        let root = self.roots.get(&correlation);
        let decision = decide(failure, root.as_ref(), &self.config);
        let ids = self.orders_of(correlation);
        let venue = self.venue.clone();
        let what = describe(failure);
        let action = move |action, attempt, detail| RecoveryAction {
            failed_correlation: correlation,
            action,
            attempt,
            detail,
        };
        Reaction::Later(Box::pin(async move {
            let mut out = Vec::new();
            if !ids.is_empty() {
                let detail = cancel_open(venue.as_ref(), &ids).await;
                out.push(Emit::from(action(
                    RecoveryKind::CancelOpenOrders,
                    0,
                    detail,
                )));
            }
            match decision {
                Decision::Retry { started, wait } => {
                    tokio::time::sleep(wait).await;
                    let attempt = started.attempt;
                    let detail = format!(
                        "retry {attempt} of the workflow of {} after {} ms: {what}",
                        started.as_of,
                        wait.as_millis()
                    );
                    out.push(Emit::from(action(RecoveryKind::Retry, attempt, detail)));
                    out.push(Emit::new_workflow(
                        retry_correlation(correlation),
                        None,
                        started,
                    ));
                }
                Decision::GiveUp { why, halt } => {
                    out.push(Emit::from(action(RecoveryKind::GiveUp, 0, why)));
                    if let Some(h) = halt {
                        out.push(Emit::from(h));
                    }
                }
            }
            // The root is forgotten once the decision is accepted (the broker does it):
            // a redelivery before that decides again from it.
            Ok(out)
        }))
    }
}

/// Cancels the venue's open orders among `ids`; says what happened.
async fn cancel_open(venue: &dyn Venue, ids: &BTreeSet<String>) -> String {
    let open = match venue.open_orders().await {
        Ok(o) => o,
        Err(e) => return format!("cannot list open orders: {e}"),
    };
    let mut canceled = Vec::new();
    let mut failed = Vec::new();
    for order in open.iter().filter(|o| ids.contains(&o.client_order_id)) {
        match venue.cancel(&order.client_order_id).await {
            Ok(_) => canceled.push(order.client_order_id.as_str()),
            Err(e) => failed.push(format!("{}: {e}", order.client_order_id)),
        }
    }
    let mut detail = format!(
        "{} of the workflow's {} orders open; canceled [{}]",
        canceled.len() + failed.len(),
        ids.len(),
        canceled.join(", ")
    );
    if !failed.is_empty() {
        detail.push_str(&format!("; cancel failed: {}", failed.join("; ")));
    }
    detail
}

impl EventHandler for RecoveryActor {
    fn handle(&mut self, event: &Arc<Envelope>) -> Result<Reaction, HandlerFault> {
        match &event.payload {
            Payload::OrderSubmitted(s) => {
                self.submitted
                    .entry(event.correlation_id)
                    .or_default()
                    .insert(s.client_order_id.clone());
                Ok(Reaction::nothing())
            }
            Payload::WorkflowCompleted(_) => {
                self.submitted.remove(&event.correlation_id);
                Ok(Reaction::nothing())
            }
            Payload::WorkflowFailed(failure) => Ok(self.on_failure(event, failure)),
            _ => Ok(Reaction::nothing()),
        }
    }
}

pub fn register(registry: &mut Registry) {
    let deps = registry.deps().clone();
    registry.add(NAME, CONSUMES, move || RecoveryActor::new(&deps));
}
