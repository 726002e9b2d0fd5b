//! Small domain vocabulary shared by every business module: sides, order types and
//! plan actions. Money and quantities are `rust_decimal::Decimal` throughout.

use serde::{Deserialize, Serialize};

/// Ticker symbol as the venue spells it (`"SPY"`). Stored inline (up to 24 bytes, no
/// heap allocation): symbols are cloned into every signal, price map, plan item, order
/// and fill, and those clones were a large share of a backtest's allocations.
pub type Symbol = compact_str::CompactString;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OrderType {
    #[default]
    Market,
    Limit,
}

impl OrderType {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderType::Market => "market",
            OrderType::Limit => "limit",
        }
    }
}

/// What a rebalance plan does with one symbol. Plans list sells, then buys, then holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanAction {
    Sell,
    Buy,
    Hold,
}

impl PlanAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanAction::Sell => "sell",
            PlanAction::Buy => "buy",
            PlanAction::Hold => "hold",
        }
    }
}

/// Whether the engine trades for real money, on paper, or replays history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    #[default]
    Paper,
    Live,
    Backtest,
}

impl RunMode {
    /// The wire name (serde's).
    pub fn as_str(self) -> &'static str {
        match self {
            RunMode::Paper => "paper",
            RunMode::Live => "live",
            RunMode::Backtest => "backtest",
        }
    }
}

crate::display_as_wire_name!(Side, OrderType, PlanAction, RunMode);
