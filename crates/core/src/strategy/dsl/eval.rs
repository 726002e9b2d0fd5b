//! Evaluation of a symphony as of one day: weights over symbols summing to 1, and the
//! indicator values that decided them.
//!
//! Semantics: several nodes in one vector share it equally; `weight-specified` weights
//! are normalised to sum to 1 and multiply what they wrap (nested weights multiply);
//! `filter` ranks candidates by the metric (top: highest first, bottom: lowest first,
//! ties by label) and weights the chosen K equally; `weight-inverse-volatility` weights
//! children ∝ 1/stdev-return(N).
//!
//! A candidate that is not a single asset (a group, a nested filter or branch) is scored
//! as Composer scores it: on the returns of what it *would have held each day*. For each
//! day d of the window the metric needs, the candidate's subtree is evaluated as of the
//! day before (its own `if`s and filters deciding on data up to that close), it earns
//! Σ wᵢ(d−1)·rᵢ(d) on day d, and the returns compound from 1 into a price series the
//! metric is taken on (on the trading days of the first symbol the candidate names; a
//! held symbol without a bar that day earns nothing). Nested candidates recurse. Days
//! on which the subtree cannot be
//! evaluated yet (too little history) are left out, the series starting after the last
//! of them; a series shorter than the metric needs is an error naming the candidate.
//! Each (node, day) is evaluated once per [`GroupMemo`]: a backtest that keeps one memo
//! pays one evaluation of each candidate per new day.

use std::collections::BTreeMap;

use foldhash::{HashMap, HashMapExt};
use std::sync::Arc;

use rust_decimal::prelude::ToPrimitive;

use chrono::NaiveDate;
use rust_decimal::prelude::FromPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use thiserror::Error;

use super::ast::{Condition, IndicatorCall, Node, Operand, Select, Symphony};
use super::parse::Span;
use crate::domain::Symbol;
use crate::indicators::{Indicator, IndicatorKind};
use crate::market::series::CountsUntil;
use crate::market::{BarSeries, MarketData};
use crate::strategy::largest_remainder;

/// A node's weights by symbol, in symbol order. A node holds a handful of symbols: a
/// sorted vector merges them without the map's node allocations, which showed in
/// every evaluation.
#[derive(Debug, Default)]
pub struct Allocation(Vec<(Symbol, Decimal)>);

impl Allocation {
    fn single(symbol: &Symbol) -> Self {
        Self(vec![(symbol.clone(), Decimal::ONE)])
    }

    /// Adds `from` × `scale`, symbol by symbol (a new symbol starts from zero, as a map
    /// entry's default would).
    fn add_scaled(&mut self, from: &Allocation, scale: Decimal) {
        for (symbol, w) in &from.0 {
            let add = *w * scale;
            match self.0.binary_search_by(|(s, _)| s.cmp(symbol)) {
                Ok(i) => self.0[i].1 += add,
                Err(i) => self.0.insert(i, (symbol.clone(), Decimal::ZERO + add)),
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&Symbol, &Decimal)> {
        self.0.iter().map(|(s, w)| (s, w))
    }
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{span}: {message}")]
pub struct EvalError {
    pub span: Span,
    pub message: String,
}

/// The result of evaluating one symphony.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Weights by symbol, 6 decimals, summing to exactly 1.
    pub weights: BTreeMap<Symbol, Decimal>,
    /// The values that decided, by label (`rsi(SPY,10)`), rounded to 6 decimals: both
    /// sides of each `if` taken, each inverse-volatility child's stdev, and a filter's
    /// chosen candidates with the first left out (a filter over 500 symbols reports 11
    /// values, not 500).
    pub indicators: BTreeMap<compact_str::CompactString, Decimal>,
}

/// What the candidates of a symphony held on earlier days, by node and day (what
/// scoring a candidate on its per-day series needs again and again). Valid for one
/// market data set; shared between threads.
#[derive(Debug, Default)]
pub struct GroupMemo {
    held: std::sync::Mutex<HashMap<HeldKey, Option<Arc<Allocation>>>>,
    /// The data's series hashed by symbol, with the address of the data they index: a
    /// filter looks up every candidate every day, and a hash finds one in a few
    /// nanoseconds where the ordered map compared names a dozen times.
    index: std::sync::OnceLock<(usize, HashMap<Symbol, Arc<BarSeries>>)>,
}

/// A candidate (its node's address, stable while the symphony lives) on a day.
type HeldKey = (usize, NaiveDate);

impl GroupMemo {
    /// The series of `data` by symbol, hashed; `None` when this memo indexed other data.
    fn index(&self, data: &MarketData) -> Option<&HashMap<Symbol, Arc<BarSeries>>> {
        let address = &data.series as *const _ as usize;
        let (indexed, index) = self.index.get_or_init(|| {
            let index = data
                .series
                .iter()
                .map(|(symbol, series)| (symbol.clone(), series.clone()))
                .collect();
            (address, index)
        });
        (*indexed == address && index.len() == data.series.len()).then_some(index)
    }

    /// Days remembered, over all candidates.
    pub fn len(&self) -> usize {
        self.held.lock().map_or(0, |m| m.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Evaluates `symphony` with bars dated up to and including `as_of`.
pub fn evaluate(
    symphony: &Symphony,
    data: &MarketData,
    as_of: NaiveDate,
) -> Result<Evaluation, EvalError> {
    evaluate_remembering(symphony, data, as_of, &GroupMemo::default())
}

/// [`evaluate`], remembering candidates' earlier holdings in `memo` (for evaluations of
/// many days on the same data).
pub fn evaluate_remembering(
    symphony: &Symphony,
    data: &MarketData,
    as_of: NaiveDate,
    memo: &GroupMemo,
) -> Result<Evaluation, EvalError> {
    let mut ev = Evaluator::new(data, as_of, memo);
    let allocation = ev.share(&symphony.body)?;
    let weights = largest_remainder(allocation.iter(), Decimal::ONE);
    let indicators = ev
        .used
        .into_iter()
        .map(|(k, v)| (k, to_decimal(v, 6)))
        .collect();
    Ok(Evaluation {
        weights,
        indicators,
    })
}

fn to_decimal(v: f64, dp: u32) -> Decimal {
    fast_places(v, dp).unwrap_or_else(|| exact_to_decimal(v, dp))
}

/// `from_f64` then rounding, as the evaluator has always converted (rust_decimal's
/// exact binary conversion is slow: it was a fifth of evaluating a strategy).
fn exact_to_decimal(v: f64, dp: u32) -> Decimal {
    Decimal::from_f64(v)
        .unwrap_or_default()
        .round_dp_with_strategy(dp, RoundingStrategy::MidpointNearestEven)
}

/// [`exact_to_decimal`]`(v, dp)` by float arithmetic where that provably gives the same
/// decimal, else `None`; for the two precisions the evaluator uses: 6 places (indicator
/// values, |v| < 10⁴) and 12 places (inverse-volatility shares, |v| < 1).
/// `from_f64` stays within 2.2·10⁻¹⁵·|v| of `v` (it keeps at least 15 significant
/// digits), and `v·10ᵈᵖ` errs by at most 2⁻⁵³·|v|·10ᵈᵖ: in units of the last place,
/// together under 2.5·10⁻⁵ for 6 places and 2.5·10⁻³ for 12. When `v·10ᵈᵖ` is further
/// than a guard four times that from an integer and from a midpoint, both round to the
/// same integer, and the converted value has digits beyond the last place, so the
/// rounding keeps scale `dp`. Zero is left to the exact path (it keeps a negative sign).
fn fast_places(v: f64, dp: u32) -> Option<Decimal> {
    let (bound, unit, guard) = match dp {
        6 => (1e4, 1e6, 1e-4),
        12 => (1.0, 1e12, 1e-2),
        _ => return None,
    };
    if !v.is_finite() || v.abs() >= bound {
        return None;
    }
    let scaled = v * unit;
    let frac = scaled - scaled.floor();
    if !(guard..=1.0 - guard).contains(&frac) || (frac - 0.5).abs() < guard {
        return None;
    }
    let r = scaled.round() as i64;
    (r != 0).then(|| Decimal::new(r, dp))
}

struct Evaluator<'a> {
    data: &'a MarketData,
    as_of: NaiveDate,
    memo: &'a GroupMemo,
    /// Bars up to the evaluation day, per series: one search per shared date axis (a
    /// search per symbol per day was a quarter of a 500-symbol backtest).
    counts: CountsUntil,
    /// Indicator values computed so far, by symbol (the address of the data's name for
    /// it: an integer hashes faster than a name) and indicator.
    cache: HashMap<(usize, Indicator), f64>,
    /// The values that decided: the signal's `indicators`.
    used: BTreeMap<compact_str::CompactString, f64>,
}

impl<'a> Evaluator<'a> {
    fn new(data: &'a MarketData, as_of: NaiveDate, memo: &'a GroupMemo) -> Self {
        Self {
            data,
            as_of,
            memo,
            counts: CountsUntil::new(as_of),
            cache: HashMap::new(),
            used: BTreeMap::new(),
        }
    }
}

fn fail<T>(span: Span, message: impl Into<String>) -> Result<T, EvalError> {
    Err(EvalError {
        span,
        message: message.into(),
    })
}

/// A name for a candidate: its symbol, its group name, or its form (borrowed: a
/// filter names every candidate it ranks, every day).
fn label(node: &Node) -> &str {
    match node {
        Node::Asset { symbol, .. } => symbol,
        Node::Group { name, .. } => name,
        Node::WeightEqual(_) => "weight-equal",
        Node::WeightSpecified(_) => "weight-specified",
        Node::InverseVolatility { .. } => "weight-inverse-volatility",
        Node::If { .. } => "if",
        Node::Filter { .. } => "filter",
    }
}

impl<'a> Evaluator<'a> {
    /// Closes of `symbol` up to the evaluation day.
    fn closes(&mut self, symbol: &str, span: Span) -> Result<&'a [f64], EvalError> {
        self.history(symbol, span)
            .map(|(_, series, n)| &series.closes()[..n])
    }

    /// `symbol` as the data names it (borrowed for the whole evaluation, so caches can
    /// key on it without copying), its series and its bars up to the evaluation day.
    fn history(
        &mut self,
        symbol: &str,
        span: Span,
    ) -> Result<(&'a str, &'a BarSeries, usize), EvalError> {
        let data = self.data;
        let found = match self.memo.index(data) {
            Some(index) => index.get_key_value(symbol),
            None => data.series.get_key_value(symbol),
        };
        let Some((name, series)) = found else {
            return fail(span, format!("no market data for symbol {symbol}"));
        };
        let n = self.counts.count(series);
        if n == 0 {
            return fail(
                span,
                format!("no bar for {symbol} on or before {}", self.as_of),
            );
        }
        Ok((name.as_str(), series, n))
    }

    fn indicator(
        &mut self,
        indicator: Indicator,
        symbol: &str,
        span: Span,
    ) -> Result<f64, EvalError> {
        let (name, series, n) = self.history(symbol, span)?;
        let key = (name.as_ptr() as usize, indicator);
        if let Some(v) = self.cache.get(&key) {
            return Ok(*v);
        }
        let closes = &series.closes()[..n];
        let value = if indicator.reads_returns() {
            indicator.compute_with_returns(closes, &series.returns_pct()[..n - 1])
        } else {
            indicator.compute(closes)
        }
        .or_else(|e| fail(span, format!("{}: {e}", indicator.label(symbol))))?;
        self.cache.insert(key, value);
        Ok(value)
    }

    /// Nodes sharing one slice equally.
    fn share(&mut self, nodes: &[Node]) -> Result<Allocation, EvalError> {
        let mut out = Allocation::default();
        let part = Decimal::ONE / Decimal::from(nodes.len());
        for node in nodes {
            let a = self.node(node)?;
            out.add_scaled(&a, part);
        }
        Ok(out)
    }

    fn node(&mut self, node: &Node) -> Result<Allocation, EvalError> {
        match node {
            Node::Asset { symbol, span } => {
                self.closes(symbol, *span)?;
                Ok(Allocation::single(symbol))
            }
            Node::Group { children, .. } | Node::WeightEqual(children) => self.share(children),
            Node::WeightSpecified(pairs) => {
                let total: Decimal = pairs.iter().map(|(w, _)| *w).sum();
                let mut out = Allocation::default();
                for (w, child) in pairs {
                    if w.is_zero() {
                        continue;
                    }
                    let a = self.node(child)?;
                    out.add_scaled(&a, *w / total);
                }
                Ok(out)
            }
            Node::If {
                condition,
                then,
                otherwise,
            } => {
                if self.condition(condition)? {
                    self.share(then)
                } else {
                    self.share(otherwise)
                }
            }
            Node::Filter {
                metric,
                select,
                children,
                span,
            } => {
                // An asset's allocation is made only if it is chosen (most are not).
                type Scored<'n> = (f64, &'n str, usize, Option<Allocation>);
                let mut scored: Vec<Scored> = Vec::with_capacity(children.len());
                for (i, child) in children.iter().enumerate() {
                    let (allocation, value) = match child {
                        // One lookup of the symbol (the metric's fails as the asset's would).
                        Node::Asset { symbol, span } => {
                            (None, self.indicator(*metric, symbol, *span)?)
                        }
                        _ => (
                            Some(self.node(child)?),
                            self.metric_of(child, *metric, *span)?,
                        ),
                    };
                    scored.push((value, label(child), i, allocation));
                }
                let (k, descending) = match select {
                    Select::Top(k) => (*k, true),
                    Select::Bottom(k) => (*k, false),
                };
                let order = |a: &Scored, b: &Scored| {
                    let by_value = if descending {
                        b.0.total_cmp(&a.0)
                    } else {
                        a.0.total_cmp(&b.0)
                    };
                    by_value
                        .then_with(|| a.1.cmp(b.1))
                        .then_with(|| a.2.cmp(&b.2))
                };
                // The first k + 1 in order (a total order: the position breaks ties),
                // without sorting the hundreds behind them.
                let kept = k.saturating_add(1);
                if kept < scored.len() {
                    scored.select_nth_unstable_by(kept - 1, order);
                    scored.truncate(kept);
                }
                scored.sort_unstable_by(order);
                // The chosen and the first left out: what decided the cut.
                for (value, name, _, _) in &scored {
                    self.used.insert(metric.label(name), *value);
                }
                scored.truncate(k);
                let part = Decimal::ONE / Decimal::from(scored.len());
                let mut out = Allocation::default();
                for (_, _, i, allocation) in scored {
                    let allocation = match allocation {
                        Some(a) => a,
                        None => self.node(&children[i])?,
                    };
                    out.add_scaled(&allocation, part);
                }
                Ok(out)
            }
            Node::InverseVolatility {
                window,
                children,
                span,
            } => {
                let metric = Indicator::new(IndicatorKind::StdevReturn, *window);
                let mut parts = Vec::with_capacity(children.len());
                for child in children {
                    let allocation = self.node(child)?;
                    let vol = self.metric_of(child, metric, *span)?;
                    self.used.insert(metric.label(label(child)), vol);
                    if vol <= 0.0 {
                        return fail(*span, format!("{} has zero volatility over {window} days: inverse-volatility weight is undefined", label(child)));
                    }
                    parts.push((1.0 / vol, allocation));
                }
                let total: f64 = parts.iter().map(|(inv, _)| inv).sum();
                let mut out = Allocation::default();
                for (inv, a) in &parts {
                    out.add_scaled(a, to_decimal(inv / total, 12));
                }
                Ok(out)
            }
        }
    }

    fn operand(&mut self, operand: &Operand) -> Result<f64, EvalError> {
        match operand {
            Operand::Number(v) => Ok(*v),
            Operand::Call(IndicatorCall {
                indicator,
                symbol,
                span,
            }) => {
                let value = self.indicator(*indicator, symbol, *span)?;
                self.used.insert(indicator.label(symbol), value);
                Ok(value)
            }
        }
    }

    fn condition(&mut self, c: &Condition) -> Result<bool, EvalError> {
        let left = self.operand(&c.left)?;
        let right = self.operand(&c.right)?;
        Ok(c.comparison.holds(left, right))
    }

    /// The metric of a candidate: of its symbol for an asset, else of the series of
    /// what it held each day (see the module's doc).
    fn metric_of(&mut self, node: &Node, metric: Indicator, span: Span) -> Result<f64, EvalError> {
        if let Node::Asset { symbol, span } = node {
            return self.indicator(metric, symbol, *span);
        }
        let name = label(node);
        let series = self.held_series(node, metric, name, span)?;
        metric
            .compute(&series)
            .or_else(|e| fail(span, format!("{}: {e}", metric.label(name))))
    }

    /// Value series (from 1) of what `node` held each day over the last bars `metric`
    /// looks at, on the trading days of the first symbol it names.
    fn held_series(
        &mut self,
        node: &Node,
        metric: Indicator,
        name: &str,
        span: Span,
    ) -> Result<Vec<f64>, EvalError> {
        let Some(anchor) = first_symbol(node) else {
            return fail(span, format!("{name} names no symbol"));
        };
        let Some(series) = self.data.get(anchor) else {
            return fail(span, format!("no market data for symbol {anchor}"));
        };
        let upto = self.counts.count(series);
        let dates = &series.dates()[upto.saturating_sub(metric.lookback())..upto];
        let mut values = vec![1.0];
        for pair in dates.windows(2) {
            let (before, day) = (pair[0], pair[1]);
            let Some(held) = self.held_on(node, before) else {
                // Not evaluable yet that day: the series starts after it.
                values.clear();
                values.push(1.0);
                continue;
            };
            let mut r = 0.0;
            for (symbol, w) in held.iter() {
                let (Some(then), Some(now)) =
                    (self.close_on(symbol, before), self.close_on(symbol, day))
                else {
                    return fail(
                        span,
                        format!("{name}: no close of {symbol} on {before} or {day}"),
                    );
                };
                r += w.to_f64().unwrap_or(0.0) * (now / then - 1.0);
            }
            let last = values[values.len() - 1];
            values.push(last * (1.0 + r));
        }
        let needed = metric.min_history();
        if values.len() < needed {
            return fail(
                span,
                format!(
                    "{}: {name} can be evaluated on {} days of the window, {needed} needed",
                    metric.label(name),
                    values.len()
                ),
            );
        }
        Ok(values)
    }

    /// What `node` held as of `day` (evaluated then, once per memo), or `None` when it
    /// could not be evaluated that day.
    fn held_on(&mut self, node: &Node, day: NaiveDate) -> Option<Arc<Allocation>> {
        let key = (node as *const Node as usize, day);
        if let Some(found) = self
            .memo
            .held
            .lock()
            .ok()
            .and_then(|m| m.get(&key).cloned())
        {
            return found;
        }
        let mut then = Evaluator::new(self.data, day, self.memo);
        let held = then.node(node).ok().map(Arc::new);
        if let Ok(mut m) = self.memo.held.lock() {
            m.insert(key, held.clone());
        }
        held
    }

    /// The last close of `symbol` on or before `day` (a symbol without a bar that day
    /// earns nothing on it); `None` before its first bar.
    fn close_on(&self, symbol: &str, day: NaiveDate) -> Option<f64> {
        let series = self.data.get(symbol)?;
        let n = series.count_until(day);
        (n > 0).then(|| series.closes()[n - 1])
    }
}

/// The first symbol a subtree names (an asset, or an `if`'s indicator call): its
/// trading days are the days a candidate's series is built on.
fn first_symbol(node: &Node) -> Option<&str> {
    match node {
        Node::Asset { symbol, .. } => Some(symbol),
        Node::Group { children, .. }
        | Node::WeightEqual(children)
        | Node::InverseVolatility { children, .. }
        | Node::Filter { children, .. } => children.iter().find_map(first_symbol),
        Node::WeightSpecified(pairs) => pairs.iter().find_map(|(_, n)| first_symbol(n)),
        Node::If {
            condition,
            then,
            otherwise,
        } => [&condition.left, &condition.right]
            .into_iter()
            .find_map(|o| match o {
                Operand::Call(c) => Some(c.symbol.as_str()),
                Operand::Number(_) => None,
            })
            .or_else(|| then.iter().chain(otherwise).find_map(first_symbol)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Converts `total` values drawn by `draw(i, rng)` and then `fixed` at `dp` places
    /// both ways (the fast path must agree with the exact one wherever it answers);
    /// returns how many of the drawn values the fast path served.
    fn fast_agrees(
        dp: u32,
        seed: u64,
        total: usize,
        mut draw: impl FnMut(usize, &mut StdRng) -> f64,
        fixed: &[f64],
    ) -> usize {
        let agrees = |v: f64| match fast_places(v, dp) {
            Some(fast) => {
                let exact = exact_to_decimal(v, dp);
                assert_eq!(fast.to_string(), exact.to_string(), "{v:e} at {dp} places");
                true
            }
            None => false,
        };
        let mut rng = StdRng::seed_from_u64(seed);
        let served = (0..total).filter(|i| agrees(draw(*i, &mut rng))).count();
        for v in fixed {
            agrees(*v);
        }
        served
    }

    /// Merging scaled allocations gives what accumulating them in a map gave: the same
    /// symbols in the same order, the same decimals (scale included).
    #[test]
    fn allocations_merge_as_a_map_accumulates() {
        let mut rng = StdRng::seed_from_u64(5);
        let symbols = ["AAPL", "BAC", "IBM", "IWM", "SPY", "TLT"];
        for _ in 0..2_000 {
            let mut merged = Allocation::default();
            let mut map: BTreeMap<Symbol, Decimal> = BTreeMap::new();
            for _ in 0..rng.random_range(1..5) {
                let mut part = Allocation::default();
                for _ in 0..rng.random_range(1..4) {
                    let symbol = Symbol::from(symbols[rng.random_range(0..symbols.len())]);
                    let w = Decimal::new(rng.random_range(1..1_000_000), rng.random_range(0..9));
                    part.add_scaled(&Allocation(vec![(symbol, w)]), Decimal::ONE);
                }
                let scale = Decimal::ONE / Decimal::from(rng.random_range(1..7));
                merged.add_scaled(&part, scale);
                for (symbol, w) in part.iter() {
                    *map.entry(symbol.clone()).or_default() += *w * scale;
                }
            }
            let merged: Vec<(Symbol, String)> = merged
                .iter()
                .map(|(s, w)| (s.clone(), w.to_string()))
                .collect();
            let expected: Vec<(Symbol, String)> = map
                .iter()
                .map(|(s, w)| (s.clone(), w.to_string()))
                .collect();
            assert_eq!(merged, expected);
        }
    }

    #[test]
    fn the_fast_path_gives_the_exact_conversions_decimal() {
        let total = 400_000;
        let fast = fast_agrees(
            6,
            11,
            total,
            |i, rng| match i % 4 {
                // Any magnitude the fast path takes, both signs.
                0 => (rng.random::<f64>() - 0.5) * 2e4 * 10f64.powi(-rng.random_range(0..12)),
                // Few decimals (exact and near ties at the sixth place).
                1 => rng.random_range(0..20_000_000u32) as f64 / 1e7 - 1.0,
                2 => rng.random_range(0..2_000_000u32) as f64 / 2e6 + 0.5e-6,
                // Indicator-like values: RSI, returns, prices.
                _ => rng.random::<f64>() * 100.0,
            },
            &[
                0.5,
                0.1,
                0.3,
                1e-7,
                -1e-7,
                123.456789,
                9999.9999995,
                0.0000005,
                2.5e-6,
            ],
        );
        assert!(fast > total / 2, "the fast path served {fast} of {total}");
    }

    #[test]
    fn twelve_places_fast_path_gives_the_exact_conversions_decimal() {
        let total = 400_000;
        let fast = fast_agrees(
            12,
            12,
            total,
            |i, rng| match i % 4 {
                // Inverse-volatility shares: 1/a over 1/a + 1/b.
                0 => {
                    let (a, b) = (rng.random_range(0.01..5.0), rng.random_range(0.01..5.0));
                    (1.0 / a) / (1.0 / a + 1.0 / b)
                }
                1 => rng.random::<f64>(),
                // Exact and near-tie values at the twelfth place.
                2 => rng.random_range(0..1_000_000_000_000u64) as f64 / 1e12,
                _ => (rng.random_range(0..1_000_000_000_000u64) as f64 + 0.5) / 1e12,
            },
            &[
                0.5,
                0.1,
                1.0 / 3.0,
                2.0 / 3.0,
                1e-13,
                5e-13,
                0.999_999_999_999_5,
            ],
        );
        // Half the values are ties or exact at the twelfth place: those take the exact path.
        assert!(
            fast > total * 4 / 10,
            "the fast path served {fast} of {total}"
        );
    }
}
