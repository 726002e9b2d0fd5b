//! Backtests through the real actors: determinism, invariants on real LEAN history,
//! bad input, and the command's files.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use alchemiser::actors::backtest::{run, run_observed, sessions, BacktestError};
use alchemiser::actors::broker::Observed;
use alchemiser::backtest::report::{equity_csv, orders_csv};
use alchemiser::backtest::{summarize, BacktestRecord};
use alchemiser::config::{Config, FillTiming};
use alchemiser::domain::Side;
use alchemiser::events::{Envelope, Payload};
use alchemiser::market::MarketData;
use alchemiser::strategy::book::StrategyBook;
use chrono::NaiveDate;
use rust_decimal::Decimal;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn bundled() -> (Config, Arc<StrategyBook>) {
    let config = Config::load(&root().join("config.toml")).unwrap();
    let book =
        alchemiser::symphony_files::load_book(&config.strategy, &config.base_dir, None).unwrap();
    (config, Arc::new(book))
}

fn lean() -> (Config, Arc<StrategyBook>) {
    let config = Config::load(&root().join("examples/lean_sample.toml")).unwrap();
    let book =
        alchemiser::symphony_files::load_book(&config.strategy, &config.base_dir, None).unwrap();
    (config, Arc::new(book))
}

async fn backtest(config: Config, book: Arc<StrategyBook>, from: &str, to: &str) -> BacktestRecord {
    let dates = sessions(&book, d(from), d(to)).unwrap();
    run(config, book, &dates, |_, _| {}).await.unwrap()
}

#[actix_rt::test]
async fn two_runs_are_byte_identical() {
    let (config, book) = bundled();
    let a = backtest(config.clone(), book.clone(), "2016-01-01", "2016-12-31").await;
    let b = backtest(config, book, "2016-01-01", "2016-12-31").await;
    assert!(!a.fills.is_empty());
    assert_eq!(a.chain_digest, b.chain_digest);
    assert_eq!(equity_csv(&a), equity_csv(&b));
    assert_eq!(orders_csv(&a), orders_csv(&b));
    let (sa, sb) = (summarize(&a).unwrap(), summarize(&b).unwrap());
    assert_eq!(
        serde_json::to_string(&sa).unwrap(),
        serde_json::to_string(&sb).unwrap()
    );
    assert_eq!(sa.workflows, 252);
    assert_eq!(sa.failed_workflows, 0);
}

/// Collects every event of the run.
struct Audit(Arc<Mutex<Vec<Arc<Envelope>>>>);

impl Actor for Audit {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "()")]
struct Drain;

impl Handler<Drain> for Audit {
    type Result = ();
    fn handle(&mut self, _msg: Drain, _ctx: &mut Self::Context) {}
}

impl Handler<Observed> for Audit {
    type Result = ();
    fn handle(&mut self, msg: Observed, _ctx: &mut Self::Context) {
        self.0.lock().unwrap().push(msg.env);
    }
}

#[actix_rt::test]
async fn a_multi_year_lean_backtest_keeps_its_invariants() {
    let (config, book) = lean();
    let initial = config.venue.sim.initial_cash;
    let dates = sessions(&book, d("2004-01-01"), d("2012-12-31")).unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let audit = Audit(events.clone()).start();
    let record = run_observed(
        config,
        book.clone(),
        &dates,
        |_, _| {},
        Some(audit.clone().recipient()),
    )
    .await
    .unwrap();
    // Everything observed was queued before this message: its answer comes after.
    audit.send(Drain).await.unwrap();
    let events = events.lock().unwrap().clone();

    assert!(record.fills.len() > 100, "{} fills", record.fills.len());
    assert_eq!(record.failed_workflows, vec![]);

    assert_the_fills_replay_to_the_equity_curve(&record, &book.data, initial);

    // Every order is traceable to its plan: its client id is an intent of the workflow's
    // execution.started, whose plan hash is the workflow's plan.
    let mut plan_of: HashMap<_, String> = HashMap::new();
    let mut intents: HashMap<_, HashSet<String>> = HashMap::new();
    for e in &events {
        match &e.payload {
            Payload::RebalancePlanned(p) => {
                plan_of.insert(e.correlation_id, p.plan_hash.clone());
            }
            Payload::ExecutionStarted(s) => {
                assert_eq!(plan_of.get(&e.correlation_id), Some(&s.plan_hash));
                intents
                    .entry(e.correlation_id)
                    .or_default()
                    .extend(s.orders.iter().map(|o| o.client_order_id.clone()));
            }
            _ => {}
        }
    }
    let mut traced = 0;
    for e in &events {
        if let Payload::OrderFilled(f) = &e.payload {
            assert!(
                intents[&e.correlation_id].contains(&f.client_order_id),
                "{} has no intent",
                f.client_order_id
            );
            traced += 1;
        }
    }
    assert_eq!(traced, record.fills.len());
}

/// Replays the fills: cash never negative; each day's cash is what the fills left and
/// its equity is cash + positions marked at that day's close.
fn assert_the_fills_replay_to_the_equity_curve(
    record: &BacktestRecord,
    market: &MarketData,
    initial: Decimal,
) {
    let mut cash = initial;
    let mut positions: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut fills = record.fills.iter().peekable();
    for point in &record.points {
        while let Some(f) = fills.next_if(|f| f.date == point.date) {
            let notional = f.qty * f.price;
            match f.side {
                Side::Buy => {
                    cash -= notional + f.commission;
                    *positions.entry(f.symbol.to_string()).or_default() += f.qty;
                }
                Side::Sell => {
                    cash += notional - f.commission;
                    *positions.entry(f.symbol.to_string()).or_default() -= f.qty;
                }
            }
        }
        assert!(
            cash >= Decimal::ZERO,
            "cash negative on {}: {cash}",
            point.date
        );
        assert_eq!(cash, point.cash, "cash on {}", point.date);
        let marked: Decimal = positions
            .iter()
            .map(|(s, q)| *q * market.close_on_or_before(s, point.date).unwrap().1)
            .sum();
        assert_eq!(point.equity, cash + marked, "equity on {}", point.date);
        assert!(positions.values().all(|q| *q >= Decimal::ZERO));
    }
    assert!(fills.next().is_none(), "every fill falls on a session");
}

#[actix_rt::test]
async fn next_open_fills_at_the_next_sessions_open_and_marks_each_day_before_trading() {
    let (mut config, book) = bundled();
    config.backtest.fill = FillTiming::NextOpen;
    let costs = config.venue.sim.costs();
    let initial = config.venue.sim.initial_cash;
    let dates = sessions(&book, d("2016-01-01"), d("2016-12-31")).unwrap();
    let record = run(config.clone(), book.clone(), &dates, |_, _| {})
        .await
        .unwrap();
    let summary = summarize(&record).unwrap();
    assert_eq!(summary.fill, FillTiming::NextOpen);
    // The last session's decision has no next open: it is not run.
    assert_eq!(summary.workflows, dates.len() as u64 - 1);
    assert_eq!(record.points.len(), dates.len());
    // Nothing has traded by the first close.
    assert_eq!(record.points[0].equity, initial);
    assert!(record.fills.len() > 50, "{} fills", record.fills.len());
    for f in &record.fills {
        assert_ne!(f.date, dates[0], "a fill on the first decision's own day");
        let series = &book.data.series[f.symbol.as_str()];
        let i = series.dates().binary_search(&f.date).unwrap();
        let open = series.open(i).unwrap();
        assert_eq!(f.price, costs.fill_price(f.side, open), "{f:?}");
    }
    assert_the_fills_replay_to_the_equity_curve(&record, &book.data, initial);

    // The same first decision as the close model, traded a day later at other prices.
    let at_close = run(config_with_close(config), book, &dates, |_, _| {})
        .await
        .unwrap();
    let first = |r: &BacktestRecord| {
        let day = r.fills[0].date;
        r.fills
            .iter()
            .take_while(|f| f.date == day)
            .map(|f| (f.client_order_id.clone(), f.qty, f.date))
            .collect::<Vec<_>>()
    };
    let (a, b) = (first(&at_close), first(&record));
    assert_eq!(a[0].2, dates[0]);
    assert_eq!(b[0].2, dates[1]);
    // Every order filled at the open was the close model's order, same id and quantity
    // (an order the opening gap made too dear for the cash is rejected and counted).
    assert!(!b.is_empty() && b.len() <= a.len(), "{a:?} {b:?}");
    for (id, qty, _) in &b {
        assert!(a.iter().any(|(i, q, _)| (i, q) == (id, qty)), "{id} {qty}");
    }
}

fn config_with_close(mut config: Config) -> Config {
    config.backtest.fill = FillTiming::Close;
    config
}

#[test]
fn bad_ranges_are_refused_with_clear_errors() {
    let (_, book) = bundled();
    assert_eq!(
        sessions(&book, d("2020-02-01"), d("2020-01-01")).unwrap_err(),
        BacktestError::EmptyRange {
            from: d("2020-02-01"),
            to: d("2020-01-01")
        }
    );
    let err = sessions(&book, d("1990-01-01"), d("1995-12-31")).unwrap_err();
    assert_eq!(err.to_string(), "dates 1990-01-01..1995-12-31 are outside the data, which covers 2013-01-02..2023-09-21 for every symbol");
    assert!(matches!(
        sessions(&book, d("2016-12-24"), d("2016-12-26")).unwrap_err(),
        BacktestError::NoSessions { .. }
    ));
    assert_eq!(
        sessions(&book, d("2016-12-23"), d("2016-12-27")).unwrap(),
        vec![d("2016-12-23"), d("2016-12-27")]
    );
}

#[test]
fn the_command_writes_its_files() {
    let out = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_alchemiser"))
        .args([
            "backtest",
            "--from",
            "2017-01-01",
            "--to",
            "2017-03-31",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("summary.json")).unwrap()).unwrap();
    for key in [
        "start",
        "end",
        "initial_equity",
        "final_equity",
        "total_return",
        "cagr",
        "annual_volatility",
        "sharpe",
        "max_drawdown",
        "trades",
        "turnover",
        "workflows",
        "events",
        "chain_digest",
    ] {
        assert!(summary.get(key).is_some(), "summary lacks {key}");
    }
    assert_eq!(summary["start"], "2017-01-03");
    let equity = std::fs::read_to_string(out.path().join("equity.csv")).unwrap();
    assert_eq!(equity.lines().next(), Some("date,equity,cash"));
    assert_eq!(
        equity.lines().count() as u64,
        summary["workflows"].as_u64().unwrap() + 1
    );
    let orders = std::fs::read_to_string(out.path().join("orders.csv")).unwrap();
    assert_eq!(
        orders.lines().next(),
        Some("date,symbol,side,qty,price,commission,client_order_id")
    );
    let svg = std::fs::read_to_string(out.path().join("equity.svg")).unwrap();
    assert!(svg.starts_with("<?xml") && svg.contains("<svg") && svg.contains("Drawdown"));
    // Plain labels: thousands separated, no float debris like `1200000.0`.
    assert!(
        svg.contains("100,000") && !svg.contains("00000.0<"),
        "{svg}"
    );
    let report = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(report.starts_with("<!DOCTYPE html>") && report.contains("Monthly and yearly returns"));

    // A second run writes the same bytes, report and chart included.
    let again = tempfile::tempdir().unwrap();
    let o2 = Command::new(env!("CARGO_BIN_EXE_alchemiser"))
        .args([
            "backtest",
            "--from",
            "2017-01-01",
            "--to",
            "2017-03-31",
            "--out",
        ])
        .arg(again.path())
        .output()
        .unwrap();
    assert!(o2.status.success());
    for file in [
        "summary.json",
        "equity.csv",
        "orders.csv",
        "equity.svg",
        "report.html",
    ] {
        assert_eq!(
            std::fs::read(out.path().join(file)).unwrap(),
            std::fs::read(again.path().join(file)).unwrap(),
            "{file} differs between two runs"
        );
    }
    // Not a terminal: no progress bar noise, just the file list.
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.lines().all(|l| l.starts_with("wrote ")), "{stderr}");

    let bad = Command::new(env!("CARGO_BIN_EXE_alchemiser"))
        .args([
            "backtest",
            "--from",
            "2030-01-01",
            "--to",
            "2030-12-31",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("outside the data"));
}
