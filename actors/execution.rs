//! Execution actor: on a plan, derive the order intents (sells first) and settle.

use super::engine::EngineDeps;
use super::supervision::{EventHandler, HandlerFault, Reaction, Registry};
use crate::events::{Envelope, EventKind, FailureReason, Payload, WorkflowFailed};
use crate::execution::{order_intents, settle_without_orders};
use crate::halt::TradingGate;

pub const NAME: &str = "execution";
pub const CONSUMES: &[EventKind] = &[EventKind::RebalancePlanned];

pub struct ExecutionActor {
    gate: TradingGate,
}

impl ExecutionActor {
    pub fn new(deps: &EngineDeps) -> Self {
        Self {
            gate: deps.gate.clone(),
        }
    }
}

fn failed(reason: FailureReason, detail: String) -> Payload {
    Payload::WorkflowFailed(WorkflowFailed {
        step: NAME.to_string(),
        reason,
        detail,
    })
}

impl EventHandler for ExecutionActor {
    fn handle(&mut self, event: &Envelope) -> Result<Reaction, HandlerFault> {
        let Payload::RebalancePlanned(plan) = &event.payload else {
            return Ok(Reaction::nothing());
        };
        let started = order_intents(event.correlation_id, plan, 0);
        if started.orders.is_empty() {
            let settled = settle_without_orders(&started);
            return Ok(Reaction::Publish(vec![started.into(), settled.into()]));
        }
        if self.gate.is_halted() {
            return Ok(Reaction::one(failed(
                FailureReason::TradingHalted,
                "trading is halted: no new orders".into(),
            )));
        }
        // Placing orders needs the simulated venue's fill model (the backtest issue).
        Ok(Reaction::one(failed(
            FailureReason::StepFailed,
            format!(
                "{} orders planned but order submission is not built yet",
                started.orders.len()
            ),
        )))
    }
}

pub fn register(registry: &mut Registry) {
    let deps = registry.deps().clone();
    registry.add(NAME, CONSUMES, move || ExecutionActor::new(&deps));
}
