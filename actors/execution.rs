//! Execution actor: on a plan, snapshot the account, then place the orders at the venue
//! (sells first, buys capped to the cash they can pay for, orders under $1 skipped) and
//! publish `execution.started.v1`, each order's submission and fill, and the settlement.

use std::collections::BTreeMap;
use std::sync::Arc;

use rust_decimal::Decimal;

use super::deps::EngineDeps;
use super::supervision::{Emit, EventHandler, HandlerFault, Reaction, Registry};
use crate::clock::Clock;
use crate::config::OrderTypeChoice;
use crate::domain::OrderType;
use crate::domain::Side;
use crate::events::{
    Envelope, EventKind, FailureReason, OrderFilled, OrderIntent, OrderOutcome, OrderSettled,
    OrderSubmitted, Payload, RebalancePlanned, WorkflowFailed,
};
use crate::execution::smart_limit::{check_quote, initial_limit, repeg, QuoteLimits};
use crate::execution::{affordable_qty, client_order_id, order_intents, MIN_NOTIONAL};
use crate::halt::TradingGate;
use crate::journal::outbox::Outbox;
use crate::risk::{Approved, DeployedLedger, RiskLimits};
use crate::venue::sim::SimCosts;
use crate::venue::{Venue, VenueOrderStatus};
use crate::venue::{VenueError, VenueOrder};
use crate::workflow_roots::WorkflowRoots;
use chrono::NaiveDate;
use std::time::Duration;

pub const NAME: &str = "execution";
pub const CONSUMES: &[EventKind] = &[EventKind::RebalancePlanned];

pub struct ExecutionActor {
    venue: Arc<dyn Venue>,
    gate: TradingGate,
    /// Estimated costs, for capping buys to cash.
    costs: SimCosts,
    qty_dp: u32,
    smart: Option<SmartLimit>,
    clock: Arc<dyn Clock>,
    outbox: Option<SharedOutbox>,
    risk: RiskLimits,
    deployed: DeployedLedger,
    roots: WorkflowRoots,
}

type SharedOutbox = Arc<std::sync::Mutex<Outbox>>;

impl ExecutionActor {
    pub fn new(deps: &EngineDeps) -> Self {
        let e = &deps.config.execution;
        Self {
            venue: deps.venue.clone(),
            gate: deps.gate.clone(),
            costs: deps.config.venue.sim.costs(),
            qty_dp: if deps.config.portfolio.fractional {
                6
            } else {
                0
            },
            smart: (e.order_type == OrderTypeChoice::Limit).then(|| SmartLimit {
                fill_wait: Duration::from_millis(e.fill_wait_ms),
                max_repegs: e.max_repegs,
                limits: QuoteLimits {
                    max_spread_pct: e.max_spread_pct,
                    max_age: Duration::from_secs(e.max_quote_age_secs),
                },
            }),
            clock: deps.clock.clone(),
            outbox: deps.outbox.clone(),
            risk: RiskLimits::from_config(&deps.config.risk),
            deployed: deps.deployed.clone(),
            roots: deps.roots.clone(),
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

/// A venue that refuses the credentials is fatal; anything else fails just this step.
fn reason_of(e: &VenueError) -> FailureReason {
    match e {
        VenueError::Unauthorized(_) => FailureReason::Unauthorized,
        _ => FailureReason::StepFailed,
    }
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
    smart: Option<SmartLimit>,
    clock: Arc<dyn Clock>,
    outbox: Option<SharedOutbox>,
    risk: RiskLimits,
    deployed: DeployedLedger,
    roots: WorkflowRoots,
    /// The trading day whose risk budget the orders spend.
    day: NaiveDate,
}

/// Settings of smart limit execution (`execution.order_type = "limit"`).
#[derive(Clone)]
struct SmartLimit {
    fill_wait: Duration,
    max_repegs: u32,
    limits: QuoteLimits,
}

impl Run {
    /// One order to the venue, written to the outbox first and resolved there after.
    async fn send(
        &self,
        correlation: crate::events::CorrelationId,
        plan_hash: &str,
        approved: &Approved,
    ) -> Result<VenueOrder, VenueError> {
        let order = approved.intent();
        if let Some(outbox) = &self.outbox {
            let recorded = outbox
                .lock()
                .map_err(|_| VenueError::Unavailable("outbox lock poisoned".into()))?
                .intend(correlation, plan_hash, order);
            if let Err(e) = recorded {
                // Without the intent on disk the order must not be sent.
                return Err(VenueError::Unavailable(format!(
                    "cannot record the order intent: {e}"
                )));
            }
            crate::drill::crash_point("outbox.intent");
        }
        let result = self.venue.submit(order).await;
        if result.is_ok() {
            // The venue has the order; nothing here knows it yet.
            crate::drill::crash_point("venue.accepted");
        }
        if let (Some(outbox), Ok(o)) = (&self.outbox, &result) {
            if let Ok(outbox) = outbox.lock() {
                if let Err(e) = outbox.resolve(&order.client_order_id, o.status.as_str()) {
                    tracing::warn!(client_order_id = %order.client_order_id, error = %e, "cannot record the order outcome");
                }
            }
        }
        result
    }

    /// Places one leg: a market order, or with smart execution a limit order walked
    /// toward the far side `max_repegs` times, then canceled and sent to market for the
    /// rest. Returns every venue order the leg used, with what was sent.
    async fn place(
        &self,
        correlation: crate::events::CorrelationId,
        plan_hash: &str,
        approved: &Approved,
    ) -> Result<Vec<(OrderIntent, VenueOrder)>, VenueError> {
        let order = approved.intent();
        let Some(smart) = &self.smart else {
            return Ok(vec![(
                order.clone(),
                self.send(correlation, plan_hash, approved).await?,
            )]);
        };
        let quote = match self.venue.quote(&order.symbol).await {
            Ok(q) => q,
            Err(e) => {
                tracing::warn!(symbol = %order.symbol, error = %e, "no quote: sending a market order");
                return Ok(vec![(
                    order.clone(),
                    self.send(correlation, plan_hash, approved).await?,
                )]);
            }
        };
        if let Err(problem) = check_quote(&quote, self.clock.now(), &smart.limits) {
            tracing::warn!(symbol = %order.symbol, %problem, "quote refused: sending a market order");
            return Ok(vec![(
                order.clone(),
                self.send(correlation, plan_hash, approved).await?,
            )]);
        }
        let mut legs = Vec::new();
        let mut remaining = order.qty;
        let mut limit = initial_limit(order.side, &quote);
        let mut quote = quote;
        for attempt in 0..=smart.max_repegs {
            let leg = approved.leg(
                client_order_id(correlation, plan_hash, &order.symbol, order.side, attempt),
                remaining,
                OrderType::Limit,
                Some(limit),
            );
            let sent = leg.intent().clone();
            let mut placed = self.send(correlation, plan_hash, &leg).await?;
            if placed.status.is_open() {
                tokio::time::sleep(smart.fill_wait).await;
                if let Some(now) = self.venue.order_by_client_id(&sent.client_order_id).await? {
                    placed = now;
                }
            }
            if placed.status.is_open() {
                // Wait for the cancel to be confirmed before sending more.
                placed = self.venue.cancel(&sent.client_order_id).await?;
            }
            remaining -= placed.filled_qty;
            let done = placed.status == VenueOrderStatus::Filled || remaining <= Decimal::ZERO;
            let rejected = placed.status == VenueOrderStatus::Rejected;
            legs.push((sent, placed));
            if done || rejected {
                return Ok(legs);
            }
            if attempt < smart.max_repegs {
                if let Ok(q) = self.venue.quote(&order.symbol).await {
                    quote = q;
                }
                limit = repeg(order.side, limit, &quote);
            }
        }
        let market = approved.leg(
            client_order_id(
                correlation,
                plan_hash,
                &order.symbol,
                order.side,
                smart.max_repegs + 1,
            ),
            remaining,
            OrderType::Market,
            None,
        );
        let placed = self.send(correlation, plan_hash, &market).await?;
        legs.push((market.intent().clone(), placed));
        Ok(legs)
    }

    /// Orders of this plan the venue already has: the outbox's intents of the workflow
    /// when there is an outbox, else every client order id the plan can use.
    async fn already_placed(
        &self,
        correlation: crate::events::CorrelationId,
        started: &crate::events::ExecutionStarted,
    ) -> Vec<VenueOrder> {
        let ids: Vec<String> = match &self.outbox {
            Some(outbox) => match outbox.lock().map(|o| o.intents_of(correlation)) {
                Ok(Ok(ids)) => ids,
                _ => Vec::new(),
            },
            None => {
                let attempts = self.smart.as_ref().map_or(0, |s| s.max_repegs + 1);
                started
                    .orders
                    .iter()
                    .flat_map(|o| {
                        (0..=attempts).map(|a| {
                            client_order_id(correlation, &started.plan_hash, &o.symbol, o.side, a)
                        })
                    })
                    .collect()
            }
        };
        let mut found = Vec::new();
        for id in ids {
            if let Ok(Some(o)) = self.venue.order_by_client_id(&id).await {
                found.push(o);
            }
        }
        found
    }

    async fn execute(
        self,
        correlation: crate::events::CorrelationId,
        plan: &RebalancePlanned,
    ) -> Vec<Emit> {
        let mut started = order_intents(correlation, plan, 0);
        let account = match self.venue.account().await {
            Ok(a) => a,
            Err(e) => return vec![failed(reason_of(&e), format!("account snapshot: {e}"))],
        };
        // A plan handled again (redelivered after a crash or a restart) finds some of its
        // orders already at the venue: their fills are in the account, not "before" it.
        let mut before = account.positions.clone();
        let placed_before = self.already_placed(correlation, &started).await;
        for o in &placed_before {
            let signed = match o.side {
                Side::Buy => o.filled_qty,
                Side::Sell => -o.filled_qty,
            };
            *before.entry(o.symbol.clone()).or_default() -= signed;
        }
        before.retain(|_, q| !q.is_zero());
        started.positions_before = before;
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
        // Cash for capping buys: the venue's figure, read again only after a sell or an
        // error (the venue has the last word on proceeds); after a buy of ours it is the
        // figure less what that buy cost, so consecutive buys need no account request.
        let mut known_cash = Some(account.cash);
        let mut outcomes = Vec::with_capacity(intents.len());
        let mut venue_errors = Vec::new();
        let mut unauthorized = false;
        let (mut placed, mut succeeded, mut traded_value) = (0u32, 0u32, Decimal::ZERO);
        for intent in &intents {
            if self.gate.is_halted() {
                outcomes.push(skipped(intent, "trading halted".into()));
                continue;
            }
            if self.roots.is_closed(&correlation) {
                // A plan handled after its workflow failed or timed out (a redelivery
                // that outlived it): its retry owns the day now.
                outcomes.push(skipped(intent, "workflow already closed".into()));
                continue;
            }
            // Orders a previous handling of this plan placed are adopted as they are:
            // capping or skipping them again would hide fills the account already has.
            let adopted: Vec<(OrderIntent, VenueOrder)> = placed_before
                .iter()
                .filter(|o| o.symbol == intent.symbol && o.side == intent.side)
                .map(|o| {
                    let sent = OrderIntent {
                        client_order_id: o.client_order_id.clone(),
                        qty: o.qty,
                        ..intent.clone()
                    };
                    (sent, o.clone())
                })
                .collect();
            let (qty, approved, result) = if let Some((first, _)) = adopted.first() {
                tracing::info!(symbol = %intent.symbol, orders = adopted.len(), "adopting orders an earlier handling of this plan placed");
                (first.qty, None, Ok(adopted))
            } else {
                let price = prices
                    .get(intent.symbol.as_str())
                    .copied()
                    .unwrap_or_default();
                let mut qty = intent.qty;
                if intent.side == Side::Buy {
                    let cash = match known_cash {
                        Some(c) => c,
                        None => match self.venue.account().await {
                            Ok(a) => a.cash,
                            Err(e) => {
                                unauthorized |= matches!(e, VenueError::Unauthorized(_));
                                venue_errors.push(format!("{}: account: {e}", intent.symbol));
                                outcomes.push(skipped(intent, format!("account unavailable: {e}")));
                                continue;
                            }
                        },
                    };
                    known_cash = Some(cash);
                    qty = affordable_qty(qty, cash, self.qty_dp, |q| self.costs.buy_cost(q, price));
                }
                if self.qty_dp > 0 {
                    match self.venue.is_fractionable(&intent.symbol).await {
                        Ok(true) => {}
                        Ok(false) => qty = qty.trunc(),
                        Err(e) => {
                            unauthorized |= matches!(e, VenueError::Unauthorized(_));
                            venue_errors.push(format!("{}: asset: {e}", intent.symbol));
                            outcomes.push(skipped(intent, format!("asset unavailable: {e}")));
                            continue;
                        }
                    }
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
                let approved = match self
                    .risk
                    .check(order.clone(), price, self.day, &self.deployed)
                {
                    Ok(a) => a,
                    Err(denied) => {
                        tracing::warn!(symbol = %denied.symbol, code = denied.code.as_str(), detail = %denied.detail, "order denied by risk limits");
                        outcomes.push(OrderOutcome {
                            status: "denied".into(),
                            reason: Some(format!("{}: {}", denied.code.as_str(), denied.detail)),
                            ..skipped(&order, String::new())
                        });
                        outputs.push(Emit::after(0, *denied));
                        continue;
                    }
                };
                let result = self.place(correlation, &started.plan_hash, &approved).await;
                if result.is_ok() {
                    crate::drill::crash_point("venue.submit");
                }
                (qty, Some(approved), result)
            };
            let order = OrderIntent {
                qty,
                ..intent.clone()
            };
            let adopted = approved.is_none();
            match result {
                Err(e) => {
                    known_cash = None;
                    unauthorized |= matches!(e, VenueError::Unauthorized(_));
                    venue_errors.push(format!("{}: {e}", intent.symbol));
                    outcomes.push(OrderOutcome {
                        status: "rejected".into(),
                        reason: Some(e.to_string()),
                        ..skipped(&order, String::new())
                    });
                }
                Ok(legs) => {
                    let (mut filled, mut value, mut fees) =
                        (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
                    let mut last_status = VenueOrderStatus::Rejected;
                    let mut reason = None;
                    for (sent, o) in legs {
                        placed += 1;
                        outputs.push(Emit::after(
                            0,
                            OrderSubmitted {
                                client_order_id: o.client_order_id.clone(),
                                venue_order_id: Some(o.venue_order_id.clone()),
                                symbol: o.symbol.clone(),
                                side: o.side,
                                qty: sent.qty,
                                order_type: sent.order_type,
                                limit_price: sent.limit_price,
                            },
                        ));
                        let submitted = outputs.len() - 1;
                        if let (true, Some(price)) =
                            (o.filled_qty > Decimal::ZERO, o.avg_fill_price)
                        {
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
                            filled += o.filled_qty;
                            value += o.filled_qty * price;
                            fees += o.commission;
                        }
                        last_status = o.status;
                        reason = o.reject_reason.or(reason);
                    }
                    traded_value += value;
                    // Adopted orders are in the account read at the start already.
                    known_cash = match (intent.side, known_cash, adopted) {
                        (_, cash, true) => cash,
                        (Side::Buy, Some(cash), false) => Some(cash - value - fees),
                        _ => None,
                    };
                    if let Some(approved) = &approved {
                        let bought = if intent.side == Side::Buy {
                            value
                        } else {
                            Decimal::ZERO
                        };
                        approved.settle(&self.deployed, bought);
                    }
                    let status = if filled >= qty {
                        succeeded += 1;
                        VenueOrderStatus::Filled
                    } else if filled > Decimal::ZERO {
                        VenueOrderStatus::PartiallyFilled
                    } else {
                        last_status
                    };
                    outcomes.push(OrderOutcome {
                        client_order_id: intent.client_order_id.clone(),
                        symbol: intent.symbol.clone(),
                        side: intent.side,
                        requested_qty: qty,
                        filled_qty: filled,
                        avg_price: (filled > Decimal::ZERO).then(|| (value / filled).round_dp(4)),
                        status: status.as_str().into(),
                        reason,
                    });
                }
            }
        }
        if !venue_errors.is_empty() {
            let reason = if unauthorized {
                FailureReason::Unauthorized
            } else {
                FailureReason::StepFailed
            };
            outputs.push(failed(
                reason,
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
                positions_before: Some(started.positions_before),
            },
        ));
        outputs
    }
}

impl EventHandler for ExecutionActor {
    fn handle(&mut self, event: &Arc<Envelope>) -> Result<Reaction, HandlerFault> {
        let Payload::RebalancePlanned(plan) = &event.payload else {
            return Ok(Reaction::nothing());
        };
        if !plan.has_trades() {
            // The broker completes such a workflow with the plan: nothing to execute.
            return Ok(Reaction::nothing());
        }
        let run = Run {
            venue: self.venue.clone(),
            gate: self.gate.clone(),
            costs: self.costs.clone(),
            qty_dp: self.qty_dp,
            smart: self.smart.clone(),
            clock: self.clock.clone(),
            outbox: self.outbox.clone(),
            risk: self.risk.clone(),
            deployed: self.deployed.clone(),
            roots: self.roots.clone(),
            day: self
                .roots
                .get(&event.correlation_id)
                .map(|r| r.as_of)
                .unwrap_or_else(|| crate::clock::new_york_date(self.clock.now())),
        };
        // The plan is read in place, from the shared event: no copy of it per run.
        let event = event.clone();
        Ok(Reaction::Later(Box::pin(async move {
            let Payload::RebalancePlanned(plan) = &event.payload else {
                return Ok(Vec::new());
            };
            Ok(run.execute(event.correlation_id, plan).await)
        })))
    }
}

pub fn register(registry: &mut Registry) {
    let deps = registry.deps().clone();
    registry.add(NAME, CONSUMES, move || ExecutionActor::new(&deps));
}
