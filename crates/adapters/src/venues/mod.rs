//! The venues the engine trades on, behind the core's `Venue` trait
//! (`alchemiser_core::venue`): the simulated venue, Alpaca (and the fake Alpaca the
//! tests run against), and the wrappers that meter calls or inject faults.

pub mod alpaca;
pub mod faulty;
pub mod metered;
pub mod sim;
