//! What actors are built from: the engine's shared dependencies. The lowest layer of
//! `actors/`: it imports only the core.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Config;
use crate::halt::TradingGate;
use crate::intents::IntentRecorder;
use crate::journal::outbox::{Outbox, SharedOutbox};
use crate::market::SharedMarket;
use crate::notify::delivery::Notifier;
use crate::risk::DeployedLedger;
use crate::strategy::book::StrategyBook;
use crate::strategy::prefetch::SignalPrefetch;
use crate::venue::Venue;
use crate::workflow_roots::WorkflowRoots;

/// What actors are built from. Cloned into every factory and shared; the gate (a halt),
/// the workflow roots and the daily purchases are written as the engine runs.
#[derive(Clone)]
pub struct EngineDeps {
    pub config: Arc<Config>,
    pub clock: Arc<dyn Clock>,
    pub venue: Arc<dyn Venue>,
    pub strategies: Arc<StrategyBook>,
    /// Live market data, refreshed by the engine process; `None`: the book's own data.
    pub market: Option<SharedMarket>,
    /// Backtests: the book's signals, evaluated ahead on a thread of their own.
    pub prefetched: Option<Arc<SignalPrefetch>>,
    /// Where execution records each order intent before calling the venue.
    pub outbox: Option<SharedOutbox>,
    /// In a worker: execution records intents in the engine's outbox over the bus.
    pub remote_intents: Option<Arc<dyn IntentRecorder>>,
    pub gate: TradingGate,
    /// Roots of open workflows, written by the broker.
    pub roots: WorkflowRoots,
    /// Money bought per day, shared by execution's incarnations (a restart must not
    /// reset the daily circuit breaker).
    pub deployed: DeployedLedger,
    /// Where notifications go (`run` with channels configured); none: no notifier.
    pub notifier: Option<Arc<Notifier>>,
}

impl EngineDeps {
    pub fn new(
        config: Config,
        clock: Arc<dyn Clock>,
        venue: Arc<dyn Venue>,
        strategies: Arc<StrategyBook>,
    ) -> Self {
        // Closed workflows are remembered ten times as long as their chains (10,000 by
        // default), so that a plan redelivered late still finds its workflow closed.
        let closed_kept = config.engine.retain_finished_workflows.saturating_mul(10);
        Self {
            config: Arc::new(config),
            clock,
            venue,
            strategies,
            market: None,
            prefetched: None,
            outbox: None,
            remote_intents: None,
            gate: TradingGate::default(),
            roots: WorkflowRoots::remembering(closed_kept),
            deployed: DeployedLedger::default(),
            notifier: None,
        }
    }

    /// Execution records intents and outcomes in `outbox`.
    pub fn with_outbox(mut self, outbox: Outbox) -> Self {
        self.outbox = Some(SharedOutbox::new(outbox));
        self
    }

    /// Where execution records its intents: the local outbox, else the engine's over the
    /// bus (a worker), else nowhere (nothing journaled).
    pub fn intents(&self) -> Option<Arc<dyn IntentRecorder>> {
        match &self.outbox {
            Some(outbox) => Some(Arc::new(outbox.clone())),
            None => self.remote_intents.clone(),
        }
    }

    /// The strategy actor takes the book's evaluations from `prefetched` when they are
    /// ready (backtests, where every date is known in advance).
    pub fn with_prefetch(mut self, prefetched: Option<Arc<SignalPrefetch>>) -> Self {
        self.prefetched = prefetched;
        self
    }

    /// A notifications actor sends through `notifier` (none: it is not registered).
    pub fn with_notifier(mut self, notifier: Option<Arc<Notifier>>) -> Self {
        self.notifier = notifier;
        self
    }

    /// Strategies evaluate on `market` (refreshed elsewhere) instead of the book's data.
    pub fn with_market(mut self, market: SharedMarket) -> Self {
        self.market = Some(market);
        self
    }
}
