//! The execution core on its own: a plan executed over the simulated venue by the
//! [`Executor`], with no actor system, only an async runtime.

use crate::common;

use std::sync::Arc;

use alchemiser::clock::SystemClock;
use alchemiser::domain::{PlanAction, Side};
use alchemiser::events::*;
use alchemiser::execution::executor::{Executor, Output};
use alchemiser::halt::TradingGate;
use alchemiser::journal::outbox::SharedOutbox;
use alchemiser::risk::{DeployedLedger, RiskLimits};
use alchemiser::venue::Venue;
use alchemiser::venues::sim::{SimCosts, SimVenue};
use alchemiser::workflow_roots::WorkflowRoots;
use chrono::NaiveDate;
use rust_decimal_macros::dec;

/// Sell 10 AAA at 100, buy 5 BBB at 50: a plan as the portfolio core makes them.
fn plan() -> RebalancePlanned {
    let items = vec![
        common::plan_item("AAA", PlanAction::Sell, dec!(10), dec!(100)),
        common::plan_item("BBB", PlanAction::Buy, dec!(5), dec!(50)),
    ];
    RebalancePlanned {
        signal_hash: "s".into(),
        plan_hash: RebalancePlanned::compute_hash("s", dec!(2000), dec!(1000), &items),
        account_snapshot_id: String::new(),
        portfolio_value: dec!(2000),
        cash: dec!(1000),
        investable: dec!(1980),
        items,
    }
}

fn venue() -> Arc<SimVenue> {
    let v = Arc::new(SimVenue::new(dec!(1000), SimCosts::default(), None));
    v.set_mark("AAA", dec!(100));
    v.set_mark("BBB", dec!(50));
    v.adjust_position("AAA", dec!(10));
    v
}

fn executor(venue: Arc<SimVenue>, gate: TradingGate) -> Executor {
    Executor {
        venue,
        gate,
        costs: SimCosts::default(),
        qty_dp: 6,
        smart: None,
        clock: Arc::new(SystemClock),
        intents: None,
        pause: Arc::new(|wait| Box::pin(tokio::time::sleep(wait))),
        risk: RiskLimits::default(),
        deployed: DeployedLedger::default(),
        roots: WorkflowRoots::remembering(10),
    }
}

fn kinds(outputs: &[Output]) -> Vec<EventKind> {
    outputs.iter().map(|o| o.payload.kind()).collect()
}

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 1, 2).unwrap()
}

#[tokio::test]
async fn a_plan_is_placed_sells_first_and_each_fill_follows_its_submission() {
    let v = venue();
    let out = executor(v.clone(), TradingGate::default())
        .execute(CorrelationId::new(), &plan(), day())
        .await;
    use EventKind as K;
    assert_eq!(
        kinds(&out),
        [
            K::ExecutionStarted,
            K::OrderSubmitted,
            K::OrderFilled,
            K::OrderSubmitted,
            K::OrderFilled,
            K::OrderSettled
        ]
    );
    // Each fill is caused by its submission; submissions and the settlement by the start.
    assert_eq!(out[2].after, Some(1));
    assert_eq!(out[4].after, Some(3));
    assert_eq!((out[1].after, out[5].after), (Some(0), Some(0)));
    let Payload::OrderSubmitted(first) = &out[1].payload else {
        panic!()
    };
    assert_eq!((first.symbol.as_str(), first.side), ("AAA", Side::Sell));
    let Payload::OrderSettled(settled) = &out[5].payload else {
        panic!()
    };
    assert_eq!((settled.placed, settled.succeeded), (2, 2));
    assert_eq!(
        settled.positions_before.as_ref().unwrap().get("AAA"),
        Some(&dec!(10))
    );
    let held = v.account().await.unwrap().positions;
    assert_eq!(held.get("AAA"), None);
    assert_eq!(held.get("BBB"), Some(&dec!(5)));
}

#[tokio::test]
async fn the_same_plan_handled_again_adopts_its_orders_instead_of_sending_more() {
    let v = venue();
    let ex = executor(v.clone(), TradingGate::default());
    let correlation = CorrelationId::new();
    ex.execute(correlation, &plan(), day()).await;
    let again = ex.execute(correlation, &plan(), day()).await;
    let Some(Payload::OrderSettled(settled)) = again.last().map(|o| &o.payload) else {
        panic!("{again:?}")
    };
    assert_eq!(settled.succeeded, 2);
    assert_eq!(v.orders().len(), 2, "no second order at the venue");
    assert_eq!(
        v.account().await.unwrap().positions.get("BBB"),
        Some(&dec!(5))
    );
}

/// Two handlings of one plan at once (a server that forgot its delivery gave it to a
/// second worker): the other one sent the BBB order first, sized on its own cash
/// figure. This handling's post of the same client order id gets that order back: it is
/// followed at the venue's quantity, not taken for a venue error that fails the plan.
#[tokio::test]
async fn an_order_another_handling_sized_otherwise_is_followed_at_the_venues_quantity() {
    let v = venue();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite");
    let _journal =
        alchemiser::journal::Journal::open(&path, alchemiser::journal::SyncMode::Normal).unwrap();
    let outbox = alchemiser::journal::outbox::Outbox::open(&path).unwrap();
    let mut ex = executor(v.clone(), TradingGate::default());
    ex.intents = Some(Arc::new(SharedOutbox::new(outbox)));
    let correlation = CorrelationId::new();
    let started = alchemiser::execution::order_intents(correlation, &plan(), 0);
    let mut theirs = started
        .orders
        .iter()
        .find(|o| o.symbol == "BBB")
        .unwrap()
        .clone();
    theirs.qty = dec!(8);
    v.submit(&theirs).await.unwrap();
    let out = ex.execute(correlation, &plan(), day()).await;
    let Some(Payload::OrderSettled(settled)) = out.last().map(|o| &o.payload) else {
        panic!("{out:?}")
    };
    assert_eq!((settled.placed, settled.succeeded), (2, 2));
    let bbb: Vec<_> = out
        .iter()
        .filter_map(|o| match &o.payload {
            Payload::OrderSubmitted(s) if s.symbol == "BBB" => Some(("submitted", s.qty)),
            Payload::OrderFilled(f) if f.symbol == "BBB" => Some(("filled", f.qty)),
            _ => None,
        })
        .collect();
    assert_eq!(bbb, [("submitted", dec!(8)), ("filled", dec!(8))]);
    assert_eq!(v.orders().len(), 2, "no second BBB order");
    assert_eq!(
        v.account().await.unwrap().positions.get("BBB"),
        Some(&dec!(8))
    );
}

#[tokio::test]
async fn a_halted_gate_places_nothing_and_fails_the_step() {
    let v = venue();
    let gate = TradingGate::default();
    gate.halt();
    let out = executor(v.clone(), gate)
        .execute(CorrelationId::new(), &plan(), day())
        .await;
    assert_eq!(
        kinds(&out),
        [EventKind::ExecutionStarted, EventKind::WorkflowFailed]
    );
    let Payload::WorkflowFailed(f) = &out[1].payload else {
        panic!()
    };
    assert_eq!(f.reason, FailureReason::TradingHalted);
    assert!(v.orders().is_empty());
}
