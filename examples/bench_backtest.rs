//! Full-pipeline backtest speed and memory, and the ratio to backtrader.
//!
//! `cargo run --release --example bench_backtest` runs the LEAN sample rotation
//! (examples/lean_sample.toml: 6 symbols of examples/lean, adjusted) through the
//! five actors for every session 1998-2021, five times, and prints the median
//! workflows/s, bars/s and events/s; then peak memory for 5, 10 and 21 years (each in a
//! fresh process); then, if `python3 -c "import backtrader"` works, the same strategy in
//! backtrader (benches/backtrader_lean.py) and the ratio of the two run times.
//! The backtest uses a second core (signals evaluated ahead, the chain digest folded on
//! a thread of its own); backtrader runs on one. `--repeat N FROM TO` prints the mean of
//! N runs only (for A/B comparisons of two builds in one sitting).

/// The binary's allocator (see `src/main.rs`), so that the figures are the engine's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "support/peak_memory.rs"]
mod peak_memory;
use peak_memory::peak_mib;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use alchemiser::actors::backtest::{run, sessions};
use alchemiser::config::Config;
use chrono::NaiveDate;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

struct Round {
    seconds: f64,
    sessions: usize,
    symbols: usize,
    events: u64,
}

fn one_run(from: &str, to: &str) -> Round {
    let config = Config::load(&root().join("examples/lean_sample.toml")).expect("config");
    let book = Arc::new(
        alchemiser::symphony_files::load_book(&config.strategy, &config.base_dir, None)
            .expect("strategies and data"),
    );
    let dates = sessions(&book, date(from), date(to)).expect("sessions");
    let symbols = book.data.series.len();
    let system = actix::System::new();
    let start = Instant::now();
    let record = system
        .block_on(run(config, book, &dates, |_, _| {}))
        .expect("backtest");
    Round {
        seconds: start.elapsed().as_secs_f64(),
        sessions: dates.len(),
        symbols,
        events: record.events,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--repeat") {
        let n: usize = args[1].parse().expect("n");
        let t: f64 = (0..n).map(|_| one_run(&args[2], &args[3]).seconds).sum();
        println!("mean {:.4}", t / n as f64);
        return;
    }
    if args.first().map(String::as_str) == Some("--memory") {
        let r = one_run(&args[1], &args[2]);
        println!("{} {} {:.1}", r.sessions, r.events, peak_mib());
        return;
    }
    let (from, to) = ("1998-01-01", "2021-03-31");
    let mut rounds: Vec<Round> = (0..5).map(|_| one_run(from, to)).collect();
    rounds.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    let m = &rounds[rounds.len() / 2];
    println!(
        "alchemiser backtest {from}..{to}, {} sessions x {} symbols (median of 5)",
        m.sessions, m.symbols
    );
    println!("  wall {:.3} s", m.seconds);
    println!("  workflows/s {:.0}", m.sessions as f64 / m.seconds);
    println!(
        "  bars/s {:.0}",
        (m.sessions * m.symbols) as f64 / m.seconds
    );
    println!("  events/s {:.0}", m.events as f64 / m.seconds);

    let mut report = serde_json::json!({
        "sessions": m.sessions, "symbols": m.symbols, "seconds": m.seconds,
        "workflows_per_s": m.sessions as f64 / m.seconds,
        "bars_per_s": (m.sessions * m.symbols) as f64 / m.seconds,
    });
    let exe = std::env::current_exe().expect("own path");
    println!("peak memory by date range (fresh process each):");
    for (f, t) in [
        ("2016-01-01", "2021-03-31"),
        ("2011-01-01", "2021-03-31"),
        ("1998-01-01", "2021-03-31"),
    ] {
        let out = Command::new(&exe)
            .args(["--memory", f, t])
            .output()
            .expect("child");
        let text = String::from_utf8_lossy(&out.stdout);
        let parts: Vec<&str> = text.split_whitespace().collect();
        if let [sessions, events, mib] = parts.as_slice() {
            println!("  {f}..{t}: {sessions} sessions, {events} events, peak {mib} MiB");
        }
    }

    let script = root().join("benches/backtrader_lean.py");
    let lean = root().join("examples/lean");
    let bt = Command::new("python3")
        .arg(&script)
        .arg(&lean)
        .args([from, to])
        .output();
    match bt {
        Ok(o) if o.status.success() => {
            let line = String::from_utf8_lossy(&o.stdout);
            let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap_or_default();
            let secs = v["seconds"].as_f64().unwrap_or(f64::NAN);
            println!(
                "backtrader {} on the same strategy and data: {secs:.3} s ({} sessions)",
                v["version"], v["sessions"]
            );
            println!("ratio backtrader/alchemiser: {:.1}x", secs / m.seconds);
            report["backtrader_seconds"] = serde_json::json!(secs);
            report["ratio_backtrader"] = serde_json::json!(secs / m.seconds);
        }
        Ok(o) => println!(
            "backtrader not run: {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ),
        Err(e) => println!("backtrader not run: {e}"),
    }
    println!("REPORT {report}");
}
