//! The event bus of a run with `bus.transport = "nats"`: the mirror that keeps the
//! JetStream stream a copy of the journal, and the endpoint of the workers.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;

use crate::actors::broker::{Broker, Tap};
use crate::actors::engine::EngineDeps;
use crate::bus::connect::NatsAccess;
use crate::bus::mirror::Mirror;
use crate::bus::remote::{RemoteView, VenueAccount};
use crate::bus::BusHealth;
use crate::journal::outbox::Outbox;
use crate::journal::Journal;

/// The event bus of a run with `bus.transport = "nats"`: the mirror that keeps the
/// JetStream stream a copy of the journal.
pub(super) struct EventBus {
    pub config: crate::config::BusConfig,
    /// Who the engine is on the bus, and how the connection is secured.
    pub access: NatsAccess,
    pub journal_path: PathBuf,
    pub health: BusHealth,
    /// The durable consumers of the roles served by workers: (name, subject).
    pub consumers: Vec<(String, String)>,
    /// What `/healthz` shows of the workers.
    pub view: RemoteView,
    /// The broker's workflow roots, which recovery workers ask for.
    pub roots: Option<crate::workflow_roots::WorkflowRoots>,
    /// The venue account the engine trades, told to workers that ask.
    pub account: VenueAccount,
    /// Whether workers' order intents are taken: not before the start-up check, which
    /// a worker's order (a plan redelivered by the server, not held by the broker)
    /// would otherwise race.
    pub intents_open: Arc<std::sync::atomic::AtomicBool>,
}

impl EventBus {
    /// With what the engine's dependencies say: the consumers of the roles workers
    /// serve, and the workflow roots recovery workers ask for.
    pub fn serving(mut self, deps: &EngineDeps) -> Self {
        self.consumers = crate::actors::remote::remote_consumers(deps);
        self.roots = Some(deps.roots.clone());
        self
    }

    /// Its health, and how long a new workflow waits for it (seconds).
    pub fn gate(&self) -> (BusHealth, u64) {
        (self.health.clone(), self.config.connect_timeout_secs)
    }

    /// The workers of the remote roles, and how long a new workflow waits for them.
    pub fn workers(&self) -> Option<(RemoteView, Duration)> {
        (!self.consumers.is_empty()).then(|| {
            let wait = Duration::from_secs(self.config.worker_wait_secs);
            (self.view.clone(), wait)
        })
    }

    /// Taps the broker (each dispatched event, in order) and starts the mirror.
    pub async fn start(self, broker: &Addr<Broker>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let tap = broker
            .send(Tap(Box::new(move |seq, env| {
                // Closed only when the mirror ended; the journal still has the event.
                let _ = tx.send((seq, env.clone()));
            })))
            .await;
        if tap.is_err() {
            tracing::error!("the broker stopped before the event bus could be attached");
            return;
        }
        if !self.consumers.is_empty() {
            // The workers' way back: their reactions, dead letters and heartbeats.
            let (options, url, prefix, broker, view, roots, account, intents_open) = (
                self.access.options(),
                self.config.url.clone(),
                self.config.subject_prefix.clone(),
                broker.clone(),
                self.view.clone(),
                self.roots.clone(),
                self.account.clone(),
                self.intents_open.clone(),
            );
            // The workers' order intents go to this journal's outbox before the venue.
            let outbox = match Outbox::open(&self.journal_path) {
                Ok(o) => Some(o),
                Err(e) => {
                    tracing::error!(error = %e, "cannot open the outbox for the workers' intents: they will not place orders");
                    None
                }
            };
            let lease = std::time::Duration::from_secs(self.config.ack_wait_secs);
            let journal = Journal::open(&self.journal_path, crate::journal::SyncMode::Normal)
                .map_err(|e| tracing::error!(error = %e, "cannot read the journal for the workers' questions"))
                .ok();
            let journaled = journal.as_ref().map_or(u64::MAX, Journal::last_seq);
            let (stream, names): (String, Vec<String>) = (
                self.config.stream.clone(),
                self.consumers.iter().map(|(n, _)| n.clone()).collect(),
            );
            tokio::task::spawn_local(async move {
                let connect = options.retry_on_initial_connect().connect(url.as_str());
                let served = match connect.await {
                    Ok(client) => {
                        tokio::task::spawn_local(crate::actors::remote::watch_lag(
                            client.clone(),
                            stream,
                            names,
                            view.clone(),
                        ));
                        let endpoint = crate::actors::remote::Endpoint {
                            prefix,
                            broker,
                            view,
                            roots,
                            account,
                            outbox: outbox.map(|o| (o, intents_open)),
                            lease,
                            journaled,
                            journal,
                        };
                        crate::actors::remote::serve_endpoint(client, endpoint).await
                    }
                    Err(e) => Err(e.to_string()),
                };
                if let Err(e) = served {
                    tracing::error!(error = %e, "the workers' endpoint stopped");
                }
            });
        }
        let mirror = Mirror::new(self.config, self.access, self.journal_path, self.health)
            .with_consumers(self.consumers);
        tokio::task::spawn_local(mirror.run(rx));
    }
}
