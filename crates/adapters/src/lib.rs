//! alchemiser's adapters: what the pure core meets the world through. The journal
//! (SQLite), the venues (Alpaca, the simulator and its wrappers, the fake Alpaca for
//! tests), the NATS bus, notification channels, market data readers, metrics, the
//! configuration file, the backtest's report files and the sweep's grid. No actor
//! runtime: the actix engine (`alchemiser-engine`) is built on these.
//!
//! The core's modules are re-exported under their names, so `crate::events` reads the
//! same here as in the core.

pub mod backtest;
pub mod bus;
pub mod config;
pub mod data;
pub mod drill_report;
pub mod journal;
pub mod metrics;
pub mod notify;
pub mod store;
pub mod sweep;
pub mod symphony_files;
pub mod venues;

pub use alchemiser_core::{
    calendar, causation, clock, costs, display_as_wire_name, domain, engine_core, events,
    execution, fault, halt, indicators, intents, market, portfolio, readable, reconciliation,
    recovery, risk, schedule, strategy, supervision, venue, wire_name, workflow,
    workflow_lifecycle, workflow_roots,
};
