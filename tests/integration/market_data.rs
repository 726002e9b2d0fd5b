//! Market data readers on real files: the LEAN sample (`examples/lean`) and the bundled
//! CSV folder.

use alchemiser::market::BarSource;
use std::path::{Path, PathBuf};

use alchemiser::data::DataSource;
use alchemiser::market::snapshot::snapshot_id;
use alchemiser::market::{Adjustment, DataError};
use chrono::NaiveDate;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use std::str::FromStr;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The LEAN sample the repository carries.
fn lean() -> PathBuf {
    root().join("examples/lean")
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

#[test]
fn every_lean_daily_file_loads_raw_and_adjusted() {
    let dir = lean();
    for symbol in [
        "SPY", "QQQ", "IWM", "EEM", "USO", "BNO", "AAPL", "IBM", "AIG", "BAC",
    ] {
        for adjustment in [Adjustment::Raw, Adjustment::Adjusted] {
            let source = DataSource::detect(&dir, adjustment).unwrap();
            let s = source
                .load(symbol)
                .unwrap_or_else(|e| panic!("{symbol} {adjustment:?}: {e}"));
            assert!(s.len() > 3000, "{symbol}: {} bars", s.len());
            assert!(s.dates().windows(2).all(|w| w[0] < w[1]));
        }
    }
}

#[test]
fn lean_prices_are_scaled_and_adjusted_by_the_factor_in_force() {
    let dir = lean();
    let raw = DataSource::detect(&dir, Adjustment::Raw)
        .unwrap()
        .read("SPY")
        .unwrap();
    let adj = DataSource::detect(&dir, Adjustment::Adjusted)
        .unwrap()
        .read("SPY")
        .unwrap();
    let on = |s: &[alchemiser::market::DailyBar], d: &str| {
        *s.iter().find(|b| b.date == date(d)).unwrap()
    };
    // 1998-01-02 is itself a factor row: 0.6566606 × 1.
    assert_eq!(on(&raw, "1998-01-02").close, dec("97.36"));
    assert_eq!(on(&adj, "1998-01-02").close, dec("63.932476"));
    // 2021-03-19 falls after the last dated row (2021-03-18) and before 2050: factor 1.
    assert_eq!(on(&adj, "2021-03-19").close, on(&raw, "2021-03-19").close);
    // 2021-03-18 takes its own row's factor 0.9967360.
    assert_eq!(
        on(&adj, "2021-03-18").close,
        (dec("391.48") * dec("0.9967360")).round_dp(6)
    );
}

#[test]
fn layouts_are_detected_from_their_contents() {
    let csv = DataSource::detect(&root().join("examples/data"), Adjustment::Raw).unwrap();
    assert!(matches!(csv, DataSource::CsvFolder { .. }));
    let empty = tempfile::tempdir().unwrap();
    let err = DataSource::detect(empty.path(), Adjustment::Raw).unwrap_err();
    assert!(matches!(err, DataError::UnknownLayout { .. }));
    let dir = lean();
    assert!(matches!(
        DataSource::detect(&dir, Adjustment::Raw).unwrap(),
        DataSource::Lean { .. }
    ));
    let daily = dir.join("equity/usa/daily");
    match DataSource::detect(&daily, Adjustment::Raw).unwrap() {
        DataSource::Lean { root, .. } => assert_eq!(root, dir.canonicalize().unwrap()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_bundled_data_loads_and_validates() {
    let source = DataSource::detect(&root().join("examples/data"), Adjustment::Raw).unwrap();
    for symbol in ["AAPL", "AMZN", "GOOG", "META", "NFLX", "NVDA"] {
        let s = source.load(symbol).unwrap();
        assert_eq!(s.len(), 2699, "{symbol}");
        assert_eq!(s.first_date(), Some(date("2013-01-02")));
        assert_eq!(s.last_date(), Some(date("2023-09-21")));
        // The series keeps each bar's date, open and close exactly as read.
        let bars = source.read(symbol).unwrap();
        let kept: Vec<_> = (0..s.len())
            .map(|i| (s.dates()[i], s.open(i).unwrap(), s.close(i).unwrap()))
            .collect();
        let read: Vec<_> = bars.iter().map(|b| (b.date, b.open, b.close)).collect();
        assert_eq!(kept, read, "{symbol}");
        let closes: Vec<f64> = bars.iter().map(|b| b.close.to_f64().unwrap()).collect();
        assert_eq!(s.closes(), closes.as_slice(), "{symbol}");
    }
    assert_eq!(
        source.load("SPY").unwrap_err(),
        DataError::UnknownSymbol {
            symbol: "SPY".into(),
            dir: root().join("examples/data").display().to_string()
        }
    );
}

#[test]
fn a_broken_csv_names_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("BAD.csv");
    std::fs::write(
        &file,
        "date,open,high,low,close,volume\n2024-01-02,1,2,1,1.5,10\n2024-01-03,1,2,1,x,10\n",
    )
    .unwrap();
    let source = DataSource::detect(dir.path(), Adjustment::Raw).unwrap();
    let err = source.load("BAD").unwrap_err().to_string();
    assert_eq!(
        err,
        format!("{}:3: close `x` is not a number", file.display())
    );
}

/// A snapshot id names the bars up to its day: the same for two loads of the data,
/// another on the next session, unchanged over a weekend; and a bar dropped from the
/// data before the day changes it.
#[test]
fn snapshot_ids_identify_the_bars_up_to_a_day() {
    let source = DataSource::detect(&root().join("examples/data"), Adjustment::Raw).unwrap();
    let symbols: Vec<alchemiser::domain::Symbol> = vec!["AAPL".into(), "NVDA".into()];
    let a = source.load_all(&symbols).unwrap();
    let b = source.load_all(&symbols).unwrap();
    let id = |m: &alchemiser::market::MarketData, d: &str| snapshot_id(m, date(d));
    assert_eq!(id(&a, "2020-06-30"), id(&b, "2020-06-30"));
    assert_ne!(id(&a, "2020-06-30"), id(&a, "2020-06-29"));
    // Friday 2020-06-26 to Sunday 2020-06-28: no bar between.
    assert_eq!(id(&a, "2020-06-26"), id(&a, "2020-06-28"));
    let mut gap = b.clone();
    let aapl = source.read("AAPL").unwrap();
    let without: Vec<_> = aapl
        .into_iter()
        .filter(|bar| bar.date != date("2020-06-01"))
        .collect();
    gap.series.insert(
        "AAPL".into(),
        std::sync::Arc::new(alchemiser::market::BarSeries::new("AAPL".into(), without)),
    );
    assert_eq!(id(&a, "2020-05-29"), id(&gap, "2020-05-29"));
    assert_ne!(id(&a, "2020-06-30"), id(&gap, "2020-06-30"));
    assert!(Path::new(&root().join("examples/data/README.md")).exists());
}
