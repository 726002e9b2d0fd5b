//! The trading gate: one flag, set by the broker when trading halts, read by execution
//! before every order. Halting is an event (`trading.halted.v1`); this is its fast path.
//! Whoever moves the gate also sets the `trading_halted` gauge (`metrics::move_gate`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Clone, Debug, Default)]
pub struct TradingGate(Arc<AtomicBool>);

impl TradingGate {
    pub fn is_halted(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    pub fn halt(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn resume(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
}
