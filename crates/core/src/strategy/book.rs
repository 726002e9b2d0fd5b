//! The strategy book: the configured symphony files, parsed once, with the market data
//! they need, evaluated together as of a day into one signal.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use thiserror::Error;

use super::consolidate;
use super::dsl::ast::{Node, Operand};
use super::dsl::{evaluate_remembering, GroupMemo, Span, Symphony};
use super::settings::{OnStrategyError, StrategyConfig};
use super::slices::{drift, Decision, Slice, SliceLedger, TradingRule};
use crate::domain::Symbol;
use crate::events::{SignalGenerated, SliceTrading, StrategyAllocation};
use crate::market::snapshot::SnapshotCursor;
use crate::market::{BarSource, DataError, MarketData, NoBars};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum StrategyError {
    #[error("{file}: {message}")]
    Read { file: String, message: String },
    #[error("{file}:{span}: {message}")]
    Located {
        file: String,
        span: Span,
        message: String,
    },
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("strategy {name} failed: {message}")]
    Failed { name: String, message: String },
    #[error("--as-of {as_of}: {why}")]
    AsOf { as_of: NaiveDate, why: String },
    #[error("{symbol} has {available} bars; every branch of the strategies needs {needed}")]
    ShortHistory {
        symbol: Symbol,
        needed: usize,
        available: usize,
    },
}

#[derive(Clone, Debug)]
pub struct LoadedSymphony {
    pub path: PathBuf,
    pub weight: Decimal,
    pub symphony: Symphony,
    /// When its slice trades (the symphony's header).
    pub rule: TradingRule,
}

#[derive(Clone, Debug)]
pub struct StrategyBook {
    pub files: Vec<LoadedSymphony>,
    pub data: MarketData,
    /// Where the bars came from (and more come from: held symbols the files do not name).
    pub source: Arc<dyn BarSource>,
    pub on_error: OnStrategyError,
    /// When the account sets the files' shares back to their weights (`[strategy]
    /// rebalance`, `rebalance_threshold`).
    pub account_rule: TradingRule,
    /// The first day slices are followed from (`[strategy] slices_from`).
    pub slices_from: Option<NaiveDate>,
    /// Candidates' holdings on earlier days, on the book's own data: a backtest scores
    /// each group once per new day.
    memo: std::sync::Arc<GroupMemo>,
    /// Each file's slice after every evaluated day (books that keep slices).
    slices: std::sync::Arc<std::sync::Mutex<SliceLedger>>,
    /// The market snapshot id of the last evaluated day, ready for the next.
    snapshot: std::sync::Arc<std::sync::Mutex<Option<SnapshotCursor>>>,
}

/// Every symbol a symphony references, with where (first occurrence).
pub fn referenced_symbols(symphony: &Symphony) -> BTreeMap<Symbol, Span> {
    fn walk(node: &Node, out: &mut BTreeMap<Symbol, Span>) {
        match node {
            Node::Asset { symbol, span } => {
                out.entry(symbol.clone()).or_insert(*span);
            }
            Node::If { condition, .. } => {
                for operand in [&condition.left, &condition.right] {
                    if let Operand::Call(call) = operand {
                        out.entry(call.symbol.clone()).or_insert(call.span);
                    }
                }
            }
            _ => {}
        }
        for child in node.children() {
            walk(child, out);
        }
    }
    let mut out = BTreeMap::new();
    for node in &symphony.body {
        walk(node, &mut out);
    }
    out
}

/// Bars of history each symbol needs before every indicator on every branch of
/// `symphony` can be computed: an `if`'s calls, a `filter`'s metric and an inverse
/// volatility weight over each symbol beneath them. A backtest's warm-up waits for all
/// of them, so that a branch taken later does not fail for want of history.
pub fn history_needed(symphony: &Symphony) -> BTreeMap<Symbol, usize> {
    fn need(out: &mut BTreeMap<Symbol, usize>, symbol: &Symbol, bars: usize) {
        let n = out.entry(symbol.clone()).or_default();
        *n = (*n).max(bars);
    }
    /// Every symbol beneath `node` needs `bars`.
    fn beneath(node: &Node, out: &mut BTreeMap<Symbol, usize>, bars: usize) {
        let mut symbols = BTreeMap::new();
        for child in node.children() {
            walk(child, &mut symbols);
        }
        for symbol in symbols.keys() {
            need(out, symbol, bars);
        }
    }
    fn walk(node: &Node, out: &mut BTreeMap<Symbol, usize>) {
        match node {
            Node::Asset { symbol, .. } => need(out, symbol, 1),
            Node::InverseVolatility { window, .. } => {
                let stdev = crate::indicators::Indicator::new(
                    crate::indicators::IndicatorKind::StdevReturn,
                    *window,
                );
                beneath(node, out, stdev.min_history());
            }
            Node::Filter { metric, .. } => beneath(node, out, metric.min_history()),
            Node::If { condition, .. } => {
                for operand in [&condition.left, &condition.right] {
                    if let Operand::Call(call) = operand {
                        need(out, &call.symbol, call.indicator.min_history());
                    }
                }
            }
            Node::Group { .. } | Node::WeightEqual(_) | Node::WeightSpecified(_) => {}
        }
        for child in node.children() {
            walk(child, out);
        }
    }
    let mut out = BTreeMap::new();
    for node in &symphony.body {
        walk(node, &mut out);
    }
    out
}

impl StrategyBook {
    /// A book with no files: every signal is all cash.
    pub fn empty() -> Self {
        Self {
            files: Vec::new(),
            data: MarketData::default(),
            source: Arc::new(NoBars),
            on_error: OnStrategyError::Fail,
            account_rule: TradingRule::DAILY,
            slices_from: None,
            memo: Default::default(),
            slices: Default::default(),
            snapshot: Default::default(),
        }
    }

    /// The book of parsed `files` with the bars they need (`data`, read from `source`),
    /// under the `[strategy]` section's rules.
    pub fn new(
        config: &StrategyConfig,
        files: Vec<LoadedSymphony>,
        data: MarketData,
        source: Arc<dyn BarSource>,
    ) -> Self {
        Self {
            files,
            data,
            source,
            on_error: config.on_strategy_error,
            account_rule: TradingRule::for_account(config.rebalance, config.rebalance_threshold),
            slices_from: config.slices_from,
            memo: Default::default(),
            slices: Default::default(),
            snapshot: Default::default(),
        }
    }

    /// Drops every bar after `last` (a backtest ending before its data: what it never
    /// reads is not held). Signals on days up to `last` are unchanged.
    pub fn keep_until(&mut self, last: NaiveDate) {
        for series in self.data.series.values_mut() {
            std::sync::Arc::make_mut(series).keep_until(last);
        }
    }

    /// The book's market data plus the series of `held` symbols it does not reference
    /// (positions a previous configuration bought): the venue must price them to sell
    /// them. A held symbol the data source lacks is an error naming it.
    pub fn market_with_held(&self, held: &[Symbol]) -> Result<MarketData, DataError> {
        let mut market = self.data.clone();
        for symbol in held {
            if !market.series.contains_key(symbol) {
                let series = self.source.load(symbol)?;
                market
                    .series
                    .insert(symbol.clone(), std::sync::Arc::new(series));
            }
        }
        Ok(market)
    }

    /// The id of the bars of every symbol the book uses, up to `as_of` (see
    /// [`crate::market::snapshot`]): each evaluated day adds its own bars to the last.
    pub fn market_snapshot_id(&self, as_of: NaiveDate) -> String {
        let mut cursor = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        SnapshotCursor::id(&mut cursor, &self.data, as_of)
    }

    /// Evaluates every file as of `as_of` and consolidates. A file that fails fails the
    /// whole signal (`on_strategy_error = "fail"`, the default), or with `"cash"` gives
    /// its slice to cash with the reason in its allocation.
    pub fn evaluate(&self, as_of: NaiveDate) -> Result<SignalGenerated, StrategyError> {
        self.evaluate_on(&self.data, as_of, &self.memo)
    }

    /// [`StrategyBook::evaluate`] on other market data (live bars fetched today).
    pub fn evaluate_with(
        &self,
        data: &MarketData,
        as_of: NaiveDate,
    ) -> Result<SignalGenerated, StrategyError> {
        self.evaluate_on(data, as_of, &GroupMemo::default())
    }

    fn evaluate_on(
        &self,
        data: &MarketData,
        as_of: NaiveDate,
        memo: &GroupMemo,
    ) -> Result<SignalGenerated, StrategyError> {
        let mut allocations = Vec::with_capacity(self.files.len());
        for f in &self.files {
            let name = f.symphony.name.clone();
            match evaluate_remembering(&f.symphony, data, as_of, memo) {
                Ok(e) => allocations.push(StrategyAllocation {
                    name,
                    file_weight: f.weight,
                    weights: e.weights,
                    indicators: e.indicators,
                    error: None,
                    slice: None,
                }),
                Err(e) => {
                    let message = format!("{}:{}", f.path.display(), e);
                    if self.on_error == OnStrategyError::Fail {
                        return Err(StrategyError::Failed { name, message });
                    }
                    allocations.push(StrategyAllocation {
                        name,
                        file_weight: f.weight,
                        weights: BTreeMap::new(),
                        indicators: BTreeMap::new(),
                        error: Some(message),
                        slice: None,
                    });
                }
            }
        }
        if self.keeps_slices() {
            self.trade_slices(&mut allocations, data, as_of);
        }
        Ok(consolidate(
            as_of,
            allocations,
            self.market_snapshot_id(as_of),
        ))
    }

    /// A book keeps a slice per file (see `slices`) when some file trades other than
    /// daily, or several files' shares drift between the account's rebalances. A book
    /// of daily files merged daily has no history to keep: each day's targets are that
    /// day's evaluations at the configured weights.
    pub fn keeps_slices(&self) -> bool {
        self.files.iter().any(|f| !f.rule.is_daily())
            || (self.files.len() > 1 && !self.account_rule.is_daily())
    }

    /// Decides for each file whether its slice trades today, from the slices after the
    /// last evaluated day before `as_of` drifted to its closes, and records the slices
    /// after today's trades.
    fn trade_slices(
        &self,
        allocations: &mut [StrategyAllocation],
        data: &MarketData,
        as_of: NaiveDate,
    ) {
        let mut ledger = self.slices.lock().unwrap_or_else(|p| p.into_inner());
        let drifted = ledger.before(as_of).map(|(day, slices)| {
            let close = |symbol: &Symbol, on: NaiveDate| {
                data.close_on_or_before(symbol, on)
                    .map(|(_, c)| c)
                    .filter(|c| !c.is_zero())
            };
            drift(slices, |symbol| {
                match (close(symbol, as_of), close(symbol, day)) {
                    (Some(now), Some(then)) => now / then,
                    _ => Decimal::ONE,
                }
            })
        });
        let total_weight: Decimal = self.files.iter().map(|f| f.weight).sum();
        let configured: Vec<Decimal> = self
            .files
            .iter()
            .map(|f| {
                if total_weight.is_zero() {
                    Decimal::ZERO
                } else {
                    f.weight / total_weight
                }
            })
            .collect();
        let previous = crate::calendar::UsEquityCalendar::get().previous_session(as_of);
        // The account's rule first: are the shares set back to the weights today?
        let drifted_shares: Option<Vec<Decimal>> = drifted
            .as_ref()
            .map(|d| d.iter().map(|s| s.share).collect());
        let reset = match &drifted_shares {
            None => true,
            Some(shares) => {
                self.account_rule
                    .resets_shares(shares, &configured, as_of, previous)
                    .trades
            }
        };
        let mut after = Vec::with_capacity(allocations.len());
        for (i, (alloc, file)) in allocations.iter_mut().zip(&self.files).enumerate() {
            let held = drifted.as_ref().and_then(|d| d.get(i));
            let share = match (reset, held) {
                (false, Some(h)) => h.share,
                _ => configured[i],
            };
            let decision = if alloc.error.is_some() {
                Decision {
                    trades: true,
                    reason: "it failed to evaluate: its slice goes to cash".into(),
                }
            } else {
                file.rule
                    .decide(held.map(|h| &h.weights), &alloc.weights, as_of, previous)
            };
            let held_weights = held.map(|h| h.weights.clone()).unwrap_or_default();
            let weights = match (decision.trades, alloc.error.is_some()) {
                (true, false) => alloc.weights.clone(),
                (true, true) => BTreeMap::new(),
                (false, _) => held_weights.clone(),
            };
            after.push(Slice { share, weights });
            alloc.slice = Some(SliceTrading {
                trades: decision.trades,
                reason: decision.reason,
                share,
                held: held_weights,
            });
        }
        ledger.record(as_of, after);
    }

    /// Takes up the slices a journaled signal left (a restarted `run`): they stand as
    /// its day's trades left them. A signal of other files (or none kept) is ignored.
    pub fn seed_slices(&self, signal: &SignalGenerated) {
        if !self.keeps_slices() || signal.strategies.len() != self.files.len() {
            return;
        }
        let slices: Option<Vec<Slice>> = signal
            .strategies
            .iter()
            .zip(&self.files)
            .map(|(s, f)| {
                let t = s.slice.as_ref().filter(|_| s.name == f.symphony.name)?;
                let weights = match (t.trades, s.error.is_some()) {
                    (false, _) => t.held.clone(),
                    (true, false) => s.weights.clone(),
                    (true, true) => BTreeMap::new(),
                };
                Some(Slice {
                    share: t.share,
                    weights,
                })
            })
            .collect();
        if let Some(slices) = slices {
            self.slices
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .record(signal.as_of, slices);
        }
    }

    /// Evaluates the sessions of the book's data before `as_of`, from `slices_from` (or
    /// the first on which every file evaluates), so that `signals`, a restarted `run`
    /// and a backtest starting on `as_of` find the slices a continuous run from that day
    /// would have left. Nothing for a book without slices, or with slices already
    /// followed up to the session before `as_of`.
    pub fn replay_slices_before(&self, as_of: NaiveDate) {
        if !self.keeps_slices() {
            return;
        }
        let from = self.slices_from.unwrap_or(NaiveDate::MIN);
        let dates: Vec<NaiveDate> = self
            .common_dates()
            .into_iter()
            .filter(|d| *d >= from && *d < as_of)
            .collect();
        if let Ok(first) = self.first_evaluable(&dates) {
            for day in &dates[first..] {
                let _ = self.evaluate(*day);
            }
        }
    }

    /// Whether `as_of` is a day the book has data for: a US equity session on or before
    /// the last bar of every symbol it uses. Anything else would label older data with a
    /// newer date (or trade on a day the market is shut).
    pub fn check_as_of(&self, as_of: NaiveDate) -> Result<(), StrategyError> {
        let bad = |why: String| Err(StrategyError::AsOf { as_of, why });
        let calendar = crate::calendar::UsEquityCalendar::get();
        if let Err(unknown) = calendar.check_known(as_of) {
            return bad(unknown.to_string());
        }
        if !calendar.is_session(as_of) {
            return bad(format!(
                "not a US equity trading session ({})",
                crate::calendar::closed_because(as_of)
            ));
        }
        // The data's common span: from the latest first bar to the earliest last one.
        let bounds =
            self.data.series.iter().filter_map(|(symbol, s)| {
                Some(((s.first_date()?, symbol), (s.last_date()?, symbol)))
            });
        let (starts, ends): (Vec<_>, Vec<_>) = bounds.unzip();
        if let Some((last, symbol)) = ends.into_iter().min().filter(|(l, _)| as_of > *l) {
            return bad(format!(
                "past the end of the market data ({symbol} ends on {last})"
            ));
        }
        if let Some((first, symbol)) = starts.into_iter().max().filter(|(f, _)| as_of < *f) {
            return bad(format!(
                "before the start of the market data ({symbol} starts on {first})"
            ));
        }
        Ok(())
    }

    /// The index of the first of `dates` on which every file evaluates and every
    /// symbol has the history every branch needs ([`history_needed`]): a backtest's
    /// warm-up ends there. When no day qualifies, the last day's error.
    pub fn first_evaluable(&self, dates: &[NaiveDate]) -> Result<usize, StrategyError> {
        let mut needed: BTreeMap<Symbol, usize> = BTreeMap::new();
        for f in &self.files {
            for (symbol, bars) in history_needed(&f.symphony) {
                let n = needed.entry(symbol).or_default();
                *n = (*n).max(bars);
            }
        }
        let ready = |day: NaiveDate| {
            needed.iter().all(|(symbol, bars)| {
                self.data
                    .get(symbol)
                    .is_some_and(|s| s.count_until(day) >= *bars)
            })
        };
        let start = dates.iter().position(|d| ready(*d)).unwrap_or(dates.len());
        let mut last_error = None;
        if start == dates.len() {
            if let Some(last) = dates.last() {
                last_error = needed.iter().find_map(|(symbol, bars)| {
                    let available = self.data.get(symbol).map_or(0, |s| s.count_until(*last));
                    (available < *bars).then(|| StrategyError::ShortHistory {
                        symbol: symbol.clone(),
                        needed: *bars,
                        available,
                    })
                });
            }
        }
        for (i, day) in dates.iter().enumerate().skip(start) {
            let failed = self.files.iter().find_map(|f| {
                evaluate_remembering(&f.symphony, &self.data, *day, &self.memo)
                    .err()
                    .map(|e| StrategyError::Failed {
                        name: f.symphony.name.clone(),
                        message: format!("{}:{e}", f.path.display()),
                    })
            });
            match failed {
                None => return Ok(i),
                Some(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or(StrategyError::Failed {
            name: String::new(),
            message: "no day to evaluate".into(),
        }))
    }

    /// Candidate holdings remembered so far (node and day): grows by at most one per
    /// candidate per new day in a backtest.
    pub fn remembered_days(&self) -> usize {
        self.memo.len()
    }

    /// Every symbol the book's files reference.
    pub fn symbols(&self) -> Vec<Symbol> {
        let mut all: Vec<Symbol> = self
            .files
            .iter()
            .flat_map(|f| referenced_symbols(&f.symphony).into_keys())
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// Dates of `anchor`'s bars on which every symbol the book uses has at least
    /// `min_bars` bars up to that date (symbols with gaps use their latest bar).
    pub fn warm_dates(&self, anchor: &str, min_bars: usize) -> Vec<NaiveDate> {
        let Some(anchor) = self.data.get(anchor) else {
            return Vec::new();
        };
        anchor
            .dates()
            .iter()
            .copied()
            .filter(|d| {
                self.data
                    .series
                    .values()
                    .all(|s| s.count_until(*d) >= min_bars)
            })
            .collect()
    }

    /// Dates on which every symbol the book uses has a bar, in order.
    pub fn common_dates(&self) -> Vec<NaiveDate> {
        self.data.common_dates()
    }
}
