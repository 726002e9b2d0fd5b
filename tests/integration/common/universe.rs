//! Synthetic universes: seeded random walks, one CSV per symbol plus SPY, and a symphony
//! that filters over all of them. Shared by `examples/bench_universe.rs` (through
//! `#[path]`) and `tests/universe.rs`, so the benchmark and the test that pins its
//! outputs read the same data.

use std::fmt::Write as _;
use std::path::Path;

use chrono::NaiveDate;

/// splitmix64: a generator whose output is fixed by its definition, so that a seed gives
/// the same universe whatever the version of any crate.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (-1, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

pub fn symbol(i: usize) -> String {
    format!("S{i:04}")
}

/// Writes SPY and `n` symbols' daily bars for `days` into `dir`: random walks with a
/// drift and a volatility of their own per symbol, prices to 4 decimals.
pub fn generate(dir: &Path, n: usize, days: &[NaiveDate]) {
    std::fs::create_dir_all(dir).expect("data folder");
    let mut rng = SplitMix(20_240_601 + n as u64);
    let names: Vec<String> = std::iter::once("SPY".to_string())
        .chain((0..n).map(symbol))
        .collect();
    for name in names {
        let drift = rng.unit() * 0.0004 + 0.0002;
        let vol = 0.01 + (rng.unit() + 1.0) * 0.01;
        let mut close = 20.0 + (rng.unit() + 1.0) * 90.0;
        let mut text = String::with_capacity(days.len() * 48 + 40);
        text.push_str("date,open,high,low,close,volume\n");
        for day in days {
            let open = close;
            close = (close * (1.0 + drift + vol * rng.unit())).max(0.5);
            let (high, low) = (open.max(close) * 1.005, open.min(close) * 0.995);
            let volume = 100_000 + (rng.next() % 900_000);
            let _ = writeln!(
                text,
                "{day},{open:.4},{high:.4},{low:.4},{close:.4},{volume}"
            );
        }
        std::fs::write(dir.join(format!("{name}.csv")), text).expect("write csv");
    }
}

/// `if SPY > SMA200: top `pick` by 60-day cumulative return, else bottom `pick` by
/// 20-day stdev-return`, over `n` symbols.
pub fn symphony(n: usize, pick: usize) -> String {
    let assets: String = (0..n)
        .map(|i| format!("(asset \"{}\")", symbol(i)))
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "(defsymphony \"universe\" {{}}\n (if (> (current-price \"SPY\") (moving-average-price \"SPY\" {{:window 200}}))\n  [(filter (cumulative-return {{:window 60}}) (select-top {pick}) [{assets}])]\n  [(filter (stdev-return {{:window 20}}) (select-bottom {pick}) [{assets}])]))\n"
    )
}

/// A folder with `data/`, `universe.clj` and `config.toml` (the symphony, weight 1).
pub fn write_case(dir: &Path, n: usize, pick: usize, days: &[NaiveDate]) {
    generate(&dir.join("data"), n, days);
    std::fs::write(dir.join("universe.clj"), symphony(n, pick)).expect("symphony");
    std::fs::write(
        dir.join("config.toml"),
        "[strategy]\ndata = \"data\"\n[[strategy.files]]\npath = \"universe.clj\"\nweight = \"1\"\n",
    )
    .expect("config");
}
