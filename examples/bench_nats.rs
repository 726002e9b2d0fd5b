//! Beyond one process: what NATS costs and what workers buy.
//!
//! `cargo build --release && cargo run --release --example bench_nats` starts Debian's
//! `nats-server` (JetStream, a temporary store) and the fake Alpaca on 127.0.0.1, then
//! runs `alchemiser run --once` (the release binary) for RUNS trading days in three
//! set-ups — actors in process without a bus; in process with every event mirrored to
//! JetStream; execution and reconciliation in a worker process — and reads from each
//! run's journal the workflow's events per second (events ÷ started-to-completed time)
//! and the latency from the signal to the first order at the venue
//! (`strategy.signal.generated` → `execution.order.submitted`). Then it times the example
//! sweep (24 variants) on this machine's cores and over NATS with 1 and 2
//! `worker --roles backtest` processes. `-- --runs N` sets RUNS (20).

#[path = "../tests/integration/common/mod.rs"]
mod common;
use common::nats;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::Instant;

use alchemiser::calendar::UsEquityCalendar;
use alchemiser::events::EventKind;
use alchemiser::journal::{Journal, SyncMode};
use alchemiser::venues::alpaca::fake::FakeAlpaca;
use chrono::NaiveDate;
use rust_decimal::Decimal;

const KEY: &str = "PKBENCHNATS01";
const SECRET: &str = "bench-secret";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn binary() -> PathBuf {
    root().join("target/release/alchemiser")
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn fake() -> FakeAlpaca {
    let f = FakeAlpaca::start(KEY, SECRET, Decimal::from(100_000)).expect("fake alpaca");
    for (s, p) in common::BUNDLED_CLOSES {
        f.state()
            .prices
            .insert(s.into(), Decimal::from_str(p).expect("price"));
        f.state()
            .bars
            .insert(s.into(), common::bars_from_bundled(s));
    }
    f.state().bars_page_size = 2000;
    f
}

#[derive(Clone, Copy, PartialEq)]
enum Setup {
    InProcess,
    Mirrored,
    Remote,
}

impl Setup {
    fn name(self) -> &'static str {
        match self {
            Setup::InProcess => "actors in process, no bus",
            Setup::Mirrored => "in process, events mirrored to JetStream",
            Setup::Remote => "execution + reconciliation in a worker",
        }
    }
}

fn config(dir: &Path, fake: &FakeAlpaca, port: u16, setup: Setup) -> PathBuf {
    let bus = match setup {
        Setup::InProcess => String::new(),
        // Each set-up its own stream: a stream is one journal's copy.
        Setup::Mirrored => format!("[bus]\ntransport = \"nats\"\nurl = \"nats://127.0.0.1:{port}\"\nstream = \"BENCH_MIRRORED\"\nsubject_prefix = \"bench.mirrored\"\n"),
        Setup::Remote => format!("[bus]\ntransport = \"nats\"\nurl = \"nats://127.0.0.1:{port}\"\nstream = \"BENCH_REMOTE\"\nsubject_prefix = \"bench.remote\"\nremote_roles = [\"execution\", \"reconciliation\"]\n"),
    };
    let cfg = dir.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[strategy]\ndata = {:?}\n[[strategy.files]]\npath = {:?}\n[journal]\npath = {:?}\n\
             [engine]\ncontrol_dir = {:?}\n[metrics]\nenabled = false\n[alpaca]\ntrading_url = {:?}\ndata_url = {:?}\n{bus}",
            root().join("examples/data"),
            root().join("examples/strategies/default.clj"),
            dir.join("journal.sqlite"),
            dir,
            fake.url(),
            fake.url(),
        ),
    )
    .expect("config");
    cfg
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs RUNS days in `setup`; (events/s per workflow, signal→first order ms).
fn trade(setup: Setup, nats_port: u16, days: &[NaiveDate]) -> (Vec<f64>, Vec<f64>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = fake();
    let cfg = config(dir.path(), &f, nats_port, setup);
    let _worker = (setup == Setup::Remote).then(|| {
        Killed(
            Command::new(binary())
                .args(["worker", "--roles", "execution,reconciliation", "--config"])
                .arg(&cfg)
                .env("APCA_API_KEY_ID", KEY)
                .env("APCA_API_SECRET_KEY", SECRET)
                .env("RUST_LOG", "error")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("worker"),
        )
    });
    for day in days {
        f.set_today(*day);
        let out = Command::new(binary())
            .args(["run", "--once", "--as-of", &day.to_string(), "--config"])
            .arg(&cfg)
            .env("APCA_API_KEY_ID", KEY)
            .env("APCA_API_SECRET_KEY", SECRET)
            .env("RUST_LOG", "error")
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}: {}",
            setup.name(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let journal =
        Journal::open(&dir.path().join("journal.sqlite"), SyncMode::Normal).expect("journal");
    let entries = journal.entries().expect("entries");
    let mut rates = Vec::new();
    let mut latencies = Vec::new();
    let mut by_workflow: std::collections::BTreeMap<_, Vec<_>> = Default::default();
    for e in &entries {
        by_workflow
            .entry(e.envelope.correlation_id)
            .or_default()
            .push(&e.envelope);
    }
    for events in by_workflow.values() {
        let at = |k: EventKind| events.iter().find(|e| e.kind() == k).map(|e| e.occurred_at);
        if let (Some(start), Some(end)) = (
            at(EventKind::WorkflowStarted),
            at(EventKind::WorkflowCompleted),
        ) {
            let secs = (end - start).num_microseconds().unwrap_or(0) as f64 / 1e6;
            if secs > 0.0 {
                rates.push(events.len() as f64 / secs);
            }
        }
        if let (Some(signal), Some(order)) = (
            at(EventKind::SignalGenerated),
            at(EventKind::OrderSubmitted),
        ) {
            latencies.push((order - signal).num_microseconds().unwrap_or(0) as f64 / 1000.0);
        }
    }
    rates.sort_by(f64::total_cmp);
    latencies.sort_by(f64::total_cmp);
    (rates, latencies)
}

fn sweep_seconds(nats_port: Option<u16>, workers: usize, store: &Path) -> f64 {
    let out = tempfile::tempdir().expect("tempdir");
    let config = out.path().join("sweep.toml");
    std::fs::write(
        &config,
        format!(
            "[[strategy.files]]\npath = {:?}\nweight = \"1\"\n[strategy]\ndata = {:?}\n",
            root().join("examples/strategies/default_template.clj"),
            root().join("examples/data"),
        ),
    )
    .expect("config");
    let _server = nats_port.map(|p| {
        nats::NatsServer::start(&nats::nats_server_binary().expect("nats-server"), p, store)
    });
    let _workers: Vec<Killed> = (0..workers)
        .map(|_| {
            Killed(
                Command::new(binary())
                    .args(["worker", "--roles", "backtest", "--nats"])
                    .arg(format!("nats://127.0.0.1:{}", nats_port.unwrap_or(0)))
                    .arg("--config")
                    .arg(&config)
                    .env("RUST_LOG", "error")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("worker"),
            )
        })
        .collect();
    let mut c = Command::new(binary());
    c.args([
        "sweep",
        "--from",
        "2016-01-01",
        "--to",
        "2023-09-21",
        "--config",
    ])
    .arg(&config)
    .arg("--grid")
    .arg(root().join("examples/sweep_grid.toml"))
    .arg("--out")
    .arg(out.path().join("out"));
    if let Some(p) = nats_port {
        c.arg("--nats").arg(format!("nats://127.0.0.1:{p}"));
    }
    let started = Instant::now();
    let done = c.output().expect("sweep");
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    started.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    if !binary().exists() {
        eprintln!("build the release binary first: cargo build --release");
        std::process::exit(2);
    }
    let Some(server) = nats::nats_server_binary() else {
        eprintln!("nats-server is needed: apt-get install -y nats-server");
        std::process::exit(2);
    };
    let store = tempfile::tempdir().expect("tempdir");
    let port = nats::free_port();
    let _nats = nats::NatsServer::start(&server, port, store.path());
    // The last RUNS sessions of the bundled data, one workflow each.
    let sessions = UsEquityCalendar::get().sessions(
        NaiveDate::from_ymd_opt(2023, 1, 1).expect("date"),
        NaiveDate::from_ymd_opt(2023, 9, 21).expect("date"),
    );
    let days = &sessions[sessions.len().saturating_sub(runs)..];
    println!(
        "{} workflows per set-up (run --once each, fake Alpaca, nats-server {port})",
        days.len()
    );
    println!("| set-up | events/s p50 | events/s p99-low | signal→first order p50 | p99 |");
    println!("|---|---|---|---|---|");
    for setup in [Setup::InProcess, Setup::Mirrored, Setup::Remote] {
        let (rates, latencies) = trade(setup, port, days);
        println!(
            "| {} | {:.0} | {:.0} | {:.2} ms | {:.2} ms |",
            setup.name(),
            percentile(&rates, 0.5),
            percentile(&rates, 0.01),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        );
        println!(
            "REPORT nats setup={:?} events_per_s_p50={:.0} latency_ms_p50={:.3} latency_ms_p99={:.3}",
            setup.name(),
            percentile(&rates, 0.5),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        );
    }
    drop(_nats);
    let cores = sweep_seconds(None, 0, store.path());
    let one = sweep_seconds(Some(nats::free_port()), 1, &store.path().join("s1"));
    let two = sweep_seconds(Some(nats::free_port()), 2, &store.path().join("s2"));
    println!("example sweep, 24 variants 2016-01-04..2023-09-21 (wall time of the driver):");
    let rate = |secs: f64| 24.0 / secs;
    for (name, secs) in [
        ("in-process pool (every core)", cores),
        ("NATS, 1 worker process", one),
        ("NATS, 2 worker processes", two),
    ] {
        println!("  {name}: {secs:.2} s, {:.1} variants/s", rate(secs));
    }
    // One line for bench_report.
    println!(
        "REPORT {}",
        serde_json::json!({
            "sweep_variants": 24,
            "in_process_variants_per_s": rate(cores),
            "nats_1_worker_variants_per_s": rate(one),
            "nats_2_workers_variants_per_s": rate(two),
            "nats_variants_per_s_per_worker": rate(two) / 2.0,
        })
    );
}
