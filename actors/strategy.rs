//! Strategy actor: on `workflow.started.v1`, evaluate the strategy book as of the
//! workflow's date and publish `strategy.signal.generated.v1` (or the failure).

use std::sync::Arc;

use super::engine::EngineDeps;
use super::supervision::{EventHandler, HandlerFault, Reaction, Registry};
use crate::events::{Envelope, EventKind, FailureReason, Payload, WorkflowFailed};
use crate::strategy::book::StrategyBook;

pub const NAME: &str = "strategy";
pub const CONSUMES: &[EventKind] = &[EventKind::WorkflowStarted];

pub struct StrategyActor {
    book: Arc<StrategyBook>,
}

impl StrategyActor {
    pub fn new(deps: &EngineDeps) -> Self {
        Self {
            book: deps.strategies.clone(),
        }
    }
}

impl EventHandler for StrategyActor {
    fn handle(&mut self, event: &Envelope) -> Result<Reaction, HandlerFault> {
        let Payload::WorkflowStarted(started) = &event.payload else {
            return Ok(Reaction::nothing());
        };
        Ok(match self.book.evaluate(started.as_of) {
            Ok(signal) => Reaction::one(signal),
            Err(e) => Reaction::one(WorkflowFailed {
                step: NAME.into(),
                reason: FailureReason::StepFailed,
                detail: e.to_string(),
            }),
        })
    }
}

pub fn register(registry: &mut Registry) {
    let deps = registry.deps().clone();
    registry.add(NAME, CONSUMES, move || StrategyActor::new(&deps));
}
