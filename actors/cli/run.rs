//! `alchemiser run`: the engine, once or on its schedule, on Alpaca or the simulated venue.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use chrono::NaiveDate;
use serde::Serialize;

use super::super::broker::{
    Broker, BrokerStats, QueryStats, QueryTree, Resume, ResumeUnfinished, StartWorkflow, Tap,
};
use super::super::control::{await_outcome, reconcile_now, ControlFiles, RunFile};
use super::super::engine::{self, EngineDeps};
use super::super::observe;
use crate::bus::connect::NatsAccess;
use crate::bus::mirror::Mirror;
use crate::bus::remote::{RemoteView, VenueAccount};
use crate::bus::BusHealth;
use crate::calendar::UsEquityCalendar;
use crate::causation::{CausationTree, WorkflowSummary};
use crate::clock::{Clock, SystemClock};
use crate::config::BusTransport;
use crate::config::Config;
use crate::data::{Adjustment, BarSeries, MarketData, SharedMarket};
use crate::domain::{RunMode, Symbol, Trigger};
use crate::events::{ReconciliationStatus, WorkflowStarted};
use crate::journal::lock::JournalLock;
use crate::journal::outbox::Outbox;
use crate::journal::Journal;
use crate::notify::delivery::Notifier;
use crate::venue::alpaca::client::{
    AlpacaClient, ClientSettings, Credentials, LIVE_TRADING_URL, PAPER_TRADING_URL,
};
use crate::venue::alpaca::{to_daily_bars, AlpacaVenue, FillWait};
use crate::venue::metered::MeteredVenue;
use crate::venue::sim::SimVenue;
use crate::venue::{AccountSnapshot, Venue};

use super::{load_book, load_config};

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

/// Refuses live trading unless both the config and the flag ask for it.
pub fn check_live(mode: RunMode, live_flag: bool) -> Result<(), String> {
    match (mode == RunMode::Live, live_flag) {
        (true, true) | (false, false) => Ok(()),
        (true, false) => Err("engine.mode is \"live\" but --live was not given: refusing to trade real money".into()),
        (false, true) => Err(format!(
            "--live was given but engine.mode is \"{}\": set engine.mode = \"live\" in the config too", mode.as_str()
        )),
    }
}

/// The Alpaca venue when keys are in the environment.
pub(super) fn alpaca_venue(config: &Config) -> Result<Option<(Arc<AlpacaVenue>, String)>, String> {
    let Some(credentials) = Credentials::from_env() else {
        // Live means real money at Alpaca: never a quiet fall-back to the simulator.
        if config.engine.mode == RunMode::Live {
            return Err("engine.mode is \"live\" but APCA_API_KEY_ID and APCA_API_SECRET_KEY are not both set: refusing to run live on the simulated venue".into());
        }
        return Ok(None);
    };
    let a = &config.alpaca;
    let trading_url = if !a.trading_url.is_empty() {
        a.trading_url.clone()
    } else if config.engine.mode == RunMode::Live {
        LIVE_TRADING_URL.to_string()
    } else {
        PAPER_TRADING_URL.to_string()
    };
    let settings = ClientSettings {
        trading_url: trading_url.clone(),
        data_url: a.data_url.clone(),
        requests_per_minute: a.requests_per_minute,
        timeout: Duration::from_secs(a.timeout_secs),
        max_attempts: a.max_attempts,
        ..ClientSettings::default()
    };
    let masked = credentials.masked_key_id();
    let client = AlpacaClient::new(settings, credentials).map_err(|e| e.to_string())?;
    Ok(Some((
        Arc::new(AlpacaVenue::new(client, FillWait::default())),
        format!("alpaca at {trading_url}, key {masked}"),
    )))
}

/// The venue to trade and the day to trade as of.
struct OpenedVenue {
    venue: Arc<dyn Venue>,
    as_of: NaiveDate,
    /// The simulated account and where it is saved after each workflow.
    sim_state: Option<(Arc<SimVenue>, PathBuf)>,
    /// On Alpaca: the daily bars the strategies evaluate on.
    live_bars: Option<LiveBars>,
    /// The account traded, which workers must share.
    account: VenueAccount,
}

/// Alpaca when its keys are in the environment (today, live bars), else the simulated
/// venue on the market data (the data's last day, the saved account, every held
/// symbol priced). Bad input (a day that is not a session or lies outside the data) is
/// an error.
fn open_venue(
    config: &Config,
    book: &crate::strategy::book::StrategyBook,
    as_of: Option<NaiveDate>,
    once: bool,
    clock: &dyn Clock,
) -> Result<OpenedVenue, String> {
    let strategies: Vec<String> = book.files.iter().map(|f| f.symphony.name.clone()).collect();
    let mut sim_state: Option<(Arc<SimVenue>, PathBuf)> = None;
    let mut live_bars: Option<LiveBars> = None;
    let mut account = VenueAccount {
        venue: "simulated".into(),
        account: None,
    };
    let (venue, as_of): (Arc<dyn Venue>, NaiveDate) = match alpaca_venue(config)? {
        Some((alpaca, described)) => {
            live_bars = Some(LiveBars::new(&alpaca, book, config));
            let strategies = strategies.join(", ");
            let mode = config.engine.mode;
            tracing::info!(venue = %described, %mode, %strategies, "starting");
            let (today, venue_account) = venue_today(&alpaca)?;
            account = venue_account;
            // A real venue trades now, at today's prices: a signal of another day
            // would be traded at prices it never saw.
            if let Some(asked) = as_of.filter(|d| *d != today) {
                return Err(format!(
                    "--as-of {asked}: on Alpaca only the current session can be traded, and today in New York is {today}; leave --as-of out, or run {asked} on the simulated venue (`backtest` or no Alpaca keys)"
                ));
            }
            let as_of = today;
            UsEquityCalendar::get()
                .check_known(as_of)
                .map_err(|e| e.to_string())?;
            if once && !UsEquityCalendar::get().is_session(as_of) {
                return Err(format!(
                    "--as-of {as_of}: not a US equity trading session ({})",
                    crate::calendar::closed_because(as_of)
                ));
            }
            (alpaca, as_of)
        }
        None => {
            let asked = as_of;
            let as_of = as_of
                .or_else(|| book.common_dates().last().copied())
                .unwrap_or_else(|| clock.now().date_naive());
            // A day the data does not have is bad input, not a failed workflow.
            book.check_as_of(as_of).map_err(|e| e.to_string())?;
            let mut sim = SimVenue::new(
                config.venue.sim.initial_cash,
                config.venue.sim.costs(),
                Some(Arc::new(book.data.clone())),
            );
            sim.set_date(as_of);
            let state_path = (!config.venue.sim.state_file.as_os_str().is_empty())
                .then(|| config.resolve(&config.venue.sim.state_file));
            if let Some(path) = &state_path {
                match sim.restore(path) {
                    Ok(true) => {
                        tracing::info!(state = %path.display(), "simulated account restored")
                    }
                    Ok(false) => {}
                    Err(e) => {
                        return Err(format!("cannot restore the simulated account: {e}"));
                    }
                }
                check_time_runs_forward(asked, as_of, sim.last_traded(), path)?;
            }
            // Positions the strategies no longer reference are priced from the data
            // folder too, so that the plan can sell them.
            let held: Vec<Symbol> = sim.snapshot().positions.into_keys().collect();
            match book.market_with_held(&held) {
                Ok(market) => sim.set_market(Arc::new(market)),
                Err(e) => {
                    return Err(format!("cannot price a held position: {e}"));
                }
            }
            let sim = Arc::new(sim);
            if let Some(path) = state_path {
                sim_state = Some((sim.clone(), path));
            }
            let venue = format!("simulated, data {}", book.source.describe());
            let strategies = strategies.join(", ");
            tracing::info!(%venue, %strategies, "starting (no Alpaca keys in the environment)");
            (sim, as_of)
        }
    };
    Ok(OpenedVenue {
        venue,
        as_of,
        sim_state,
        live_bars,
        account,
    })
}

/// The simulated account lives forward in time like a real one: trading it on a day
/// before the last one it traded on would fill at prices older than its positions.
fn check_time_runs_forward(
    asked: Option<NaiveDate>,
    as_of: NaiveDate,
    last_traded: Option<NaiveDate>,
    state: &std::path::Path,
) -> Result<(), String> {
    let Some(last) = last_traded.filter(|last| as_of < *last) else {
        return Ok(());
    };
    let state = state.display();
    let fresh = format!("to trade an earlier day, start from a fresh account: move {state} aside (or set venue.sim.state_file = \"\")");
    Err(match asked {
        Some(_) => format!(
            "--as-of {as_of} is before {last}, the last day the simulated account in {state} traded: time runs forward on the simulated venue; {fresh}"
        ),
        None => format!(
            "the market data ends on {as_of}, before {last}, the last day the simulated account in {state} traded: refusing to trade on older prices; update the data, or {fresh}"
        ),
    })
}

pub(super) fn run(
    config_path: Option<PathBuf>,
    once: bool,
    as_of: Option<NaiveDate>,
    live: bool,
    resume: bool,
    linger: u64,
) -> ExitCode {
    let config = match load_config(config_path.as_ref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(e) = check_live(config.engine.mode, live) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let book = match load_book(&config, None) {
        Ok(b) => Arc::new(b),
        Err(code) => return code,
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let OpenedVenue {
        venue,
        as_of,
        sim_state,
        live_bars,
        account,
    } = match open_venue(&config, &book, as_of, once, &*clock) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mode = config.engine.mode;
    let schedule = config.schedule.daily();
    let grace = Duration::from_secs(config.engine.shutdown_grace_secs);
    let on_alpaca = Credentials::from_env().is_some();
    let journal_path = config.resolve(&config.journal.path);
    // Held until the process ends: a second engine on this journal is refused.
    let _lock = match JournalLock::acquire(&journal_path) {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // Held until the process ends: `halt` and `resume` find this engine by it.
    let _run_file = match RunFile::claim(&config.resolve(&config.engine.control_dir), &journal_path)
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let journal = match Journal::open(&journal_path, config.journal.sync) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = journal.check_writable() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    match journal.lost_tail() {
        Ok(None) => {}
        Ok(Some(why)) => {
            eprintln!(
                "error: journal {}: {why}; refusing to start (restore the journal, or move it aside to start a new one)",
                journal_path.display()
            );
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    }
    tracing::info!(journal = %journal_path.display(), last_seq = journal.last_seq(), "journal open");
    // Slices trading on a calendar or a threshold go on from what they held.
    match journal.latest_signal() {
        Ok(Some(signal)) => book.seed_slices(&signal),
        // No signal yet: the slices a continuous run on the data would hold (the
        // simulated venue; on Alpaca they start with the first live day).
        Ok(None) if live_bars.is_none() => book.replay_slices_before(as_of),
        Ok(None) => {}
        Err(e) => {
            eprintln!("error: cannot read the last signal from the journal: {e}");
            return ExitCode::from(2);
        }
    }
    let expected = match journal.expected_positions() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot read the expected positions from the journal: {e}");
            return ExitCode::from(2);
        }
    };
    let resumable = journal.open_workflows().map_or(true, |w| !w.is_empty());
    // The daily limit counts the New York day orders are sent on, across runs.
    let today = crate::clock::new_york_date(clock.now());
    let bought_today = match journal.bought_on(today) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot read today's purchases from the journal: {e}");
            return ExitCode::from(2);
        }
    };
    let (outbox, resolver) = match (Outbox::open(&journal_path), Outbox::open(&journal_path)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let notifier =
        match crate::notify::channels::channels(&config.notifications, &config.base_dir, &|name| {
            std::env::var(name).ok().filter(|v| !v.is_empty())
        }) {
            Ok(c) if c.is_empty() => None,
            Ok(c) => Some(Arc::new(Notifier::new(
                c,
                config.notifications.retry_policy(),
            ))),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
    let access = match (config.bus.transport == BusTransport::Nats)
        .then(|| NatsAccess::from_env(&config))
        .transpose()
    {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: NATS access: {e}");
            return ExitCode::from(2);
        }
    };
    // Credentials the server refuses will not work later either: said now, not after
    // the bus's wait.
    if let Some(access) = &access {
        let refused = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()
            .and_then(|rt| rt.block_on(crate::bus::connect::refusal(access, &config.bus.url)));
        if let Some(why) = refused {
            eprintln!("error: {why}");
            return ExitCode::from(2);
        }
    }
    let mut bus = access.map(|access| EventBus {
        config: config.bus.clone(),
        access,
        journal_path: journal_path.clone(),
        health: BusHealth::default(),
        consumers: Vec::new(),
        view: RemoteView::new(config.bus.remote_roles.clone()),
        roots: None,
        account,
        intents_open: Default::default(),
    });
    let control = ControlFiles::new(config.resolve(&config.engine.control_dir));
    let metrics_config = config.metrics.clone();
    let metered = Arc::new(MeteredVenue::new(venue));
    let venue: Arc<dyn Venue> = metered.clone();
    let patience = Duration::from_millis(config.recovery.backoff_cap_ms)
        + Duration::from_secs(config.engine.handler_timeout_secs);
    let mut deps = EngineDeps::new(config, clock.clone(), venue.clone(), book)
        .with_outbox(outbox)
        .with_notifier(notifier.clone());
    deps.deployed.seed(today, bought_today);
    if let Some(bus) = &mut bus {
        bus.consumers = crate::actors::remote::remote_consumers(&deps);
        bus.roots = Some(deps.roots.clone());
    }
    if let Some(live) = &live_bars {
        deps = deps.with_market(live.market.clone());
    }
    let bus_gate = bus
        .as_ref()
        .map(|b| (b.health.clone(), b.config.connect_timeout_secs));
    let workers = bus.as_ref().filter(|b| !b.consumers.is_empty()).map(|b| {
        (
            b.view.clone(),
            Duration::from_secs(b.config.worker_wait_secs),
        )
    });
    let startup = Startup {
        bus,
        remote: None,
        resolver,
        live_bars: live_bars.as_ref(),
        resumable,
        as_of,
        metrics: metrics_config,
        metered,
        clock: clock.clone(),
        expected,
        patience,
        control,
        resume,
        intents_open: None,
    };
    let days = TradingDays {
        once,
        as_of,
        on_alpaca,
        mode,
        schedule,
        grace,
        patience,
        linger,
        clock,
        notifier,
        bus: bus_gate,
        workers,
        venue: venue.clone(),
        sim_state,
        live_bars: live_bars.as_ref(),
    };
    let system = actix::System::new();
    system.block_on(async move {
        match startup.start(deps, journal, venue.as_ref()).await {
            Ok(broker) => days.trade(&broker).await,
            Err(code) => {
                // Actors started just before the refusal have not run yet: they start
                // now, inside the runtime (dropped unstarted after it, they panic).
                tokio::task::yield_now().await;
                code
            }
        }
    })
}

/// What the engine needs before its first workflow.
struct Startup<'a> {
    /// The event bus, attached as soon as the broker starts.
    bus: Option<EventBus>,
    /// The remote actors, for `/healthz` (set when the bus has any).
    remote: Option<RemoteView>,
    resolver: Outbox,
    live_bars: Option<&'a LiveBars>,
    /// The journal has workflows to resume.
    resumable: bool,
    as_of: NaiveDate,
    metrics: crate::config::MetricsConfig,
    metered: Arc<MeteredVenue>,
    clock: Arc<dyn Clock>,
    expected: Option<std::collections::BTreeMap<Symbol, rust_decimal::Decimal>>,
    patience: Duration,
    control: ControlFiles,
    resume: bool,
    /// Opened to the workers' order intents once the start-up check is done.
    intents_open: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl Startup<'_> {
    /// Settles what the last run left (order intents, unfinished workflows), starts the
    /// broker and the actors, serves metrics, and reconciles the venue with the journal:
    /// never trade blind.
    async fn start(
        mut self,
        deps: EngineDeps,
        journal: Journal,
        venue: &dyn Venue,
    ) -> Result<Addr<Broker>, ExitCode> {
        // Read before they are resolved: intents of an execution the journal never saw
        // start (the engine stopped between the two) count in the expected positions.
        let unanswered = match self.resolver.pending() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: cannot read the order intents left by the last run: {e}");
                return Err(ExitCode::from(2));
            }
        };
        if let Err(e) = resolve_pending_intents(&self.resolver, venue).await {
            eprintln!("error: cannot resolve order intents left by the last run: {e}");
            return Err(ExitCode::from(2));
        }
        let expected = match self.expected_at_start(&journal, venue, &unanswered).await {
            Ok(e) => e,
            Err(e) => {
                eprintln!("error: cannot work out the positions the account should hold: {e}");
                return Err(ExitCode::from(2));
            }
        };
        // Workflows the last run left open resume as the broker starts, and their
        // strategy evaluates on the live bars: fetch those first.
        if let (Some(live), true) = (self.live_bars, self.resumable) {
            if let Err(e) = live.refresh(self.as_of).await {
                tracing::error!(error = %e, "cannot fetch daily bars for the workflows to resume");
            }
        }
        // Unfinished workflows wait for the reconciliation below: an execution resumed
        // during it would place orders the check would take for drift.
        let broker = engine::start_holding_unfinished(engine::standard_registry(deps), journal);
        if let Some(bus) = self.bus.take() {
            if !bus.consumers.is_empty() {
                self.remote = Some(bus.view.clone());
            }
            self.intents_open = Some(bus.intents_open.clone());
            let (health, remote, wait) = (
                bus.health.clone(),
                !bus.consumers.is_empty(),
                Duration::from_secs(bus.config.connect_timeout_secs),
            );
            let (view, worker_wait) = (
                bus.view.clone(),
                Duration::from_secs(bus.config.worker_wait_secs),
            );
            bus.start(&broker).await;
            // Roles in workers hear only what is published once their consumers exist:
            // the start-up check waits for them.
            if remote {
                let deadline = tokio::time::Instant::now() + wait;
                while !health.is_connected()
                    && health.fault().is_none()
                    && tokio::time::Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                if !health.is_connected() {
                    let why = health.fault().unwrap_or_else(|| "it is unreachable".into());
                    eprintln!("error: the event bus cannot be used ({why}): the roles served by workers cannot check the account; not trading blind");
                    return Err(ExitCode::FAILURE);
                }
                // Events for a role nobody serves would wait out every timeout.
                let unserved = view.await_served(worker_wait).await;
                if !unserved.is_empty() {
                    eprintln!("{}", unserved_message(&unserved, worker_wait));
                    return Err(ExitCode::FAILURE);
                }
            }
        }
        if self.metrics.enabled {
            if let Err(e) = self.serve_metrics(&broker).await {
                eprintln!("error: {e}");
                return Err(ExitCode::from(2));
            }
        }
        let check = reconcile_now(
            &broker,
            &*self.clock,
            "startup",
            expected,
            self.as_of,
            self.patience,
        );
        match check.await {
            Ok((_, r)) if r.status == ReconciliationStatus::Failed => {
                let detail = r.detail.unwrap_or_default();
                eprintln!("error: start-up reconciliation could not read the venue: {detail}; not trading blind");
                return Err(ExitCode::from(2));
            }
            Ok((_, r)) => {
                let cash = r.actual_cash.map_or("unknown".into(), |c| c.to_string());
                let detail = r.detail.as_deref().unwrap_or("");
                let positions = r.positions.len();
                tracing::info!(status = %r.status, positions, %cash, detail, "start-up reconciliation");
            }
            Err(e) => {
                eprintln!("error: start-up reconciliation: {e}; not trading blind");
                return Err(ExitCode::from(2));
            }
        }
        if let Some(open) = &self.intents_open {
            open.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        self.control.apply(&broker).await;
        let lifted = Resume {
            detail: "run --resume".into(),
        };
        if self.resume && broker.send(lifted).await.unwrap_or(false) {
            tracing::warn!("halt lifted by --resume");
        }
        self.control
            .clone()
            .watch(broker.clone(), Duration::from_millis(500));
        if let Ok(n @ 1..) = broker.send(ResumeUnfinished).await {
            tracing::info!(workflows = n, "unfinished workflows handed on");
        }
        self.settle_resumed(&broker).await;
        if let Some(live) = self.live_bars {
            let today = self
                .clock
                .now()
                .with_timezone(&chrono_tz::America::New_York);
            confirm_calendar(&live.client, today.date_naive()).await;
        }
        Ok(broker)
    }

    /// The journal's expected positions, corrected for a workflow the last run left
    /// during its orders: execution reports each order as it goes, so the journal may
    /// stop before fills the venue made. Such a workflow's positions are those before
    /// its first order plus what the venue filled of every order the outbox says it
    /// sent (each intent is written before its order goes out), each followed until it
    /// is no longer open.
    async fn expected_at_start(
        &self,
        journal: &Journal,
        venue: &dyn Venue,
        unanswered: &[crate::journal::outbox::PendingIntent],
    ) -> Result<Option<std::collections::BTreeMap<Symbol, rust_decimal::Decimal>>, String> {
        let open = journal.open_execution().map_err(|e| e.to_string())?;
        let (mut positions, mut ids) = match &open {
            Some(open) => (
                open.positions_before.clone(),
                self.resolver
                    .intents_of(open.correlation)
                    .map_err(|e| e.to_string())?,
            ),
            None => match self.expected.clone() {
                Some(p) => (p, Vec::new()),
                // Nothing journaled: the venue is the baseline.
                None => return Ok(None),
            },
        };
        // An intent is written before its order goes out, but its execution's start may
        // not have reached the journal before the engine stopped: those orders' fills
        // are in no journaled position yet.
        for pending in unanswered {
            let c = pending.correlation_id;
            if open.as_ref().is_some_and(|o| o.correlation == c) {
                continue;
            }
            let started = journal
                .correlation(&c)
                .map_err(|e| e.to_string())?
                .iter()
                .any(|e| e.envelope.kind() == crate::events::EventKind::ExecutionStarted);
            if !started {
                ids.push(pending.intent.client_order_id.clone());
            }
        }
        for id in ids {
            if let Some(mut order) = venue
                .order_by_client_id(&id)
                .await
                .map_err(|e| e.to_string())?
            {
                // Still filling (a worker's order goes on while its engine restarts): the
                // fills are counted once it is done, not as they stand now, or the check
                // below would take the fills that came meanwhile for drift.
                if order.status.is_open() {
                    order = venue.settle(order).await.map_err(|e| e.to_string())?;
                }
                crate::domain::apply_fills(
                    &mut positions,
                    [(&order.symbol, order.side, order.filled_qty)],
                );
            }
        }
        Ok(Some(positions))
    }

    /// Serves `/metrics` and `/healthz`, or says why it cannot: an engine its alerts
    /// cannot see must not trade.
    async fn serve_metrics(&self, broker: &Addr<Broker>) -> Result<(), String> {
        let listen = self.metrics.listen.parse().map_err(|_| {
            format!(
                "metrics.listen = {:?} is not an address (HOST:PORT)",
                self.metrics.listen
            )
        })?;
        let bound = observe::serve(
            listen,
            broker.clone(),
            self.metered.clone(),
            self.remote.clone(),
        )
        .await
        .map_err(|e| {
            format!("cannot serve metrics and health on {listen} (metrics.listen): {e}; another engine may be using it — choose another address, or set metrics.enabled = false")
        })?;
        tracing::info!(%bound, "metrics on http://{bound}/metrics, health on /healthz");
        Ok(())
    }

    /// Workflows left unfinished by the last run are settled before anything new
    /// starts: resumed ones run on; failed ones (`recovery.resume = "fail"`) go to
    /// recovery.
    async fn settle_resumed(&self, broker: &Addr<Broker>) {
        let Ok(stats) = broker.send(QueryStats).await else {
            return;
        };
        let open = stats
            .workflows
            .iter()
            .filter(|w| w.status != crate::workflow::WorkflowStatus::Completed);
        for w in open {
            let id = w.correlation_id;
            tracing::info!(correlation_id = %id, stage = %w.stage, "waiting for a resumed workflow");
            let outcome = await_outcome(broker, id, self.patience).await;
            match outcome.ok().and_then(|a| a.last().cloned()) {
                Some(done) => {
                    tracing::info!(correlation_id = %id, status = %done.status, "resumed workflow ended")
                }
                None => tracing::warn!(correlation_id = %id, "resumed workflow did not report"),
            }
        }
    }
}

/// The engine's days: one workflow now (`--once`), or one per session at the schedule's
/// time until SIGINT/SIGTERM.
struct TradingDays<'a> {
    once: bool,
    as_of: NaiveDate,
    on_alpaca: bool,
    mode: RunMode,
    schedule: crate::schedule::DailySchedule,
    grace: Duration,
    patience: Duration,
    linger: u64,
    clock: Arc<dyn Clock>,
    /// Sends still in flight get the grace period before the process ends.
    notifier: Option<Arc<Notifier>>,
    /// The event bus's health and how long a new workflow waits for it (seconds).
    bus: Option<(BusHealth, u64)>,
    /// The remote roles' workers and how long a new workflow waits for them.
    workers: Option<(RemoteView, Duration)>,
    venue: Arc<dyn Venue>,
    sim_state: Option<(Arc<SimVenue>, PathBuf)>,
    live_bars: Option<&'a LiveBars>,
}

impl TradingDays<'_> {
    async fn trade(&self, broker: &Addr<Broker>) -> ExitCode {
        let code = self.trade_days(broker).await;
        if let Some((health, _)) = &self.bus {
            // The stream should hold every event of the run before the process ends.
            let last = broker.send(QueryStats).await.map_or(0, |s| s.last_seq);
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
        code
    }

    async fn trade_days(&self, broker: &Addr<Broker>) -> ExitCode {
        let stopping = Arc::new(tokio::sync::Notify::new());
        actix_rt::spawn(watch_signals(StopSignals::install(), stopping.clone()));
        loop {
            let day = if self.once {
                self.as_of
            } else {
                match self.next_day(&stopping).await {
                    NextDay::Trade(day) => day,
                    NextDay::Skip => continue,
                    NextDay::Stop(code) => return code,
                }
            };
            if let Some(live) = self.live_bars {
                if let Err(e) = live.refresh(day).await {
                    eprintln!("error: cannot fetch daily bars from Alpaca: {e}");
                    if self.once {
                        return ExitCode::FAILURE;
                    }
                    continue;
                }
            }
            if let Some((health, wait_secs)) = &self.bus {
                if !self.bus_ready(health, *wait_secs, &stopping).await {
                    match health.fault() {
                        Some(why) => eprintln!(
                            "error: the event bus cannot be used: {why}; no new workflow for {day}"
                        ),
                        None => eprintln!(
                            "error: the event bus is unreachable: no new workflow for {day}"
                        ),
                    }
                    if self.once {
                        return ExitCode::FAILURE;
                    }
                    return ExitCode::SUCCESS;
                }
            }
            // `run --once` is an operator's hand, not the schedule's.
            let trigger = if self.once {
                Trigger::Manual
            } else {
                Trigger::Schedule
            };
            if let Some((view, wait)) = &self.workers {
                let unserved = view.await_served(*wait).await;
                if !unserved.is_empty() {
                    eprintln!("{} on {day}", unserved_message(&unserved, *wait));
                    if self.once {
                        return ExitCode::FAILURE;
                    }
                    continue;
                }
            }
            let workflow = run_workflow(broker, trigger, day, self.mode, self.patience);
            tokio::pin!(workflow);
            let mut stop_after = false;
            let outcome = tokio::select! {
                r = &mut workflow => r,
                _ = stopping.notified() => {
                    let grace = self.grace.as_secs();
                    tracing::info!(grace_secs = grace, "stopping: letting the running workflow finish");
                    stop_after = true;
                    match tokio::time::timeout(self.grace, &mut workflow).await {
                        Ok(r) => r,
                        Err(_) => Err(format!("workflow still running after the {grace}s grace period")),
                    }
                }
            };
            let completed = self.report(day, outcome).await;
            if self.once {
                if self.linger > 0 {
                    tokio::time::sleep(Duration::from_secs(self.linger)).await;
                }
                return if completed {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                };
            }
            if stop_after {
                return ExitCode::SUCCESS;
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
            eprintln!("error: no trading session in the next two weeks");
            return NextDay::Stop(ExitCode::FAILURE);
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
                return NextDay::Stop(ExitCode::SUCCESS);
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
    async fn report(
        &self,
        day: NaiveDate,
        outcome: Result<(Vec<WorkflowSummary>, Option<CausationTree>, BrokerStats), String>,
    ) -> bool {
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

enum NextDay {
    Trade(NaiveDate),
    Skip,
    Stop(ExitCode),
}

/// Daily bars from Alpaca for the strategies' symbols, refreshed before each workflow.
pub(super) struct LiveBars {
    client: Arc<AlpacaClient>,
    pub(super) market: SharedMarket,
    symbols: Vec<Symbol>,
    adjustment: &'static str,
    feed: String,
}

impl LiveBars {
    /// The book's symbols, fetched from `alpaca` as each day needs them.
    pub(super) fn new(
        alpaca: &AlpacaVenue,
        book: &crate::strategy::book::StrategyBook,
        config: &Config,
    ) -> Self {
        LiveBars {
            client: alpaca.client().clone(),
            market: SharedMarket::new(Default::default()),
            symbols: book.symbols(),
            adjustment: match config.strategy.adjustment {
                Adjustment::Raw => "raw",
                Adjustment::Adjusted => "all",
            },
            feed: config.alpaca.feed.clone(),
        }
    }

    /// History for indicators: enough calendar days for 200+ sessions and RSI tails.
    const HISTORY_DAYS: i64 = 500;

    pub(super) async fn refresh(&self, day: NaiveDate) -> Result<(), String> {
        let start = day - chrono::Duration::days(Self::HISTORY_DAYS);
        let bars = self
            .client
            .daily_bars(&self.symbols, start, day, self.adjustment, &self.feed)
            .await
            .map_err(|e| e.to_string())?;
        let mut series = std::collections::BTreeMap::new();
        for symbol in &self.symbols {
            let raw = bars
                .get(symbol.as_str())
                .ok_or_else(|| format!("no bars for {symbol}"))?;
            let daily = to_daily_bars(symbol, raw)?;
            check_fresh(symbol, daily.last().map(|b| b.date), day)?;
            series.insert(
                Symbol::from(symbol.as_str()),
                Arc::new(BarSeries::new(symbol.as_str().into(), daily)),
            );
        }
        tracing::info!(symbols = self.symbols.len(), %start, end = %day, "daily bars refreshed");
        self.market.replace(MarketData { series });
        Ok(())
    }
}

/// The venue's day in New York, from Alpaca's clock (the only session it can trade),
/// and the account the keys open (workers must serve the same one). Read before
/// anything else on the venue; unreadable means not trading blind.
fn venue_today(alpaca: &AlpacaVenue) -> Result<(NaiveDate, VenueAccount), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime to read Alpaca's clock: {e}"))?;
    let account = runtime
        .block_on(alpaca.client().account())
        .map_err(|e| format!("cannot read the Alpaca account ({e}): not trading blind"))?;
    let account = VenueAccount {
        venue: "alpaca".into(),
        account: Some(account.account_number),
    };
    let clock = runtime
        .block_on(alpaca.client().clock())
        .map_err(|e| format!("cannot read Alpaca's clock ({e}): not trading blind"))?;
    chrono::DateTime::parse_from_rfc3339(&clock.timestamp)
        .map(|t| {
            (
                crate::clock::new_york_date(t.with_timezone(&chrono::Utc)),
                account,
            )
        })
        .map_err(|e| {
            format!(
                "Alpaca's clock says `{}`, which is not a time ({e}): not trading blind",
                clock.timestamp
            )
        })
}

/// Why no workflow starts while a remote role has no live worker.
fn unserved_message(unserved: &[String], waited: Duration) -> String {
    let roles = unserved.join(", ");
    format!(
        "error: no live worker serves {} {roles} (bus.remote_roles) after {} s (bus.worker_wait_secs): start `alchemiser worker --roles {}`; nothing traded",
        if unserved.len() == 1 { "role" } else { "roles" },
        waited.as_secs(),
        unserved.join(",")
    )
}

/// Refuses bars that end before the session before `day`: a strategy evaluated on them
/// would trade today on a market weeks old (a delisted or halted symbol, a feed gap).
fn check_fresh(symbol: &str, last_bar: Option<NaiveDate>, day: NaiveDate) -> Result<(), String> {
    let needed = UsEquityCalendar::get().previous_session(day);
    match last_bar {
        Some(last) if last >= needed => Ok(()),
        Some(last) => Err(format!(
            "stale market data: the last daily bar of {symbol} is {last}, but trading on {day} needs the {needed} session's; not evaluating"
        )),
        None => Err(format!(
            "stale market data: Alpaca has no daily bar of {symbol} up to {day}; not evaluating"
        )),
    }
}

/// Compares the built-in calendar with Alpaca's for the next 30 days and says where they
/// differ (a holiday announced after the built-in list was made); the daily clock check
/// then keeps the engine from trading on a day Alpaca says is closed.
async fn confirm_calendar(client: &AlpacaClient, today: NaiveDate) {
    let end = today + chrono::Duration::days(30);
    match client.calendar(today, end).await {
        Ok(days) => {
            let alpaca: std::collections::BTreeSet<String> =
                days.iter().map(|d| d.date.clone()).collect();
            let ours: std::collections::BTreeSet<String> = UsEquityCalendar::get()
                .sessions(today, end)
                .iter()
                .map(|d| d.to_string())
                .collect();
            let differ: Vec<&String> = alpaca.symmetric_difference(&ours).collect();
            if differ.is_empty() {
                tracing::info!(%today, %end, "calendar confirmed by Alpaca");
            } else {
                let differ: Vec<&str> = differ.iter().map(|d| d.as_str()).collect();
                tracing::warn!(
                    differ = %differ.join(", "),
                    "the built-in calendar and Alpaca's differ; Alpaca's clock decides each day"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read Alpaca's calendar"),
    }
}

/// Intents the last run recorded but never saw answered (it stopped in between): adopted
/// when the venue has the order, submitted with the same client order id when it does not.
async fn resolve_pending_intents(outbox: &Outbox, venue: &dyn Venue) -> Result<(), String> {
    for pending in outbox.pending().map_err(|e| e.to_string())? {
        let id = pending.intent.client_order_id.clone();
        let outcome = match venue
            .order_by_client_id(&id)
            .await
            .map_err(|e| e.to_string())?
        {
            Some(order) => {
                tracing::warn!(client_order_id = %id, status = order.status.as_str(), "adopted an order the last run sent");
                format!("adopted: {}", order.status.as_str())
            }
            None => {
                let order = venue
                    .submit(&pending.intent)
                    .await
                    .map_err(|e| e.to_string())?;
                tracing::warn!(client_order_id = %id, status = order.status.as_str(), "submitted an order the last run intended");
                format!("submitted at start: {}", order.status.as_str())
            }
        };
        outbox.resolve(&id, &outcome).map_err(|e| e.to_string())?;
    }
    Ok(())
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

async fn run_workflow(
    broker: &Addr<Broker>,
    trigger: Trigger,
    as_of: NaiveDate,
    mode: crate::domain::RunMode,
    patience: Duration,
) -> Result<(Vec<WorkflowSummary>, Option<CausationTree>, BrokerStats), String> {
    let unavailable = |e: actix::MailboxError| format!("broker unavailable: {e}");
    let started = WorkflowStarted {
        as_of,
        mode,
        trigger,
        attempt: 0,
    };
    let correlation = broker
        .send(StartWorkflow {
            started,
            triggered_by: None,
            correlation_id: None,
        })
        .await
        .map_err(unavailable)?
                .map_err(|e| match e {
            super::super::broker::PublishError::Halted(_) => format!(
                "workflow not started: {e} (after looking into it: `alchemiser resume`, or `run --resume`)"
            ),
            _ => format!("workflow not started: {e}"),
        })?;
    let attempts = await_outcome(broker, correlation, patience)
        .await
        .map_err(unavailable)?;
    let last = attempts.last().map_or(correlation, |a| a.correlation_id);
    let tree = broker.send(QueryTree(last)).await.map_err(unavailable)?;
    let stats = broker.send(QueryStats).await.map_err(unavailable)?;
    Ok((attempts, tree, stats))
}

/// The event bus of a run with `bus.transport = "nats"`: the mirror that keeps the
/// JetStream stream a copy of the journal.
struct EventBus {
    config: crate::config::BusConfig,
    /// Who the engine is on the bus, and how the connection is secured.
    access: NatsAccess,
    journal_path: PathBuf,
    health: BusHealth,
    /// The durable consumers of the roles served by workers: (name, subject).
    consumers: Vec<(String, String)>,
    /// What `/healthz` shows of the workers.
    view: RemoteView,
    /// The broker's workflow roots, which recovery workers ask for.
    roots: Option<crate::workflow_roots::WorkflowRoots>,
    /// The venue account the engine trades, told to workers that ask.
    account: VenueAccount,
    /// Whether workers' order intents are taken: not before the start-up check, which
    /// a worker's order (a plan redelivered by the server, not held by the broker)
    /// would otherwise race.
    intents_open: Arc<std::sync::atomic::AtomicBool>,
}

impl EventBus {
    /// Taps the broker (each dispatched event, in order) and starts the mirror.
    async fn start(self, broker: &Addr<Broker>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let tap = broker
            .send(Tap(Box::new(move |seq, env| {
                // Closed only when the mirror ended; the journal still has the event.
                let _ = tx.send((seq, env.clone()));
            })))
            .await;
        if tap.is_err() {
            tracing::error!("the broker stopped before the event bus could be attached");
            return;
        }
        if !self.consumers.is_empty() {
            // The workers' way back: their reactions, dead letters and heartbeats.
            let (options, url, prefix, broker, view, roots, account, intents_open) = (
                self.access.options(),
                self.config.url.clone(),
                self.config.subject_prefix.clone(),
                broker.clone(),
                self.view.clone(),
                self.roots.clone(),
                self.account.clone(),
                self.intents_open.clone(),
            );
            // The workers' order intents go to this journal's outbox before the venue.
            let outbox = match Outbox::open(&self.journal_path) {
                Ok(o) => Some(o),
                Err(e) => {
                    tracing::error!(error = %e, "cannot open the outbox for the workers' intents: they will not place orders");
                    None
                }
            };
            let lease = std::time::Duration::from_secs(self.config.ack_wait_secs);
            let journal = Journal::open(&self.journal_path, crate::journal::SyncMode::Normal)
                .map_err(|e| tracing::error!(error = %e, "cannot read the journal for the workers' questions"))
                .ok();
            let journaled = journal.as_ref().map_or(u64::MAX, Journal::last_seq);
            let (stream, names): (String, Vec<String>) = (
                self.config.stream.clone(),
                self.consumers.iter().map(|(n, _)| n.clone()).collect(),
            );
            tokio::task::spawn_local(async move {
                let connect = options.retry_on_initial_connect().connect(url.as_str());
                let served = match connect.await {
                    Ok(client) => {
                        tokio::task::spawn_local(crate::actors::remote::watch_lag(
                            client.clone(),
                            stream,
                            names,
                            view.clone(),
                        ));
                        let endpoint = crate::actors::remote::Endpoint {
                            prefix,
                            broker,
                            view,
                            roots,
                            account,
                            outbox: outbox.map(|o| (o, intents_open)),
                            lease,
                            journaled,
                            journal,
                        };
                        crate::actors::remote::serve_endpoint(client, endpoint).await
                    }
                    Err(e) => Err(e.to_string()),
                };
                if let Err(e) = served {
                    tracing::error!(error = %e, "the workers' endpoint stopped");
                }
            });
        }
        let mirror = Mirror::new(self.config, self.access, self.journal_path, self.health)
            .with_consumers(self.consumers);
        tokio::task::spawn_local(mirror.run(rx));
    }
}
