//! The engine's days: one workflow now (`--once`), or one per session at the
//! schedule's time until SIGINT/SIGTERM; each day's report.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use serde::Serialize;

use super::super::error::CliError;
use super::{unserved_message, LiveBars};
use crate::actors::broker::{BrokerStats, QueryStats, QueryTree};
use crate::actors::engine::{Day, DayError, Engine};
use crate::bus::remote::RemoteView;
use crate::bus::BusHealth;
use crate::calendar::UsEquityCalendar;
use crate::causation::{CausationTree, WorkflowSummary};
use crate::clock::Clock;
use crate::domain::{RunMode, Trigger};
use crate::engine_core::PublishError;
use crate::notify::delivery::Notifier;
use crate::venue::{AccountSnapshot, Venue};
use crate::venues::sim::SimVenue;

#[derive(Serialize)]
struct RunReport {
    as_of: NaiveDate,
    /// The last attempt: the workflow or the retry that decided the day.
    workflow: Option<WorkflowSummary>,
    /// Every attempt, the first workflow and recovery's retries, in order.
    attempts: Vec<WorkflowSummary>,
    account: Option<AccountSnapshot>,
    causation_tree: Option<CausationTree>,
    broker: BrokerStats,
}

/// The engine's days: one workflow now (`--once`), or one per session at the schedule's
/// time until SIGINT/SIGTERM.
pub(super) struct TradingDays<'a> {
    pub once: bool,
    pub as_of: NaiveDate,
    pub on_alpaca: bool,
    pub mode: RunMode,
    pub schedule: crate::schedule::DailySchedule,
    pub grace: Duration,
    pub linger: u64,
    pub clock: Arc<dyn Clock>,
    /// Sends still in flight get the grace period before the process ends.
    pub notifier: Option<Arc<Notifier>>,
    /// The event bus's health and how long a new workflow waits for it (seconds).
    pub bus: Option<(BusHealth, u64)>,
    /// The remote roles' workers and how long a new workflow waits for them.
    pub workers: Option<(RemoteView, Duration)>,
    pub venue: Arc<dyn Venue>,
    pub sim_state: Option<(Arc<SimVenue>, PathBuf)>,
    pub live_bars: Option<&'a LiveBars>,
    /// `data.refresh`: pull the day's completed bars after the close.
    pub refresh_after_close: bool,
}

/// A day's workflow as reported: every attempt, the last one's causation tree, the
/// broker's figures.
type Outcome = Result<(Vec<WorkflowSummary>, Option<CausationTree>, BrokerStats), String>;

/// Whether a day's workflow may start.
enum Readiness {
    Ready,
    /// Not today (`--once`: the run fails).
    SkipDay(String),
    /// Not at all: the engine stops (`--once`: the run fails).
    Stop(String),
}

enum NextDay {
    Trade(NaiveDate),
    Skip,
    Stop(Result<(), CliError>),
}

impl TradingDays<'_> {
    pub async fn trade(&self, engine: &Engine) -> Result<(), CliError> {
        let result = self.trade_days(engine).await;
        if let Some((health, _)) = &self.bus {
            // The stream should hold every event of the run before the process ends.
            let last = engine
                .broker()
                .send(QueryStats)
                .await
                .map_or(0, |s| s.last_seq);
            let deadline = tokio::time::Instant::now() + self.grace;
            // Only a connected bus is waited for: a down one catches up at the next start.
            while health.is_connected()
                && health.mirrored_through() < last
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if health.mirrored_through() < last {
                tracing::warn!(mirrored = health.mirrored_through(), last, "the event bus lacks the run's last events; the next start republishes them from the journal");
            }
        }
        if let Some(notifier) = &self.notifier {
            if !notifier.drain(self.grace).await {
                tracing::warn!(
                    grace_secs = self.grace.as_secs(),
                    "notifications still unsent at exit"
                );
            }
        }
        result
    }

    async fn trade_days(&self, engine: &Engine) -> Result<(), CliError> {
        let stopping = Arc::new(tokio::sync::Notify::new());
        actix_rt::spawn(watch_signals(StopSignals::install(), stopping.clone()));
        loop {
            let day = if self.once {
                self.as_of
            } else {
                match self.next_day(&stopping).await {
                    NextDay::Trade(day) => day,
                    NextDay::Skip => continue,
                    NextDay::Stop(result) => return result,
                }
            };
            match self.readiness(day, &stopping).await {
                Readiness::Ready => {}
                Readiness::SkipDay(why) if !self.once => {
                    eprintln!("error: {why}");
                    continue;
                }
                Readiness::Stop(why) if !self.once => {
                    eprintln!("error: {why}");
                    return Ok(());
                }
                Readiness::SkipDay(why) | Readiness::Stop(why) => {
                    return Err(CliError::failed(why))
                }
            }
            let (outcome, stop_after) = self.run_day(engine, day, &stopping).await;
            let completed = self.report(day, outcome).await;
            if self.once {
                if self.linger > 0 {
                    tokio::time::sleep(Duration::from_secs(self.linger)).await;
                }
                return if completed {
                    Ok(())
                } else {
                    Err(CliError::Reported)
                };
            }
            if stop_after {
                return Ok(());
            }
            if self.refresh_after_close {
                if let Some(live) = self.live_bars {
                    if !self.pull_after_close(live, day, &stopping).await {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// `data.refresh`: once the day's bar is final, it goes into the store (the next
    /// workflow would pull it anyway; the store is then current for backtests tonight).
    /// False when the engine is stopping.
    async fn pull_after_close(
        &self,
        live: &LiveBars,
        day: NaiveDate,
        stopping: &tokio::sync::Notify,
    ) -> bool {
        let calendar = UsEquityCalendar::get();
        let settled =
            day.and_time(calendar.close_time(day)) + crate::calendar::BAR_SETTLES_AFTER_CLOSE;
        let at = crate::clock::new_york_to_utc(settled);
        let wait = (at - self.clock.now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopping.notified() => return false,
        }
        match live.pull_completed(day).await {
            Ok(()) => tracing::info!(%day, "the day's completed bars pulled into the store"),
            Err(e) => {
                tracing::warn!(%day, error = %e, "cannot pull the day's completed bars; the next workflow pulls them")
            }
        }
        true
    }

    /// Fresh bars, a connected event bus, a worker for every remote role: or why not.
    async fn readiness(&self, day: NaiveDate, stopping: &tokio::sync::Notify) -> Readiness {
        if let Some(live) = self.live_bars {
            if let Err(e) = live.refresh(day).await {
                return Readiness::SkipDay(format!("cannot fetch daily bars from Alpaca: {e}"));
            }
        }
        if let Some((health, wait_secs)) = &self.bus {
            if !self.bus_ready(health, *wait_secs, stopping).await {
                return Readiness::Stop(match health.fault() {
                    Some(why) => {
                        format!("the event bus cannot be used: {why}; no new workflow for {day}")
                    }
                    None => format!("the event bus is unreachable: no new workflow for {day}"),
                });
            }
        }
        if let Some((view, wait)) = &self.workers {
            let unserved = view.await_served(*wait).await;
            if !unserved.is_empty() {
                let why = unserved_message(&unserved, *wait);
                return Readiness::SkipDay(format!("{why} on {day}"));
            }
        }
        Readiness::Ready
    }

    /// The day's workflow, given the grace period on a stop; its outcome, and whether
    /// the engine stops after it.
    async fn run_day(
        &self,
        engine: &Engine,
        day: NaiveDate,
        stopping: &tokio::sync::Notify,
    ) -> (Outcome, bool) {
        // `run --once` is an operator's hand, not the schedule's.
        let trigger = if self.once {
            Trigger::Manual
        } else {
            Trigger::Schedule
        };
        let workflow = outcome(engine, Day::new(day, self.mode, trigger));
        tokio::pin!(workflow);
        tokio::select! {
            r = &mut workflow => (r, false),
            _ = stopping.notified() => {
                let grace = self.grace.as_secs();
                tracing::info!(grace_secs = grace, "stopping: letting the running workflow finish");
                match tokio::time::timeout(self.grace, &mut workflow).await {
                    Ok(r) => (r, true),
                    Err(_) => (Err(format!("workflow still running after the {grace}s grace period")), true),
                }
            }
        }
    }

    /// Waits for the event bus before a new workflow: `--once` up to `wait_secs`, the
    /// scheduled engine until it is back (or a stop). False: no workflow may start.
    async fn bus_ready(
        &self,
        health: &BusHealth,
        wait_secs: u64,
        stopping: &tokio::sync::Notify,
    ) -> bool {
        if health.is_connected() {
            return true;
        }
        tracing::warn!("the event bus is not connected yet: holding the new workflow until it is");
        let give_up = self
            .once
            .then(|| tokio::time::Instant::now() + Duration::from_secs(wait_secs));
        let wait = async {
            while !health.is_connected() {
                // A bus that answers but cannot be used (another journal's stream) is
                // not waited for: it will not get better by itself.
                if health.fault().is_some()
                    || give_up.is_some_and(|at| tokio::time::Instant::now() >= at)
                {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            true
        };
        tokio::select! {
            ready = wait => ready,
            _ = stopping.notified() => false,
        }
    }

    /// Waits for the next scheduled session (or a stop).
    async fn next_day(&self, stopping: &tokio::sync::Notify) -> NextDay {
        let calendar = UsEquityCalendar::get();
        let Some((day, at)) = self.schedule.next_run(self.clock.now(), calendar) else {
            let why = "no trading session in the next two weeks";
            return NextDay::Stop(Err(CliError::failed(why)));
        };
        if self.on_alpaca {
            tracing::info!(%day, at = %at, "next workflow");
        } else {
            // The simulated venue replays its data's day at each scheduled time.
            tracing::info!(at = %at, trades = %self.as_of, "next workflow (simulated venue: it trades the market data's last day)");
        }
        crate::metrics::metrics().schedule(None, Some(at));
        let wait = (at - self.clock.now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {
                crate::metrics::metrics().schedule(Some(at), None);
            }
            _ = stopping.notified() => {
                tracing::info!("stopping: no workflow running");
                return NextDay::Stop(Ok(()));
            }
        }
        // Alpaca's clock has the last word on whether the market is open today.
        if let Some(live) = self.live_bars {
            match live.client.clock().await {
                Ok(c) if !c.is_open => {
                    tracing::warn!(%day, "Alpaca's clock says the market is closed: skipping today");
                    return NextDay::Skip;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read Alpaca's clock; going by the built-in calendar")
                }
            }
        }
        // On Alpaca the session is today; the simulated venue replays its data's day.
        NextDay::Trade(if self.on_alpaca { day } else { self.as_of })
    }

    /// Saves the simulated account and prints the day's report; whether it completed.
    async fn report(&self, day: NaiveDate, outcome: Outcome) -> bool {
        let account = self.venue.account().await.ok();
        if let Some((sim, path)) = &self.sim_state {
            if let Err(e) = sim.save(path) {
                let shown = path.display();
                eprintln!("error: cannot save the simulated account to {shown}: {e}");
            }
        }
        let report = outcome.map(|(attempts, tree, stats)| RunReport {
            as_of: day,
            workflow: attempts.last().cloned(),
            attempts,
            account,
            causation_tree: tree,
            broker: stats,
        });
        let last = report.as_ref().ok().and_then(|r| r.workflow.clone());
        let completed = last
            .as_ref()
            .is_some_and(|w| w.status == crate::workflow::WorkflowStatus::Completed);
        match report {
            Ok(r) => match serde_json::to_string_pretty(&r) {
                Ok(json) => outln!("{json}"),
                Err(e) => eprintln!("error: cannot print report: {e}"),
            },
            Err(e) => eprintln!("error: {e}"),
        }
        // Denied orders leave the account off its target: not a success.
        let denied = last.as_ref().map_or(0, |w| w.orders_denied);
        if completed && denied > 0 {
            eprintln!(
                "error: the workflow of {day} completed, but the risk limits denied {denied} order{}: the account did not reach its target (`alchemiser status` shows why)",
                if denied == 1 { "" } else { "s" }
            );
        }
        completed && denied == 0
    }
}

/// Runs `day` to its end: its attempts, the last one's causation tree, the broker's figures.
async fn outcome(engine: &Engine, day: Day) -> Outcome {
    let attempts = engine.run_day(day).await.map_err(|e| match e {
        DayError::NotStarted(PublishError::Halted(_)) => {
            format!("{e} (after looking into it: `alchemiser resume`, or `run --resume`)")
        }
        e => e.to_string(),
    })?;
    let unavailable = |e: actix::MailboxError| format!("broker unavailable: {e}");
    let broker = engine.broker();
    let tree = match attempts.last() {
        Some(last) => broker
            .send(QueryTree(last.correlation_id))
            .await
            .map_err(unavailable)?,
        None => None,
    };
    let stats = broker.send(QueryStats).await.map_err(unavailable)?;
    Ok((attempts, tree, stats))
}

/// The streams of SIGINT and SIGTERM. Made before anything is announced: a handler is
/// installed when its stream is made, and a signal that came earlier would kill the
/// process instead of stopping it.
struct StopSignals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn install() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        Self {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
        }
    }

    /// Waits for SIGINT or SIGTERM.
    async fn next(&mut self) {
        async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            _ = recv(&mut self.interrupt) => {}
            _ = recv(&mut self.terminate) => {}
        }
    }
}

/// First SIGINT/SIGTERM: tell the loop to stop after the running workflow. Second: exit now.
async fn watch_signals(mut signals: StopSignals, stopping: Arc<tokio::sync::Notify>) {
    signals.next().await;
    stopping.notify_one();
    signals.next().await;
    eprintln!("second signal: exiting now");
    std::process::exit(130);
}
