//! The strategy book on the bundled data: several files combined by weight, a failing
//! file's slice to cash (or the whole signal failed), and the strategy actor's output.

use crate::common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use alchemiser::actors::broker::QueryStats;
use alchemiser::actors::engine::{self, Engine};
use alchemiser::clock::SystemClock;
use alchemiser::config::{OnStrategyError, StrategyConfig, StrategyFile};
use alchemiser::events::EventKind;
use alchemiser::market::Adjustment;
use alchemiser::strategy::book::{StrategyBook, StrategyError};
use alchemiser::venues::sim::SimVenue;
use alchemiser::workflow::WorkflowStatus;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use std::str::FromStr;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn book(files: Vec<(PathBuf, &str)>, on_error: OnStrategyError) -> StrategyBook {
    let config = StrategyConfig {
        data: root().join("examples/data"),
        adjustment: Adjustment::Raw,
        on_strategy_error: on_error,
        files: files
            .into_iter()
            .map(|(path, w)| StrategyFile {
                path,
                weight: Decimal::from_str(w).unwrap(),
            })
            .collect(),
        ..StrategyConfig::default()
    };
    alchemiser::symphony_files::load_book(&config, &root(), None).unwrap()
}

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2023, 9, 21).unwrap()
}

#[test]
fn files_combine_by_weight_and_a_failing_file_goes_to_cash() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(
        dir.path(),
        "a.clj",
        "(defsymphony \"A\" {} (asset \"AAPL\"))",
    );
    let b = write(
        dir.path(),
        "b.clj",
        "(defsymphony \"B\" {} (weight-equal [(asset \"AAPL\") (asset \"NVDA\")]))",
    );
    let bad = write(dir.path(), "bad.clj", "(defsymphony \"Bad\" {} (if (> (rsi \"NFLX\" {:window 5000}) 50) [(asset \"NFLX\")] [(asset \"META\")]))");

    let s = book(
        vec![(a.clone(), "3"), (b.clone(), "1")],
        OnStrategyError::Cash,
    )
    .evaluate(day())
    .unwrap();
    // AAPL = 0.75 + 0.25·0.5, NVDA = 0.25·0.5
    assert_eq!(
        s.target_weights["AAPL"],
        Decimal::from_str("0.875").unwrap()
    );
    assert_eq!(
        s.target_weights["NVDA"],
        Decimal::from_str("0.125").unwrap()
    );

    let s = book(
        vec![(a.clone(), "3"), (bad.clone(), "1")],
        OnStrategyError::Cash,
    )
    .evaluate(day())
    .unwrap();
    assert_eq!(s.target_weights.len(), 1);
    assert_eq!(
        s.target_weights["AAPL"],
        Decimal::from_str("0.75").unwrap(),
        "the failed quarter stays in cash"
    );
    let failed = &s.strategies[1];
    assert!(failed.weights.is_empty());
    let why = failed.error.as_deref().unwrap();
    assert!(
        why.contains("bad.clj:1:30") && why.contains("rsi(NFLX,5000)"),
        "{why}"
    );

    let err = book(vec![(a, "3"), (bad, "1")], OnStrategyError::Fail)
        .evaluate(day())
        .unwrap_err();
    assert!(
        matches!(err, StrategyError::Failed { ref name, .. } if name == "Bad"),
        "{err}"
    );
}

#[test]
fn the_snapshot_id_changes_with_the_bars_used() {
    let b = book(
        vec![(root().join("examples/strategies/default.clj"), "1")],
        OnStrategyError::Fail,
    );
    let d1 = b.evaluate(day()).unwrap();
    let d2 = b
        .evaluate(NaiveDate::from_ymd_opt(2023, 9, 20).unwrap())
        .unwrap();
    assert_eq!(
        d1.market_snapshot_id,
        b.evaluate(day()).unwrap().market_snapshot_id
    );
    assert_ne!(d1.market_snapshot_id, d2.market_snapshot_id);
}

#[actix_rt::test]
async fn a_failing_strategy_in_fail_mode_fails_the_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "bad.clj", "(defsymphony \"Bad\" {} (if (> (rsi \"NFLX\" {:window 5000}) 50) [(asset \"NFLX\")] [(asset \"META\")]))");
    let strategies = Arc::new(book(vec![(bad, "1")], OnStrategyError::Fail));
    let deps = engine::EngineDeps::new(
        common::test_config(),
        Arc::new(SystemClock),
        Arc::new(SimVenue::with_cash(Decimal::from(1000))),
        strategies,
    );
    let broker = Engine::builder(deps).start().broker().clone();
    let id = common::start_workflow(&broker, day()).await;
    let summary = common::finish(&broker, id, Duration::from_secs(10)).await;
    assert_eq!(summary.status, WorkflowStatus::Failed);
    let failure = summary.failure.unwrap();
    assert!(
        failure.contains("strategy Bad failed") && failure.contains("needs 5001 bars"),
        "{failure}"
    );
    let stats = broker.send(QueryStats).await.unwrap();
    assert_eq!(stats.published_of(EventKind::SignalGenerated), 0);
}

/// Evaluations made ahead (backtests) are the very signals evaluated in place, taken in
/// order; a day asked again, or one not prepared, is left to the caller, and a later
/// evaluation already taken out is not lost.
#[test]
fn prefetched_signals_are_those_evaluated_in_place() {
    use alchemiser::strategy::prefetch::SignalPrefetch;
    let book = Arc::new(book(
        vec![(root().join("examples/strategies/default.clj"), "1")],
        OnStrategyError::Fail,
    ));
    let dates: Vec<NaiveDate> = book
        .common_dates()
        .into_iter()
        .rev()
        .take(30)
        .rev()
        .collect();
    let prefetch = SignalPrefetch::start(book.clone(), dates.clone()).expect("a thread");
    for d in &dates[..10] {
        let ahead = prefetch.take(*d).expect("prepared").unwrap();
        assert_eq!(ahead, book.evaluate(*d).unwrap(), "{d}");
    }
    // Skipping days drops their evaluations; the wanted one still comes.
    assert_eq!(
        prefetch.take(dates[15]).expect("prepared").unwrap(),
        book.evaluate(dates[15]).unwrap()
    );
    // A day handled again: not prepared twice, and the next day is still there.
    assert!(prefetch.take(dates[15]).is_none());
    assert!(prefetch.take(dates[3]).is_none());
    assert_eq!(
        prefetch.take(dates[16]).expect("prepared").unwrap(),
        book.evaluate(dates[16]).unwrap()
    );
    // A day outside the list: nothing prepared for it.
    assert!(prefetch
        .take(dates[29] + chrono::Duration::days(30))
        .is_none());
}

#[test]
fn warm_up_waits_for_the_history_of_every_branch() {
    use alchemiser::strategy::book::history_needed;
    use alchemiser::strategy::dsl::parse_symphony;
    // Only the `else` branch filters on a 120-day return, and only the group under the
    // inverse-volatility weight needs NVDA's 30-day stdev.
    let symphony = parse_symphony(
        "(defsymphony \"branches\" {}
          (if (> (rsi \"AAPL\" {:window 10}) 50)
            [(asset \"AAPL\")]
            [(filter (cumulative-return {:window 120}) (select-top 1)
               [(asset \"GOOG\") (asset \"META\")])
             (weight-inverse-volatility 30 [(group \"g\" [(asset \"NVDA\")]) (asset \"AMZN\")])]))",
    )
    .unwrap();
    let needed: Vec<(String, usize)> = history_needed(&symphony)
        .into_iter()
        .map(|(s, n)| (s.to_string(), n))
        .collect();
    assert_eq!(
        needed,
        [
            ("AAPL".to_string(), 11),
            ("AMZN".to_string(), 31),
            ("GOOG".to_string(), 121),
            ("META".to_string(), 121),
            ("NVDA".to_string(), 31),
        ]
    );
}

#[test]
fn groups_cost_one_evaluation_per_new_day_in_a_backtest() {
    // The default strategy weights two groups by inverse volatility over 20 days: each
    // new day adds one remembered holding per group (and the first day its window).
    let config = alchemiser::config::Config::load(&root().join("config.toml")).unwrap();
    let book =
        alchemiser::symphony_files::load_book(&config.strategy, &config.base_dir, None).unwrap();
    let days: Vec<NaiveDate> = book
        .common_dates()
        .into_iter()
        .filter(|d| *d >= NaiveDate::from_ymd_opt(2016, 1, 4).unwrap())
        .take(100)
        .collect();
    book.evaluate(days[0]).unwrap();
    let first = book.remembered_days();
    assert!((2..=2 * 21).contains(&first), "{first}");
    for day in &days[1..] {
        book.evaluate(*day).unwrap();
    }
    assert_eq!(book.remembered_days(), first + 2 * 99);
}

#[test]
fn a_trading_setting_the_engine_does_not_know_is_refused_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "fortnightly.clj",
        "(defsymphony \"f\" {:rebalance-frequency :fortnightly} (asset \"AAPL\"))",
    );
    let err = alchemiser::symphony_files::load_book(
        &StrategyConfig {
            data: root().join("examples/data"),
            adjustment: Adjustment::Raw,
            on_strategy_error: OnStrategyError::Fail,
            files: vec![StrategyFile {
                path: file,
                weight: Decimal::ONE,
            }],
            ..StrategyConfig::default()
        },
        &root(),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("fortnightly.clj"), "{err}");
    assert!(err.contains(":rebalance-frequency :fortnightly"), "{err}");
}

/// A backtest holds no bar after its last day: a book cut there gives, on every day up
/// to the cut, the signal (hash, snapshot id, indicators) of the whole data's book.
#[test]
fn a_book_cut_after_a_day_signals_as_the_whole_one_up_to_it() {
    let (config, full, _) = common::bundled();
    let mut cut =
        alchemiser::symphony_files::load_book(&config.strategy, &config.base_dir, None).unwrap();
    let last = NaiveDate::from_ymd_opt(2016, 6, 30).unwrap();
    cut.keep_until(last);
    assert!(cut
        .data
        .series
        .values()
        .all(|s| s.last_date() == Some(last)));
    let days: Vec<NaiveDate> = full
        .common_dates()
        .into_iter()
        .filter(|d| (NaiveDate::from_ymd_opt(2016, 5, 1).unwrap()..=last).contains(d))
        .collect();
    assert!(days.len() > 20);
    for day in days {
        let (a, b) = (full.evaluate(day).unwrap(), cut.evaluate(day).unwrap());
        assert_eq!(
            (&a.signal_hash, &a.market_snapshot_id, &a.strategies),
            (&b.signal_hash, &b.market_snapshot_id, &b.strategies),
            "{day}"
        );
    }
}
