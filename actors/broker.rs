//! The central broker: every event passes through here.
//!
//! Per event, in one turn: validate its lineage against the [`CausationLog`] (refusals
//! become `broker.event.rejected.v1` and a counter, never a panic), give it the next
//! global sequence number, count it, and fan it out (behind an `Arc`) to each
//! subscriber registered for its type. Each subscriber's unacknowledged deliveries stay
//! queued here, so a crashed actor loses nothing: its fresh incarnation gets them again.
//!
//! The broker also owns workflow lifecycles: it completes a workflow once
//! reconciliation reports, fails it on timeout or on a dead-lettered event, and halts
//! trading when an actor exceeds its restart policy.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde::Serialize;
use thiserror::Error;
use tokio::sync::oneshot;

use super::deps::EngineDeps;
pub use super::supervision::PublishAll;
use super::supervision::{ActorFailed, BrokerLink, Consumed, Failure, Registry, Subscriber};
use crate::bus::remote::{DeadLetterReport, Verdict};
use crate::causation::{CausationLog, CausationTree, Recorded, Refusal, WorkflowSummary};
use crate::config::ResumeMode;
use crate::events::{
    ActorRestarted, CorrelationId, Envelope, EventId, EventKind, EventRejected, FailureReason,
    HaltReason, Payload, TradingHalted, TradingResumed, TriggeredBy, WorkflowCompleted,
    WorkflowFailed, WorkflowStarted,
};
use crate::journal::group_commit::{Flushed, GroupCommit};
use crate::journal::{ConsumerMark, Journal};
use crate::metrics::metrics;
use crate::supervision::{RestartDecision, RestartPolicy};
use crate::workflow::WorkflowStage;
use crate::workflow::WorkflowStatus;
use crate::workflow_lifecycle::{consequences, refuse_start, Consequence};

/// Most events in one group commit; a longer broker turn commits in slices.
const MAX_BATCH: usize = 2048;

/// The broker's own name as an event source.
pub const BROKER: &str = "broker";

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

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum PublishError {
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    #[error("trading is halted: {0}")]
    Halted(String),
    /// The same event again (a handling repeated after a crash or a timeout): dropped,
    /// as a message bus drops a resend with a known message id.
    #[error("event {0} was accepted already")]
    AlreadyAccepted(EventId),
}

/// Publish one event. Answered with its sequence number, or why it was refused.
///
/// The envelope travels behind an `Arc` from the publisher on: it is immutable once
/// published, and fan-out to subscribers then copies a pointer, not the event.
#[derive(Message)]
#[rtype(result = "Result<u64, PublishError>")]
pub struct Publish(pub Arc<Envelope>);

impl From<Envelope> for Publish {
    fn from(env: Envelope) -> Self {
        Publish(Arc::new(env))
    }
}

/// Start a workflow (refused while trading is halted).
#[derive(Message)]
#[rtype(result = "Result<CorrelationId, PublishError>")]
pub struct StartWorkflow {
    pub started: WorkflowStarted,
    pub triggered_by: Option<TriggeredBy>,
    /// A chosen id (backtests derive one per day); a fresh random one if `None`.
    pub correlation_id: Option<CorrelationId>,
}

#[derive(Message)]
#[rtype(result = "bool")]
pub struct Resume {
    pub detail: String,
}

/// What became of a failed workflow: retried as another workflow, or final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, MessageResponse)]
pub enum FollowUp {
    /// A workflow triggered by this one (a recovery retry, a corrective rebalance).
    Successor(CorrelationId),
    /// Recovery gave up (or nothing recovers failures): nothing follows.
    Final,
    /// Recovery has not decided yet.
    Pending,
}

#[derive(Message)]
#[rtype(result = "FollowUp")]
pub struct QueryFollowUp(pub CorrelationId);

/// Halt trading by hand.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Halt {
    pub reason: HaltReason,
    pub detail: String,
}

/// Resolves once the workflow is terminal (at once if it already is); `None` if the
/// broker does not know it.
#[derive(Message)]
#[rtype(result = "Option<WorkflowSummary>")]
pub struct AwaitWorkflow(pub CorrelationId);

/// [`StartWorkflow`], then [`AwaitWorkflow`] on it, in one message: a backtest runs its
/// days one after another, and the second round trip per day showed in its profile.
#[derive(Message)]
#[rtype(result = "Result<(CorrelationId, Option<WorkflowSummary>), PublishError>")]
pub struct RunWorkflow(pub StartWorkflow);

#[derive(Message)]
#[rtype(result = "Option<CausationTree>")]
pub struct QueryTree(pub CorrelationId);

#[derive(Message)]
#[rtype(result = "Option<WorkflowSummary>")]
pub struct QueryWorkflow(pub CorrelationId);

#[derive(Message)]
#[rtype(result = "BrokerStats")]
pub struct QueryStats;

/// Every accepted event, for observers (tests, the CLI's progress output).
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Observed {
    pub seq: u64,
    pub env: Arc<Envelope>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Observe(pub Recipient<Observed>);

/// A function the broker calls with every accepted event, in sequence order, as it
/// dispatches it: an audit sink without a message per event (the backtest's recorder
/// sees every event of a run). It runs on the broker's turn, so it must be quick and
/// never block.
pub type EventTap = Box<dyn FnMut(u64, &Arc<Envelope>) + Send>;

#[derive(Message)]
#[rtype(result = "()")]
pub struct Tap(pub EventTap);

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

pub struct Broker {
    seq: u64,
    log: CausationLog,
    routes: Vec<Vec<usize>>,
    slots: Vec<Subscriber>,
    published: [u64; EventKind::COUNT],
    delivered: u64,
    redelivered: u64,
    rejected: u64,
    restarts: u64,
    dead_letters: Vec<DeadLetter>,
    halted: Option<TradingHalted>,
    settings: BrokerSettings,
    deps: EngineDeps,
    waiters: HashMap<CorrelationId, Vec<oneshot::Sender<WorkflowSummary>>>,
    observers: Vec<Recipient<Observed>>,
    taps: Vec<EventTap>,
    /// The journal (read at start for unfinished workflows) and the group commit:
    /// with a journal, events are dispatched only once committed.
    commit: GroupCommit,
    publish_depth: u32,
    /// Whether each accepted event is logged at debug level, read once at start: the
    /// per-event level check showed at 3–4% of a backtest's main thread in perf, and
    /// skipping it made the LEAN backtest ~4% faster (A/B, same sitting).
    log_events: bool,
    /// Consumer marks of open workflows: (consumer, event type, payload hash).
    marks: HashMap<CorrelationId, HashSet<(String, EventKind, String)>>,
    skipped_duplicates: u64,
    resends_dropped: u64,
    /// Workflow → the workflow its failure or reconciliation started.
    successors: HashMap<CorrelationId, CorrelationId>,
    /// Failed workflows recovery will not retry.
    final_failures: HashSet<CorrelationId>,
    /// Unfinished workflows held until [`ResumeUnfinished`]: the events to hand again.
    held_unfinished: Vec<Vec<(u64, Arc<Envelope>)>>,
    /// The last seq dispatched (so committed, with a journal).
    dispatched_through: u64,
    /// Remote publishers waiting for a seq to be dispatched.
    dispatch_waiters: Vec<(u64, oneshot::Sender<()>)>,
}

/// Resume (or fail, per `recovery.resume`) the unfinished workflows held at start;
/// answered with how many there were.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct ResumeUnfinished;

/// Commits the events accepted this turn, then dispatches them.
#[derive(Message)]
#[rtype(result = "()")]
struct FlushJournal;

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
        let subscriptions = registry.subscriptions;
        Broker::create(move |ctx| {
            let mut routes = vec![Vec::new(); EventKind::COUNT];
            let mut slots = Vec::with_capacity(subscriptions.len());
            for (i, sub) in subscriptions.into_iter().enumerate() {
                for kind in &sub.consumes {
                    routes[kind.index()].push(i);
                }
                slots.push(Subscriber::new(sub.name, sub.factory));
            }
            let mut broker = Broker {
                seq: journal.as_ref().map_or(0, Journal::last_seq),
                log: CausationLog::new(settings.retain_finished_workflows),
                routes,
                slots,
                published: [0; EventKind::COUNT],
                delivered: 0,
                redelivered: 0,
                rejected: 0,
                restarts: 0,
                dead_letters: Vec::new(),
                halted: None,
                settings,
                deps,
                waiters: HashMap::new(),
                observers: Vec::new(),
                taps: Vec::new(),
                commit: GroupCommit::new(journal),
                publish_depth: 0,
                log_events: tracing::enabled!(tracing::Level::DEBUG),
                marks: HashMap::new(),
                skipped_duplicates: 0,
                resends_dropped: 0,
                successors: HashMap::new(),
                final_failures: HashSet::new(),
                held_unfinished: Vec::new(),
                dispatched_through: 0,
                dispatch_waiters: Vec::new(),
            };
            // A halt survives restarts: only `resume` lifts it.
            match broker.commit.journal().map(Journal::halt_in_force) {
                Some(Ok(Some(h))) => {
                    tracing::warn!(reason = %h.reason, detail = %h.detail, "the journal ends halted: trading stays halted until resumed");
                    broker.halted = Some(h);
                    broker.deps.gate.halt();
                }
                Some(Err(e)) => {
                    tracing::error!(error = %e, "cannot read the halt state from the journal")
                }
                _ => {}
            }
            let names: Vec<&str> = broker.slots.iter().map(|s| s.name).collect();
            metrics().known_actors(&names);
            for i in 0..broker.slots.len() {
                broker.spawn_slot(i, ctx);
            }
            broker.recover_unfinished(ctx);
            // A file journal gets its own writer thread (commits overlap the broker's work);
            // an in-memory one (backtests) stays inline, where a commit costs no thread hop.
            if let Err(e) = broker.commit.start_writer() {
                tracing::error!(error = %e, "cannot start the journal writer: halting");
                broker.deps.gate.halt();
            }
            broker
        })
    }

    /// Workflows the journal shows unfinished (the engine stopped mid-way): their chains
    /// are restored, then each one's latest consumed event is handed to its consumers
    /// again (those whose mark says they handled it skip it), or the workflow is failed,
    /// per `recovery.resume`.
    fn recover_unfinished(&mut self, ctx: &mut Context<Self>) {
        let Some(journal) = self.commit.journal() else {
            return;
        };
        let open = match journal.open_workflows() {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, "cannot read unfinished workflows from the journal");
                return;
            }
        };
        match journal.open_marks() {
            Ok(marks) => {
                for m in marks {
                    if let Some(kind) = EventKind::from_wire(&m.event_type) {
                        self.marks.entry(m.correlation_id).or_default().insert((
                            m.consumer,
                            kind,
                            m.payload_hash,
                        ));
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read consumer marks from the journal"),
        }
        let now = Instant::now();
        let mut unfinished = Vec::new();
        for entries in open {
            let mut restored = true;
            for e in &entries {
                if let Payload::WorkflowStarted(started) = &e.envelope.payload {
                    self.deps
                        .roots
                        .insert(e.envelope.correlation_id, started.clone());
                }
                if let Err(refusal) = self.log.record(&e.envelope, e.seq, || now) {
                    tracing::error!(seq = e.seq, %refusal, "journaled event does not restore");
                    restored = false;
                    break;
                }
            }
            // Each business actor is handed again the latest event of the workflow it
            // consumes (and skips it if its mark says it handled it): execution reports
            // orders as it places them, so a workflow stopped mid-plan ends in events
            // other actors consume, after the plan that execution must finish.
            if !restored {
                continue;
            }
            let mut again = std::collections::BTreeSet::new();
            for slot in 0..self.slots.len() {
                if let Some(e) = entries
                    .iter()
                    .rev()
                    .find(|e| self.routes[e.envelope.kind().index()].contains(&slot))
                {
                    again.insert(e.seq);
                }
            }
            if let Some(last) = entries.last() {
                again.insert(last.seq);
            }
            let handed: Vec<(u64, Arc<Envelope>)> = entries
                .iter()
                .filter(|e| again.contains(&e.seq))
                .map(|e| (e.seq, Arc::new(e.envelope.clone())))
                .collect();
            unfinished.push(handed);
        }
        if self.settings.hold_unfinished {
            self.held_unfinished = unfinished;
        } else {
            self.resume_unfinished(unfinished, ctx);
        }
    }

    /// Hands the events of each unfinished workflow to their consumers again, or fails
    /// the workflow, per `recovery.resume`.
    fn resume_unfinished(
        &mut self,
        unfinished: Vec<Vec<(u64, Arc<Envelope>)>>,
        ctx: &mut Context<Self>,
    ) {
        for handed in unfinished {
            let Some((seq, env)) = handed.last().cloned() else {
                continue;
            };
            let correlation = env.correlation_id;
            match self.deps.config.recovery.resume {
                ResumeMode::Resume => {
                    tracing::warn!(%correlation, seq, event_type = env.event_type(), "resuming an unfinished workflow");
                    for (seq, env) in handed {
                        let recorded = Recorded {
                            stage: self.log.stage(&correlation),
                            closed_workflow: false,
                        };
                        self.dispatch(seq, env, recorded);
                    }
                }
                ResumeMode::Fail => {
                    tracing::warn!(%correlation, seq, "failing an unfinished workflow");
                    let detail =
                        format!("the engine stopped after {} (seq {seq})", env.event_type());
                    self.fail_workflow(
                        correlation,
                        Some(env.event_id),
                        FailureReason::StepFailed,
                        detail,
                        ctx,
                    );
                }
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

    /// Accepts or refuses one event. Accepted events are dispatched in sequence order once
    /// the outermost publish returns (events made while handling one — a completion, a
    /// rejection notice — come after it), or after the group commit with a journal.
    fn publish(
        &mut self,
        env: Arc<Envelope>,
        ctx: &mut Context<Self>,
    ) -> Result<u64, PublishError> {
        self.publish_depth += 1;
        let result = self.accept(env, ctx);
        self.publish_depth -= 1;
        if self.publish_depth == 0 && !self.commit.is_journaled() {
            for (seq, env, recorded) in self.commit.take_unjournaled() {
                self.dispatch(seq, env, recorded);
            }
        }
        result
    }

    fn accept(&mut self, env: Arc<Envelope>, ctx: &mut Context<Self>) -> Result<u64, PublishError> {
        let kind = env.kind();
        if let Some(why) = refuse_start(&env, self.halted.as_ref()) {
            let detail = self
                .halted
                .as_ref()
                .map_or_else(String::new, |h| h.detail.clone());
            self.reject(&env, why, ctx);
            return Err(PublishError::Halted(detail));
        }
        let seq = self.seq + 1;
        let recorded = match self.log.record(&env, seq, Instant::now) {
            Ok(r) => r,
            Err(Refusal::DuplicateEvent(id))
                if self.log.correlation_of(&id) == Some(env.correlation_id) =>
            {
                self.resends_dropped += 1;
                tracing::debug!(event_id = %id, event_type = kind.as_str(), "resent event dropped");
                return Err(PublishError::AlreadyAccepted(id));
            }
            Err(refusal) => {
                self.reject(&env, refusal.to_string(), ctx);
                return Err(PublishError::Refused(refusal));
            }
        };
        self.seq = seq;
        self.published[kind.index()] += 1;
        metrics().published(kind);
        if let Payload::ReconciliationCompleted(r) = &env.payload {
            metrics().reconciled(&r.status.to_string());
        }
        if self.log_events {
            tracing::debug!(
                seq,
                event_id = %env.event_id,
                event_type = kind.as_str(),
                correlation_id = %env.correlation_id,
                causation_id = %env.causation_id.map(|c| c.to_string()).unwrap_or_default(),
                source = %env.source,
                "published"
            );
        }
        for consequence in consequences(&env, recorded.stage) {
            self.apply(consequence, &env, ctx);
        }
        if self.commit.is_journaled() && self.commit.is_idle() {
            // Behind every message already queued: the whole turn commits together.
            ctx.notify(FlushJournal);
        }
        self.commit.push((seq, env, recorded));
        if self.commit.pending() >= MAX_BATCH
            && self.publish_depth == 1
            && self.commit.is_threaded()
        {
            // A long turn commits in slices: the writer works on one while more arrive.
            self.flush_journal(ctx);
        }
        Ok(seq)
    }

    /// Carries out one lifecycle consequence of accepting `env` (the rules are in
    /// `workflow_lifecycle`).
    fn apply(&mut self, consequence: Consequence, env: &Arc<Envelope>, ctx: &mut Context<Self>) {
        let correlation = env.correlation_id;
        match consequence {
            Consequence::Halt { reason, detail } => self.halt(reason, detail, ctx),
            Consequence::Halted(h) => {
                tracing::error!(reason = %h.reason, detail = %h.detail, "trading halted");
                self.halted = Some(h);
                self.deps.gate.halt();
            }
            Consequence::Resumed => {
                tracing::warn!("trading resumed");
                self.halted = None;
                self.deps.gate.resume();
            }
            Consequence::Opened {
                started,
                successor_of,
            } => {
                self.deps.roots.insert(correlation, started);
                if let Some(from) = successor_of {
                    self.successors.insert(from, correlation);
                }
            }
            Consequence::Closed(status) => {
                metrics().workflow_ended(&status.to_string());
                if status == WorkflowStatus::Completed {
                    metrics().workflow_completed_at(env.occurred_at);
                }
                self.deps.roots.close(correlation);
                if status == WorkflowStatus::Completed {
                    self.deps.roots.remove(&correlation);
                }
            }
            Consequence::OrdersSettled(statuses) => {
                for status in &statuses {
                    metrics().order_settled(status);
                }
            }
            Consequence::FinalFailure(failed) => {
                self.final_failures.insert(failed);
            }
            Consequence::Complete => {
                let summary = self.log.workflow(&correlation, Instant::now());
                let completed = WorkflowCompleted {
                    orders_placed: summary.as_ref().map_or(0, |s| s.orders_placed),
                    duration_ms: summary.map_or(0, |s| s.duration_ms),
                };
                let child = Envelope::caused_by(env, completed, BROKER, &*self.deps.clock);
                let _ = self.publish(Arc::new(child), ctx);
            }
        }
    }

    /// Hands an accepted (and, with a journal, committed) event to its subscribers and
    /// observers, and answers those waiting for its workflow to end.
    fn dispatch(&mut self, seq: u64, env: Arc<Envelope>, recorded: Recorded) {
        let kind = env.kind();
        // Marks serve resuming unfinished workflows only: an event outside an open
        // workflow (a standalone chain, a closed workflow) is never replayed, so its
        // consumers need not report back.
        let mark = self.commit.is_durable() && recorded.stage.is_some_and(|s| !s.is_terminal());
        let marked = self
            .marks
            .get(&env.correlation_id)
            .map(|m| (m, env.payload_hash()));
        for k in 0..self.routes[kind.index()].len() {
            let i = self.routes[kind.index()][k];
            let slot = &mut self.slots[i];
            if let Some((m, hash)) = &marked {
                if m.contains(&(slot.name.to_string(), kind, hash.clone())) {
                    tracing::info!(
                        consumer = slot.name,
                        seq,
                        event_type = kind.as_str(),
                        "already handled: skipped"
                    );
                    self.skipped_duplicates += 1;
                    continue;
                }
            }
            if slot.deliver(seq, env.clone(), mark) {
                self.delivered += 1;
                metrics().delivered.inc();
            }
        }
        for tap in &mut self.taps {
            tap(seq, &env);
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
        if recorded.closed_workflow {
            self.marks.remove(&env.correlation_id);
        }
        self.dispatched_through = seq;
        if !self.dispatch_waiters.is_empty() {
            let (done, waiting) = std::mem::take(&mut self.dispatch_waiters)
                .into_iter()
                .partition(|(s, _)| *s <= seq);
            self.dispatch_waiters = waiting;
            for (_, w) in done {
                let _ = w.send(());
            }
        }
        // Waiters hear once the workflow is closed and this event of it is committed: the
        // closing event, or an after-the-fact one (a restart notice) that was still being
        // committed when they asked.
        if recorded.stage.is_some_and(WorkflowStage::is_terminal) {
            if let Some(waiters) = self.waiters.remove(&env.correlation_id) {
                if let Some(summary) = self.log.workflow(&env.correlation_id, Instant::now()) {
                    for w in waiters {
                        let _ = w.send(summary.clone());
                    }
                }
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
        self.on_flushed(flushed);
    }

    fn on_flushed(&mut self, flushed: Flushed) {
        match flushed {
            Flushed::Nothing => {}
            Flushed::Committed(batch) => {
                for (_, env, _) in &batch {
                    crate::drill::crash_point(env.event_type());
                }
                for (seq, env, recorded) in batch {
                    self.dispatch(seq, env, recorded);
                }
            }
            Flushed::Failed { error, events } => self.journal_failed(error, events),
        }
    }

    /// The engine must not act on events it could not record: nothing more is dispatched
    /// and trading halts.
    fn journal_failed(&mut self, error: String, events: usize) {
        tracing::error!(%error, events, "journal write failed: halting, nothing dispatched");
        self.deps.gate.halt();
        if self.halted.is_none() {
            self.halted = Some(TradingHalted {
                reason: HaltReason::Manual,
                detail: format!("journal write failed: {error}"),
            });
        }
    }

    fn reject(&mut self, env: &Envelope, reason: String, ctx: &mut Context<Self>) {
        self.rejected += 1;
        tracing::warn!(event_id = %env.event_id, event_type = env.event_type(), correlation_id = %env.correlation_id, %reason, "event refused");
        let notice = EventRejected {
            event_id: env.event_id,
            event_type: env.event_type().to_string(),
            correlation_id: env.correlation_id,
            causation_id: env.causation_id,
            reason,
        };
        let root = Envelope::root(notice, BROKER, &*self.deps.clock, None);
        // A fresh root with a fresh id is always accepted; a failure here is a broker bug
        // worth a log line, not a reason to recurse.
        if let Err(e) = self.publish(Arc::new(root), ctx) {
            tracing::error!(error = %e, "could not record a rejection notice");
        }
    }

    /// Fails an open workflow with a broker-made `workflow.failed.v1` caused by `cause`
    /// (or by the workflow's latest event).
    fn fail_workflow(
        &mut self,
        correlation: CorrelationId,
        cause: Option<EventId>,
        reason: FailureReason,
        detail: String,
        ctx: &mut Context<Self>,
    ) {
        let open = self
            .log
            .stage(&correlation)
            .is_some_and(|s| !s.is_terminal());
        let cause = cause
            .filter(|c| self.log.contains_event(c))
            .or_else(|| self.log.last_event(&correlation));
        if let (true, Some(cause)) = (open, cause) {
            let failed = WorkflowFailed {
                step: BROKER.to_string(),
                reason,
                detail,
            };
            let env = Envelope::child_of(correlation, cause, failed, BROKER, &*self.deps.clock);
            let _ = self.publish(Arc::new(env), ctx);
        }
    }

    fn halt(&mut self, reason: HaltReason, detail: String, ctx: &mut Context<Self>) {
        if self.halted.is_some() {
            return;
        }
        let env = Envelope::root(
            TradingHalted { reason, detail },
            BROKER,
            &*self.deps.clock,
            None,
        );
        let _ = self.publish(Arc::new(env), ctx);
    }

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
            // A report from an incarnation already replaced.
            return;
        };
        let name = self.slots[i].name;
        self.restarts += 1;
        metrics().restarted(name);
        let Failure {
            failed_on,
            dead,
            decision,
        } = failure;
        // On the record: in the failing event's workflow when it is known.
        let restarted = ActorRestarted {
            actor: name.to_string(),
            error: error.clone(),
            failures: failed_on.as_ref().map_or(1, |(_, n)| *n),
            dead_lettered: dead.is_some(),
        };
        let note = match &failed_on {
            Some((env, _)) => Envelope::caused_by(env, restarted, BROKER, &*self.deps.clock),
            None => Envelope::root(restarted, BROKER, &*self.deps.clock, None),
        };
        let _ = self.publish(Arc::new(note), ctx);
        if let Some(d) = dead {
            tracing::error!(actor = name, seq = d.seq, event_type = d.env.event_type(), %error, "dead-lettered after redelivery");
            metrics().dead_letters.inc();
            self.dead_letters.push(DeadLetter {
                actor: name,
                seq: d.seq,
                event_id: d.env.event_id,
                event_type: d.env.event_type(),
                correlation_id: d.env.correlation_id,
                error: error.clone(),
                attempts: d.failures,
            });
            let detail = format!(
                "{name} failed twice on {} (seq {}): {error}",
                d.env.event_type(),
                d.seq
            );
            if d.env.kind() == EventKind::WorkflowFailed {
                // The safety net itself could not handle a failure: nothing will retry or
                // clean up after that workflow, so trading stops until a person looks.
                let why = format!("a failure could not be handled: {detail}");
                self.final_failures.insert(d.env.correlation_id);
                self.halt(HaltReason::RecoveryExhausted, why, ctx);
            } else {
                self.fail_workflow(
                    d.env.correlation_id,
                    Some(d.env.event_id),
                    FailureReason::DeadLetter,
                    detail,
                    ctx,
                );
            }
        }
        let delay = match decision {
            RestartDecision::Restart { delay, .. } => delay,
            RestartDecision::Escalate { delay, attempt } => {
                let p = &self.settings.policy;
                let detail = format!(
                    "actor {name} failed {attempt} times within {}s (max_restarts {}): {error}",
                    p.within.as_secs(),
                    p.max_restarts
                );
                self.halt(HaltReason::RestartIntensity, detail, ctx);
                delay
            }
        };
        ctx.run_later(delay, move |act, ctx| act.spawn_slot(i, ctx));
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
        let timeout = self.settings.workflow_timeout;
        for correlation in self.log.overdue(Instant::now(), timeout) {
            let stage = self.log.stage(&correlation);
            let detail = format!(
                "workflow exceeded {}s in stage {}",
                timeout.as_secs_f64(),
                stage.unwrap_or(WorkflowStage::Started)
            );
            self.fail_workflow(correlation, None, FailureReason::Timeout, detail, ctx);
        }
    }

    fn stats(&mut self) -> BrokerStats {
        let now = Instant::now();
        let actors = self
            .slots
            .iter_mut()
            .map(|s| {
                let (handled, mean, max) = s.progress.latency();
                ActorStats {
                    name: s.name,
                    restarts: s.restarts(),
                    handled,
                    handler_latency_mean_us: mean,
                    handler_latency_max_us: max,
                    unacknowledged: s.unacknowledged(),
                    running: s.is_running(),
                }
            })
            .collect();
        BrokerStats {
            last_seq: self.seq,
            published: EventKind::ALL
                .iter()
                .filter(|k| self.published[k.index()] > 0)
                .map(|k| (k.as_str(), self.published[k.index()]))
                .collect(),
            delivered: self.delivered,
            redelivered: self.redelivered,
            rejected: self.rejected,
            restarts: self.restarts,
            actors,
            dead_letters: self.dead_letters.clone(),
            halted: self.halted.clone(),
            journal_failure: self.commit.failure().map(str::to_string),
            skipped_duplicates: self.skipped_duplicates,
            resends_dropped: self.resends_dropped,
            chains_in_memory: self.log.chains_in_memory(),
            events_in_memory: self.log.events_in_memory(),
            workflows: self.log.workflows(now),
        }
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

impl Handler<Consumed> for Broker {
    type Result = ();

    fn handle(&mut self, msg: Consumed, ctx: &mut Self::Context) {
        // Marks serve resuming unfinished workflows: events of standalone chains and of
        // finished workflows are never replayed, so they need none.
        let open = self
            .log
            .stage(&msg.env.correlation_id)
            .is_some_and(|s| !s.is_terminal());
        if !self.commit.is_journaled() || !open {
            return;
        }
        let payload_hash = msg.env.payload_hash();
        self.marks
            .entry(msg.env.correlation_id)
            .or_default()
            .insert((
                msg.consumer.to_string(),
                msg.env.kind(),
                payload_hash.clone(),
            ));
        if self.commit.is_idle() {
            ctx.notify(FlushJournal);
        }
        self.commit.mark(ConsumerMark {
            consumer: msg.consumer.to_string(),
            event_type: msg.env.event_type().to_string(),
            correlation_id: msg.env.correlation_id,
            payload_hash,
            seq: self.seq,
        });
    }
}

impl Handler<FlushJournal> for Broker {
    type Result = ();

    fn handle(&mut self, _msg: FlushJournal, ctx: &mut Self::Context) {
        self.flush_journal(ctx);
    }
}

/// The writer's answer for the oldest batch it was handed.
#[derive(Message)]
#[rtype(result = "()")]
struct Committed(Result<(), String>);

impl Handler<Committed> for Broker {
    type Result = ();

    fn handle(&mut self, msg: Committed, _ctx: &mut Self::Context) {
        let flushed = self.commit.committed(msg.0);
        self.on_flushed(flushed);
    }
}

impl Handler<Publish> for Broker {
    type Result = Result<u64, PublishError>;

    fn handle(&mut self, msg: Publish, ctx: &mut Self::Context) -> Self::Result {
        self.publish(msg.0, ctx)
    }
}

impl Handler<PublishAll> for Broker {
    type Result = ();

    fn handle(&mut self, msg: PublishAll, ctx: &mut Self::Context) {
        // A refused event is answered inside `publish` (a rejection notice); the rest of
        // the reaction still goes on, as it did one message per event.
        for env in msg.0 {
            let _ = self.publish(env, ctx);
        }
    }
}

/// What a business actor in another process published (a worker's reaction), in
/// order: answered per event once every accepted one is dispatched (journaled first),
/// so that the worker acknowledges its event only when the reaction is on record.
#[derive(Message)]
#[rtype(result = "Vec<Verdict>")]
pub struct PublishRemote(pub Vec<Arc<Envelope>>);

impl Handler<PublishRemote> for Broker {
    type Result = ResponseFuture<Vec<Verdict>>;

    fn handle(&mut self, msg: PublishRemote, ctx: &mut Self::Context) -> Self::Result {
        let mut last_accepted = 0;
        let verdicts: Vec<Verdict> = msg
            .0
            .into_iter()
            .map(|env| match self.publish(env, ctx) {
                Ok(seq) => {
                    last_accepted = seq;
                    Verdict::Accepted { seq }
                }
                Err(PublishError::AlreadyAccepted(_)) => Verdict::Duplicate,
                Err(PublishError::Refused(r)) => Verdict::Refused {
                    reason: r.to_string(),
                },
                Err(PublishError::Halted(r)) => Verdict::Refused { reason: r },
            })
            .collect();
        let (tx, rx) = oneshot::channel();
        if last_accepted <= self.dispatched_through {
            let _ = tx.send(());
        } else {
            self.dispatch_waiters.push((last_accepted, tx));
        }
        Box::pin(async move {
            match rx.await {
                Ok(()) => verdicts,
                // The broker stopped before committing: nothing is settled.
                Err(_) => verdicts
                    .into_iter()
                    .map(|v| match v {
                        Verdict::Accepted { .. } => Verdict::Unavailable {
                            reason: "the broker stopped before journaling it".into(),
                        },
                        other => other,
                    })
                    .collect(),
            }
        })
    }
}

/// Whether `consumer` has nothing (more) to do with `env`: it handled it already (its
/// consumer mark is kept), or the event's workflow is closed, where any reaction would
/// be refused. A redelivered event is skipped on a yes.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct AlreadyHandled {
    pub consumer: &'static str,
    pub env: Arc<Envelope>,
}

impl Handler<AlreadyHandled> for Broker {
    type Result = bool;

    fn handle(&mut self, msg: AlreadyHandled, _ctx: &mut Self::Context) -> bool {
        let correlation = msg.env.correlation_id;
        // An event of a closed workflow needs no handling, but the closing event
        // itself (recovery's `workflow.failed`) is handled after the close.
        let closing = matches!(
            msg.env.payload,
            Payload::WorkflowCompleted(_) | Payload::WorkflowFailed(_)
        );
        if !closing
            && self
                .log
                .stage(&correlation)
                .is_some_and(|s| s.is_terminal())
        {
            return true;
        }
        let hash = msg.env.payload_hash();
        let marked = self
            .marks
            .get(&correlation)
            .is_some_and(|m| m.contains(&(msg.consumer.to_string(), msg.env.kind(), hash)));
        // A worker killed after its reaction was taken, before its mark: the reaction
        // is on record under the id a handling of this event gives it.
        marked
            || self
                .log
                .contains_event(&crate::bus::remote::StableIds::first_of(
                    msg.env.event_id,
                    msg.consumer,
                ))
    }
}

/// A worker gave up on an event after its last allowed delivery: a dead letter, as an
/// in-process actor's would be, and its workflow fails.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RemoteDeadLetter(pub DeadLetterReport);

impl Handler<RemoteDeadLetter> for Broker {
    type Result = ();

    fn handle(&mut self, msg: RemoteDeadLetter, ctx: &mut Self::Context) {
        let r = msg.0;
        if self
            .dead_letters
            .iter()
            .any(|d| d.event_id == r.event_id && d.actor == "remote")
        {
            return;
        }
        tracing::error!(worker = %r.worker, role = %r.role, event_id = %r.event_id, event_type = %r.event_type, error = %r.error, "dead-lettered by a remote worker");
        metrics().dead_letters.inc();
        let event_type = EventKind::from_wire(&r.event_type).map_or("unknown", EventKind::as_str);
        self.dead_letters.push(DeadLetter {
            actor: "remote",
            seq: 0,
            event_id: r.event_id,
            event_type,
            correlation_id: r.correlation_id,
            error: format!("{} ({}): {}", r.role, r.worker, r.error),
            attempts: r.deliveries.min(u64::from(u8::MAX)) as u8,
        });
        let detail = format!(
            "{} failed {} deliveries of {} on worker {}: {}",
            r.role, r.deliveries, r.event_type, r.worker, r.error
        );
        self.fail_workflow(
            r.correlation_id,
            Some(r.event_id),
            FailureReason::DeadLetter,
            detail,
            ctx,
        );
    }
}

impl Handler<StartWorkflow> for Broker {
    type Result = Result<CorrelationId, PublishError>;

    fn handle(&mut self, msg: StartWorkflow, ctx: &mut Self::Context) -> Self::Result {
        let env = match msg.correlation_id {
            Some(id) => Envelope::root_in(
                id,
                msg.started,
                "engine",
                &*self.deps.clock,
                msg.triggered_by,
            ),
            None => Envelope::root(msg.started, "engine", &*self.deps.clock, msg.triggered_by),
        };
        let correlation = env.correlation_id;
        self.publish(Arc::new(env), ctx).map(|_| correlation)
    }
}

impl Handler<ResumeUnfinished> for Broker {
    type Result = usize;

    fn handle(&mut self, _msg: ResumeUnfinished, ctx: &mut Self::Context) -> usize {
        let held = std::mem::take(&mut self.held_unfinished);
        let n = held.len();
        self.resume_unfinished(held, ctx);
        n
    }
}

impl Handler<ActorFailed> for Broker {
    type Result = ();

    fn handle(&mut self, msg: ActorFailed, ctx: &mut Self::Context) {
        self.on_failure(msg.slot, msg.incarnation, msg.seq, msg.error, ctx);
    }
}

impl Handler<Resume> for Broker {
    type Result = bool;

    /// True when a halt was lifted.
    fn handle(&mut self, msg: Resume, ctx: &mut Self::Context) -> bool {
        if self.halted.is_none() {
            return false;
        }
        let env = Envelope::root(
            TradingResumed { detail: msg.detail },
            BROKER,
            &*self.deps.clock,
            None,
        );
        self.publish(Arc::new(env), ctx).is_ok()
    }
}

impl Handler<QueryFollowUp> for Broker {
    type Result = FollowUp;

    fn handle(&mut self, msg: QueryFollowUp, _ctx: &mut Self::Context) -> FollowUp {
        if let Some(next) = self.successors.get(&msg.0) {
            return FollowUp::Successor(*next);
        }
        let recovers = !self.routes[EventKind::WorkflowFailed.index()].is_empty();
        let failed = self
            .log
            .stage(&msg.0)
            .is_some_and(|s| matches!(s, WorkflowStage::Failed | WorkflowStage::TimedOut));
        if !failed || !recovers || self.final_failures.contains(&msg.0) {
            FollowUp::Final
        } else {
            FollowUp::Pending
        }
    }
}

impl Handler<Halt> for Broker {
    type Result = ();

    fn handle(&mut self, msg: Halt, ctx: &mut Self::Context) {
        self.halt(msg.reason, msg.detail, ctx);
    }
}

impl Handler<RunWorkflow> for Broker {
    type Result = ResponseFuture<Result<(CorrelationId, Option<WorkflowSummary>), PublishError>>;

    fn handle(&mut self, msg: RunWorkflow, ctx: &mut Self::Context) -> Self::Result {
        match <Self as Handler<StartWorkflow>>::handle(self, msg.0, ctx) {
            Ok(id) => {
                let ended = <Self as Handler<AwaitWorkflow>>::handle(self, AwaitWorkflow(id), ctx);
                Box::pin(async move { Ok((id, ended.await)) })
            }
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}

impl Handler<AwaitWorkflow> for Broker {
    type Result = ResponseFuture<Option<WorkflowSummary>>;

    fn handle(&mut self, msg: AwaitWorkflow, _ctx: &mut Self::Context) -> Self::Result {
        let summary = self.log.workflow(&msg.0, Instant::now());
        let committing = self.commit.holds(&msg.0);
        match summary {
            Some(s) if s.stage.is_terminal() && !committing => Box::pin(async move { Some(s) }),
            Some(_) => {
                let (tx, rx) = oneshot::channel();
                self.waiters.entry(msg.0).or_default().push(tx);
                Box::pin(async move { rx.await.ok() })
            }
            None => Box::pin(async { None }),
        }
    }
}

impl Handler<QueryTree> for Broker {
    type Result = Option<CausationTree>;

    fn handle(&mut self, msg: QueryTree, _ctx: &mut Self::Context) -> Self::Result {
        self.log.tree(&msg.0)
    }
}

impl Handler<QueryWorkflow> for Broker {
    type Result = Option<WorkflowSummary>;

    fn handle(&mut self, msg: QueryWorkflow, _ctx: &mut Self::Context) -> Self::Result {
        self.log.workflow(&msg.0, Instant::now())
    }
}

impl Handler<QueryStats> for Broker {
    type Result = MessageResult<QueryStats>;

    fn handle(&mut self, _msg: QueryStats, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.stats())
    }
}

impl Handler<Observe> for Broker {
    type Result = ();

    fn handle(&mut self, msg: Observe, _ctx: &mut Self::Context) {
        self.observers.push(msg.0);
    }
}

impl Handler<Tap> for Broker {
    type Result = ();

    fn handle(&mut self, msg: Tap, _ctx: &mut Self::Context) {
        self.taps.push(msg.0);
    }
}
