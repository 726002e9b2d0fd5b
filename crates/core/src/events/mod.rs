//! Event contracts: the [`Envelope`], the versioned [`Payload`] enum, identifier
//! newtypes and the canonical hashing behind `signal_hash`, `plan_hash` and
//! `execution_plan_hash`. Business modules share nothing but these types.

pub mod canonical;
pub mod decimal_text;
pub mod describe;
pub mod envelope;
pub mod ids;
pub mod payload;
pub mod reaction_ids;
#[cfg(test)]
pub mod sample;

pub use envelope::{EncodedEnvelope, Envelope, EnvelopeError, TriggeredBy};
pub use ids::{CorrelationId, EventId};
pub use payload::*;
pub use reaction_ids::StableIds;
