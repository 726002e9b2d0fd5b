//! Venues: the `Venue` trait and its types live in the core
//! (`alchemiser_core::venue`, re-exported here); the implementations are here — the
//! simulated venue, Alpaca, and the wrappers that meter or inject faults.

pub mod alpaca;
pub mod faulty;
pub mod metered;
pub mod sim;

pub use alchemiser_core::venue::*;
