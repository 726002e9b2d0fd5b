//! Execution core: from a rebalance plan to ordered order intents with deterministic
//! client order ids. Venue submission arrives with the simulated venue's fill model.

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
    }
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
