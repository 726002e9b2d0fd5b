//! Every benchmark on this machine, written to BENCHMARKS.md.
//!
//! `cargo run --release --example bench_report` runs `bench_broker` (broker against raw
//! actix, journaled events/s), a full-pipeline backtest at 1x, 10x and 100x the bundled
//! symbols (universes made from the real series, prices scaled per copy; each size in a
//! fresh process for its peak memory, with signal -> order latency measured in process),
//! and `bench_backtest` (the LEAN sample and backtrader). Figures are medians of repeated runs or ratios taken in the same run.

/// The binary's allocator (see `src/main.rs`), so that the figures are the engine's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "support/peak_memory.rs"]
mod peak_memory;
use peak_memory::peak_mib;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use alchemiser::actors::backtest::{run_observed, sessions};
use alchemiser::actors::broker::Observed;
use alchemiser::config::Config;
use alchemiser::events::{CorrelationId, EventKind};

const SYMBOLS: [&str; 6] = ["AAPL", "AMZN", "GOOG", "META", "NFLX", "NVDA"];
const SESSIONS: usize = 250;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `copies` copies of each bundled series (copy k: prices x (1 + 0.002k)) and a symphony
/// that picks the best quarter by 20-day return, equally weighted.
fn universe(dir: &Path, copies: usize) -> PathBuf {
    std::fs::create_dir_all(dir).expect("scratch dir");
    let mut assets = Vec::new();
    for sym in SYMBOLS {
        let text = std::fs::read_to_string(root().join(format!("examples/data/{sym}.csv")))
            .expect("bundled csv");
        for k in 0..copies {
            let name = if k == 0 {
                sym.to_string()
            } else {
                format!("{sym}{k}")
            };
            let factor = 1.0 + 0.002 * k as f64;
            let mut out = String::from("date,open,high,low,close,volume\n");
            for line in text.lines().skip(1) {
                let f: Vec<&str> = line.split(',').collect();
                let px = |s: &str| format!("{:.4}", s.parse::<f64>().unwrap_or(0.0) * factor);
                out.push_str(&format!(
                    "{},{},{},{},{},{}\n",
                    f[0],
                    px(f[1]),
                    px(f[2]),
                    px(f[3]),
                    px(f[4]),
                    f[5]
                ));
            }
            std::fs::write(dir.join(format!("{name}.csv")), out).expect("csv");
            assets.push(format!("(asset \"{name}\")"));
        }
    }
    let top = (assets.len() / 4).max(2);
    let symphony = format!(
        "(defsymphony \"scale\" {{:asset-class \"EQUITIES\"}}\n  (weight-equal [(filter (moving-average-return {{:window 20}}) (select-top {top}) [{}])]))\n",
        assets.join(" ")
    );
    std::fs::write(dir.join("scale.clj"), symphony).expect("symphony");
    let cfg = dir.join("config.toml");
    std::fs::write(
        &cfg,
        // Every delta trades (no minimum), so each universe really rebalances daily.
        "[strategy]\ndata = \".\"\n[[strategy.files]]\npath = \"scale.clj\"\n[portfolio]\nmin_trade_pct = \"0\"\n[venue.sim]\ninitial_cash = \"10000000\"\n",
    )
    .expect("config");
    cfg
}

/// Signal -> first order submission, per workflow, as the broker dispatches them.
struct Latency {
    signals: HashMap<CorrelationId, Instant>,
    samples: Vec<f64>,
}

impl Actor for Latency {
    type Context = Context<Self>;
}

impl Handler<Observed> for Latency {
    type Result = ();
    fn handle(&mut self, msg: Observed, _ctx: &mut Self::Context) {
        match msg.env.kind() {
            EventKind::SignalGenerated => {
                self.signals.insert(msg.env.correlation_id, Instant::now());
            }
            EventKind::OrderSubmitted => {
                if let Some(t) = self.signals.remove(&msg.env.correlation_id) {
                    self.samples.push(t.elapsed().as_secs_f64() * 1000.0);
                }
            }
            _ => {}
        }
    }
}

#[derive(Message)]
#[rtype(result = "Vec<f64>")]
struct Samples;

impl Handler<Samples> for Latency {
    type Result = Vec<f64>;
    fn handle(&mut self, _: Samples, _ctx: &mut Self::Context) -> Vec<f64> {
        std::mem::take(&mut self.samples)
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Child mode: one backtest at `copies` x the bundled symbols; prints one JSON line.
fn scale_child(copies: usize) {
    let dir =
        std::env::temp_dir().join(format!("alchemiser-scale-{}-{copies}", std::process::id()));
    let cfg = universe(&dir, copies);
    let config = Config::load(&cfg).expect("config");
    let book = Arc::new(
        alchemiser::symphony_files::load_book(&config.strategy, &config.base_dir, None)
            .expect("book"),
    );
    let all = book.common_dates();
    let from = all[all.len() - SESSIONS];
    let to = *all.last().expect("dates");
    let dates = sessions(&book, from, to).expect("sessions");
    let symbols = book.data.series.len();
    let system = actix::System::new();
    let (seconds, events, mut samples) = system.block_on(async move {
        let latency = Latency {
            signals: HashMap::new(),
            samples: Vec::new(),
        }
        .start();
        let start = Instant::now();
        let record = run_observed(
            config,
            book,
            &dates,
            |_, _| {},
            Some(latency.clone().recipient()),
        )
        .await
        .expect("backtest");
        let seconds = start.elapsed().as_secs_f64();
        let samples = latency.send(Samples).await.unwrap_or_default();
        (seconds, record.events, samples)
    });
    samples.sort_by(|a, b| a.total_cmp(b));
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{}",
        serde_json::json!({
            "copies": copies, "symbols": symbols, "sessions": SESSIONS, "seconds": seconds,
            "events": events, "peak_mib": peak_mib(),
            "latency_p50_ms": percentile(&samples, 0.5), "latency_p99_ms": percentile(&samples, 0.99),
            "latency_samples": samples.len(),
        })
    );
}

/// The first `REPORT ` line of an example's output that holds JSON (some print
/// human-readable `REPORT` lines too).
fn report_line(out: &[u8]) -> Option<serde_json::Value> {
    String::from_utf8_lossy(out)
        .lines()
        .filter_map(|l| l.strip_prefix("REPORT "))
        .find_map(|j| serde_json::from_str(j).ok())
}

fn example(name: &str, args: &[&str]) -> Option<serde_json::Value> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root())
        .args(["run", "--release", "--quiet", "--example", name, "--"])
        .args(args)
        .output()
        .ok()?;
    report_line(&out.stdout)
}

fn median_by(mut runs: Vec<serde_json::Value>, key: &str) -> serde_json::Value {
    runs.sort_by(|a, b| {
        a[key]
            .as_f64()
            .unwrap_or(0.0)
            .total_cmp(&b[key].as_f64().unwrap_or(0.0))
    });
    runs.swap_remove(runs.len() / 2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, copies] = args.as_slice() {
        if flag == "--scale" {
            scale_child(copies.parse().expect("copies"));
            return;
        }
    }
    let exe = std::env::current_exe().expect("own path");
    let mut rows: Vec<(String, String, String)> = Vec::new();
    let fmt = |v: &serde_json::Value, k: &str| {
        v[k].as_f64()
            .map_or("n/a".to_string(), |x| format!("{x:.0}"))
    };

    eprintln!("broker and journal (bench_broker 1000000 5)...");
    let broker_cmd = "cargo run --release --example bench_broker -- 1000000 5";
    match example("bench_broker", &["1000000", "5"]) {
        Some(b) => {
            rows.push((
                "Broker throughput (1M events, median of 5)".into(),
                format!("{} events/s", fmt(&b, "broker")),
                broker_cmd.into(),
            ));
            rows.push((
                "Raw actix actor->actor, same run".into(),
                format!("{} msg/s", fmt(&b, "raw")),
                broker_cmd.into(),
            ));
            rows.push((
                "Broker / raw actix".into(),
                format!("{:.3}", b["ratio"].as_f64().unwrap_or(f64::NAN)),
                broker_cmd.into(),
            ));
            rows.push((
                "Journaled, sync = normal (200k events, median of 3)".into(),
                format!(
                    "{} events/s ({:.2} of in-memory)",
                    fmt(&b, "journal_normal"),
                    b["journal_normal"].as_f64().unwrap_or(0.0)
                        / b["broker"].as_f64().unwrap_or(1.0)
                ),
                broker_cmd.into(),
            ));
            rows.push((
                "Journaled, sync = full".into(),
                format!("{} events/s", fmt(&b, "journal_full")),
                broker_cmd.into(),
            ));
        }
        None => rows.push((
            "Broker".into(),
            "bench_broker did not report".into(),
            broker_cmd.into(),
        )),
    }

    for copies in [1usize, 10, 100] {
        eprintln!("backtest at {copies}x the bundled symbols (3 fresh processes)...");
        let runs: Vec<serde_json::Value> = (0..3)
            .filter_map(|_| {
                let out = Command::new(&exe)
                    .args(["--scale", &copies.to_string()])
                    .output()
                    .ok()?;
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .last()
                    .and_then(|l| serde_json::from_str(l).ok())
            })
            .collect();
        if runs.is_empty() {
            rows.push((
                format!("Backtest {copies}x"),
                "did not run".into(),
                String::new(),
            ));
            continue;
        }
        let m = median_by(runs, "seconds");
        let secs = m["seconds"].as_f64().unwrap_or(f64::NAN);
        let symbols = m["symbols"].as_u64().unwrap_or(0);
        rows.push((
            format!(
                "Backtest, {} symbols x {SESSIONS} sessions ({copies}x), median of 3",
                symbols
            ),
            format!(
                "{:.3} s: {:.0} workflows/s, {:.0} bars/s, peak {:.1} MiB",
                secs,
                SESSIONS as f64 / secs,
                (symbols as f64 * SESSIONS as f64) / secs,
                m["peak_mib"].as_f64().unwrap_or(f64::NAN)
            ),
            format!("cargo run --release --example bench_report (child --scale {copies})"),
        ));
        rows.push((
            format!("Signal -> first order, in process ({symbols} symbols)"),
            format!(
                "p50 {:.3} ms, p99 {:.3} ms ({} workflows)",
                m["latency_p50_ms"].as_f64().unwrap_or(f64::NAN),
                m["latency_p99_ms"].as_f64().unwrap_or(f64::NAN),
                m["latency_samples"]
            ),
            format!("cargo run --release --example bench_report (child --scale {copies})"),
        ));
    }

    let bt_cmd = "cargo run --release --example bench_backtest";
    eprintln!("LEAN sample backtest and backtrader (bench_backtest)...");
    match example("bench_backtest", &[]) {
        Some(b) => {
            rows.push((
                "Backtest, LEAN sample 1998-2021 (median of 5)".into(),
                format!(
                    "{} workflows/s, {} bars/s",
                    fmt(&b, "workflows_per_s"),
                    fmt(&b, "bars_per_s")
                ),
                bt_cmd.into(),
            ));
            rows.push((
                "backtrader / alchemiser, same strategy and data".into(),
                b["ratio_backtrader"]
                    .as_f64()
                    .map_or("backtrader not installed".into(), |r| format!("{r:.1}x")),
                bt_cmd.into(),
            ));
        }
        None => rows.push((
            "Backtest, LEAN sample".into(),
            "bench_backtest did not report".into(),
            bt_cmd.into(),
        )),
    }

    // Large universes: backtrader on the cases it finishes in minutes, not the largest.
    for (cases, with_backtrader) in [(&["500x5", "500x20"][..], true), (&["2000x20"][..], false)] {
        let mut args: Vec<&str> = cases.to_vec();
        if !with_backtrader {
            args.push("--no-backtrader");
        }
        let cmd = format!(
            "cargo run --release --example bench_universe -- {}",
            args.join(" ")
        );
        eprintln!("synthetic universes ({})...", args.join(" "));
        let Some(u) = example("bench_universe", &args) else {
            rows.push((
                "Universe backtest".into(),
                "bench_universe did not report".into(),
                cmd,
            ));
            continue;
        };
        for c in u["cases"].as_array().into_iter().flatten() {
            let secs = c["seconds"].as_f64().unwrap_or(f64::NAN);
            let bars = c["bars"].as_f64().unwrap_or(f64::NAN);
            let ratio = c["backtrader_seconds"]
                .as_f64()
                .map_or("backtrader not run".into(), |b| {
                    format!("backtrader {b:.1} s, {:.1}x", b / secs)
                });
            rows.push((
                format!(
                    "Universe backtest {} (symbols x years, {bars:.0} bars), median of {}",
                    c["case"].as_str().unwrap_or("?"),
                    u["runs"]
                ),
                format!(
                    "{secs:.2} s (load {:.2} s), peak {:.0} MiB, {:.0} bytes/bar held; {ratio}",
                    c["load_seconds"].as_f64().unwrap_or(f64::NAN),
                    c["peak_mib"].as_f64().unwrap_or(f64::NAN),
                    c["held_bytes_per_bar"].as_f64().unwrap_or(f64::NAN),
                ),
                cmd.clone(),
            ));
        }
    }

    // Sweep throughput: in process and per worker over NATS (bench_nats also times
    // the engine with a bus and with workers; its sweep figures are what go here).
    let nats_cmd = "cargo run --release --example bench_nats -- --runs 3";
    eprintln!("sweeps in process and over NATS (bench_nats --runs 3)...");
    match example("bench_nats", &["--runs", "3"]) {
        Some(n) => {
            let rate = |k: &str| n[k].as_f64().map_or("n/a".into(), |x| format!("{x:.1}"));
            rows.push((
                "Sweep, example grid (24 variants), in process on every core".into(),
                format!("{} variants/s", rate("in_process_variants_per_s")),
                nats_cmd.into(),
            ));
            rows.push((
                "Sweep over NATS, 1 and 2 backtest workers".into(),
                format!(
                    "{} and {} variants/s ({} per worker with 2)",
                    rate("nats_1_worker_variants_per_s"),
                    rate("nats_2_workers_variants_per_s"),
                    rate("nats_variants_per_s_per_worker")
                ),
                nats_cmd.into(),
            ));
        }
        None => rows.push((
            "Sweep throughput".into(),
            "bench_nats did not report (release binary and nats-server needed)".into(),
            nats_cmd.into(),
        )),
    }

    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut md = format!(
        "# Benchmarks\n\nProduced by `cargo run --release --example bench_report` on a {cpus}-CPU machine \
         ({}). Shared machines are noisy: compare ratios taken in the same run, not absolute figures across runs.\n\n\
         | Measure | Result | Command |\n|---|---|---|\n",
        std::env::consts::ARCH
    );
    for (what, result, cmd) in &rows {
        md.push_str(&format!("| {what} | {result} | `{cmd}` |\n"));
    }
    std::fs::write(root().join("BENCHMARKS.md"), &md).expect("write BENCHMARKS.md");
    print!("{md}");
}
