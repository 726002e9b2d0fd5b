//! The engine as every driver starts it: `run`, `backtest`, `replay_day`, the drills and
//! the tests build an [`Engine`] the same way ([`Engine::builder`]: the dependencies, a
//! journal or none, the registry of business actors) and drive it through the same few
//! calls — the start-up check, a day's workflow, resuming what the journal left open.
//! The dependencies every actor may use are in `deps`.

use std::collections::BTreeMap;
use std::time::Duration;

use actix::{Addr, MailboxError};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use thiserror::Error;

use super::broker::{Broker, BrokerSettings, ResumeUnfinished, RunWorkflow, StartWorkflow};
mod follow;

pub use super::deps::EngineDeps;
use super::supervision::Registry;
use super::{execution, notify, portfolio, reconciliation, recovery, strategy};
use crate::causation::WorkflowSummary;
use crate::config::BusTransport;
use crate::domain::{RunMode, Symbol, Trigger};
use crate::engine_core::PublishError;
use crate::events::{CorrelationId, ReconciliationCompleted, WorkflowStarted};
use crate::journal::Journal;
pub use follow::{await_outcome, follow_retries, reconcile_now};

/// The standard registry: the five business actors (but those `bus.remote_roles`
/// gives to worker processes), and the notifier when channels are configured.
pub fn standard_registry(deps: EngineDeps) -> Registry {
    let remote: Vec<String> = match deps.config.bus.transport {
        BusTransport::Nats => deps.config.bus.remote_roles.clone(),
        BusTransport::InProcess => Vec::new(),
    };
    let mut registry = business_registry(deps);
    registry
        .subscriptions
        .retain(|s| !remote.iter().any(|r| r == s.name));
    registry
}

/// Every business actor, wherever the configuration runs it (a worker picks its roles
/// from here).
pub fn business_registry(deps: EngineDeps) -> Registry {
    let notifying = deps.notifier.is_some();
    let mut registry = Registry::new(deps);
    strategy::register(&mut registry);
    portfolio::register(&mut registry);
    execution::register(&mut registry);
    reconciliation::register(&mut registry);
    recovery::register(&mut registry);
    if notifying {
        notify::register(&mut registry);
    }
    registry
}

/// How an [`Engine`] is put together before it starts.
pub struct EngineBuilder {
    registry: Registry,
    journal: Option<Journal>,
    hold_unfinished: bool,
    patience: Option<Duration>,
}

impl EngineBuilder {
    /// Every event is journaled before it is dispatched, and sequence numbers continue
    /// the journal's (an in-memory journal for a backtest, a file for `run`).
    pub fn journal(mut self, journal: Option<Journal>) -> Self {
        self.journal = journal;
        self
    }

    /// Changes the registry before the actors start (the drills wrap faults around
    /// them; tests add listeners).
    pub fn registry(mut self, edit: impl FnOnce(&mut Registry)) -> Self {
        edit(&mut self.registry);
        self
    }

    /// Workflows the journal shows unfinished wait for [`Engine::resume_unfinished`]
    /// (after the start-up check: an execution resumed during it would place orders the
    /// check would take for drift).
    pub fn hold_unfinished(mut self) -> Self {
        self.hold_unfinished = true;
        self
    }

    /// How long a failed workflow waits for recovery's decision (default: recovery's
    /// longest backoff plus a handling's time limit).
    pub fn patience(mut self, patience: Duration) -> Self {
        self.patience = Some(patience);
        self
    }

    /// Starts the broker and its actors on the current actix system.
    pub fn start(self) -> Engine {
        let deps = self.registry.deps().clone();
        let settings = BrokerSettings {
            hold_unfinished: self.hold_unfinished,
            ..BrokerSettings::from_config(&deps.config)
        };
        // How long a workflow's failure may wait for recovery's decision: its backoff
        // and the venue calls of a handling.
        let patience = self.patience.unwrap_or(
            Duration::from_millis(deps.config.recovery.backoff_cap_ms)
                + Duration::from_secs(deps.config.engine.handler_timeout_secs),
        );
        let broker = Broker::start_journaled(self.registry, settings, self.journal);
        Engine {
            broker,
            deps,
            patience,
        }
    }
}

/// One day's workflow, as a driver asks for it.
#[derive(Clone, Debug)]
pub struct Day {
    pub as_of: NaiveDate,
    pub mode: RunMode,
    pub trigger: Trigger,
    /// A chosen workflow id (a backtest derives one per day); a fresh one if `None`.
    pub correlation_id: Option<CorrelationId>,
    /// Follow a failed workflow through recovery's retries (a backtest does not: it has
    /// none, and records the failed day).
    pub follow_retries: bool,
}

impl Day {
    pub fn new(as_of: NaiveDate, mode: RunMode, trigger: Trigger) -> Self {
        Self {
            as_of,
            mode,
            trigger,
            correlation_id: None,
            follow_retries: true,
        }
    }
}

/// Why a day's workflow has no outcome.
#[derive(Debug, Error)]
pub enum DayError {
    #[error("broker unavailable: {0}")]
    Unavailable(#[from] MailboxError),
    #[error("workflow not started: {0}")]
    NotStarted(#[from] PublishError),
    #[error("workflow {0} unknown to the broker")]
    Unknown(CorrelationId),
}

/// A started engine: the broker and its actors.
#[derive(Clone)]
pub struct Engine {
    broker: Addr<Broker>,
    deps: EngineDeps,
    patience: Duration,
}

impl Engine {
    /// An engine of the standard registry ([`standard_registry`]).
    pub fn builder(deps: EngineDeps) -> EngineBuilder {
        Self::with_registry(standard_registry(deps))
    }

    /// An engine of another registry (tests of one actor, benchmarks).
    pub fn with_registry(registry: Registry) -> EngineBuilder {
        EngineBuilder {
            registry,
            journal: None,
            hold_unfinished: false,
            patience: None,
        }
    }

    pub fn broker(&self) -> &Addr<Broker> {
        &self.broker
    }

    pub fn deps(&self) -> &EngineDeps {
        &self.deps
    }

    /// How long a failed workflow waits for recovery's decision.
    pub fn patience(&self) -> Duration {
        self.patience
    }

    /// Compares the venue with what the journal says the account holds (`None`: the
    /// venue is the baseline) before anything trades: never trade blind.
    pub async fn start_up_check(
        &self,
        expected: Option<BTreeMap<Symbol, Decimal>>,
        as_of: NaiveDate,
    ) -> Result<ReconciliationCompleted, String> {
        let clock = &*self.deps.clock;
        let check = reconcile_now(
            &self.broker,
            clock,
            "startup",
            expected,
            as_of,
            self.patience,
        );
        check.await.map(|(_, report)| report)
    }

    /// Hands on the workflows held at start (or fails them, per `recovery.resume`);
    /// how many there were.
    pub async fn resume_unfinished(&self) -> Result<usize, MailboxError> {
        self.broker.send(ResumeUnfinished).await
    }

    /// Runs one day's workflow to its end; every attempt's summary, the last deciding.
    pub async fn run_day(&self, day: Day) -> Result<Vec<WorkflowSummary>, DayError> {
        let started = WorkflowStarted {
            as_of: day.as_of,
            mode: day.mode,
            trigger: day.trigger,
            attempt: 0,
        };
        let start = StartWorkflow {
            started,
            triggered_by: None,
            correlation_id: day.correlation_id,
        };
        let (correlation, summary) = self.broker.send(RunWorkflow(start)).await??;
        let first = summary.ok_or(DayError::Unknown(correlation))?;
        if !day.follow_retries {
            return Ok(vec![first]);
        }
        Ok(follow_retries(&self.broker, first, self.patience).await?)
    }
}
