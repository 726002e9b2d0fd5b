//! The broker's decisions as a state machine: one [`EngineCore::process`] turns an
//! [`Input`] (an event published, a batch committed, an actor failed, time passed) into
//! an [`Answer`] for the sender and [`Effect`]s for the shell to carry out (journal,
//! deliver, restart, open or close the gate). It owns what the broker decides with:
//! sequence numbers, lineage and workflow stages ([`CausationLog`]), consumer marks,
//! the halt, dead letters, successors and final failures. No I/O and no actor runtime:
//! tables of (state, input) → effects test it, and a property test holds its promises
//! (nothing delivered before it is journaled, nothing delivered twice to one consumer,
//! lineage always valid) over random input sequences.
//!
//! The actix `Broker` (`actors/broker`) is its shell: it turns messages into inputs and
//! performs the effects, and owns what is runtime — the running subscribers with their
//! unacknowledged deliveries, the group commit, those waiting for answers.

mod io;
mod stats;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use io::{
    Accepted, ActorFailure, Answer, Audit, ConsumerMark, DeadDelivery, DeadLetterReport, Effect,
    Input, PublishError,
};
pub use stats::{ActorStats, BrokerStats, DeadLetter};

use crate::causation::{CausationLog, CausationTree, Recorded, Refusal, WorkflowSummary};
use crate::clock::Clock;
use crate::events::{
    ActorRestarted, CorrelationId, Envelope, EventId, EventKind, EventRejected, FailureReason,
    HaltReason, Payload, StableIds, TradingHalted, TradingResumed, WorkflowCompleted,
    WorkflowFailed,
};
use crate::supervision::{RestartDecision, RestartPolicy};
use crate::workflow::{WorkflowStage, WorkflowStatus};
use crate::workflow_lifecycle::{consequences, refuse_start, Consequence};

/// The broker's own name as an event source.
pub const BROKER: &str = "broker";

/// What the engine does at start with workflows the journal shows unfinished.
#[derive(Clone, Copy, Debug, Default, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ResumeMode {
    /// Hand each one's last event to its consumers again (idempotent ids stop doubles).
    #[default]
    Resume,
    /// Fail them (recovery then decides).
    Fail,
}

/// What the core decides by.
#[derive(Clone, Debug)]
pub struct CoreSettings {
    /// Named in a halt for restart intensity.
    pub policy: RestartPolicy,
    pub workflow_timeout: Duration,
    pub retain_finished_workflows: usize,
    pub resume: ResumeMode,
    /// Unfinished workflows wait for [`Input::ResumeUnfinished`] instead of resuming at
    /// start (`run` checks the venue against the journal first).
    pub hold_unfinished: bool,
    /// Events go through a journal before dispatch (then consumers' marks are recorded).
    pub journaled: bool,
    /// The journal survives the process (then consumers report what they handled).
    pub durable: bool,
}

/// A consumer of events: its name and the event types routed to it.
pub struct Consumer {
    pub name: &'static str,
    pub consumes: Vec<EventKind>,
}

/// A consumer mark of an open workflow: (consumer, event type, payload hash).
type Mark = (String, EventKind, String);

pub struct EngineCore {
    settings: CoreSettings,
    clock: Arc<dyn Clock>,
    seq: u64,
    log: CausationLog,
    names: Vec<&'static str>,
    /// Event type → the consumers (by slot) it goes to.
    routes: Vec<Vec<usize>>,
    published: [u64; EventKind::COUNT],
    rejected: u64,
    restarts: u64,
    skipped_duplicates: u64,
    resends_dropped: u64,
    dead_letters: Vec<DeadLetter>,
    halted: Option<TradingHalted>,
    marks: HashMap<CorrelationId, HashSet<Mark>>,
    /// Workflow → the workflow its failure or reconciliation started.
    successors: HashMap<CorrelationId, CorrelationId>,
    /// Failed workflows recovery will not retry.
    final_failures: HashSet<CorrelationId>,
    /// Unfinished workflows held until [`Input::ResumeUnfinished`]: the events to hand
    /// again.
    held_unfinished: Vec<Vec<(u64, Arc<Envelope>)>>,
    /// The last seq dispatched (so committed, with a journal).
    dispatched_through: u64,
    /// Whether each accepted event is logged at debug level, read once at start: the
    /// per-event level check showed at 3–4% of a backtest's main thread in perf.
    log_events: bool,
}

/// One input's work: its time (read once, and only if needed: a clock read per event
/// showed in the broker's profile) and the effects it leaves.
struct Turn<'a> {
    now: Option<Instant>,
    read_now: &'a dyn Fn() -> Instant,
    out: &'a mut Vec<Effect>,
}

impl Turn<'_> {
    fn push(&mut self, effect: Effect) {
        self.out.push(effect);
    }

    fn now(&mut self) -> Instant {
        *self.now.get_or_insert_with(self.read_now)
    }
}

impl EngineCore {
    /// A core whose sequence numbers continue after `last_seq` (the journal's).
    pub fn new(
        settings: CoreSettings,
        consumers: Vec<Consumer>,
        clock: Arc<dyn Clock>,
        last_seq: u64,
    ) -> Self {
        let mut routes = vec![Vec::new(); EventKind::COUNT];
        for (slot, c) in consumers.iter().enumerate() {
            for kind in &c.consumes {
                routes[kind.index()].push(slot);
            }
        }
        Self {
            log: CausationLog::new(settings.retain_finished_workflows),
            settings,
            clock,
            seq: last_seq,
            names: consumers.iter().map(|c| c.name).collect(),
            routes,
            published: [0; EventKind::COUNT],
            rejected: 0,
            restarts: 0,
            skipped_duplicates: 0,
            resends_dropped: 0,
            dead_letters: Vec::new(),
            halted: None,
            marks: HashMap::new(),
            successors: HashMap::new(),
            final_failures: HashSet::new(),
            held_unfinished: Vec::new(),
            dispatched_through: 0,
            log_events: tracing::enabled!(tracing::Level::DEBUG),
        }
    }

    /// Decides on one input: the answer for its sender; the effects are appended to
    /// `out`, in the order the shell must carry them out. `now` reads the time (tests
    /// pass a fixed one).
    pub fn process(
        &mut self,
        input: Input,
        now: &dyn Fn() -> Instant,
        out: &mut Vec<Effect>,
    ) -> Answer {
        let mut turn = Turn {
            now: None,
            read_now: now,
            out,
        };
        match input {
            Input::Restore { halt, open, marks } => {
                self.restore(halt, open, marks, &mut turn);
                Answer::Noted
            }
            Input::Publish(env) => Answer::Published(self.publish(env, &mut turn)),
            Input::Start {
                started,
                triggered_by,
                correlation_id,
            } => {
                let clock = &*self.clock;
                let env = match correlation_id {
                    Some(id) => Envelope::root_in(id, started, "engine", clock, triggered_by),
                    None => Envelope::root(started, "engine", clock, triggered_by),
                };
                let correlation = env.correlation_id;
                let started = self.publish(Arc::new(env), &mut turn);
                Answer::Started(started.map(|_| correlation))
            }
            Input::Committed(batch) => {
                for accepted in batch {
                    self.dispatch(accepted, &mut turn);
                }
                Answer::Noted
            }
            Input::Consumed { consumer, env } => {
                self.consumed(consumer, &env, &mut turn);
                Answer::Noted
            }
            Input::ActorFailed(failure) => {
                self.actor_failed(failure, &mut turn);
                Answer::Noted
            }
            Input::RemoteDeadLetter(report) => {
                self.remote_dead_letter(report, &mut turn);
                Answer::Noted
            }
            Input::JournalFailed { error, events } => {
                tracing::error!(%error, events, "journal write failed: halting, nothing dispatched");
                turn.push(Effect::Gate { halted: true });
                if self.halted.is_none() {
                    self.halted = Some(TradingHalted {
                        reason: HaltReason::Manual,
                        detail: format!("journal write failed: {error}"),
                    });
                }
                Answer::Noted
            }
            Input::Halt { reason, detail } => {
                self.halt(reason, detail, &mut turn);
                Answer::Noted
            }
            Input::Resume { detail } => {
                if self.halted.is_none() {
                    return Answer::Resumed(false);
                }
                let env = Envelope::root(TradingResumed { detail }, BROKER, &*self.clock, None);
                Answer::Resumed(self.publish(Arc::new(env), &mut turn).is_ok())
            }
            Input::ResumeUnfinished => {
                let held = std::mem::take(&mut self.held_unfinished);
                let n = held.len();
                self.resume_unfinished(held, &mut turn);
                Answer::Unfinished(n)
            }
            Input::Tick => {
                self.fail_overdue(&mut turn);
                Answer::Noted
            }
        }
    }

    /// The consumer's name in `slot`.
    pub fn consumer_name(&self, slot: usize) -> &'static str {
        self.names[slot]
    }

    pub fn consumer_names(&self) -> &[&'static str] {
        &self.names
    }

    pub fn last_seq(&self) -> u64 {
        self.seq
    }

    /// The last seq dispatched (so committed, with a journal).
    pub fn dispatched_through(&self) -> u64 {
        self.dispatched_through
    }

    pub fn halted(&self) -> Option<&TradingHalted> {
        self.halted.as_ref()
    }

    pub fn workflow(&self, correlation: &CorrelationId, now: Instant) -> Option<WorkflowSummary> {
        self.log.workflow(correlation, now)
    }

    pub fn tree(&self, correlation: &CorrelationId) -> Option<CausationTree> {
        self.log.tree(correlation)
    }

    /// What became of a failed workflow.
    pub fn follow_up(&self, correlation: &CorrelationId) -> FollowUp {
        if let Some(next) = self.successors.get(correlation) {
            return FollowUp::Successor(*next);
        }
        let recovers = !self.routes[EventKind::WorkflowFailed.index()].is_empty();
        let failed = self
            .log
            .stage(correlation)
            .is_some_and(|s| matches!(s, WorkflowStage::Failed | WorkflowStage::TimedOut));
        if !failed || !recovers || self.final_failures.contains(correlation) {
            FollowUp::Final
        } else {
            FollowUp::Pending
        }
    }

    /// Whether `consumer` has nothing (more) to do with `env`: it handled it already
    /// (its consumer mark is kept), or the event's workflow is closed, where any
    /// reaction would be refused. A redelivered event is skipped on a yes.
    pub fn already_handled(&self, consumer: &str, env: &Envelope) -> bool {
        let correlation = env.correlation_id;
        // An event of a closed workflow needs no handling, but the closing event
        // itself (recovery's `workflow.failed`) is handled after the close.
        let closing = matches!(
            env.payload,
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
        let hash = env.payload_hash();
        let marked = self
            .marks
            .get(&correlation)
            .is_some_and(|m| m.contains(&(consumer.to_string(), env.kind(), hash)));
        // A worker killed after its reaction was taken, before its mark: the reaction
        // is on record under the id a handling of this event gives it.
        marked
            || self
                .log
                .contains_event(&StableIds::first_of(env.event_id, consumer))
    }

    /// The engine's figures; the shell adds its own (deliveries, actors, the journal).
    pub fn stats(&self, now: Instant) -> BrokerStats {
        BrokerStats {
            last_seq: self.seq,
            published: EventKind::ALL
                .iter()
                .filter(|k| self.published[k.index()] > 0)
                .map(|k| (k.as_str(), self.published[k.index()]))
                .collect(),
            delivered: 0,
            redelivered: 0,
            rejected: self.rejected,
            restarts: self.restarts,
            actors: Vec::new(),
            dead_letters: self.dead_letters.clone(),
            halted: self.halted.clone(),
            journal_failure: None,
            skipped_duplicates: self.skipped_duplicates,
            resends_dropped: self.resends_dropped,
            chains_in_memory: self.log.chains_in_memory(),
            events_in_memory: self.log.events_in_memory(),
            workflows: self.log.workflows(now),
        }
    }

    /// A halt in force survives restarts; workflows the journal shows unfinished (the
    /// engine stopped mid-way) get their chains back, then each one's latest consumed
    /// event is handed to its consumers again (those whose mark says they handled it
    /// skip it), or the workflow is failed, per `recovery.resume`.
    fn restore(
        &mut self,
        halt: Option<TradingHalted>,
        open: Vec<Vec<(u64, Envelope)>>,
        marks: Vec<ConsumerMark>,
        turn: &mut Turn,
    ) {
        if let Some(h) = halt {
            tracing::warn!(reason = %h.reason, detail = %h.detail, "the journal ends halted: trading stays halted until resumed");
            self.halted = Some(h);
            turn.push(Effect::Gate { halted: true });
        }
        for m in marks {
            if let Some(kind) = EventKind::from_wire(&m.event_type) {
                self.marks.entry(m.correlation_id).or_default().insert((
                    m.consumer,
                    kind,
                    m.payload_hash,
                ));
            }
        }
        let mut unfinished = Vec::new();
        for entries in open {
            if let Some(handed) = self.restore_workflow(&entries, turn) {
                unfinished.push(handed);
            }
        }
        if self.settings.hold_unfinished {
            self.held_unfinished = unfinished;
        } else {
            self.resume_unfinished(unfinished, turn);
        }
    }

    /// Restores one unfinished workflow's chain; the events to hand again, `None` if
    /// the journal's chain does not restore.
    fn restore_workflow(
        &mut self,
        entries: &[(u64, Envelope)],
        turn: &mut Turn,
    ) -> Option<Vec<(u64, Arc<Envelope>)>> {
        let now = turn.now();
        for (seq, env) in entries {
            if let Payload::WorkflowStarted(started) = &env.payload {
                turn.push(Effect::RootOpened {
                    correlation: env.correlation_id,
                    started: started.clone(),
                });
            }
            if let Err(refusal) = self.log.record(env, *seq, || now) {
                tracing::error!(seq, %refusal, "journaled event does not restore");
                return None;
            }
        }
        // Each consumer is handed again the latest event of the workflow it consumes
        // (and skips it if its mark says it handled it): execution reports orders as it
        // places them, so a workflow stopped mid-plan ends in events other actors
        // consume, after the plan that execution must finish.
        let mut again = BTreeSet::new();
        for slot in 0..self.names.len() {
            if let Some((seq, _)) = entries
                .iter()
                .rev()
                .find(|(_, env)| self.routes[env.kind().index()].contains(&slot))
            {
                again.insert(*seq);
            }
        }
        if let Some((last, _)) = entries.last() {
            again.insert(*last);
        }
        Some(
            entries
                .iter()
                .filter(|(seq, _)| again.contains(seq))
                .map(|(seq, env)| (*seq, Arc::new(env.clone())))
                .collect(),
        )
    }

    /// Hands the events of each unfinished workflow to their consumers again, or fails
    /// the workflow, per `recovery.resume`.
    fn resume_unfinished(&mut self, unfinished: Vec<Vec<(u64, Arc<Envelope>)>>, turn: &mut Turn) {
        for handed in unfinished {
            let Some((seq, env)) = handed.last().cloned() else {
                continue;
            };
            let correlation = env.correlation_id;
            match self.settings.resume {
                ResumeMode::Resume => {
                    tracing::warn!(%correlation, seq, event_type = env.event_type(), "resuming an unfinished workflow");
                    for (seq, env) in handed {
                        let recorded = Recorded {
                            stage: self.log.stage(&correlation),
                            closed_workflow: false,
                        };
                        self.dispatch((seq, env, recorded), turn);
                    }
                }
                ResumeMode::Fail => {
                    tracing::warn!(%correlation, seq, "failing an unfinished workflow");
                    let detail =
                        format!("the engine stopped after {} (seq {seq})", env.event_type());
                    let reason = FailureReason::StepFailed;
                    self.fail_workflow(correlation, Some(env.event_id), reason, detail, turn);
                }
            }
        }
    }

    /// Accepts or refuses one event. An accepted event goes to the journal (the shell
    /// dispatches it with [`Input::Committed`]) after the events its acceptance caused
    /// (a completion), which have later numbers; the group commit keeps seq order.
    fn publish(&mut self, env: Arc<Envelope>, turn: &mut Turn) -> Result<u64, PublishError> {
        let kind = env.kind();
        if let Some(why) = refuse_start(&env, self.halted.as_ref()) {
            let detail = self
                .halted
                .as_ref()
                .map_or_else(String::new, |h| h.detail.clone());
            self.reject(&env, why, turn);
            return Err(PublishError::Halted(detail));
        }
        let seq = self.seq + 1;
        let recorded = match self.log.record(&env, seq, || turn.now()) {
            Ok(r) => r,
            Err(Refusal::DuplicateEvent(id))
                if self.log.correlation_of(&id) == Some(env.correlation_id) =>
            {
                self.resends_dropped += 1;
                tracing::debug!(event_id = %id, event_type = kind.as_str(), "resent event dropped");
                return Err(PublishError::AlreadyAccepted(id));
            }
            Err(refusal) => {
                self.reject(&env, refusal.to_string(), turn);
                return Err(PublishError::Refused(refusal));
            }
        };
        self.seq = seq;
        self.published[kind.index()] += 1;
        turn.push(Effect::Audit(Audit::Published(kind)));
        if let Payload::ReconciliationCompleted(r) = &env.payload {
            turn.push(Effect::Audit(Audit::Reconciled(r.status)));
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
            self.apply(consequence, &env, turn);
        }
        turn.push(Effect::Journal((seq, env, recorded)));
        Ok(seq)
    }

    /// Carries out one lifecycle consequence of accepting `env` (the rules are in
    /// `workflow_lifecycle`).
    fn apply(&mut self, consequence: Consequence, env: &Arc<Envelope>, turn: &mut Turn) {
        let correlation = env.correlation_id;
        match consequence {
            Consequence::Halt { reason, detail } => self.halt(reason, detail, turn),
            Consequence::Halted(h) => {
                tracing::error!(reason = %h.reason, detail = %h.detail, "trading halted");
                self.halted = Some(h);
                turn.push(Effect::Gate { halted: true });
            }
            Consequence::Resumed => {
                tracing::warn!("trading resumed");
                self.halted = None;
                turn.push(Effect::Gate { halted: false });
            }
            Consequence::Opened {
                started,
                successor_of,
            } => {
                turn.push(Effect::RootOpened {
                    correlation,
                    started,
                });
                if let Some(from) = successor_of {
                    self.successors.insert(from, correlation);
                }
            }
            Consequence::Closed(status) => {
                let at = env.occurred_at;
                turn.push(Effect::Audit(Audit::WorkflowEnded { status, at }));
                let completed = status == WorkflowStatus::Completed;
                turn.push(Effect::RootClosed {
                    correlation,
                    completed,
                });
            }
            Consequence::OrdersSettled(statuses) => {
                for status in statuses {
                    turn.push(Effect::Audit(Audit::OrderSettled(status)));
                }
            }
            Consequence::FinalFailure(failed) => {
                self.final_failures.insert(failed);
            }
            Consequence::Decided(failed) => turn.push(Effect::RootForgotten(failed)),
            Consequence::Complete => {
                let summary = self.log.workflow(&correlation, turn.now());
                let completed = WorkflowCompleted {
                    orders_placed: summary.as_ref().map_or(0, |s| s.orders_placed),
                    duration_ms: summary.map_or(0, |s| s.duration_ms),
                };
                let child = Envelope::caused_by(env, completed, BROKER, &*self.clock);
                let _ = self.publish(Arc::new(child), turn);
            }
        }
    }

    /// Hands an accepted (and, with a journal, committed) event to its consumers and
    /// observers, and tells those waiting for its workflow when it closed.
    fn dispatch(&mut self, (seq, env, recorded): Accepted, turn: &mut Turn) {
        let kind = env.kind();
        // Marks serve resuming unfinished workflows only: an event outside an open
        // workflow (a standalone chain, a closed workflow) is never replayed, so its
        // consumers need not report back.
        let mark = self.settings.durable && recorded.stage.is_some_and(|s| !s.is_terminal());
        let marked = self
            .marks
            .get(&env.correlation_id)
            .map(|m| (m, env.payload_hash()));
        for &slot in &self.routes[kind.index()] {
            let name = self.names[slot];
            if let Some((m, hash)) = &marked {
                if m.contains(&(name.to_string(), kind, hash.clone())) {
                    tracing::info!(
                        consumer = name,
                        seq,
                        event_type = kind.as_str(),
                        "already handled: skipped"
                    );
                    self.skipped_duplicates += 1;
                    continue;
                }
            }
            turn.push(Effect::Deliver {
                slot,
                seq,
                env: env.clone(),
                mark,
            });
        }
        if recorded.closed_workflow {
            self.marks.remove(&env.correlation_id);
        }
        self.dispatched_through = seq;
        let correlation = env.correlation_id;
        turn.push(Effect::Dispatched { seq, env });
        // Waiters hear once the workflow is closed and this event of it is committed:
        // the closing event, or an after-the-fact one (a restart notice) that was still
        // being committed when they asked.
        if recorded.stage.is_some_and(WorkflowStage::is_terminal) {
            turn.push(Effect::WorkflowClosed(correlation));
        }
    }

    /// Marks serve resuming unfinished workflows: events of standalone chains and of
    /// finished workflows are never replayed, so they need none.
    fn consumed(&mut self, consumer: &'static str, env: &Envelope, turn: &mut Turn) {
        let open = self
            .log
            .stage(&env.correlation_id)
            .is_some_and(|s| !s.is_terminal());
        if !self.settings.journaled || !open {
            return;
        }
        let payload_hash = env.payload_hash();
        self.marks.entry(env.correlation_id).or_default().insert((
            consumer.to_string(),
            env.kind(),
            payload_hash.clone(),
        ));
        turn.push(Effect::Mark(ConsumerMark {
            consumer: consumer.to_string(),
            event_type: env.event_type().to_string(),
            correlation_id: env.correlation_id,
            payload_hash,
            seq: self.seq,
        }));
    }

    fn reject(&mut self, env: &Envelope, reason: String, turn: &mut Turn) {
        self.rejected += 1;
        tracing::warn!(event_id = %env.event_id, event_type = env.event_type(), correlation_id = %env.correlation_id, %reason, "event refused");
        let notice = EventRejected {
            event_id: env.event_id,
            event_type: env.event_type().to_string(),
            correlation_id: env.correlation_id,
            causation_id: env.causation_id,
            reason,
        };
        let root = Envelope::root(notice, BROKER, &*self.clock, None);
        // A fresh root with a fresh id is always accepted; a failure here is a core bug
        // worth a log line, not a reason to recurse.
        if let Err(e) = self.publish(Arc::new(root), turn) {
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
        turn: &mut Turn,
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
            let env = Envelope::child_of(correlation, cause, failed, BROKER, &*self.clock);
            let _ = self.publish(Arc::new(env), turn);
        }
    }

    fn halt(&mut self, reason: HaltReason, detail: String, turn: &mut Turn) {
        if self.halted.is_some() {
            return;
        }
        let env = Envelope::root(TradingHalted { reason, detail }, BROKER, &*self.clock, None);
        let _ = self.publish(Arc::new(env), turn);
    }

    /// An actor failed: on the record (in the failing event's workflow when known); an
    /// event it failed on twice is dead-lettered and fails its workflow (or halts, when
    /// it was a failure itself); past the restart intensity trading halts. The actor is
    /// restarted in every case, so that nothing already delivered is lost.
    fn actor_failed(&mut self, failure: ActorFailure, turn: &mut Turn) {
        let ActorFailure {
            slot,
            error,
            failed_on,
            dead,
            decision,
        } = failure;
        let name = self.names[slot];
        self.restarts += 1;
        turn.push(Effect::Audit(Audit::Restarted(name)));
        let restarted = ActorRestarted {
            actor: name.to_string(),
            error: error.clone(),
            failures: failed_on.as_ref().map_or(1, |(_, n)| *n),
            dead_lettered: dead.is_some(),
        };
        let note = match &failed_on {
            Some((env, _)) => Envelope::caused_by(env, restarted, BROKER, &*self.clock),
            None => Envelope::root(restarted, BROKER, &*self.clock, None),
        };
        let _ = self.publish(Arc::new(note), turn);
        if let Some(d) = dead {
            self.dead_lettered(name, d, &error, turn);
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
                self.halt(HaltReason::RestartIntensity, detail, turn);
                delay
            }
        };
        turn.push(Effect::Restart { slot, delay });
    }

    fn dead_lettered(&mut self, name: &'static str, d: DeadDelivery, error: &str, turn: &mut Turn) {
        tracing::error!(actor = name, seq = d.seq, event_type = d.env.event_type(), %error, "dead-lettered after redelivery");
        turn.push(Effect::Audit(Audit::DeadLettered));
        self.dead_letters.push(DeadLetter {
            actor: name,
            seq: d.seq,
            event_id: d.env.event_id,
            event_type: d.env.event_type(),
            correlation_id: d.env.correlation_id,
            error: error.to_string(),
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
            self.halt(HaltReason::RecoveryExhausted, why, turn);
        } else {
            let (correlation, cause) = (d.env.correlation_id, Some(d.env.event_id));
            self.fail_workflow(correlation, cause, FailureReason::DeadLetter, detail, turn);
        }
    }

    /// A worker gave up on an event after its last allowed delivery: a dead letter, as
    /// an in-process actor's would be, and its workflow fails.
    fn remote_dead_letter(&mut self, r: DeadLetterReport, turn: &mut Turn) {
        if self
            .dead_letters
            .iter()
            .any(|d| d.event_id == r.event_id && d.actor == "remote")
        {
            return;
        }
        tracing::error!(worker = %r.worker, role = %r.role, event_id = %r.event_id, event_type = %r.event_type, error = %r.error, "dead-lettered by a remote worker");
        turn.push(Effect::Audit(Audit::DeadLettered));
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
        let (correlation, cause) = (r.correlation_id, Some(r.event_id));
        self.fail_workflow(correlation, cause, FailureReason::DeadLetter, detail, turn);
    }

    fn fail_overdue(&mut self, turn: &mut Turn) {
        let timeout = self.settings.workflow_timeout;
        for correlation in self.log.overdue(turn.now(), timeout) {
            let stage = self.log.stage(&correlation);
            let detail = format!(
                "workflow exceeded {}s in stage {}",
                timeout.as_secs_f64(),
                stage.unwrap_or(WorkflowStage::Started)
            );
            self.fail_workflow(correlation, None, FailureReason::Timeout, detail, turn);
        }
    }
}

/// What became of a failed workflow: retried as another workflow, or final.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FollowUp {
    /// A workflow triggered by this one (a recovery retry, a corrective rebalance).
    Successor(CorrelationId),
    /// Recovery gave up (or nothing recovers failures): nothing follows.
    Final,
    /// Recovery has not decided yet.
    Pending,
}
