//! The execution of a rebalance plan over the [`Venue`] trait, testable without actors:
//! snapshot the account, then place the orders (sells first, buys capped to the cash
//! they can pay for, orders under $1 skipped, each approved by the risk limits and
//! written to the outbox before it is sent; smart limit orders repegged, then sent to
//! market), adopting orders an earlier handling of the same plan already placed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::order::{Order, OrderError, OrderStatus};
use super::smart_limit::{check_quote, initial_limit, repeg, QuoteLimits};
use super::{affordable_qty, client_order_id, order_intents, MIN_NOTIONAL};
use crate::clock::Clock;
use crate::costs::SimCosts;
use crate::domain::{OrderType, Side};
use crate::events::{
    FailureReason, OrderFilled, OrderIntent, OrderOutcome, OrderSettled, OrderSubmitted,
    OutcomeStatus, Payload, RebalancePlanned, WorkflowFailed,
};
use crate::halt::TradingGate;
use crate::intents::IntentRecorder;
use crate::risk::{Approved, DeployedLedger, RiskLimits};
use crate::venue::{Venue, VenueError, VenueOrder, VenueOrderStatus};
use crate::workflow_roots::WorkflowRoots;

/// The step's name in the failures it reports.
pub const STEP: &str = "execution";

/// One event to publish, and what caused it: the plan (`after: None`) or an earlier
/// output (so `submitted → filled` chains stay visible).
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    pub payload: Payload,
    pub after: Option<usize>,
}

impl Output {
    pub fn now(payload: impl Into<Payload>) -> Self {
        Self {
            payload: payload.into(),
            after: None,
        }
    }

    pub fn after(index: usize, payload: impl Into<Payload>) -> Self {
        Self {
            payload: payload.into(),
            after: Some(index),
        }
    }
}

/// Where the executor's outputs go as they happen; `emit` returns the output's index,
/// for the `after` of later ones. A `Vec` collects them (tests, the simple API).
pub trait OutputSink {
    fn emit(&mut self, output: Output) -> usize;
}

impl OutputSink for Vec<Output> {
    fn emit(&mut self, output: Output) -> usize {
        self.push(output);
        self.len() - 1
    }
}

impl Output {
    /// What tells this output apart from the others of one handling of a plan (with
    /// its event type): the client order id of a submission or a denial, the venue's
    /// fill id of a fill, nothing for the one start, settlement or failure. A handling
    /// again reports the same orders and fills under the same keys.
    pub fn key(&self) -> &str {
        match &self.payload {
            Payload::OrderSubmitted(o) => &o.client_order_id,
            Payload::OrderDenied(o) => &o.client_order_id,
            Payload::OrderFilled(f) => &f.fill_id,
            _ => "",
        }
    }
}

fn failed(reason: FailureReason, detail: String) -> Output {
    Output::now(WorkflowFailed {
        step: STEP.to_string(),
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
        status: OutcomeStatus::Skipped,
        reason: Some(reason),
    }
}

/// One venue order of a leg as this handling saw it: what was sent, the venue's last
/// snapshot, and its life (fills reported once each, by the venue's fill id).
struct Placed {
    sent: OrderIntent,
    last: VenueOrder,
    life: Order,
    submitted: usize,
}

impl Placed {
    /// Reports the submission (`after` the plan's start).
    fn new(sent: OrderIntent, first: VenueOrder, out: &mut dyn OutputSink) -> Self {
        let submitted = out.emit(Output::after(
            0,
            OrderSubmitted {
                client_order_id: first.client_order_id.clone(),
                venue_order_id: Some(first.venue_order_id.clone()),
                symbol: first.symbol.clone(),
                side: first.side,
                qty: sent.qty,
                order_type: sent.order_type,
                limit_price: sent.limit_price,
            },
        ));
        let life = Order::new(sent.qty);
        Placed {
            sent,
            last: first,
            life,
            submitted,
        }
    }

    /// Folds a snapshot in and reports the fill it shows first, if any: a report that
    /// cannot happen (a fill before acceptance, more filled than ordered) is a venue
    /// error.
    fn observe(
        &mut self,
        snapshot: VenueOrder,
        out: &mut dyn OutputSink,
    ) -> Result<(), VenueError> {
        let fill = self.life.observe(&snapshot).map_err(|e: OrderError| {
            VenueError::Unavailable(format!("order {}: {e}", self.sent.client_order_id))
        })?;
        if let Some(fill) = fill {
            out.emit(Output::after(
                self.submitted,
                OrderFilled {
                    client_order_id: snapshot.client_order_id.clone(),
                    fill_id: fill.fill_id,
                    symbol: snapshot.symbol.clone(),
                    side: snapshot.side,
                    qty: fill.qty,
                    price: fill.price,
                    commission: fill.commission,
                },
            ));
        }
        self.last = snapshot;
        Ok(())
    }
}

/// Reads of the account and the placed orders before giving up on a consistent pair.
const SNAPSHOT_TRIES: u32 = 5;

/// Waits a while on the runtime's timer (the actor hands in tokio's sleep).
pub type Pause = Arc<
    dyn Fn(Duration) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

pub struct Executor {
    pub venue: Arc<dyn Venue>,
    pub gate: TradingGate,
    pub costs: SimCosts,
    pub qty_dp: u32,
    pub smart: Option<SmartLimit>,
    pub clock: Arc<dyn Clock>,
    /// Where intents are recorded before orders go out: the journal's outbox, or in a
    /// worker the engine's over the bus (`None`: nothing journaled, as in backtests).
    pub intents: Option<Arc<dyn IntentRecorder>>,
    /// The runtime's timer, handed in so that the core names no runtime.
    pub pause: Pause,
    pub risk: RiskLimits,
    pub deployed: DeployedLedger,
    pub roots: WorkflowRoots,
}

/// Settings of smart limit execution (`execution.order_type = "limit"`).
#[derive(Clone)]
pub struct SmartLimit {
    pub fill_wait: Duration,
    pub max_repegs: u32,
    pub limits: QuoteLimits,
    /// How long one handling of a plan may take (the handler's timeout, less a margin):
    /// a leg whose limit walk would not end within it goes to market at once, so a long
    /// plan never runs into the timeout half-placed.
    pub budget: Duration,
}

impl SmartLimit {
    /// The longest one leg's limit walk waits: a fill wait per attempt.
    pub fn walk(&self) -> Duration {
        self.fill_wait * (self.max_repegs + 1)
    }
}

impl Executor {
    /// One order to the venue, written to the outbox first and resolved there after.
    async fn send(
        &self,
        correlation: crate::events::CorrelationId,
        plan_hash: &str,
        approved: &Approved,
    ) -> Result<VenueOrder, VenueError> {
        let order = approved.intent();
        if let Some(intents) = &self.intents {
            if let Err(e) = intents.intend(correlation, plan_hash, order).await {
                // Without the intent on record the order must not be sent.
                tracing::warn!(client_order_id = %order.client_order_id, error = %e, "the order intent was not recorded: not sending it");
                return Err(VenueError::Unavailable(format!(
                    "the order intent was not recorded ({e}): not sending it"
                )));
            }
            crate::fault::crash_point("outbox.intent");
        }
        let result = self.venue.submit(order).await;
        if result.is_ok() {
            // The venue has the order; nothing here knows it yet.
            crate::fault::crash_point("venue.accepted");
        }
        if let (Some(intents), Ok(o)) = (&self.intents, &result) {
            if let Err(e) = intents
                .resolve(&order.client_order_id, o.status.as_str())
                .await
            {
                tracing::warn!(client_order_id = %order.client_order_id, error = %e, "cannot record the order outcome");
            }
        }
        result
    }

    /// Sends one order and reports it: its submission, then its first snapshot's fill.
    async fn send_reported(
        &self,
        correlation: crate::events::CorrelationId,
        plan_hash: &str,
        approved: &Approved,
        out: &mut dyn OutputSink,
    ) -> Result<Placed, VenueError> {
        let first = self.send(correlation, plan_hash, approved).await?;
        let mut sent = approved.intent().clone();
        if first.qty != sent.qty {
            // The venue had this client order id already, sent by another handling of
            // the plan that sized it otherwise: that order is the one that trades, and
            // is followed as the venue shows it.
            tracing::warn!(client_order_id = %sent.client_order_id, intended = %sent.qty, at_venue = %first.qty, "the venue holds this order with another quantity: following the venue's");
            sent.qty = first.qty;
        }
        let mut placed = Placed::new(sent, first.clone(), out);
        placed.observe(first, out)?;
        Ok(placed)
    }

    /// Places one leg: a market order, or with smart execution a limit order walked
    /// toward the far side `max_repegs` times, then canceled and sent to market for the
    /// rest. Every venue order the leg used is reported as it is sent and as it fills.
    async fn place(
        &self,
        correlation: crate::events::CorrelationId,
        plan_hash: &str,
        approved: &Approved,
        started: std::time::Instant,
        out: &mut dyn OutputSink,
    ) -> Result<Vec<Placed>, VenueError> {
        let order = approved.intent();
        let market = |why: &str| {
            tracing::warn!(symbol = %order.symbol, "{why}: sending a market order");
        };
        let Some(smart) = &self.smart else {
            return Ok(vec![
                self.send_reported(correlation, plan_hash, approved, out)
                    .await?,
            ]);
        };
        if started.elapsed() + smart.walk() > smart.budget {
            market("no time left for a limit order within the handler's budget");
            return Ok(vec![
                self.send_reported(correlation, plan_hash, approved, out)
                    .await?,
            ]);
        }
        let quote = match self.venue.quote(&order.symbol).await {
            Ok(q) => q,
            Err(e) => {
                market(&format!("no quote ({e})"));
                return Ok(vec![
                    self.send_reported(correlation, plan_hash, approved, out)
                        .await?,
                ]);
            }
        };
        if let Err(problem) = check_quote(&quote, self.clock.now(), &smart.limits) {
            market(&format!("quote refused ({problem})"));
            return Ok(vec![
                self.send_reported(correlation, plan_hash, approved, out)
                    .await?,
            ]);
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
            let mut placed = self
                .send_reported(correlation, plan_hash, &leg, out)
                .await?;
            let id = placed.sent.client_order_id.clone();
            if !placed.life.status.is_terminal() {
                (self.pause)(smart.fill_wait).await;
                if let Some(now) = self.venue.order_by_client_id(&id).await? {
                    placed.observe(now, out)?;
                }
            }
            if !placed.life.status.is_terminal() {
                // Wait for the cancel to be confirmed before sending more.
                let canceled = self.venue.cancel(&id).await?;
                placed.observe(canceled, out)?;
            }
            remaining -= placed.life.filled;
            let done = placed.life.status == OrderStatus::Filled || remaining <= Decimal::ZERO;
            let rejected = placed.life.status == OrderStatus::Rejected;
            legs.push(placed);
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
        legs.push(
            self.send_reported(correlation, plan_hash, &market, out)
                .await?,
        );
        Ok(legs)
    }

    /// Orders of this plan the venue already has: the outbox's intents of the workflow
    /// when there is an outbox, else every client order id the plan can use.
    async fn already_placed(
        &self,
        correlation: crate::events::CorrelationId,
        started: &crate::events::ExecutionStarted,
    ) -> Vec<VenueOrder> {
        let listed = match &self.intents {
            // An outbox that cannot be read: every id the plan can use is looked up.
            Some(intents) => intents.intents_of(correlation).await.unwrap_or_default(),
            None => None,
        };
        let ids: Vec<String> = match listed {
            Some(ids) => ids,
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

    /// Orders an earlier handling placed, reported as the venue shows them and followed
    /// to the end as this handling's own would be: an order still open (a fill to come
    /// on a later poll) is polled until it settles, never settled as it stood.
    async fn follow_adopted(
        &self,
        adopted: Vec<&VenueOrder>,
        intent: &OrderIntent,
        out: &mut dyn OutputSink,
    ) -> Result<Vec<Placed>, VenueError> {
        let mut legs = Vec::with_capacity(adopted.len());
        for o in adopted {
            let sent = OrderIntent {
                client_order_id: o.client_order_id.clone(),
                qty: o.qty,
                ..intent.clone()
            };
            let mut placed = Placed::new(sent, o.clone(), out);
            placed.observe(o.clone(), out)?;
            if o.status.is_open() {
                let now = self.venue.settle(o.clone()).await?;
                placed.observe(now, out)?;
            }
            legs.push(placed);
        }
        Ok(legs)
    }

    /// The account and the orders an earlier handling of this plan placed, read so that
    /// they agree: a fill landing between the two reads would count twice (or never) in
    /// the positions before the plan. The orders are read again after the account until
    /// their fills stand still.
    async fn account_with_placed(
        &self,
        correlation: crate::events::CorrelationId,
        started: &crate::events::ExecutionStarted,
    ) -> Result<(crate::venue::AccountSnapshot, Vec<VenueOrder>), VenueError> {
        let fills = |orders: &[VenueOrder]| -> Vec<(String, Decimal)> {
            orders
                .iter()
                .map(|o| (o.client_order_id.clone(), o.filled_qty))
                .collect()
        };
        let mut placed = self.already_placed(correlation, started).await;
        for _ in 0..SNAPSHOT_TRIES {
            let account = self.venue.account().await?;
            if placed.is_empty() {
                return Ok((account, placed));
            }
            let again = self.already_placed(correlation, started).await;
            if fills(&again) == fills(&placed) {
                return Ok((account, again));
            }
            placed = again;
        }
        Err(VenueError::Unavailable(format!(
            "the account and the orders already placed did not agree in {SNAPSHOT_TRIES} reads (fills still coming)"
        )))
    }

    /// [`Executor::execute_into`], collected.
    pub async fn execute(
        &self,
        correlation: crate::events::CorrelationId,
        plan: &RebalancePlanned,
        day: NaiveDate,
    ) -> Vec<Output> {
        let mut outputs = Vec::new();
        self.execute_into(correlation, plan, day, &mut outputs)
            .await;
        outputs
    }

    /// Executes `plan` of workflow `correlation`, whose orders spend the risk budget of
    /// `day`, reporting to `out` as it goes: `execution.started.v1` first, then each
    /// order's submission when it is sent and each fill when the venue shows it, then
    /// the settlement, or a failure.
    pub async fn execute_into(
        &self,
        correlation: crate::events::CorrelationId,
        plan: &RebalancePlanned,
        day: NaiveDate,
        out: &mut dyn OutputSink,
    ) {
        let mut started = order_intents(correlation, plan, 0);
        // A plan handled again (redelivered after a crash or a restart) finds some of its
        // orders already at the venue: their fills are in the account, not "before" it.
        let (account, placed_before) = match self.account_with_placed(correlation, &started).await {
            Ok(read) => read,
            Err(e) => {
                out.emit(failed(reason_of(&e), format!("account snapshot: {e}")));
                return;
            }
        };
        let mut before = account.positions.clone();
        let fills = placed_before
            .iter()
            .map(|o| (&o.symbol, o.side, o.filled_qty));
        crate::domain::undo_fills(&mut before, fills);
        started.positions_before = before;
        started.cash_before = Some(account.cash);
        let intents = started.orders.clone();
        let began = std::time::Instant::now();
        out.emit(Output::now(started.clone()));
        if !intents.is_empty() && self.gate.is_halted() {
            out.emit(failed(
                FailureReason::TradingHalted,
                "trading is halted: no new orders".into(),
            ));
            return;
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
            // They are reported again as the venue shows them now: the same submissions
            // and fill ids as the earlier handling's, when it got to report them.
            let adopted: Vec<&VenueOrder> = placed_before
                .iter()
                .filter(|o| o.symbol == intent.symbol && o.side == intent.side)
                .collect();
            let (qty, approved, result) = if let Some(first) = adopted.first() {
                tracing::info!(symbol = %intent.symbol, orders = adopted.len(), "adopting orders an earlier handling of this plan placed");
                let qty = first.qty;
                let legs = self.follow_adopted(adopted, intent, out).await;
                (qty, None, legs)
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
                let held = account
                    .positions
                    .get(&intent.symbol)
                    .copied()
                    .unwrap_or_default();
                let approved = match self.risk.check(
                    order.clone(),
                    price,
                    day,
                    held,
                    &self.deployed,
                ) {
                    Ok(a) => a,
                    Err(denied) => {
                        tracing::warn!(symbol = %denied.symbol, code = denied.code.as_str(), detail = %denied.detail, "order denied by risk limits");
                        outcomes.push(OrderOutcome {
                            status: OutcomeStatus::Denied,
                            reason: Some(format!("{}: {}", denied.code.as_str(), denied.detail)),
                            ..skipped(&order, String::new())
                        });
                        out.emit(Output::after(0, *denied));
                        continue;
                    }
                };
                let result = self
                    .place(correlation, &started.plan_hash, &approved, began, out)
                    .await;
                if result.is_ok() {
                    crate::fault::crash_point("venue.submit");
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
                        status: OutcomeStatus::Rejected,
                        reason: Some(e.to_string()),
                        ..skipped(&order, String::new())
                    });
                }
                Ok(legs) => {
                    let (mut filled, mut value, mut fees) =
                        (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
                    let mut last_status = VenueOrderStatus::Rejected;
                    let mut reason = None;
                    for Placed { last: o, .. } in legs {
                        placed += 1;
                        if let (true, Some(price)) =
                            (o.filled_qty > Decimal::ZERO, o.avg_fill_price)
                        {
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
                        status: status.into(),
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
            out.emit(failed(
                reason,
                format!("venue errors: {}", venue_errors.join("; ")),
            ));
            return;
        }
        out.emit(Output::after(
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
    }
}
