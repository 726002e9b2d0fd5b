//! A contract shared by execution and reconciliation: where the executor records an order intent before the venue sees the order, and its
//! outcome after: the journal's outbox in the engine's process, the engine's outbox over
//! the bus in a worker's. An intent that could not be recorded is never sent, so an order
//! is never at the venue with no record to find it by after a crash.

use std::future::Future;
use std::pin::Pin;

use crate::events::{CorrelationId, OrderIntent};

/// An answer of the recorder, later: the recorder may be across the wire.
pub type Recorded<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

pub trait IntentRecorder: Send + Sync {
    /// Records an intent before it is sent (a repeat of the same id changes nothing).
    fn intend<'a>(
        &'a self,
        correlation: CorrelationId,
        plan_hash: &'a str,
        intent: &'a OrderIntent,
    ) -> Recorded<'a, ()>;

    /// Records what the venue said about an intent.
    fn resolve<'a>(&'a self, client_order_id: &'a str, outcome: &'a str) -> Recorded<'a, ()>;

    /// Whether an intent with this client order id was ever recorded (reconciliation asks
    /// of each open order: one no intent explains was placed by someone else).
    fn knows<'a>(&'a self, client_order_id: &'a str) -> Recorded<'a, bool>;

    /// The client order ids of one workflow's intents, when this recorder lists them
    /// (`None`: it does not, and the executor looks up every id the plan can use).
    fn intents_of<'a>(&'a self, correlation: CorrelationId) -> Recorded<'a, Option<Vec<String>>>;
}
