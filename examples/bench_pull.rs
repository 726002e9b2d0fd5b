//! `alchemiser data pull` at scale, against the fake Alpaca on 127.0.0.1.
//!
//! `cargo run --release --example bench_pull [-- SYMBOLS YEARS]` (default 500 × 10) serves
//! seeded random-walk daily bars for SYMBOLS symbols over YEARS years from the fake's
//! bars endpoint (pages of 10,000 bars, as Alpaca's), and pulls them into a fresh store
//! with the client the engine uses (its shared rate limit of 200 requests a minute,
//! retries): symbols, bars, requests, seconds. Then the next session's pull (the
//! incremental one a live day makes: each symbol's overlap and new bar), and one where a
//! tenth of the symbols had their history rewritten (a split: pulled again whole).
//! Ends with one `REPORT {json}` line.

use std::time::Instant;

use alchemiser::market::{Adjustment, DailyBar};
use alchemiser::store::BarStore;
use alchemiser::venues::alpaca::client::{AlpacaClient, ClientSettings, Credentials};
use alchemiser::venues::alpaca::fake::FakeAlpaca;
use alchemiser::venues::alpaca::pull::{pull, PullReport, PullRequest};
use alchemiser::venues::alpaca::wire::Bar;
use chrono::NaiveDate;
use rust_decimal::Decimal;

fn walk(seed: u64, days: &[NaiveDate]) -> Vec<Bar> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut cents: i64 = 5_000 + (seed % 20_000) as i64;
    days.iter()
        .map(|d| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            cents = (cents + (x % 201) as i64 - 100).max(100);
            Bar::from_daily(&DailyBar {
                date: *d,
                open: Decimal::new(cents, 2),
                high: Decimal::new(cents + 50, 2),
                low: Decimal::new(cents - 50, 2),
                close: Decimal::new(cents, 2),
                volume: 1_000_000 + x % 1_000,
            })
        })
        .collect()
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(500);
    let years = args.get(1).copied().unwrap_or(10) as i32;
    let calendar = alchemiser::calendar::UsEquityCalendar::get();
    let last = NaiveDate::from_ymd_opt(2024, 12, 31).expect("date");
    let first = NaiveDate::from_ymd_opt(2024 - years + 1, 1, 1).expect("date");
    let days = calendar.sessions(first, last);
    let fake = FakeAlpaca::start("PKBENCH00001", "bench-secret", Decimal::ZERO).expect("fake");
    let symbols: Vec<String> = (0..n).map(|i| format!("S{i:04}")).collect();
    for (i, s) in symbols.iter().enumerate() {
        fake.state()
            .bars
            .insert(s.as_str().into(), walk(i as u64 + 1, &days));
    }
    let settings = ClientSettings {
        trading_url: fake.url(),
        data_url: fake.url(),
        ..ClientSettings::default()
    };
    let client = AlpacaClient::new(settings, Credentials::new("PKBENCH00001", "bench-secret"))
        .expect("client");
    let dir = std::env::temp_dir().join(format!("alchemiser-pull-{}", std::process::id()));
    let mut store = BarStore::open(&dir).expect("store");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let request = |to: NaiveDate| PullRequest {
        symbols: symbols.iter().map(|s| s.as_str().into()).collect(),
        from: first,
        to,
        adjustment: Adjustment::Raw,
        feed: "iex".into(),
    };
    let timed = |to: NaiveDate, store: &mut BarStore| -> (PullReport, f64) {
        let started = Instant::now();
        let report = runtime
            .block_on(pull(store, &client, &request(to), &mut |_| {}))
            .expect("pull");
        assert_eq!(report.failed().count(), 0, "a symbol failed");
        (report, started.elapsed().as_secs_f64())
    };
    let penultimate = days[days.len() - 2];
    let (whole, whole_s) = timed(penultimate, &mut store);
    let (next, next_s) = timed(last, &mut store);
    // A split in a tenth of the symbols: their history halves (and a day is added).
    let extended: Vec<NaiveDate> = days
        .iter()
        .copied()
        .chain(
            calendar
                .sessions(last + chrono::Days::new(1), last + chrono::Days::new(5))
                .into_iter()
                .take(1),
        )
        .collect();
    let next_day = *extended.last().expect("a day");
    for (i, s) in symbols.iter().enumerate() {
        let mut bars = walk(i as u64 + 1, &extended);
        if i % 10 == 0 {
            for b in &mut bars {
                let half = |v: &serde_json::Number| -> serde_json::Number {
                    let d: Decimal = v.to_string().parse().expect("number");
                    (d / Decimal::TWO)
                        .normalize()
                        .to_string()
                        .parse()
                        .expect("number")
                };
                b.o = half(&b.o);
                b.h = half(&b.h);
                b.l = half(&b.l);
                b.c = half(&b.c);
            }
        }
        fake.state().bars.insert(s.as_str().into(), bars);
    }
    let (split, split_s) = timed(next_day, &mut store);
    let bytes: u64 = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    println!("pull | symbols | bars | requests | seconds");
    for (name, r, s) in [
        ("whole history", &whole, whole_s),
        ("next session", &next, next_s),
        ("a tenth split", &split, split_s),
    ] {
        println!(
            "{name} | {} | {} | {} | {s:.2}",
            r.symbols.len(),
            r.bars(),
            r.requests
        );
    }
    println!(
        "store: {:.1} MB on disk for {} bars",
        bytes as f64 / 1e6,
        whole.bars() + next.bars()
    );
    println!(
        "REPORT {}",
        serde_json::json!({
            "symbols": n,
            "years": years,
            "whole": {"bars": whole.bars(), "requests": whole.requests, "seconds": whole_s},
            "next_session": {"bars": next.bars(), "requests": next.requests, "seconds": next_s},
            "split_tenth": {"bars": split.bars(), "requests": split.requests, "seconds": split_s},
            "store_bytes": bytes,
        })
    );
    let _ = std::fs::remove_dir_all(&dir);
}
