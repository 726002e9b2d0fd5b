//! The actix layer: one broker, five supervised business actors (and a notifier that
//! only listens), the `Engine` runtime that starts them, the worker loop that serves
//! them over NATS, and the backtest driver. Actors receive an event, call their core in
//! alchemiser-core, and publish. Each business actor's module carries the name of the
//! component it runs (`actors::strategy` runs `strategy`).

pub mod backtest;
pub mod broker;
pub mod control;
pub mod deps;
pub mod engine;
pub mod observe;
pub mod remote;
pub mod supervision;

pub mod execution;
pub mod notify;
pub mod portfolio;
pub mod reconciliation;
pub mod recovery;
pub mod strategy;
