//! The reconciliation actor on its own (no broker): it keeps no state between events,
//! so what it checks comes from the settlement alone, and a settlement of a workflow
//! that has already closed is not checked against a venue that later workflows moved.

use std::collections::BTreeMap;
use std::sync::Arc;

use alchemiser::actors::engine::EngineDeps;
use alchemiser::actors::reconciliation::ReconciliationActor;
use alchemiser::actors::supervision::{Emit, EventHandler, Reaction};
use alchemiser::clock::SystemClock;
use alchemiser::config::Config;
use alchemiser::domain::{RunMode, Side};
use alchemiser::events::{
    Envelope, OrderOutcome, OrderSettled, OutcomeStatus, Payload, ReconciliationStatus,
    WorkflowStarted,
};
use alchemiser::strategy::book::StrategyBook;
use alchemiser::venues::sim::SimVenue;
use chrono::NaiveDate;
use rust_decimal_macros::dec;

fn settlement() -> (Envelope, Envelope) {
    let started = Envelope::root(
        WorkflowStarted {
            as_of: NaiveDate::from_ymd_opt(2023, 9, 21).unwrap(),
            mode: RunMode::Paper,
            trigger: alchemiser::domain::Trigger::Test,
            attempt: 0,
        },
        "test",
        &SystemClock,
        None,
    );
    let settled = Envelope::caused_by(
        &started,
        OrderSettled {
            plan_hash: "p".into(),
            execution_plan_hash: "e".into(),
            orders: vec![OrderOutcome {
                client_order_id: "alc-1".into(),
                symbol: "AAPL".into(),
                side: Side::Buy,
                requested_qty: dec!(3),
                filled_qty: dec!(3),
                avg_price: Some(dec!(100)),
                status: OutcomeStatus::Filled,
                reason: None,
            }],
            placed: 1,
            succeeded: 1,
            traded_value: dec!(300),
            positions_before: Some(BTreeMap::from([("AAPL".into(), dec!(2))])),
        },
        "execution",
        &SystemClock,
    );
    (started, settled)
}

async fn outputs(reaction: Reaction) -> Vec<Emit> {
    match reaction {
        Reaction::Publish(emits) => emits,
        Reaction::Later(pending) => pending.await.unwrap(),
        Reaction::Streamed(_) => panic!("reconciliation does not stream"),
    }
}

fn status(emits: &[Emit]) -> Option<ReconciliationStatus> {
    emits.iter().find_map(|e| match &e.payload {
        Payload::ReconciliationCompleted(r) => Some(r.status),
        _ => None,
    })
}

#[actix_rt::test]
async fn a_settlement_is_checked_from_what_it_carries_alone() {
    // The venue holds what the settlement says: 2 before, 3 bought.
    let venue = Arc::new(SimVenue::with_cash(dec!(1000)));
    venue.adjust_position("AAPL", dec!(5));
    let deps = EngineDeps::new(
        Config::default(),
        Arc::new(SystemClock),
        venue,
        Arc::new(StrategyBook::empty()),
    );
    let (_, settled) = settlement();
    // No execution.started.v1 was ever seen (dead-lettered, or handled by an
    // incarnation that was restarted since).
    let mut actor = ReconciliationActor::new(&deps);
    let emits = outputs(actor.handle(&Arc::new(settled)).unwrap()).await;
    assert_eq!(status(&emits), Some(ReconciliationStatus::Ok));
}

#[actix_rt::test]
async fn a_settlement_of_a_closed_workflow_is_not_checked_against_a_venue_that_moved_on() {
    // Later workflows traded: the venue no longer shows this workflow's result.
    let venue = Arc::new(SimVenue::with_cash(dec!(1000)));
    venue.adjust_position("GOOG", dec!(40));
    let deps = EngineDeps::new(
        Config::default(),
        Arc::new(SystemClock),
        venue,
        Arc::new(StrategyBook::empty()),
    );
    let (started, settled) = settlement();
    let settled = Arc::new(settled);
    let mut actor = ReconciliationActor::new(&deps);
    // While the workflow is open, the same venue is drift...
    let emits = outputs(actor.handle(&settled).unwrap()).await;
    assert_eq!(status(&emits), Some(ReconciliationStatus::Drift));
    // ...but once it has closed (failed while this actor restarted), there is nothing
    // to check: no report, no halt.
    deps.roots.close(started.correlation_id);
    let emits = outputs(actor.handle(&settled).unwrap()).await;
    assert!(emits.is_empty(), "{emits:?}");
}
