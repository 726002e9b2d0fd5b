//! Composer parity, rule by rule, on crafted series whose answers are worked out by
//! hand in the comments (not by the evaluator).

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
