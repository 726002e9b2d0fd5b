//! Recovery actor: reacts to `workflow.failed.v1` (timeouts included) with a
//! `recovery.action.v1` decided by the recovery core.

use super::engine::EngineDeps;
use super::supervision::{EventHandler, HandlerFault, Reaction, Registry};
use crate::events::{Envelope, EventKind, Payload};
use crate::recovery::decide;

pub const NAME: &str = "recovery";
pub const CONSUMES: &[EventKind] = &[EventKind::WorkflowFailed];

pub struct RecoveryActor;

impl RecoveryActor {
    pub fn new(_deps: &EngineDeps) -> Self {
        RecoveryActor
    }
}

impl EventHandler for RecoveryActor {
    fn handle(&mut self, event: &Envelope) -> Result<Reaction, HandlerFault> {
        let Payload::WorkflowFailed(failure) = &event.payload else {
            return Ok(Reaction::nothing());
        };
        Ok(Reaction::one(decide(event.correlation_id, failure)))
    }
}

pub fn register(registry: &mut Registry) {
    let deps = registry.deps().clone();
    registry.add(NAME, CONSUMES, move || RecoveryActor::new(&deps));
}
