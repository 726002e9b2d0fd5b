//! Input that is too big or too deep ends in an error naming where, never a crash.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;

use alchemiser::market::MarketData;
use alchemiser::strategy::dsl::parse::MAX_DEPTH;
use alchemiser::strategy::dsl::{evaluate, parse_symphony};
use chrono::NaiveDate;
use rust_decimal::Decimal;

/// `levels` nested `weight-equal` nodes (two brackets each) around one asset.
fn nested(levels: usize) -> String {
    let mut text = String::from("(defsymphony \"deep\" {}\n");
    for _ in 0..levels {
        text.push_str("(weight-equal [");
    }
    text.push_str("(asset \"SPY\")");
    for _ in 0..levels {
        text.push_str("])");
    }
    text.push(')');
    text
}

fn spy() -> MarketData {
    let closes: Vec<f64> = (0..30).map(|i| 100.0 + f64::from(i)).collect();
    let mut series = BTreeMap::new();
    series.insert("SPY".into(), Arc::new(common::daily_series("SPY", &closes)));
    MarketData { series }
}

#[test]
fn a_symphony_nested_thousands_deep_is_an_error_at_its_position() {
    let err = parse_symphony(&nested(5_000)).unwrap_err();
    assert!(
        err.message
            .contains(&format!("nest deeper than {MAX_DEPTH} levels")),
        "{err}"
    );
    // The defsymphony form is level 1; the weight-equal forms open two brackets each.
    assert_eq!(err.span.line, 2, "{err}");
    assert!(err.span.column > 1, "{err}");
}

#[test]
fn the_deepest_symphony_allowed_parses_and_evaluates_on_a_small_stack() {
    // A spawned thread's default stack (2 MiB), in the debug build the tests run.
    let levels = (MAX_DEPTH - 2) / 2;
    let run = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let symphony = parse_symphony(&nested(levels)).expect("parses");
            let day = NaiveDate::from_ymd_opt(2020, 1, 30).unwrap();
            let e = evaluate(&symphony, &spy(), day).expect("evaluates");
            e.weights.get("SPY").copied()
        })
        .unwrap();
    assert_eq!(run.join().unwrap(), Some(Decimal::ONE));
}
