//! The broker in a real actix system: lineage of a full workflow, refusals, retention.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use alchemiser::actors::broker::{Publish, PublishError, QueryTree};
use alchemiser::actors::engine::{self, standard_registry, Engine};
use alchemiser::causation::{Refusal, TreeNode};
use alchemiser::clock::SystemClock;
use alchemiser::events::*;
use alchemiser::workflow::WorkflowStatus;
use common::*;

fn shape(node: &TreeNode) -> String {
    let short = node.event_type.trim_end_matches(".v1");
    if node.children.is_empty() {
        short.to_string()
    } else {
        let kids: Vec<String> = node.children.iter().map(shape).collect();
        format!("{short}[{}]", kids.join(","))
    }
}

fn audited_engine(
    config: alchemiser::config::Config,
) -> (
    actix::Addr<alchemiser::actors::broker::Broker>,
    Arc<Mutex<Vec<Envelope>>>,
) {
    audited(deps(config))
}

fn audited(
    deps: engine::EngineDeps,
) -> (
    actix::Addr<alchemiser::actors::broker::Broker>,
    Arc<Mutex<Vec<Envelope>>>,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut registry = standard_registry(deps);
    let s = seen.clone();
    registry.add("audit", EventKind::ALL, move || Recorder {
        seen: s.clone(),
    });
    (
        Engine::with_registry(registry).start().broker().clone(),
        seen,
    )
}

/// A workflow's events as the audit actor saw them, once its end is seen.
async fn events_of(seen: &Arc<Mutex<Vec<Envelope>>>, id: CorrelationId) -> Vec<Envelope> {
    assert!(
        eventually(Duration::from_secs(5), || {
            let seen = seen.clone();
            async move {
                seen.lock()
                    .unwrap()
                    .iter()
                    .any(|e| e.correlation_id == id && e.kind() == EventKind::WorkflowCompleted)
            }
        })
        .await
    );
    seen.lock()
        .unwrap()
        .iter()
        .filter(|e| e.correlation_id == id)
        .cloned()
        .collect()
}

#[actix_rt::test]
async fn full_workflow_chain_is_intact_and_has_the_expected_shape() {
    // The bundled book from $100,000 cash: the plan buys, so every step runs.
    let (config, book, as_of) = bundled();
    let deps = engine::EngineDeps::new(config, Arc::new(SystemClock), sim(&book, as_of), book);
    let (broker, seen) = audited(deps);
    let id = start_workflow(&broker, as_of).await;
    let summary = finish(&broker, id, Duration::from_secs(10)).await;
    assert_eq!(summary.status, WorkflowStatus::Completed);
    let events = events_of(&seen, id).await;
    let orders = events
        .iter()
        .filter(|e| e.kind() == EventKind::OrderSubmitted)
        .count();
    assert!(orders > 0, "the plan trades");
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind() == EventKind::OrderFilled)
            .count(),
        orders
    );
    assert_eq!(events.len(), 8 + 2 * orders);
    assert_eq!(events[0].kind(), EventKind::WorkflowStarted);
    assert!(
        events[0].causation_id.is_none(),
        "the root has no causation"
    );
    for (i, e) in events.iter().enumerate().skip(1) {
        let cause = e
            .causation_id
            .expect("every non-root event has a causation");
        assert!(
            events[..i].iter().any(|earlier| earlier.event_id == cause),
            "{} is caused by an earlier event of the same workflow",
            e.event_type()
        );
        assert!(e.triggered_by.is_none());
    }

    let tree = broker
        .send(QueryTree(id))
        .await
        .unwrap()
        .expect("tree kept");
    let legs = vec!["execution.order.submitted[execution.order.filled]"; orders].join(",");
    assert_eq!(
        shape(&tree.root),
        format!(
            "workflow.started[strategy.signal.generated[portfolio.allocation.compared,\
portfolio.rebalance.planned[execution.started[{legs},execution.order.settled[\
reconciliation.completed[workflow.completed]]]]]]"
        )
    );
    assert_eq!(tree.root.size(), 8 + 2 * orders);
}

/// A plan that holds everything (the empty book: all cash, from all cash) completes its
/// workflow at once: no execution, nothing to reconcile.
#[actix_rt::test]
async fn a_plan_without_trades_completes_the_workflow_with_the_plan() {
    let (broker, seen) = audited_engine(test_config());
    let id = start_workflow(&broker, day(4)).await;
    let summary = finish(&broker, id, Duration::from_secs(10)).await;
    assert_eq!(summary.status, WorkflowStatus::Completed);
    assert_eq!(summary.orders_placed, 0);
    let events = events_of(&seen, id).await;
    let tree = broker
        .send(QueryTree(id))
        .await
        .unwrap()
        .expect("tree kept");
    assert_eq!(
        shape(&tree.root),
        "workflow.started[strategy.signal.generated[portfolio.allocation.compared,\
portfolio.rebalance.planned[workflow.completed]]]"
    );
    assert_eq!(events.len(), 5);
    let s = stats(&broker).await;
    assert_eq!(s.published_of(EventKind::ExecutionStarted), 0);
    assert_eq!(s.published_of(EventKind::ReconciliationCompleted), 0);
}

#[actix_rt::test]
async fn bad_causation_is_refused_with_an_event_and_a_counter() {
    let (broker, seen) = audited_engine(test_config());
    let clock = SystemClock;
    let a = start_workflow(&broker, day(4)).await;
    finish(&broker, a, Duration::from_secs(10)).await;

    // Unknown causation.
    let stray_parent = Envelope::root(
        RecoveryAction {
            failed_correlation: CorrelationId::new(),
            action: RecoveryKind::Noted,
            attempt: 0,
            detail: "never published".into(),
        },
        "test",
        &clock,
        None,
    );
    let orphan = Envelope::caused_by(
        &stray_parent,
        RecoveryAction {
            failed_correlation: a,
            action: RecoveryKind::Noted,
            attempt: 0,
            detail: "orphan".into(),
        },
        "test",
        &clock,
    );
    let orphan_id = orphan.event_id;
    let err = broker
        .send(Publish::from(orphan))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(
        err,
        PublishError::Refused(Refusal::UnknownCausation { .. })
    ));

    // Causation from another correlation.
    let b_root = Envelope::root(
        RecoveryAction {
            failed_correlation: CorrelationId::new(),
            action: RecoveryKind::Noted,
            attempt: 0,
            detail: "b".into(),
        },
        "test",
        &clock,
        None,
    );
    let b_root_id = b_root.event_id;
    broker
        .send(Publish::from(b_root.clone()))
        .await
        .unwrap()
        .unwrap();
    let mut cross = Envelope::caused_by(
        &b_root,
        RecoveryAction {
            failed_correlation: a,
            action: RecoveryKind::Noted,
            attempt: 0,
            detail: "cross".into(),
        },
        "test",
        &clock,
    );
    cross.correlation_id = a;
    let err = broker
        .send(Publish::from(cross))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(err, PublishError::Refused(Refusal::CrossCorrelation { causation, .. }) if causation == b_root_id)
    );

    // The same event twice: a resend (a handling repeated after a crash), dropped
    // without a rejection and without a second copy.
    let err = broker
        .send(Publish::from(b_root.clone()))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, PublishError::AlreadyAccepted(id) if id == b_root_id));
    // An event of another chain under a known id is not a resend: refused.
    let mut impostor = b_root;
    impostor.correlation_id = a;
    let err = broker
        .send(Publish::from(impostor))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(
        err,
        PublishError::Refused(Refusal::DuplicateEvent(_))
    ));

    let s = stats(&broker).await;
    assert_eq!(s.rejected, 3);
    assert_eq!(s.resends_dropped, 1);
    assert_eq!(s.published_of(EventKind::EventRejected), 3);
    assert_eq!(s.published_of(EventKind::RecoveryAction), 1);
    assert!(eventually(Duration::from_secs(5), || {
        let seen = seen.clone();
        async move {
            seen.lock().unwrap().iter().any(|e| matches!(&e.payload,
                Payload::EventRejected(r) if r.event_id == orphan_id && r.reason.contains("not an earlier event")))
        }
    })
    .await);

    // The broker still works.
    let c = start_workflow(&broker, day(5)).await;
    assert_eq!(
        finish(&broker, c, Duration::from_secs(10)).await.status,
        WorkflowStatus::Completed
    );
}

#[actix_rt::test]
async fn an_event_out_of_workflow_order_is_refused() {
    let broker = start_standard(test_config());
    let clock = SystemClock;
    let started = Envelope::root(
        WorkflowStarted {
            as_of: day(4),
            mode: Default::default(),
            trigger: alchemiser::domain::Trigger::Test,
            attempt: 0,
        },
        "test",
        &clock,
        None,
    );
    // Not routed anywhere yet: publish the root by hand, then a settlement right after it.
    broker
        .send(Publish::from(started.clone()))
        .await
        .unwrap()
        .unwrap();
    let settled = Envelope::caused_by(
        &started,
        OrderSettled {
            plan_hash: "p".into(),
            execution_plan_hash: "e".into(),
            orders: vec![],
            placed: 0,
            succeeded: 0,
            traded_value: Default::default(),
            positions_before: None,
        },
        "test",
        &clock,
    );
    let err = broker
        .send(Publish::from(settled))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        err.to_string().contains("execution.order.settled.v1"),
        "{err}"
    );
}

#[actix_rt::test]
async fn finished_chains_are_dropped_beyond_retention() {
    let mut config = test_config();
    config.engine.retain_finished_workflows = 3;
    let broker = start_standard(config);
    let mut ids = Vec::new();
    for d in 1..=6 {
        let id = start_workflow(&broker, day(d)).await;
        finish(&broker, id, Duration::from_secs(10)).await;
        ids.push(id);
    }
    let s = stats(&broker).await;
    assert_eq!(s.chains_in_memory, 3);
    // Each all-cash workflow: started, signal, compared, planned, completed.
    assert_eq!(s.events_in_memory, 3 * 5);
    assert!(broker.send(QueryTree(ids[0])).await.unwrap().is_none());
    assert!(broker.send(QueryTree(ids[5])).await.unwrap().is_some());
    assert_eq!(s.published_of(EventKind::WorkflowCompleted), 6);
}

/// A tap sees every accepted event once, in sequence order, by the time the workflow's
/// end is answered: what the subscribed audit actor sees of the workflow, in the same order.
#[actix_rt::test]
async fn a_tap_sees_every_event_in_sequence_order() {
    use alchemiser::actors::broker::Tap;
    let (broker, seen) = audited_engine(test_config());
    let tapped: Arc<Mutex<Vec<(u64, Envelope)>>> = Arc::default();
    let t = tapped.clone();
    broker
        .send(Tap(Box::new(move |seq, env| {
            t.lock().unwrap().push((seq, Envelope::clone(env)));
        })))
        .await
        .unwrap();
    let id = start_workflow(&broker, day(4)).await;
    let summary = finish(&broker, id, Duration::from_secs(10)).await;
    assert_eq!(summary.status, WorkflowStatus::Completed);

    let tapped = tapped.lock().unwrap().clone();
    assert!(tapped.windows(2).all(|w| w[0].0 < w[1].0), "seqs increase");
    let ids: Vec<EventId> = tapped.iter().map(|(_, e)| e.event_id).collect();
    assert_eq!(tapped.len(), 5, "{:?}", ids);
    assert_eq!(tapped[4].1.kind(), EventKind::WorkflowCompleted);
    assert!(
        eventually(Duration::from_secs(5), || {
            let seen = seen.clone();
            async move { seen.lock().unwrap().len() >= 5 }
        })
        .await
    );
    let delivered: Vec<EventId> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.correlation_id == id)
        .map(|e| e.event_id)
        .collect();
    assert_eq!(ids, delivered);
}

/// A waiter that asks while an after-the-fact event of a closed workflow (a restart notice)
/// is still being committed hears of the workflow once that event is dispatched. It used
/// to be answered only by the closing event, already gone by then: it waited forever.
#[actix_rt::test]
async fn a_waiter_asking_while_a_late_event_commits_is_answered() {
    use alchemiser::actors::broker::AwaitWorkflow;
    use alchemiser::journal::{Journal, SyncMode};
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(&dir.path().join("journal.sqlite"), SyncMode::Normal).unwrap();
    let broker = Engine::builder(deps(test_config()))
        .journal(Some(journal))
        .start()
        .broker()
        .clone();
    let id = start_workflow(&broker, day(4)).await;
    assert_eq!(
        finish(&broker, id, Duration::from_secs(10)).await.status,
        WorkflowStatus::Completed
    );
    let tree = broker
        .send(QueryTree(id))
        .await
        .unwrap()
        .expect("tree kept");
    fn completed(node: &TreeNode) -> Option<EventId> {
        if node.event_type == EventKind::WorkflowCompleted.as_str() {
            return Some(node.event_id);
        }
        node.children.iter().find_map(completed)
    }
    let clock = SystemClock;
    let mut parent = Envelope::root(
        WorkflowCompleted {
            orders_placed: 0,
            duration_ms: 0,
        },
        "broker",
        &clock,
        None,
    );
    parent.event_id = completed(&tree.root).expect("completed event");
    parent.correlation_id = id;
    let notice = Envelope::caused_by(
        &parent,
        ActorRestarted {
            actor: "execution".into(),
            error: "late crash".into(),
            failures: 1,
            dead_lettered: false,
        },
        "broker",
        &clock,
    );
    // Queued back to back: the broker takes the wait while the notice is being committed.
    let published = broker.send(Publish::from(notice));
    let waited = broker.send(AwaitWorkflow(id));
    published.await.unwrap().unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), waited)
        .await
        .expect("the waiter is answered")
        .unwrap()
        .expect("workflow known");
    assert_eq!(answer.status, WorkflowStatus::Completed);
}

/// `RunWorkflow` starts a workflow and answers when it has ended, in one message; while
/// trading is halted it is refused like `StartWorkflow`.
#[actix_rt::test]
async fn run_workflow_starts_and_answers_at_the_end() {
    use alchemiser::actors::broker::{Halt, RunWorkflow, StartWorkflow};
    let (broker, seen) = audited_engine(test_config());
    let start = |as_of| StartWorkflow {
        started: WorkflowStarted {
            as_of,
            mode: Default::default(),
            trigger: alchemiser::domain::Trigger::Manual,
            attempt: 0,
        },
        triggered_by: None,
        correlation_id: None,
    };
    let (id, summary) = tokio::time::timeout(
        Duration::from_secs(10),
        broker.send(RunWorkflow(start(day(4)))),
    )
    .await
    .expect("answered in time")
    .unwrap()
    .expect("accepted");
    let summary = summary.expect("workflow known");
    assert_eq!(summary.correlation_id, id);
    assert_eq!(summary.status, WorkflowStatus::Completed);
    // Answered at the end: every event of the workflow was published by then.
    assert_eq!(events_of(&seen, id).await.len(), 5);

    broker
        .send(Halt {
            reason: HaltReason::Manual,
            detail: "test".into(),
        })
        .await
        .unwrap();
    let refused = broker.send(RunWorkflow(start(day(5)))).await.unwrap();
    assert!(
        matches!(refused, Err(PublishError::Halted(_))),
        "{refused:?}"
    );
}
