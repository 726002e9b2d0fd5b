//! What `run` does before its first workflow: settle what the last run left, start the
//! engine, attach the event bus, serve metrics, and reconcile the venue with the
//! journal — never trade blind.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::super::error::CliError;
use super::bus::EventBus;
use super::venue::confirm_calendar;
use super::{unserved_message, LiveBars};
use crate::actors::broker::{Broker, QueryStats, Resume};
use crate::actors::control::ControlFiles;
use crate::actors::engine::{await_outcome, Engine, EngineDeps};
use crate::actors::observe;
use crate::bus::remote::RemoteView;
use crate::clock::Clock;
use crate::domain::Symbol;
use crate::events::ReconciliationStatus;
use crate::journal::outbox::Outbox;
use crate::journal::Journal;
use crate::venue::Venue;
use crate::venues::metered::MeteredVenue;

/// What the engine needs before its first workflow.
pub(super) struct Startup<'a> {
    /// The event bus, attached as soon as the broker starts.
    pub bus: Option<EventBus>,
    /// The remote actors, for `/healthz` (set when the bus has any).
    pub remote: Option<RemoteView>,
    pub resolver: Outbox,
    pub live_bars: Option<&'a LiveBars>,
    /// The journal has workflows to resume.
    pub resumable: bool,
    pub as_of: NaiveDate,
    pub metrics: crate::config::MetricsConfig,
    pub metered: Arc<MeteredVenue>,
    pub clock: Arc<dyn Clock>,
    pub expected: Option<BTreeMap<Symbol, Decimal>>,
    pub control: ControlFiles,
    pub resume: bool,
    /// Opened to the workers' order intents once the start-up check is done.
    pub intents_open: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl Startup<'_> {
    /// Settles what the last run left (order intents, unfinished workflows), starts the
    /// engine, serves metrics, and reconciles the venue with the journal.
    pub async fn start(
        mut self,
        deps: EngineDeps,
        journal: Journal,
        venue: &dyn Venue,
    ) -> Result<Engine, CliError> {
        let expected = self.settle_last_run(&journal, venue).await?;
        // Workflows the last run left open resume as the engine starts, and their
        // strategy evaluates on the live bars: fetch those first.
        if let (Some(live), true) = (self.live_bars, self.resumable) {
            if let Err(e) = live.refresh(self.as_of).await {
                tracing::error!(error = %e, "cannot fetch daily bars for the workflows to resume");
            }
        }
        // Unfinished workflows wait for the check below: an execution resumed during it
        // would place orders the check would take for drift.
        let engine = Engine::builder(deps)
            .journal(Some(journal))
            .hold_unfinished()
            .start();
        self.attach_bus(engine.broker()).await?;
        if self.metrics.enabled {
            self.serve_metrics(engine.broker())
                .await
                .map_err(CliError::input)?;
        }
        self.check_venue(&engine, expected).await?;
        self.hand_on(&engine).await;
        Ok(engine)
    }

    /// Answers the order intents the last run left and works out the positions the
    /// account should hold.
    async fn settle_last_run(
        &self,
        journal: &Journal,
        venue: &dyn Venue,
    ) -> Result<Option<BTreeMap<Symbol, Decimal>>, CliError> {
        // Read before they are resolved: intents of an execution the journal never saw
        // start (the engine stopped between the two) count in the expected positions.
        let unanswered = self.resolver.pending().map_err(|e| {
            CliError::input(format!(
                "cannot read the order intents left by the last run: {e}"
            ))
        })?;
        resolve_pending_intents(&self.resolver, venue)
            .await
            .map_err(|e| {
                CliError::input(format!(
                    "cannot resolve order intents left by the last run: {e}"
                ))
            })?;
        self.expected_at_start(journal, venue, &unanswered)
            .await
            .map_err(|e| {
                CliError::input(format!(
                    "cannot work out the positions the account should hold: {e}"
                ))
            })
    }

    /// Attaches the event bus; when roles are served by workers, waits for the bus and
    /// for a worker of each (their consumers hear only what comes after they exist).
    async fn attach_bus(&mut self, broker: &Addr<Broker>) -> Result<(), CliError> {
        let Some(bus) = self.bus.take() else {
            return Ok(());
        };
        let remote = !bus.consumers.is_empty();
        if remote {
            self.remote = Some(bus.view.clone());
        }
        self.intents_open = Some(bus.intents_open.clone());
        let health = bus.health.clone();
        let wait = Duration::from_secs(bus.config.connect_timeout_secs);
        let (view, worker_wait) = (
            bus.view.clone(),
            Duration::from_secs(bus.config.worker_wait_secs),
        );
        bus.start(broker).await;
        if !remote {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + wait;
        while !health.is_connected()
            && health.fault().is_none()
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !health.is_connected() {
            let why = health.fault().unwrap_or_else(|| "it is unreachable".into());
            return Err(CliError::failed(format!("the event bus cannot be used ({why}): the roles served by workers cannot check the account; not trading blind")));
        }
        // Events for a role nobody serves would wait out every timeout.
        let unserved = view.await_served(worker_wait).await;
        if !unserved.is_empty() {
            return Err(CliError::failed(unserved_message(&unserved, worker_wait)));
        }
        Ok(())
    }

    /// The start-up reconciliation: a venue that cannot be read stops the engine.
    async fn check_venue(
        &self,
        engine: &Engine,
        expected: Option<BTreeMap<Symbol, Decimal>>,
    ) -> Result<(), CliError> {
        match engine.start_up_check(expected, self.as_of).await {
            Ok(r) if r.status == ReconciliationStatus::Failed => {
                let detail = r.detail.unwrap_or_default();
                Err(CliError::input(format!(
                    "start-up reconciliation could not read the venue: {detail}; not trading blind"
                )))
            }
            Ok(r) => {
                let cash = r.actual_cash.map_or("unknown".into(), |c| c.to_string());
                let detail = r.detail.as_deref().unwrap_or("");
                let positions = r.positions.len();
                tracing::info!(status = %r.status, positions, %cash, detail, "start-up reconciliation");
                Ok(())
            }
            Err(e) => Err(CliError::input(format!(
                "start-up reconciliation: {e}; not trading blind"
            ))),
        }
    }

    /// After the check: workers' intents are taken, the kill switch's requests and
    /// `--resume` apply, and the unfinished workflows go on (and are waited for).
    async fn hand_on(&self, engine: &Engine) {
        if let Some(open) = &self.intents_open {
            open.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let broker = engine.broker();
        self.control.apply(broker).await;
        let lifted = Resume {
            detail: "run --resume".into(),
        };
        if self.resume && broker.send(lifted).await.unwrap_or(false) {
            tracing::warn!("halt lifted by --resume");
        }
        self.control
            .clone()
            .watch(broker.clone(), Duration::from_millis(500));
        if let Ok(n @ 1..) = engine.resume_unfinished().await {
            tracing::info!(workflows = n, "unfinished workflows handed on");
        }
        self.settle_resumed(engine).await;
        if let Some(live) = self.live_bars {
            let today = self
                .clock
                .now()
                .with_timezone(&chrono_tz::America::New_York);
            confirm_calendar(&live.client, today.date_naive()).await;
        }
    }

    /// The journal's expected positions, corrected for a workflow the last run left
    /// during its orders: execution reports each order as it goes, so the journal may
    /// stop before fills the venue made. Such a workflow's positions are those before
    /// its first order plus what the venue filled of every order the outbox says it
    /// sent (each intent is written before its order goes out), each followed until it
    /// is no longer open.
    async fn expected_at_start(
        &self,
        journal: &Journal,
        venue: &dyn Venue,
        unanswered: &[crate::journal::outbox::PendingIntent],
    ) -> Result<Option<BTreeMap<Symbol, Decimal>>, String> {
        let open = journal.open_execution().map_err(|e| e.to_string())?;
        let (mut positions, mut ids) = match &open {
            Some(open) => (
                open.positions_before.clone(),
                self.resolver
                    .intents_of(open.correlation)
                    .map_err(|e| e.to_string())?,
            ),
            None => match self.expected.clone() {
                Some(p) => (p, Vec::new()),
                // Nothing journaled: the venue is the baseline.
                None => return Ok(None),
            },
        };
        // An intent is written before its order goes out, but its execution's start may
        // not have reached the journal before the engine stopped: those orders' fills
        // are in no journaled position yet.
        for pending in unanswered {
            let c = pending.correlation_id;
            if open.as_ref().is_some_and(|o| o.correlation == c) {
                continue;
            }
            let started = journal
                .correlation(&c)
                .map_err(|e| e.to_string())?
                .iter()
                .any(|e| e.envelope.kind() == crate::events::EventKind::ExecutionStarted);
            if !started {
                ids.push(pending.intent.client_order_id.clone());
            }
        }
        for id in ids {
            if let Some(mut order) = venue
                .order_by_client_id(&id)
                .await
                .map_err(|e| e.to_string())?
            {
                // Still filling (a worker's order goes on while its engine restarts): the
                // fills are counted once it is done, not as they stand now, or the check
                // below would take the fills that came meanwhile for drift.
                if order.status.is_open() {
                    order = venue.settle(order).await.map_err(|e| e.to_string())?;
                }
                crate::domain::apply_fills(
                    &mut positions,
                    [(&order.symbol, order.side, order.filled_qty)],
                );
            }
        }
        Ok(Some(positions))
    }

    /// Serves `/metrics` and `/healthz`, or says why it cannot: an engine its alerts
    /// cannot see must not trade.
    async fn serve_metrics(&self, broker: &Addr<Broker>) -> Result<(), String> {
        let listen = self.metrics.listen.parse().map_err(|_| {
            format!(
                "metrics.listen = {:?} is not an address (HOST:PORT)",
                self.metrics.listen
            )
        })?;
        let bound = observe::serve(
            listen,
            broker.clone(),
            self.metered.clone(),
            self.remote.clone(),
        )
        .await
        .map_err(|e| {
            format!("cannot serve metrics and health on {listen} (metrics.listen): {e}; another engine may be using it — choose another address, or set metrics.enabled = false")
        })?;
        tracing::info!(%bound, "metrics on http://{bound}/metrics, health on /healthz");
        Ok(())
    }

    /// Workflows left unfinished by the last run are settled before anything new
    /// starts: resumed ones run on; failed ones (`recovery.resume = "fail"`) go to
    /// recovery.
    async fn settle_resumed(&self, engine: &Engine) {
        let broker = engine.broker();
        let Ok(stats) = broker.send(QueryStats).await else {
            return;
        };
        let open = stats
            .workflows
            .iter()
            .filter(|w| w.status != crate::workflow::WorkflowStatus::Completed);
        for w in open {
            let id = w.correlation_id;
            tracing::info!(correlation_id = %id, stage = %w.stage, "waiting for a resumed workflow");
            let outcome = await_outcome(broker, id, engine.patience()).await;
            match outcome.ok().and_then(|a| a.last().cloned()) {
                Some(done) => {
                    tracing::info!(correlation_id = %id, status = %done.status, "resumed workflow ended")
                }
                None => tracing::warn!(correlation_id = %id, "resumed workflow did not report"),
            }
        }
    }
}

/// Intents the last run recorded but never saw answered (it stopped in between): adopted
/// when the venue has the order, submitted with the same client order id when it does not.
async fn resolve_pending_intents(outbox: &Outbox, venue: &dyn Venue) -> Result<(), String> {
    for pending in outbox.pending().map_err(|e| e.to_string())? {
        let id = pending.intent.client_order_id.clone();
        let outcome = match venue
            .order_by_client_id(&id)
            .await
            .map_err(|e| e.to_string())?
        {
            Some(order) => {
                tracing::warn!(client_order_id = %id, status = order.status.as_str(), "adopted an order the last run sent");
                format!("adopted: {}", order.status.as_str())
            }
            None => {
                let order = venue
                    .submit(&pending.intent)
                    .await
                    .map_err(|e| e.to_string())?;
                tracing::warn!(client_order_id = %id, status = order.status.as_str(), "submitted an order the last run intended");
                format!("submitted at start: {}", order.status.as_str())
            }
        };
        outbox.resolve(&id, &outcome).map_err(|e| e.to_string())?;
    }
    Ok(())
}
