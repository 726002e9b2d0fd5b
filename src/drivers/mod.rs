//! What starts the engine: the command line (`cli`), the drills that crash it on
//! purpose, the one-day replay, and parameter sweeps (in process or queued to workers
//! over NATS). Drivers build an `Engine` (alchemiser-engine) and never reach into its
//! actors.

pub mod cli;
pub mod drill;
pub mod replay;
pub mod sweep;
pub mod sweep_queue;
