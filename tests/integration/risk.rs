//! Risk limits in execution: a breach denies the order with a coded reason in a
//! `risk.order.denied.v1` event, the rest of the plan goes on, and the workflow completes.

use crate::common;

use std::str::FromStr;
use std::sync::Arc;

use alchemiser::domain::PlanAction;
use alchemiser::events::*;
use alchemiser::venue::Venue;
use alchemiser::venues::sim::SimVenue;
use alchemiser::workflow::WorkflowStatus;
use common::*;
use rust_decimal::Decimal;

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn venue() -> Arc<SimVenue> {
    let v = Arc::new(SimVenue::with_cash(dec("10000")));
    v.set_mark("SPY", dec("400"));
    v.set_mark("QQQ", dec("300"));
    v.set_mark("TLT", dec("100"));
    v
}

fn buys() -> Vec<PlanItem> {
    vec![
        plan_item("QQQ", PlanAction::Buy, dec("2"), dec("300")),
        plan_item("SPY", PlanAction::Buy, dec("10"), dec("400")),
        plan_item("TLT", PlanAction::Buy, dec("5"), dec("100")),
    ]
}

fn denials(events: &[Envelope]) -> Vec<OrderDenied> {
    events
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::OrderDenied(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}

async fn run(config: alchemiser::config::Config) -> (Vec<Envelope>, Arc<SimVenue>) {
    let v = venue();
    let (summary, events) = run_plan(v.clone(), config, buys()).await;
    assert_eq!(summary.status, WorkflowStatus::Completed, "{summary:?}");
    (events, v)
}

#[actix_rt::test]
async fn an_order_over_the_notional_limit_is_denied_and_the_rest_trades() {
    let mut config = test_config();
    config.risk.max_order_notional = Some(dec("1000"));
    let (events, v) = run(config).await;
    let denied = denials(&events);
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0].symbol, "SPY");
    assert_eq!(denied[0].code, RiskCode::MaxOrderNotional);
    assert_eq!(denied[0].notional, dec("4000.00"));
    assert_eq!(denied[0].limit, Some(dec("1000")));
    let positions = v.account().await.unwrap().positions;
    assert_eq!(
        positions.get("SPY"),
        None,
        "nothing of the denied order reached the venue"
    );
    assert!(positions.contains_key("QQQ") && positions.contains_key("TLT"));
    let settled = events
        .iter()
        .find_map(|e| match &e.payload {
            Payload::OrderSettled(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap();
    let spy = settled.orders.iter().find(|o| o.symbol == "SPY").unwrap();
    assert_eq!(spy.status, OutcomeStatus::Denied);
    assert!(spy
        .reason
        .as_deref()
        .unwrap()
        .starts_with("max_order_notional"));
}

#[actix_rt::test]
async fn the_daily_budget_denies_the_buy_that_would_exceed_it() {
    let mut config = test_config();
    config.risk.max_daily_notional = Some(dec("4700"));
    let (events, _) = run(config).await;
    // QQQ 600 fits, SPY 4000 fits (4600), TLT 500 would make 5100.
    let denied = denials(&events);
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(
        (denied[0].symbol.as_str(), denied[0].code),
        ("TLT", RiskCode::MaxDailyNotional)
    );
}

#[actix_rt::test]
async fn symbols_outside_the_allowed_list_are_denied() {
    let mut config = test_config();
    config.risk.allowed_symbols = Some(vec!["QQQ".into(), "TLT".into()]);
    let (events, _) = run(config).await;
    let denied = denials(&events);
    assert_eq!(denied.len(), 1);
    assert_eq!(
        (denied[0].symbol.as_str(), denied[0].code),
        ("SPY", RiskCode::SymbolNotAllowed)
    );
}

#[test]
fn a_non_positive_limit_is_a_config_error_naming_its_key() {
    let err =
        alchemiser::config::Config::parse("[risk]\nmax_order_notional = \"0\"\n", "risk.toml")
            .unwrap_err();
    assert_eq!(err.violations[0].key, "risk.max_order_notional");
}
