//! The integration tests, one binary: one link instead of one per file (each linked the
//! whole engine), run on the threads the harness gives every binary. The
//! observability tests stay a binary of their own: they read the process's metrics,
//! which the engines these tests run would move.

mod common;

mod alpaca;
mod architecture;
mod backtest;
mod broker;
mod cli_help;
mod cli_run;
mod cli_signals;
mod composer_parity;
mod crash;
mod drill;
mod edges;
mod event_bus;
mod event_contracts;
mod execution;
mod execution_core;
mod golden_hashes;
mod input_limits;
mod journal;
mod kill_switch;
mod market_data;
mod market_store;
mod notifications;
mod operations;
mod reconciliation;
mod recovery;
mod replay;
mod report;
mod risk;
mod strategy_book;
mod strategy_branches;
mod supervision;
mod sweep;
mod universe;
mod workers;
