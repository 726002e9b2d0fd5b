//! The venue `run` trades and the day it trades: Alpaca when its keys are in the
//! environment (today, live bars, Alpaca's clock and calendar), else the simulated
//! venue on the market data.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;

use crate::bus::remote::VenueAccount;
use crate::calendar::UsEquityCalendar;
use crate::clock::Clock;
use crate::config::Config;
use crate::domain::{RunMode, Symbol};
use crate::market::{Adjustment, BarSeries, MarketData, SharedMarket};
use crate::strategy::book::StrategyBook;
use crate::venue::Venue;
use crate::venues::alpaca::client::{
    AlpacaClient, ClientSettings, Credentials, LIVE_TRADING_URL, PAPER_TRADING_URL,
};
use crate::venues::alpaca::{AlpacaVenue, FillWait};
use crate::venues::sim::SimVenue;

/// The Alpaca venue when keys are in the environment.
pub(in super::super) fn alpaca_venue(
    config: &Config,
) -> Result<Option<(Arc<AlpacaVenue>, String)>, String> {
    let Some(credentials) = Credentials::from_env() else {
        // Live means real money at Alpaca: never a quiet fall-back to the simulator.
        if config.engine.mode == RunMode::Live {
            return Err("engine.mode is \"live\" but APCA_API_KEY_ID and APCA_API_SECRET_KEY are not both set: refusing to run live on the simulated venue".into());
        }
        return Ok(None);
    };
    let settings = client_settings(config);
    let trading_url = settings.trading_url.clone();
    let masked = credentials.masked_key_id();
    let client = AlpacaClient::new(settings, credentials).map_err(|e| e.to_string())?;
    Ok(Some((
        Arc::new(AlpacaVenue::new(client, FillWait::default())),
        format!("alpaca at {trading_url}, key {masked}"),
    )))
}

/// An Alpaca client for market data (`data pull`): the keys from the environment.
pub(in super::super) fn alpaca_data_client(config: &Config) -> Result<Arc<AlpacaClient>, String> {
    let credentials = Credentials::from_env().ok_or(
        "pulling bars from Alpaca needs APCA_API_KEY_ID and APCA_API_SECRET_KEY in the environment (free paper-trading keys serve market data)",
    )?;
    AlpacaClient::new(client_settings(config), credentials).map_err(|e| e.to_string())
}

/// The client's settings from `[alpaca]`: paper trading unless live, or the URL set.
fn client_settings(config: &Config) -> ClientSettings {
    let a = &config.alpaca;
    let trading_url = if !a.trading_url.is_empty() {
        a.trading_url.clone()
    } else if config.engine.mode == RunMode::Live {
        LIVE_TRADING_URL.to_string()
    } else {
        PAPER_TRADING_URL.to_string()
    };
    ClientSettings {
        trading_url,
        data_url: a.data_url.clone(),
        requests_per_minute: a.requests_per_minute,
        timeout: Duration::from_secs(a.timeout_secs),
        max_attempts: a.max_attempts,
        ..ClientSettings::default()
    }
}

/// On Alpaca, the book evaluates on the store: before it is loaded, the store gets every
/// completed session's bar of the configured symphonies' symbols it lacks.
pub(in super::super) fn book_on_the_store(config: &Config) -> Result<StrategyBook, String> {
    let client = alpaca_data_client(config)?;
    let symbols = crate::symphony_files::symbols_of(&config.strategy, &config.base_dir)
        .map_err(|e| e.to_string())?;
    let store = config.resolve(&config.data.store);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime to pull daily bars: {e}"))?;
    runtime.block_on(async {
        let to = last_completed_session(&client)
            .await
            .map_err(|e| format!("{e}: not trading blind"))?;
        pull_for(
            &client,
            &store,
            &symbols,
            config.data.from,
            to,
            config.strategy.adjustment,
            &config.alpaca.feed,
        )
        .await
    })?;
    crate::symphony_files::load_book(&config.strategy, &config.base_dir, Some(&store))
        .map_err(|e| e.to_string())
}

/// The venue to trade and the day to trade as of.
pub(super) struct OpenedVenue {
    pub venue: Arc<dyn Venue>,
    pub as_of: NaiveDate,
    /// The simulated account and where it is saved after each workflow.
    pub sim_state: Option<(Arc<SimVenue>, PathBuf)>,
    /// On Alpaca: the daily bars the strategies evaluate on.
    pub live_bars: Option<LiveBars>,
    /// The account traded, which workers must share.
    pub account: VenueAccount,
}

/// Alpaca when its keys are in the environment (today, live bars), else the simulated
/// venue on the market data (the data's last day, the saved account, every held
/// symbol priced). Bad input (a day that is not a session or lies outside the data) is
/// an error.
pub(super) fn open_venue(
    config: &Config,
    book: &StrategyBook,
    as_of: Option<NaiveDate>,
    once: bool,
    clock: &dyn Clock,
) -> Result<OpenedVenue, String> {
    let strategies: Vec<String> = book.files.iter().map(|f| f.symphony.name.clone()).collect();
    let strategies = strategies.join(", ");
    match alpaca_venue(config)? {
        Some((alpaca, described)) => {
            let mode = config.engine.mode;
            tracing::info!(venue = %described, %mode, %strategies, "starting");
            open_alpaca(alpaca, config, book, as_of, once)
        }
        None => {
            let opened = open_simulated(config, book, as_of, clock)?;
            let venue = format!("simulated, data {}", book.source.describe());
            tracing::info!(%venue, %strategies, "starting (no Alpaca keys in the environment)");
            Ok(opened)
        }
    }
}

/// Alpaca: today's session in New York, the only one a real venue can trade.
fn open_alpaca(
    alpaca: Arc<AlpacaVenue>,
    config: &Config,
    book: &StrategyBook,
    as_of: Option<NaiveDate>,
    once: bool,
) -> Result<OpenedVenue, String> {
    let live_bars = Some(LiveBars::new(&alpaca, book, config));
    let (today, account) = venue_today(&alpaca)?;
    // A real venue trades now, at today's prices: a signal of another day would be
    // traded at prices it never saw.
    if let Some(asked) = as_of.filter(|d| *d != today) {
        return Err(format!(
            "--as-of {asked}: on Alpaca only the current session can be traded, and today in New York is {today}; leave --as-of out, or run {asked} on the simulated venue (`backtest` or no Alpaca keys)"
        ));
    }
    UsEquityCalendar::get()
        .check_known(today)
        .map_err(|e| e.to_string())?;
    if once && !UsEquityCalendar::get().is_session(today) {
        return Err(format!(
            "--as-of {today}: not a US equity trading session ({})",
            crate::calendar::closed_because(today)
        ));
    }
    Ok(OpenedVenue {
        venue: alpaca,
        as_of: today,
        sim_state: None,
        live_bars,
        account,
    })
}

/// The simulated venue on the market data: the data's last day (or the one asked),
/// the saved account, every held symbol priced.
fn open_simulated(
    config: &Config,
    book: &StrategyBook,
    asked: Option<NaiveDate>,
    clock: &dyn Clock,
) -> Result<OpenedVenue, String> {
    let as_of = asked
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
        let restored = sim
            .restore(path)
            .map_err(|e| format!("cannot restore the simulated account: {e}"))?;
        if restored {
            tracing::info!(state = %path.display(), "simulated account restored");
        }
        check_time_runs_forward(asked, as_of, sim.last_traded(), path)?;
    }
    // Positions the strategies no longer reference are priced from the data folder
    // too, so that the plan can sell them.
    let held: Vec<Symbol> = sim.snapshot().positions.into_keys().collect();
    let market = book
        .market_with_held(&held)
        .map_err(|e| format!("cannot price a held position: {e}"))?;
    sim.set_market(Arc::new(market));
    let sim = Arc::new(sim);
    Ok(OpenedVenue {
        venue: sim.clone(),
        as_of,
        sim_state: state_path.map(|path| (sim, path)),
        live_bars: None,
        account: VenueAccount {
            venue: "simulated".into(),
            account: None,
        },
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

/// Daily bars for the strategies' symbols on Alpaca: before each workflow the store
/// gets every completed session's bar it lacks from Alpaca (`data.store`), and the
/// strategies evaluate on the store's bars — the ones a later backtest of the day
/// reads, so that the signal can be reproduced.
pub(in super::super) struct LiveBars {
    pub(super) client: Arc<AlpacaClient>,
    pub(in super::super) market: SharedMarket,
    symbols: Vec<Symbol>,
    store: PathBuf,
    data: crate::config::DataConfig,
    adjustment: Adjustment,
    feed: String,
}

impl LiveBars {
    /// The book's symbols, pulled from `alpaca` into the configured store.
    pub(in super::super) fn new(
        alpaca: &AlpacaVenue,
        book: &StrategyBook,
        config: &Config,
    ) -> Self {
        LiveBars {
            client: alpaca.client().clone(),
            market: SharedMarket::new(Default::default()),
            symbols: book.symbols(),
            store: config.resolve(&config.data.store),
            data: config.data.clone(),
            adjustment: config.strategy.adjustment,
            feed: config.alpaca.feed.clone(),
        }
    }

    /// Pulls what the store lacks up to the last completed session (by Alpaca's clock),
    /// then evaluates on the store: each symbol's bars fresh (to the session before
    /// `day`) and without findings, or an error naming it.
    pub(in super::super) async fn refresh(&self, day: NaiveDate) -> Result<(), String> {
        self.pull_completed(day).await?;
        let source = crate::data::DataSource::Store {
            dir: self.store.clone(),
            adjustment: self.adjustment,
        };
        // Each symbol's bars read once: checked, then kept as its series.
        let mut read = Vec::with_capacity(self.symbols.len());
        for symbol in &self.symbols {
            let bars =
                crate::market::BarSource::read(&source, symbol).map_err(|e| e.to_string())?;
            check_fresh(symbol, bars.last().map(|b| b.date), day)?;
            read.push((symbol.clone(), bars));
        }
        let folder = crate::market::BarSource::describe(&source);
        crate::symphony_files::refuse_findings_in(&read, &folder, &self.data, day)?;
        let series = read
            .into_iter()
            .map(|(symbol, bars)| (symbol.clone(), BarSeries::new(symbol, bars)))
            .collect();
        tracing::info!(symbols = self.symbols.len(), %day, store = %self.store.display(), "evaluating on the store's daily bars");
        self.market.replace(MarketData::sharing_dates(series));
        Ok(())
    }
}

impl LiveBars {
    /// Pulls into the store every bar final by Alpaca's clock, through `day`.
    pub(super) async fn pull_completed(&self, day: NaiveDate) -> Result<(), String> {
        let to = last_completed_session(&self.client).await?.min(day);
        pull_for(
            &self.client,
            &self.store,
            &self.symbols,
            self.data.from,
            to,
            self.adjustment,
            &self.feed,
        )
        .await
    }
}

/// The last session whose bar is final by Alpaca's clock.
pub(super) async fn last_completed_session(client: &AlpacaClient) -> Result<NaiveDate, String> {
    let clock = client
        .clock()
        .await
        .map_err(|e| format!("cannot read Alpaca's clock ({e})"))?;
    let now = chrono::DateTime::parse_from_rfc3339(&clock.timestamp)
        .map_err(|e| {
            format!(
                "Alpaca's clock says `{}`, which is not a time ({e})",
                clock.timestamp
            )
        })?
        .with_timezone(&chrono_tz::America::New_York)
        .naive_local();
    Ok(UsEquityCalendar::get().last_completed_session(now))
}

/// Pulls `symbols` into the store at `store` through `to`; any symbol not pulled is an
/// error naming it.
pub(super) async fn pull_for(
    client: &AlpacaClient,
    store: &std::path::Path,
    symbols: &[Symbol],
    from: NaiveDate,
    to: NaiveDate,
    adjustment: Adjustment,
    feed: &str,
) -> Result<(), String> {
    let mut opened = crate::store::BarStore::open(store).map_err(|e| e.to_string())?;
    let request = crate::venues::alpaca::pull::PullRequest {
        symbols: symbols.to_vec(),
        from,
        to,
        adjustment,
        feed: feed.to_string(),
    };
    let report = crate::venues::alpaca::pull::pull(&mut opened, client, &request, &mut |_| {})
        .await
        .map_err(|e| e.to_string())?;
    let failed: Vec<String> = report
        .failed()
        .map(|(s, why)| format!("{s}: {why}"))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "cannot pull daily bars from Alpaca into {}: {}",
            store.display(),
            failed.join("; ")
        ))
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
pub(super) async fn confirm_calendar(client: &AlpacaClient, today: NaiveDate) {
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
