//! What `report.html` shows, computed from a run's record: the curve against a
//! benchmark, drawdowns, calendar returns, rolling Sharpe, exposure, allocation over
//! time, per-file attribution and the statistics `summary.json` does not hold. Pure:
//! no files, no HTML (that is `html.rs`).
//!
//! Figures that `summary.json` holds are taken from it, never recomputed, so that the
//! report and the summary cannot disagree.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use super::FillTiming;
use super::{BacktestRecord, Summary};

use crate::domain::{Side, Symbol};
use crate::market::{BarSeries, BarSource, DataError, DayCloses, MarketData};

/// Benchmarks tried in order when none is named: the first the data has is used.
pub const DEFAULT_BENCHMARKS: [&str; 5] = ["SPY", "VOO", "IVV", "VTI", "QQQ"];

/// The annual risk-free rate the Sharpe and Sortino ratios subtract (stated in the
/// report): 0, as `summary.json`'s Sharpe has always been.
pub const RISK_FREE_RATE: f64 = 0.0;

/// Sessions in the rolling Sharpe window (about six months).
pub const ROLLING_WINDOW: usize = 126;

/// Symbols drawn in the allocation chart; the rest are summed as "other".
const ALLOCATION_LAYERS: usize = 10;

/// How many of the largest drawdowns are listed.
const DRAWDOWNS_LISTED: usize = 5;

/// A buy-and-hold benchmark on the same data.
pub struct Benchmark<'a> {
    pub symbol: Symbol,
    pub series: &'a BarSeries,
}

/// The benchmark's series: `named`, or the first of [`DEFAULT_BENCHMARKS`] that the
/// data has (none: `Ok(None)`). A named symbol without data, or a benchmark file that
/// does not read, is an error naming it, never a silent report without one.
pub fn find_benchmark(
    source: &dyn BarSource,
    market: &MarketData,
    named: Option<&str>,
) -> Result<Option<(Symbol, std::sync::Arc<BarSeries>)>, DataError> {
    let load = |symbol: &str| match market.get(symbol) {
        Some(series) => Ok((Symbol::from(symbol), series.clone())),
        None => source
            .load(symbol)
            .map(|series| (Symbol::from(symbol), std::sync::Arc::new(series))),
    };
    if let Some(symbol) = named {
        return load(symbol).map(Some);
    }
    for symbol in DEFAULT_BENCHMARKS {
        match load(symbol) {
            Ok(found) => return Ok(Some(found)),
            Err(DataError::UnknownSymbol { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// One fall from a peak, to its trough, and back (if it came back).
#[derive(Clone, Debug, PartialEq)]
pub struct Drawdown {
    pub peak: NaiveDate,
    pub trough: NaiveDate,
    pub recovered: Option<NaiveDate>,
    /// Fraction fallen from the peak at the trough.
    pub depth: f64,
    /// Calendar days from the peak to the recovery (or the last day).
    pub days: i64,
}

/// One strategy file's share of the result, at its target weights before costs.
#[derive(Clone, Debug, PartialEq)]
pub struct Attribution {
    pub name: String,
    /// Its share of the portfolio (configured weights normalised).
    pub file_weight: Decimal,
    /// Σ over days of the file's weighted contribution to the day's return.
    pub contribution: f64,
    /// The file's own return, had it been the whole portfolio.
    pub standalone_return: f64,
}

/// Statistics beyond `summary.json`'s.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Statistics {
    pub sortino: f64,
    pub calmar: f64,
    /// Longest time from a peak to its recovery (or to the last day), calendar days.
    pub max_drawdown_days: i64,
    /// Rebalances (days with fills) followed by a gain up to the next one.
    pub rebalance_win_rate: Option<f64>,
    pub rebalances: usize,
    pub fees: Decimal,
    /// What fills cost beyond the market's price (close or open, by the fill model).
    pub slippage: Decimal,
    pub beta: Option<f64>,
    pub correlation: Option<f64>,
    pub benchmark_total_return: Option<f64>,
    pub benchmark_cagr: Option<f64>,
}

pub struct Tearsheet {
    pub dates: Vec<NaiveDate>,
    pub equity: Vec<f64>,
    /// The benchmark bought with the initial equity at the first day's close.
    pub benchmark: Option<(Symbol, Vec<f64>)>,
    /// Fraction below the running peak (≤ 0).
    pub drawdown: Vec<f64>,
    /// `(year, month)` → return.
    pub monthly: BTreeMap<(i32, u32), f64>,
    pub yearly: BTreeMap<i32, f64>,
    /// Annualised Sharpe of the last [`ROLLING_WINDOW`] sessions (none before).
    pub rolling_sharpe: Vec<Option<f64>>,
    /// Invested fraction of equity at each close.
    pub exposure: Vec<f64>,
    /// Layers of the allocation chart: name and weight per day.
    pub allocation: Vec<(String, Vec<f64>)>,
    pub attribution: Vec<Attribution>,
    pub drawdowns: Vec<Drawdown>,
    pub statistics: Statistics,
}

fn f(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(0.0)
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Daily returns of `values`, the first from `start`.
fn returns(start: f64, values: &[f64]) -> Vec<f64> {
    let mut prev = start;
    values
        .iter()
        .map(|v| {
            let r = if prev > 0.0 { v / prev - 1.0 } else { 0.0 };
            prev = *v;
            r
        })
        .collect()
}

fn annualised_sharpe(returns: &[f64]) -> f64 {
    let daily_rf = RISK_FREE_RATE / 252.0;
    let excess: Vec<f64> = returns.iter().map(|r| r - daily_rf).collect();
    let sd = if excess.len() < 2 {
        0.0
    } else {
        crate::indicators::sample_stdev(&excess)
    };
    if sd > 0.0 {
        mean(&excess) / sd * 252f64.sqrt()
    } else {
        0.0
    }
}

/// Mean excess return over downside deviation (√ of the mean squared shortfall below
/// the risk-free rate, over every day), annualised.
fn sortino(returns: &[f64]) -> f64 {
    let daily_rf = RISK_FREE_RATE / 252.0;
    if returns.is_empty() {
        return 0.0;
    }
    let downside = (returns
        .iter()
        .map(|r| (r - daily_rf).min(0.0).powi(2))
        .sum::<f64>()
        / returns.len() as f64)
        .sqrt();
    if downside > 0.0 {
        (mean(returns) - daily_rf) / downside * 252f64.sqrt()
    } else {
        0.0
    }
}

/// Drawdown periods, deepest first.
fn drawdowns(dates: &[NaiveDate], equity: &[f64]) -> Vec<Drawdown> {
    let mut out = Vec::new();
    let mut peak = (0usize, f64::MIN);
    let mut open: Option<(usize, usize)> = None; // (peak index, trough index)
    for (i, e) in equity.iter().enumerate() {
        if *e >= peak.1 {
            if let Some((p, t)) = open.take() {
                out.push(Drawdown {
                    peak: dates[p],
                    trough: dates[t],
                    recovered: Some(dates[i]),
                    depth: 1.0 - equity[t] / equity[p],
                    days: (dates[i] - dates[p]).num_days(),
                });
            }
            peak = (i, *e);
        } else {
            match &mut open {
                Some((_, t)) if *e < equity[*t] => *t = i,
                Some(_) => {}
                None => open = Some((peak.0, i)),
            }
        }
    }
    if let (Some((p, t)), Some(last)) = (open, dates.last()) {
        out.push(Drawdown {
            peak: dates[p],
            trough: dates[t],
            recovered: None,
            depth: 1.0 - equity[t] / equity[p],
            days: (*last - dates[p]).num_days(),
        });
    }
    out.sort_by(|a, b| b.depth.total_cmp(&a.depth).then(a.peak.cmp(&b.peak)));
    out
}

/// Returns over calendar periods: each from the last equity of the period before (the
/// initial equity for the first).
fn period_returns<K: Ord + Copy>(
    initial: f64,
    dates: &[NaiveDate],
    equity: &[f64],
    key: impl Fn(NaiveDate) -> K,
) -> BTreeMap<K, f64> {
    let mut out = BTreeMap::new();
    let mut start = initial;
    for (i, (d, e)) in dates.iter().zip(equity).enumerate() {
        let last_of_period = dates.get(i + 1).is_none_or(|next| key(*next) != key(*d));
        if last_of_period {
            out.insert(key(*d), if start > 0.0 { e / start - 1.0 } else { 0.0 });
            start = *e;
        }
    }
    out
}

/// Each day's holdings by symbol as weights of equity, from the fills and the closes.
fn holdings(record: &BacktestRecord, market: &MarketData) -> Vec<BTreeMap<Symbol, f64>> {
    let mut positions: BTreeMap<Symbol, Decimal> = BTreeMap::new();
    let mut fills = record.fills.iter().peekable();
    let mut closes = DayCloses::default();
    record
        .points
        .iter()
        .map(|point| {
            let today = std::iter::from_fn(|| fills.next_if(|f| f.date <= point.date));
            crate::domain::apply_fills(
                &mut positions,
                today.map(|fill| (&fill.symbol, fill.side, fill.qty)),
            );
            closes.move_to(market, point.date);
            let equity = f(point.equity);
            positions
                .iter()
                .map(|(s, q)| {
                    let close = closes.on_or_before(s).map_or(Decimal::ZERO, |(_, c)| c);
                    let w = if equity > 0.0 {
                        f(*q * close) / equity
                    } else {
                        0.0
                    };
                    (s.clone(), w)
                })
                .collect()
        })
        .collect()
}

/// The largest holdings by average weight, one layer each; the rest as "other".
fn allocation_layers(held: &[BTreeMap<Symbol, f64>]) -> Vec<(String, Vec<f64>)> {
    let mut average: BTreeMap<&Symbol, f64> = BTreeMap::new();
    for day in held {
        for (s, w) in day {
            *average.entry(s).or_default() += w;
        }
    }
    let mut ranked: Vec<(&Symbol, f64)> = average.into_iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let shown = if ranked.len() > ALLOCATION_LAYERS {
        ALLOCATION_LAYERS - 1
    } else {
        ranked.len()
    };
    let mut layers: Vec<(String, Vec<f64>)> = ranked[..shown]
        .iter()
        .map(|(s, _)| {
            let weights = held
                .iter()
                .map(|day| day.get(*s).copied().unwrap_or(0.0))
                .collect();
            (s.to_string(), weights)
        })
        .collect();
    if ranked.len() > shown {
        let named: Vec<&Symbol> = ranked[..shown].iter().map(|(s, _)| *s).collect();
        let other = held
            .iter()
            .map(|day| {
                day.iter()
                    .filter(|(s, _)| !named.contains(s))
                    .map(|(_, w)| w)
                    .sum()
            })
            .collect();
        layers.push((format!("other ({})", ranked.len() - shown), other));
    }
    layers
}

/// Each file's contribution when several are weighted: the day's return of its target
/// weights (decided the session before) times its file weight. Before costs, and at
/// targets rather than drifted holdings: it apportions the strategy, not the fills.
fn attribution(record: &BacktestRecord, market: &MarketData) -> Vec<Attribution> {
    let Some((_, first)) = record.sleeves.first() else {
        return Vec::new();
    };
    // Weights are as configured; a file's share is its weight over their sum.
    let total: Decimal = first.iter().map(|s| s.file_weight).sum();
    let share = |w: Decimal| {
        if total > Decimal::ZERO {
            w / total
        } else {
            Decimal::ZERO
        }
    };
    let mut out: Vec<Attribution> = first
        .iter()
        .map(|s| Attribution {
            name: s.name.clone(),
            file_weight: share(s.file_weight),
            contribution: 0.0,
            standalone_return: 0.0,
        })
        .collect();
    let mut growth = vec![1.0f64; out.len()];
    let close = |symbol: &str, date: NaiveDate| {
        market
            .close_on_or_before(symbol, date)
            .map_or(0.0, |(_, c)| f(c))
    };
    for pair in record.sleeves.windows(2) {
        let ((decided, sleeves), (next, _)) = (&pair[0], &pair[1]);
        for (i, sleeve) in sleeves.iter().enumerate().take(out.len()) {
            let day: f64 = sleeve
                .weights
                .iter()
                .map(|(s, w)| {
                    let (a, b) = (close(s, *decided), close(s, *next));
                    if a > 0.0 {
                        f(*w) * (b / a - 1.0)
                    } else {
                        0.0
                    }
                })
                .sum();
            out[i].contribution += f(share(sleeve.file_weight)) * day;
            growth[i] *= 1.0 + day;
        }
    }
    for (a, g) in out.iter_mut().zip(growth) {
        a.standalone_return = g - 1.0;
    }
    out
}

/// Σ qty × (fill price − market price), in the trader's disfavour, where the market
/// price is the fill day's close or open (as the fill model says).
fn slippage(record: &BacktestRecord, market: &MarketData) -> Decimal {
    record
        .fills
        .iter()
        .filter_map(|fill| {
            let series = market.get(&fill.symbol)?;
            let i = series.dates().binary_search(&fill.date).ok()?;
            let reference = match record.fill {
                FillTiming::Close => series.close(i)?,
                FillTiming::NextOpen => series.open(i)?,
            };
            Some(match fill.side {
                Side::Buy => (fill.price - reference) * fill.qty,
                Side::Sell => (reference - fill.price) * fill.qty,
            })
        })
        .sum::<Decimal>()
        .round_dp(2)
}

/// Sample covariance-based beta and Pearson correlation of `a` against `b`.
fn beta_correlation(a: &[f64], b: &[f64]) -> (Option<f64>, Option<f64>) {
    if a.len() < 2 || a.len() != b.len() {
        return (None, None);
    }
    let (ma, mb) = (mean(a), mean(b));
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    let beta = (vb > 0.0).then(|| cov / vb);
    let correlation = (va > 0.0 && vb > 0.0).then(|| cov / (va * vb).sqrt());
    (beta, correlation)
}

impl Tearsheet {
    pub fn of(
        record: &BacktestRecord,
        summary: &Summary,
        market: &MarketData,
        benchmark: Option<&Benchmark<'_>>,
    ) -> Self {
        let dates: Vec<NaiveDate> = record.points.iter().map(|p| p.date).collect();
        let equity: Vec<f64> = record.points.iter().map(|p| f(p.equity)).collect();
        let initial = f(record.initial_equity);
        let daily = returns(initial, &equity);

        let mut peak = f64::MIN;
        let drawdown = equity
            .iter()
            .map(|e| {
                peak = peak.max(*e);
                if peak > 0.0 {
                    e / peak - 1.0
                } else {
                    0.0
                }
            })
            .collect();
        let rolling_sharpe = (0..daily.len())
            .map(|i| {
                (i + 1 >= ROLLING_WINDOW)
                    .then(|| annualised_sharpe(&daily[i + 1 - ROLLING_WINDOW..=i]))
            })
            .collect();
        let exposure = record
            .points
            .iter()
            .map(|p| {
                if p.equity > Decimal::ZERO {
                    1.0 - f(p.cash) / f(p.equity)
                } else {
                    0.0
                }
            })
            .collect();
        let held = holdings(record, market);
        let periods = drawdowns(&dates, &equity);

        let benchmark_curve = benchmark.and_then(|b| {
            let closes: Vec<f64> = dates
                .iter()
                .map(|d| {
                    let n = b.series.count_until(*d);
                    n.checked_sub(1)
                        .and_then(|i| b.series.close(i))
                        .map_or(0.0, f)
                })
                .collect();
            let first = *closes.first()?;
            (first > 0.0).then(|| {
                (
                    b.symbol.clone(),
                    closes
                        .iter()
                        .map(|c| initial * c / first)
                        .collect::<Vec<_>>(),
                )
            })
        });

        let mut statistics = Statistics {
            sortino: sortino(&daily),
            calmar: {
                let mdd = f(summary.max_drawdown);
                if mdd > 0.0 {
                    f(summary.cagr) / mdd
                } else {
                    0.0
                }
            },
            max_drawdown_days: periods.iter().map(|d| d.days).max().unwrap_or(0),
            fees: record.fills.iter().map(|f| f.commission).sum(),
            slippage: slippage(record, market),
            ..Statistics::default()
        };
        let mut rebalance_days: Vec<usize> = record
            .fills
            .iter()
            .filter_map(|f| dates.binary_search(&f.date).ok())
            .collect();
        rebalance_days.dedup();
        statistics.rebalances = rebalance_days.len();
        if !rebalance_days.is_empty() {
            let last = equity.len() - 1;
            let wins = rebalance_days
                .iter()
                .enumerate()
                .filter(|(k, day)| {
                    let until = rebalance_days.get(k + 1).copied().unwrap_or(last);
                    equity[until] > equity[**day]
                })
                .count();
            statistics.rebalance_win_rate = Some(wins as f64 / rebalance_days.len() as f64);
        }
        if let Some((_, curve)) = &benchmark_curve {
            let bench = returns(curve[0], curve);
            // The first day's benchmark return is 0 by construction: compare from the second.
            let (beta, correlation) =
                beta_correlation(&daily[1.min(daily.len())..], &bench[1.min(bench.len())..]);
            statistics.beta = beta;
            statistics.correlation = correlation;
            let growth = curve[curve.len() - 1] / initial;
            statistics.benchmark_total_return = Some(growth - 1.0);
            let days = (dates[dates.len() - 1] - dates[0]).num_days() as f64;
            statistics.benchmark_cagr =
                (days > 0.0 && growth > 0.0).then(|| growth.powf(365.25 / days) - 1.0);
        }

        Self {
            monthly: period_returns(initial, &dates, &equity, |d| (d.year(), d.month())),
            yearly: period_returns(initial, &dates, &equity, |d| d.year()),
            allocation: allocation_layers(&held),
            attribution: attribution(record, market),
            drawdowns: periods.into_iter().take(DRAWDOWNS_LISTED).collect(),
            dates,
            equity,
            benchmark: benchmark_curve,
            drawdown,
            rolling_sharpe,
            exposure,
            statistics,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2020, 1, d).unwrap()
    }

    #[test]
    fn drawdown_periods_are_found_deepest_first_with_their_recovery() {
        let dates: Vec<NaiveDate> = (1..=8).map(day).collect();
        // peak 110 (2nd) → 88 (4th) → back to 110 on the 5th; peak 120 (6th) → 108, not back.
        let equity = [100.0, 110.0, 99.0, 88.0, 110.0, 120.0, 108.0, 114.0];
        let found = drawdowns(&dates, &equity);
        assert_eq!(found.len(), 2);
        assert_eq!(
            (
                found[0].peak,
                found[0].trough,
                found[0].recovered,
                found[0].days
            ),
            (day(2), day(4), Some(day(5)), 3)
        );
        assert!((found[0].depth - 0.2).abs() < 1e-12);
        assert_eq!(
            (found[1].peak, found[1].trough, found[1].recovered),
            (day(6), day(7), None)
        );
        assert!((found[1].depth - 0.1).abs() < 1e-12);
        assert_eq!(found[1].days, 2);
    }

    #[test]
    fn calendar_returns_chain_from_the_initial_equity() {
        let dates = [
            NaiveDate::from_ymd_opt(2020, 1, 30).unwrap(),
            NaiveDate::from_ymd_opt(2020, 1, 31).unwrap(),
            NaiveDate::from_ymd_opt(2020, 2, 3).unwrap(),
            NaiveDate::from_ymd_opt(2021, 1, 4).unwrap(),
        ];
        let equity = [105.0, 110.0, 121.0, 108.9];
        let months = period_returns(100.0, &dates, &equity, |d| (d.year(), d.month()));
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(months[&(2020, 1)], 0.10));
        assert!(close(months[&(2020, 2)], 0.10));
        assert!(close(months[&(2021, 1)], -0.10));
        let years = period_returns(100.0, &dates, &equity, |d| d.year());
        assert!(close(years[&2020], 0.21));
        assert!(close(years[&2021], -0.10));
    }

    #[test]
    fn attribution_weighs_each_files_targets_by_its_file_weight() {
        use crate::backtest::Sleeve;
        use crate::market::DailyBar;
        use rust_decimal_macros::dec;
        let series = |symbol: &str, closes: [Decimal; 3]| {
            let bars = closes
                .iter()
                .enumerate()
                .map(|(i, c)| DailyBar::flat(day(2 + i as u32), *c))
                .collect();
            (Symbol::from(symbol), BarSeries::new(symbol.into(), bars))
        };
        let market = MarketData::sharing_dates(
            [
                series("XX", [dec!(100), dec!(110), dec!(121)]),
                series("YY", [dec!(50), dec!(45), dec!(45)]),
            ]
            .into_iter()
            .collect(),
        );
        let sleeve = |name: &str, weight: Decimal, symbol: &str| Sleeve {
            name: name.into(),
            file_weight: weight,
            weights: [(Symbol::from(symbol), Decimal::ONE)].into_iter().collect(),
        };
        let day_sleeves = || {
            vec![
                sleeve("a.clj", dec!(3), "XX"),
                sleeve("b.clj", dec!(1), "YY"),
            ]
        };
        let record = BacktestRecord {
            sleeves: vec![
                (day(2), day_sleeves()),
                (day(3), day_sleeves()),
                (day(4), day_sleeves()),
            ],
            ..BacktestRecord::default()
        };
        let found = attribution(&record, &market);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        // a: +10% then +10%, weight 3 of 4; b: −10% then 0, weight 1 of 4.
        assert_eq!(
            (found[0].name.as_str(), found[0].file_weight),
            ("a.clj", dec!(0.75))
        );
        assert!(close(found[0].contribution, 0.75 * 0.2), "{found:?}");
        assert!(close(found[0].standalone_return, 0.21), "{found:?}");
        assert!(close(found[1].contribution, -0.025), "{found:?}");
        assert!(close(found[1].standalone_return, -0.1), "{found:?}");
    }

    #[test]
    fn sortino_beta_and_correlation_by_hand() {
        // Returns 0.02, −0.01, 0.03, −0.02: downside = √((0.01² + 0.02²)/4).
        let r = [0.02, -0.01, 0.03, -0.02];
        let downside = ((0.0001f64 + 0.0004) / 4.0).sqrt();
        assert!((sortino(&r) - 0.005 / downside * 252f64.sqrt()).abs() < 1e-9);
        // Twice the benchmark: beta 2, correlation 1.
        let b = [0.01, -0.005, 0.015, -0.01];
        let (beta, corr) = beta_correlation(&r, &b);
        assert!((beta.unwrap() - 2.0).abs() < 1e-9);
        assert!((corr.unwrap() - 1.0).abs() < 1e-9);
        // The opposite: correlation −1.
        let neg: Vec<f64> = b.iter().map(|x| -x).collect();
        assert!((beta_correlation(&r, &neg).1.unwrap() + 1.0).abs() < 1e-9);
    }
}
