//! `alchemiser worker --roles ...`: business actors for an engine, in this process.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use super::{load_book, load_config};
use crate::actors::deps::EngineDeps;
use crate::clock::SystemClock;
use crate::config::{BusTransport, REMOTE_ROLES};

pub(super) fn worker(
    config: Option<PathBuf>,
    roles: Vec<String>,
    nats: Option<String>,
) -> ExitCode {
    let mut config = match load_config(config.as_ref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Some(url) = nats {
        config.bus.url = url;
    }
    let refuse = |why: String| {
        eprintln!("error: {why}");
        ExitCode::from(2)
    };
    let id = format!(
        "{}-{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into()),
        std::process::id()
    );
    if roles.iter().any(|r| r == "backtest") {
        if roles.len() > 1 {
            return refuse("role \"backtest\" runs alone in its worker".into());
        }
        let scratch = std::env::temp_dir().join(format!("alchemiser-sweep-{id}"));
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => return refuse(e.to_string()),
        };
        let client = match runtime.block_on(reach_nats(&config, &config.bus.url)) {
            Ok(c) => c,
            Err(e) => return refuse(e.to_string()),
        };
        let served = runtime.block_on(crate::actors::sweep_queue::serve_backtests(
            client,
            id,
            scratch,
            std::time::Duration::from_secs(config.bus.ack_wait_secs),
            config.bus.max_deliver,
        ));
        return match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: worker: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if config.bus.transport != BusTransport::Nats {
        return refuse(
            "a worker needs bus.transport = \"nats\" (the engine's configuration)".into(),
        );
    }
    for role in &roles {
        if !REMOTE_ROLES.contains(&role.as_str()) {
            return refuse(format!(
                "role {role:?} cannot run in a worker (one of {})",
                REMOTE_ROLES.join(", ")
            ));
        }
        // Served here and by the engine, each event would be handled twice.
        if !config.bus.remote_roles.contains(role) {
            return refuse(format!(
                "role {role:?} is not in bus.remote_roles: the engine serves it itself"
            ));
        }
    }
    // The daily buying ledger lives with the engine's journal: a worker could not
    // enforce the cap, so it does not pretend to.
    if roles.iter().any(|r| r == "execution") && config.risk.max_daily_notional.is_some() {
        return refuse(
            "risk.max_daily_notional is set: execution must stay in the engine, which keeps the day's purchases".into(),
        );
    }
    let venue = match super::run::alpaca_venue(&config) {
        Ok(Some((alpaca, described))) => {
            tracing::info!(venue = %described, "worker venue");
            alpaca
        }
        Ok(None) => {
            return refuse(
                "a worker trades through Alpaca: set APCA_API_KEY_ID and APCA_API_SECRET_KEY (the simulated venue lives in the engine's process)".into(),
            )
        }
        Err(e) => return refuse(e),
    };
    let book = match load_book(&config, None) {
        Ok(b) => b,
        Err(code) => return code,
    };
    // A strategy worker evaluates on the day's bars from Alpaca, fetched before each
    // workflow's start as the engine would.
    let live = roles
        .iter()
        .any(|r| r == "strategy")
        .then(|| std::rc::Rc::new(super::run::LiveBars::new(&venue, &book, &config)));
    let alpaca = venue.clone();
    let mut deps = EngineDeps::new(config, Arc::new(SystemClock), venue, Arc::new(book));
    let before: Option<crate::actors::remote::BeforeHandling> = live.map(|live| {
        deps = deps.clone().with_market(live.market.clone());
        Box::new(move |env: &crate::events::Envelope| {
            let (live, day) = (
                live.clone(),
                match &env.payload {
                    crate::events::Payload::WorkflowStarted(s) => Some(s.as_of),
                    _ => None,
                },
            );
            Box::pin(async move {
                match day {
                    Some(day) => live.refresh(day).await,
                    None => Ok(()),
                }
            }) as futures_util::future::LocalBoxFuture<'static, Result<(), String>>
        }) as crate::actors::remote::BeforeHandling
    });
    let system = actix::System::new();
    let client = match system.block_on(reach_nats(&deps.config, &deps.config.bus.url)) {
        Ok(c) => c,
        Err(e) => return refuse(e),
    };
    let mine = match system.block_on(account_of(&alpaca)) {
        Ok(a) => a,
        Err(e) => return refuse(e),
    };
    let same = crate::actors::remote::confirm_same_account(
        &client,
        &deps.config.bus.subject_prefix,
        &mine,
    );
    if let Err(e) = system.block_on(same) {
        return refuse(e);
    }
    match system.block_on(crate::actors::remote::work(
        deps, client, &roles, id, before,
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: worker: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The configured NATS server, as the environment's credentials say, tried for
/// `bus.connect_timeout_secs`.
pub(super) async fn reach_nats(
    config: &crate::config::Config,
    url: &str,
) -> Result<async_nats::Client, String> {
    let access = crate::bus::connect::NatsAccess::from_env(config)
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
    alpaca: &crate::venue::alpaca::AlpacaVenue,
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
