//! The in-process drills: each builds a rig, injects its fault for real, runs the day
//! and measures.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;

use super::faults::{FaultPlan, HandlerFaultKind, Injected};
use super::rig::{completed, expect_day_on_plan, fake_orders, measure, Rig};
use crate::actors::broker::{FollowUp, Publish, QueryFollowUp, StartWorkflow};
use crate::actors::engine::reconcile_now;
use crate::actors::{execution, portfolio, reconciliation, recovery, strategy};
use crate::config::OnDrift;
use crate::domain::Symbol;
use crate::drill_report::DrillReport;
use crate::events::{
    CorrelationId, Envelope, EventId, EventKind, HaltReason, ReconciliationStatus, TradingResumed,
};
use crate::journal::{Journal, SyncMode};
use crate::venues::alpaca::fake::{Fault, Route};
use crate::venues::faulty::FaultyVenue;
use crate::workflow::WorkflowStatus;

/// Final positions of the fault-free day, per venue kind.
pub struct Plans {
    pub sim: BTreeMap<Symbol, Decimal>,
    pub fake: BTreeMap<Symbol, Decimal>,
}

pub async fn plans() -> Result<Plans, String> {
    let rig = Rig::new("plan-sim", |_| {})?;
    let sim = rig.sim();
    let engine = rig.start(sim.clone(), |_| {})?;
    let attempts = engine.day(rig.as_of).await?;
    if !completed(&attempts) {
        let last = attempts.last().map_or_else(
            || "no workflow".into(),
            |a| format!("{}: {}", a.status, a.failure.clone().unwrap_or_default()),
        );
        return Err(format!("the fault-free day did not complete ({last})"));
    }
    let rig_fake = Rig::new("plan-fake", |_| {})?;
    let fake = rig_fake.fake()?;
    let engine = rig_fake.start(rig_fake.alpaca(&fake, None)?, |_| {})?;
    let attempts = engine.day(rig_fake.as_of).await?;
    if !completed(&attempts) {
        return Err(format!(
            "the fault-free day on the fake server did not complete: {attempts:?}"
        ));
    }
    let fake_positions = fake.state().positions.clone();
    Ok(Plans {
        sim: sim.snapshot().positions,
        fake: fake_positions,
    })
}

pub const ACTORS: [&str; 5] = [
    strategy::NAME,
    portfolio::NAME,
    execution::NAME,
    reconciliation::NAME,
    recovery::NAME,
];

fn rng(seed: u64, iteration: u32, salt: u64) -> StdRng {
    StdRng::seed_from_u64(seed ^ (u64::from(iteration) << 32) ^ salt)
}

/// What `actor` consumes, from the actor's own list: a fault drawn from it is always
/// one the actor meets.
pub fn consumed_by(actor: &str) -> &'static [EventKind] {
    match actor {
        strategy::NAME => strategy::CONSUMES,
        portfolio::NAME => portfolio::CONSUMES,
        execution::NAME => execution::CONSUMES,
        reconciliation::NAME => reconciliation::CONSUMES,
        _ => recovery::CONSUMES,
    }
}

/// The actor panics while handling one of its event types (drawn from the seed), once
/// or twice (twice on one event dead-letters it and recovery retries the day).
pub async fn actor_panic(
    actor: &'static str,
    seed: u64,
    iteration: u32,
    plans: &Plans,
) -> Result<DrillReport, String> {
    let mut r = rng(seed, iteration, 1);
    let mut report = DrillReport::new("actor-panic", seed, iteration);
    // A day's events only: a reconciliation request comes at engine start.
    let kinds: Vec<EventKind> = consumed_by(actor)
        .iter()
        .copied()
        .filter(|k| *k != EventKind::ReconciliationRequested)
        .collect();
    let kind = kinds[r.random_range(0..kinds.len())];
    let times = r.random_range(1..=2u32);
    let injected = Injected::default();
    let plan = FaultPlan::new(HandlerFaultKind::PanicOn { kind, times }, injected.clone());
    report
        .faults
        .push(format!("{actor} panics {times}x on {kind}"));
    let rig = Rig::new("actor-panic", |_| {})?;
    let sim = rig.sim();
    let venue = Arc::new(FaultyVenue::new(sim.clone()));
    if actor == recovery::NAME {
        // Recovery only acts on a failure: the first order fails as a 503 would.
        venue.fail_submits(1);
        report
            .faults
            .push("first order submission fails (503)".into());
    }
    let engine = rig.start(venue.clone(), |reg| reg.wrap(actor, move |h| plan.wrap(h)))?;
    let attempts = engine.day(rig.as_of).await?;
    let stats = engine
        .settle_and_measure(&mut report, &attempts, &sim, Some(&plans.sim), &rig)
        .await?;
    report.faults_injected = injected.count() + venue.injected();
    let restarts = stats.actor(actor).map_or(0, |a| a.restarts);
    report.check(
        "fault injected",
        injected.count() >= 1,
        format!("{}", injected.count()),
    );
    report.check(
        "actor restarted",
        restarts >= 1,
        format!("{actor} restarted {restarts}x"),
    );
    if actor == recovery::NAME && kind == EventKind::WorkflowFailed && times == 2 {
        // Recovery lost the failure itself (dead-lettered): nothing can retry the day,
        // so the engine must stop trading and say why.
        let halted = stats
            .halted
            .as_ref()
            .is_some_and(|h| h.reason == HaltReason::RecoveryExhausted);
        let detail = report.halted.clone().unwrap_or_default();
        report.check(
            "trading halted when recovery lost a failure",
            halted,
            detail,
        );
    } else {
        expect_day_on_plan(&mut report, &attempts);
    }
    Ok(report)
}

/// One event kills its handler every time: dead-lettered, its workflow fails, recovery
/// retries; and an event with a made-up cause is refused at the broker.
pub async fn poison_event(seed: u64, iteration: u32, plans: &Plans) -> Result<DrillReport, String> {
    let mut r = rng(seed, iteration, 2);
    let mut report = DrillReport::new("poison-event", seed, iteration);
    let targets = [
        (portfolio::NAME, EventKind::SignalGenerated),
        (execution::NAME, EventKind::RebalancePlanned),
        (reconciliation::NAME, EventKind::OrderSettled),
    ];
    let (actor, kind) = targets[r.random_range(0..targets.len())];
    let injected = Injected::default();
    let plan = FaultPlan::new(HandlerFaultKind::Poison { kind }, injected.clone());
    report.faults.push(format!("first {kind} poisons {actor}"));
    report
        .faults
        .push("an event whose cause does not exist".into());
    let rig = Rig::new("poison", |_| {})?;
    let sim = rig.sim();
    let engine = rig.start(sim.clone(), |reg| reg.wrap(actor, move |h| plan.wrap(h)))?;
    let attempts = engine.day(rig.as_of).await?;
    let bogus = Envelope::child_of(
        CorrelationId::new(),
        EventId::new(),
        TradingResumed {
            detail: "drill: lineage that does not exist".into(),
        },
        "drill",
        engine.clock(),
    );
    let refused = matches!(
        engine.broker().send(Publish(Arc::new(bogus))).await,
        Ok(Err(_))
    );
    let stats = engine
        .settle_and_measure(&mut report, &attempts, &sim, Some(&plans.sim), &rig)
        .await?;
    report.faults_injected = injected.count() + 1;
    report.check(
        "poison dead-lettered",
        stats.dead_letters.len() == 1,
        format!(
            "{:?}",
            stats
                .dead_letters
                .iter()
                .map(|d| d.event_type)
                .collect::<Vec<_>>()
        ),
    );
    report.check(
        "its workflow failed and was retried",
        attempts
            .first()
            .is_some_and(|a| a.status == WorkflowStatus::Failed)
            && attempts.len() >= 2,
        format!("{} workflows", attempts.len()),
    );
    report.check("bad lineage refused", refused, "");
    expect_day_on_plan(&mut report, &attempts);
    Ok(report)
}

/// The execution's venue call hangs past the workflow timeout: the workflow times out,
/// recovery retries, and the hung handling, aborted later, places nothing.
pub async fn hung_workflow(
    seed: u64,
    iteration: u32,
    plans: &Plans,
) -> Result<DrillReport, String> {
    let mut report = DrillReport::new("hung-workflow", seed, iteration);
    // The workflow times out after 1 s; the hung handling is aborted at 3 s; the retry
    // comes after that, so it finds execution free again.
    let rig = Rig::new("hung", |c| {
        c.engine.workflow_timeout_secs = 1;
        c.engine.handler_timeout_secs = 3;
        c.recovery.backoff_ms = 2500;
        c.recovery.backoff_cap_ms = 2900;
    })?;
    let sim = rig.sim();
    let venue = Arc::new(FaultyVenue::new(sim.clone()));
    let hang = Duration::from_secs(10 + rng(seed, iteration, 3).random_range(0..5));
    venue.hang_submits(1, hang);
    report
        .faults
        .push(format!("first order submission hangs {}s", hang.as_secs()));
    let engine = rig.start(venue.clone(), |_| {})?;
    let attempts = engine.day(rig.as_of).await?;
    engine
        .settle_and_measure(&mut report, &attempts, &sim, Some(&plans.sim), &rig)
        .await?;
    report.faults_injected = venue.injected();
    report.check(
        "first workflow timed out",
        attempts
            .first()
            .is_some_and(|a| a.status == WorkflowStatus::TimedOut),
        attempts
            .first()
            .map_or_else(|| "no workflow".into(), |a| a.status.to_string()),
    );
    report.check(
        "day completed by a retry",
        completed(&attempts) && attempts.len() >= 2,
        report.final_status.clone(),
    );
    report.check("positions match the plan", report.positions_match_plan, "");
    Ok(report)
}

/// Execution places its orders, then crashes before publishing: the plan is delivered
/// again to the new incarnation, which must adopt the orders, not place them twice.
/// Then an already accepted event is published again and must be refused.
pub async fn duplicate_delivery(
    seed: u64,
    iteration: u32,
    plans: &Plans,
) -> Result<DrillReport, String> {
    let mut report = DrillReport::new("duplicate-delivery", seed, iteration);
    let injected = Injected::default();
    let plan = FaultPlan::new(
        HandlerFaultKind::CrashAfterEffects {
            kind: EventKind::RebalancePlanned,
            times: 1,
        },
        injected.clone(),
    );
    report
        .faults
        .push("execution crashes after placing its orders, before publishing".into());
    report
        .faults
        .push("an accepted event published again".into());
    let rig = Rig::new("duplicate", |_| {})?;
    let sim = rig.sim();
    let engine = rig.start(sim.clone(), |reg| {
        reg.wrap(execution::NAME, move |h| plan.wrap(h))
    })?;
    let attempts = engine.day(rig.as_of).await?;
    let stats_before = engine.settle().await?;
    let planned_event = Journal::open(&engine.journal, SyncMode::Normal)
        .and_then(|j| j.entries())
        .ok()
        .and_then(|entries| {
            entries
                .into_iter()
                .find(|e| e.envelope.kind() == EventKind::RebalancePlanned)
        });
    let orders_before = sim.orders().len();
    let refused = match planned_event {
        Some(e) => matches!(
            engine.broker().send(Publish(Arc::new(e.envelope))).await,
            Ok(Err(_))
        ),
        None => false,
    };
    engine
        .settle_and_measure(&mut report, &attempts, &sim, Some(&plans.sim), &rig)
        .await?;
    report.faults_injected = injected.count() + 1;
    report.check(
        "plan redelivered after the crash",
        stats_before.redelivered >= 1,
        format!("{} redeliveries", stats_before.redelivered),
    );
    report.check("repeated event refused", refused, "");
    report.check(
        "nothing placed by the repeat",
        sim.orders().len() == orders_before,
        "",
    );
    expect_day_on_plan(&mut report, &attempts);
    Ok(report)
}

/// After a completed day a position changes at the venue behind the engine's back;
/// reconciliation must see it and halt, or rebalance back (per `on_drift`).
pub async fn reconciliation_drift(seed: u64, iteration: u32) -> Result<DrillReport, String> {
    let mut report = DrillReport::new("reconciliation-drift", seed, iteration);
    let on_drift = if (seed + u64::from(iteration)).is_multiple_of(2) {
        OnDrift::Rebalance
    } else {
        OnDrift::Halt
    };
    let rig = Rig::new("drift", |c| c.reconciliation.on_drift = on_drift)?;
    let sim = rig.sim();
    let engine = rig.start(sim.clone(), |_| {})?;
    let mut attempts = engine.day(rig.as_of).await?;
    let held = sim.snapshot().positions;
    let Some((symbol, qty)) = held
        .iter()
        .max_by_key(|(_, q)| **q)
        .map(|(s, q)| (s.clone(), *q))
    else {
        return Err("the day left no position to drift".into());
    };
    let cut = -(qty * Decimal::new(3, 1)).round_dp(6);
    sim.adjust_position(&symbol, cut);
    report.faults.push(format!(
        "{symbol} changed by {cut} at the venue (on_drift = {on_drift:?})"
    ));
    report.faults_injected = 1;
    let expected = Journal::open(&engine.journal, SyncMode::Normal)
        .and_then(|j| j.expected_positions())
        .map_err(|e| e.to_string())?;
    let (request, found) = reconcile_now(
        engine.broker(),
        engine.clock(),
        "drill",
        expected,
        rig.as_of,
        Duration::from_secs(10),
    )
    .await?;
    report.check(
        "drift detected",
        found.status == ReconciliationStatus::Drift,
        found.detail.clone().unwrap_or_default(),
    );
    let orders_at_drift = sim.orders().len();
    match on_drift {
        OnDrift::Rebalance => {
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut corrective = None;
            while corrective.is_none() && Instant::now() < deadline {
                match engine.broker().send(QueryFollowUp(request)).await {
                    Ok(FollowUp::Successor(c)) => corrective = Some(c),
                    _ => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
            report.check("corrective workflow started", corrective.is_some(), "");
            if let Some(c) = corrective {
                attempts.extend(engine.follow(c).await?);
            }
            // Value left the account with the drift, so the old quantities are not the
            // target any more; on target means a fresh run of the day finds nothing to do.
            let check = engine.day(rig.as_of).await?;
            let placed = check.last().map_or(u32::MAX, |s| s.orders_placed);
            report.check(
                "back on target (a fresh run trades nothing)",
                completed(&check) && placed == 0,
                format!("{placed} orders"),
            );
        }
        OnDrift::Halt => {
            let refused = engine
                .broker()
                .send(StartWorkflow {
                    started: crate::events::WorkflowStarted {
                        as_of: rig.as_of,
                        mode: crate::domain::RunMode::Paper,
                        trigger: crate::domain::Trigger::Drill,
                        attempt: 0,
                    },
                    triggered_by: None,
                    correlation_id: None,
                })
                .await
                .is_ok_and(|r| r.is_err());
            report.check("new workflows refused while halted", refused, "");
        }
    }
    let stats = engine
        .settle_and_measure(&mut report, &attempts, &sim, None, &rig)
        .await?;
    match on_drift {
        OnDrift::Rebalance => {
            report.check(
                "day completed",
                completed(&attempts),
                report.final_status.clone(),
            );
        }
        OnDrift::Halt => {
            let halted = stats
                .halted
                .as_ref()
                .is_some_and(|h| h.reason == HaltReason::Reconciliation);
            report.check(
                "trading halted",
                halted,
                report.halted.clone().unwrap_or_default(),
            );
            report.check(
                "no order after the drift",
                sim.orders().len() == orders_at_drift,
                "",
            );
        }
    }
    Ok(report)
}

/// The venue answers a burst of requests with 503.
pub async fn venue_5xx_storm(
    seed: u64,
    iteration: u32,
    plans: &Plans,
) -> Result<DrillReport, String> {
    let n = rng(seed, iteration, 4).random_range(3..=8u32);
    on_fake(
        "venue-5xx-storm",
        seed,
        iteration,
        plans,
        None,
        |fake, report| {
            for _ in 0..n {
                fake.inject(Fault::Status {
                    route: Route::Any,
                    status: 503,
                    reset_in_secs: None,
                });
            }
            report.faults.push(format!("{n} requests answered 503"));
            n
        },
    )
    .await
}

/// The venue creates the first order but answers after the client gave up.
pub async fn venue_timeout_after_accept(
    seed: u64,
    iteration: u32,
    plans: &Plans,
) -> Result<DrillReport, String> {
    let delay = Duration::from_millis(500 + rng(seed, iteration, 5).random_range(0..400));
    on_fake(
        "venue-timeout-after-accept",
        seed,
        iteration,
        plans,
        None,
        |fake, report| {
            fake.inject(Fault::DelayAfterCreate(delay));
            report.faults.push(format!(
                "first order created, answer held {} ms (client timeout 400 ms)",
                delay.as_millis()
            ));
            1
        },
    )
    .await
}

/// A burst of 429s on top of a tight client-side limit (40 requests per second).
pub async fn rate_limit_storm(
    seed: u64,
    iteration: u32,
    plans: &Plans,
) -> Result<DrillReport, String> {
    let n = rng(seed, iteration, 6).random_range(5..=12u32);
    let limit = (40, Duration::from_secs(1));
    on_fake(
        "rate-limit-storm",
        seed,
        iteration,
        plans,
        Some(limit),
        |fake, report| {
            for _ in 0..n {
                fake.inject(Fault::Status {
                    route: Route::Any,
                    status: 429,
                    reset_in_secs: None,
                });
            }
            report.faults.push(format!(
                "{n} requests answered 429; client limit 40 per second"
            ));
            n
        },
    )
    .await
}

async fn on_fake(
    scenario: &str,
    seed: u64,
    iteration: u32,
    plans: &Plans,
    rate: Option<(u32, Duration)>,
    inject: impl FnOnce(&crate::venues::alpaca::fake::FakeAlpaca, &mut DrillReport) -> u32,
) -> Result<DrillReport, String> {
    let mut report = DrillReport::new(scenario, seed, iteration);
    let rig = Rig::new(scenario, |_| {})?;
    let fake = rig.fake()?;
    let engine = rig.start(rig.alpaca(&fake, rate)?, |_| {})?;
    report.faults_injected = inject(&fake, &mut report);
    let attempts = engine.day(rig.as_of).await?;
    let stats = engine.settle().await?;
    let (orders, created_twice) = fake_orders(&fake);
    let positions = fake.state().positions.clone();
    measure(
        &mut report,
        Some(&stats),
        &attempts,
        &engine.journal,
        &orders,
        &positions,
        Some(&plans.fake),
        &rig,
    );
    report.duplicate_orders += created_twice;
    if let Some((limit, window)) = rate {
        let arrivals = fake.state().arrivals.clone();
        let busiest = arrivals
            .iter()
            .enumerate()
            .map(|(i, t)| {
                arrivals[i..]
                    .iter()
                    .take_while(|u| u.duration_since(*t) < window)
                    .count()
            })
            .max()
            .unwrap_or(0);
        report.check(
            "client limit respected",
            busiest <= limit as usize,
            format!("busiest window {busiest} requests, limit {limit}"),
        );
    }
    expect_day_on_plan(&mut report, &attempts);
    Ok(report)
}
