//! Portfolio actor: on a signal, snapshot the account and prices at the venue, plan the
//! rebalance and publish the comparison and the plan (or the workflow's failure).

use std::sync::Arc;

use super::deps::EngineDeps;
use super::supervision::{Emit, EventHandler, HandlerFault, Reaction, Registry};
use crate::events::{Envelope, EventKind, FailureReason, Payload, WorkflowFailed};
use crate::portfolio::{plan_rebalance, symbols_to_price, PlanParams};
use crate::venue::{Venue, VenueError};

pub const NAME: &str = "portfolio";
pub const CONSUMES: &[EventKind] = &[EventKind::SignalGenerated];

pub struct PortfolioActor {
    venue: Arc<dyn Venue>,
    params: PlanParams,
}

impl PortfolioActor {
    pub fn new(deps: &EngineDeps) -> Self {
        Self {
            venue: deps.venue.clone(),
            params: deps.config.portfolio.params(),
        }
    }
}

fn failed(detail: String) -> Vec<Emit> {
    failed_because(FailureReason::StepFailed, detail)
}

fn failed_because(reason: FailureReason, detail: String) -> Vec<Emit> {
    vec![Emit::from(WorkflowFailed {
        step: NAME.to_string(),
        reason,
        detail,
    })]
}

impl EventHandler for PortfolioActor {
    fn handle(&mut self, event: &Arc<Envelope>) -> Result<Reaction, HandlerFault> {
        if !matches!(event.payload, Payload::SignalGenerated(_)) {
            return Ok(Reaction::nothing());
        }
        // The event itself, not a copy of the signal: it carries every strategy's
        // indicators, and planning reads only the targets.
        let event = event.clone();
        let venue = self.venue.clone();
        let params = self.params.clone();
        Ok(Reaction::Later(Box::pin(async move {
            let Payload::SignalGenerated(signal) = &event.payload else {
                return Ok(Vec::new());
            };
            let account = match venue.account().await {
                Ok(a) => a,
                Err(e @ VenueError::Unauthorized(_)) => {
                    return Ok(failed_because(
                        FailureReason::Unauthorized,
                        format!("account snapshot: {e}"),
                    ))
                }
                Err(e) => return Ok(failed(format!("account snapshot: {e}"))),
            };
            let symbols = symbols_to_price(signal, &account);
            let prices = match venue.prices(&symbols).await {
                Ok(p) => p,
                Err(e) => return Ok(failed(format!("prices: {e}"))),
            };
            Ok(match plan_rebalance(signal, &account, &prices, &params) {
                Ok((compared, planned)) => vec![compared.into(), planned.into()],
                Err(e) => failed(format!("planning: {e}")),
            })
        })))
    }
}

pub fn register(registry: &mut Registry) {
    let deps = registry.deps().clone();
    registry.add(NAME, CONSUMES, move || PortfolioActor::new(&deps));
}
