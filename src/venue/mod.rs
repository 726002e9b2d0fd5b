//! The venue seam: what portfolio, execution and reconciliation need from a broker
//! account. Implementations: [`sim::SimVenue`] (in-memory) now; Alpaca later.
//!
//! Methods return boxed futures so that a network venue and the simulated one share
//! one trait; the simulated venue answers at once.

pub mod sim;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use rust_decimal::Decimal;
use thiserror::Error;

use crate::domain::Symbol;
use crate::events::hash::{decimal_map, Canon};

pub type VenueFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, VenueError>> + Send + 'a>>;

/// Cash and positions at one moment.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AccountSnapshot {
    pub cash: Decimal,
    /// Quantity held by symbol; symbols with zero quantity are absent.
    pub positions: BTreeMap<Symbol, Decimal>,
}

impl AccountSnapshot {
    /// Content hash of the snapshot (its identity in plans).
    pub fn snapshot_id(&self) -> String {
        Canon::map([
            ("cash", Canon::Dec(self.cash)),
            ("positions", decimal_map(&self.positions)),
        ])
        .hash("account_snapshot.v1")
    }
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum VenueError {
    #[error("no price for {symbol}")]
    NoPrice { symbol: Symbol },
    #[error("venue unavailable: {0}")]
    Unavailable(String),
}

pub trait Venue: Send + Sync + 'static {
    fn account(&self) -> VenueFuture<'_, AccountSnapshot>;
    /// Prices used for planning (backtest: the as-of close; live: the quote mid).
    fn prices(&self, symbols: &[Symbol]) -> VenueFuture<'_, BTreeMap<Symbol, Decimal>>;
}
