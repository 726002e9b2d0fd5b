//! alchemiser: a trading engine of supervised actors.
//!
//! `src/` is the pure core (no actor runtime): event contracts, domain types, planning
//! maths, venues and configuration. `actors/` is the actix layer that carries events
//! between the cores through one broker.

pub mod backtest;
pub mod bus;
pub mod calendar;
pub mod causation;
pub mod clock;
pub mod config;
pub mod data;
pub mod domain;
pub mod drill;
pub mod engine_core;
pub mod events;
pub mod execution;
pub mod halt;
pub mod indicators;
pub mod journal;
pub mod metrics;
pub mod notify;
pub mod portfolio;
pub mod readable;
pub mod reconciliation;
pub mod recovery;
pub mod risk;
pub mod schedule;
pub mod strategy;
pub mod supervision;
pub mod sweep;
pub mod venue;
pub mod wire_name;
pub mod workflow;
pub mod workflow_lifecycle;
pub mod workflow_roots;

#[path = "../actors/mod.rs"]
pub mod actors;
