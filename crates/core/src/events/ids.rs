//! Identifier newtypes. Event and correlation ids are random (uuid v4) unless derived
//! (uuid v8, see `derived`); they are excluded from every content hash.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh random id.
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }
        }

        impl $name {
            /// A reproducible id (uuid v8 from blake3 of `parts`): backtests derive each
            /// day's workflow id from the run and the date (so client order ids and the
            /// files a backtest writes are the same in every run), and execution derives
            /// its events' ids from the plan's, so a plan handled again repeats them and
            /// the broker keeps one copy.
            pub fn derived(parts: &[&[u8]]) -> Self {
                let mut h = blake3::Hasher::new();
                for p in parts {
                    h.update(&(p.len() as u64).to_le_bytes());
                    h.update(p);
                }
                let mut bytes = [0u8; 16];
                bytes.copy_from_slice(&h.finalize().as_bytes()[..16]);
                Self(Uuid::new_v8(bytes))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// Identity of one event; unique across the engine's life.
    EventId
);
uuid_id!(
    /// Identity of one workflow (or of a standalone chain such as a halt); shared by
    /// every event that workflow produces.
    CorrelationId
);
