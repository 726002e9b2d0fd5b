//! alchemiser: a trading engine of supervised actors.
//!
//! `crates/core` is the pure core (no I/O, no actor runtime): event contracts, domain
//! types, lineage, the engine's decisions; re-exported here. `src/` holds the business
//! cores, venues, the journal and configuration; `actors/` is the actix layer that
//! carries events between the cores through one broker.

pub mod backtest;
pub mod bus;
pub mod config;
pub mod data;
pub mod drill;
pub mod journal;
pub mod metrics;
pub mod notify;
pub mod sweep;
pub mod symphony_files;
pub mod venue;

// The pure core is its own crate (`crates/core`), re-exported under the same names.
pub use alchemiser_core::{
    calendar, causation, clock, costs, display_as_wire_name, domain, engine_core, events,
    execution, fault, halt, indicators, intents, market, portfolio, readable, reconciliation,
    recovery, risk, schedule, strategy, supervision, wire_name, workflow, workflow_lifecycle,
    workflow_roots,
};

#[path = "../actors/mod.rs"]
pub mod actors;
