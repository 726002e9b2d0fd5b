//! `replay_day`: intraday on the LEAN minute bars of 2013-10-07 and daily on the bundled
//! data.

use std::path::PathBuf;
use std::str::FromStr;

use alchemiser::data::intraday::{read_quotes, read_trades};
use alchemiser::drivers::replay::{replay_day, ReplayOptions};
use chrono::{NaiveDate, NaiveTime};
use rust_decimal::Decimal;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn dec(v: &serde_json::Value) -> Decimal {
    Decimal::from_str(v.as_str().expect("decimal string")).unwrap()
}

#[test]
fn intraday_replay_decides_at_1545_and_fills_on_the_next_quote() {
    let lean = root().join("examples/lean");
    let date = NaiveDate::from_ymd_opt(2013, 10, 7).unwrap();
    let at = NaiveTime::from_hms_opt(15, 45, 0).unwrap();
    let opts = ReplayOptions {
        config: Some(root().join("examples/replay_lean.toml")),
        data: Some(lean.clone()),
        date: Some(date),
        at,
    };
    let (summary, completed) = replay_day(&opts).unwrap();
    assert!(completed, "{summary}");
    assert_eq!(summary["mode"], "intraday");
    assert_eq!(
        summary["decision_time"],
        "15:45:00 America/New_York (2013-10-07 19:45:00 UTC)"
    );

    // Today's bar: the close the strategy saw for SPY is the last regular-session trade
    // minute before 15:45, not the day's close.
    let trades = read_trades(&lean, "SPY", date).unwrap();
    let seen = trades.iter().rfind(|t| t.start < at).unwrap().close;
    let day_close = trades.last().unwrap().close;
    assert_ne!(seen, day_close);
    let shown = dec(&summary["signal"]["indicators"][0]["current-price(SPY)"]);
    assert_eq!(shown, seen.round_dp(6));

    // Each buy filled at the ask close of the first quote minute after 15:45.
    let fills = summary["fills"].as_array().unwrap();
    assert!(!fills.is_empty());
    for f in fills {
        let symbol = f["symbol"].as_str().unwrap();
        assert_eq!(f["side"], "buy");
        let quotes = read_quotes(&lean, symbol, date).unwrap();
        let next = quotes.iter().find(|q| q.start > at).unwrap();
        assert_eq!(dec(&f["price"]), next.ask_close, "{symbol}");
    }
    assert_eq!(summary["events_by_type"]["workflow.completed.v1"], 1);

    // Replaying again gives the same digest.
    let (again, _) = replay_day(&opts).unwrap();
    assert_eq!(again["chain_digest"], summary["chain_digest"]);
}

#[test]
fn daily_replay_runs_on_the_bundled_data() {
    let opts = ReplayOptions {
        config: None,
        data: None,
        date: None,
        at: NaiveTime::from_hms_opt(15, 45, 0).unwrap(),
    };
    let (summary, completed) = replay_day(&opts).unwrap();
    assert!(completed, "{summary}");
    assert_eq!(summary["mode"], "daily");
    assert_eq!(summary["date"], "2023-09-21");
    assert!(summary["fills"].as_array().unwrap().len() >= 3);
    let after = dec(&summary["equity_after"]);
    assert!(
        after > Decimal::from(99_000) && after < Decimal::from(100_000),
        "{after}"
    );
}
