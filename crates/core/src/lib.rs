//! alchemiser's pure core: domain types, event contracts and their hashes, the workflow's
//! stages and lifecycle rules, lineage, the restart policy, the engine's decisions as a
//! state machine ([`engine_core`]), and the business rules: risk limits, rebalance
//! planning, execution against the `Venue` trait, reconciliation and recovery's decisions. No I/O and no actor runtime: the compiler holds
//! that, since this crate depends on neither. The `alchemiser` crate (adapters, the actix
//! engine, the command line) re-exports these modules under the same names.

pub mod calendar;
pub mod causation;
pub mod clock;
pub mod costs;
pub mod domain;
pub mod engine_core;
pub mod events;
pub mod execution;
pub mod fault;
pub mod halt;
pub mod indicators;
pub mod intents;
pub mod market;
pub mod portfolio;
pub mod readable;
pub mod reconciliation;
pub mod recovery;
pub mod risk;
pub mod schedule;
pub mod strategy;
pub mod supervision;
pub mod venue;
pub mod wire_name;
pub mod workflow;
pub mod workflow_lifecycle;
pub mod workflow_roots;
