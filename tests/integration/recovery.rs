//! The recovery actor: a failed workflow is retried as a new workflow triggered by the
//! failure; after `recovery.max_attempts` retries it gives up and halts trading. Each
//! step is an event.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use alchemiser::actors::broker::{FollowUp, QueryFollowUp, QueryTree, Resume};
use alchemiser::actors::engine::await_outcome;
use alchemiser::actors::engine::{self, Engine, EngineDeps};
use alchemiser::clock::SystemClock;
use alchemiser::events::*;
use alchemiser::venues::faulty::FaultyVenue;
use alchemiser::workflow::WorkflowStatus;
use common::*;

#[actix_rt::test]
async fn a_failed_workflow_is_retried_and_the_retry_is_linked_to_the_failure() {
    let (config, book, as_of) = bundled();
    let venue = Arc::new(FaultyVenue::new(sim(&book, as_of)));
    venue.fail_submits(1);
    let deps = EngineDeps::new(config, Arc::new(SystemClock), venue.clone(), book);
    let broker = Engine::builder(deps).start().broker().clone();
    let first = try_start_workflow(&broker, as_of).await.unwrap();
    let attempts = await_outcome(&broker, first, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0].status, WorkflowStatus::Failed);
    assert_eq!(attempts[1].status, WorkflowStatus::Completed);
    let retry = attempts[1].correlation_id;
    assert_eq!(retry, alchemiser::recovery::retry_correlation(first));
    assert_eq!(
        broker.send(QueryFollowUp(first)).await.unwrap(),
        FollowUp::Successor(retry)
    );
    // The failed workflow's tree ends with recovery's decision.
    let tree = broker.send(QueryTree(first)).await.unwrap().unwrap();
    let mut kinds = Vec::new();
    fn walk(n: &alchemiser::causation::TreeNode, out: &mut Vec<&'static str>) {
        out.push(n.event_type);
        n.children.iter().for_each(|c| walk(c, out));
    }
    walk(&tree.root, &mut kinds);
    assert!(kinds.contains(&"recovery.action.v1"), "{kinds:?}");
    assert_eq!(venue.injected(), 1);
}

#[actix_rt::test]
async fn recovery_gives_up_after_its_retries_and_halts_until_resumed() {
    let (mut config, book, as_of) = bundled();
    config.recovery.max_attempts = 1;
    let venue = Arc::new(FaultyVenue::new(sim(&book, as_of)));
    venue.fail_submits(1000);
    let deps = EngineDeps::new(config, Arc::new(SystemClock), venue.clone(), book);
    let gate = deps.gate.clone();
    let broker = Engine::builder(deps).start().broker().clone();
    let first = try_start_workflow(&broker, as_of).await.unwrap();
    let attempts = await_outcome(&broker, first, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(attempts.len(), 2, "one retry: {attempts:?}");
    assert!(attempts.iter().all(|a| a.status == WorkflowStatus::Failed));
    let halted = eventually(Duration::from_secs(5), || {
        let b = broker.clone();
        async move { stats(&b).await.halted.is_some() }
    })
    .await;
    assert!(halted, "giving up halts trading");
    let h = stats(&broker).await.halted.unwrap();
    assert_eq!(h.reason, HaltReason::RecoveryExhausted);
    assert!(h.detail.contains("after 1 retries"), "{}", h.detail);
    assert!(gate.is_halted());
    assert!(
        try_start_workflow(&broker, as_of).await.is_err(),
        "no new workflow while halted"
    );
    assert!(broker
        .send(Resume {
            detail: "test".into()
        })
        .await
        .unwrap());
    assert!(!gate.is_halted());
    assert!(stats(&broker).await.halted.is_none());
    venue.fail_submits(0);
    let again = try_start_workflow(&broker, as_of).await.unwrap();
    let summary = finish(&broker, again, Duration::from_secs(10)).await;
    assert_eq!(summary.status, WorkflowStatus::Completed);
}

/// `status` reads the story back from the journal: the failed first attempt with its
/// reason and restarts, and recovery's retry that completed.
#[actix_rt::test]
async fn status_shows_the_failure_the_restart_and_the_retry() {
    use alchemiser::drivers::drill::{FaultPlan, HandlerFaultKind, Injected};
    use alchemiser::journal::status::{recent_workflows, table};
    use alchemiser::journal::{outbox::Outbox, Journal, SyncMode};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite");
    let journal = Journal::open(&path, SyncMode::Normal).unwrap();
    let (config, book, as_of) = bundled();
    let venue = Arc::new(FaultyVenue::new(sim(&book, as_of)));
    venue.fail_submits(1);
    let deps = EngineDeps::new(config, Arc::new(SystemClock), venue, book)
        .with_outbox(Outbox::open(&path).unwrap());
    let mut registry = engine::standard_registry(deps);
    let fault = FaultPlan::new(
        HandlerFaultKind::PanicOn {
            kind: EventKind::SignalGenerated,
            times: 1,
        },
        Injected::default(),
    );
    registry.wrap("portfolio", move |h| fault.wrap(h));
    let broker = Engine::with_registry(registry)
        .journal(Some(journal))
        .start()
        .broker()
        .clone();
    let first = try_start_workflow(&broker, as_of).await.unwrap();
    let attempts = await_outcome(&broker, first, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    let settled = eventually(Duration::from_secs(5), || {
        let b = broker.clone();
        async move { stats(&b).await.actors.iter().all(|a| a.unacknowledged == 0) }
    })
    .await;
    assert!(settled);
    let rows = recent_workflows(&Journal::open(&path, SyncMode::Normal).unwrap(), 10).unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let (retry, failed) = (&rows[0], &rows[1]);
    assert_eq!(
        (retry.status.as_str(), retry.trigger.as_str(), retry.attempt),
        ("completed", "recovery", 1)
    );
    assert!(retry.orders >= 1);
    assert_eq!(failed.status.as_str(), "failed");
    assert_eq!(failed.restarts, 1, "the portfolio panic");
    assert_eq!(failed.dead_letters, 0);
    assert!(
        failed
            .failure
            .as_deref()
            .unwrap()
            .contains("execution (step_failed)"),
        "{:?}",
        failed.failure
    );
    let text = table(&rows);
    assert!(
        text.contains("recovery #1") && text.contains("completed") && text.contains("failed"),
        "{text}"
    );
}
