//! Execution actor: on a plan with trades, runs the core's [`Executor`] over the venue
//! and publishes what it reports as it reports it (`execution.started.v1`, each order's
//! submission and fill, the settlement, or the failure). Each event's id is derived from
//! the plan's and the event's key, so a plan handled again (after a crash or a timeout)
//! repeats the events the first handling got out, and the broker keeps one copy.

use std::sync::Arc;
use std::time::Duration;

use super::deps::EngineDeps;
use super::supervision::{Emit, EmitSink, EventHandler, HandlerFault, Reaction, Registry};
use crate::config::OrderTypeChoice;
use crate::events::{Envelope, EventId, EventKind, Payload};
use crate::execution::executor::{Executor, Output, OutputSink, SmartLimit};
use crate::execution::smart_limit::QuoteLimits;
use crate::risk::RiskLimits;

pub const NAME: &str = crate::execution::executor::STEP;
pub const CONSUMES: &[EventKind] = &[EventKind::RebalancePlanned];

pub struct ExecutionActor {
    executor: Arc<Executor>,
}

impl ExecutionActor {
    pub fn new(deps: &EngineDeps) -> Self {
        let e = &deps.config.execution;
        let executor = Executor {
            venue: deps.venue.clone(),
            gate: deps.gate.clone(),
            costs: deps.config.venue.sim.costs(),
            qty_dp: if deps.config.portfolio.fractional {
                6
            } else {
                0
            },
            smart: (e.order_type == OrderTypeChoice::Limit).then(|| SmartLimit {
                fill_wait: Duration::from_millis(e.fill_wait_ms),
                max_repegs: e.max_repegs,
                limits: QuoteLimits {
                    max_spread_pct: e.max_spread_pct,
                    max_age: Duration::from_secs(e.max_quote_age_secs),
                },
                // Nine tenths of the handler's timeout: the rest for the market orders.
                budget: Duration::from_secs(deps.config.engine.handler_timeout_secs) * 9 / 10,
            }),
            clock: deps.clock.clone(),
            intents: deps.intents(),
            pause: Arc::new(|wait| Box::pin(tokio::time::sleep(wait))),
            risk: RiskLimits::from_config(&deps.config.risk),
            deployed: deps.deployed.clone(),
            roots: deps.roots.clone(),
        };
        Self {
            executor: Arc::new(executor),
        }
    }
}

/// The executor's outputs, published through the handling's sink under derived ids.
struct Published {
    sink: EmitSink,
    plan: EventId,
}

impl OutputSink for Published {
    fn emit(&mut self, output: Output) -> usize {
        let kind = output.payload.kind();
        let id = EventId::derived(&[
            self.plan.0.as_bytes(),
            kind.as_str().as_bytes(),
            output.key().as_bytes(),
        ]);
        self.sink.emit(Emit {
            payload: output.payload,
            after: output.after,
            new_workflow: None,
            event_id: Some(id),
        })
    }
}

impl EventHandler for ExecutionActor {
    fn handle(&mut self, event: &Arc<Envelope>) -> Result<Reaction, HandlerFault> {
        let Payload::RebalancePlanned(plan) = &event.payload else {
            return Ok(Reaction::nothing());
        };
        if !plan.has_trades() {
            // The broker completes such a workflow with the plan: nothing to execute.
            return Ok(Reaction::nothing());
        }
        let executor = self.executor.clone();
        // The daily budget is the New York day the orders are sent on, whatever day's
        // signal they trade: two runs on one real day share it.
        let day = crate::clock::new_york_date(self.executor.clock.now());
        Ok(Reaction::Streamed(Box::new(move |sink: EmitSink| {
            Box::pin(async move {
                // The plan is read in place, from the shared event: no copy of it per run.
                let event = sink.handled();
                let Payload::RebalancePlanned(plan) = &event.payload else {
                    return Ok(Vec::new());
                };
                let mut out = Published {
                    sink,
                    plan: event.event_id,
                };
                executor
                    .execute_into(event.correlation_id, plan, day, &mut out)
                    .await;
                Ok(Vec::new())
            })
        })))
    }
}

pub fn register(registry: &mut Registry) {
    let deps = registry.deps().clone();
    registry.add(NAME, CONSUMES, move || ExecutionActor::new(&deps));
}
