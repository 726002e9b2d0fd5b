//! Strategy actor: on `workflow.started.v1`, evaluate the configured strategies as of
//! the workflow's date and publish `strategy.signal.generated.v1`.

use super::engine::EngineDeps;
use super::supervision::{EventHandler, HandlerFault, Reaction, Registry};
use crate::events::{Envelope, EventKind, Payload};
use crate::strategy::consolidate;

pub const NAME: &str = "strategy";
pub const CONSUMES: &[EventKind] = &[EventKind::WorkflowStarted];

pub struct StrategyActor;

impl StrategyActor {
    pub fn new(_deps: &EngineDeps) -> Self {
        StrategyActor
    }
}

impl EventHandler for StrategyActor {
    fn handle(&mut self, event: &Envelope) -> Result<Reaction, HandlerFault> {
        let Payload::WorkflowStarted(started) = &event.payload else {
            return Ok(Reaction::nothing());
        };
        // No strategy files are evaluated yet (the symphony engine comes next): the
        // signal is all cash, with an empty market snapshot.
        let snapshot = blake3::hash(b"").to_hex().to_string();
        Ok(Reaction::one(consolidate(started.as_of, vec![], snapshot)))
    }
}

pub fn register(registry: &mut Registry) {
    let deps = registry.deps().clone();
    registry.add(NAME, CONSUMES, move || StrategyActor::new(&deps));
}
