//! The event contracts: one struct per event type and the [`Payload`] enum that the
//! broker routes on. Evolution is additive: a field added later carries
//! `#[serde(default)]`, unknown fields are ignored, so v1 JSON keeps deserialising.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::canonical;
use super::decimal_text::text;
use super::ids::{CorrelationId, EventId};
use crate::domain::{OrderType, PlanAction, RunMode, Side, Symbol, Trigger};

/// Root of every workflow: run the pipeline as of one trading day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowStarted {
    pub as_of: NaiveDate,
    #[serde(default)]
    pub mode: RunMode,
    /// What started it.
    #[serde(default)]
    pub trigger: Trigger,
    /// 0 for a first run; n for the n-th retry of a failed workflow by recovery.
    #[serde(default)]
    pub attempt: u32,
}

/// One strategy file's contribution to a signal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StrategyAllocation {
    pub name: String,
    /// The file's configured weight; its share of the portfolio is this over the sum of
    /// every file's (see `strategy::consolidate`).
    #[serde(serialize_with = "text::plain")]
    pub file_weight: Decimal,
    /// In-file weights by symbol, summing to 1 (empty when the file failed).
    #[serde(serialize_with = "text::map")]
    pub weights: BTreeMap<Symbol, Decimal>,
    /// Indicator values that decided the allocation, keyed by the call (`rsi(SPY,10)`).
    #[serde(default)]
    #[serde(serialize_with = "text::map")]
    pub indicators: BTreeMap<compact_str::CompactString, Decimal>,
    /// Why the file's slice went to cash, when it failed to evaluate.
    #[serde(default)]
    pub error: Option<String>,
    /// Whether the file's slice trades today, for books that keep slices (several
    /// files, or a trading rule other than daily); absent: it trades to `weights`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice: Option<SliceTrading>,
}

/// A slice's day (see `strategy::slices`): it trades to its file's `weights`, or keeps
/// `held`, what it holds since its last trade, drifted with prices.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SliceTrading {
    pub trades: bool,
    /// The rule that made it trade, or why none did.
    pub reason: String,
    /// The slice's share of the portfolio today.
    #[serde(serialize_with = "text::plain")]
    pub share: Decimal,
    /// Its weights within itself before today's trades.
    #[serde(serialize_with = "text::map")]
    pub held: BTreeMap<Symbol, Decimal>,
}

impl StrategyAllocation {
    /// The slice's share of the portfolio and its weights after today's decision: the
    /// file's targets if it trades, what it holds if not. `None` for a failed file.
    pub fn effective(
        &self,
        total_file_weight: Decimal,
    ) -> Option<(Decimal, &BTreeMap<Symbol, Decimal>)> {
        if self.error.is_some() {
            return None;
        }
        Some(match &self.slice {
            Some(s) if !s.trades => (s.share, &s.held),
            Some(s) => (s.share, &self.weights),
            None if total_file_weight > Decimal::ZERO => {
                (self.file_weight / total_file_weight, &self.weights)
            }
            None => return None,
        })
    }
}

/// What a signal hash covers of one file's allocation (fields in key order, see
/// `canonical`): not the indicator values, which explain it.
#[derive(Serialize)]
struct StrategyContent<'a> {
    error: Option<&'a str>,
    #[serde(serialize_with = "canonical::dec")]
    file_weight: Decimal,
    name: &'a str,
    /// Present only for slices: whether it trades and its share (the held weights
    /// are in the targets when it does not).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(serialize_with = "canonical::opt_dec")]
    share: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trades: Option<bool>,
    #[serde(serialize_with = "canonical::dec_map")]
    weights: &'a BTreeMap<Symbol, Decimal>,
}

/// What `signal_hash` covers: the day, the targets and each file's allocation.
#[derive(Serialize)]
struct SignalContent<'a> {
    as_of: NaiveDate,
    strategies: Vec<StrategyContent<'a>>,
    #[serde(serialize_with = "canonical::dec_map")]
    target_weights: &'a BTreeMap<Symbol, Decimal>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignalGenerated {
    pub as_of: NaiveDate,
    /// Consolidated weights by symbol, 6 decimals, summing to exactly 1 (or empty: all cash).
    #[serde(serialize_with = "text::map")]
    pub target_weights: BTreeMap<Symbol, Decimal>,
    #[serde(default)]
    pub strategies: Vec<StrategyAllocation>,
    pub signal_hash: String,
    /// blake3 of the market data the signal was computed from.
    #[serde(default)]
    pub market_snapshot_id: String,
}

impl SignalGenerated {
    /// The hash of the trade-relevant content: date, targets and per-file allocations.
    pub fn compute_hash(
        as_of: NaiveDate,
        target_weights: &BTreeMap<Symbol, Decimal>,
        strategies: &[StrategyAllocation],
    ) -> String {
        let content = SignalContent {
            as_of,
            strategies: strategies
                .iter()
                .map(|s| StrategyContent {
                    error: s.error.as_deref(),
                    file_weight: s.file_weight,
                    name: &s.name,
                    share: s.slice.as_ref().map(|t| t.share),
                    trades: s.slice.as_ref().map(|t| t.trades),
                    weights: &s.weights,
                })
                .collect(),
            target_weights,
        };
        canonical::hash("signal.v1", &content)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AllocationRow {
    pub symbol: Symbol,
    #[serde(serialize_with = "text::plain")]
    pub target_weight: Decimal,
    #[serde(serialize_with = "text::plain")]
    pub target_value: Decimal,
    #[serde(serialize_with = "text::plain")]
    pub current_value: Decimal,
    #[serde(serialize_with = "text::plain")]
    pub delta: Decimal,
}

/// Target against current allocation, per symbol, before the plan is cut.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AllocationCompared {
    pub signal_hash: String,
    #[serde(serialize_with = "text::plain")]
    pub portfolio_value: Decimal,
    pub rows: Vec<AllocationRow>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanItem {
    pub symbol: Symbol,
    pub action: PlanAction,
    #[serde(serialize_with = "text::plain")]
    pub qty: Decimal,
    #[serde(serialize_with = "text::plain")]
    pub price: Decimal,
    #[serde(serialize_with = "text::plain")]
    pub target_value: Decimal,
    #[serde(serialize_with = "text::plain")]
    pub current_value: Decimal,
    #[serde(serialize_with = "text::plain")]
    pub delta: Decimal,
}

/// What `plan_hash` covers of one item: all of it (fields in key order).
#[derive(Serialize)]
struct PlanItemContent<'a> {
    action: PlanAction,
    #[serde(serialize_with = "canonical::dec")]
    current_value: Decimal,
    #[serde(serialize_with = "canonical::dec")]
    delta: Decimal,
    #[serde(serialize_with = "canonical::dec")]
    price: Decimal,
    #[serde(serialize_with = "canonical::dec")]
    qty: Decimal,
    symbol: &'a str,
    #[serde(serialize_with = "canonical::dec")]
    target_value: Decimal,
}

impl<'a> From<&'a PlanItem> for PlanItemContent<'a> {
    fn from(i: &'a PlanItem) -> Self {
        Self {
            action: i.action,
            current_value: i.current_value,
            delta: i.delta,
            price: i.price,
            qty: i.qty,
            symbol: &i.symbol,
            target_value: i.target_value,
        }
    }
}

/// What `plan_hash` covers: the items and the values they derive from.
#[derive(Serialize)]
struct PlanContent<'a> {
    #[serde(serialize_with = "canonical::dec")]
    cash: Decimal,
    items: Vec<PlanItemContent<'a>>,
    #[serde(serialize_with = "canonical::dec")]
    portfolio_value: Decimal,
    signal_hash: &'a str,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RebalancePlanned {
    pub signal_hash: String,
    pub plan_hash: String,
    pub account_snapshot_id: String,
    #[serde(serialize_with = "text::plain")]
    pub portfolio_value: Decimal,
    #[serde(serialize_with = "text::plain")]
    pub cash: Decimal,
    #[serde(serialize_with = "text::plain")]
    pub investable: Decimal,
    /// Sells, then buys, then holds; each by symbol.
    pub items: Vec<PlanItem>,
}

impl RebalancePlanned {
    /// Hash of the plan's trade-relevant content (items and the values they derive from).
    pub fn compute_hash(
        signal_hash: &str,
        portfolio_value: Decimal,
        cash: Decimal,
        items: &[PlanItem],
    ) -> String {
        let content = PlanContent {
            cash,
            items: items.iter().map(PlanItemContent::from).collect(),
            portfolio_value,
            signal_hash,
        };
        canonical::hash("plan.v1", &content)
    }

    pub fn has_trades(&self) -> bool {
        self.items.iter().any(|i| i.action != PlanAction::Hold)
    }
}

/// An order the execution step intends to place; its `client_order_id` is derived from
/// the plan so a retry can never create a second order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderIntent {
    pub client_order_id: String,
    pub symbol: Symbol,
    pub side: Side,
    #[serde(serialize_with = "text::plain")]
    pub qty: Decimal,
    #[serde(default)]
    pub order_type: OrderType,
    #[serde(default)]
    #[serde(serialize_with = "text::opt")]
    pub limit_price: Option<Decimal>,
}

/// What `execution_plan_hash` covers of one intent: not its client order id, which
/// is derived from the plan (fields in key order).
#[derive(Serialize)]
struct OrderContent<'a> {
    #[serde(serialize_with = "canonical::opt_dec")]
    limit_price: Option<Decimal>,
    order_type: OrderType,
    #[serde(serialize_with = "canonical::dec")]
    qty: Decimal,
    side: Side,
    symbol: &'a str,
}

/// What `execution_plan_hash` covers: the ordered intents and their plan.
#[derive(Serialize)]
struct ExecutionContent<'a> {
    orders: Vec<OrderContent<'a>>,
    plan_hash: &'a str,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecutionStarted {
    pub plan_hash: String,
    pub execution_plan_hash: String,
    pub orders: Vec<OrderIntent>,
    /// The venue's positions just before the first order: reconciliation's baseline.
    #[serde(default)]
    #[serde(serialize_with = "text::map")]
    pub positions_before: BTreeMap<Symbol, Decimal>,
    #[serde(default)]
    #[serde(serialize_with = "text::opt")]
    pub cash_before: Option<Decimal>,
}

impl ExecutionStarted {
    /// Hash of the ordered intents (sides, symbols, quantities, prices) and their plan.
    pub fn compute_hash(plan_hash: &str, orders: &[OrderIntent]) -> String {
        let content = ExecutionContent {
            orders: orders
                .iter()
                .map(|o| OrderContent {
                    limit_price: o.limit_price,
                    order_type: o.order_type,
                    qty: o.qty,
                    side: o.side,
                    symbol: &o.symbol,
                })
                .collect(),
            plan_hash,
        };
        canonical::hash("execution_plan.v1", &content)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderSubmitted {
    pub client_order_id: String,
    #[serde(default)]
    pub venue_order_id: Option<String>,
    pub symbol: Symbol,
    pub side: Side,
    #[serde(serialize_with = "text::plain")]
    pub qty: Decimal,
    #[serde(default)]
    pub order_type: OrderType,
    #[serde(default)]
    #[serde(serialize_with = "text::opt")]
    pub limit_price: Option<Decimal>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderFilled {
    pub client_order_id: String,
    /// Venue's fill identity; fills are deduplicated by it.
    pub fill_id: String,
    pub symbol: Symbol,
    pub side: Side,
    #[serde(serialize_with = "text::plain")]
    pub qty: Decimal,
    #[serde(serialize_with = "text::plain")]
    pub price: Decimal,
    #[serde(default)]
    #[serde(serialize_with = "text::plain")]
    pub commission: Decimal,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderOutcome {
    pub client_order_id: String,
    pub symbol: Symbol,
    pub side: Side,
    #[serde(serialize_with = "text::plain")]
    pub requested_qty: Decimal,
    #[serde(serialize_with = "text::plain")]
    pub filled_qty: Decimal,
    #[serde(default)]
    #[serde(serialize_with = "text::opt")]
    pub avg_price: Option<Decimal>,
    pub status: OutcomeStatus,
    #[serde(default)]
    pub reason: Option<String>,
}

/// What became of one order of a plan. The wire names are those journals hold
/// (payload hashes cover them): `filled`, `partially_filled`, `accepted` (still open
/// when execution stopped following it), `canceled`, `rejected`, `skipped` (not sent),
/// `denied` (refused by the risk limits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeStatus {
    Filled,
    PartiallyFilled,
    Accepted,
    Canceled,
    Rejected,
    Skipped,
    Denied,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderSettled {
    pub plan_hash: String,
    pub execution_plan_hash: String,
    pub orders: Vec<OrderOutcome>,
    pub placed: u32,
    pub succeeded: u32,
    #[serde(serialize_with = "text::plain")]
    pub traded_value: Decimal,
    /// The positions before the first order (as in `execution.started.v1`), so that a
    /// settlement is reconcilable on its own, e.g. when a restarted engine resumes it.
    #[serde(default)]
    #[serde(serialize_with = "text::opt_map")]
    pub positions_before: Option<BTreeMap<Symbol, Decimal>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReconciliationStatus {
    Ok,
    Drift,
    /// The venue could not be read (unreachable, credentials refused): nothing compared.
    Failed,
}

impl ReconciliationStatus {
    /// The wire name (serde's).
    pub fn as_str(self) -> &'static str {
        match self {
            ReconciliationStatus::Ok => "ok",
            ReconciliationStatus::Drift => "drift",
            ReconciliationStatus::Failed => "failed",
        }
    }
}

/// Ask reconciliation to compare the venue with what the journal expects, outside a
/// workflow (at engine start, or by hand).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReconciliationRequested {
    /// `startup`, `manual`, `drill`.
    pub reason: String,
    /// Positions the journal says the account should hold (the last execution's
    /// positions before plus its fills); `None`: the journal has no execution yet.
    #[serde(default)]
    #[serde(serialize_with = "text::opt_map")]
    pub expected_positions: Option<BTreeMap<Symbol, Decimal>>,
    /// The trading day a corrective workflow would run as of.
    #[serde(default)]
    pub as_of: Option<NaiveDate>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PositionCheck {
    pub symbol: Symbol,
    #[serde(serialize_with = "text::plain")]
    pub expected_qty: Decimal,
    #[serde(serialize_with = "text::plain")]
    pub actual_qty: Decimal,
    #[serde(default)]
    #[serde(serialize_with = "text::opt")]
    pub expected_value: Option<Decimal>,
    #[serde(default)]
    #[serde(serialize_with = "text::opt")]
    pub actual_value: Option<Decimal>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReconciliationCompleted {
    pub status: ReconciliationStatus,
    pub positions: Vec<PositionCheck>,
    #[serde(default)]
    #[serde(serialize_with = "text::opt")]
    pub expected_cash: Option<Decimal>,
    #[serde(default)]
    #[serde(serialize_with = "text::opt")]
    pub actual_cash: Option<Decimal>,
    /// Client order ids open at the venue that no journaled intent explains.
    #[serde(default)]
    pub unexplained_orders: Vec<String>,
    /// Why the status is what it is, in words (the venue error of a failed check, the
    /// symbols that drifted).
    #[serde(default)]
    pub detail: Option<String>,
}

/// Why a risk check refused an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskCode {
    MaxOrderNotional,
    MaxDailyNotional,
    SymbolNotAllowed,
}

impl RiskCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RiskCode::MaxOrderNotional => "max_order_notional",
            RiskCode::MaxDailyNotional => "max_daily_notional",
            RiskCode::SymbolNotAllowed => "symbol_not_allowed",
        }
    }
}

/// An order the risk limits refused before it reached the venue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderDenied {
    pub client_order_id: String,
    pub symbol: Symbol,
    pub side: Side,
    #[serde(serialize_with = "text::plain")]
    pub qty: Decimal,
    /// qty × the plan's price.
    #[serde(serialize_with = "text::plain")]
    pub notional: Decimal,
    pub code: RiskCode,
    /// The limit breached (`None` for a symbol outside `allowed_symbols`).
    #[serde(default)]
    #[serde(serialize_with = "text::opt")]
    pub limit: Option<Decimal>,
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryKind {
    /// Failure recorded; nothing to repair.
    Noted,
    CancelOpenOrders,
    Retry,
    GiveUp,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecoveryAction {
    pub failed_correlation: CorrelationId,
    pub action: RecoveryKind,
    #[serde(default)]
    pub attempt: u32,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowCompleted {
    pub orders_placed: u32,
    #[serde(default)]
    pub duration_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// The workflow exceeded `workflow_timeout_secs`.
    Timeout,
    /// An event of the workflow failed its handler twice and was dead-lettered.
    DeadLetter,
    /// A business step reported failure (the step names which).
    StepFailed,
    /// Trading was halted while the workflow ran.
    TradingHalted,
    /// The venue refused the credentials (401/403): fatal, trading halts.
    Unauthorized,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Timeout => "timeout",
            FailureReason::DeadLetter => "dead_letter",
            FailureReason::StepFailed => "step_failed",
            FailureReason::TradingHalted => "trading_halted",
            FailureReason::Unauthorized => "unauthorized",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowFailed {
    /// The step that failed: `strategy`, `portfolio`, `execution`, `broker`, ...
    pub step: String,
    pub reason: FailureReason,
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HaltReason {
    /// An actor exceeded its restart policy.
    RestartIntensity,
    Manual,
    RiskLimit,
    Reconciliation,
    Authorization,
    /// Recovery gave up on a workflow after its retries.
    RecoveryExhausted,
}

/// A business actor failed on an event and was restarted (the event redelivered, or
/// dead-lettered after its second failure). Journaled so that `status` and `trace` show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActorRestarted {
    pub actor: String,
    pub error: String,
    /// Failures of this event so far.
    pub failures: u8,
    pub dead_lettered: bool,
}

/// Trading resumes after a halt (`alchemiser resume`, `run --resume`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TradingResumed {
    pub detail: String,
}

/// Trading stops: no new workflows, execution refuses new orders.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TradingHalted {
    pub reason: HaltReason,
    pub detail: String,
}

/// The broker refused an event (bad causation, duplicate id, closed workflow).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventRejected {
    pub event_id: EventId,
    pub event_type: String,
    pub correlation_id: CorrelationId,
    #[serde(default)]
    pub causation_id: Option<EventId>,
    pub reason: String,
}

macro_rules! payloads {
    ($( $variant:ident => $wire:literal ),+ $(,)?) => {
        /// Every event's typed content; one variant per contract, named as on the wire.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Payload {
            $( $variant($variant), )+
        }

        /// Field-less mirror of [`Payload`]: what the broker routes and counts on.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum EventKind {
            $( $variant, )+
        }

        impl EventKind {
            pub const ALL: &'static [EventKind] = &[$( EventKind::$variant, )+];
            pub const COUNT: usize = Self::ALL.len();

            /// Stable wire name, ending in its version.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( EventKind::$variant => $wire, )+
                }
            }

            pub fn from_wire(name: &str) -> Option<EventKind> {
                match name {
                    $( $wire => Some(EventKind::$variant), )+
                    _ => None,
                }
            }

            pub fn index(self) -> usize {
                self as usize
            }
        }

        impl Payload {
            pub fn kind(&self) -> EventKind {
                match self {
                    $( Payload::$variant(_) => EventKind::$variant, )+
                }
            }


            pub(crate) fn from_json_str(kind: EventKind, json: &str) -> serde_json::Result<Payload> {
                match kind {
                    $( EventKind::$variant => serde_json::from_str(json).map(Payload::$variant), )+
                }
            }
        }

        /// A payload is written as its variant's content (the event type travels
        /// beside it, in the envelope).
        impl Serialize for Payload {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                match self {
                    $( Payload::$variant(p) => p.serialize(s), )+
                }
            }
        }

        $(
            impl From<$variant> for Payload {
                fn from(p: $variant) -> Payload {
                    Payload::$variant(p)
                }
            }
        )+
    };
}

payloads! {
    WorkflowStarted => "workflow.started.v1",
    SignalGenerated => "strategy.signal.generated.v1",
    AllocationCompared => "portfolio.allocation.compared.v1",
    RebalancePlanned => "portfolio.rebalance.planned.v1",
    ExecutionStarted => "execution.started.v1",
    OrderDenied => "risk.order.denied.v1",
    OrderSubmitted => "execution.order.submitted.v1",
    OrderFilled => "execution.order.filled.v1",
    OrderSettled => "execution.order.settled.v1",
    ReconciliationRequested => "reconciliation.requested.v1",
    ReconciliationCompleted => "reconciliation.completed.v1",
    RecoveryAction => "recovery.action.v1",
    WorkflowCompleted => "workflow.completed.v1",
    WorkflowFailed => "workflow.failed.v1",
    TradingHalted => "trading.halted.v1",
    TradingResumed => "trading.resumed.v1",
    ActorRestarted => "supervision.actor.restarted.v1",
    EventRejected => "broker.event.rejected.v1",
}

/// Every kind's version, read from its wire name when compiling: each new event asks
/// for it, and parsing the name per event showed in backtest profiles.
const SCHEMA_VERSIONS: [u32; EventKind::COUNT] = {
    let mut versions = [1; EventKind::COUNT];
    let mut i = 0;
    while i < EventKind::COUNT {
        versions[i] = version_suffix(EventKind::ALL[i].as_str());
        i += 1;
    }
    versions
};

/// The `N` of a name ending in `.vN` (1 when it has no such suffix).
const fn version_suffix(name: &str) -> u32 {
    let bytes = name.as_bytes();
    let mut start = bytes.len();
    while start > 0 && bytes[start - 1].is_ascii_digit() {
        start -= 1;
    }
    if start == bytes.len() || start < 2 || bytes[start - 1] != b'v' || bytes[start - 2] != b'.' {
        return 1;
    }
    let mut version = 0u32;
    let mut i = start;
    while i < bytes.len() {
        version = version * 10 + (bytes[i] - b'0') as u32;
        i += 1;
    }
    version
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl EventKind {
    /// Version of the contract, read from the wire name's `.vN` suffix.
    pub fn schema_version(self) -> u32 {
        SCHEMA_VERSIONS[self.index()]
    }

    /// Payload fields that differ between two runs of the same inputs (random ids,
    /// wall-clock durations); content hashes leave them out.
    pub fn volatile_fields(self) -> &'static [&'static str] {
        match self {
            EventKind::WorkflowCompleted => &["duration_ms"],
            EventKind::EventRejected => &["event_id", "causation_id", "correlation_id"],
            _ => &[],
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            EventKind::WorkflowCompleted | EventKind::WorkflowFailed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_versions_are_the_wire_names_suffixes() {
        assert_eq!(version_suffix("workflow.started.v1"), 1);
        assert_eq!(version_suffix("x.order.v12"), 12);
        assert_eq!(version_suffix("no.version"), 1);
        assert_eq!(version_suffix("bare.v"), 1);
        assert_eq!(version_suffix("v2"), 1);
        for kind in EventKind::ALL {
            let suffix = kind
                .as_str()
                .rsplit_once(".v")
                .map(|(_, v)| v.parse::<u32>());
            assert_eq!(Some(Ok(kind.schema_version())), suffix, "{kind}");
        }
    }
}

crate::display_as_wire_name!(
    OutcomeStatus,
    ReconciliationStatus,
    RiskCode,
    RecoveryKind,
    FailureReason,
    HaltReason
);
