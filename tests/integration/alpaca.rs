//! The Alpaca venue against the fake Alpaca server on 127.0.0.1: auth, typed errors,
//! retries, and order submission that never creates an order twice under faults.

use crate::common;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use alchemiser::actors::engine::{Engine, EngineDeps};
use alchemiser::clock::SystemClock;
use alchemiser::domain::{OrderType, PlanAction, Side};
use alchemiser::events::*;
use alchemiser::strategy::book::StrategyBook;
use alchemiser::venue::{Venue, VenueError, VenueOrderStatus};
use alchemiser::venues::alpaca::client::{AlpacaClient, ClientSettings, Credentials};
use alchemiser::venues::alpaca::fake::{FakeAlpaca, Fault, Route};
use alchemiser::venues::alpaca::{AlpacaVenue, FillWait};
use alchemiser::workflow::WorkflowStatus;
use common::*;
use rust_decimal::Decimal;

const KEY: &str = "PKTESTKEY0001";
const SECRET: &str = "s3cr3t-never-in-logs";

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn fake() -> FakeAlpaca {
    let f = FakeAlpaca::start(KEY, SECRET, dec("10000")).unwrap();
    f.state().prices.insert("SPY".into(), dec("400"));
    f.state().prices.insert("QQQ".into(), dec("300"));
    f
}

fn venue(f: &FakeAlpaca, secret: &str) -> AlpacaVenue {
    let settings = ClientSettings {
        trading_url: f.url(),
        data_url: f.url(),
        requests_per_minute: 10_000,
        rate_window: Duration::from_secs(60),
        timeout: Duration::from_millis(400),
        max_attempts: 5,
        backoff_initial: Duration::from_millis(10),
        backoff_cap: Duration::from_millis(50),
    };
    let client = AlpacaClient::new(settings, Credentials::new(KEY, secret)).unwrap();
    AlpacaVenue::new(
        client,
        FillWait {
            poll_every: Duration::from_millis(10),
            max_polls: 10,
        },
    )
}

fn intent(id: &str, symbol: &str, side: Side, qty: &str) -> OrderIntent {
    OrderIntent {
        client_order_id: id.into(),
        symbol: symbol.into(),
        side,
        qty: dec(qty),
        order_type: OrderType::Market,
        limit_price: None,
    }
}

#[tokio::test]
async fn bad_keys_are_refused_and_never_echoed() {
    let f = fake();
    let v = venue(&f, "wrong-secret");
    let err = v.account().await.unwrap_err();
    assert!(matches!(err, VenueError::Unauthorized(_)), "{err:?}");
    let text = format!("{err} {err:?}");
    assert!(
        !text.contains("wrong-secret") && !text.contains(KEY),
        "{text}"
    );
    let creds = Credentials::new(KEY, SECRET);
    assert_eq!(format!("{creds:?}"), "Credentials(PK…0001)");
}

#[tokio::test]
async fn account_positions_and_prices_parse_into_decimals() {
    let f = fake();
    f.state().positions.insert("SPY".into(), dec("1.5"));
    f.state()
        .quotes
        .insert("QQQ".into(), (dec("299.9"), dec("300.1")));
    let v = venue(&f, SECRET);
    let a = v.account().await.unwrap();
    assert_eq!(a.cash, dec("10000"));
    assert_eq!(a.positions["SPY"], dec("1.5"));
    let p = v.prices(&["QQQ".into()]).await.unwrap();
    assert_eq!(p["QQQ"], dec("300"));
}

#[tokio::test]
async fn a_market_order_fills_once() {
    let f = fake();
    let v = venue(&f, SECRET);
    let o = v
        .submit(&intent("c1", "SPY", Side::Buy, "2"))
        .await
        .unwrap();
    assert_eq!(
        (o.status, o.filled_qty, o.avg_fill_price),
        (VenueOrderStatus::Filled, dec("2"), Some(dec("400")))
    );
    assert_eq!(f.state().created["c1"], 1);
    assert_eq!(f.state().cash, dec("9200"));
}

#[tokio::test]
async fn faults_after_sending_never_create_a_second_order() {
    let cases: Vec<(&str, Vec<Fault>)> = vec![
        (
            "5xx",
            vec![Fault::Status {
                route: Route::SubmitOrder,
                status: 503,
                reset_in_secs: None,
            }],
        ),
        (
            "timeout after accept",
            vec![Fault::DelayAfterCreate(Duration::from_millis(1200))],
        ),
        (
            "dropped connection",
            vec![Fault::DropConnection(Route::SubmitOrder)],
        ),
        (
            "429 burst",
            vec![
                Fault::Status {
                    route: Route::SubmitOrder,
                    status: 429,
                    reset_in_secs: None,
                },
                Fault::Status {
                    route: Route::SubmitOrder,
                    status: 429,
                    reset_in_secs: None,
                },
                Fault::Status {
                    route: Route::SubmitOrder,
                    status: 429,
                    reset_in_secs: None,
                },
            ],
        ),
        (
            "5xx on the lookup too",
            vec![
                Fault::DelayAfterCreate(Duration::from_millis(1200)),
                Fault::Status {
                    route: Route::OrderByClientId,
                    status: 500,
                    reset_in_secs: None,
                },
            ],
        ),
    ];
    for (name, faults) in cases {
        let f = fake();
        for fault in faults {
            f.inject(fault);
        }
        let v = venue(&f, SECRET);
        let o = v
            .submit(&intent("once", "SPY", Side::Buy, "1"))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(o.status, VenueOrderStatus::Filled, "{name}");
        assert_eq!(
            f.state().created.get("once"),
            Some(&1),
            "{name}: created exactly once"
        );
        assert_eq!(f.state().positions["SPY"], dec("1"), "{name}");
        let posts = f
            .state()
            .requests
            .iter()
            .filter(|r| *r == "POST /v2/orders")
            .count();
        assert!(posts >= 1, "{name}");
    }
}

#[tokio::test]
async fn a_duplicate_client_order_id_is_adopted() {
    let f = fake();
    let v = venue(&f, SECRET);
    let first = v
        .submit(&intent("dup", "SPY", Side::Buy, "1"))
        .await
        .unwrap();
    let again = v
        .submit(&intent("dup", "SPY", Side::Buy, "1"))
        .await
        .unwrap();
    assert_eq!(first.venue_order_id, again.venue_order_id);
    assert_eq!(f.state().created["dup"], 1);
    assert_eq!(f.state().positions["SPY"], dec("1"));
}

#[tokio::test]
async fn insufficient_buying_power_is_a_rejection_not_a_retry() {
    let f = fake();
    let v = venue(&f, SECRET);
    let o = v
        .submit(&intent("big", "SPY", Side::Buy, "1000"))
        .await
        .unwrap();
    assert_eq!(o.status, VenueOrderStatus::Rejected);
    assert!(o
        .reject_reason
        .unwrap()
        .contains("insufficient buying power"));
    assert_eq!(
        f.state()
            .requests
            .iter()
            .filter(|r| *r == "POST /v2/orders")
            .count(),
        1
    );
}

#[tokio::test]
async fn reads_retry_through_a_5xx_storm() {
    let f = fake();
    for _ in 0..3 {
        f.inject(Fault::Status {
            route: Route::Account,
            status: 502,
            reset_in_secs: None,
        });
    }
    let v = venue(&f, SECRET);
    assert_eq!(v.account().await.unwrap().cash, dec("10000"));
    assert_eq!(
        f.state()
            .requests
            .iter()
            .filter(|r| *r == "GET /v2/account")
            .count(),
        4
    );
}

#[tokio::test]
async fn unfilled_limit_orders_can_be_canceled() {
    let f = fake();
    f.state()
        .quotes
        .insert("SPY".into(), (dec("399.9"), dec("400.1")));
    let v = venue(&f, SECRET);
    let mut lim = intent("lim", "SPY", Side::Buy, "1");
    lim.order_type = OrderType::Limit;
    lim.limit_price = Some(dec("399"));
    let o = v.submit(&lim).await.unwrap();
    assert_eq!(o.status, VenueOrderStatus::Accepted);
    assert_eq!(v.open_orders().await.unwrap().len(), 1);
    let c = v.cancel("lim").await.unwrap();
    assert_eq!(c.status, VenueOrderStatus::Canceled);
    assert!(v.open_orders().await.unwrap().is_empty());
}

/// A full plan (sell 5 QQQ, buy 10 SPY) through the execution and reconciliation actors
/// against the fake under `faults`: each order is created once, the positions equal the
/// plan, and the events show one submission and one fill per order.
async fn plan_under_faults(name: &str, faults: Vec<Fault>) {
    let f = fake();
    f.state().positions.insert("QQQ".into(), dec("5"));
    for fault in faults {
        f.inject(fault);
    }
    let mut config = test_config();
    config.venue.sim.slippage_bps = Decimal::ZERO;
    let items = vec![
        plan_item("QQQ", PlanAction::Sell, dec("5"), dec("300")),
        plan_item("SPY", PlanAction::Buy, dec("10"), dec("400")),
    ];
    let (summary, events) = run_plan(Arc::new(venue(&f, SECRET)), config, items).await;
    assert_eq!(
        summary.status,
        WorkflowStatus::Completed,
        "{name}: {summary:?}"
    );
    {
        let state = f.state();
        assert!(
            state.created.values().all(|n| *n == 1),
            "{name}: {:?}",
            state.created
        );
        assert_eq!(state.created.len(), 2, "{name}");
        assert_eq!(state.positions.get("QQQ"), None, "{name}");
        assert_eq!(state.positions["SPY"], dec("10"), "{name}");
    }
    assert!(
        events.iter().any(|e| matches!(&e.payload, Payload::ReconciliationCompleted(r) if r.status == ReconciliationStatus::Ok)),
        "{name}: reconciliation agrees with the venue"
    );
    let count = |k: EventKind| events.iter().filter(|e| e.kind() == k).count();
    assert_eq!(
        count(EventKind::OrderSubmitted),
        2,
        "{name}: one submission per order"
    );
    assert_eq!(
        count(EventKind::OrderFilled),
        2,
        "{name}: one fill per order"
    );
    assert_eq!(count(EventKind::WorkflowCompleted), 1, "{name}");
}

#[actix_rt::test]
async fn workflows_under_each_fault_reach_the_planned_positions() {
    let status = |status| Fault::Status {
        route: Route::SubmitOrder,
        status,
        reset_in_secs: None,
    };
    plan_under_faults("5xx", vec![status(500), status(503)]).await;
    plan_under_faults("429 burst", vec![status(429), status(429), status(429)]).await;
    plan_under_faults(
        "timeout after accept",
        vec![Fault::DelayAfterCreate(Duration::from_millis(1200))],
    )
    .await;
    plan_under_faults(
        "dropped connections",
        vec![
            Fault::DropConnection(Route::SubmitOrder),
            Fault::DropConnection(Route::SubmitOrder),
        ],
    )
    .await;
    plan_under_faults(
        "5xx storm on reads",
        vec![
            Fault::Status {
                route: Route::Account,
                status: 502,
                reset_in_secs: None,
            },
            Fault::Status {
                route: Route::Positions,
                status: 502,
                reset_in_secs: None,
            },
            Fault::Status {
                route: Route::OrderByClientId,
                status: 500,
                reset_in_secs: None,
            },
        ],
    )
    .await;
    plan_under_faults(
        "mixed",
        vec![
            status(500),
            Fault::DelayAfterCreate(Duration::from_millis(1200)),
        ],
    )
    .await;
}

#[tokio::test]
async fn daily_bars_follow_every_page_into_exact_decimals() {
    use alchemiser::venues::alpaca::{to_daily_bars, wire::Bar};
    let f = fake();
    let bar = |d: &str, c: &str| Bar {
        t: format!("{d}T05:00:00Z"),
        o: serde_json::Number::from_str(c).unwrap(),
        h: serde_json::Number::from_str("500.5").unwrap(),
        l: serde_json::Number::from_str("100.25").unwrap(),
        c: serde_json::Number::from_str(c).unwrap(),
        v: serde_json::Number::from(1000u64),
    };
    {
        let mut s = f.state();
        s.bars.insert(
            "SPY".into(),
            vec![
                bar("2024-01-02", "472.65"),
                bar("2024-01-03", "468.79"),
                bar("2024-01-04", "467.28"),
            ],
        );
        s.bars.insert(
            "QQQ".into(),
            vec![bar("2024-01-02", "402.14"), bar("2024-01-03", "396.23")],
        );
        s.bars_page_size = 2;
    }
    let v = venue(&f, SECRET);
    let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let bars = v
        .client()
        .daily_bars(
            &["SPY", "QQQ"],
            d("2024-01-01"),
            d("2024-01-31"),
            "all",
            "iex",
        )
        .await
        .unwrap();
    assert_eq!(bars["SPY"].len(), 3);
    assert_eq!(bars["QQQ"].len(), 2);
    assert_eq!(
        f.state()
            .requests
            .iter()
            .filter(|r| *r == "GET /v2/stocks/bars")
            .count(),
        3,
        "three pages of two"
    );
    let daily = to_daily_bars("SPY", &bars["SPY"]).unwrap();
    assert_eq!(daily[1].close, dec("468.79"));
    assert_eq!(
        daily[0].date,
        d("2024-01-02"),
        "Alpaca stamps daily bars at midnight New York"
    );
    let mut broken = bars["SPY"].clone();
    broken[2].h = serde_json::Number::from_str("1.5").unwrap();
    let err = to_daily_bars("SPY", &broken).unwrap_err();
    assert!(err.starts_with("SPY bar 3 (2024-01-04T05:00:00Z)"), "{err}");
}

/// Runs one buy of 10 SPY through execution with smart limit orders; returns the
/// submitted orders (type, limit) in order.
async fn smart_buy(f: &FakeAlpaca) -> Vec<(OrderType, Option<Decimal>)> {
    let mut config = test_config();
    config.execution.order_type = alchemiser::config::OrderTypeChoice::Limit;
    config.execution.fill_wait_ms = 30;
    config.execution.max_repegs = 2;
    let items = vec![plan_item("SPY", PlanAction::Buy, dec("10"), dec("400"))];
    let (summary, events) = run_plan(Arc::new(venue(f, SECRET)), config, items).await;
    assert_eq!(summary.status, WorkflowStatus::Completed, "{summary:?}");
    events
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::OrderSubmitted(o) => Some((o.order_type, o.limit_price)),
            _ => None,
        })
        .collect()
}

#[actix_rt::test]
async fn smart_limits_repeg_then_go_to_market() {
    let f = fake();
    f.state()
        .quotes
        .insert("SPY".into(), (dec("399.90"), dec("400.10")));
    let sent = smart_buy(&f).await;
    assert_eq!(
        sent,
        vec![
            (OrderType::Limit, Some(dec("399.91"))),
            (OrderType::Limit, Some(dec("400.01"))),
            (OrderType::Limit, Some(dec("400.06"))),
            (OrderType::Market, None),
        ]
    );
    let state = f.state();
    assert_eq!(state.positions["SPY"], dec("10"));
    assert!(state.created.values().all(|n| *n == 1));
    assert_eq!(
        state
            .orders
            .iter()
            .filter(|o| o.status == "canceled")
            .count(),
        3,
        "each resting limit was canceled first"
    );
}

#[actix_rt::test]
async fn a_repeg_that_reaches_the_ask_fills_at_the_limit() {
    let f = fake();
    f.state()
        .quotes
        .insert("SPY".into(), (dec("399.99"), dec("400.00")));
    let sent = smart_buy(&f).await;
    assert_eq!(
        sent,
        vec![
            (OrderType::Limit, Some(dec("399.99"))),
            (OrderType::Limit, Some(dec("400.00")))
        ]
    );
    assert_eq!(f.state().positions["SPY"], dec("10"));
}

#[actix_rt::test]
async fn a_wide_spread_goes_straight_to_market() {
    let f = fake();
    f.state()
        .quotes
        .insert("SPY".into(), (dec("390"), dec("410")));
    let sent = smart_buy(&f).await;
    assert_eq!(sent, vec![(OrderType::Market, None)]);
}

#[tokio::test]
async fn the_client_never_exceeds_its_rate_limit() {
    let f = fake();
    let settings = ClientSettings {
        trading_url: f.url(),
        data_url: f.url(),
        requests_per_minute: 10,
        rate_window: Duration::from_millis(200),
        timeout: Duration::from_secs(2),
        max_attempts: 3,
        backoff_initial: Duration::from_millis(10),
        backoff_cap: Duration::from_millis(50),
    };
    let client = AlpacaClient::new(settings, Credentials::new(KEY, SECRET)).unwrap();
    for _ in 0..35 {
        client.account().await.unwrap();
    }
    let arrivals = f.state().arrivals.clone();
    assert_eq!(arrivals.len(), 35);
    let window = Duration::from_millis(200);
    for (i, a) in arrivals.iter().enumerate() {
        let within = arrivals[i..]
            .iter()
            .take_while(|t| t.duration_since(*a) < window)
            .count();
        assert!(
            within <= 10,
            "{within} requests within 200 ms of request {i}"
        );
    }
    assert_eq!(client.requests_sent(), 35);
}

#[actix_rt::test]
async fn refused_credentials_fail_the_workflow_and_halt_trading() {
    let f = fake();
    let venue = Arc::new(venue(&f, "revoked-secret"));
    let deps = EngineDeps::new(
        test_config(),
        Arc::new(SystemClock),
        venue,
        Arc::new(StrategyBook::empty()),
    );
    let gate = deps.gate.clone();
    let broker = Engine::builder(deps).start().broker().clone();
    let id = start_workflow(&broker, day(4)).await;
    let summary = finish(&broker, id, Duration::from_secs(10)).await;
    assert_eq!(summary.status, WorkflowStatus::Failed);
    assert!(
        summary
            .failure
            .as_deref()
            .unwrap()
            .starts_with("unauthorized"),
        "{summary:?}"
    );
    let s = stats(&broker).await;
    let halt = s.halted.expect("halted");
    assert_eq!(halt.reason, HaltReason::Authorization);
    assert!(!halt.detail.contains("revoked-secret"));
    assert!(gate.is_halted());
}

#[tokio::test]
async fn clock_calendar_and_assets_are_read() {
    let f = fake();
    f.state().whole_shares_only.insert("QQQ".into());
    let v = venue(&f, SECRET);
    let c = v.client();
    assert!(c.clock().await.unwrap().is_open);
    let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let days = c.calendar(d("2024-12-23"), d("2024-12-27")).await.unwrap();
    let dates: Vec<&str> = days.iter().map(|x| x.date.as_str()).collect();
    assert_eq!(
        dates,
        ["2024-12-23", "2024-12-24", "2024-12-26", "2024-12-27"]
    );
    assert_eq!(days[1].close, "13:00");
    assert!(v.is_fractionable("SPY").await.unwrap());
    assert!(!v.is_fractionable("QQQ").await.unwrap());
    assert!(matches!(
        v.is_fractionable("NOPE").await.unwrap_err(),
        VenueError::NotFound(_)
    ));
}

#[actix_rt::test]
async fn whole_share_assets_are_ordered_in_whole_shares() {
    let f = fake();
    f.state().whole_shares_only.insert("SPY".into());
    let items = vec![plan_item("SPY", PlanAction::Buy, dec("10.75"), dec("400"))];
    let (summary, _) = run_plan(Arc::new(venue(&f, SECRET)), test_config(), items).await;
    assert_eq!(summary.status, WorkflowStatus::Completed, "{summary:?}");
    assert_eq!(f.state().positions["SPY"], dec("10"));
}

/// A plan whose limit walks would outlast the handler's timeout sends the legs that no
/// longer fit to market at once, instead of timing out half-placed.
#[actix_rt::test]
async fn limit_walks_that_no_longer_fit_the_handler_budget_go_to_market() {
    let f = fake();
    for s in ["SPY", "QQQ"] {
        f.state()
            .quotes
            .insert(s.into(), (dec("399.90"), dec("400.10")));
        f.state().prices.insert(s.into(), dec("400"));
    }
    let mut config = test_config();
    config.execution.order_type = alchemiser::config::OrderTypeChoice::Limit;
    // A walk of 3 x 250 ms fits in 0.9 s once, not twice.
    config.engine.handler_timeout_secs = 1;
    config.execution.fill_wait_ms = 250;
    config.execution.max_repegs = 2;
    config.recovery.backoff_ms = 100;
    config.recovery.backoff_cap_ms = 500;
    let broken: Vec<String> = config
        .validate()
        .err()
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.key)
        .collect();
    assert!(
        !broken.iter().any(|k| k.starts_with("execution")),
        "{broken:?}"
    );
    let items = vec![
        plan_item("QQQ", PlanAction::Buy, dec("1"), dec("400")),
        plan_item("SPY", PlanAction::Buy, dec("1"), dec("400")),
    ];
    let (summary, events) = run_plan(Arc::new(venue(&f, SECRET)), config, items).await;
    assert_eq!(summary.status, WorkflowStatus::Completed, "{summary:?}");
    let sent: Vec<(String, OrderType)> = events
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::OrderSubmitted(o) => Some((o.symbol.to_string(), o.order_type)),
            _ => None,
        })
        .collect();
    let qqq: Vec<_> = sent
        .iter()
        .filter(|(s, _)| s == "QQQ")
        .map(|(_, t)| *t)
        .collect();
    let spy: Vec<_> = sent
        .iter()
        .filter(|(s, _)| s == "SPY")
        .map(|(_, t)| *t)
        .collect();
    assert_eq!(
        qqq,
        [
            OrderType::Limit,
            OrderType::Limit,
            OrderType::Limit,
            OrderType::Market
        ]
    );
    assert_eq!(spy, [OrderType::Market], "{sent:?}");
}

#[test]
fn a_limit_walk_longer_than_the_handler_timeout_is_a_config_error() {
    let mut config = alchemiser::config::Config::default();
    config.execution.order_type = alchemiser::config::OrderTypeChoice::Limit;
    config.execution.fill_wait_ms = 60_000;
    config.execution.max_repegs = 2;
    let errors = config.validate().unwrap_err();
    assert!(
        errors.iter().any(|v| v.key == "execution.fill_wait_ms"
            && v.message
                .contains("must fit in nine tenths of engine.handler_timeout_secs")),
        "{errors:?}"
    );
}
