//! Supervision in a real actix system: restarts with redelivery, dead letters, halting
//! on restart intensity, no loss under crashes, and timeouts of hung workflows.

use crate::common;

use std::collections::HashSet;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alchemiser::actors::broker::{Publish, PublishError, StartWorkflow};
use alchemiser::actors::engine::Engine;
use alchemiser::actors::supervision::{EventHandler, HandlerFault, Reaction, Registry};
use alchemiser::clock::SystemClock;
use alchemiser::events::*;
use alchemiser::workflow::WorkflowStatus;
use common::*;

#[actix_rt::test]
async fn a_panicking_actor_is_restarted_and_the_event_redelivered() {
    let remaining = Arc::new(AtomicU32::new(1));
    let r = remaining.clone();
    let registry = registry_with_strategy(deps(test_config()), move |inner| PanicOn {
        inner,
        pick: |e: &Envelope| e.kind() == EventKind::WorkflowStarted,
        remaining: r.clone(),
    });
    let broker = Engine::with_registry(registry).start().broker().clone();
    let id = start_workflow(&broker, day(4)).await;
    let summary = finish(&broker, id, Duration::from_secs(10)).await;
    assert_eq!(summary.status, WorkflowStatus::Completed, "{summary:?}");

    let s = stats(&broker).await;
    assert_eq!(s.restarts, 1);
    assert_eq!(s.actor("strategy").unwrap().restarts, 1);
    assert_eq!(s.redelivered, 1, "the event in hand was delivered again");
    assert!(s.dead_letters.is_empty());
    assert_eq!(
        s.published_of(EventKind::SignalGenerated),
        1,
        "one signal, not two"
    );
    assert!(s.halted.is_none());
}

#[actix_rt::test]
async fn a_poison_event_is_dead_lettered_and_fails_only_its_workflow() {
    let poison = day(13);
    let registry = registry_with_strategy(deps(test_config()), move |inner| PanicOn {
        inner,
        pick: move |e: &Envelope| is_started_on(e, poison),
        remaining: Arc::new(AtomicU32::new(u32::MAX)),
    });
    let broker = Engine::with_registry(registry).start().broker().clone();
    let bad = start_workflow(&broker, poison).await;
    let good = start_workflow(&broker, day(14)).await;

    let bad_summary = finish(&broker, bad, Duration::from_secs(10)).await;
    assert_eq!(bad_summary.status, WorkflowStatus::Failed);
    let failure = bad_summary.failure.expect("failure recorded");
    assert!(failure.starts_with("dead_letter"), "{failure}");
    assert!(
        failure.contains("strategy failed twice on workflow.started.v1"),
        "{failure}"
    );
    assert!(failure.contains("injected fault"), "{failure}");

    let good_summary = finish(&broker, good, Duration::from_secs(10)).await;
    assert_eq!(good_summary.status, WorkflowStatus::Completed);

    let s = stats(&broker).await;
    assert_eq!(s.dead_letters.len(), 1);
    let dl = &s.dead_letters[0];
    assert_eq!(
        (dl.actor, dl.event_type, dl.correlation_id, dl.attempts),
        ("strategy", "workflow.started.v1", bad, 2)
    );
    assert_eq!(s.restarts, 2);
    // Recovery heard about the failure.
    assert!(
        eventually(Duration::from_secs(5), || {
            let broker = broker.clone();
            async move { stats(&broker).await.published_of(EventKind::RecoveryAction) == 1 }
        })
        .await
    );
}

#[actix_rt::test]
async fn exceeding_restart_intensity_halts_trading() {
    let mut config = test_config();
    config.supervision.max_restarts = 1;
    let deps = deps(config);
    let gate = deps.gate.clone();
    let registry = registry_with_strategy(deps, move |inner| PanicOn {
        inner,
        pick: |e: &Envelope| e.kind() == EventKind::WorkflowStarted,
        remaining: Arc::new(AtomicU32::new(u32::MAX)),
    });
    let broker = Engine::with_registry(registry).start().broker().clone();
    let id = start_workflow(&broker, day(4)).await;
    let summary = finish(&broker, id, Duration::from_secs(10)).await;
    assert_eq!(summary.status, WorkflowStatus::Failed);

    let s = stats(&broker).await;
    let halt = s
        .halted
        .clone()
        .expect("halted after the second failure in the window");
    assert_eq!(halt.reason, HaltReason::RestartIntensity);
    assert!(
        halt.detail.contains("strategy failed 2 times"),
        "{}",
        halt.detail
    );
    assert_eq!(s.published_of(EventKind::TradingHalted), 1);
    assert!(gate.is_halted(), "execution sees the halt");

    let refused = broker
        .send(StartWorkflow {
            started: WorkflowStarted {
                as_of: day(5),
                mode: Default::default(),
                trigger: alchemiser::domain::Trigger::Test,
                attempt: 0,
            },
            triggered_by: None,
            correlation_id: None,
        })
        .await
        .unwrap();
    assert!(
        matches!(refused, Err(PublishError::Halted(_))),
        "{refused:?}"
    );
}

/// Counts the fills it handled and panics on the first delivery of every 997th.
struct CrashingCounter {
    handled: Arc<Mutex<Vec<u64>>>,
    crashed: Arc<Mutex<HashSet<u64>>>,
}

impl EventHandler for CrashingCounter {
    fn handle(&mut self, event: &Arc<Envelope>) -> Result<Reaction, HandlerFault> {
        let Payload::OrderFilled(fill) = &event.payload else {
            return Ok(Reaction::nothing());
        };
        let n: u64 = fill
            .fill_id
            .parse()
            .map_err(|_| HandlerFault("bad fill id".into()))?;
        if n.is_multiple_of(997) && self.crashed.lock().unwrap().insert(n) {
            panic!("crash on fill {n}");
        }
        self.handled.lock().unwrap().push(n);
        Ok(Reaction::nothing())
    }
}

#[actix_rt::test]
async fn ten_thousand_events_survive_a_crashing_subscriber() {
    const N: u64 = 10_000;
    let handled = Arc::new(Mutex::new(Vec::new()));
    let crashed = Arc::new(Mutex::new(HashSet::new()));
    let mut config = test_config();
    config.supervision.max_restarts = 100;
    let mut registry = Registry::new(deps(config));
    let (h, c) = (handled.clone(), crashed.clone());
    registry.add("counter", &[EventKind::OrderFilled], move || {
        CrashingCounter {
            handled: h.clone(),
            crashed: c.clone(),
        }
    });
    let broker = Engine::with_registry(registry).start().broker().clone();
    let clock = SystemClock;
    let fill = |n: u64| OrderFilled {
        client_order_id: "c".into(),
        fill_id: n.to_string(),
        symbol: "SPY".into(),
        side: alchemiser::domain::Side::Buy,
        qty: 1.into(),
        price: 1.into(),
        commission: 0.into(),
    };
    let root = Envelope::root(fill(0), "test", &clock, None);
    broker
        .send(Publish::from(root.clone()))
        .await
        .unwrap()
        .unwrap();
    for n in 1..N {
        broker.do_send(Publish::from(Envelope::caused_by(
            &root,
            fill(n),
            "test",
            &clock,
        )));
    }
    let done = eventually(Duration::from_secs(60), || {
        let handled = handled.clone();
        async move { handled.lock().unwrap().len() as u64 >= N }
    })
    .await;
    let got = handled.lock().unwrap().clone();
    assert!(done, "only {} of {N} handled", got.len());
    assert_eq!(got.len() as u64, N, "each event handled exactly once");
    assert_eq!(distinct(&got) as u64, N, "no duplicates");
    let expected_crashes = (0..N).filter(|n| n % 997 == 0).count() as u64;
    assert_eq!(crashed.lock().unwrap().len() as u64, expected_crashes);

    let s = stats(&broker).await;
    assert_eq!(s.published_of(EventKind::OrderFilled), N);
    assert_eq!(s.rejected, 0);
    assert_eq!(s.restarts, expected_crashes);
    assert!(s.dead_letters.is_empty());
    let counter = s.actor("counter").unwrap();
    assert_eq!(counter.handled, N);
    assert_eq!(counter.unacknowledged, 0);
    // Every publish was handed over once; what a crash left unhandled was sent again.
    assert_eq!(s.delivered, N);
    assert!(s.redelivered >= expected_crashes);
}

#[actix_rt::test]
async fn a_handler_that_never_answers_times_the_workflow_out() {
    let mut config = test_config();
    config.engine.workflow_timeout_secs = 1;
    let hung = day(20);
    let registry = registry_with_strategy(deps(config), move |inner| HangOn {
        inner,
        pick: move |e: &Envelope| is_started_on(e, hung),
    });
    let broker = Engine::with_registry(registry).start().broker().clone();
    let id = start_workflow(&broker, hung).await;
    let summary = finish(&broker, id, Duration::from_secs(10)).await;
    assert_eq!(summary.status, WorkflowStatus::TimedOut);
    let failure = summary.failure.unwrap();
    assert!(failure.starts_with("timeout"), "{failure}");
    assert!(failure.contains("in stage started"), "{failure}");
    assert!(
        eventually(Duration::from_secs(5), || {
            let broker = broker.clone();
            async move { stats(&broker).await.published_of(EventKind::RecoveryAction) == 1 }
        })
        .await
    );
}

#[actix_rt::test]
async fn a_hung_handler_is_aborted_so_later_workflows_still_run() {
    let mut config = test_config();
    config.engine.handler_timeout_secs = 1;
    let hung = day(20);
    let registry = registry_with_strategy(deps(config), move |inner| HangOn {
        inner,
        pick: move |e: &Envelope| is_started_on(e, hung),
    });
    let broker = Engine::with_registry(registry).start().broker().clone();
    let stuck = start_workflow(&broker, hung).await;
    let next = start_workflow(&broker, day(21)).await;

    let summary = finish(&broker, stuck, Duration::from_secs(20)).await;
    assert_eq!(summary.status, WorkflowStatus::Failed);
    let failure = summary.failure.unwrap();
    assert!(
        failure.starts_with("dead_letter") && failure.contains("handler timeout"),
        "{failure}"
    );
    assert_eq!(
        finish(&broker, next, Duration::from_secs(20)).await.status,
        WorkflowStatus::Completed
    );
    let s = stats(&broker).await;
    assert_eq!(s.actor("strategy").unwrap().restarts, 2);
    assert_eq!(s.dead_letters.len(), 1);
}
