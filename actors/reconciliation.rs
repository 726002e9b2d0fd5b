//! Reconciliation actor: snapshots the venue's positions when execution starts, and
//! after the settlement compares "positions before + fills" with what the venue holds
//! now, publishing `reconciliation.completed.v1`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rust_decimal::Decimal;

use super::engine::EngineDeps;
use super::supervision::{EventHandler, HandlerFault, Reaction, Registry};
use crate::domain::{Side, Symbol};
use crate::events::{CorrelationId, Envelope, EventKind, FailureReason, Payload, WorkflowFailed};
use crate::reconciliation::reconcile;
use crate::venue::Venue;

pub const NAME: &str = "reconciliation";
pub const CONSUMES: &[EventKind] = &[EventKind::ExecutionStarted, EventKind::OrderSettled];

/// Default tolerance (0.1% of the expected quantity) until reconciliation gets its own
/// config section.
const TOLERANCE_PCT: Decimal = Decimal::from_parts(1, 0, 0, false, 3);

type Positions = BTreeMap<Symbol, Decimal>;

pub struct ReconciliationActor {
    venue: Arc<dyn Venue>,
    /// Positions at execution start, per open workflow. Shared with the pending futures.
    before: Arc<std::sync::Mutex<HashMap<CorrelationId, Positions>>>,
}

impl ReconciliationActor {
    pub fn new(deps: &EngineDeps) -> Self {
        Self {
            venue: deps.venue.clone(),
            before: Arc::default(),
        }
    }
}

fn failed(detail: String) -> Vec<Payload> {
    vec![Payload::WorkflowFailed(WorkflowFailed {
        step: NAME.into(),
        reason: FailureReason::StepFailed,
        detail,
    })]
}

impl EventHandler for ReconciliationActor {
    fn handle(&mut self, event: &Envelope) -> Result<Reaction, HandlerFault> {
        let venue = self.venue.clone();
        let before = self.before.clone();
        let correlation = event.correlation_id;
        match &event.payload {
            Payload::ExecutionStarted(_) => Ok(Reaction::Later(Box::pin(async move {
                match venue.account().await {
                    Ok(a) => {
                        before
                            .lock()
                            .map_err(|_| HandlerFault("reconciliation state poisoned".into()))?
                            .insert(correlation, a.positions);
                        Ok(vec![])
                    }
                    Err(e) => Ok(failed(format!("pre-trade account snapshot: {e}"))),
                }
            }))),
            Payload::OrderSettled(settled) => {
                let fills: Vec<(Symbol, Decimal)> = settled
                    .orders
                    .iter()
                    .map(|o| {
                        let signed = if o.side == Side::Buy {
                            o.filled_qty
                        } else {
                            -o.filled_qty
                        };
                        (o.symbol.clone(), signed)
                    })
                    .collect();
                Ok(Reaction::Later(Box::pin(async move {
                    let baseline = before
                        .lock()
                        .map_err(|_| HandlerFault("reconciliation state poisoned".into()))?
                        .remove(&correlation);
                    let Some(mut expected) = baseline else {
                        return Ok(failed(
                            "no pre-trade snapshot for this workflow (lost in a restart)".into(),
                        ));
                    };
                    let actual = match venue.account().await {
                        Ok(a) => a.positions,
                        Err(e) => return Ok(failed(format!("account snapshot: {e}"))),
                    };
                    for (symbol, qty) in fills {
                        *expected.entry(symbol).or_default() += qty;
                    }
                    expected.retain(|_, q| !q.is_zero());
                    Ok(vec![reconcile(&expected, &actual, TOLERANCE_PCT).into()])
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
