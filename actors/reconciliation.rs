//! Reconciliation actor: takes the positions recorded when execution started, and after
//! the settlement compares "positions before + fills" with what the venue holds now,
//! publishing `reconciliation.completed.v1`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rust_decimal::Decimal;

use super::engine::EngineDeps;
use super::supervision::{Emit, EventHandler, HandlerFault, Reaction, Registry};
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
    /// Positions at execution start, per open workflow.
    before: HashMap<CorrelationId, Positions>,
}

impl ReconciliationActor {
    pub fn new(deps: &EngineDeps) -> Self {
        Self {
            venue: deps.venue.clone(),
            before: HashMap::new(),
        }
    }
}

fn failed(detail: String) -> Vec<Emit> {
    vec![Emit::from(WorkflowFailed {
        step: NAME.into(),
        reason: FailureReason::StepFailed,
        detail,
    })]
}

impl EventHandler for ReconciliationActor {
    fn handle(&mut self, event: &Envelope) -> Result<Reaction, HandlerFault> {
        let correlation = event.correlation_id;
        match &event.payload {
            Payload::ExecutionStarted(started) => {
                self.before
                    .insert(correlation, started.positions_before.clone());
                Ok(Reaction::nothing())
            }
            Payload::OrderSettled(settled) => {
                let remembered = self.before.remove(&correlation);
                let Some(mut expected) = remembered.or_else(|| settled.positions_before.clone())
                else {
                    return Ok(Reaction::Publish(failed(
                        "no pre-trade positions for this workflow (lost in a restart)".into(),
                    )));
                };
                for o in &settled.orders {
                    let signed = if o.side == Side::Buy {
                        o.filled_qty
                    } else {
                        -o.filled_qty
                    };
                    *expected.entry(o.symbol.clone()).or_default() += signed;
                }
                expected.retain(|_, q| !q.is_zero());
                let venue = self.venue.clone();
                Ok(Reaction::Later(Box::pin(async move {
                    let account = match venue.account().await {
                        Ok(a) => a,
                        Err(e) => return Ok(failed(format!("account snapshot: {e}"))),
                    };
                    let mut report = reconcile(&expected, &account.positions, TOLERANCE_PCT);
                    report.actual_cash = Some(account.cash);
                    Ok(vec![report.into()])
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
