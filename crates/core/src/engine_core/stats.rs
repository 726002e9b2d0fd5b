//! What the engine reports about itself (`status`, the drills, tests).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::causation::WorkflowSummary;
use crate::events::{CorrelationId, EventId, EventKind, TradingHalted};

#[derive(Clone, Debug, Serialize)]
pub struct DeadLetter {
    pub actor: &'static str,
    pub seq: u64,
    pub event_id: EventId,
    pub event_type: &'static str,
    pub correlation_id: CorrelationId,
    pub error: String,
    pub attempts: u8,
}

#[derive(Clone, Debug, Serialize)]
pub struct ActorStats {
    pub name: &'static str,
    pub restarts: u64,
    pub handled: u64,
    pub handler_latency_mean_us: f64,
    pub handler_latency_max_us: f64,
    pub unacknowledged: usize,
    pub running: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct BrokerStats {
    pub last_seq: u64,
    pub published: BTreeMap<&'static str, u64>,
    pub delivered: u64,
    pub redelivered: u64,
    pub rejected: u64,
    pub restarts: u64,
    pub actors: Vec<ActorStats>,
    pub dead_letters: Vec<DeadLetter>,
    pub halted: Option<TradingHalted>,
    pub chains_in_memory: usize,
    pub events_in_memory: usize,
    /// Why the journal stopped accepting writes, if it did.
    pub journal_failure: Option<String>,
    /// Deliveries skipped because the consumer had already handled the event.
    pub skipped_duplicates: u64,
    /// Events published again under an id already accepted (dropped).
    pub resends_dropped: u64,
    pub workflows: Vec<WorkflowSummary>,
}

impl BrokerStats {
    pub fn published_of(&self, kind: EventKind) -> u64 {
        self.published.get(kind.as_str()).copied().unwrap_or(0)
    }

    pub fn actor(&self, name: &str) -> Option<&ActorStats> {
        self.actors.iter().find(|a| a.name == name)
    }
}
