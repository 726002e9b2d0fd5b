//! alchemiser's engine: the actix layer over the core and the adapters. One broker
//! actor (the shell of the core's `EngineCore`) routes typed events between supervised
//! business actors; `actors::engine::Engine` is the one runtime every driver starts.
//!
//! The lower crates' modules are re-exported under their names, so `crate::events` or
//! `crate::journal` read here as they do in the crate that defines them.

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

pub mod actors;
