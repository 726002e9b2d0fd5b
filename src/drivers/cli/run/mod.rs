//! `alchemiser run`: the engine, once or on its schedule, on Alpaca or the simulated venue.
//!
//! In order: the venue and the day ([`venue`]), the journal and what it says of the
//! account ([`OpenedJournal`], [`JournalState`]), the engine's start with its start-up
//! check ([`startup`]), then the days ([`days`]); the event bus, when configured, is
//! [`bus`].

mod bus;
mod days;
mod startup;
mod venue;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::error::CliError;
use super::{load_book_to_trade, load_config, refuse_findings};
use crate::actors::control::{ControlFiles, RunFile};
use crate::actors::engine::EngineDeps;
use crate::bus::connect::NatsAccess;
use crate::bus::remote::RemoteView;
use crate::bus::BusHealth;
use crate::clock::{Clock, SystemClock};
use crate::config::{BusTransport, Config};
use crate::domain::{RunMode, Symbol};
use crate::journal::lock::JournalLock;
use crate::journal::outbox::Outbox;
use crate::journal::Journal;
use crate::notify::delivery::Notifier;
use crate::strategy::book::StrategyBook;
use crate::venue::Venue;
use crate::venues::alpaca::client::Credentials;
use crate::venues::metered::MeteredVenue;

use bus::EventBus;
use days::TradingDays;
use startup::Startup;
pub(super) use venue::{alpaca_data_client, alpaca_venue, LiveBars};
use venue::{open_venue, OpenedVenue};

// What `run` was asked (no doc comment: clap would take it for the subcommand's
// description).
#[derive(clap::Args)]
pub(in super::super) struct RunArgs {
    /// Configuration file (default: ./config.toml if the current folder has one, else the embedded defaults).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Run a single workflow, print its report as JSON and exit (non-zero unless it completed).
    #[arg(long)]
    pub once: bool,
    /// The trading day to run as of (default: the last day of the market data on the
    /// simulated venue; today in New York on Alpaca).
    #[arg(long)]
    pub as_of: Option<NaiveDate>,
    /// Trade real money: needs `engine.mode = "live"` in the config as well.
    #[arg(long)]
    pub live: bool,
    /// Lift a halt the journal ends with (after the start-up reconciliation).
    #[arg(long)]
    pub resume: bool,
    /// With --once: keep serving /metrics this many seconds after the report, so a
    /// scraper collects the final counters.
    #[arg(long, requires = "once")]
    pub linger: Option<u64>,
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

pub(super) fn run(args: RunArgs) -> Result<(), CliError> {
    let config = load_config(args.config.as_ref())?;
    check_live(config.engine.mode, args.live).map_err(CliError::input)?;
    let book = Arc::new(if on_alpaca() {
        refuse_findings(
            &config,
            venue::book_on_the_store(&config).map_err(CliError::input)?,
            NaiveDate::MAX,
        )?
    } else {
        load_book_to_trade(&config, None, args.as_of.unwrap_or(NaiveDate::MAX))?
    });
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let opened =
        open_venue(&config, &book, args.as_of, args.once, &*clock).map_err(CliError::input)?;
    let journal = OpenedJournal::open(&config)?;
    let state = JournalState::read(&journal.journal, &book, &opened, &*clock)?;
    let bus = event_bus(&config, &journal.path, &opened)?;
    let notifier = notifier(&config)?;
    let (outbox, resolver) = (outbox(&journal.path)?, outbox(&journal.path)?);
    let metered = Arc::new(MeteredVenue::new(opened.venue.clone()));
    let venue: Arc<dyn Venue> = metered.clone();
    let mut deps = EngineDeps::new(config.clone(), clock.clone(), venue.clone(), book)
        .with_outbox(outbox)
        .with_notifier(notifier.clone());
    deps.deployed.seed(state.today, state.bought_today);
    if let Some(live) = &opened.live_bars {
        deps = deps.with_market(live.market.clone());
    }
    let bus = bus.map(|b| b.serving(&deps));
    let days = TradingDays {
        once: args.once,
        as_of: opened.as_of,
        on_alpaca: on_alpaca(),
        mode: config.engine.mode,
        schedule: config.schedule.daily(),
        grace: Duration::from_secs(config.engine.shutdown_grace_secs),
        linger: args.linger.unwrap_or(0),
        clock: clock.clone(),
        notifier,
        bus: bus.as_ref().map(EventBus::gate),
        workers: bus.as_ref().and_then(EventBus::workers),
        venue: venue.clone(),
        sim_state: opened.sim_state.clone(),
        live_bars: opened.live_bars.as_ref(),
        refresh_after_close: config.data.refresh,
    };
    let startup = Startup {
        bus,
        remote: None,
        resolver,
        live_bars: opened.live_bars.as_ref(),
        resumable: state.resumable,
        as_of: opened.as_of,
        metrics: config.metrics.clone(),
        metered,
        clock,
        expected: state.expected,
        control: ControlFiles::new(config.resolve(&config.engine.control_dir)),
        resume: args.resume,
        intents_open: None,
    };
    let OpenedJournal {
        journal,
        _lock,
        _run_file,
        ..
    } = journal;
    let system = actix::System::new();
    system.block_on(async move {
        match startup.start(deps, journal, venue.as_ref()).await {
            Ok(engine) => days.trade(&engine).await,
            Err(e) => {
                // Actors started just before the refusal have not run yet: they start
                // now, inside the runtime (dropped unstarted after it, they panic).
                tokio::task::yield_now().await;
                Err(e)
            }
        }
    })
}

/// The journal `run` writes, held for as long as it runs.
struct OpenedJournal {
    path: PathBuf,
    journal: Journal,
    /// A second engine on this journal is refused.
    _lock: JournalLock,
    /// `halt` and `resume` find this engine by it.
    _run_file: RunFile,
}

impl OpenedJournal {
    /// Locks and opens the configured journal; refuses one that cannot be written or
    /// that lost its last rows.
    fn open(config: &Config) -> Result<Self, CliError> {
        let path = config.resolve(&config.journal.path);
        let _lock = JournalLock::acquire(&path).map_err(CliError::input)?;
        let control_dir = config.resolve(&config.engine.control_dir);
        let _run_file = RunFile::claim(&control_dir, &path).map_err(CliError::input)?;
        let journal = Journal::open(&path, config.journal.sync).map_err(CliError::input)?;
        journal.check_writable().map_err(CliError::input)?;
        if let Some(why) = journal.lost_tail().map_err(CliError::input)? {
            return Err(CliError::input(format!(
                "journal {}: {why}; refusing to start (restore the journal, or move it aside to start a new one)",
                path.display()
            )));
        }
        tracing::info!(journal = %path.display(), last_seq = journal.last_seq(), "journal open");
        Ok(Self {
            path,
            journal,
            _lock,
            _run_file,
        })
    }
}

/// What the journal says of the account before the engine starts.
struct JournalState {
    /// The positions the account should hold (`None`: nothing journaled yet).
    expected: Option<BTreeMap<Symbol, Decimal>>,
    /// The journal has workflows to resume.
    resumable: bool,
    /// The New York day orders are sent on, and what was bought on it across runs
    /// (the daily limit counts it).
    today: NaiveDate,
    bought_today: Decimal,
}

impl JournalState {
    fn read(
        journal: &Journal,
        book: &StrategyBook,
        opened: &OpenedVenue,
        clock: &dyn Clock,
    ) -> Result<Self, CliError> {
        let unreadable = |what: &str| {
            let what = what.to_string();
            move |e: crate::journal::JournalError| {
                CliError::input(format!("cannot read {what} from the journal: {e}"))
            }
        };
        // Slices trading on a calendar or a threshold go on from what they held.
        match journal
            .latest_signal()
            .map_err(unreadable("the last signal"))?
        {
            Some(signal) => book.seed_slices(&signal),
            // No signal yet: the slices a continuous run on the data would hold (the
            // simulated venue; on Alpaca they start with the first live day).
            None if opened.live_bars.is_none() => book.replay_slices_before(opened.as_of),
            None => {}
        }
        let expected = journal
            .expected_positions()
            .map_err(unreadable("the expected positions"))?;
        let resumable = journal.open_workflows().map_or(true, |w| !w.is_empty());
        let today = crate::clock::new_york_date(clock.now());
        let bought_today = journal
            .bought_on(today)
            .map_err(unreadable("today's purchases"))?;
        Ok(Self {
            expected,
            resumable,
            today,
            bought_today,
        })
    }
}

fn outbox(journal: &std::path::Path) -> Result<Outbox, CliError> {
    Outbox::open(journal).map_err(CliError::input)
}

/// The notifier of the configured channels (none configured: none).
fn notifier(config: &Config) -> Result<Option<Arc<Notifier>>, CliError> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let channels = crate::notify::channels::channels(&config.notifications, &config.base_dir, &env)
        .map_err(CliError::input)?;
    Ok((!channels.is_empty())
        .then(|| Arc::new(Notifier::new(channels, config.notifications.retry_policy()))))
}

/// The event bus with `bus.transport = "nats"`. Credentials the server refuses will
/// not work later either: said now, not after the bus's wait.
fn event_bus(
    config: &Config,
    journal: &std::path::Path,
    opened: &OpenedVenue,
) -> Result<Option<EventBus>, CliError> {
    if config.bus.transport != BusTransport::Nats {
        return Ok(None);
    }
    let access = NatsAccess::from_env(&config.bus, &config.base_dir)
        .map_err(|e| CliError::input(format!("NATS access: {e}")))?;
    let refused = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()
        .and_then(|rt| rt.block_on(crate::bus::connect::refusal(&access, &config.bus.url)));
    if let Some(why) = refused {
        return Err(CliError::input(why));
    }
    Ok(Some(EventBus {
        config: config.bus.clone(),
        access,
        journal_path: journal.to_path_buf(),
        health: BusHealth::default(),
        consumers: Vec::new(),
        view: RemoteView::new(config.bus.remote_roles.clone()),
        roots: None,
        account: opened.account.clone(),
        intents_open: Default::default(),
    }))
}

/// Whether the engine trades on Alpaca (its keys are in the environment).
fn on_alpaca() -> bool {
    Credentials::from_env().is_some()
}

/// Why no workflow starts while a remote role has no live worker.
fn unserved_message(unserved: &[String], waited: Duration) -> String {
    let roles = unserved.join(", ");
    format!(
        "no live worker serves {} {roles} (bus.remote_roles) after {} s (bus.worker_wait_secs): start `alchemiser worker --roles {}`; nothing traded",
        if unserved.len() == 1 { "role" } else { "roles" },
        waited.as_secs(),
        unserved.join(",")
    )
}
