//! alchemiser: a trading engine of supervised actors.
//!
//! The crates are the layers, each using only those below it:
//! - `crates/core` (alchemiser-core): the pure core, no I/O and no actor runtime: event
//!   contracts, domain types, lineage, the engine's decisions and the business rules;
//! - `crates/adapters` (alchemiser-adapters): what the core meets the world through:
//!   journal, venues, bus, notification channels, data readers, metrics, configuration;
//! - `crates/engine` (alchemiser-engine): the actix layer, `actors`: the broker, the
//!   business actors, the `Engine` runtime, the worker loop, the backtest driver;
//! - this crate: the drivers (`drivers`: command line, drills, replay, sweeps) and the
//!   binary.
//!
//! The lower crates' modules are re-exported here under their names.

pub use alchemiser_adapters::{
    backtest, bus, config, data, drill_report, journal, metrics, notify, store, sweep,
    symphony_files, venues,
};
pub use alchemiser_core::{
    calendar, causation, clock, costs, display_as_wire_name, domain, engine_core, events,
    execution, fault, halt, indicators, intents, market, portfolio, readable, reconciliation,
    recovery, risk, schedule, strategy, supervision, venue, wire_name, workflow,
    workflow_lifecycle, workflow_roots,
};
pub use alchemiser_engine::actors;

pub mod drivers;
