//! The venue seam: what portfolio, execution and reconciliation need from a broker
//! account. The implementations (the simulated venue, Alpaca) are in `alchemiser`.
//!
//! Methods return boxed futures so that a network venue and the simulated one share
//! one trait; the simulated venue answers at once.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::domain::{Side, Symbol};
use crate::events::canonical;
use crate::events::OrderIntent;

pub type VenueFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, VenueError>> + Send + 'a>>;

/// Cash and positions at one moment.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccountSnapshot {
    pub cash: Decimal,
    /// Quantity held by symbol; symbols with zero quantity are absent.
    pub positions: BTreeMap<Symbol, Decimal>,
}

impl AccountSnapshot {
    /// Content hash of the snapshot (its identity in plans).
    pub fn snapshot_id(&self) -> String {
        canonical::hash("account_snapshot.v1", &SnapshotContent::from(self))
    }
}

/// What `snapshot_id` covers (fields in key order, see `canonical`).
#[derive(Serialize)]
struct SnapshotContent<'a> {
    #[serde(serialize_with = "canonical::dec")]
    cash: Decimal,
    #[serde(serialize_with = "canonical::dec_map")]
    positions: &'a BTreeMap<Symbol, Decimal>,
}

impl<'a> From<&'a AccountSnapshot> for SnapshotContent<'a> {
    fn from(a: &'a AccountSnapshot) -> Self {
        Self {
            cash: a.cash,
            positions: &a.positions,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VenueOrderStatus {
    Accepted,
    PartiallyFilled,
    Filled,
    Canceled,
    Rejected,
}

impl From<VenueOrderStatus> for crate::events::OutcomeStatus {
    fn from(status: VenueOrderStatus) -> Self {
        use crate::events::OutcomeStatus as O;
        match status {
            VenueOrderStatus::Accepted => O::Accepted,
            VenueOrderStatus::PartiallyFilled => O::PartiallyFilled,
            VenueOrderStatus::Filled => O::Filled,
            VenueOrderStatus::Canceled => O::Canceled,
            VenueOrderStatus::Rejected => O::Rejected,
        }
    }
}

impl VenueOrderStatus {
    pub fn is_open(self) -> bool {
        matches!(
            self,
            VenueOrderStatus::Accepted | VenueOrderStatus::PartiallyFilled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            VenueOrderStatus::Accepted => "accepted",
            VenueOrderStatus::PartiallyFilled => "partially_filled",
            VenueOrderStatus::Filled => "filled",
            VenueOrderStatus::Canceled => "canceled",
            VenueOrderStatus::Rejected => "rejected",
        }
    }
}

/// An order as the venue reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VenueOrder {
    pub client_order_id: String,
    pub venue_order_id: String,
    pub symbol: Symbol,
    pub side: Side,
    pub qty: Decimal,
    pub status: VenueOrderStatus,
    pub filled_qty: Decimal,
    pub avg_fill_price: Option<Decimal>,
    pub commission: Decimal,
    pub reject_reason: Option<String>,
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum VenueError {
    #[error("no price for {symbol}")]
    NoPrice { symbol: Symbol },
    #[error("venue unavailable: {0}")]
    Unavailable(String),
    #[error("order {0} not found")]
    NotFound(String),
    #[error("not authorized: {0}")]
    Unauthorized(String),
    #[error("order outcome unknown: {0}")]
    OutcomeUnknown(String),
}

pub trait Venue: Send + Sync + 'static {
    fn account(&self) -> VenueFuture<'_, AccountSnapshot>;
    /// Prices used for planning (backtest: the as-of close; live: the quote mid).
    fn prices(&self, symbols: &[Symbol]) -> VenueFuture<'_, BTreeMap<Symbol, Decimal>>;
    /// Places an order. Submitting a `client_order_id` the venue already knows returns
    /// that order instead of placing a second one.
    fn submit(&self, intent: &OrderIntent) -> VenueFuture<'_, VenueOrder>;
    fn order_by_client_id(&self, client_order_id: &str) -> VenueFuture<'_, Option<VenueOrder>>;
    fn open_orders(&self) -> VenueFuture<'_, Vec<VenueOrder>>;
    /// Cancels and returns the order's state once the cancel is confirmed.
    fn cancel(&self, client_order_id: &str) -> VenueFuture<'_, VenueOrder>;
    /// Whether `symbol` trades in fractions of a share (else whole shares only).
    fn is_fractionable(&self, symbol: &str) -> VenueFuture<'_, bool>;
    /// The current best bid and ask.
    fn quote(&self, symbol: &str) -> VenueFuture<'_, crate::domain::Quote>;
    /// Follows an order the venue holds until it is no longer open (or the venue's
    /// wait for a market order ends), so fills that come on a later poll are seen: a
    /// handling that takes up an order another one placed follows it as its own.
    fn settle(&self, order: VenueOrder) -> VenueFuture<'_, VenueOrder>;
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_snapshot_content_is_canonical() {
        let a = super::AccountSnapshot {
            cash: rust_decimal::Decimal::new(150, 2),
            positions: [("SPY".into(), rust_decimal::Decimal::ONE)].into(),
        };
        let json = serde_json::to_vec(&super::SnapshotContent::from(&a)).unwrap();
        assert!(crate::events::canonical::keys_sorted(&json));
        assert_eq!(json, br#"{"cash":"1.5","positions":{"SPY":"1"}}"#);
    }
}
