//! A synthetic universe's backtest outputs pinned: the data store and the evaluator were
//! rebuilt for large universes (columnar series, shared metrics), and `orders.csv` and
//! every figure of `summary.json` must stay byte for byte what they were before. The
//! summary's chain digest (of the journaled events) is pinned apart: the signal's
//! market snapshot id and its indicator list changed deliberately with that rebuild.

use crate::common::universe;

use std::sync::Arc;

use alchemiser::actors::backtest::{run, sessions};
use alchemiser::backtest::report::orders_csv;
use alchemiser::backtest::summarize;
use alchemiser::calendar::UsEquityCalendar;
use alchemiser::config::Config;
use chrono::NaiveDate;

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn digest(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex().to_string()
}

/// 60 symbols and SPY over 2021–2023, traded 2022–2023, 5 picked a day.
#[actix_rt::test]
async fn a_universe_backtest_keeps_its_orders_and_summary() {
    let dir = tempfile::tempdir().unwrap();
    let days = UsEquityCalendar::get().sessions(d("2021-01-01"), d("2023-12-31"));
    universe::write_case(dir.path(), 60, 5, &days);
    let config = Config::load(&dir.path().join("config.toml")).unwrap();
    let book = Arc::new(
        alchemiser::symphony_files::load_book(&config.strategy, &config.base_dir, None).unwrap(),
    );
    let dates = sessions(&book, d("2022-01-01"), d("2023-12-31")).unwrap();
    let record = run(config, book, &dates, |_, _| {}).await.unwrap();
    let mut summary = serde_json::to_value(summarize(&record).unwrap()).unwrap();
    let chain = summary["chain_digest"].take();
    // Fields added after the pin: taken out and checked on their own.
    let fields = summary.as_object_mut().unwrap();
    assert_eq!(fields.remove("fill").unwrap(), "close");
    assert_eq!(fields.remove("rejected_orders").unwrap(), 0);
    let summary = serde_json::to_string_pretty(&summary).unwrap();
    assert_eq!(
        (
            record.fills.len(),
            digest(&orders_csv(&record)).as_str(),
            digest(&summary).as_str()
        ),
        (
            969,
            "cb876cd66dbf36d9127d425a92c3c4c3a6e5fb05d618f8c9095bd8c52df1acbf",
            "8cd91ca5f2c5680624b16fc60d7dbca59d3b700db0204e615a54d1dad65c507a"
        ),
        "{summary}"
    );
    // Was e1faddd1… before the snapshot id and the filter's reported values changed.
    assert_eq!(
        chain,
        "5e77d163149b5726ec9ce9b84198ff181d6a15745f73ee0fe1965a0d9a38d962"
    );
}
