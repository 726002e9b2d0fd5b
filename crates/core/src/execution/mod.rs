//! Execution core: from a rebalance plan to ordered order intents with deterministic
//! client order ids, cash capping, and smart limit pricing (`smart_limit`).

pub mod executor;
pub mod order;
pub mod smart_limit;

use rust_decimal::Decimal;

use crate::domain::{OrderType, PlanAction, Side};
use crate::events::{CorrelationId, ExecutionStarted, OrderIntent, OrderSettled, RebalancePlanned};

/// Alpaca's limit on `client_order_id` length.
pub const CLIENT_ORDER_ID_MAX: usize = 48;

/// `alc-` + 40 hex chars of blake3(correlation, plan hash, symbol, side, attempt): the same
/// plan leg always gets the same id, so a retry can never create a second order.
pub fn client_order_id(
    correlation: CorrelationId,
    plan_hash: &str,
    symbol: &str,
    side: Side,
    attempt: u32,
) -> String {
    let mut h = blake3::Hasher::new();
    h.update(correlation.0.as_bytes());
    for part in [plan_hash, symbol, side.as_str()] {
        h.update(part.as_bytes());
        h.update(&[0]);
    }
    h.update(&attempt.to_le_bytes());
    let hex = h.finalize().to_hex();
    format!("alc-{}", &hex[..40])
}

/// The plan's trades as intents: sells first, then buys (within a side, the plan's
/// symbol order), holds dropped.
pub fn order_intents(
    correlation: CorrelationId,
    plan: &RebalancePlanned,
    attempt: u32,
) -> ExecutionStarted {
    let mut orders: Vec<OrderIntent> = plan
        .items
        .iter()
        .filter_map(|item| {
            let side = match item.action {
                PlanAction::Sell => Side::Sell,
                PlanAction::Buy => Side::Buy,
                PlanAction::Hold => return None,
            };
            Some(OrderIntent {
                client_order_id: client_order_id(
                    correlation,
                    &plan.plan_hash,
                    &item.symbol,
                    side,
                    attempt,
                ),
                symbol: item.symbol.clone(),
                side,
                qty: item.qty,
                order_type: OrderType::Market,
                limit_price: None,
            })
        })
        .collect();
    // Sells free the cash that buys need; keep the plan's symbol order within a side.
    orders.sort_by_key(|o| o.side != Side::Sell);
    let execution_plan_hash = ExecutionStarted::compute_hash(&plan.plan_hash, &orders);
    ExecutionStarted {
        plan_hash: plan.plan_hash.clone(),
        execution_plan_hash,
        orders,
        positions_before: Default::default(),
        cash_before: None,
    }
}

/// Orders under this notional are skipped (Alpaca's minimum for fractional orders).
pub const MIN_NOTIONAL: Decimal = Decimal::ONE;

/// The quantity of a buy that `cash` can pay for, given what one share costs with
/// slippage and commission (`cost_of(qty)`), rounded toward zero to `dp` decimals. At
/// most `wanted`.
pub fn affordable_qty(
    wanted: Decimal,
    cash: Decimal,
    dp: u32,
    cost_of: impl Fn(Decimal) -> Decimal,
) -> Decimal {
    use rust_decimal::RoundingStrategy;
    if cost_of(wanted) <= cash {
        return wanted;
    }
    if cash <= Decimal::ZERO {
        return Decimal::ZERO;
    }
    // Cost is increasing in qty: bisect on the grid of 10^-dp.
    let unit = Decimal::new(1, dp);
    let (mut lo, mut hi) = (Decimal::ZERO, wanted);
    while hi - lo > unit {
        let mid = ((lo + hi) / Decimal::TWO).round_dp_with_strategy(dp, RoundingStrategy::ToZero);
        let mid = if mid <= lo { lo + unit } else { mid };
        if cost_of(mid) <= cash {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// The settlement of an execution that placed no orders.
pub fn settle_without_orders(started: &ExecutionStarted) -> OrderSettled {
    OrderSettled {
        plan_hash: started.plan_hash.clone(),
        execution_plan_hash: started.execution_plan_hash.clone(),
        orders: vec![],
        placed: 0,
        succeeded: 0,
        traded_value: Decimal::ZERO,
        positions_before: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn buys_are_capped_to_what_cash_pays_for() {
        let cost = |q: Decimal| q * dec!(100.05) + dec!(1);
        assert_eq!(affordable_qty(dec!(5), dec!(10000), 6, cost), dec!(5));
        let q = affordable_qty(dec!(50), dec!(1001), 6, cost);
        assert_eq!(q, dec!(9.995002));
        assert!(cost(q) <= dec!(1001) && cost(q + dec!(0.000001)) > dec!(1001));
        assert_eq!(affordable_qty(dec!(50), dec!(1001), 0, cost), dec!(9));
        assert_eq!(affordable_qty(dec!(50), dec!(0), 6, cost), dec!(0));
    }

    #[test]
    fn client_order_ids_are_stable_short_and_distinct() {
        let c = CorrelationId::new();
        let a = client_order_id(c, "p", "SPY", Side::Buy, 0);
        assert_eq!(a, client_order_id(c, "p", "SPY", Side::Buy, 0));
        assert!(a.len() <= CLIENT_ORDER_ID_MAX);
        assert_ne!(a, client_order_id(c, "p", "SPY", Side::Sell, 0));
        assert_ne!(a, client_order_id(c, "p", "SPY", Side::Buy, 1));
        assert_ne!(
            a,
            client_order_id(CorrelationId::new(), "p", "SPY", Side::Buy, 0)
        );
    }
}
