//! `alchemiser drill SCENARIO`: recovery drills that inject faults for real — actor
//! panics, poison events, venue storms and timeouts, a killed engine process, a hung
//! workflow, duplicate deliveries, a drifted account — and prove the engine recovers
//! with no duplicate order and no lost event. Each drill prints one JSON report.

mod crash;
mod distributed;
mod faults;
mod rig;
mod scenarios;
mod soak;

use std::time::Instant;

use crate::drill_report::DrillReport;
use scenarios::Plans;

pub use faults::{FaultPlan, HandlerFaultKind, Injected};

/// Every scenario, in the order `all` runs them.
/// The scenario argument's help: every scenario by name (a test holds it to
/// [`SCENARIOS`]).
pub const SCENARIO_HELP: &str = "The drill to run: actor-panic, poison-event, venue-5xx-storm, \
venue-timeout-after-accept, rate-limit-storm, crash-mid-execution, hung-workflow, \
duplicate-delivery, reconciliation-drift; `all` for every one of them; `soak` for \
--iterations trading days with random faults; `distributed` for --iterations trading days \
of an engine, two workers and nats-server as processes, one of them killed each day";

pub const SCENARIOS: [&str; 9] = [
    "actor-panic",
    "poison-event",
    "venue-5xx-storm",
    "venue-timeout-after-accept",
    "rate-limit-storm",
    "crash-mid-execution",
    "hung-workflow",
    "duplicate-delivery",
    "reconciliation-drift",
];

/// Runs `scenario` (or `all`) `iterations` times from `seed`, handing each report to
/// `out` as it is made; `soak` and `distributed` run `iterations` trading days with
/// faults drawn from `seed`. Errors name a scenario that could not be set up.
pub fn run(
    scenario: &str,
    seed: u64,
    iterations: u32,
    mut out: impl FnMut(&DrillReport),
) -> Result<Vec<DrillReport>, String> {
    if scenario == "soak" {
        let started = Instant::now();
        let mut report = actix::System::new().block_on(soak::soak(seed, iterations))?;
        report.duration_ms = started.elapsed().as_millis() as u64;
        report.finish();
        out(&report);
        return Ok(vec![report]);
    }
    if scenario == "distributed" {
        let started = Instant::now();
        let mut report = distributed::distributed(seed, iterations)?;
        report.duration_ms = started.elapsed().as_millis() as u64;
        report.finish();
        out(&report);
        return Ok(vec![report]);
    }
    let chosen: Vec<&str> = match scenario {
        "all" => SCENARIOS.to_vec(),
        s if SCENARIOS.contains(&s) => vec![s],
        other => {
            return Err(format!(
                "unknown drill `{other}`: one of {}, all, soak, distributed",
                SCENARIOS.join(", ")
            ))
        }
    };
    let plans = actix::System::new().block_on(scenarios::plans())?;
    let mut reports = Vec::new();
    for iteration in 0..iterations {
        for name in &chosen {
            let runs: Vec<Option<&'static str>> = if *name == "actor-panic" {
                scenarios::ACTORS.iter().map(|a| Some(*a)).collect()
            } else {
                vec![None]
            };
            for actor in runs {
                let started = Instant::now();
                let result =
                    actix::System::new().block_on(one(name, actor, seed, iteration, &plans));
                let mut report = result.unwrap_or_else(|e| {
                    let mut r = DrillReport::new(name, seed, iteration);
                    r.check("drill ran", false, e);
                    r
                });
                report.duration_ms = started.elapsed().as_millis() as u64;
                report.finish();
                out(&report);
                reports.push(report);
            }
        }
    }
    Ok(reports)
}

async fn one(
    name: &str,
    actor: Option<&'static str>,
    seed: u64,
    iteration: u32,
    plans: &Plans,
) -> Result<DrillReport, String> {
    match name {
        "actor-panic" => {
            scenarios::actor_panic(actor.unwrap_or("execution"), seed, iteration, plans).await
        }
        "poison-event" => scenarios::poison_event(seed, iteration, plans).await,
        "venue-5xx-storm" => scenarios::venue_5xx_storm(seed, iteration, plans).await,
        "venue-timeout-after-accept" => {
            scenarios::venue_timeout_after_accept(seed, iteration, plans).await
        }
        "rate-limit-storm" => scenarios::rate_limit_storm(seed, iteration, plans).await,
        "crash-mid-execution" => crash::crash_mid_execution(seed, iteration, plans).await,
        "hung-workflow" => scenarios::hung_workflow(seed, iteration, plans).await,
        "duplicate-delivery" => scenarios::duplicate_delivery(seed, iteration, plans).await,
        "reconciliation-drift" => scenarios::reconciliation_drift(seed, iteration).await,
        other => Err(format!("unknown drill `{other}`")),
    }
}
