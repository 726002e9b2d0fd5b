//! The event bus beyond the process: accepted events mirrored, in journal order, to a
//! NATS JetStream stream. The broker stays the single writer of the journal and the
//! judge of every event; the stream is a copy others can read, and the journal is what
//! it is rebuilt from (`mirror`).
//!
//! Naming: one subject per event type under a per-account prefix
//! (`alchemiser.events.workflow.started.v1`), each message's `Nats-Msg-Id` its event id
//! (the server drops a resend within its duplicate window) and `Alchemiser-Seq` its
//! journal sequence number (where a restarted mirror resumes).

pub mod connect;
pub mod jetstream;
pub mod mirror;
pub mod remote;
pub mod settings;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// The header carrying an event's journal sequence number.
pub const SEQ_HEADER: &str = "Alchemiser-Seq";

/// A NATS name token: letters, digits, `-` and `_` (no dots, wildcards or spaces).
pub fn valid_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The subject of events of `event_type` under `prefix`.
pub fn subject(prefix: &str, event_type: &str) -> String {
    format!("{prefix}.events.{event_type}")
}

/// Every event subject under `prefix` (the stream's filter).
pub fn all_events(prefix: &str) -> String {
    format!("{prefix}.events.>")
}

/// Whether the bus is reachable and how far the stream holds the journal: shared by
/// the mirror (which writes it) and the engine (which holds new workflows while the
/// bus is down, and waits at exit for the stream to catch up).
#[derive(Clone, Debug, Default)]
pub struct BusHealth {
    connected: Arc<AtomicBool>,
    mirrored_through: Arc<AtomicU64>,
    /// Why the bus cannot be used although it answers (another journal's stream).
    fault: Arc<std::sync::Mutex<Option<String>>>,
}

impl BusHealth {
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::SeqCst);
        crate::metrics::metrics()
            .bus_connected
            .set(i64::from(connected));
    }

    pub fn fault(&self) -> Option<String> {
        self.fault.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_fault(&self, fault: Option<String>) {
        *self.fault.lock().unwrap_or_else(|p| p.into_inner()) = fault;
    }

    /// The journal seq up to which the stream holds every event.
    pub fn mirrored_through(&self) -> u64 {
        self.mirrored_through.load(Ordering::SeqCst)
    }

    pub fn set_mirrored_through(&self, seq: u64) {
        self.mirrored_through.store(seq, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_per_type_under_the_prefix() {
        assert_eq!(
            subject("alchemiser.acct1", "workflow.started.v1"),
            "alchemiser.acct1.events.workflow.started.v1"
        );
        assert_eq!(all_events("alchemiser"), "alchemiser.events.>");
        assert!(valid_token("ALCHEMISER_paper-1"));
        assert!(
            !valid_token("a.b") && !valid_token("a*") && !valid_token("") && !valid_token("a b")
        );
    }
}
