//! `alchemiser worker --roles ...`: business actors for an engine, in this process.

use std::path::PathBuf;
use std::sync::Arc;

use super::error::CliError;
use super::{load_book, load_config};
use crate::actors::deps::EngineDeps;
use crate::actors::remote::BeforeHandling;
use crate::clock::SystemClock;
use crate::config::{BusTransport, Config, REMOTE_ROLES};

pub(super) fn worker(
    config: Option<PathBuf>,
    roles: Vec<String>,
    nats: Option<String>,
) -> Result<(), CliError> {
    let mut config = load_config(config.as_ref())?;
    if let Some(url) = nats {
        config.bus.url = url;
    }
    let id = format!(
        "{}-{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into()),
        std::process::id()
    );
    if roles.iter().any(|r| r == "backtest") {
        return backtest_worker(&config, &roles, id);
    }
    check_roles(&config, &roles)?;
    let venue = match super::run::alpaca_venue(&config).map_err(CliError::input)? {
        Some((alpaca, described)) => {
            tracing::info!(venue = %described, "worker venue");
            alpaca
        }
        None => return Err(CliError::input(
            "a worker trades through Alpaca: set APCA_API_KEY_ID and APCA_API_SECRET_KEY (the simulated venue lives in the engine's process)",
        )),
    };
    let book = load_book(&config, None)?;
    // A strategy worker evaluates on the day's bars from Alpaca, fetched before each
    // workflow's start as the engine would.
    let live = roles
        .iter()
        .any(|r| r == "strategy")
        .then(|| std::rc::Rc::new(super::run::LiveBars::new(&venue, &book, &config)));
    let alpaca = venue.clone();
    let mut deps = EngineDeps::new(config, Arc::new(SystemClock), venue, Arc::new(book));
    if let Some(live) = &live {
        deps = deps.with_market(live.market.clone());
    }
    let before = live.map(refresh_before_start);
    let system = actix::System::new();
    let client = system
        .block_on(reach_nats(&deps.config, &deps.config.bus.url))
        .map_err(CliError::input)?;
    let mine = system
        .block_on(account_of(&alpaca))
        .map_err(CliError::input)?;
    let prefix = &deps.config.bus.subject_prefix;
    let same = crate::actors::remote::confirm_same_account(&client, prefix, &mine);
    system.block_on(same).map_err(CliError::input)?;
    system
        .block_on(crate::actors::remote::work(
            deps, client, &roles, id, before,
        ))
        .map_err(|e| CliError::failed(format!("worker: {e}")))
}

/// Refuses roles a worker cannot serve, or that the engine serves itself.
fn check_roles(config: &Config, roles: &[String]) -> Result<(), CliError> {
    if config.bus.transport != BusTransport::Nats {
        return Err(CliError::input(
            "a worker needs bus.transport = \"nats\" (the engine's configuration)",
        ));
    }
    for role in roles {
        if !REMOTE_ROLES.contains(&role.as_str()) {
            return Err(CliError::input(format!(
                "role \"{role}\" cannot run in a worker (one of {})",
                REMOTE_ROLES.join(", ")
            )));
        }
        // Served here and by the engine, each event would be handled twice.
        if !config.bus.remote_roles.contains(role) {
            return Err(CliError::input(format!(
                "role \"{role}\" is not in bus.remote_roles: the engine serves it itself"
            )));
        }
    }
    // The daily buying ledger lives with the engine's journal: a worker could not
    // enforce the cap, so it does not pretend to.
    if roles.iter().any(|r| r == "execution") && config.risk.max_daily_notional.is_some() {
        return Err(CliError::input(
            "risk.max_daily_notional is set: execution must stay in the engine, which keeps the day's purchases",
        ));
    }
    Ok(())
}

/// A strategy worker's day: the bars refreshed before a workflow's start is handled.
fn refresh_before_start(live: std::rc::Rc<super::run::LiveBars>) -> BeforeHandling {
    Box::new(move |env: &crate::events::Envelope| {
        let day = match &env.payload {
            crate::events::Payload::WorkflowStarted(s) => Some(s.as_of),
            _ => None,
        };
        let live = live.clone();
        Box::pin(async move {
            match day {
                Some(day) => live.refresh(day).await,
                None => Ok(()),
            }
        }) as futures_util::future::LocalBoxFuture<'static, Result<(), String>>
    })
}

/// `worker --roles backtest`: a sweep's variants, taken from the queue one at a time.
fn backtest_worker(config: &Config, roles: &[String], id: String) -> Result<(), CliError> {
    if roles.len() > 1 {
        return Err(CliError::input(
            "role \"backtest\" runs alone in its worker",
        ));
    }
    let scratch = std::env::temp_dir().join(format!("alchemiser-sweep-{id}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::input)?;
    let client = runtime
        .block_on(reach_nats(config, &config.bus.url))
        .map_err(CliError::input)?;
    let served = runtime.block_on(crate::drivers::sweep_queue::serve_backtests(
        client,
        id,
        scratch,
        std::time::Duration::from_secs(config.bus.ack_wait_secs),
        config.bus.max_deliver,
    ));
    served.map_err(|e| CliError::failed(format!("worker: {e}")))
}

/// The configured NATS server, as the environment's credentials say, tried for
/// `bus.connect_timeout_secs`.
pub(super) async fn reach_nats(
    config: &crate::config::Config,
    url: &str,
) -> Result<async_nats::Client, String> {
    let access = crate::bus::connect::NatsAccess::from_env(&config.bus, &config.base_dir)
        .map_err(|e| format!("NATS access: {e}"))?;
    crate::bus::connect::connect_within(
        &access,
        url,
        std::time::Duration::from_secs(config.bus.connect_timeout_secs),
    )
    .await
    .map_err(|e| e.to_string())
}

/// The account this worker's keys open.
async fn account_of(
    alpaca: &crate::venues::alpaca::AlpacaVenue,
) -> Result<crate::bus::remote::VenueAccount, String> {
    let account = alpaca
        .client()
        .account()
        .await
        .map_err(|e| format!("cannot read this worker's Alpaca account: {e}"))?;
    Ok(crate::bus::remote::VenueAccount {
        venue: "alpaca".into(),
        account: Some(account.account_number),
    })
}
