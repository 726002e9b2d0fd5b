//! The central broker: every event passes through here. A shell around the
//! [`EngineCore`], which decides (lineage, sequence numbers, workflow lifecycles,
//! marks, halts, dead letters): the shell turns messages into the core's inputs and
//! carries out its effects. What it owns is runtime: the running subscribers and their
//! unacknowledged deliveries (a crashed actor loses nothing: its fresh incarnation gets
//! them again), the group commit (events are dispatched only once journaled), and those
//! waiting for answers, taps and observers.

mod audit;
mod handlers;
mod messages;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use super::deps::EngineDeps;
pub use super::supervision::PublishAll;
use super::supervision::{BrokerLink, Registry, Subscriber};
use crate::causation::WorkflowSummary;
use crate::engine_core::{
    ActorFailure, Answer, Consumer, CoreSettings, DeadDelivery, Effect, EngineCore, Input,
};
pub use crate::engine_core::{ActorStats, BrokerStats, DeadLetter, FollowUp, PublishError, BROKER};
use crate::events::{CorrelationId, Envelope};
use crate::journal::group_commit::{Flushed, GroupCommit};
use crate::journal::Journal;
use crate::metrics::metrics;
use crate::supervision::RestartPolicy;
pub use messages::*;

/// Most events in one group commit; a longer broker turn commits in slices.
const MAX_BATCH: usize = 2048;

#[derive(Clone, Debug)]
pub struct BrokerSettings {
    pub policy: RestartPolicy,
    pub workflow_timeout: Duration,
    /// An asynchronous handling running longer than this is aborted and counts as a
    /// failure of its actor (restart, redelivery, then dead letter).
    pub handler_timeout: Duration,
    pub timeout_check: Duration,
    pub retain_finished_workflows: usize,
    /// Workflows the journal shows unfinished wait for [`ResumeUnfinished`] instead of
    /// resuming at start (`run` checks the venue against the journal first: a resumed
    /// execution placing orders during that check would look like drift).
    pub hold_unfinished: bool,
}

impl BrokerSettings {
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            policy: config.supervision.policy(),
            workflow_timeout: config.workflow_timeout(),
            handler_timeout: Duration::from_secs(config.engine.handler_timeout_secs),
            timeout_check: Duration::from_millis(config.engine.timeout_check_ms),
            retain_finished_workflows: config.engine.retain_finished_workflows,
            hold_unfinished: false,
        }
    }
}

pub struct Broker {
    core: EngineCore,
    /// The core's effects, reused from input to input.
    effects: Vec<Effect>,
    slots: Vec<Subscriber>,
    settings: BrokerSettings,
    deps: EngineDeps,
    /// Journals what the core accepted; hands it back for dispatch once on record.
    commit: GroupCommit,
    delivered: u64,
    redelivered: u64,
    waiters: HashMap<CorrelationId, Vec<oneshot::Sender<WorkflowSummary>>>,
    observers: Vec<Recipient<Observed>>,
    taps: Vec<EventTap>,
    /// Remote publishers waiting for a seq to be dispatched.
    dispatch_waiters: Vec<(u64, oneshot::Sender<()>)>,
}

impl Broker {
    /// Starts the broker on the current arbiter and one actor per registered subscription.
    pub fn start(registry: Registry, settings: BrokerSettings) -> Addr<Broker> {
        Self::start_journaled(registry, settings, None)
    }

    /// [`Broker::start`] with a durable journal: every event is appended (one transaction
    /// per broker turn) before it is dispatched, and sequence numbers continue the
    /// journal's.
    pub fn start_journaled(
        registry: Registry,
        settings: BrokerSettings,
        journal: Option<Journal>,
    ) -> Addr<Broker> {
        let deps = registry.deps().clone();
        Broker::create(move |ctx| {
            let commit = GroupCommit::new(journal);
            let core_settings = CoreSettings {
                policy: settings.policy.clone(),
                workflow_timeout: settings.workflow_timeout,
                retain_finished_workflows: settings.retain_finished_workflows,
                resume: deps.config.recovery.resume,
                hold_unfinished: settings.hold_unfinished,
                journaled: commit.is_journaled(),
                durable: commit.is_durable(),
            };
            let mut consumers = Vec::new();
            let mut slots = Vec::new();
            for sub in registry.subscriptions {
                consumers.push(Consumer {
                    name: sub.name,
                    consumes: sub.consumes,
                });
                slots.push(Subscriber::new(sub.name, sub.factory));
            }
            let last_seq = commit.journal().map_or(0, Journal::last_seq);
            let core = EngineCore::new(core_settings, consumers, deps.clock.clone(), last_seq);
            let mut broker = Broker {
                core,
                effects: Vec::new(),
                slots,
                settings,
                deps,
                commit,
                delivered: 0,
                redelivered: 0,
                waiters: HashMap::new(),
                observers: Vec::new(),
                taps: Vec::new(),
                dispatch_waiters: Vec::new(),
            };
            metrics().known_actors(broker.core.consumer_names());
            for i in 0..broker.slots.len() {
                broker.spawn_slot(i, ctx);
            }
            if let Some(restore) = broker.journal_at_start() {
                broker.process(restore, ctx);
            }
            // A file journal gets its own writer thread (commits overlap the broker's work);
            // an in-memory one (backtests) stays inline, where a commit costs no thread hop.
            if let Err(e) = broker.commit.start_writer() {
                tracing::error!(error = %e, "cannot start the journal writer: halting");
                crate::metrics::move_gate(&broker.deps.gate, true);
            }
            broker
        })
    }

    /// What the journal holds for the core at start: a halt in force, unfinished
    /// workflows and their consumer marks (a part that cannot be read is logged and
    /// left out).
    fn journal_at_start(&self) -> Option<Input> {
        let journal = self.commit.journal()?;
        let halt = journal.halt_in_force().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the halt state from the journal");
            None
        });
        let open = journal.open_workflows().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read unfinished workflows from the journal");
            Vec::new()
        });
        let open = open
            .into_iter()
            .map(|w| w.into_iter().map(|e| (e.seq, e.envelope)).collect())
            .collect();
        let marks = journal.open_marks().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read consumer marks from the journal");
            Vec::new()
        });
        Some(Input::Restore { halt, open, marks })
    }

    /// Hands `input` to the core and carries out its effects; without a journal, what
    /// the core accepted is dispatched at once.
    fn process(&mut self, input: Input, ctx: &mut Context<Self>) -> Answer {
        let mut effects = std::mem::take(&mut self.effects);
        let answer = self.core.process(input, &Instant::now, &mut effects);
        for effect in effects.drain(..) {
            self.perform(effect, ctx);
        }
        self.effects = effects;
        if !self.commit.is_journaled() {
            let batch = self.commit.take_unjournaled();
            if !batch.is_empty() {
                self.process(Input::Committed(batch), ctx);
            }
        } else if self.commit.pending() >= MAX_BATCH && self.commit.is_threaded() {
            // A long turn commits in slices: the writer works on one while more arrive.
            self.flush_journal(ctx);
        }
        answer
    }

    fn perform(&mut self, effect: Effect, ctx: &mut Context<Self>) {
        match effect {
            Effect::Journal(accepted) => {
                if self.commit.is_journaled() && self.commit.is_idle() {
                    // Behind every message already queued: the whole turn commits together.
                    ctx.notify(FlushJournal);
                }
                self.commit.push(accepted);
            }
            Effect::Mark(mark) => {
                if self.commit.is_idle() {
                    ctx.notify(FlushJournal);
                }
                self.commit.mark(mark);
            }
            Effect::Deliver {
                slot,
                seq,
                env,
                mark,
            } => {
                if self.slots[slot].deliver(seq, env, mark) {
                    self.delivered += 1;
                    metrics().delivered.inc();
                }
            }
            Effect::Dispatched { seq, env } => self.dispatched(seq, &env),
            Effect::WorkflowClosed(correlation) => {
                if let Some(waiters) = self.waiters.remove(&correlation) {
                    if let Some(summary) = self.core.workflow(&correlation, Instant::now()) {
                        for w in waiters {
                            let _ = w.send(summary.clone());
                        }
                    }
                }
            }
            Effect::Restart { slot, delay } => {
                ctx.run_later(delay, move |act, ctx| act.spawn_slot(slot, ctx));
            }
            Effect::Gate { halted } => crate::metrics::move_gate(&self.deps.gate, halted),
            Effect::RootOpened {
                correlation,
                started,
            } => self.deps.roots.insert(correlation, started),
            Effect::RootClosed {
                correlation,
                completed,
            } => {
                self.deps.roots.close(correlation);
                if completed {
                    self.deps.roots.remove(&correlation);
                }
            }
            Effect::RootForgotten(correlation) => {
                self.deps.roots.remove(&correlation);
            }
            Effect::Audit(audit) => audit::count(&audit),
        }
    }

    /// Taps, observers and remote publishers waiting hear of a dispatched event.
    fn dispatched(&mut self, seq: u64, env: &Arc<Envelope>) {
        for tap in &mut self.taps {
            tap(seq, env);
        }
        // An observer whose actor stopped (a one-shot listener) is dropped, not fed forever.
        self.observers.retain(|obs| {
            let observed = Observed {
                seq,
                env: env.clone(),
            };
            match obs.try_send(observed) {
                Err(SendError::Closed(_)) => false,
                Err(SendError::Full(observed)) => {
                    obs.do_send(observed);
                    true
                }
                Ok(()) => true,
            }
        });
        if !self.dispatch_waiters.is_empty() {
            let (done, waiting) = std::mem::take(&mut self.dispatch_waiters)
                .into_iter()
                .partition(|(s, _)| *s <= seq);
            self.dispatch_waiters = waiting;
            for (_, w) in done {
                let _ = w.send(());
            }
        }
    }

    /// Builds a fresh incarnation of a subscriber and hands it every unacknowledged
    /// delivery, in order.
    fn spawn_slot(&mut self, i: usize, ctx: &mut Context<Self>) {
        let me = ctx.address();
        let link = BrokerLink {
            publish: me.clone().recipient(),
            consumed: me.clone().recipient(),
            failed: me.recipient(),
        };
        let mark = self.commit.is_durable();
        match self.slots[i].start(link, i, self.deps.clone(), mark) {
            Ok(sent) => {
                self.delivered += sent.first;
                self.redelivered += sent.again;
                metrics().delivered.inc_by(sent.first + sent.again);
            }
            Err(error) => {
                let incarnation = self.slots[i].incarnation();
                self.on_failure(i, incarnation, None, error, ctx);
            }
        }
    }

    /// The group commit: everything accepted this turn is journaled as one transaction
    /// and dispatched once it is on record.
    fn flush_journal(&mut self, ctx: &mut Context<Self>) {
        let me = ctx.address();
        let flushed = self
            .commit
            .flush(move |result| me.do_send(Committed(result)));
        self.on_flushed(flushed, ctx);
    }

    fn on_flushed(&mut self, flushed: Flushed, ctx: &mut Context<Self>) {
        match flushed {
            Flushed::Nothing => {}
            Flushed::Committed(batch) => {
                for (_, env, _) in &batch {
                    crate::fault::crash_point(env.event_type());
                }
                self.process(Input::Committed(batch), ctx);
            }
            // The engine must not act on events it could not record.
            Flushed::Failed { error, events } => {
                self.process(Input::JournalFailed { error, events }, ctx);
            }
        }
    }

    /// Incarnation `incarnation` of slot `i` failed: the slot counts it (a report from
    /// an incarnation already replaced is ignored), the core decides what follows.
    fn on_failure(
        &mut self,
        i: usize,
        incarnation: u32,
        seq: Option<u64>,
        error: String,
        ctx: &mut Context<Self>,
    ) {
        let now = Instant::now();
        let Some(failure) = self.slots[i].fail(incarnation, seq, &self.settings.policy, now) else {
            return;
        };
        let dead = failure.dead.map(|d| DeadDelivery {
            seq: d.seq,
            env: d.env,
            failures: d.failures,
        });
        let failed = ActorFailure {
            slot: i,
            error,
            failed_on: failure.failed_on,
            dead,
            decision: failure.decision,
        };
        self.process(Input::ActorFailed(failed), ctx);
    }

    fn check_timeouts(&mut self, ctx: &mut Context<Self>) {
        for slot in &self.slots {
            if let Some(seq) = slot
                .progress
                .abort_if_older_than(self.settings.handler_timeout)
            {
                tracing::error!(actor = slot.name, seq, "handler hung; aborted");
            }
        }
        self.process(Input::Tick, ctx);
    }

    fn stats(&mut self) -> BrokerStats {
        let mut stats = self.core.stats(Instant::now());
        stats.delivered = self.delivered;
        stats.redelivered = self.redelivered;
        stats.journal_failure = self.commit.failure().map(str::to_string);
        stats.actors = self.slots.iter_mut().map(Subscriber::stats).collect();
        stats
    }
}

impl Actor for Broker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.settings.timeout_check, |act, ctx| {
            act.check_timeouts(ctx)
        });
    }
}
