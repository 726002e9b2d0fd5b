//! The simulated venue: cash, positions and marks held in memory.

use std::collections::BTreeMap;
use std::sync::Mutex;

use rust_decimal::Decimal;

use super::{AccountSnapshot, Venue, VenueError, VenueFuture};
use crate::domain::Symbol;

#[derive(Debug, Default)]
struct SimState {
    account: AccountSnapshot,
    marks: BTreeMap<Symbol, Decimal>,
}

#[derive(Debug, Default)]
pub struct SimVenue {
    state: Mutex<SimState>,
}

impl SimVenue {
    pub fn with_cash(cash: Decimal) -> Self {
        Self {
            state: Mutex::new(SimState {
                account: AccountSnapshot {
                    cash,
                    positions: BTreeMap::new(),
                },
                marks: BTreeMap::new(),
            }),
        }
    }

    /// Sets the price the venue reports for `symbol`.
    pub fn set_mark(&self, symbol: &str, price: Decimal) {
        self.lock().marks.insert(symbol.to_string(), price);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Venue for SimVenue {
    fn account(&self) -> VenueFuture<'_, AccountSnapshot> {
        let snapshot = self.lock().account.clone();
        Box::pin(async move { Ok(snapshot) })
    }

    fn prices(&self, symbols: &[Symbol]) -> VenueFuture<'_, BTreeMap<Symbol, Decimal>> {
        let state = self.lock();
        let result = symbols
            .iter()
            .map(|s| {
                state
                    .marks
                    .get(s)
                    .map(|p| (s.clone(), *p))
                    .ok_or_else(|| VenueError::NoPrice { symbol: s.clone() })
            })
            .collect::<Result<BTreeMap<_, _>, _>>();
        Box::pin(async move { result })
    }
}
