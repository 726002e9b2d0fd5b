//! Broker throughput against raw actix, measured in the same run.
//!
//! `cargo run --release --example bench_broker -- [N] [ROUNDS]` publishes N events
//! (chains of 1,000: a root and its children) through the broker, with causation
//! tracking and workflow bookkeeping on, to one supervised subscriber; and sends N
//! envelopes through a plain actix actor→actor pair. Envelopes are built before the
//! clock starts in both cases. Prints the median rate of each over ROUNDS and the ratio.

/// The binary's allocator (see `src/main.rs`), so that the figures are the engine's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use alchemiser::actors::broker::{Publish, QueryStats};
use alchemiser::actors::engine::{Engine, EngineDeps};
use alchemiser::actors::supervision::{EventHandler, HandlerFault, Reaction, Registry};
use alchemiser::clock::SystemClock;
use alchemiser::config::Config;
use alchemiser::domain::Side;
use alchemiser::events::{Envelope, EventKind, OrderFilled};
use alchemiser::journal::{Journal, SyncMode};
use alchemiser::strategy::book::StrategyBook;
use alchemiser::venues::sim::SimVenue;
use rust_decimal::Decimal;
use tokio::sync::Notify;

const CHAIN: usize = 1_000;

fn envelopes(n: usize) -> Vec<Envelope> {
    let clock = SystemClock;
    let fill = |i: usize| OrderFilled {
        client_order_id: "alc-bench".into(),
        fill_id: i.to_string(),
        symbol: "SPY".into(),
        side: Side::Buy,
        qty: Decimal::ONE,
        price: Decimal::new(50_012, 2),
        commission: Decimal::ZERO,
    };
    let mut out = Vec::with_capacity(n);
    let mut root = None;
    for i in 0..n {
        if i % CHAIN == 0 {
            let r = Envelope::root(fill(i), "bench", &clock, None);
            root = Some(r.clone());
            out.push(r);
        } else if let Some(r) = &root {
            out.push(Envelope::caused_by(r, fill(i), "bench", &clock));
        }
    }
    out
}

struct Counter {
    seen: Arc<AtomicU64>,
    target: u64,
    done: Arc<Notify>,
}

impl Counter {
    fn bump(&self) {
        if self.seen.fetch_add(1, Ordering::Relaxed) + 1 == self.target {
            self.done.notify_one();
        }
    }
}

impl EventHandler for Counter {
    fn handle(&mut self, _event: &Arc<Envelope>) -> Result<Reaction, HandlerFault> {
        self.bump();
        Ok(Reaction::nothing())
    }
}

/// The raw baseline: a plain actor receiving envelopes.
struct RawSink(Counter);

impl Actor for RawSink {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "()")]
struct Raw(#[allow(dead_code)] Envelope);

impl Handler<Raw> for RawSink {
    type Result = ();
    fn handle(&mut self, _msg: Raw, _ctx: &mut Self::Context) {
        self.0.bump();
    }
}

/// The raw sender: forwards each envelope it gets to the sink (actor → actor).
struct RawSource(Addr<RawSink>);

impl Actor for RawSource {
    type Context = Context<Self>;
}

impl Handler<Raw> for RawSource {
    type Result = ();
    fn handle(&mut self, msg: Raw, _ctx: &mut Self::Context) {
        self.0.do_send(msg);
    }
}

async fn broker_round(n: usize) -> f64 {
    broker_round_journaled(n, None).await
}

/// The broker with every event journaled to a SQLite file in `sync` mode first.
async fn broker_round_journaled(n: usize, sync: Option<SyncMode>) -> f64 {
    let events = envelopes(n);
    let mut config = Config::default();
    config.engine.retain_finished_workflows = n / CHAIN + 1;
    let deps = EngineDeps::new(
        config,
        Arc::new(SystemClock),
        Arc::new(SimVenue::default()),
        Arc::new(StrategyBook::empty()),
    );
    let seen = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Notify::new());
    let mut registry = Registry::new(deps);
    let (s, d) = (seen.clone(), done.clone());
    registry.add("counter", &[EventKind::OrderFilled], move || Counter {
        seen: s.clone(),
        target: n as u64,
        done: d.clone(),
    });
    let dir = tempfile_dir();
    let journal =
        sync.map(|mode| Journal::open(&dir.join("bench-journal.sqlite"), mode).expect("journal"));
    let broker = Engine::with_registry(registry)
        .journal(journal)
        .start()
        .broker()
        .clone();
    let start = Instant::now();
    for env in events {
        broker.do_send(Publish::from(env));
    }
    done.notified().await;
    let secs = start.elapsed().as_secs_f64();
    let stats = broker.send(QueryStats).await.expect("broker alive");
    assert_eq!(stats.published_of(EventKind::OrderFilled), n as u64);
    assert_eq!(stats.rejected, 0);
    let _ = std::fs::remove_dir_all(&dir);
    n as f64 / secs
}

/// A fresh folder under the system temp dir for one round's journal.
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "alchemiser-bench-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

async fn raw_round(n: usize) -> f64 {
    let events = envelopes(n);
    let seen = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Notify::new());
    let sink = RawSink(Counter {
        seen: seen.clone(),
        target: n as u64,
        done: done.clone(),
    })
    .start();
    let source = RawSource(sink).start();
    let start = Instant::now();
    for env in events {
        source.do_send(Raw(env));
    }
    done.notified().await;
    n as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    // `bench_broker N R journal`: only the journaled broker (sync = normal), R rounds of
    // N events, every round printed: for comparing journal changes quickly.
    if args.next().as_deref() == Some("journal") {
        let rates: Vec<f64> = (0..rounds)
            .map(|_| journaled_round(n, SyncMode::Normal))
            .collect();
        let each: Vec<u64> = rates.iter().map(|r| *r as u64).collect();
        println!(
            "journaled (sync=normal) events/s: {each:?}, median {:.0}",
            median(rates)
        );
        return;
    }
    let system = System::new();
    let (b, r) = system.block_on(async move {
        let mut broker = Vec::new();
        let mut raw = Vec::new();
        for _ in 0..rounds {
            raw.push(raw_round(n).await);
            broker.push(broker_round(n).await);
        }
        let (b, r) = (median(broker), median(raw));
        println!("events per round: {n}, rounds: {rounds} (medians)");
        println!("raw actix actor->actor:        {:>12.0} msg/s", r);
        println!("broker (causation + fan-out):  {:>12.0} events/s", b);
        println!("ratio broker/raw:              {:>12.3}", b / r);
        (b, r)
    });
    drop(system);
    let nj = (n / 5).max(1000);
    let mut journaled = Vec::new();
    for (label, mode) in [("normal", SyncMode::Normal), ("full", SyncMode::Full)] {
        let rates: Vec<f64> = (0..rounds.min(3))
            .map(|_| journaled_round(nj, mode))
            .collect();
        let j = median(rates);
        println!(
            "broker + journal sync={label:<6}  {:>12.0} events/s ({nj} events; ratio to in-memory {:.3})",
            j,
            j / b
        );
        journaled.push(j);
    }
    // One machine-readable line for bench_report.
    println!(
        "REPORT {}",
        serde_json::json!({
            "events": n, "rounds": rounds, "raw": r, "broker": b, "ratio": b / r,
            "journal_events": nj, "journal_normal": journaled[0], "journal_full": journaled[1],
        })
    );
}

/// One journaled round in a system of its own: dropping the system stops the broker,
/// whose journal writer then finishes its queue and its checkpoint before the next
/// round starts (work left from one round must not slow the next).
fn journaled_round(n: usize, mode: SyncMode) -> f64 {
    let system = System::new();
    let rate = system.block_on(broker_round_journaled(n, Some(mode)));
    drop(system);
    rate
}
