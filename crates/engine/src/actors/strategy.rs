//! Strategy actor: on `workflow.started.v1`, evaluate the strategy book as of the
//! workflow's date and publish `strategy.signal.generated.v1` (or the failure).

use std::sync::Arc;

use super::deps::EngineDeps;
use super::supervision::{EventHandler, HandlerFault, Reaction, Registry};
use crate::events::{Envelope, EventKind, FailureReason, Payload, WorkflowFailed};
use crate::market::SharedMarket;
use crate::strategy::book::StrategyBook;
use crate::strategy::prefetch::SignalPrefetch;

pub const NAME: &str = "strategy";
pub const CONSUMES: &[EventKind] = &[EventKind::WorkflowStarted];

pub struct StrategyActor {
    book: Arc<StrategyBook>,
    market: Option<SharedMarket>,
    prefetched: Option<Arc<SignalPrefetch>>,
}

impl StrategyActor {
    pub fn new(deps: &EngineDeps) -> Self {
        Self {
            book: deps.strategies.clone(),
            market: deps.market.clone(),
            prefetched: deps.prefetched.clone(),
        }
    }
}

impl EventHandler for StrategyActor {
    fn handle(&mut self, event: &Arc<Envelope>) -> Result<Reaction, HandlerFault> {
        let Payload::WorkflowStarted(started) = &event.payload else {
            return Ok(Reaction::nothing());
        };
        let evaluated = match (&self.market, &self.prefetched) {
            (Some(m), _) => self.book.evaluate_with(&m.current(), started.as_of),
            (None, Some(p)) => p
                .take(started.as_of)
                .unwrap_or_else(|| self.book.evaluate(started.as_of)),
            (None, None) => self.book.evaluate(started.as_of),
        };
        Ok(match evaluated {
            Ok(signal) => {
                // `on_strategy_error = "cash"`: the failed files' slices go to cash.
                for s in &signal.strategies {
                    if let Some(error) = &s.error {
                        tracing::warn!(strategy = %s.name, as_of = %started.as_of, %error, "strategy failed to evaluate: its slice goes to cash");
                    }
                }
                Reaction::one(signal)
            }
            Err(e) => Reaction::one(WorkflowFailed {
                step: NAME.into(),
                reason: FailureReason::StepFailed,
                detail: e.to_string(),
            }),
        })
    }
}

pub fn register(registry: &mut Registry) {
    let deps = registry.deps().clone();
    registry.add(NAME, CONSUMES, move || StrategyActor::new(&deps));
}
