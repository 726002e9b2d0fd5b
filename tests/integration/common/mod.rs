//! Helpers shared by the integration tests: an engine on the simulated venue with a
//! fast restart policy, handler decorators that inject faults, and polling.
#![allow(dead_code)]

pub mod nats;
pub mod universe;

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::Addr;
use alchemiser::actors::broker::{AwaitWorkflow, Broker, QueryStats, StartWorkflow};
use alchemiser::actors::engine::{Engine, EngineDeps};
use alchemiser::actors::supervision::{EventHandler, HandlerFault, Reaction, Registry};
use alchemiser::actors::{execution, portfolio, reconciliation, recovery, strategy};
use alchemiser::causation::WorkflowSummary;
use alchemiser::clock::SystemClock;
use alchemiser::config::Config;
use alchemiser::events::{CorrelationId, Envelope, EventKind, Payload, WorkflowStarted};
use alchemiser::strategy::book::StrategyBook;
use alchemiser::venues::sim::SimVenue;
use chrono::NaiveDate;
use rust_decimal::Decimal;

pub fn test_config() -> Config {
    let mut c = Config::default();
    c.supervision.max_restarts = 50;
    c.supervision.within_secs = 60;
    c.supervision.backoff_initial_ms = 1;
    c.supervision.backoff_cap_ms = 5;
    c.engine.timeout_check_ms = 20;
    c
}

/// An engine with no strategy files (all-cash signals) on an in-memory venue.
pub fn deps(config: Config) -> EngineDeps {
    EngineDeps::new(
        config,
        Arc::new(SystemClock),
        Arc::new(SimVenue::with_cash(Decimal::from(100_000))),
        Arc::new(StrategyBook::empty()),
    )
}

pub fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 3, d).expect("valid test date")
}

pub async fn start_workflow(broker: &Addr<Broker>, as_of: NaiveDate) -> CorrelationId {
    try_start_workflow(broker, as_of)
        .await
        .expect("workflow accepted")
}

/// Starts a workflow, or says why the broker refused it (trading halted).
pub async fn try_start_workflow(
    broker: &Addr<Broker>,
    as_of: NaiveDate,
) -> Result<CorrelationId, String> {
    broker
        .send(StartWorkflow {
            started: WorkflowStarted {
                as_of,
                mode: Default::default(),
                trigger: alchemiser::domain::Trigger::Test,
                attempt: 0,
            },
            triggered_by: None,
            correlation_id: None,
        })
        .await
        .expect("broker reachable")
        .map_err(|e| e.to_string())
}

/// Waits for the workflow to end, failing the test after `limit`.
pub async fn finish(broker: &Addr<Broker>, id: CorrelationId, limit: Duration) -> WorkflowSummary {
    tokio::time::timeout(limit, broker.send(AwaitWorkflow(id)))
        .await
        .expect("workflow ended in time")
        .expect("broker reachable")
        .expect("workflow known")
}

/// Polls `check` every 10 ms until it holds or `limit` passes; returns whether it held.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub async fn stats(broker: &Addr<Broker>) -> alchemiser::actors::broker::BrokerStats {
    broker.send(QueryStats).await.expect("broker reachable")
}

/// Panics on the first `times` events matching `pick` (counted across incarnations),
/// otherwise behaves as `inner`.
pub struct PanicOn<P: Fn(&Envelope) -> bool + 'static> {
    pub inner: Box<dyn EventHandler>,
    pub pick: P,
    pub remaining: Arc<AtomicU32>,
}

impl<P: Fn(&Envelope) -> bool + 'static> EventHandler for PanicOn<P> {
    fn handle(&mut self, event: &Arc<Envelope>) -> Result<Reaction, HandlerFault> {
        if (self.pick)(event)
            && self
                .remaining
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            panic!("injected fault on {}", event.event_type());
        }
        self.inner.handle(event)
    }
}

/// Never answers events matching `pick` (its future never resolves).
pub struct HangOn<P: Fn(&Envelope) -> bool + 'static> {
    pub inner: Box<dyn EventHandler>,
    pub pick: P,
}

impl<P: Fn(&Envelope) -> bool + 'static> EventHandler for HangOn<P> {
    fn handle(&mut self, event: &Arc<Envelope>) -> Result<Reaction, HandlerFault> {
        if (self.pick)(event) {
            return Ok(Reaction::Later(Box::pin(std::future::pending())));
        }
        self.inner.handle(event)
    }
}

pub fn is_started_on(event: &Envelope, date: NaiveDate) -> bool {
    matches!(&event.payload, Payload::WorkflowStarted(s) if s.as_of == date)
}

/// The standard five actors, with `strategy` wrapped by `wrap_strategy`.
pub fn registry_with_strategy<H, W>(deps: EngineDeps, wrap_strategy: W) -> Registry
where
    H: EventHandler,
    W: Fn(Box<dyn EventHandler>) -> H + 'static,
{
    let mut registry = Registry::new(deps.clone());
    let d = deps.clone();
    registry.add(strategy::NAME, strategy::CONSUMES, move || {
        wrap_strategy(Box::new(strategy::StrategyActor::new(&d)))
    });
    portfolio::register(&mut registry);
    execution::register(&mut registry);
    reconciliation::register(&mut registry);
    recovery::register(&mut registry);
    registry
}

/// A subscriber that records every event it handled successfully, by sequence of arrival.
pub struct Recorder {
    pub seen: Arc<Mutex<Vec<Envelope>>>,
}

impl EventHandler for Recorder {
    fn handle(&mut self, event: &Arc<Envelope>) -> Result<Reaction, HandlerFault> {
        self.seen
            .lock()
            .map_err(|_| HandlerFault("recorder poisoned".into()))?
            .push(Envelope::clone(event));
        Ok(Reaction::nothing())
    }
}

pub fn start_standard(config: Config) -> Addr<Broker> {
    Engine::builder(deps(config)).start().broker().clone()
}

pub fn kinds(events: &[Envelope]) -> Vec<EventKind> {
    events.iter().map(Envelope::kind).collect()
}

pub fn distinct<T: std::hash::Hash + Eq + Clone>(items: &[T]) -> usize {
    items.iter().cloned().collect::<HashSet<_>>().len()
}

/// A bundled CSV as Alpaca would serve it: daily bars stamped at midnight New York.
pub fn bars_from_bundled(symbol: &str) -> Vec<alchemiser::venues::alpaca::wire::Bar> {
    use chrono::TimeZone;
    use std::str::FromStr;
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join(format!("examples/data/{symbol}.csv")))
        .expect("bundled csv");
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let date = NaiveDate::parse_from_str(f[0], "%Y-%m-%d").expect("date");
            let midnight = chrono_tz::America::New_York
                .from_local_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight"))
                .single()
                .expect("one midnight")
                .with_timezone(&chrono::Utc);
            let n = |s: &str| serde_json::Number::from_str(s).expect("number");
            alchemiser::venues::alpaca::wire::Bar {
                t: midnight.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                o: n(f[1]),
                h: n(f[2]),
                l: n(f[3]),
                c: n(f[4]),
                v: n(f[5]),
            }
        })
        .collect()
}

/// A fake Alpaca with these keys and $100,000, filling at the bundled 2023-09-21 closes,
/// serving the bundled bars, its clock on `today` (New York).
pub fn fake_alpaca(
    key: &str,
    secret: &str,
    today: &str,
) -> alchemiser::venues::alpaca::fake::FakeAlpaca {
    use std::str::FromStr;
    let f =
        alchemiser::venues::alpaca::fake::FakeAlpaca::start(key, secret, Decimal::from(100_000))
            .expect("fake Alpaca");
    for (s, p) in BUNDLED_CLOSES {
        f.state()
            .prices
            .insert(s.into(), Decimal::from_str(p).expect("price"));
        f.state().bars.insert(s.into(), bars_from_bundled(s));
    }
    f.state().bars_page_size = 2000;
    f.set_today(today.parse().expect("a date"));
    f
}

/// Closes of the bundled data on 2023-09-21, the prices the fake Alpaca fills at.
pub const BUNDLED_CLOSES: [(&str, &str); 6] = [
    ("AAPL", "173.93"),
    ("AMZN", "129.33"),
    ("GOOG", "131.36"),
    ("META", "295.73"),
    ("NFLX", "386.3"),
    ("NVDA", "410.17"),
];

/// A plan item with only what execution reads.
pub fn plan_item(
    symbol: &str,
    action: alchemiser::domain::PlanAction,
    qty: Decimal,
    price: Decimal,
) -> alchemiser::events::PlanItem {
    alchemiser::events::PlanItem {
        symbol: symbol.into(),
        action,
        qty,
        price,
        target_value: Decimal::ZERO,
        current_value: Decimal::ZERO,
        delta: Decimal::ZERO,
    }
}

/// Runs `items` as one workflow's plan through the execution and reconciliation actors
/// on `venue` (the workflow's root, an empty signal and the plan are published by hand);
/// returns the workflow's summary and its events once it has ended.
pub async fn run_plan(
    venue: Arc<dyn alchemiser::venue::Venue>,
    config: Config,
    items: Vec<alchemiser::events::PlanItem>,
) -> (WorkflowSummary, Vec<Envelope>) {
    run_plan_with(venue, config, items, |_| {}).await
}

/// [`run_plan`] with the registry changed by `tweak` (faults wrapped around an actor).
pub async fn run_plan_with(
    venue: Arc<dyn alchemiser::venue::Venue>,
    config: Config,
    items: Vec<alchemiser::events::PlanItem>,
    tweak: impl FnOnce(&mut Registry),
) -> (WorkflowSummary, Vec<Envelope>) {
    use alchemiser::actors::broker::Publish;
    use alchemiser::events::{RebalancePlanned, SignalGenerated};
    let deps = EngineDeps::new(
        config,
        Arc::new(SystemClock),
        venue,
        Arc::new(StrategyBook::empty()),
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut registry = Registry::new(deps);
    execution::register(&mut registry);
    reconciliation::register(&mut registry);
    let s = seen.clone();
    registry.add("audit", EventKind::ALL, move || Recorder {
        seen: s.clone(),
    });
    tweak(&mut registry);
    let broker = Engine::with_registry(registry).start().broker().clone();
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
    let signal = Envelope::caused_by(
        &started,
        SignalGenerated {
            as_of: day(4),
            target_weights: Default::default(),
            strategies: vec![],
            signal_hash: "s".into(),
            market_snapshot_id: String::new(),
        },
        "test",
        &clock,
    );
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
        "test",
        &clock,
    );
    let id = started.correlation_id;
    for e in [started, signal, planned] {
        broker
            .send(Publish::from(e))
            .await
            .expect("broker")
            .expect("accepted");
    }
    let summary = finish(&broker, id, Duration::from_secs(20)).await;
    let ended = eventually(Duration::from_secs(5), || {
        let seen = seen.clone();
        async move {
            seen.lock()
                .unwrap()
                .iter()
                .any(|e| e.correlation_id == id && e.kind().is_terminal())
        }
    })
    .await;
    assert!(ended, "the audit saw the workflow end");
    let events = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.correlation_id == id)
        .cloned()
        .collect();
    (summary, events)
}

/// The bundled default config and book (it trades), with a fast restart policy, and
/// the book's last common date.
pub fn bundled() -> (Config, Arc<StrategyBook>, chrono::NaiveDate) {
    let mut config = Config::load_or_default(None).unwrap();
    config.supervision = test_config().supervision;
    config.engine.timeout_check_ms = 20;
    config.recovery.backoff_ms = 10;
    config.recovery.backoff_cap_ms = 40;
    let book =
        alchemiser::symphony_files::load_book(&config.strategy, &config.base_dir, None).unwrap();
    let as_of = *book.common_dates().last().unwrap();
    (config, Arc::new(book), as_of)
}

/// A simulated venue on the book's data, at `as_of`, with $100,000.
pub fn sim(book: &StrategyBook, as_of: chrono::NaiveDate) -> Arc<SimVenue> {
    let s = Arc::new(SimVenue::new(
        Decimal::from(100_000),
        Default::default(),
        Some(Arc::new(book.data.clone())),
    ));
    s.set_date(as_of);
    s
}

/// One bar a calendar day from 2020-01-01, every price the close (to 6 decimals): a
/// crafted series for strategy tests.
pub fn daily_series(symbol: &str, closes: &[f64]) -> alchemiser::market::BarSeries {
    use std::str::FromStr;
    let start = NaiveDate::from_ymd_opt(2020, 1, 1).expect("date");
    let bars = closes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let p = Decimal::from_str(&format!("{c:.6}")).expect("price");
            alchemiser::market::DailyBar::flat(start + chrono::Days::new(i as u64), p)
        })
        .collect();
    alchemiser::market::BarSeries::new(symbol.into(), bars)
}
