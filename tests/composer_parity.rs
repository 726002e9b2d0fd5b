//! Composer parity, rule by rule, on crafted series whose answers are worked out by
//! hand in the comments (not by the evaluator).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use alchemiser::data::{BarSeries, MarketData};
use alchemiser::strategy::dsl::{evaluate, parse_symphony};
use chrono::{Days, NaiveDate};
use rust_decimal::prelude::FromPrimitive;
use rust_decimal::Decimal;

fn series(symbol: &str, closes: &[f64]) -> (alchemiser::domain::Symbol, Arc<BarSeries>) {
    (
        symbol.into(),
        Arc::new(common::daily_series(symbol, closes)),
    )
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

mod group_scoring {
    use super::*;

    /// Ten sessions. SPY says which of A or B the flipping branch holds: A while SPY is
    /// above 100 (sessions 0–5, 8–9), B below (6–7). A falls from 10 to 6 exactly when
    /// B is held; B rises from 10 to 12 then; C grows 1% a day from session 5 on.
    fn data() -> (MarketData, NaiveDate) {
        let spy = [
            101.0, 101.0, 101.0, 101.0, 101.0, 101.0, 99.0, 99.0, 101.0, 101.0,
        ];
        let a = [10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 8.0, 6.0, 6.0];
        let b = [10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 11.0, 12.0, 12.0];
        let c: Vec<f64> = (0..10)
            .map(|i: i32| 10.0 * 1.01f64.powi((i - 4).max(0)))
            .collect();
        let mut all = BTreeMap::new();
        for (s, closes) in [
            ("SPY", &spy[..]),
            ("A", &a[..]),
            ("B", &b[..]),
            ("C", &c[..]),
        ] {
            let (symbol, series) = series(s, closes);
            all.insert(symbol, series);
        }
        let last = NaiveDate::from_ymd_opt(2020, 1, 10).unwrap();
        (MarketData { series: all }, last)
    }

    /// An independent reading of the rule: over the last `n` sessions, the group earns
    /// on session d what it held at the close of d − 1 (A if SPY was above 100, else B).
    fn per_day_cumulative_pct(n: usize) -> f64 {
        let spy = [
            101.0, 101.0, 101.0, 101.0, 101.0, 101.0, 99.0, 99.0, 101.0, 101.0,
        ];
        let a = [10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 8.0, 6.0, 6.0];
        let b = [10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 11.0, 12.0, 12.0];
        let mut value = 1.0;
        for d in 10 - n..10 {
            let held = if spy[d - 1] > 100.0 { &a } else { &b };
            value *= held[d] / held[d - 1];
        }
        (value - 1.0) * 100.0
    }

    const FLIP: &str = "(if (> (current-price \"SPY\") 100) [(asset \"A\")] [(asset \"B\")])";

    fn run(body: &str) -> alchemiser::strategy::dsl::Evaluation {
        let symphony = parse_symphony(&format!("(defsymphony \"g\" {{}} {body})"))
            .unwrap_or_else(|e| panic!("{body}: {e}"));
        let (data, day) = data();
        evaluate(&symphony, &data, day).unwrap_or_else(|e| panic!("{body}: {e}"))
    }

    fn chosen(e: &alchemiser::strategy::dsl::Evaluation) -> Vec<String> {
        e.weights.keys().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_group_is_scored_on_what_it_held_each_day_not_on_todays_holding() {
        // Per day: 0, 0, +10%, +9.09%, 0 → +20%; C: 1.01^5 − 1 = +5.1%. Held fixed at
        // today's A it would be −40%, and C would win.
        let expected = per_day_cumulative_pct(5);
        assert!((expected - 20.0).abs() < 1e-9, "{expected}");
        let e = run(&format!(
            "(filter (cumulative-return {{:window 5}}) (select-top 1) [(group \"G\" [{FLIP}]) (asset \"C\")])"
        ));
        assert_eq!(chosen(&e), ["A"], "G wins and holds A today");
        let reported = e.indicators["cumulative-return(G,5)"];
        assert!(
            (reported - Decimal::from_f64(expected).unwrap()).abs() < Decimal::new(1, 4),
            "{reported} vs {expected}"
        );
    }

    #[test]
    fn nested_groups_are_scored_the_same_way() {
        let e = run(&format!(
            "(filter (cumulative-return {{:window 5}}) (select-top 1) [(group \"outer\" [(group \"inner\" [{FLIP}])]) (asset \"C\")])"
        ));
        assert_eq!(chosen(&e), ["A"]);
        let reported = e.indicators["cumulative-return(outer,5)"];
        let expected = Decimal::from_f64(per_day_cumulative_pct(5)).unwrap();
        assert!(
            (reported - expected).abs() < Decimal::new(1, 4),
            "{reported}"
        );
    }

    #[test]
    fn two_groups_of_one_name_are_told_apart_by_their_bodies() {
        // Same name, different bodies: B's group rose 20% over the window, A's fell 40%.
        let e = run(
            "(filter (cumulative-return {:window 5}) (select-top 1) [(group \"X\" [(asset \"A\")]) (group \"X\" [(asset \"B\")])])",
        );
        assert_eq!(chosen(&e), ["B"]);
        let e = run(
            "(filter (cumulative-return {:window 5}) (select-bottom 1) [(group \"X\" [(asset \"A\")]) (group \"X\" [(asset \"B\")])])",
        );
        assert_eq!(chosen(&e), ["A"]);
    }

    #[test]
    fn a_window_longer_than_the_group_can_be_scored_names_the_group() {
        let symphony = parse_symphony(&format!(
            "(defsymphony \"g\" {{}} (filter (cumulative-return {{:window 30}}) (select-top 1) [(group \"G\" [{FLIP}]) (asset \"C\")]))"
        ))
        .unwrap();
        let (data, day) = data();
        let err = evaluate(&symphony, &data, day).unwrap_err().to_string();
        assert!(err.contains("cumulative-return(G,30)"), "{err}");
    }
}
