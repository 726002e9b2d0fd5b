//! Strategy evaluation speed: every trading day of a long daily history.
//!
//! `cargo run --release --example bench_strategy -- [DATA_DIR] [SYMPHONY...]` evaluates
//! the symphonies (default: `examples/strategies/lean_etfs.clj` on `examples/lean`,
//! adjusted prices) as of every SPY session once every symbol has 200 bars (2001-2021),
//! and prints evaluations/s, wall and CPU time. The bundled default symphony on
//! `examples/data` (2013-2023) is timed too.

/// The binary's allocator (see `src/main.rs`), so that the figures are the engine's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::time::Instant;

use alchemiser::config::{OnStrategyError, StrategyConfig, StrategyFile};
use alchemiser::market::Adjustment;
use rust_decimal::Decimal;

fn time_book(label: &str, data: PathBuf, files: Vec<PathBuf>, anchor: &str) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = StrategyConfig {
        data,
        adjustment: Adjustment::Adjusted,
        on_strategy_error: OnStrategyError::Fail,
        files: files
            .into_iter()
            .map(|path| StrategyFile {
                path,
                weight: Decimal::ONE,
            })
            .collect(),
        ..StrategyConfig::default()
    };
    let book = match alchemiser::symphony_files::load_book(&config, &root, None) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{label}: skipped: {e}");
            return;
        }
    };
    // Every session of the anchor symbol once all symbols have 200 bars of history.
    let days = book.warm_dates(anchor, 200);
    let (Some(first), Some(last)) = (days.first(), days.last()) else {
        eprintln!("{label}: not enough history");
        return;
    };
    let cpu = cpu_time();
    let start = Instant::now();
    let mut hashes = 0usize;
    for d in &days {
        let s = book.evaluate(*d).expect("evaluation");
        hashes += s.signal_hash.len();
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_time() - cpu;
    println!(
        "{label}: {} evaluations ({first} .. {last}, {} symbols) in {wall:.3} s wall, {cpu:.3} s CPU: {:.0} evaluations/s",
        days.len(),
        book.data.series.len(),
        days.len() as f64 / wall
    );
    assert!(hashes > 0);
}

/// Process CPU time in seconds (user + system), from /proc/self/stat.
fn cpu_time() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut args = std::env::args().skip(1);
    let data = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("examples/lean"));
    let files: Vec<PathBuf> = args.map(PathBuf::from).collect();
    let files = if files.is_empty() {
        vec![root.join("examples/strategies/lean_etfs.clj")]
    } else {
        files
    };
    time_book("LEAN sample", data, files, "SPY");
    time_book(
        "bundled default",
        root.join("examples/data"),
        vec![root.join("examples/strategies/default.clj")],
        "AAPL",
    );
}
