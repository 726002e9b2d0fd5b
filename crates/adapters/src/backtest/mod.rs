//! Backtest results and their statistics. The run itself is the actor system replaying
//! one workflow per session (see `actors/backtest.rs`); this module turns its records
//! into the summary, with money in `Decimal` and ratios rounded to 6 decimals.

pub mod chain_digest;
pub mod chart;
pub mod html;
pub mod report;
pub mod tearsheet;

use chrono::NaiveDate;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;

use crate::domain::Side;

/// End-of-day state: equity = cash + Σ qty·close.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EquityPoint {
    pub date: NaiveDate,
    pub equity: Decimal,
    pub cash: Decimal,
}

/// One fill, as `orders.csv` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FillRecord {
    pub date: NaiveDate,
    pub symbol: crate::domain::Symbol,
    pub side: Side,
    pub qty: Decimal,
    pub price: Decimal,
    pub commission: Decimal,
    pub client_order_id: String,
}

/// One strategy file's targets on one day, kept when several files are weighted (the
/// report's attribution).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sleeve {
    pub name: String,
    pub file_weight: Decimal,
    pub weights: std::collections::BTreeMap<crate::domain::Symbol, Decimal>,
}

/// What a backtest run produced.
#[derive(Clone, Debug, Default)]
pub struct BacktestRecord {
    pub initial_equity: Decimal,
    /// When orders filled: at the signal's close or the next session's open.
    pub fill: FillTiming,
    pub points: Vec<EquityPoint>,
    pub fills: Vec<FillRecord>,
    pub workflows: u64,
    /// Orders the venue refused.
    pub rejected_orders: u64,
    pub failed_workflows: Vec<(NaiveDate, String)>,
    /// Days a strategy file failed to evaluate, with the reason (whether the workflow
    /// failed or, with `on_strategy_error = "cash"`, the file's slice went to cash).
    pub strategy_errors: Vec<(NaiveDate, String)>,
    /// Sessions skipped at the start because the strategies could not evaluate yet.
    pub warm_up_sessions: u64,
    pub events: u64,
    pub chain_digest: String,
    /// Each day's per-file targets, by decision day (empty with a single file).
    pub sleeves: Vec<(NaiveDate, Vec<Sleeve>)>,
}

impl BacktestRecord {
    /// The run seen as two periods: the sessions before `split`, and those from it on
    /// starting from the equity the first ended with — what a researcher ranks on, and
    /// the out-of-sample check of it. Fills, failures and errors go with their day; the
    /// whole run's counts (workflows, events, its chain digest) stay with the whole.
    pub fn split_at(&self, split: NaiveDate) -> (BacktestRecord, BacktestRecord) {
        let before = |d: &NaiveDate| *d < split;
        let part = |keep: &dyn Fn(&NaiveDate) -> bool, initial_equity: Decimal| BacktestRecord {
            initial_equity,
            fill: self.fill,
            points: self
                .points
                .iter()
                .filter(|p| keep(&p.date))
                .cloned()
                .collect(),
            fills: self
                .fills
                .iter()
                .filter(|f| keep(&f.date))
                .cloned()
                .collect(),
            rejected_orders: 0,
            failed_workflows: self
                .failed_workflows
                .iter()
                .filter(|(d, _)| keep(d))
                .cloned()
                .collect(),
            strategy_errors: self
                .strategy_errors
                .iter()
                .filter(|(d, _)| keep(d))
                .cloned()
                .collect(),
            ..BacktestRecord::default()
        };
        let first = part(&before, self.initial_equity);
        let carried = first
            .points
            .last()
            .map_or(self.initial_equity, |p| p.equity);
        let second = part(&|d| !before(d), carried);
        (first, second)
    }
}

/// Strategy evaluation errors of a run, as `summary.json` reports them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StrategyErrors {
    pub count: u64,
    pub first_day: Option<NaiveDate>,
    pub last_day: Option<NaiveDate>,
    /// The first error's reason.
    pub reason: Option<String>,
}

impl StrategyErrors {
    pub fn of(errors: &[(NaiveDate, String)]) -> Self {
        Self {
            count: errors.len() as u64,
            first_day: errors.iter().map(|(d, _)| *d).min(),
            last_day: errors.iter().map(|(d, _)| *d).max(),
            reason: errors.first().map(|(_, r)| r.clone()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub start: NaiveDate,
    pub end: NaiveDate,
    /// The fill model that ran: `close` or `next_open`.
    pub fill: FillTiming,
    pub initial_equity: Decimal,
    pub final_equity: Decimal,
    pub total_return: Decimal,
    pub cagr: Decimal,
    pub annual_volatility: Decimal,
    pub sharpe: Decimal,
    pub max_drawdown: Decimal,
    pub trades: u64,
    /// Orders the venue refused (a buy dearer at the fill than planned, beyond the
    /// cash left): each is in the journal with its reason.
    pub rejected_orders: u64,
    /// Traded value over average equity.
    pub turnover: Decimal,
    pub workflows: u64,
    pub failed_workflows: u64,
    /// Sessions before `start` skipped because the strategies could not evaluate yet.
    pub warm_up_sessions: u64,
    pub strategy_errors: StrategyErrors,
    pub events: u64,
    pub chain_digest: String,
}

fn ratio(v: f64) -> Decimal {
    Decimal::from_f64(v)
        .unwrap_or_default()
        .round_dp_with_strategy(6, RoundingStrategy::MidpointNearestEven)
}

/// Sample standard deviation (n − 1); 0 for fewer than two values.
fn sample_stdev(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    crate::indicators::sample_stdev(values)
}

/// The summary of a run whose first point is `start`'s end of day. Returns are daily
/// from the initial equity; CAGR = (final/initial)^(365.25/calendar days) − 1; Sharpe =
/// mean/stdev of daily returns × √252 (sample stdev, risk-free 0); max drawdown is the
/// largest fall from a running peak, as a fraction.
pub fn summarize(record: &BacktestRecord) -> Option<Summary> {
    let first = record.points.first()?;
    let last = record.points.last()?;
    let initial = record.initial_equity;
    let to_f = |d: Decimal| d.to_f64().unwrap_or(0.0);
    let mut prev = to_f(initial);
    let mut returns = Vec::with_capacity(record.points.len());
    let (mut peak, mut worst) = (prev, 0.0f64);
    for p in &record.points {
        let e = to_f(p.equity);
        returns.push(if prev > 0.0 { e / prev - 1.0 } else { 0.0 });
        prev = e;
        peak = peak.max(e);
        if peak > 0.0 {
            worst = worst.max((peak - e) / peak);
        }
    }
    let growth = if initial > Decimal::ZERO {
        to_f(last.equity) / to_f(initial)
    } else {
        0.0
    };
    let days = (last.date - first.date).num_days() as f64;
    let cagr = if days > 0.0 && growth > 0.0 {
        growth.powf(365.25 / days) - 1.0
    } else {
        0.0
    };
    let stdev = sample_stdev(&returns);
    let mean = returns.iter().sum::<f64>() / returns.len() as f64;
    let sharpe = if stdev > 0.0 {
        mean / stdev * 252f64.sqrt()
    } else {
        0.0
    };
    let traded: Decimal = record.fills.iter().map(|f| f.qty * f.price).sum();
    let avg_equity: Decimal = record.points.iter().map(|p| p.equity).sum::<Decimal>()
        / Decimal::from(record.points.len());
    let turnover = if avg_equity > Decimal::ZERO {
        traded / avg_equity
    } else {
        Decimal::ZERO
    };
    Some(Summary {
        start: first.date,
        end: last.date,
        fill: record.fill,
        initial_equity: initial.round_dp(2),
        final_equity: last.equity.round_dp(2),
        total_return: ratio(growth - 1.0),
        cagr: ratio(cagr),
        annual_volatility: ratio(stdev * 252f64.sqrt()),
        sharpe: ratio(sharpe),
        max_drawdown: ratio(worst),
        trades: record.fills.len() as u64,
        rejected_orders: record.rejected_orders,
        turnover: turnover.round_dp_with_strategy(6, RoundingStrategy::MidpointNearestEven),
        workflows: record.workflows,
        failed_workflows: record.failed_workflows.len() as u64,
        warm_up_sessions: record.warm_up_sessions,
        strategy_errors: StrategyErrors::of(&record.strategy_errors),
        events: record.events,
        chain_digest: record.chain_digest.clone(),
    })
}

/// When a backtest's orders fill. A stated model, because it moves results: a fill at
/// the close that produced the signal is optimistic (live trading decides at 15:45 on the
/// previous session's close and cannot trade at a close it has not seen yet).
#[derive(Clone, Copy, Debug, Default, serde::Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FillTiming {
    /// At the close the signal was computed on (what Composer's backtests assume).
    #[default]
    Close,
    /// At the next session's open: the decision uses the close, the trade happens the
    /// next morning. The last session's decision has no next open and is not traded.
    NextOpen,
}

crate::display_as_wire_name!(FillTiming);

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn point(d: u32, equity: Decimal) -> EquityPoint {
        EquityPoint {
            date: NaiveDate::from_ymd_opt(2020, 1, d).unwrap(),
            equity,
            cash: Decimal::ZERO,
        }
    }

    #[test]
    fn statistics_of_a_hand_computable_curve() {
        let record = BacktestRecord {
            initial_equity: dec!(100),
            points: vec![point(1, dec!(110)), point(2, dec!(99)), point(3, dec!(121))],
            ..Default::default()
        };
        let s = summarize(&record).unwrap();
        assert_eq!(s.total_return, dec!(0.21));
        // peak 110 → 99 = 10%
        assert_eq!(s.max_drawdown, dec!(0.1));
        // returns 0.1, −0.1, 0.2222…: mean 0.074074, stdev 0.162…
        let r = [0.1, -0.1, 121.0 / 99.0 - 1.0];
        let mean: f64 = r.iter().sum::<f64>() / 3.0;
        let sd = (r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
        assert_eq!(s.sharpe, ratio(mean / sd * 252f64.sqrt()));
        assert_eq!(s.annual_volatility, ratio(sd * 252f64.sqrt()));
        // 2 calendar days: 1.21^(365.25/2) − 1 is huge but finite
        assert_eq!(s.cagr, ratio(1.21f64.powf(365.25 / 2.0) - 1.0));
    }

    #[test]
    fn an_empty_run_has_no_summary() {
        assert!(summarize(&BacktestRecord::default()).is_none());
    }
}
