//! A 20-order rebalance end to end against the fake Alpaca server on loopback.
//!
//! `cargo run --release --example bench_alpaca` runs the same 20-buy plan through the
//! execution and reconciliation actors twice: with the rate limit out of the way, and
//! with a limit scaled down to 30 requests per second (the production setting is 200 per
//! minute) so that it must throttle. It prints requests, wall time, and the most
//! requests the server saw in any window, which must not exceed the limit.

/// The binary's allocator (see `src/main.rs`), so that the figures are the engine's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alchemiser::actors::broker::{AwaitWorkflow, Publish};
use alchemiser::actors::engine::{Engine, EngineDeps};
use alchemiser::actors::supervision::Registry;
use alchemiser::actors::{execution, reconciliation};
use alchemiser::clock::SystemClock;
use alchemiser::config::Config;
use alchemiser::domain::PlanAction;
use alchemiser::events::*;
use alchemiser::strategy::book::StrategyBook;
use alchemiser::venues::alpaca::client::{AlpacaClient, ClientSettings, Credentials};
use alchemiser::venues::alpaca::fake::FakeAlpaca;
use alchemiser::venues::alpaca::{AlpacaVenue, FillWait};
use chrono::NaiveDate;
use rust_decimal::Decimal;

const ORDERS: usize = 20;

fn max_in_window(arrivals: &[Instant], window: Duration) -> usize {
    (0..arrivals.len())
        .map(|i| {
            arrivals[i..]
                .iter()
                .take_while(|t| t.duration_since(arrivals[i]) < window)
                .count()
        })
        .max()
        .unwrap_or(0)
}

fn run(limit: u32, window: Duration) {
    let fake = FakeAlpaca::start("PKBENCH0001", "bench-secret", Decimal::from(1_000_000))
        .expect("fake server");
    let symbols: Vec<String> = (0..ORDERS).map(|i| format!("S{i:02}")).collect();
    for s in &symbols {
        fake.state()
            .prices
            .insert(s.as_str().into(), Decimal::from(100));
    }
    let settings = ClientSettings {
        trading_url: fake.url(),
        data_url: fake.url(),
        requests_per_minute: limit,
        rate_window: window,
        timeout: Duration::from_secs(5),
        ..ClientSettings::default()
    };
    let client = AlpacaClient::new(settings, Credentials::new("PKBENCH0001", "bench-secret"))
        .expect("client");
    let venue = Arc::new(AlpacaVenue::new(
        client.clone(),
        FillWait {
            poll_every: Duration::from_millis(5),
            max_polls: 100,
        },
    ));
    let deps = EngineDeps::new(
        Config::default(),
        Arc::new(SystemClock),
        venue,
        Arc::new(StrategyBook::empty()),
    );
    let system = actix::System::new();
    let wall = system.block_on(async move {
        let mut registry = Registry::new(deps);
        execution::register(&mut registry);
        reconciliation::register(&mut registry);
        let broker = Engine::with_registry(registry).start().broker().clone();
        let clock = SystemClock;
        let day = NaiveDate::from_ymd_opt(2024, 1, 2).expect("date");
        let started = Envelope::root(
            WorkflowStarted {
                as_of: day,
                mode: Default::default(),
                trigger: alchemiser::domain::Trigger::Bench,
                attempt: 0,
            },
            "bench",
            &clock,
            None,
        );
        let signal = Envelope::caused_by(
            &started,
            SignalGenerated {
                as_of: day,
                target_weights: BTreeMap::new(),
                strategies: vec![],
                signal_hash: "s".into(),
                market_snapshot_id: String::new(),
            },
            "bench",
            &clock,
        );
        let items: Vec<PlanItem> = symbols
            .iter()
            .map(|s| PlanItem {
                symbol: s.as_str().into(),
                action: PlanAction::Buy,
                qty: Decimal::from(10),
                price: Decimal::from(100),
                target_value: Decimal::ZERO,
                current_value: Decimal::ZERO,
                delta: Decimal::ZERO,
            })
            .collect();
        let plan_hash = RebalancePlanned::compute_hash("s", Decimal::ZERO, Decimal::ZERO, &items);
        let planned = Envelope::caused_by(
            &signal,
            RebalancePlanned {
                signal_hash: "s".into(),
                plan_hash,
                account_snapshot_id: String::new(),
                portfolio_value: Decimal::ZERO,
                cash: Decimal::ZERO,
                investable: Decimal::ZERO,
                items,
            },
            "bench",
            &clock,
        );
        let id = started.correlation_id;
        let t0 = Instant::now();
        for e in [started, signal, planned] {
            broker
                .send(Publish::from(e))
                .await
                .expect("broker")
                .expect("accepted");
        }
        let summary = broker
            .send(AwaitWorkflow(id))
            .await
            .expect("broker")
            .expect("known");
        assert_eq!(
            summary.status,
            alchemiser::workflow::WorkflowStatus::Completed,
            "{summary:?}"
        );
        t0.elapsed()
    });
    let state = fake.state();
    assert!(state.created.values().all(|n| *n == 1) && state.created.len() == ORDERS);
    let busiest = max_in_window(&state.arrivals, window);
    println!(
        "limit {limit} per {:?}: {ORDERS} orders, {} requests, wall {:.3} s, busiest {:?} window: {busiest} requests ({})",
        window,
        state.requests.len(),
        wall.as_secs_f64(),
        window,
        if busiest <= limit as usize { "within the limit" } else { "OVER THE LIMIT" }
    );
}

fn main() {
    run(100_000, Duration::from_secs(60));
    run(30, Duration::from_secs(1));
}
