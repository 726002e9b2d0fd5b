//! Execution actor: on a plan, snapshot the account, then place the orders at the venue
//! (sells first, buys capped to the cash they can pay for, orders under $1 skipped) and
//! publish `execution.started.v1`, each order's submission and fill, and the settlement.

use std::collections::BTreeMap;
use std::sync::Arc;

use rust_decimal::Decimal;

use super::engine::EngineDeps;
use super::supervision::{Emit, EventHandler, HandlerFault, Reaction, Registry};
use crate::domain::Side;
use crate::events::{
    Envelope, EventKind, FailureReason, OrderFilled, OrderIntent, OrderOutcome, OrderSettled,
    OrderSubmitted, Payload, RebalancePlanned, WorkflowFailed,
};
use crate::execution::{affordable_qty, order_intents, MIN_NOTIONAL};
use crate::halt::TradingGate;
use crate::venue::sim::SimCosts;
use crate::venue::{Venue, VenueOrderStatus};

pub const NAME: &str = "execution";
pub const CONSUMES: &[EventKind] = &[EventKind::RebalancePlanned];

pub struct ExecutionActor {
    venue: Arc<dyn Venue>,
    gate: TradingGate,
    /// Estimated costs, for capping buys to cash.
    costs: SimCosts,
    qty_dp: u32,
}

impl ExecutionActor {
    pub fn new(deps: &EngineDeps) -> Self {
        Self {
            venue: deps.venue.clone(),
            gate: deps.gate.clone(),
            costs: deps.config.venue.sim.costs(),
            qty_dp: if deps.config.portfolio.fractional {
                6
            } else {
                0
            },
        }
    }
}

fn failed(reason: FailureReason, detail: String) -> Emit {
    Emit::from(WorkflowFailed {
        step: NAME.to_string(),
        reason,
        detail,
    })
}

fn skipped(intent: &OrderIntent, reason: String) -> OrderOutcome {
    OrderOutcome {
        client_order_id: intent.client_order_id.clone(),
        symbol: intent.symbol.clone(),
        side: intent.side,
        requested_qty: intent.qty,
        filled_qty: Decimal::ZERO,
        avg_price: None,
        status: "skipped".into(),
        reason: Some(reason),
    }
}

struct Run {
    venue: Arc<dyn Venue>,
    gate: TradingGate,
    costs: SimCosts,
    qty_dp: u32,
}

impl Run {
    async fn execute(
        self,
        correlation: crate::events::CorrelationId,
        plan: RebalancePlanned,
    ) -> Vec<Emit> {
        let mut started = order_intents(correlation, &plan, 0);
        let account = match self.venue.account().await {
            Ok(a) => a,
            Err(e) => {
                return vec![failed(
                    FailureReason::StepFailed,
                    format!("account snapshot: {e}"),
                )]
            }
        };
        started.positions_before = account.positions.clone();
        started.cash_before = Some(account.cash);
        let intents = started.orders.clone();
        let mut outputs = vec![Emit::from(started.clone())];
        if !intents.is_empty() && self.gate.is_halted() {
            outputs.push(failed(
                FailureReason::TradingHalted,
                "trading is halted: no new orders".into(),
            ));
            return outputs;
        }
        let prices: BTreeMap<&str, Decimal> = plan
            .items
            .iter()
            .map(|i| (i.symbol.as_str(), i.price))
            .collect();
        let mut outcomes = Vec::with_capacity(intents.len());
        let mut venue_errors = Vec::new();
        let (mut placed, mut succeeded, mut traded_value) = (0u32, 0u32, Decimal::ZERO);
        for intent in &intents {
            if self.gate.is_halted() {
                outcomes.push(skipped(intent, "trading halted".into()));
                continue;
            }
            let price = prices
                .get(intent.symbol.as_str())
                .copied()
                .unwrap_or_default();
            let mut qty = intent.qty;
            if intent.side == Side::Buy {
                let cash = match self.venue.account().await {
                    Ok(a) => a.cash,
                    Err(e) => {
                        venue_errors.push(format!("{}: account: {e}", intent.symbol));
                        outcomes.push(skipped(intent, format!("account unavailable: {e}")));
                        continue;
                    }
                };
                qty = affordable_qty(qty, cash, self.qty_dp, |q| self.costs.buy_cost(q, price));
            }
            if qty * price < MIN_NOTIONAL {
                outcomes.push(skipped(
                    intent,
                    format!(
                        "notional {} under the $1 minimum",
                        (qty * price).round_dp(2)
                    ),
                ));
                continue;
            }
            let order = OrderIntent {
                qty,
                ..intent.clone()
            };
            match self.venue.submit(&order).await {
                Err(e) => {
                    venue_errors.push(format!("{}: {e}", intent.symbol));
                    outcomes.push(OrderOutcome {
                        status: "rejected".into(),
                        reason: Some(e.to_string()),
                        ..skipped(&order, String::new())
                    });
                }
                Ok(o) => {
                    placed += 1;
                    outputs.push(Emit::after(
                        0,
                        OrderSubmitted {
                            client_order_id: o.client_order_id.clone(),
                            venue_order_id: Some(o.venue_order_id.clone()),
                            symbol: o.symbol.clone(),
                            side: o.side,
                            qty: o.qty,
                            order_type: order.order_type,
                            limit_price: order.limit_price,
                        },
                    ));
                    let submitted = outputs.len() - 1;
                    if let (true, Some(price)) = (o.filled_qty > Decimal::ZERO, o.avg_fill_price) {
                        outputs.push(Emit::after(
                            submitted,
                            OrderFilled {
                                client_order_id: o.client_order_id.clone(),
                                fill_id: format!("{}-1", o.venue_order_id),
                                symbol: o.symbol.clone(),
                                side: o.side,
                                qty: o.filled_qty,
                                price,
                                commission: o.commission,
                            },
                        ));
                        traded_value += o.filled_qty * price;
                    }
                    if o.status == VenueOrderStatus::Filled {
                        succeeded += 1;
                    }
                    outcomes.push(OrderOutcome {
                        client_order_id: o.client_order_id,
                        symbol: o.symbol,
                        side: o.side,
                        requested_qty: o.qty,
                        filled_qty: o.filled_qty,
                        avg_price: o.avg_fill_price,
                        status: o.status.as_str().into(),
                        reason: o.reject_reason,
                    });
                }
            }
        }
        if !venue_errors.is_empty() {
            outputs.push(failed(
                FailureReason::StepFailed,
                format!("venue errors: {}", venue_errors.join("; ")),
            ));
            return outputs;
        }
        outputs.push(Emit::after(
            0,
            OrderSettled {
                plan_hash: started.plan_hash,
                execution_plan_hash: started.execution_plan_hash,
                orders: outcomes,
                placed,
                succeeded,
                traded_value,
            },
        ));
        outputs
    }
}

impl EventHandler for ExecutionActor {
    fn handle(&mut self, event: &Envelope) -> Result<Reaction, HandlerFault> {
        let Payload::RebalancePlanned(plan) = &event.payload else {
            return Ok(Reaction::nothing());
        };
        let run = Run {
            venue: self.venue.clone(),
            gate: self.gate.clone(),
            costs: self.costs.clone(),
            qty_dp: self.qty_dp,
        };
        let plan = plan.clone();
        let correlation = event.correlation_id;
        Ok(Reaction::Later(Box::pin(async move {
            Ok(run.execute(correlation, plan).await)
        })))
    }
}

pub fn register(registry: &mut Registry) {
    let deps = registry.deps().clone();
    registry.add(NAME, CONSUMES, move || ExecutionActor::new(&deps));
}
