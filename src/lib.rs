//! alchemiser: a trading engine of supervised actors.
//!
//! `src/` is the pure core (no actor runtime): event contracts, domain types, planning
//! maths, venues and configuration. `actors/` is the actix layer that carries events
//! between the cores through one broker.

pub mod backtest;
pub mod calendar;
pub mod causation;
pub mod clock;
pub mod config;
pub mod data;
pub mod domain;
pub mod drill;
pub mod events;
pub mod execution;
pub mod halt;
pub mod indicators;
pub mod journal;
pub mod metrics;
pub mod portfolio;
pub mod reconciliation;
pub mod recovery;
pub mod risk;
pub mod schedule;
pub mod strategy;
pub mod supervision;
pub mod venue;
pub mod wire_name;
pub mod workflow;
pub mod workflow_roots;

#[path = "../actors/mod.rs"]
pub mod actors;

/// mimalloc instead of the system allocator: the broker and the journal writer allocate
/// on one thread and free on the other, which glibc's arenas handle slowly (a quarter of
/// the broker thread's time went to malloc/free). In the library so that the engine,
/// its examples and its tests all run on the same allocator. The v2 line: v3 returned
/// freed pages to the system so eagerly that plain actix messaging ran at 40% speed.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
