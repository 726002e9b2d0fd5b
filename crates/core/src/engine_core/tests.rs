//! The core without an actor: tables of (state, input) → effects, and a property test
//! of its promises over random input sequences.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::clock::SystemClock;
use crate::events::sample::sample;
use crate::events::{RecoveryAction, RecoveryKind, TriggeredBy, WorkflowFailed, WorkflowStarted};

const STRATEGY: usize = 0;
const PORTFOLIO: usize = 1;
const EXECUTION: usize = 2;
const RECOVERY: usize = 4;

fn consumers() -> Vec<Consumer> {
    use EventKind as K;
    [
        ("strategy", vec![K::WorkflowStarted]),
        ("portfolio", vec![K::SignalGenerated]),
        ("execution", vec![K::RebalancePlanned]),
        ("reconciliation", vec![K::OrderSettled]),
        ("recovery", vec![K::WorkflowFailed]),
    ]
    .into_iter()
    .map(|(name, consumes)| Consumer { name, consumes })
    .collect()
}

fn settings(journaled: bool) -> CoreSettings {
    CoreSettings {
        policy: RestartPolicy::default(),
        workflow_timeout: Duration::from_secs(60),
        retain_finished_workflows: 100,
        resume: ResumeMode::Resume,
        hold_unfinished: false,
        journaled,
        durable: journaled,
    }
}

/// A core and a clock the test moves.
struct Rig {
    core: EngineCore,
    now: Instant,
}

impl Rig {
    fn new(journaled: bool) -> Self {
        Self::with(settings(journaled))
    }

    fn with(settings: CoreSettings) -> Self {
        Self {
            core: EngineCore::new(settings, consumers(), Arc::new(SystemClock), 0),
            now: Instant::now(),
        }
    }

    fn step(&mut self, input: Input) -> (Answer, Vec<Effect>) {
        let mut out = Vec::new();
        let now = self.now;
        let answer = self.core.process(input, &|| now, &mut out);
        (answer, out)
    }

    /// Publishes `env` and commits what that accepted; the effects of both.
    fn publish_committed(&mut self, env: Arc<Envelope>) -> (Answer, Vec<Effect>) {
        let (answer, mut effects) = self.step(Input::Publish(env));
        let batch = journaled(&effects);
        effects.extend(self.step(Input::Committed(batch)).1);
        (answer, effects)
    }

    /// A workflow opened and committed; its root event.
    fn open(&mut self) -> Arc<Envelope> {
        let env = Arc::new(Envelope::root(started(), "test", &SystemClock, None));
        let (answer, _) = self.publish_committed(env.clone());
        assert!(matches!(answer, Answer::Published(Ok(_))), "{answer:?}");
        env
    }

    /// Publishes (and commits) an event of `kind` caused by `cause`.
    fn next(&mut self, cause: &Envelope, kind: EventKind) -> (Arc<Envelope>, Vec<Effect>) {
        let env = Arc::new(Envelope::caused_by(
            cause,
            sample(kind),
            "test",
            &SystemClock,
        ));
        let (answer, effects) = self.publish_committed(env.clone());
        assert!(
            matches!(answer, Answer::Published(Ok(_))),
            "{kind}: {answer:?}"
        );
        (env, effects)
    }

    /// A step fails after `cause` (published and committed); the failure.
    fn fail(&mut self, cause: &Envelope) -> Arc<Envelope> {
        let failed = WorkflowFailed {
            step: "a step".into(),
            reason: FailureReason::StepFailed,
            detail: "x".into(),
        };
        let env = Arc::new(Envelope::caused_by(cause, failed, "test", &SystemClock));
        let (answer, _) = self.publish_committed(env.clone());
        assert!(matches!(answer, Answer::Published(Ok(_))), "{answer:?}");
        env
    }

    /// A workflow taken to `through` (inclusive) along the happy path; its events.
    fn workflow_through(&mut self, through: EventKind) -> Vec<Arc<Envelope>> {
        let mut events = vec![self.open()];
        for kind in HAPPY_PATH {
            let (env, _) = self.next(events.last().expect("a root"), kind);
            events.push(env);
            if kind == through {
                break;
            }
        }
        events
    }
}

const HAPPY_PATH: [EventKind; 7] = [
    EventKind::SignalGenerated,
    EventKind::RebalancePlanned,
    EventKind::ExecutionStarted,
    EventKind::OrderSubmitted,
    EventKind::OrderFilled,
    EventKind::OrderSettled,
    EventKind::ReconciliationCompleted,
];

fn started() -> WorkflowStarted {
    match sample(EventKind::WorkflowStarted) {
        Payload::WorkflowStarted(s) => s,
        _ => unreachable!("the sample of a start is a start"),
    }
}

/// The accepted events the effects send to the journal, in seq order (as the group
/// commit keeps them).
fn journaled(effects: &[Effect]) -> Vec<Accepted> {
    let mut batch: Vec<Accepted> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Journal(a) => Some(a.clone()),
            _ => None,
        })
        .collect();
    batch.sort_by_key(|a| a.0);
    batch
}

fn journaled_kinds(effects: &[Effect]) -> Vec<EventKind> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Journal((_, env, _)) => Some(env.kind()),
            _ => None,
        })
        .collect()
}

fn deliveries(effects: &[Effect]) -> Vec<(usize, u64)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Deliver { slot, seq, .. } => Some((*slot, *seq)),
            _ => None,
        })
        .collect()
}

#[test]
fn an_accepted_event_goes_to_the_journal_and_is_delivered_only_once_committed() {
    let mut rig = Rig::new(true);
    let env = Arc::new(Envelope::root(started(), "test", &SystemClock, None));
    let (answer, effects) = rig.step(Input::Publish(env.clone()));
    assert_eq!(answer, Answer::Published(Ok(1)));
    assert!(deliveries(&effects).is_empty(), "{effects:?}");
    assert!(matches!(
        effects.as_slice(),
        [
            Effect::Audit(Audit::Published(EventKind::WorkflowStarted)),
            Effect::RootOpened { .. },
            Effect::Journal((1, _, _)),
        ]
    ));
    let (_, effects) = rig.step(Input::Committed(journaled(&effects)));
    assert!(matches!(
        effects.as_slice(),
        [
            Effect::Deliver {
                slot: STRATEGY,
                seq: 1,
                mark: true,
                ..
            },
            Effect::Dispatched { seq: 1, .. },
        ]
    ));
    assert_eq!(rig.core.dispatched_through(), 1);
}

#[test]
fn a_reconciled_workflow_completes_and_its_completion_is_numbered_after_it() {
    let mut rig = Rig::new(true);
    let events = rig.workflow_through(EventKind::OrderSettled);
    let settled = events.last().expect("settled");
    let (reconciled, effects) = rig.next(settled, EventKind::ReconciliationCompleted);
    let batch = journaled(&effects);
    let seqs: Vec<(u64, EventKind)> = batch.iter().map(|(s, e, _)| (*s, e.kind())).collect();
    assert_eq!(
        seqs,
        [
            (8, EventKind::ReconciliationCompleted),
            (9, EventKind::WorkflowCompleted)
        ]
    );
    assert_eq!(batch[1].1.causation_id, Some(reconciled.event_id));
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::RootClosed {
            completed: true,
            ..
        }
    )));
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Audit(Audit::WorkflowEnded {
            status: WorkflowStatus::Completed,
            ..
        })
    )));
    // Waiters hear once the closing event is dispatched.
    let closed: Vec<_> = effects
        .iter()
        .filter(|e| matches!(e, Effect::WorkflowClosed(_)))
        .collect();
    assert_eq!(closed.len(), 1);
}

#[test]
fn a_start_is_refused_while_halted_and_the_refusal_is_on_record() {
    let mut rig = Rig::new(true);
    let (_, effects) = rig.step(Input::Halt {
        reason: HaltReason::Manual,
        detail: "by hand".into(),
    });
    assert_eq!(journaled_kinds(&effects), [EventKind::TradingHalted]);
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::Gate { halted: true })));
    let (answer, effects) = rig.step(Input::Start {
        started: started(),
        triggered_by: None,
        correlation_id: None,
    });
    assert_eq!(
        answer,
        Answer::Started(Err(PublishError::Halted("by hand".into())))
    );
    assert_eq!(journaled_kinds(&effects), [EventKind::EventRejected]);
    assert!(!effects
        .iter()
        .any(|e| matches!(e, Effect::RootOpened { .. })));
    // A second halt adds nothing; a resume lifts it once.
    let (_, effects) = rig.step(Input::Halt {
        reason: HaltReason::Manual,
        detail: "again".into(),
    });
    assert!(effects.is_empty(), "{effects:?}");
    let resume = || Input::Resume {
        detail: "looked".into(),
    };
    let (answer, effects) = rig.step(resume());
    assert_eq!(answer, Answer::Resumed(true));
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::Gate { halted: false })));
    assert_eq!(rig.step(resume()).0, Answer::Resumed(false));
}

#[test]
fn a_resend_is_dropped_and_a_broken_lineage_is_refused_with_a_notice() {
    let mut rig = Rig::new(true);
    let root = rig.open();
    let (answer, effects) = rig.step(Input::Publish(root.clone()));
    assert_eq!(
        answer,
        Answer::Published(Err(PublishError::AlreadyAccepted(root.event_id)))
    );
    assert!(effects.is_empty(), "{effects:?}");
    // A plan before any signal: not allowed in stage started.
    let plan = Envelope::caused_by(
        &root,
        sample(EventKind::RebalancePlanned),
        "t",
        &SystemClock,
    );
    let (answer, effects) = rig.step(Input::Publish(Arc::new(plan)));
    assert!(matches!(
        answer,
        Answer::Published(Err(PublishError::Refused(_)))
    ));
    assert_eq!(journaled_kinds(&effects), [EventKind::EventRejected]);
    assert_eq!(rig.core.stats(rig.now).rejected, 1);
    assert_eq!(rig.core.stats(rig.now).resends_dropped, 1);
}

#[test]
fn an_event_failed_twice_is_dead_lettered_and_fails_its_workflow() {
    let mut rig = Rig::new(true);
    let events = rig.workflow_through(EventKind::RebalancePlanned);
    let plan = events.last().expect("plan").clone();
    let (_, effects) = rig.step(Input::ActorFailed(ActorFailure {
        slot: EXECUTION,
        error: "boom".into(),
        failed_on: Some((plan.clone(), 2)),
        dead: Some(DeadDelivery {
            seq: 3,
            env: plan.clone(),
            failures: 2,
        }),
        decision: RestartDecision::Restart {
            delay: Duration::from_millis(5),
            attempt: 2,
        },
    }));
    assert_eq!(
        journaled_kinds(&effects),
        [EventKind::ActorRestarted, EventKind::WorkflowFailed]
    );
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::Audit(Audit::DeadLettered))));
    assert!(matches!(
        effects.last(),
        Some(Effect::Restart {
            slot: EXECUTION,
            ..
        })
    ));
    let stats = rig.core.stats(rig.now);
    assert_eq!(stats.dead_letters.len(), 1);
    assert_eq!(stats.dead_letters[0].actor, "execution");
    assert_eq!(stats.restarts, 1);
    // The failure goes to recovery once committed.
    let (_, dispatched) = rig.step(Input::Committed(journaled(&effects)));
    assert!(deliveries(&dispatched)
        .iter()
        .any(|(slot, _)| *slot == RECOVERY));
    let correlation = plan.correlation_id;
    assert_eq!(rig.core.follow_up(&correlation), FollowUp::Pending);
}

#[test]
fn restarts_past_the_intensity_halt_trading_and_still_restart() {
    let mut rig = Rig::new(false);
    let (_, effects) = rig.step(Input::ActorFailed(ActorFailure {
        slot: PORTFOLIO,
        error: "again".into(),
        failed_on: None,
        dead: None,
        decision: RestartDecision::Escalate {
            delay: Duration::from_millis(1),
            attempt: 9,
        },
    }));
    assert_eq!(
        journaled_kinds(&effects),
        [EventKind::ActorRestarted, EventKind::TradingHalted]
    );
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::Gate { halted: true })));
    assert!(matches!(
        effects.last(),
        Some(Effect::Restart {
            slot: PORTFOLIO,
            ..
        })
    ));
    let halted = rig.core.halted().expect("halted");
    assert_eq!(halted.reason, HaltReason::RestartIntensity);
}

#[test]
fn a_failure_recovery_could_not_handle_halts_instead_of_failing_again() {
    let mut rig = Rig::new(true);
    let events = rig.workflow_through(EventKind::SignalGenerated);
    let failed = rig.fail(events.last().expect("signal"));
    let (_, effects) = rig.step(Input::ActorFailed(ActorFailure {
        slot: RECOVERY,
        error: "recovery broke".into(),
        failed_on: Some((failed.clone(), 2)),
        dead: Some(DeadDelivery {
            seq: 4,
            env: failed.clone(),
            failures: 2,
        }),
        decision: RestartDecision::Restart {
            delay: Duration::ZERO,
            attempt: 1,
        },
    }));
    assert_eq!(
        journaled_kinds(&effects),
        [EventKind::ActorRestarted, EventKind::TradingHalted]
    );
    assert_eq!(
        rig.core.halted().map(|h| h.reason),
        Some(HaltReason::RecoveryExhausted)
    );
    assert_eq!(rig.core.follow_up(&failed.correlation_id), FollowUp::Final);
}

#[test]
fn consumer_marks_are_kept_only_for_open_workflows_of_a_journaled_engine() {
    for journaled in [true, false] {
        let mut rig = Rig::new(journaled);
        let events = rig.workflow_through(EventKind::RebalancePlanned);
        let plan = events.last().expect("plan").clone();
        let (_, effects) = rig.step(Input::Consumed {
            consumer: "execution",
            env: plan.clone(),
        });
        let marks = effects
            .iter()
            .filter(|e| matches!(e, Effect::Mark(_)))
            .count();
        assert_eq!(marks, usize::from(journaled), "journaled {journaled}");
        assert_eq!(rig.core.already_handled("execution", &plan), journaled);
        assert!(!rig.core.already_handled("portfolio", &plan));
    }
    // A closed workflow's events need no mark, and count as handled.
    let mut rig = Rig::new(true);
    let events = rig.workflow_through(EventKind::ReconciliationCompleted);
    let (_, effects) = rig.step(Input::Consumed {
        consumer: "execution",
        env: events[2].clone(),
    });
    assert!(effects.is_empty(), "{effects:?}");
    assert!(rig.core.already_handled("execution", &events[2]));
}

#[test]
fn an_overdue_workflow_times_out_on_a_tick() {
    let mut rig = Rig::new(true);
    let events = rig.workflow_through(EventKind::SignalGenerated);
    let (_, effects) = rig.step(Input::Tick);
    assert!(effects.is_empty(), "not overdue yet: {effects:?}");
    rig.now += Duration::from_secs(61);
    let (_, effects) = rig.step(Input::Tick);
    assert_eq!(journaled_kinds(&effects), [EventKind::WorkflowFailed]);
    let batch = journaled(&effects);
    assert_eq!(batch[0].1.causation_id, Some(events[1].event_id));
    assert!(matches!(
        &batch[0].1.payload,
        Payload::WorkflowFailed(f) if f.reason == FailureReason::Timeout
    ));
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Audit(Audit::WorkflowEnded {
            status: WorkflowStatus::TimedOut,
            ..
        })
    )));
}

#[test]
fn a_journal_failure_halts_without_publishing() {
    let mut rig = Rig::new(true);
    let (_, effects) = rig.step(Input::JournalFailed {
        error: "disk full".into(),
        events: 3,
    });
    assert!(matches!(
        effects.as_slice(),
        [Effect::Gate { halted: true }]
    ));
    assert_eq!(
        rig.core.halted().map(|h| h.detail.as_str()),
        Some("journal write failed: disk full")
    );
}

#[test]
fn a_retry_is_the_successor_of_the_failed_workflow_and_giving_up_is_final() {
    let mut rig = Rig::new(true);
    let first = rig.open();
    let failed = rig.fail(&first);
    let c = first.correlation_id;
    assert_eq!(rig.core.follow_up(&c), FollowUp::Pending);
    let (answer, _) = rig.step(Input::Start {
        started: started(),
        triggered_by: Some(TriggeredBy {
            correlation_id: c,
            event_id: failed.event_id,
        }),
        correlation_id: None,
    });
    let Answer::Started(Ok(retry)) = answer else {
        panic!("a retry starts: {answer:?}");
    };
    assert_eq!(rig.core.follow_up(&c), FollowUp::Successor(retry));

    let mut rig = Rig::new(true);
    let first = rig.open();
    let failed = rig.fail(&first);
    let give_up = Envelope::caused_by(
        &failed,
        RecoveryAction {
            failed_correlation: first.correlation_id,
            action: RecoveryKind::GiveUp,
            attempt: 1,
            detail: String::new(),
        },
        "recovery",
        &SystemClock,
    );
    let (_, effects) = rig.publish_committed(Arc::new(give_up));
    assert_eq!(rig.core.follow_up(&first.correlation_id), FollowUp::Final);
    // Decided: the failed workflow's root goes.
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::RootForgotten(c) if *c == first.correlation_id)));
}

/// Events as the journal holds them: numbered from 1.
fn entries(events: &[Arc<Envelope>]) -> Vec<(u64, Envelope)> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| (i as u64 + 1, (**e).clone()))
        .collect()
}

#[test]
fn an_unfinished_workflow_is_handed_again_to_consumers_that_had_not_handled_it() {
    // A workflow stopped after its plan, which execution handled (its mark is kept):
    // at start the plan is not handed to execution again; the earlier events go to the
    // consumers whose latest event they are.
    let mut first = Rig::new(true);
    let events = first.workflow_through(EventKind::RebalancePlanned);
    let mark = ConsumerMark {
        consumer: "execution".into(),
        event_type: EventKind::RebalancePlanned.as_str().into(),
        correlation_id: events[0].correlation_id,
        payload_hash: events[2].payload_hash(),
        seq: 3,
    };
    let mut rig = Rig::new(true);
    let (_, effects) = rig.step(Input::Restore {
        halt: None,
        open: vec![entries(&events)],
        marks: vec![mark],
    });
    assert!(matches!(effects[0], Effect::RootOpened { .. }));
    assert_eq!(
        deliveries(&effects),
        [(STRATEGY, 1), (PORTFOLIO, 2)],
        "the plan is skipped for execution"
    );
    assert_eq!(rig.core.stats(rig.now).skipped_duplicates, 1);

    // Held: nothing is handed until asked; failing instead, per `recovery.resume`.
    let mut held = Rig::with(CoreSettings {
        hold_unfinished: true,
        resume: ResumeMode::Fail,
        ..settings(true)
    });
    let (_, effects) = held.step(Input::Restore {
        halt: None,
        open: vec![entries(&events)],
        marks: vec![],
    });
    assert!(deliveries(&effects).is_empty());
    let (answer, effects) = held.step(Input::ResumeUnfinished);
    assert_eq!(answer, Answer::Unfinished(1));
    assert_eq!(journaled_kinds(&effects), [EventKind::WorkflowFailed]);
}

// ---------------------------------------------------------------------------------
// The promises over random input sequences.

/// What the property test remembers of what the core did.
#[derive(Default)]
struct Record {
    /// Accepted, not yet committed (seq order).
    uncommitted: Vec<Accepted>,
    committed: HashSet<u64>,
    journaled: HashMap<EventId, Arc<Envelope>>,
    seqs: HashSet<u64>,
    delivered: HashSet<(usize, u64)>,
    dispatched: Vec<u64>,
    /// Per workflow, its latest accepted event.
    latest: HashMap<CorrelationId, Arc<Envelope>>,
    /// Per slot, events delivered to it.
    inbox: HashMap<usize, Vec<(u64, Arc<Envelope>)>>,
}

impl Record {
    /// Checks the effects of one input against the promises; `Err` names the one broken.
    fn take(&mut self, effects: Vec<Effect>, journaled: bool) -> Result<(), String> {
        let mut fresh = Vec::new();
        for effect in effects {
            match effect {
                Effect::Journal(a) => {
                    if !self.seqs.insert(a.0) {
                        return Err(format!("seq {} journaled twice", a.0));
                    }
                    fresh.push(a.1.clone());
                    self.journaled.insert(a.1.event_id, a.1.clone());
                    let at = self.uncommitted.partition_point(|(s, _, _)| *s < a.0);
                    self.uncommitted.insert(at, a);
                }
                Effect::Deliver { slot, seq, env, .. } => {
                    if journaled && !self.committed.contains(&seq) {
                        return Err(format!("seq {seq} delivered before it was committed"));
                    }
                    if !self.delivered.insert((slot, seq)) {
                        return Err(format!("seq {seq} delivered twice to slot {slot}"));
                    }
                    self.inbox.entry(slot).or_default().push((seq, env));
                }
                Effect::Dispatched { seq, .. } => {
                    if self.dispatched.last().is_some_and(|last| *last >= seq) {
                        return Err(format!("seq {seq} dispatched out of order"));
                    }
                    self.dispatched.push(seq);
                }
                _ => {}
            }
        }
        // Lineage: every accepted event's cause was accepted, in its workflow.
        for env in fresh {
            if let Some(cause) = env.causation_id {
                match self.journaled.get(&cause) {
                    Some(c) if c.correlation_id == env.correlation_id => {}
                    Some(_) => return Err(format!("{} caused across workflows", env.event_id)),
                    None => return Err(format!("{} caused by an unknown event", env.event_id)),
                }
            }
            self.latest.insert(env.correlation_id, env);
        }
        // Seqs are 1..=n without gaps.
        let n = self.seqs.len() as u64;
        if (1..=n).any(|s| !self.seqs.contains(&s)) {
            return Err(format!("journaled seqs have a gap below {n}"));
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
enum Op {
    Start,
    /// The next happy-path step (or, with `wild`, any event type) of workflow `wf`.
    Advance {
        wf: u8,
        wild: u8,
    },
    Resend {
        wf: u8,
    },
    Commit {
        n: u8,
    },
    Consume {
        slot: u8,
        pick: u8,
    },
    Fail {
        slot: u8,
        pick: u8,
        dead: bool,
        escalate: bool,
    },
    Tick {
        secs: u8,
    },
    Halt,
    Resume,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Start),
        6 => (any::<u8>(), any::<u8>()).prop_map(|(wf, wild)| Op::Advance { wf, wild }),
        1 => any::<u8>().prop_map(|wf| Op::Resend { wf }),
        4 => any::<u8>().prop_map(|n| Op::Commit { n }),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(slot, pick)| Op::Consume { slot, pick }),
        1 => (any::<u8>(), any::<u8>(), any::<bool>(), any::<bool>())
            .prop_map(|(slot, pick, dead, escalate)| Op::Fail { slot, pick, dead, escalate }),
        1 => (0u8..90).prop_map(|secs| Op::Tick { secs }),
        1 => Just(Op::Halt),
        1 => Just(Op::Resume),
    ]
}

fn next_kind(latest: &Envelope, wild: u8) -> EventKind {
    if wild < 40 {
        return EventKind::ALL[usize::from(wild) % EventKind::ALL.len()];
    }
    match latest.kind() {
        EventKind::WorkflowStarted => EventKind::SignalGenerated,
        k => HAPPY_PATH
            .iter()
            .position(|h| *h == k)
            .and_then(|i| HAPPY_PATH.get(i + 1))
            .copied()
            .unwrap_or(EventKind::OrderFilled),
    }
}

fn input_of(op: Op, record: &mut Record) -> Option<Input> {
    let workflows: Vec<Arc<Envelope>> = {
        let mut w: Vec<_> = record.latest.values().cloned().collect();
        w.sort_by_key(|e| e.event_id.to_string());
        w
    };
    let pick_wf = |i: u8| {
        workflows
            .get(usize::from(i) % workflows.len().max(1))
            .cloned()
    };
    Some(match op {
        Op::Start => Input::Start {
            started: started(),
            triggered_by: None,
            correlation_id: None,
        },
        Op::Advance { wf, wild } => {
            let latest = pick_wf(wf)?;
            let kind = next_kind(&latest, wild);
            let env = Envelope::caused_by(&latest, sample(kind), "test", &SystemClock);
            Input::Publish(Arc::new(env))
        }
        Op::Resend { wf } => Input::Publish(pick_wf(wf)?),
        Op::Commit { n } => {
            let n = (usize::from(n) % 4 + 1).min(record.uncommitted.len());
            let batch: Vec<Accepted> = record.uncommitted.drain(..n).collect();
            record.committed.extend(batch.iter().map(|a| a.0));
            Input::Committed(batch)
        }
        Op::Consume { slot, pick } => {
            let slot = usize::from(slot) % 5;
            let inbox = record.inbox.get(&slot)?;
            let (_, env) = inbox.get(usize::from(pick) % inbox.len())?;
            let consumer = [
                "strategy",
                "portfolio",
                "execution",
                "reconciliation",
                "recovery",
            ][slot];
            Input::Consumed {
                consumer,
                env: env.clone(),
            }
        }
        Op::Fail {
            slot,
            pick,
            dead,
            escalate,
        } => {
            let slot = usize::from(slot) % 5;
            let failed_on = record
                .inbox
                .get(&slot)
                .and_then(|inbox| inbox.get(usize::from(pick) % inbox.len().max(1)))
                .cloned();
            let delay = Duration::from_millis(1);
            Input::ActorFailed(ActorFailure {
                slot,
                error: "boom".into(),
                dead: failed_on
                    .clone()
                    .filter(|_| dead)
                    .map(|(seq, env)| DeadDelivery {
                        seq,
                        env,
                        failures: 2,
                    }),
                failed_on: failed_on.map(|(_, env)| (env, 1 + u8::from(dead))),
                decision: if escalate {
                    RestartDecision::Escalate { delay, attempt: 4 }
                } else {
                    RestartDecision::Restart { delay, attempt: 1 }
                },
            })
        }
        Op::Tick { .. } => Input::Tick,
        Op::Halt => Input::Halt {
            reason: HaltReason::Manual,
            detail: "test".into(),
        },
        Op::Resume => Input::Resume {
            detail: "test".into(),
        },
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Over random sequences of inputs: nothing is delivered before it is committed,
    /// nothing twice to one consumer, dispatch follows seq order, seqs have no gaps, and
    /// every accepted event's cause was accepted in its workflow.
    #[test]
    fn the_cores_promises_hold_over_random_inputs(
        ops in proptest::collection::vec(op(), 1..120),
        journaled in any::<bool>(),
    ) {
        let mut rig = Rig::new(journaled);
        let mut record = Record::default();
        for op in ops {
            if let Op::Tick { secs } = op {
                rig.now += Duration::from_secs(u64::from(secs));
            }
            let Some(input) = input_of(op, &mut record) else { continue };
            let (_, effects) = rig.step(input);
            record.take(effects, journaled).map_err(TestCaseError::fail)?;
            if !journaled {
                // Without a journal the shell dispatches at once.
                let batch: Vec<Accepted> = record.uncommitted.drain(..).collect();
                record.committed.extend(batch.iter().map(|a| a.0));
                let (_, effects) = rig.step(Input::Committed(batch));
                record.take(effects, journaled).map_err(TestCaseError::fail)?;
            }
        }
        let stats = rig.core.stats(rig.now);
        prop_assert_eq!(stats.last_seq, record.seqs.len() as u64);
    }
}
