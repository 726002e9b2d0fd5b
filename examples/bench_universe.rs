//! Large universes: how a backtest's cost grows with symbols × days.
//!
//! `cargo run --release --example bench_universe` generates synthetic universes (seeded
//! random walks, one CSV per symbol plus SPY, into a temporary folder; no data in the
//! repository) for 50, 500 and 2,000 symbols over 5 and 20 years, and backtests on each
//! the rule `if SPY > SMA200: top 10 by 60-day cumulative return, else bottom 10 by
//! 20-day stdev-return`, each case in a fresh process. It prints wall time (load
//! included), peak memory, bars/s, the bytes per bar the market data holds and those of
//! the peak; with `python3 -c
//! "import backtrader"` working it runs the same rules in backtrader
//! (benches/backtrader_universe.py) on the same files and prints the ratio.
//!
//! Each case is also imported into a market-data store (`alchemiser data import`'s
//! library path: one Parquet file per symbol) and backtested from it, and the bars
//! loaded alone from each (CSV, store) in fresh processes: load seconds, peak memory and
//! the bytes the bars hold. With the release binary built (`cargo build --release`), the
//! whole `alchemiser backtest` command runs on the store too (wall time and peak memory
//! by `/usr/bin/time`, every report file written).
//!
//! `-- CASE...` picks cases (`500x20`, `50x5`); `--no-backtrader` skips the comparison;
//! `--runs N` runs each case N times in fresh processes and reports the median (3);
//! `--keep DIR` generates into DIR and keeps the data (a later run with the same DIR
//! reuses it: for profiling the child, `--child DIR/500x20 2006-01-01 2024-12-31`).

/// The binary's allocator (see `src/main.rs`), so that the figures are the engine's.
#[path = "../tests/integration/common/universe.rs"]
mod universe;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "support/peak_memory.rs"]
mod peak_memory;
use peak_memory::peak_mib;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use alchemiser::actors::backtest::{run, sessions};
use alchemiser::calendar::UsEquityCalendar;
use alchemiser::config::Config;
use chrono::NaiveDate;

/// Candidates picked each day.
const PICK: usize = 10;

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

/// The child: loads the folder's config and backtests `from..to` on the bars of
/// `source` (`data`: the CSV folder, `store`); prints one JSON line. With `load` only
/// loads.
fn child(dir: &Path, from: &str, to: &str, source: &str, load_only: bool) {
    let start = Instant::now();
    let config = Config::load(&dir.join("config.toml")).expect("config");
    let bars_folder = dir.join(source);
    let book = Arc::new(
        alchemiser::symphony_files::load_book(
            &config.strategy,
            &config.base_dir,
            Some(&bars_folder),
        )
        .expect("strategies and data"),
    );
    let loaded = start.elapsed().as_secs_f64();
    let bars: usize = book.data.series.values().map(|s| s.len()).sum();
    if load_only {
        println!(
            "{}",
            serde_json::json!({
                "load_seconds": loaded,
                "held_bytes": book.data.held_bytes(),
                "peak_mib": peak_mib(),
                "bars": bars,
            })
        );
        return;
    }
    let dates = sessions(&book, date(from), date(to)).expect("sessions");
    let system = actix::System::new();
    let record = system
        .block_on(run(config, book.clone(), &dates, |_, _| {}))
        .expect("backtest");
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "seconds": seconds,
            "held_bytes": book.data.held_bytes(),
            "load_seconds": loaded,
            "peak_mib": peak_mib(),
            "bars": bars,
            "sessions": dates.len(),
            "fills": record.fills.len(),
        })
    );
}

/// The case's CSV folder imported into a store at `dir/store` (once).
fn import_store(dir: &Path) {
    use alchemiser::data::DataSource;
    use alchemiser::market::BarSource;
    let store_dir = dir.join("store");
    if alchemiser::store::BarStore::is_store(&store_dir) {
        return;
    }
    let source = DataSource::CsvFolder {
        dir: dir.join("data"),
    };
    let mut store = alchemiser::store::BarStore::open(&store_dir).expect("store");
    for symbol in source.symbols().expect("symbols") {
        let bars = source.read(&symbol).expect("bars");
        let provenance = alchemiser::store::Provenance {
            source: "bench_universe".into(),
            adjustment: "raw".into(),
            written_at: "2026-01-01T00:00:00Z".into(),
        };
        store.replace(&symbol, &bars, provenance).expect("write");
    }
    store.commit().expect("manifest");
}

/// The median (by `key`) of `runs` fresh children with `args`, or the last error line.
fn median_of(
    exe: &Path,
    args: &[String],
    runs: usize,
    key: &str,
) -> Result<serde_json::Value, String> {
    let mut results = Vec::new();
    for _ in 0..runs {
        let out = Command::new(exe).args(args).output().expect("child");
        let line = String::from_utf8_lossy(&out.stdout);
        match serde_json::from_str::<serde_json::Value>(line.trim()) {
            Ok(r) => results.push(r),
            Err(_) => {
                return Err(String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
                    .to_string())
            }
        }
    }
    results.sort_by(|a, b| {
        let s = |v: &serde_json::Value| v[key].as_f64().unwrap_or(f64::NAN);
        s(a).total_cmp(&s(b))
    });
    Ok(results.swap_remove(results.len() / 2))
}

/// The whole `alchemiser backtest` command on the case's store: wall seconds and peak
/// MiB (median of `runs`), when the release binary and `/usr/bin/time` are there.
fn command_on_store(dir: &Path, from: &str, to: &str, runs: usize) -> Option<(f64, f64)> {
    let exe = std::env::current_exe()
        .ok()?
        .parent()?
        .parent()?
        .join("alchemiser");
    if !exe.is_file() || !Path::new("/usr/bin/time").is_file() {
        return None;
    }
    let mut figures = Vec::new();
    for _ in 0..runs {
        let out = Command::new("/usr/bin/time")
            .args(["-f", "TIME %e %M"])
            .arg(&exe)
            .args(["backtest", "--config"])
            .arg(dir.join("config.toml"))
            .args(["--from", from, "--to", to, "--data"])
            .arg(dir.join("store"))
            .arg("--out")
            .arg(dir.join("out"))
            .env("RUST_LOG", "error")
            .output()
            .ok()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = stderr.lines().find(|l| l.starts_with("TIME "))?;
        let mut f = line.split_whitespace().skip(1);
        let seconds: f64 = f.next()?.parse().ok()?;
        let kib: f64 = f.next()?.parse().ok()?;
        if !out.status.success() || !dir.join("out/report.html").is_file() {
            return None;
        }
        figures.push((seconds, kib / 1024.0));
    }
    figures.sort_by(|a, b| a.0.total_cmp(&b.0));
    figures.get(figures.len() / 2).copied()
}

struct Case {
    symbols: usize,
    years: i32,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        let source = args.get(4).map_or("data", String::as_str);
        let load_only = args.get(5).is_some_and(|a| a == "load");
        return child(Path::new(&args[1]), &args[2], &args[3], source, load_only);
    }
    let backtrader = !args.iter().any(|a| a == "--no-backtrader")
        && Command::new("python3")
            .args(["-c", "import backtrader"])
            .output()
            .is_ok_and(|o| o.status.success());
    let picked: Vec<Case> = args
        .iter()
        .filter_map(|a| {
            let (s, y) = a.split_once('x')?;
            Some(Case {
                symbols: s.parse().ok()?,
                years: y.parse().ok()?,
            })
        })
        .collect();
    let cases = if picked.is_empty() {
        [
            (50, 5),
            (50, 20),
            (500, 5),
            (500, 20),
            (2000, 5),
            (2000, 20),
        ]
        .map(|(symbols, years)| Case { symbols, years })
        .into_iter()
        .collect()
    } else {
        picked
    };
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(3)
        .max(1);
    let keep = args
        .iter()
        .position(|a| a == "--keep")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    let root = keep.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("alchemiser-universe-{}", std::process::id()))
    });
    let exe = std::env::current_exe().expect("own path");
    println!(
        "case | bars | alchemiser wall (median of {runs}) | peak | bars/s | bytes/bar held | bytes/bar at peak | backtrader | ratio | load: CSV | load: store | load peak: CSV, store (held) | store wall (load) | `backtest` command on the store"
    );
    let mut report = Vec::new();
    for case in cases {
        // Data from 2005 (20 years) or 2019 (5 years) to 2024; trading from a year in.
        let first = 2024 - case.years;
        let days = UsEquityCalendar::get().sessions(
            NaiveDate::from_ymd_opt(first, 1, 1).expect("date"),
            date("2024-12-31"),
        );
        let dir: PathBuf = root.join(format!("{}x{}", case.symbols, case.years));
        if keep.is_none() || !dir.join("config.toml").exists() {
            universe::write_case(&dir, case.symbols, PICK, &days);
        }
        let from = format!("{}-01-01", first + 1);
        import_store(&dir);
        // The median of `runs` fresh processes (the first after writing the files is
        // often the slowest).
        let child_args = |source: &str, load: bool| -> Vec<String> {
            let mut a = vec![
                "--child".to_string(),
                dir.display().to_string(),
                from.clone(),
                "2024-12-31".into(),
                source.into(),
            ];
            if load {
                a.push("load".into());
            }
            a
        };
        let measured = median_of(&exe, &child_args("data", false), runs, "seconds")
            .and_then(|csv| {
                Ok((
                    csv,
                    median_of(&exe, &child_args("store", false), runs, "seconds")?,
                ))
            })
            .and_then(|(csv, store)| {
                let load_csv = median_of(&exe, &child_args("data", true), runs, "load_seconds")?;
                let load_store = median_of(&exe, &child_args("store", true), runs, "load_seconds")?;
                Ok((csv, store, load_csv, load_store))
            });
        let (r, on_store, load_csv, load_store) = match measured {
            Ok(m) => m,
            Err(failure) => {
                println!("{}x{}y | failed: {failure}", case.symbols, case.years);
                continue;
            }
        };
        let command = command_on_store(&dir, &from, "2024-12-31", runs);
        let r = &r;
        let seconds = r["seconds"].as_f64().unwrap_or(f64::NAN);
        let peak = r["peak_mib"].as_f64().unwrap_or(f64::NAN);
        let bars = r["bars"].as_f64().unwrap_or(f64::NAN);
        let held = r["held_bytes"].as_f64().unwrap_or(f64::NAN);
        let bt = backtrader
            .then(|| {
                let script =
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/backtrader_universe.py");
                let o = Command::new("python3")
                    .arg(script)
                    .arg(dir.join("data"))
                    .args([&from, "2024-12-31", &PICK.to_string()])
                    .output()
                    .ok()?;
                let v: serde_json::Value =
                    serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).ok()?;
                v["seconds"].as_f64()
            })
            .flatten();
        let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "{}x{}y | {:.0} | {:.2} s (load {:.2} s) | {:.0} MiB | {:.0} | {:.0} | {:.0} | {} | {} | {:.3} s | {:.3} s | {:.0}, {:.0} MiB ({:.0} MiB) | {:.2} s ({:.3} s) | {}",
            case.symbols,
            case.years,
            bars,
            seconds,
            r["load_seconds"].as_f64().unwrap_or(f64::NAN),
            peak,
            bars / seconds,
            held / bars,
            peak * 1024.0 * 1024.0 / bars,
            bt.map_or("-".into(), |s| format!("{s:.2} s")),
            bt.map_or("-".into(), |s| format!("{:.1}x", s / seconds)),
            f(&load_csv, "load_seconds"),
            f(&load_store, "load_seconds"),
            f(&load_csv, "peak_mib"),
            f(&load_store, "peak_mib"),
            f(&load_store, "held_bytes") / 1024.0 / 1024.0,
            f(&on_store, "seconds"),
            f(&on_store, "load_seconds"),
            command.map_or("-".into(), |(s, m)| format!("{s:.2} s, {m:.0} MiB")),
        );
        report.push(serde_json::json!({
            "case": format!("{}x{}", case.symbols, case.years),
            "bars": bars,
            "seconds": seconds,
            "load_seconds": r["load_seconds"],
            "peak_mib": peak,
            "held_bytes_per_bar": held / bars,
            "backtrader_seconds": bt,
            "load_seconds_csv": load_csv["load_seconds"],
            "load_seconds_store": load_store["load_seconds"],
            "load_peak_mib_csv": load_csv["peak_mib"],
            "load_peak_mib_store": load_store["peak_mib"],
            "held_mib": f(&load_store, "held_bytes") / 1024.0 / 1024.0,
            "seconds_on_store": on_store["seconds"],
            "command_on_store": command.map(|(s, m)| serde_json::json!({"seconds": s, "peak_mib": m})),
        }));
        if keep.is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    // For bench_report: one line it picks out.
    println!(
        "REPORT {}",
        serde_json::json!({ "cases": report, "runs": runs })
    );
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&root);
    }
}
