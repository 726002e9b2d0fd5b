//! The actix layer: one broker, five supervised business actors (and a notifier that
//! only listens), and the CLI that starts them. Actors receive an event, call their core in `src/`, and publish.

pub mod backtest;
pub mod broker;
pub mod cli;
pub mod control;
pub mod deps;
pub mod drill;
pub mod engine;
pub mod observe;
pub mod remote;
pub mod replay;
pub mod supervision;
pub mod sweep;
pub mod sweep_queue;

pub mod execution;
pub mod notify;
pub mod portfolio;
pub mod reconciliation;
pub mod recovery;
pub mod strategy;
