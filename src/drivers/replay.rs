//! Replaying one trading day through the full actor system (`examples/replay_day.rs`).
//!
//! On a CSV folder the day is replayed with the daily fill model. On LEAN data it is
//! replayed intraday: the decision is taken at `at` (New York) from the daily history up
//! to the previous day plus a bar for today built from the regular-session minute
//! trades before `at`, and orders fill against the minute quotes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::America::New_York;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::actors::backtest::drive;
use crate::actors::broker::Observed;
use crate::backtest::BacktestRecord;
use crate::config::Config;
use crate::data::intraday::{bar_until, read_quotes, read_trades, MinuteQuote};
use crate::data::DataSource;
use crate::domain::Symbol;
use crate::events::{Envelope, Payload};
use crate::market::MarketData;
use crate::strategy::book::StrategyBook;
use crate::venues::sim::SimVenue;

/// What to replay.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// Configuration (the embedded defaults when `None`).
    pub config: Option<PathBuf>,
    /// Market data folder instead of the configured one.
    pub data: Option<PathBuf>,
    /// The day (default: the last day every symbol has a bar).
    pub date: Option<NaiveDate>,
    /// Decision time, New York.
    pub at: NaiveTime,
}

struct Events(Arc<Mutex<Vec<Arc<Envelope>>>>);

impl Actor for Events {
    type Context = Context<Self>;
}

impl Handler<Observed> for Events {
    type Result = ();
    fn handle(&mut self, msg: Observed, _ctx: &mut Self::Context) {
        self.0.lock().map(|mut v| v.push(msg.env)).unwrap_or(());
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Drain;

impl Handler<Drain> for Events {
    type Result = ();
    fn handle(&mut self, _msg: Drain, _ctx: &mut Self::Context) {}
}

fn new_york(date: NaiveDate, time: NaiveTime) -> Result<DateTime<Utc>, String> {
    New_York
        .from_local_datetime(&date.and_time(time))
        .single()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("{date} {time} is not a single New York time"))
}

/// What an intraday replay runs on.
struct IntradayDay {
    /// Daily history before the day plus the day's bar so far, per symbol.
    market: MarketData,
    quotes: BTreeMap<Symbol, Vec<MinuteQuote>>,
    /// The day's last trade per symbol, to mark positions after the replay.
    last_trades: BTreeMap<Symbol, Decimal>,
}

fn intraday_data(
    root: &std::path::Path,
    book: &StrategyBook,
    date: NaiveDate,
    at: NaiveTime,
) -> Result<IntradayDay, String> {
    let open = NaiveTime::from_hms_opt(9, 30, 0).unwrap_or_default();
    let mut series = BTreeMap::new();
    let mut quotes = BTreeMap::new();
    let mut last_trades = BTreeMap::new();
    for (symbol, s) in &book.data.series {
        let trades = read_trades(root, symbol, date).map_err(|e| e.to_string())?;
        let bar = bar_until(&trades, date, open, at)
            .ok_or_else(|| format!("no {symbol} trades between 09:30 and {at} on {date}"))?;
        let mut known = s.before(date);
        known.push(&bar);
        series.insert(symbol.clone(), Arc::new(known));
        quotes.insert(
            symbol.clone(),
            read_quotes(root, symbol, date).map_err(|e| e.to_string())?,
        );
        if let Some(last) = trades.last() {
            last_trades.insert(symbol.clone(), last.close);
        }
    }
    Ok(IntradayDay {
        market: MarketData { series },
        quotes,
        last_trades,
    })
}

/// Replays the day on its own actix system; returns the JSON summary and whether the
/// workflow completed.
pub fn replay_day(opts: &ReplayOptions) -> Result<(Value, bool), String> {
    let config = Config::load_or_default(opts.config.as_ref()).map_err(|e| e.to_string())?;
    let mut book =
        crate::symphony_files::load_book(&config.strategy, &config.base_dir, opts.data.as_deref())
            .map_err(|e| e.to_string())?;
    let at = opts.at;
    let date = opts
        .date
        .or_else(|| book.common_dates().last().copied())
        .ok_or_else(|| "the data has no common date".to_string())?;
    let decision = new_york(date, at)?;

    let source = crate::symphony_files::data_source(
        &config.strategy,
        &config.base_dir,
        opts.data.as_deref(),
    )
    .map_err(|e| e.to_string())?;
    let ReplayMarket {
        mode,
        market,
        quotes,
        marks_after,
    } = replay_market(source, &book, date, at)?;
    book.data = market.clone();
    let market = Arc::new(market);
    let cash = config.venue.sim.initial_cash;
    let venue = Arc::new(SimVenue::new(
        cash,
        config.venue.sim.costs(),
        Some(market.clone()),
    ));

    let system = System::new();
    let events = Arc::new(Mutex::new(Vec::new()));
    let collected = events.clone();
    let result = system.block_on(async move {
        let observer = Events(collected).start();
        let prepare = move |v: &SimVenue, d: NaiveDate| {
            v.set_date(d);
            if let Some(q) = &quotes {
                v.set_intraday(q.clone(), at);
            }
            decision
        };
        let record = drive(
            config,
            Arc::new(book),
            venue.clone(),
            market,
            &[date],
            prepare,
            |_, _| {},
            Some(observer.clone().recipient()),
        )
        .await;
        let _ = observer.send(Drain).await;
        record.map(|r| (r, venue.snapshot()))
    });
    let (record, account) = result.map_err(|e| e.to_string())?;
    let events = events.lock().map(|v| v.clone()).unwrap_or_default();

    let summary = Summary {
        date,
        mode,
        decision: format!("{at} America/New_York ({decision})"),
        cash,
        marks_after,
    };
    let completed = record.failed_workflows.is_empty();
    Ok((summary.of(&record, &account, &events), completed))
}

/// The day's market as the replay sees it: intraday (minute quotes up to the decision
/// time, from a LEAN folder) or the day's daily bars (a CSV folder).
struct ReplayMarket {
    mode: &'static str,
    market: MarketData,
    quotes: Option<BTreeMap<Symbol, Vec<MinuteQuote>>>,
    /// The prices positions are marked at after the replay.
    marks_after: BTreeMap<Symbol, Decimal>,
}

fn replay_market(
    source: DataSource,
    book: &StrategyBook,
    date: NaiveDate,
    at: NaiveTime,
) -> Result<ReplayMarket, String> {
    match source {
        DataSource::Lean { root, .. } => {
            let day = intraday_data(&root, book, date, at)?;
            Ok(ReplayMarket {
                mode: "intraday",
                market: day.market,
                quotes: Some(day.quotes),
                marks_after: day.last_trades,
            })
        }
        DataSource::CsvFolder { .. } | DataSource::Store { .. } => {
            if !book.common_dates().contains(&date) {
                return Err(format!("no bars for every symbol on {date}"));
            }
            let closes = book
                .data
                .series
                .keys()
                .filter_map(|s| {
                    book.data
                        .close_on_or_before(s, date)
                        .map(|(_, c)| (s.clone(), c))
                })
                .collect();
            Ok(ReplayMarket {
                mode: "daily",
                market: book.data.clone(),
                quotes: None,
                marks_after: closes,
            })
        }
    }
}

/// What the replay's JSON summary says besides the run's record and the account.
struct Summary {
    date: NaiveDate,
    mode: &'static str,
    decision: String,
    cash: Decimal,
    marks_after: BTreeMap<Symbol, Decimal>,
}

impl Summary {
    fn of(
        &self,
        record: &BacktestRecord,
        account: &crate::venue::AccountSnapshot,
        events: &[Arc<Envelope>],
    ) -> Value {
        let marked: Decimal = account
            .positions
            .iter()
            .map(|(s, q)| *q * self.marks_after.get(s).copied().unwrap_or_default())
            .sum();
        let mut by_type: BTreeMap<&str, u64> = BTreeMap::new();
        let mut orders = Vec::new();
        let mut signal = Value::Null;
        for e in events {
            *by_type.entry(e.event_type()).or_default() += 1;
            match &e.payload {
                Payload::OrderSubmitted(o) => orders.push(json!({"client_order_id": o.client_order_id, "symbol": o.symbol, "side": o.side, "qty": o.qty, "type": o.order_type})),
                Payload::SignalGenerated(s) => signal = json!({"target_weights": s.target_weights, "signal_hash": s.signal_hash, "indicators": s.strategies.iter().map(|a| &a.indicators).collect::<Vec<_>>()}),
                _ => {}
            }
        }
        let fills: Vec<_> = record
            .fills
            .iter()
            .map(|f| json!({"symbol": f.symbol, "side": f.side, "qty": f.qty, "price": f.price, "commission": f.commission}))
            .collect();
        let workflow = record
            .failed_workflows
            .first()
            .map_or("completed".to_string(), |(_, why)| format!("failed: {why}"));
        json!({
            "date": self.date,
            "mode": self.mode,
            "decision_time": self.decision,
            "workflow": workflow,
            "signal": signal,
            "events": record.events,
            "events_by_type": by_type,
            "orders": orders,
            "fills": fills,
            "equity_before": self.cash,
            "equity_after": (account.cash + marked).round_dp(2),
            "cash_after": account.cash.round_dp(2),
            "positions_after": account.positions,
            "chain_digest": record.chain_digest,
        })
    }
}
