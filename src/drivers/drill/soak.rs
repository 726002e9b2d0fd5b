//! `drill soak`: one engine trades day after day on the simulated venue while a fault
//! drawn from the seed hits most days — an actor panic (once or twice), a poison event,
//! an actor crashing after its effects, a failed order submission — and recovery
//! retries. At the end: every day done, no duplicate order, no lost event, and final
//! positions against the same days run without faults.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::faults::{FaultPlan, HandlerFaultKind, Injected};
use super::rig::{completed, measure, sim_orders, Rig};
use super::scenarios::ACTORS;
use crate::domain::Symbol;
use crate::drill_report::DrillReport;
use crate::events::EventKind;
use crate::venues::faulty::FaultyVenue;

fn kinds_of(actor: &str) -> &'static [EventKind] {
    match actor {
        "strategy" => &[EventKind::WorkflowStarted],
        "portfolio" => &[EventKind::SignalGenerated],
        "execution" => &[EventKind::RebalancePlanned],
        "reconciliation" => &[EventKind::OrderSubmitted, EventKind::OrderSettled],
        _ => &[EventKind::OrderSubmitted],
    }
}

/// Runs `days` consecutive sessions (the last ones of the bundled data), faults on
/// when `faults` is true; returns the report and the final positions.
async fn days_run(
    seed: u64,
    days: u32,
    faults: bool,
    planned: Option<&BTreeMap<Symbol, rust_decimal::Decimal>>,
) -> Result<(DrillReport, BTreeMap<Symbol, rust_decimal::Decimal>), String> {
    let mut report = DrillReport::new("soak", seed, 0);
    let rig = Rig::new("soak", |c| {
        c.recovery.max_attempts = 3;
        c.recovery.halt_on_give_up = false;
        c.supervision.max_restarts = 1_000_000;
    })?;
    let dates = rig.book.common_dates();
    let warm = 300.min(dates.len());
    let take = (days as usize).min(dates.len() - warm);
    let dates = &dates[dates.len() - take..];
    let sim = rig.sim();
    let venue = Arc::new(FaultyVenue::new(sim.clone()));
    let injected = Injected::default();
    let plans: Vec<(&'static str, FaultPlan)> = ACTORS
        .iter()
        .map(|a| {
            (
                *a,
                FaultPlan::new(
                    HandlerFaultKind::PanicOn {
                        kind: EventKind::WorkflowStarted,
                        times: 0,
                    },
                    injected.clone(),
                ),
            )
        })
        .collect();
    let wrapped = plans.clone();
    let engine = rig.start(venue.clone(), move |reg| {
        for (actor, plan) in wrapped {
            reg.wrap(actor, move |h| plan.wrap(h));
        }
    })?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut drawn: BTreeMap<&str, u32> = BTreeMap::new();
    let mut attempts_all = Vec::new();
    let mut unfinished = 0;
    let mut refused = None;
    for day in dates {
        sim.set_date(*day);
        for (_, p) in &plans {
            p.arm(None);
        }
        if faults {
            let roll = rng.random_range(0..100);
            let actor = ACTORS[rng.random_range(0..ACTORS.len())];
            let kinds = kinds_of(actor);
            let kind = kinds[rng.random_range(0..kinds.len())];
            let plan = &plans
                .iter()
                .find(|(a, _)| *a == actor)
                .map(|(_, p)| p.clone());
            let (label, fault) = match roll {
                0..=29 => ("none", None),
                30..=54 => (
                    "panic once",
                    Some(HandlerFaultKind::PanicOn { kind, times: 1 }),
                ),
                55..=64 => (
                    "panic twice (dead letter)",
                    Some(HandlerFaultKind::PanicOn { kind, times: 2 }),
                ),
                65..=74 => ("poison event", Some(HandlerFaultKind::Poison { kind })),
                75..=84 => (
                    "crash after effects",
                    Some(HandlerFaultKind::CrashAfterEffects {
                        kind: EventKind::RebalancePlanned,
                        times: 1,
                    }),
                ),
                _ => ("order submission fails", None),
            };
            *drawn.entry(label).or_default() += 1;
            match (label, fault) {
                ("crash after effects", f) => {
                    if let Some((_, p)) = plans.iter().find(|(a, _)| *a == "execution") {
                        p.arm(f);
                    }
                }
                ("order submission fails", _) => venue.fail_submits(rng.random_range(1..=2)),
                (_, f) => {
                    if let Some(p) = plan {
                        p.arm(f);
                    }
                }
            }
        }
        // A refused start (trading halted) ends the soak: the report says why.
        let attempts = match engine.day(*day).await {
            Ok(attempts) => attempts,
            Err(e) => {
                refused = Some(format!("{day}: {e}"));
                unfinished += dates.iter().filter(|d| *d >= day).count();
                break;
            }
        };
        if !completed(&attempts) {
            unfinished += 1;
        }
        attempts_all.extend(attempts);
    }
    let stats = engine.settle().await?;
    report.faults = drawn
        .iter()
        .map(|(k, n)| format!("{k}: {n} days"))
        .collect();
    report.faults_injected = injected.count() + venue.injected();
    let positions = sim.snapshot().positions;
    measure(
        &mut report,
        Some(&stats),
        &attempts_all,
        &engine.journal,
        &sim_orders(&sim),
        &positions,
        planned,
        &rig,
    );
    report.final_status = format!(
        "{} of {} days completed",
        dates.len() - unfinished,
        dates.len()
    );
    report.check(
        "every day completed",
        unfinished == 0,
        report.final_status.clone(),
    );
    report.check(
        "trading never halted",
        refused.is_none() && report.halted.is_none(),
        refused
            .or_else(|| report.halted.clone())
            .unwrap_or_default(),
    );
    Ok((report, positions))
}

pub async fn soak(seed: u64, days: u32) -> Result<DrillReport, String> {
    let (_, clean) = days_run(seed, days, false, None).await?;
    let (mut report, _) = days_run(seed, days, true, Some(&clean)).await?;
    report.check(
        "positions match the fault-free run",
        report.positions_match_plan,
        "",
    );
    Ok(report)
}
