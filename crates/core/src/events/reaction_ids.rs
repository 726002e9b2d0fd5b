//! Reproducible ids for the events of one handling of an event.

use super::{Envelope, EventId};

/// Gives the events of one handling reproducible ids: an event whose id is random
/// (uuid v4) gets one derived from the handled event, the role and its place in the
/// handling, and the causations that pointed at its old id follow. Ids a handler
/// derived itself (execution's, from the plan) are kept. So a worker that handles an
/// event again after a redelivery publishes the same ids, and the broker keeps one copy.
#[derive(Default)]
pub struct StableIds {
    /// Events of the current handling so far: (old id, new id).
    renamed: Vec<(EventId, EventId)>,
}

impl StableIds {
    fn derived(handled: EventId, role: &str, index: u64) -> EventId {
        EventId::derived(&[
            b"remote-reaction",
            handled.0.as_bytes(),
            role.as_bytes(),
            &index.to_le_bytes(),
        ])
    }

    /// The id the first event of `role`'s reaction to `handled` has when the handler
    /// gave it a random one: on record, that reaction is.
    pub fn first_of(handled: EventId, role: &str) -> EventId {
        Self::derived(handled, role, 0)
    }

    pub fn apply(&mut self, handled: EventId, role: &str, env: &mut Envelope) {
        let index = self.renamed.len() as u64;
        let old = env.event_id;
        if old.0.get_version_num() == 4 {
            env.event_id = Self::derived(handled, role, index);
        }
        if let Some(cause) = env.causation_id {
            if let Some((_, new)) = self.renamed.iter().find(|(o, _)| *o == cause) {
                env.causation_id = Some(*new);
            }
        }
        self.renamed.push((old, env.event_id));
    }
}
