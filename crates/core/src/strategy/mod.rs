//! Strategy core: symphony files evaluated as of a day, and their consolidation into
//! one signal.

pub mod book;
pub mod dsl;
pub mod prefetch;
pub mod settings;
pub mod slices;

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::{Decimal, RoundingStrategy};

use crate::domain::Symbol;
use crate::events::{SignalGenerated, StrategyAllocation};

/// Decimal places of consolidated target weights.
pub const WEIGHT_DP: u32 = 6;

/// Consolidates file allocations: a symbol's weight is Σ file weight × in-file weight,
/// rounded to [`WEIGHT_DP`] decimals by largest remainder so the weights sum to exactly
/// the invested share (1 when every file evaluated; failed files' slices stay in cash).
pub fn consolidate(
    as_of: NaiveDate,
    strategies: Vec<StrategyAllocation>,
    market_snapshot_id: String,
) -> SignalGenerated {
    let total_file_weight: Decimal = strategies.iter().map(|s| s.file_weight).sum();
    let mut raw: BTreeMap<Symbol, Decimal> = BTreeMap::new();
    let mut invested = Decimal::ZERO;
    for (share, weights) in strategies
        .iter()
        .filter_map(|s| s.effective(total_file_weight))
    {
        invested += share;
        for (symbol, w) in weights {
            *raw.entry(symbol.clone()).or_default() += share * *w;
        }
    }
    raw.retain(|_, w| *w > Decimal::ZERO);
    let target_weights = largest_remainder(&raw, invested);
    let signal_hash = SignalGenerated::compute_hash(as_of, &target_weights, &strategies);
    SignalGenerated {
        as_of,
        target_weights,
        strategies,
        signal_hash,
        market_snapshot_id,
    }
}

/// Rounds `weights` (in symbol order) down to [`WEIGHT_DP`] decimals, then hands the
/// remaining units to the largest remainders (ties by symbol) so the result sums to
/// `total` rounded likewise.
pub fn largest_remainder<'a>(
    weights: impl IntoIterator<Item = (&'a Symbol, &'a Decimal)>,
    total: Decimal,
) -> BTreeMap<Symbol, Decimal> {
    let unit = Decimal::new(1, WEIGHT_DP);
    let target_total =
        total.round_dp_with_strategy(WEIGHT_DP, RoundingStrategy::MidpointNearestEven);
    // By position, in symbol order: (symbol, floored weight, remainder).
    let mut parts: Vec<(&Symbol, Decimal, Decimal)> = weights
        .into_iter()
        .map(|(s, w)| {
            let floored = w.round_dp_with_strategy(WEIGHT_DP, RoundingStrategy::ToZero);
            (s, floored, *w - floored)
        })
        .collect();
    let mut by_remainder: Vec<usize> = (0..parts.len()).collect();
    // Largest remainder first; ties in symbol order (the positions' order).
    by_remainder.sort_by(|a, b| parts[*b].2.cmp(&parts[*a].2).then_with(|| a.cmp(b)));
    let mut missing = target_total - parts.iter().map(|p| p.1).sum::<Decimal>();
    for i in by_remainder.iter().cycle().take(by_remainder.len() * 2) {
        if missing < unit {
            break;
        }
        parts[*i].1 += unit;
        missing -= unit;
    }
    parts
        .into_iter()
        .filter(|(_, w, _)| *w > Decimal::ZERO)
        .map(|(s, mut w, _)| {
            w.rescale(WEIGHT_DP);
            (s.clone(), w)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn alloc(name: &str, fw: Decimal, weights: &[(&str, Decimal)]) -> StrategyAllocation {
        StrategyAllocation {
            slice: None,
            name: name.into(),
            file_weight: fw,
            weights: weights
                .iter()
                .map(|(s, w)| (Symbol::from(*s), *w))
                .collect(),
            indicators: BTreeMap::new(),
            error: None,
        }
    }

    #[test]
    fn thirds_sum_to_exactly_one() {
        let third = Decimal::ONE / dec!(3);
        let s = consolidate(
            NaiveDate::from_ymd_opt(2024, 1, 2).unwrap(),
            vec![alloc(
                "a",
                dec!(1),
                &[("A", third), ("B", third), ("C", third)],
            )],
            String::new(),
        );
        assert_eq!(s.target_weights.values().copied().sum::<Decimal>(), dec!(1));
        assert_eq!(s.target_weights["A"], dec!(0.333334));
        assert_eq!(s.target_weights["B"], dec!(0.333333));
    }

    #[test]
    fn file_weights_multiply_and_failed_files_go_to_cash() {
        let mut bad = alloc("b", dec!(1), &[]);
        bad.error = Some("short history".into());
        let s = consolidate(
            NaiveDate::from_ymd_opt(2024, 1, 2).unwrap(),
            vec![
                alloc("a", dec!(3), &[("SPY", dec!(0.5)), ("TLT", dec!(0.5))]),
                bad,
            ],
            String::new(),
        );
        assert_eq!(s.target_weights["SPY"], dec!(0.375));
        assert_eq!(s.target_weights["TLT"], dec!(0.375));
    }

    #[test]
    fn no_strategies_is_all_cash() {
        let s = consolidate(
            NaiveDate::from_ymd_opt(2024, 1, 2).unwrap(),
            vec![],
            String::new(),
        );
        assert!(s.target_weights.is_empty());
        assert_eq!(s.signal_hash.len(), 64);
    }
}
