//! Keeps the stream a copy of the journal: on every (re)connection it asks the stream
//! for the last journal seq it holds and republishes what follows from the journal;
//! then it publishes each event the broker dispatches, in order. Nothing accepted is
//! lost to an outage (the journal has it, and the next connection sends it), and a
//! resend is dropped by the server (`Nats-Msg-Id` = event id).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;

use super::connect::NatsAccess;
use super::jetstream::{BusError, EventStream};
use super::settings::BusConfig;
use super::BusHealth;
use crate::events::Envelope;
use crate::journal::{Journal, SyncMode};
use crate::metrics::metrics;

/// Events read from the journal per query while catching up.
const CATCH_UP_BATCH: usize = 512;
const BACKOFF_FIRST: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_secs(5);

/// An accepted event as the broker dispatched it.
pub type Dispatched = (u64, Arc<Envelope>);

pub struct Mirror {
    config: BusConfig,
    access: NatsAccess,
    journal_path: PathBuf,
    health: BusHealth,
    /// Durable consumers of the roles served by workers: (name, subject).
    consumers: Vec<(String, String)>,
}

/// Why one connection's mirroring ended.
enum Ended {
    /// The broker is gone (the channel closed): the mirror is done.
    Done,
    Failed(String),
}

impl Mirror {
    pub fn new(
        config: BusConfig,
        access: NatsAccess,
        journal_path: PathBuf,
        health: BusHealth,
    ) -> Self {
        Self {
            config,
            access,
            journal_path,
            health,
            consumers: Vec::new(),
        }
    }

    /// Also keeps these durable consumers (name, subject) in existence: made after each
    /// connection's catch-up, so they deliver only events published from then on.
    pub fn with_consumers(mut self, consumers: Vec<(String, String)>) -> Self {
        self.consumers = consumers;
        self
    }

    /// Runs until `live` closes, reconnecting with backoff after any failure.
    pub async fn run(self, mut live: UnboundedReceiver<Dispatched>) {
        let timeout = Duration::from_secs(self.config.connect_timeout_secs.clamp(1, 10));
        let mut backoff = BACKOFF_FIRST;
        loop {
            let ended = match EventStream::connect(&self.config, &self.access, timeout).await {
                Ok(mut stream) => {
                    backoff = BACKOFF_FIRST;
                    self.mirror(&mut stream, &mut live).await
                }
                Err(e) => Ended::Failed(e.to_string()),
            };
            match ended {
                Ended::Done => return,
                Ended::Failed(why) => {
                    if self.health.fault().is_some() {
                        tracing::error!(error = %why, "event bus refused: new workflows are refused until it is fixed");
                    } else if self.health.is_connected() {
                        tracing::error!(error = %why, "event bus lost: new workflows wait until it is back");
                    } else {
                        tracing::warn!(error = %why, "event bus unreachable");
                    }
                    self.health.set_connected(false);
                }
            }
            // What the broker dispatches meanwhile is in the journal: the next
            // connection catches up from there.
            while let Ok(_dropped) = live.try_recv() {}
            if live.is_closed() && live.is_empty() && self.all_mirrored() {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_CAP);
        }
    }

    /// Whether the stream already holds the whole journal (checked before giving up on
    /// a closed channel).
    fn all_mirrored(&self) -> bool {
        Journal::open(&self.journal_path, SyncMode::Normal)
            .is_ok_and(|j| j.last_seq() <= self.health.mirrored_through())
    }

    async fn mirror(
        &self,
        stream: &mut EventStream,
        live: &mut UnboundedReceiver<Dispatched>,
    ) -> Ended {
        let fail = |e: BusError| Ended::Failed(e.to_string());
        let last = match stream.last().await {
            Ok(l) => l,
            Err(e) => return fail(e),
        };
        let journal = match Journal::open(&self.journal_path, SyncMode::Normal) {
            Ok(j) => j,
            Err(e) => return Ended::Failed(format!("journal: {e}")),
        };
        // The stream must be this journal's copy: its last event is the journal's at
        // that seq. Another journal's stream (or a journal started afresh) would have
        // this one's events taken for published: refused, never skipped.
        let mut through = 0;
        if let Some((seq, id)) = last {
            let ours = journal
                .entries_after(seq.saturating_sub(1), 1)
                .ok()
                .and_then(|e| e.into_iter().next())
                .is_some_and(|e| e.seq == seq && e.envelope.event_id.to_string() == id);
            if !ours {
                let why = format!(
                    "stream {} holds another journal's events (its seq {seq} is not this journal's event {id}): give this engine its own bus.stream and bus.subject_prefix",
                    stream.name()
                );
                self.health.set_fault(Some(why.clone()));
                return Ended::Failed(why);
            }
            through = seq;
        }
        self.health.set_fault(None);
        if let Err(e) = self.catch_up(stream, &journal, &mut through).await {
            return Ended::Failed(e);
        }
        for (name, subject) in &self.consumers {
            let made = stream
                .ensure_consumer(
                    name,
                    subject.clone(),
                    Duration::from_secs(self.config.ack_wait_secs),
                    self.config.max_deliver,
                )
                .await;
            if let Err(e) = made {
                return fail(e);
            }
        }
        self.health.set_connected(true);
        tracing::info!(through, stream = %self.config.stream, "event bus connected: the stream holds the journal");
        while let Some((seq, env)) = live.recv().await {
            if seq <= through {
                continue;
            }
            if seq > through + 1 {
                // Dispatched before this connection's catch-up saw it committed.
                if let Err(e) = self.catch_up(stream, &journal, &mut through).await {
                    return Ended::Failed(e);
                }
                if seq <= through {
                    continue;
                }
            }
            let json = match env.encode() {
                Ok(encoded) => encoded.json.into_bytes(),
                Err(e) => return Ended::Failed(format!("encoding seq {seq}: {e}")),
            };
            let id = env.event_id.to_string();
            if let Err(e) = stream.publish(seq, &id, env.event_type(), json).await {
                return fail(e);
            }
            through = seq;
            self.published(through);
        }
        Ended::Done
    }

    /// Republishes every journal entry after `through`.
    async fn catch_up(
        &self,
        stream: &EventStream,
        journal: &Journal,
        through: &mut u64,
    ) -> Result<(), String> {
        let start = *through;
        loop {
            let batch = journal
                .entries_after(*through, CATCH_UP_BATCH)
                .map_err(|e| format!("journal: {e}"))?;
            if batch.is_empty() {
                break;
            }
            for entry in batch {
                let env = &entry.envelope;
                let json = env
                    .encode()
                    .map_err(|e| format!("encoding seq {}: {e}", entry.seq))?
                    .json
                    .into_bytes();
                stream
                    .publish(entry.seq, &env.event_id.to_string(), env.event_type(), json)
                    .await
                    .map_err(|e| e.to_string())?;
                *through = entry.seq;
                self.published(*through);
            }
        }
        if *through > start {
            tracing::info!(
                from = start + 1,
                to = *through,
                "event bus: republished from the journal what the stream lacked"
            );
        }
        self.health.set_mirrored_through(*through);
        Ok(())
    }

    fn published(&self, through: u64) {
        self.health.set_mirrored_through(through);
        metrics().bus_published.inc();
    }
}
