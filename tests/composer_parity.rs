//! Composer parity, rule by rule, on crafted series whose answers are worked out by
//! hand in the comments (not by the evaluator).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use alchemiser::data::{BarSeries, DailyBar, MarketData};
use alchemiser::strategy::dsl::{evaluate, parse_symphony};
use chrono::{Days, NaiveDate};
use rust_decimal::prelude::FromPrimitive;
use rust_decimal::Decimal;

fn series(symbol: &str, closes: &[f64]) -> (alchemiser::domain::Symbol, Arc<BarSeries>) {
    let start = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
    let bars = closes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let p = Decimal::from_f64(*c).unwrap();
            DailyBar {
                date: start + Days::new(i as u64),
                open: p,
                high: p,
                low: p,
                close: p,
                volume: 1,
            }
        })
        .collect();
    (symbol.into(), Arc::new(BarSeries::new(symbol.into(), bars)))
}

fn market(spy: &[f64]) -> (MarketData, NaiveDate) {
    let mut all = BTreeMap::new();
    for (s, c) in [
        ("SPY", spy),
        ("AAA", &[10.0; 5][..]),
        ("BBB", &[20.0; 5][..]),
    ] {
        let (symbol, series) = series(s, c);
        all.insert(symbol, series);
    }
    let last = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap() + Days::new(spy.len() as u64 - 1);
    (MarketData { series: all }, last)
}

/// Which of AAA (then) or BBB (else) `condition` picks on SPY's `closes`.
fn picks(condition: &str, closes: &[f64]) -> String {
    let text =
        format!("(defsymphony \"t\" {{}} (if {condition} [(asset \"AAA\")] [(asset \"BBB\")]))");
    let symphony = parse_symphony(&text).unwrap_or_else(|e| panic!("{condition}: {e}"));
    let (data, day) = market(closes);
    let e = evaluate(&symphony, &data, day).unwrap_or_else(|e| panic!("{condition}: {e}"));
    let chosen: Vec<&str> = e.weights.keys().map(|s| s.as_str()).collect();
    chosen.join(",")
}

#[test]
fn stdev_price_is_in_price_units_over_the_last_closes() {
    // Last four closes 2, 4, 4, 6: mean 4, squared deviations 4+0+0+4 = 8, sample
    // variance 8/3, stdev 1.63299 (price units, not percent).
    let closes = [100.0, 2.0, 4.0, 4.0, 6.0];
    assert_eq!(
        picks("(> (stdev-price \"SPY\" {:window 4}) 1.632)", &closes),
        "AAA"
    );
    assert_eq!(
        picks("(> (stdev-price \"SPY\" {:window 4}) 1.634)", &closes),
        "BBB"
    );
    // A number on the left, an indicator on the right.
    assert_eq!(
        picks("(< 1.632 (stdev-price \"SPY\" {:window 4}))", &closes),
        "AAA"
    );
}

#[test]
fn equality_holds_to_six_decimals_and_indicators_compare_with_each_other() {
    let closes = [2.0, 4.0, 4.0, 6.0];
    // The last close is 6; the 4-day average is 4.
    assert_eq!(picks("(= (current-price \"SPY\") 6)", &closes), "AAA");
    assert_eq!(
        picks("(= (current-price \"SPY\") 6.0000004)", &closes),
        "AAA"
    );
    assert_eq!(
        picks("(= (current-price \"SPY\") 6.000001)", &closes),
        "BBB"
    );
    assert_eq!(
        picks(
            "(> (current-price \"SPY\") (moving-average-price \"SPY\" {:window 4}))",
            &closes
        ),
        "AAA"
    );
    assert_eq!(
        picks(
            "(= (moving-average-price \"SPY\" {:window 4}) (moving-average-price \"SPY\" {:window 2}))",
            &closes
        ),
        "BBB",
        "4 against (4 + 6) / 2 = 5"
    );
}

mod tickers {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use alchemiser::venue::alpaca::fake::FakeAlpaca;
    use rust_decimal::Decimal;

    use super::common;

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    fn bin() -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_alchemiser"));
        c.env_remove("APCA_API_KEY_ID")
            .env_remove("APCA_API_SECRET_KEY");
        c
    }

    /// A data folder with Berkshire's class B (Apple's bundled bars under its name).
    fn data(dir: &Path) -> PathBuf {
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::copy(
            root().join("examples/data/AAPL.csv"),
            data.join("BRK.B.csv"),
        )
        .unwrap();
        std::fs::copy(root().join("examples/data/NVDA.csv"), data.join("NVDA.csv")).unwrap();
        data
    }

    fn config(dir: &Path, extra: &str) -> PathBuf {
        let strategy = dir.join("brk.clj");
        std::fs::write(
            &strategy,
            "(defsymphony \"class B\" {}\n (weight-equal [(asset \"BRK/B\") (asset \"NVDA\")]))\n",
        )
        .unwrap();
        let cfg = dir.join("config.toml");
        std::fs::write(
            &cfg,
            format!(
                "[strategy]\ndata = {:?}\n[[strategy.files]]\npath = {strategy:?}\n[venue.sim]\nstate_file = \"\"\n[journal]\npath = \"journal.sqlite\"\n[engine]\ncontrol_dir = \".\"\n[metrics]\nenabled = false\n{extra}",
                data(dir)
            ),
        )
        .unwrap();
        cfg
    }

    #[test]
    fn a_share_class_trades_in_a_backtest_under_the_venue_notation() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), "");
        let out = dir.path().join("bt");
        let o = bin()
            .args([
                "backtest",
                "--from",
                "2016-01-01",
                "--to",
                "2016-03-31",
                "--config",
            ])
            .arg(&cfg)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let orders = std::fs::read_to_string(out.join("orders.csv")).unwrap();
        assert!(orders.contains(",BRK.B,buy,"), "{orders}");
        assert!(!orders.contains("BRK/B"), "{orders}");
    }

    #[test]
    fn a_share_class_is_ordered_at_alpaca_as_brk_dot_b() {
        let f = FakeAlpaca::start("PKTEST", "secret", Decimal::from(100_000)).unwrap();
        for (s, from) in [("BRK.B", "AAPL"), ("NVDA", "NVDA")] {
            f.state().prices.insert(s.into(), Decimal::from(100));
            f.state()
                .bars
                .insert(s.into(), common::bars_from_bundled(from));
        }
        f.state().bars_page_size = 5000;
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(
            dir.path(),
            &format!(
                "[alpaca]\ntrading_url = {:?}\ndata_url = {:?}\n",
                f.url(),
                f.url()
            ),
        );
        let o = bin()
            .args(["run", "--once", "--as-of", "2023-09-21", "--config"])
            .arg(&cfg)
            .env("APCA_API_KEY_ID", "PKTEST")
            .env("APCA_API_SECRET_KEY", "secret")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let state = f.state();
        let symbols: Vec<&str> = state.orders.iter().map(|o| o.symbol.as_str()).collect();
        assert!(symbols.contains(&"BRK.B"), "{symbols:?}");
        assert!(state.positions.contains_key("BRK.B"));
    }

    #[test]
    fn a_ticker_that_is_a_path_is_refused_with_its_position() {
        let dir = tempfile::tempdir().unwrap();
        let strategy = dir.path().join("evil.clj");
        std::fs::write(
            &strategy,
            "(defsymphony \"x\" {}\n  (asset \"../../etc/passwd\"))\n",
        )
        .unwrap();
        let cfg = dir.path().join("c.toml");
        std::fs::write(
            &cfg,
            format!(
                "[strategy]\ndata = {:?}\n[[strategy.files]]\npath = {strategy:?}\n",
                root().join("examples/data")
            ),
        )
        .unwrap();
        let o = bin()
            .args(["signals", "--as-of", "2023-09-21", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("evil.clj:2:10: `../../etc/passwd` is not a ticker"),
            "{err}"
        );
    }
}
