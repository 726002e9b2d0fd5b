//! Drills: their reports here; the crash and fault points they set off live in the core
//! (`alchemiser_core::fault`), where the executor passes them.

pub use alchemiser_core::fault::{crash_point, fails};

pub mod report;
