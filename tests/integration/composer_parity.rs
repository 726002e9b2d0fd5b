//! Composer parity, rule by rule, on crafted series whose answers are worked out by
//! hand in the comments (not by the evaluator).

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;

use alchemiser::market::{BarSeries, MarketData};
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

    use alchemiser::venues::alpaca::fake::FakeAlpaca;
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
        f.set_today(chrono::NaiveDate::from_ymd_opt(2023, 9, 21).unwrap());
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

/// §3: when a symphony trades. Crafted closes on real sessions, written as CSV files;
/// every expected decision is worked out by hand in the comments.
mod trading_settings {
    use std::path::{Path, PathBuf};

    use alchemiser::config::{AccountRebalance, OnStrategyError, StrategyConfig, StrategyFile};
    use alchemiser::domain::Symbol;
    use alchemiser::events::{SignalGenerated, SliceTrading};
    use alchemiser::market::Adjustment;
    use alchemiser::strategy::book::StrategyBook;
    use chrono::NaiveDate;
    use rust_decimal::Decimal;
    use rust_decimal_macros::dec;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    /// Sessions from `from` to `to` (the exchange calendar: weekends and holidays out).
    fn sessions(from: &str, to: &str) -> Vec<NaiveDate> {
        alchemiser::calendar::UsEquityCalendar::get().sessions(d(from), d(to))
    }

    fn write_series(dir: &Path, symbol: &str, days: &[NaiveDate], close: impl Fn(usize) -> f64) {
        let mut text = String::from("date,open,high,low,close,volume\n");
        for (i, day) in days.iter().enumerate() {
            let c = close(i);
            text += &format!("{day},{c:.4},{c:.4},{c:.4},{c:.4},1000\n");
        }
        std::fs::write(dir.join(format!("{symbol}.csv")), text).unwrap();
    }

    fn book(dir: &Path, files: &[(&str, &str)]) -> StrategyBook {
        book_with(dir, files, StrategyConfig::default())
    }

    /// A book of `files` (symphony text, weight) on `dir`'s data, with the account
    /// settings of `account` (`rebalance`, `rebalance_threshold`, `slices_from`).
    fn book_with(dir: &Path, files: &[(&str, &str)], account: StrategyConfig) -> StrategyBook {
        let files = files
            .iter()
            .enumerate()
            .map(|(i, (text, weight))| {
                let path: PathBuf = dir.join(format!("s{i}.clj"));
                std::fs::write(&path, text).unwrap();
                StrategyFile {
                    path,
                    weight: weight.parse().unwrap(),
                }
            })
            .collect();
        alchemiser::symphony_files::load_book(
            &StrategyConfig {
                data: dir.to_path_buf(),
                adjustment: Adjustment::Raw,
                on_strategy_error: OnStrategyError::Fail,
                files,
                ..account
            },
            dir,
            None,
        )
        .unwrap()
    }

    fn slice(signal: &SignalGenerated, i: usize) -> &SliceTrading {
        signal.strategies[i].slice.as_ref().expect("a slice")
    }

    fn weight(signal: &SignalGenerated, symbol: &str) -> Decimal {
        signal
            .target_weights
            .get(&Symbol::from(symbol))
            .copied()
            .unwrap_or_default()
    }

    #[test]
    fn a_threshold_slice_trades_only_outside_its_corridor_and_on_a_branch_switch() {
        let dir = tempfile::tempdir().unwrap();
        let days = sessions("2021-03-01", "2021-03-12"); // 10 sessions
                                                         // A: 100 on days 0-1, 130 from day 2 on. B: 100 throughout.
                                                         // Day 0 the slice is new: trades to 50/50. Day 1: nothing moved (inside).
                                                         // Day 2: A is worth 65 of 115, weight 0.565217: 0.065 from 0.5, beyond 0.05:
                                                         // trades back to 50/50. Day 3-4: prices flat since the trade: inside.
        write_series(
            dir.path(),
            "AAA",
            &days,
            |i| if i < 2 { 100.0 } else { 130.0 },
        );
        write_series(dir.path(), "BBB", &days, |_| 100.0);
        // SPY > 100 picks the pair, else CCC alone: SPY drops below 100 on day 5 (branch
        // switch: trades to CCC), rises again on day 7 (switch back).
        write_series(dir.path(), "SPY", &days, |i| match i {
            5 | 6 => 90.0,
            _ => 110.0,
        });
        write_series(dir.path(), "CCC", &days, |_| 50.0);
        let b = book(
            dir.path(),
            &[(
                "(defsymphony \"t\" {:rebalance-threshold 0.05} (if (> (current-price \"SPY\") 100) [(weight-equal [(asset \"AAA\") (asset \"BBB\")])] [(asset \"CCC\")]))",
                "1",
            )],
        );
        let signals: Vec<SignalGenerated> =
            days.iter().map(|day| b.evaluate(*day).unwrap()).collect();
        let trades: Vec<bool> = signals.iter().map(|s| slice(s, 0).trades).collect();
        assert_eq!(
            trades,
            [true, false, true, false, false, true, false, true, false, false],
            "{:#?}",
            signals
                .iter()
                .map(|s| &slice(s, 0).reason)
                .collect::<Vec<_>>()
        );
        assert!(
            slice(&signals[2], 0).reason.contains("AAA drifted 0.0652"),
            "{}",
            slice(&signals[2], 0).reason
        );
        assert!(slice(&signals[5], 0).reason.contains("branch switch"));
        // Inside the corridor the targets are the drifted holdings (what the slice has),
        // not 50/50: day 1 still 50/50 (nothing moved); day 2 traded back to 50/50.
        assert_eq!(weight(&signals[1], "AAA"), dec!(0.5));
        assert_eq!(weight(&signals[2], "AAA"), dec!(0.5));
        assert_eq!(weight(&signals[5], "CCC"), dec!(1));
    }

    #[test]
    fn a_held_slice_drifts_with_prices_and_the_plan_leaves_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let days = sessions("2021-03-01", "2021-03-05");
        // A rises 4% on day 1: A weighs 52/102 = 0.509804 inside a 0.05 corridor.
        write_series(
            dir.path(),
            "AAA",
            &days,
            |i| if i == 0 { 100.0 } else { 104.0 },
        );
        write_series(dir.path(), "BBB", &days, |_| 100.0);
        let b = book(
            dir.path(),
            &[("(defsymphony \"t\" {:rebalance-threshold 0.05} (weight-equal [(asset \"AAA\") (asset \"BBB\")]))", "1")],
        );
        b.evaluate(days[0]).unwrap();
        let held = b.evaluate(days[1]).unwrap();
        assert!(!slice(&held, 0).trades);
        assert_eq!(weight(&held, "AAA"), dec!(0.509804));
        assert_eq!(weight(&held, "BBB"), dec!(0.490196));
        // The account is off the ideal by a share of A (a commission, a rounding): the
        // plan still trades nothing.
        let account = alchemiser::venue::AccountSnapshot {
            cash: dec!(0),
            positions: [("AAA".into(), dec!(49)), ("BBB".into(), dec!(51))]
                .into_iter()
                .collect(),
        };
        let prices = [("AAA".into(), dec!(104)), ("BBB".into(), dec!(100))]
            .into_iter()
            .collect();
        let (_, plan) = alchemiser::portfolio::plan_rebalance(
            &held,
            &account,
            &prices,
            &alchemiser::portfolio::PlanParams {
                min_trade_pct: dec!(0.001),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(!plan.has_trades(), "{:?}", plan.items);
    }

    /// The days among `days` on which a `calendar` slice trades (besides its first).
    fn trading_days(calendar: &str, days: &[NaiveDate]) -> Vec<NaiveDate> {
        let dir = tempfile::tempdir().unwrap();
        write_series(dir.path(), "AAA", days, |i| 100.0 + i as f64);
        write_series(dir.path(), "BBB", days, |_| 100.0);
        let b = book(
            dir.path(),
            &[(
                &format!("(defsymphony \"t\" {{:rebalance-frequency :{calendar}}} (weight-equal [(asset \"AAA\") (asset \"BBB\")]))"),
                "1",
            )],
        );
        let trades: Vec<bool> = days
            .iter()
            // A single daily file keeps no slice: it trades to target every day.
            .map(|day| {
                let signal = b.evaluate(*day).unwrap();
                signal.strategies[0].slice.as_ref().is_none_or(|t| t.trades)
            })
            .collect();
        assert!(trades[0], "a new slice trades");
        days.iter()
            .zip(trades)
            .skip(1)
            .filter_map(|(day, trades)| trades.then_some(*day))
            .collect()
    }

    #[test]
    fn calendar_slices_trade_on_the_first_session_of_each_period() {
        // 2022-12-27 .. 2023-07-06: year end; 2023-01-02 (New Year observed) and
        // 2023-01-16 (MLK) are holidays; Good Friday 2023-04-07; July 4th.
        let days = sessions("2022-12-27", "2023-07-06");
        assert!(!days.contains(&d("2023-01-02")));
        let months = trading_days("monthly", &days);
        assert_eq!(
            months,
            [
                "2023-01-03",
                "2023-02-01",
                "2023-03-01",
                "2023-04-03",
                "2023-05-01",
                "2023-06-01",
                "2023-07-03"
            ]
            .map(d)
        );
        assert_eq!(
            trading_days("quarterly", &days),
            ["2023-01-03", "2023-04-03", "2023-07-03"].map(d)
        );
        assert_eq!(trading_days("yearly", &days), [d("2023-01-03")]);
        let weeks = trading_days("weekly", &days);
        // Every Monday session, and the Tuesday after a Monday holiday.
        assert!(weeks.contains(&d("2023-01-03")) && weeks.contains(&d("2023-01-17")));
        assert!(weeks.contains(&d("2023-01-09")) && !weeks.contains(&d("2023-01-10")));
        assert_eq!(weeks.len(), 27, "{weeks:?}");
        assert_eq!(trading_days("daily", &days).len(), days.len() - 1);
    }

    #[test]
    fn a_restarted_engine_takes_up_its_slices_from_the_last_signal() {
        let dir = tempfile::tempdir().unwrap();
        let days = sessions("2021-03-01", "2021-03-05");
        // A at 104 on day 1: it weighs 0.52/1.02 = 0.5098, inside the corridor. At 125
        // on day 2: 0.625/1.125 = 0.5556, 0.0556 from 0.5, beyond it.
        write_series(dir.path(), "AAA", &days, |i| match i {
            0 => 100.0,
            1 => 104.0,
            _ => 125.0,
        });
        write_series(dir.path(), "BBB", &days, |_| 100.0);
        let text = "(defsymphony \"t\" {:rebalance-threshold 0.05} (weight-equal [(asset \"AAA\") (asset \"BBB\")]))";
        let running = book(dir.path(), &[(text, "1")]);
        let day0 = running.evaluate(days[0]).unwrap();
        let continuous: Vec<SignalGenerated> = days[1..3]
            .iter()
            .map(|d| running.evaluate(*d).unwrap())
            .collect();
        // A new process: without the last signal its slice would be new and trade.
        let restarted = book(dir.path(), &[(text, "1")]);
        restarted.seed_slices(&day0);
        let resumed: Vec<SignalGenerated> = days[1..3]
            .iter()
            .map(|d| restarted.evaluate(*d).unwrap())
            .collect();
        assert_eq!(resumed, continuous);
        assert_eq!(
            continuous
                .iter()
                .map(|s| slice(s, 0).trades)
                .collect::<Vec<_>>(),
            [false, true]
        );
        let fresh = book(dir.path(), &[(text, "1")]);
        assert!(slice(&fresh.evaluate(days[1]).unwrap(), 0).trades);
    }

    fn account(rebalance: AccountRebalance) -> StrategyConfig {
        StrategyConfig {
            rebalance,
            ..StrategyConfig::default()
        }
    }

    /// With `rebalance = "none"` (files funded once), shares drift with each file's
    /// value, as before the account rule existed; this was the default then.
    #[test]
    fn with_no_account_rebalance_two_files_keep_their_own_slices() {
        let dir = tempfile::tempdir().unwrap();
        let days = sessions("2021-03-01", "2021-03-05");
        // File 1 (weight 1, monthly): all AAA. File 2 (weight 1, daily): all BBB.
        // AAA doubles on day 1: slice 1 is worth 2 against 1: shares 2/3 and 1/3; file
        // 2 trades daily but within its own third; nobody moves money between slices.
        write_series(
            dir.path(),
            "AAA",
            &days,
            |i| if i == 0 { 100.0 } else { 200.0 },
        );
        write_series(dir.path(), "BBB", &days, |_| 100.0);
        let b = book_with(
            dir.path(),
            &[
                (
                    "(defsymphony \"m\" {:rebalance-frequency :monthly} (asset \"AAA\"))",
                    "1",
                ),
                ("(defsymphony \"d\" {} (asset \"BBB\"))", "1"),
            ],
            account(AccountRebalance::None),
        );
        let first = b.evaluate(days[0]).unwrap();
        assert_eq!(
            (weight(&first, "AAA"), weight(&first, "BBB")),
            (dec!(0.5), dec!(0.5))
        );
        let next = b.evaluate(days[1]).unwrap();
        assert!(!slice(&next, 0).trades && slice(&next, 1).trades);
        assert_eq!(weight(&next, "AAA"), dec!(0.666667));
        assert_eq!(weight(&next, "BBB"), dec!(0.333333));
        // Evaluated again (a retry), a day starts from the same day before.
        assert_eq!(b.evaluate(days[1]).unwrap(), next);
    }

    /// Two daily files weighted 0.6 / 0.4 (the default account rule, daily): whatever
    /// the prices do, every day's targets are 0.6 × file 1 + 0.4 × file 2.
    #[test]
    fn two_daily_files_keep_their_weights_every_day() {
        let dir = tempfile::tempdir().unwrap();
        let days = sessions("2021-03-01", "2021-03-12");
        // AAA triples over the fortnight, BBB halves, CCC flat.
        write_series(dir.path(), "AAA", &days, |i| 100.0 + 20.0 * i as f64);
        write_series(dir.path(), "BBB", &days, |i| 100.0 - 5.0 * i as f64);
        write_series(dir.path(), "CCC", &days, |_| 50.0);
        let b = book(
            dir.path(),
            &[
                ("(defsymphony \"a\" {} (asset \"AAA\"))", "0.6"),
                (
                    "(defsymphony \"b\" {} (weight-equal [(asset \"BBB\") (asset \"CCC\")]))",
                    "0.4",
                ),
            ],
        );
        assert!(!b.keeps_slices(), "no history to keep");
        for day in &days {
            let s = b.evaluate(*day).unwrap();
            // 0.6 × AAA; 0.4 × (½ BBB + ½ CCC).
            assert_eq!(weight(&s, "AAA"), dec!(0.6), "{day}");
            assert_eq!(weight(&s, "BBB"), dec!(0.2), "{day}");
            assert_eq!(weight(&s, "CCC"), dec!(0.2), "{day}");
        }
    }

    /// A threshold file beside a daily file, account daily: the daily file's share goes
    /// back to its weight every day, the threshold file's inside holds its drifted
    /// weights until its corridor is left.
    #[test]
    fn a_threshold_file_beside_a_daily_file_holds_inside_while_the_shares_reset() {
        let dir = tempfile::tempdir().unwrap();
        let days = sessions("2021-03-01", "2021-03-05");
        // File 1 (0.5, threshold 0.2): half AAA, half BBB. AAA goes 100 → 120 on day 1:
        // inside, AAA weighs 60/110 = 0.545455 (0.045 from 0.5: within 0.2, held).
        // File 2 (0.5, daily): all CCC.
        write_series(
            dir.path(),
            "AAA",
            &days,
            |i| if i == 0 { 100.0 } else { 120.0 },
        );
        write_series(dir.path(), "BBB", &days, |_| 100.0);
        write_series(dir.path(), "CCC", &days, |_| 10.0);
        let b = book(
            dir.path(),
            &[
                (
                    "(defsymphony \"t\" {:rebalance-threshold 0.2} (weight-equal [(asset \"AAA\") (asset \"BBB\")]))",
                    "1",
                ),
                ("(defsymphony \"d\" {} (asset \"CCC\"))", "1"),
            ],
        );
        let first = b.evaluate(days[0]).unwrap();
        assert_eq!(weight(&first, "AAA"), dec!(0.25));
        let next = b.evaluate(days[1]).unwrap();
        assert!(!slice(&next, 0).trades, "inside its corridor");
        // Shares back at 0.5 / 0.5 (the slice of file 1 is worth 1.1 against 1: under
        // "none" it would be 0.52381).
        assert_eq!(slice(&next, 0).share, dec!(0.5));
        assert_eq!(slice(&next, 1).share, dec!(0.5));
        // 0.5 × 6/11 = 0.272727…, 0.5 × 5/11 = 0.227272…, 0.5 × CCC.
        assert_eq!(weight(&next, "AAA"), dec!(0.272727));
        assert_eq!(weight(&next, "BBB"), dec!(0.227273));
        assert_eq!(weight(&next, "CCC"), dec!(0.5));
    }

    /// A monthly account rule: shares drift inside the month and go back to the weights
    /// on its first session.
    #[test]
    fn a_monthly_account_rule_resets_shares_on_the_first_session_of_the_month() {
        let dir = tempfile::tempdir().unwrap();
        let days = sessions("2021-03-29", "2021-04-02");
        // AAA doubles on 03-30 and stays; BBB flat. Both files daily inside.
        write_series(
            dir.path(),
            "AAA",
            &days,
            |i| if i == 0 { 100.0 } else { 200.0 },
        );
        write_series(dir.path(), "BBB", &days, |_| 100.0);
        let b = book_with(
            dir.path(),
            &[
                ("(defsymphony \"a\" {} (asset \"AAA\"))", "1"),
                ("(defsymphony \"b\" {} (asset \"BBB\"))", "1"),
            ],
            account(AccountRebalance::Monthly),
        );
        let w = |day: usize| {
            let s = b.evaluate(days[day]).unwrap();
            (weight(&s, "AAA"), weight(&s, "BBB"))
        };
        assert_eq!(w(0), (dec!(0.5), dec!(0.5)));
        // 03-30, 03-31: drifted 2 : 1.
        assert_eq!(w(1), (dec!(0.666667), dec!(0.333333)));
        assert_eq!(w(2), (dec!(0.666667), dec!(0.333333)));
        // 04-01, the month's first session: back to 0.5 / 0.5.
        assert_eq!(w(3), (dec!(0.5), dec!(0.5)));
    }

    /// `signals` for a book of daily files depends on the day's data only: a data
    /// folder starting in 2005 or in 2010 gives the same targets and hash.
    #[test]
    fn a_daily_book_signals_the_same_whatever_day_its_data_begins() {
        let early = tempfile::tempdir().unwrap();
        let late = tempfile::tempdir().unwrap();
        let long = sessions("2005-01-03", "2012-12-31");
        let short: Vec<NaiveDate> = long
            .iter()
            .copied()
            .filter(|d| *d >= d_("2010-01-04"))
            .collect();
        let close = |day: &NaiveDate| {
            let n = (*day - d_("2005-01-03")).num_days() as f64;
            100.0 + 10.0 * (n / 30.0).sin() + n / 100.0
        };
        for (dir, days) in [(early.path(), &long), (late.path(), &short)] {
            let offset = long.len() - days.len();
            write_series(dir, "AAA", days, |i| close(&long[i + offset]));
            write_series(dir, "BBB", days, |i| 200.0 - close(&long[i + offset]) / 2.0);
        }
        let files = [
            (
                "(defsymphony \"m\" {} (filter (moving-average-return {:window 20}) (select-top 1) [(asset \"AAA\") (asset \"BBB\")]))",
                "0.7",
            ),
            (
                "(defsymphony \"r\" {} (if (> (rsi \"AAA\" {:window 14}) 50) [(asset \"BBB\")] [(asset \"AAA\")]))",
                "0.3",
            ),
        ];
        let a = book(early.path(), &files);
        let b = book(late.path(), &files);
        for day in ["2011-06-01", "2012-03-01", "2012-12-31"] {
            a.replay_slices_before(d_(day));
            b.replay_slices_before(d_(day));
            let (x, y) = (a.evaluate(d_(day)).unwrap(), b.evaluate(d_(day)).unwrap());
            assert_eq!(x.target_weights, y.target_weights, "{day}");
            assert_eq!(x.signal_hash, y.signal_hash, "{day}");
        }
        // Files funded once (`none`) depend on where the data begins: the test can tell.
        let none = StrategyConfig {
            rebalance: AccountRebalance::None,
            ..StrategyConfig::default()
        };
        let (a, b) = (
            book_with(early.path(), &files, none.clone()),
            book_with(late.path(), &files, none),
        );
        let differ = ["2011-06-01", "2012-03-01", "2012-12-31"]
            .iter()
            .any(|day| {
                a.replay_slices_before(d_(day));
                b.replay_slices_before(d_(day));
                a.evaluate(d_(day)).unwrap().target_weights
                    != b.evaluate(d_(day)).unwrap().target_weights
            });
        assert!(differ, "shares funded once drift with the history they saw");
    }

    fn d_(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }
}

/// A group holding one asset is scored on what it held each day: the asset's own
/// returns, over as many values as the asset's indicator reads. So every indicator that
/// does not depend on the price level scores the group exactly as the asset, at every
/// window; the price-level ones (on a series started at 1 where the indicator's reading
/// starts) are the asset's divided by its close on that first day.
#[test]
fn a_group_of_one_asset_scores_as_that_asset_on_every_indicator_and_window() {
    let closes: Vec<f64> = (0..700)
        .map(|i| 100.0 + 15.0 * (i as f64 / 17.0).sin() + i as f64 / 20.0)
        .collect();
    let (data, day) = {
        let mut all = BTreeMap::new();
        let (symbol, s) = series("SPY", &closes);
        all.insert(symbol, s);
        let last =
            NaiveDate::from_ymd_opt(2020, 1, 1).unwrap() + Days::new(closes.len() as u64 - 1);
        (MarketData { series: all }, last)
    };
    let level = [
        "current-price",
        "moving-average-price",
        "exponential-moving-average-price",
        "stdev-price",
    ];
    let mut factors = Vec::new();
    for kind in alchemiser::indicators::IndicatorKind::ALL {
        let windows: &[usize] = if kind.takes_window() {
            &[2, 3, 5, 10, 14, 20, 60, 100, 200]
        } else {
            &[0]
        };
        for &w in windows {
            let metric = if kind.takes_window() {
                format!("({} {{:window {w}}})", kind.name())
            } else {
                format!("({})", kind.name())
            };
            let text = format!(
                "(defsymphony \"t\" {{}} (filter {metric} (select-top 1) [(group \"g\" [(asset \"SPY\")]) (asset \"SPY\")]))"
            );
            let symphony = parse_symphony(&text).unwrap();
            let e = evaluate(&symphony, &data, day).unwrap_or_else(|e| panic!("{text}: {e}"));
            let value = |subject: &str| -> f64 {
                let label = alchemiser::indicators::Indicator::new(*kind, w).label(subject);
                e.indicators
                    .get(label.as_str())
                    .unwrap_or_else(|| panic!("{label} missing: {:?}", e.indicators))
                    .to_string()
                    .parse()
                    .unwrap()
            };
            let (group, asset) = (value("g"), value("SPY"));
            if level.contains(&kind.name()) {
                let reads = alchemiser::indicators::Indicator::new(*kind, w).lookback();
                factors.push((kind.name(), w, asset / group, closes[closes.len() - reads]));
            } else {
                assert!(
                    (group - asset).abs() <= 1e-6 * asset.abs().max(1.0),
                    "{} window {w}: group {group} vs asset {asset}",
                    kind.name()
                );
            }
        }
    }
    // The factor is the asset's close where the group's series starts at 1 (up to the
    // 6 decimals a signal records).
    for (name, w, f, start) in &factors {
        assert!(
            (f - start).abs() <= 1e-4 * start,
            "{name} window {w}: factor {f} vs the first close read {start}"
        );
    }
}

/// A filter inside a filter's list is an unnamed candidate: scored, like a group, on
/// what it held each day (its own filter deciding as of each day before), not on what
/// it picks today.
#[test]
fn a_nested_filter_candidate_is_scored_on_what_it_held_each_day() {
    // Inner: the best 1-day return of A and B. As of day 2 it holds A (+10%), which
    // loses 10% on day 3; as of day 3 it holds B (+10%), which gains 10% on day 4.
    // Its series over the outer window (days 2..4): 1, 0.9, 0.99: -1%. What it picks
    // today (B) made +21% over the same days; C made +0.5%.
    let mut all = BTreeMap::new();
    for (s, c) in [
        ("AAA", [100.0, 100.0, 110.0, 99.0, 99.0]),
        ("BBB", [100.0, 100.0, 100.0, 110.0, 121.0]),
        ("CCC", [100.0, 100.0, 100.0, 100.0, 100.5]),
    ] {
        let (symbol, series) = series(s, &c);
        all.insert(symbol, series);
    }
    let data = MarketData { series: all };
    let day = NaiveDate::from_ymd_opt(2020, 1, 5).unwrap();
    let text = "(defsymphony \"t\" {} (filter (cumulative-return {:window 2}) (select-top 1) [(filter (cumulative-return {:window 1}) (select-top 1) [(asset \"AAA\") (asset \"BBB\")]) (asset \"CCC\")]))";
    let e = evaluate(&parse_symphony(text).unwrap(), &data, day).unwrap();
    let chosen: Vec<&str> = e.weights.keys().map(|s| s.as_str()).collect();
    assert_eq!(chosen, ["CCC"], "{:?}", e.indicators);
    let scores: Vec<String> = e
        .indicators
        .iter()
        .filter(|(k, _)| k.starts_with("cumulative-return(") && k.ends_with(",2)"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    assert!(
        scores
            .iter()
            .any(|s| s.ends_with("=-1.000000") || s.ends_with("=-1")),
        "the nested filter scored -1%: {scores:?}"
    );
}

/// The per-day scoring of a group against a literal reading of the rule, on random
/// symphonies and prices: evaluate the group's subtree on its own as of each day d−1 of
/// the window, earn Σ wᵢ(d−1)·rᵢ(d) on day d, compound from 1, take the metric. Any
/// difference would name the smallest case; none is found over these seeds.
#[test]
fn group_scores_match_a_literal_reading_of_the_rule() {
    use alchemiser::indicators::{Indicator, IndicatorKind};
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
        fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
            &items[self.next() as usize % items.len()]
        }
    }
    let symbols = ["AAA", "BBB", "CCC", "DDD"];
    let metrics = [
        IndicatorKind::MovingAverageReturn,
        IndicatorKind::CumulativeReturn,
        IndicatorKind::StdevReturn,
        IndicatorKind::Rsi,
        IndicatorKind::MaxDrawdown,
    ];
    let mut checked = 0;
    for seed in 1..=60u64 {
        let mut rng = Lcg(seed);
        let days = 320;
        let mut all = BTreeMap::new();
        let mut closes: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for s in symbols {
            let mut c = 100.0;
            let path: Vec<f64> = (0..days)
                .map(|_| {
                    c *= 1.0 + (rng.next() % 2001) as f64 / 50_000.0 - 0.02;
                    c
                })
                .collect();
            let (symbol, series) = series(s, &path);
            all.insert(symbol, series);
            closes.insert(s, path);
        }
        let data = MarketData { series: all };
        // The group: an `if` on a random indicator choosing between a filter and an
        // equal pair.
        let (a, b, c) = (rng.pick(&symbols), rng.pick(&symbols), rng.pick(&symbols));
        let cond_kind = rng.pick(&[
            IndicatorKind::Rsi,
            IndicatorKind::CumulativeReturn,
            IndicatorKind::MovingAverageReturn,
        ]);
        let cond_w = 2 + rng.next() % 15;
        let threshold = match cond_kind {
            IndicatorKind::Rsi => 50.0,
            _ => 0.0,
        };
        let group = format!(
            "(if (> ({} \"{a}\" {{:window {cond_w}}}) {threshold}) [(filter (cumulative-return {{:window {}}}) (select-top 1) [(asset \"{b}\") (asset \"{c}\") (asset \"{a}\")])] [(weight-equal [(asset \"{b}\") (asset \"{c}\")])])",
            cond_kind.name(),
            1 + rng.next() % 5,
        );
        let metric = *rng.pick(&metrics);
        let window = (2 + rng.next() % 20) as usize;
        let outer = format!(
            "(defsymphony \"t\" {{}} (filter ({} {{:window {window}}}) (select-top 1) [(group \"g\" [{group}]) (asset \"DDD\")]))",
            metric.name()
        );
        let as_of = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap() + Days::new(days as u64 - 1);
        let e = evaluate(&parse_symphony(&outer).unwrap(), &data, as_of).unwrap();
        let indicator = Indicator::new(metric, window);
        let Some(engine) = e.indicators.get(indicator.label("g").as_str()) else {
            // The group was the first candidate and won: its value is not listed.
            continue;
        };
        // The literal reading.
        let inner = parse_symphony(&format!("(defsymphony \"g\" {{}} {group})")).unwrap();
        let reads = indicator.lookback();
        let first = days - reads;
        let mut values = vec![1.0];
        for d in (first + 1)..days {
            let before = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap() + Days::new(d as u64 - 1);
            let held = evaluate(&inner, &data, before).unwrap().weights;
            let r: f64 = held
                .iter()
                .map(|(s, w)| {
                    let p = &closes[s.as_str()];
                    let w: f64 = w.to_string().parse().unwrap();
                    w * (p[d] / p[d - 1] - 1.0)
                })
                .sum();
            let last = values[values.len() - 1];
            values.push(last * (1.0 + r));
        }
        let literal = indicator.compute(&values).unwrap();
        let engine: f64 = engine.to_string().parse().unwrap();
        assert!(
            (engine - literal).abs() <= 1e-5 * literal.abs().max(1.0),
            "seed {seed}: {outer}\nengine {engine} vs literal {literal}"
        );
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} cases compared");
}
