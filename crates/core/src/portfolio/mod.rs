//! Portfolio core: the rebalance planner, with the original system's rules.
//!
//! PV = cash + Σ qty·price; investable = PV·(1 − reserve); per symbol in
//! targets ∪ holdings: target$ = w·investable, current$ = qty·price, delta = target$ −
//! current$. A held symbol with target 0 is sold in full; otherwise |delta| <
//! min_trade·PV holds; else buy/sell |delta|/price rounded toward zero (6 decimals
//! when fractional, whole shares otherwise), a sell never exceeding the holding. Items
//! are ordered sells, buys, holds, each by symbol.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::{Decimal, RoundingStrategy};
use thiserror::Error;

use crate::domain::{PlanAction, Symbol};
use crate::events::{
    AllocationCompared, AllocationRow, PlanItem, RebalancePlanned, SignalGenerated,
};
use crate::venue::AccountSnapshot;

#[derive(Clone, Debug, PartialEq)]
pub struct PlanParams {
    pub cash_reserve_pct: Decimal,
    pub min_trade_pct: Decimal,
    pub fractional: bool,
}

impl Default for PlanParams {
    fn default() -> Self {
        Self {
            cash_reserve_pct: Decimal::new(1, 2),
            min_trade_pct: Decimal::new(1, 2),
            fractional: true,
        }
    }
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("no price for {symbol}")]
    MissingPrice { symbol: Symbol },
    #[error("non-positive price {price} for {symbol}")]
    BadPrice { symbol: Symbol, price: Decimal },
}

/// Symbols the planner needs prices for: targets ∪ holdings, in symbol order. Both
/// maps are in symbol order already, so they are merged, not collected into a set.
pub fn symbols_to_price(signal: &SignalGenerated, account: &AccountSnapshot) -> Vec<Symbol> {
    let mut targets = signal.target_weights.keys().peekable();
    let mut held = account.positions.keys().peekable();
    let mut out = Vec::with_capacity(signal.target_weights.len() + account.positions.len());
    loop {
        let next = match (targets.peek(), held.peek()) {
            (Some(t), Some(h)) => match t.cmp(h) {
                Ordering::Less => targets.next(),
                Ordering::Greater => held.next(),
                Ordering::Equal => {
                    held.next();
                    targets.next()
                }
            },
            (Some(_), None) => targets.next(),
            (None, _) => held.next(),
        };
        match next {
            Some(symbol) => out.push(symbol.clone()),
            None => return out,
        }
    }
}

/// Symbols held by slices that do not trade today and touched by no slice that does:
/// the plan leaves them as they are, even where the account strays from the slices'
/// ideal holdings by a rounding or a commission.
fn frozen_symbols(signal: &SignalGenerated) -> BTreeSet<&Symbol> {
    let slices = || {
        signal
            .strategies
            .iter()
            .filter_map(|s| Some((s, s.slice.as_ref()?)))
    };
    let moving: BTreeSet<&Symbol> = slices()
        .filter(|(_, t)| t.trades)
        .flat_map(|(s, t)| t.held.keys().chain(s.weights.keys()))
        .collect();
    slices()
        .filter(|(_, t)| !t.trades)
        .flat_map(|(_, t)| t.held.keys())
        .filter(|symbol| !moving.contains(symbol))
        .collect()
}

pub fn plan_rebalance(
    signal: &SignalGenerated,
    account: &AccountSnapshot,
    prices: &BTreeMap<Symbol, Decimal>,
    params: &PlanParams,
) -> Result<(AllocationCompared, RebalancePlanned), PlanError> {
    let price_of = |symbol: &Symbol| -> Result<Decimal, PlanError> {
        match prices.get(symbol) {
            None => Err(PlanError::MissingPrice {
                symbol: symbol.clone(),
            }),
            Some(p) if *p <= Decimal::ZERO => Err(PlanError::BadPrice {
                symbol: symbol.clone(),
                price: *p,
            }),
            Some(p) => Ok(*p),
        }
    };
    let mut pv = account.cash;
    for (symbol, qty) in &account.positions {
        pv += *qty * price_of(symbol)?;
    }
    let investable = pv * (Decimal::ONE - params.cash_reserve_pct);
    let min_trade = params.min_trade_pct * pv;
    let dp = if params.fractional { 6 } else { 0 };

    let frozen = frozen_symbols(signal);
    let mut rows = Vec::new();
    let mut items = Vec::new();
    for symbol in symbols_to_price(signal, account) {
        let price = price_of(&symbol)?;
        let weight = signal
            .target_weights
            .get(&symbol)
            .copied()
            .unwrap_or_default();
        let held = account.positions.get(&symbol).copied().unwrap_or_default();
        let target_value = weight * investable;
        let current_value = held * price;
        let delta = target_value - current_value;
        rows.push(AllocationRow {
            symbol: symbol.clone(),
            target_weight: weight,
            target_value,
            current_value,
            delta,
        });
        let (action, qty) = if frozen.contains(&symbol) {
            (PlanAction::Hold, Decimal::ZERO)
        } else if weight.is_zero() && held > Decimal::ZERO {
            (PlanAction::Sell, held)
        } else if delta.abs() < min_trade {
            (PlanAction::Hold, Decimal::ZERO)
        } else {
            let qty = (delta.abs() / price).round_dp_with_strategy(dp, RoundingStrategy::ToZero);
            if delta > Decimal::ZERO {
                (PlanAction::Buy, qty)
            } else {
                (PlanAction::Sell, qty.min(held))
            }
        };
        let action = if qty.is_zero() {
            PlanAction::Hold
        } else {
            action
        };
        items.push(PlanItem {
            symbol,
            action,
            qty,
            price,
            target_value,
            current_value,
            delta,
        });
    }
    items.sort_by(|a, b| {
        a.action
            .cmp(&b.action)
            .then_with(|| a.symbol.cmp(&b.symbol))
    });
    let plan_hash = RebalancePlanned::compute_hash(&signal.signal_hash, pv, account.cash, &items);
    Ok((
        AllocationCompared {
            signal_hash: signal.signal_hash.clone(),
            portfolio_value: pv,
            rows,
        },
        RebalancePlanned {
            signal_hash: signal.signal_hash.clone(),
            plan_hash,
            account_snapshot_id: account.snapshot_id(),
            portfolio_value: pv,
            cash: account.cash,
            investable,
            items,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use rust_decimal_macros::dec;

    fn signal(weights: &[(&str, Decimal)]) -> SignalGenerated {
        SignalGenerated {
            as_of: NaiveDate::from_ymd_opt(2024, 1, 2).unwrap(),
            target_weights: weights
                .iter()
                .map(|(s, w)| (Symbol::from(*s), *w))
                .collect(),
            strategies: vec![],
            signal_hash: "sig".into(),
            market_snapshot_id: String::new(),
        }
    }

    fn account(cash: Decimal, pos: &[(&str, Decimal)]) -> AccountSnapshot {
        AccountSnapshot {
            cash,
            positions: pos.iter().map(|(s, q)| (Symbol::from(*s), *q)).collect(),
        }
    }

    #[test]
    fn symbols_to_price_are_targets_and_holdings_once_each_in_order() {
        let s = signal(&[("B", dec!(0.5)), ("D", dec!(0.5))]);
        // (holdings, expected symbols)
        type Case<'a> = (&'a [(&'a str, Decimal)], &'a [&'a str]);
        let cases: [Case; 4] = [
            (&[], &["B", "D"]),
            (
                &[("A", dec!(1)), ("B", dec!(2)), ("E", dec!(3))],
                &["A", "B", "D", "E"],
            ),
            (&[("C", dec!(1))], &["B", "C", "D"]),
            (&[("B", dec!(1)), ("D", dec!(1))], &["B", "D"]),
        ];
        for (held, expected) in cases {
            let got = symbols_to_price(&s, &account(dec!(0), held));
            assert_eq!(
                got,
                expected
                    .iter()
                    .map(|x| Symbol::from(*x))
                    .collect::<Vec<_>>()
            );
        }
        let none = symbols_to_price(&signal(&[]), &account(dec!(0), &[("Z", dec!(1))]));
        assert_eq!(none, vec![Symbol::from("Z")]);
    }

    fn prices(p: &[(&str, Decimal)]) -> BTreeMap<Symbol, Decimal> {
        p.iter().map(|(s, q)| (Symbol::from(*s), *q)).collect()
    }

    #[test]
    fn buys_with_reserve_and_truncates_to_six_decimals() {
        let (_, plan) = plan_rebalance(
            &signal(&[("SPY", dec!(1))]),
            &account(dec!(1000), &[]),
            &prices(&[("SPY", dec!(3))]),
            &PlanParams::default(),
        )
        .unwrap();
        assert_eq!(plan.investable, dec!(990.00));
        assert_eq!(plan.items[0].action, PlanAction::Buy);
        assert_eq!(plan.items[0].qty, dec!(330));
        let (_, plan) = plan_rebalance(
            &signal(&[("SPY", dec!(1))]),
            &account(dec!(1000), &[]),
            &prices(&[("SPY", dec!(7))]),
            &PlanParams::default(),
        )
        .unwrap();
        assert_eq!(plan.items[0].qty, dec!(141.428571));
    }

    #[test]
    fn zero_target_sells_in_full_and_order_is_sells_buys_holds() {
        let (_, plan) = plan_rebalance(
            &signal(&[("AAA", dec!(0.5)), ("BBB", dec!(0.5))]),
            &account(dec!(500), &[("ZZZ", dec!(5)), ("AAA", dec!(4.95))]),
            &prices(&[("AAA", dec!(100)), ("BBB", dec!(50)), ("ZZZ", dec!(100))]),
            &PlanParams::default(),
        )
        .unwrap();
        let got: Vec<_> = plan
            .items
            .iter()
            .map(|i| (i.symbol.as_str(), i.action, i.qty))
            .collect();
        // PV = 500 + 500 + 495 = 1495; investable 1480.05; AAA target 740.025 vs 495 -> buy 2.45025
        assert_eq!(
            got,
            vec![
                ("ZZZ", PlanAction::Sell, dec!(5)),
                ("AAA", PlanAction::Buy, dec!(2.450250)),
                ("BBB", PlanAction::Buy, dec!(14.8005)),
            ]
        );
    }

    #[test]
    fn small_delta_holds_and_whole_shares_round_toward_zero() {
        let params = PlanParams {
            fractional: false,
            ..PlanParams::default()
        };
        let (_, plan) = plan_rebalance(
            &signal(&[("SPY", dec!(1))]),
            &account(dec!(10), &[("SPY", dec!(9.85))]),
            &prices(&[("SPY", dec!(100))]),
            &params,
        )
        .unwrap();
        // PV 995, target 985.05 vs 985: |delta| 0.05 < 9.95 -> hold
        assert_eq!(plan.items[0].action, PlanAction::Hold);
        let (_, plan) = plan_rebalance(
            &signal(&[("SPY", dec!(1))]),
            &account(dec!(1000), &[]),
            &prices(&[("SPY", dec!(400))]),
            &params,
        )
        .unwrap();
        assert_eq!(plan.items[0].qty, dec!(2));
    }

    #[test]
    fn missing_price_is_an_error() {
        let err = plan_rebalance(
            &signal(&[("SPY", dec!(1))]),
            &account(dec!(1000), &[]),
            &prices(&[]),
            &PlanParams::default(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            PlanError::MissingPrice {
                symbol: "SPY".into()
            }
        );
    }
}
