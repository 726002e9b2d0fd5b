//! The backtest driver: the same five actors, on the simulated venue, one workflow per
//! session with a reproducible correlation id, waiting for each to end before the next.
//! An observer folds every event's payload hash into the chain digest and collects the
//! fills; equity is marked at each session's close.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use thiserror::Error;

use super::broker::{Observe, Observed, Tap};
use super::engine::{Day, DayError, Engine, EngineDeps};
use crate::backtest::chain_digest::ChainDigest;
use crate::backtest::{BacktestRecord, EquityPoint, FillRecord, Sleeve};
use crate::calendar::UsEquityCalendar;
use crate::clock::ManualClock;
use crate::config::{Config, FillTiming};
use crate::domain::RunMode;
use crate::events::{CorrelationId, Envelope, OutcomeStatus, Payload};
use crate::journal::Journal;
use crate::market::MarketData;
use crate::strategy::book::StrategyBook;
use crate::strategy::prefetch::SignalPrefetch;
use crate::venues::sim::SimVenue;
use crate::workflow::WorkflowStatus;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BacktestError {
    #[error("empty date range: --from {from} is after --to {to}")]
    EmptyRange { from: NaiveDate, to: NaiveDate },
    #[error(
        "dates {from}..{to} are outside the data, which covers {first}..{last} for every symbol"
    )]
    OutsideData {
        from: NaiveDate,
        to: NaiveDate,
        first: NaiveDate,
        last: NaiveDate,
    },
    #[error("no session in {from}..{to} has bars for every symbol the strategies use")]
    NoSessions { from: NaiveDate, to: NaiveDate },
    #[error("too little history: the strategies cannot evaluate on any session in {from}..{to} (on {to}: {reason})")]
    NeverEvaluable {
        from: NaiveDate,
        to: NaiveDate,
        reason: String,
    },
    #[error("the strategies reference no symbols: nothing to backtest")]
    NoSymbols,
    #[error(transparent)]
    UnknownDate(#[from] crate::calendar::UnknownDate),
    #[error("broker unavailable: {0}")]
    Broker(String),
    #[error("chain digest: {0}")]
    Digest(String),
}

/// Sessions of the US equity calendar in `[from, to]` on which every symbol of the
/// book has a bar.
pub fn sessions(
    book: &StrategyBook,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<NaiveDate>, BacktestError> {
    sessions_in(&book.data, from, to)
}

/// Sessions of the US equity calendar in `[from, to]` on which every symbol of `market`
/// has a bar (a sweep checks its dates with it before any variant runs).
pub fn sessions_in(
    market: &MarketData,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<NaiveDate>, BacktestError> {
    if from > to {
        return Err(BacktestError::EmptyRange { from, to });
    }
    let firsts = market.series.values().filter_map(|s| s.first_date());
    let lasts = market.series.values().filter_map(|s| s.last_date());
    let (Some(first), Some(last)) = (firsts.max(), lasts.min()) else {
        return Err(BacktestError::NoSymbols);
    };
    if from > last || to < first {
        return Err(BacktestError::OutsideData {
            from,
            to,
            first,
            last,
        });
    }
    let calendar = UsEquityCalendar::get();
    // Data in a year the calendar cannot speak for would be skipped in silence.
    calendar.check_known(from.max(first))?;
    calendar.check_known(to.min(last))?;
    let dates: Vec<NaiveDate> = market
        .common_dates()
        .into_iter()
        .filter(|d| *d >= from && *d <= to && calendar.is_session(*d))
        .collect();
    if dates.is_empty() {
        return Err(BacktestError::NoSessions { from, to });
    }
    Ok(dates)
}

/// The sessions a backtest trades: from the first of `dates` on which every strategy
/// evaluates (the warm-up before it is skipped), and how many were skipped. None
/// evaluating is bad input: too little history in the range.
pub fn after_warm_up<'d>(
    book: &StrategyBook,
    dates: &'d [NaiveDate],
) -> Result<(&'d [NaiveDate], u64), BacktestError> {
    match book.first_evaluable(dates) {
        Ok(first) => Ok((&dates[first..], first as u64)),
        Err(e) => Err(BacktestError::NeverEvaluable {
            from: dates.first().copied().unwrap_or_default(),
            to: dates.last().copied().unwrap_or_default(),
            reason: e.to_string(),
        }),
    }
}

/// Folds every event into the chain digest, in sequence order, and keeps the fills.
/// The broker calls it with each event as it dispatches it (a tap: no message per event).
struct Recorder {
    digest: ChainDigest,
    /// Where the signals came from: they go back there to be freed.
    prefetch: Option<Arc<SignalPrefetch>>,
    events: u64,
    dates: HashMap<CorrelationId, NaiveDate>,
    /// Days a strategy file failed to evaluate, with why.
    strategy_errors: Vec<(NaiveDate, String)>,
    /// Orders the venue refused (e.g. a buy that an opening gap made dearer than the
    /// cash left).
    rejected_orders: u64,
    sleeves: Vec<(NaiveDate, Vec<Sleeve>)>,
    /// In blocks of [`FILL_BLOCK`]: one growing vector of a long run's fills moved to a
    /// fresh (page-faulted) block at every doubling, ~1.6% of the main thread in perf.
    fills: Vec<Vec<FillRecord>>,
}

const FILL_BLOCK: usize = 1024;
/// Deliveries per timed one in a backtest (`engine.latency_sample_every`).
const BACKTEST_LATENCY_SAMPLE_EVERY: u32 = 64;
/// Finished workflows a backtest's broker keeps in memory
/// (`engine.retain_finished_workflows`).
const BACKTEST_RETAINED_WORKFLOWS: usize = 16;

impl Recorder {
    /// What the recorder saw, into the run's record (`dates`: the sessions run).
    fn fill_in(
        self,
        record: &mut BacktestRecord,
        dates: &[NaiveDate],
    ) -> Result<(), BacktestError> {
        record.chain_digest = self
            .digest
            .finish()
            .map_err(|e| BacktestError::Digest(e.to_string()))?;
        record.events = self.events;
        record.strategy_errors = self.strategy_errors;
        record.rejected_orders = self.rejected_orders;
        record.sleeves = self.sleeves;
        record.fills = self.fills.concat();
        if record.fill == FillTiming::NextOpen {
            // A fill happened on the session after its decision.
            for fill in &mut record.fills {
                let next = dates.partition_point(|d| *d <= fill.date);
                if let Some(day) = dates.get(next) {
                    fill.date = *day;
                }
            }
        }
        Ok(())
    }

    fn observe(&mut self, env: &Arc<Envelope>) {
        for folded in self.digest.push(env.clone()) {
            self.free(folded);
        }
        self.events += 1;
        match &env.payload {
            Payload::WorkflowStarted(s) => {
                self.dates.insert(env.correlation_id, s.as_of);
            }
            // A completed workflow has settled all its orders (a failed one may still
            // hear of a fill).
            Payload::WorkflowCompleted(_) => {
                self.dates.remove(&env.correlation_id);
            }
            Payload::SignalGenerated(signal) => {
                if signal.strategies.len() > 1 {
                    let sleeves = signal
                        .strategies
                        .iter()
                        .map(|s| Sleeve {
                            name: s.name.clone(),
                            file_weight: s.file_weight,
                            weights: s.weights.clone(),
                        })
                        .collect();
                    self.sleeves.push((signal.as_of, sleeves));
                }
                for s in &signal.strategies {
                    if let Some(error) = &s.error {
                        self.strategy_errors.push((signal.as_of, error.clone()));
                    }
                }
            }
            Payload::WorkflowFailed(failed) if failed.step == "strategy" => {
                if let Some(date) = self.dates.get(&env.correlation_id) {
                    self.strategy_errors.push((*date, failed.detail.clone()));
                }
            }
            Payload::OrderSettled(settled) => {
                let rejected = settled
                    .orders
                    .iter()
                    .filter(|o| o.status == OutcomeStatus::Rejected);
                self.rejected_orders += rejected.count() as u64;
            }
            Payload::OrderFilled(f) => {
                if let Some(date) = self.dates.get(&env.correlation_id) {
                    let fill = FillRecord {
                        date: *date,
                        symbol: f.symbol.clone(),
                        side: f.side,
                        qty: f.qty,
                        price: f.price,
                        commission: f.commission,
                        client_order_id: f.client_order_id.clone(),
                    };
                    match self.fills.last_mut() {
                        Some(block) if block.len() < FILL_BLOCK => block.push(fill),
                        _ => {
                            let mut block = Vec::with_capacity(FILL_BLOCK);
                            block.push(fill);
                            self.fills.push(block);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// Frees events the digest is done with; signals evaluated ahead go back to their
    /// thread (the last holder of an envelope is most often this one by now).
    fn free(&mut self, folded: Vec<Arc<Envelope>>) {
        let Some(prefetch) = &self.prefetch else {
            return;
        };
        let spent = folded
            .into_iter()
            .filter_map(|env| match Arc::try_unwrap(env).map(|env| env.payload) {
                Ok(Payload::SignalGenerated(signal)) => Some(signal),
                _ => None,
            })
            .collect();
        prefetch.recycle(spent);
    }
}

/// Runs the backtest over `dates` (from [`sessions`]); `progress(done, total)` is
/// called after each session.
pub async fn run(
    config: Config,
    book: Arc<StrategyBook>,
    dates: &[NaiveDate],
    progress: impl FnMut(usize, usize),
) -> Result<BacktestRecord, BacktestError> {
    run_observed(config, book, dates, progress, None).await
}

/// [`run`] with every event journaled (in memory by default in the CLI) before dispatch.
pub async fn run_journaled(
    config: Config,
    book: Arc<StrategyBook>,
    dates: &[NaiveDate],
    progress: impl FnMut(usize, usize),
    journal: Journal,
) -> Result<BacktestRecord, BacktestError> {
    daily(config, book, dates, progress, None, Some(journal)).await
}

/// [`run`], with `observer` also receiving every event (audits and tests).
pub async fn run_observed(
    config: Config,
    book: Arc<StrategyBook>,
    dates: &[NaiveDate],
    progress: impl FnMut(usize, usize),
    observer: Option<Recipient<Observed>>,
) -> Result<BacktestRecord, BacktestError> {
    daily(config, book, dates, progress, observer, None).await
}

/// A backtest with the daily fill model: the venue moves to each session's close, and
/// orders fill there or at the next session's open (`backtest.fill`).
async fn daily(
    config: Config,
    book: Arc<StrategyBook>,
    dates: &[NaiveDate],
    progress: impl FnMut(usize, usize),
    observer: Option<Recipient<Observed>>,
    journal: Option<Journal>,
) -> Result<BacktestRecord, BacktestError> {
    let market = Arc::new(book.data.clone());
    let venue = Arc::new(SimVenue::new(
        config.venue.sim.initial_cash,
        config.venue.sim.costs(),
        Some(market.clone()),
    ));
    let daily_close = |v: &SimVenue, date: NaiveDate| {
        v.set_date(date);
        Utc.from_utc_datetime(&date.and_hms_opt(20, 0, 0).unwrap_or_default())
    };
    let fill = config.backtest.fill;
    drive_journaled(
        config,
        book,
        venue,
        market,
        dates,
        Timing {
            prepare: daily_close,
            fill,
        },
        progress,
        observer,
        journal,
    )
    .await
}

/// The driver behind backtests and replays: before each day's workflow, `prepare` sets
/// the venue up for the day and returns the decision time (the clock's "now").
#[allow(clippy::too_many_arguments)]
pub async fn drive(
    config: Config,
    book: Arc<StrategyBook>,
    venue: Arc<SimVenue>,
    marks: Arc<MarketData>,
    dates: &[NaiveDate],
    prepare: impl FnMut(&SimVenue, NaiveDate) -> DateTime<Utc>,
    progress: impl FnMut(usize, usize),
    observer: Option<Recipient<Observed>>,
) -> Result<BacktestRecord, BacktestError> {
    let timing = Timing {
        prepare,
        fill: FillTiming::Close,
    };
    drive_journaled(
        config, book, venue, marks, dates, timing, progress, observer, None,
    )
    .await
}

/// How each day meets the venue: `prepare` sets the venue up for the day and returns
/// the decision time; `fill` says whether orders fill then or at the next day's open.
struct Timing<P> {
    prepare: P,
    fill: FillTiming,
}

#[allow(clippy::too_many_arguments)]
async fn drive_journaled(
    config: Config,
    book: Arc<StrategyBook>,
    venue: Arc<SimVenue>,
    marks: Arc<MarketData>,
    dates: &[NaiveDate],
    mut timing: Timing<impl FnMut(&SimVenue, NaiveDate) -> DateTime<Utc>>,
    mut progress: impl FnMut(usize, usize),
    observer: Option<Recipient<Observed>>,
    journal: Option<Journal>,
) -> Result<BacktestRecord, BacktestError> {
    let market = marks;
    // The slices a continuous run would hold on the first day (files trading other than
    // daily): a backtest decides as `signals` and `run` do on every day it shares.
    if let Some(first) = dates.first() {
        book.replay_slices_before(*first);
    }
    let config = backtest_config(config);
    let initial_cash = venue.snapshot().cash;
    let clock = ManualClock::new(Utc.timestamp_opt(0, 0).single().unwrap_or_default());
    let prefetch = SignalPrefetch::start(book.clone(), dates.to_vec()).map(Arc::new);
    let deps = EngineDeps::new(config, Arc::new(clock.clone()), venue.clone(), book.clone())
        .with_prefetch(prefetch.clone());
    let engine = Engine::builder(deps).journal(journal).start();
    let broker = engine.broker();
    let recorder = record_events(broker, prefetch, observer).await?;

    // One equity point per day, reserved up front: growing it by doubling cost a fresh
    // (page-faulted) block per step, ~2% of a 23-year run's main thread in perf.
    let mut record = BacktestRecord {
        initial_equity: initial_cash,
        points: Vec::with_capacity(dates.len()),
        fill: timing.fill,
        ..BacktestRecord::default()
    };

    for (i, date) in dates.iter().enumerate() {
        clock.set((timing.prepare)(&venue, *date));
        let next_open = match timing.fill {
            FillTiming::Close => None,
            FillTiming::NextOpen => {
                // The day ends with what the previous day's orders bought at this
                // morning's open; today's decision trades tomorrow.
                record.points.push(equity_point(&venue, &market, *date));
                match dates.get(i + 1) {
                    Some(next) => Some(*next),
                    None => {
                        progress(i + 1, dates.len());
                        continue;
                    }
                }
            }
        };
        if let Some(next) = next_open {
            venue.fill_at_open_of(next);
        }
        record.workflows += 1;
        if let Some(why) = run_day(&engine, *date).await? {
            record.failed_workflows.push((*date, why));
        }
        if next_open.is_none() {
            record.points.push(equity_point(&venue, &market, *date));
        }
        progress(i + 1, dates.len());
    }
    // Every workflow has ended, so the broker has dispatched (and tapped) its events.
    let out = recorder
        .lock()
        .ok()
        .and_then(|mut r| r.take())
        .ok_or_else(|| BacktestError::Broker("the recorder was lost".into()))?;
    out.fill_in(&mut record, dates)?;
    Ok(record)
}

/// The configuration a backtest runs with.
fn backtest_config(mut config: Config) -> Config {
    // Days run one after another: a failed day is recorded and the next one runs. A
    // retry would race the next day, and a halt would end the backtest.
    config.recovery.max_attempts = 0;
    config.recovery.halt_on_give_up = false;
    // What a backtest measures is the strategy: handler latency is sampled sparsely.
    config.engine.latency_sample_every = config
        .engine
        .latency_sample_every
        .max(BACKTEST_LATENCY_SAMPLE_EVERY);
    // Nothing asks a backtest for the causation trees of past days, and the broker's
    // index of a thousand days of events missed the cache on every lookup.
    config.engine.retain_finished_workflows = config
        .engine
        .retain_finished_workflows
        .min(BACKTEST_RETAINED_WORKFLOWS);
    config
}

/// Taps the broker with a fresh [`Recorder`] (and `observer`, if any).
async fn record_events(
    broker: &Addr<super::broker::Broker>,
    prefetch: Option<Arc<SignalPrefetch>>,
    observer: Option<Recipient<Observed>>,
) -> Result<Arc<Mutex<Option<Recorder>>>, BacktestError> {
    let recorder = Arc::new(Mutex::new(Some(Recorder {
        digest: ChainDigest::new(),
        prefetch,
        events: 0,
        dates: HashMap::new(),
        strategy_errors: Vec::new(),
        rejected_orders: 0,
        sleeves: Vec::new(),
        fills: Vec::new(),
    })));
    let tapped = recorder.clone();
    broker
        .send(Tap(Box::new(move |_, env| {
            if let Some(r) = tapped.lock().ok().as_mut().and_then(|r| r.as_mut()) {
                r.observe(env);
            }
        })))
        .await
        .map_err(|e| BacktestError::Broker(e.to_string()))?;
    if let Some(observer) = observer {
        broker
            .send(Observe(observer))
            .await
            .map_err(|e| BacktestError::Broker(e.to_string()))?;
    }
    Ok(recorder)
}

/// One day's workflow under the id derived from its date; why it failed, if it did.
async fn run_day(engine: &Engine, date: NaiveDate) -> Result<Option<String>, BacktestError> {
    let correlation = CorrelationId::derived(&[b"backtest", date.to_string().as_bytes()]);
    let day = Day {
        correlation_id: Some(correlation),
        follow_retries: false,
        ..Day::new(date, RunMode::Backtest, crate::domain::Trigger::Backtest)
    };
    match engine.run_day(day).await {
        Ok(attempts) => Ok(attempts
            .last()
            .filter(|s| s.status != WorkflowStatus::Completed)
            .map(|s| s.failure.clone().unwrap_or_else(|| s.status.to_string()))),
        Err(DayError::Unknown(_)) => Ok(Some("workflow unknown to the broker".into())),
        Err(e) => Err(BacktestError::Broker(e.to_string())),
    }
}

/// The account at `date`'s close: cash plus positions at their closes.
fn equity_point(venue: &SimVenue, market: &Arc<MarketData>, date: NaiveDate) -> EquityPoint {
    let (cash, equity) = venue.equity_on(market, date);
    EquityPoint { date, equity, cash }
}
