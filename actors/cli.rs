//! The `alchemiser` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use chrono::NaiveDate;
use clap::{Parser, Subcommand};
use serde::Serialize;

use super::broker::{AwaitWorkflow, Broker, BrokerStats, QueryStats, QueryTree, StartWorkflow};
use super::engine::{self, EngineDeps};
use crate::causation::{CausationTree, WorkflowSummary};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::events::WorkflowStarted;
use crate::venue::sim::SimVenue;

#[derive(Parser)]
#[command(
    name = "alchemiser",
    version,
    about = "A supervised-actor trading engine for US ETFs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine: one workflow per cycle until interrupted (or just one with --once).
    Run {
        /// Configuration file; the embedded defaults (the repository's config.toml) if absent.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Run a single workflow, print its summary as JSON and exit (non-zero unless it completed).
        #[arg(long)]
        once: bool,
        /// The trading day the workflow runs as of (default: today, UTC).
        #[arg(long)]
        as_of: Option<NaiveDate>,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Run {
            config,
            once,
            as_of,
        } => run(config, once, as_of),
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[derive(Serialize)]
struct RunReport {
    workflow: Option<WorkflowSummary>,
    causation_tree: Option<CausationTree>,
    broker: BrokerStats,
}

fn run(config_path: Option<PathBuf>, once: bool, as_of: Option<NaiveDate>) -> ExitCode {
    let config = match Config::load_or_default(config_path.as_ref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let venue = Arc::new(SimVenue::with_cash(config.venue.sim.initial_cash));
    let mode = config.engine.mode;
    let cycle = Duration::from_secs(config.engine.cycle_secs);
    let deps = EngineDeps::new(config, clock.clone(), venue);
    let system = actix::System::new();
    system.block_on(async move {
        let broker = engine::start(engine::standard_registry(deps));
        loop {
            let day = as_of.unwrap_or_else(|| clock.now().date_naive());
            let report = run_workflow(&broker, day, mode).await;
            let completed = report
                .as_ref()
                .ok()
                .and_then(|r| r.workflow.as_ref())
                .is_some_and(|w| w.status == crate::workflow::WorkflowStatus::Completed);
            match report {
                Ok(r) => match serde_json::to_string_pretty(&r) {
                    Ok(json) => println!("{json}"),
                    Err(e) => eprintln!("error: cannot print report: {e}"),
                },
                Err(e) => eprintln!("error: {e}"),
            }
            if once {
                return if completed {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                };
            }
            tokio::select! {
                _ = tokio::time::sleep(cycle) => {}
                _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
            }
        }
    })
}

async fn run_workflow(
    broker: &Addr<Broker>,
    as_of: NaiveDate,
    mode: crate::domain::RunMode,
) -> Result<RunReport, String> {
    let started = WorkflowStarted {
        as_of,
        mode,
        trigger: "schedule".into(),
    };
    let correlation = broker
        .send(StartWorkflow {
            started,
            triggered_by: None,
        })
        .await
        .map_err(|e| format!("broker unavailable: {e}"))?
        .map_err(|e| format!("workflow not started: {e}"))?;
    let workflow = broker
        .send(AwaitWorkflow(correlation))
        .await
        .map_err(|e| format!("broker unavailable: {e}"))?;
    let causation_tree = broker
        .send(QueryTree(correlation))
        .await
        .map_err(|e| format!("broker unavailable: {e}"))?;
    let stats = broker
        .send(QueryStats)
        .await
        .map_err(|e| format!("broker unavailable: {e}"))?;
    Ok(RunReport {
        workflow,
        causation_tree,
        broker: stats,
    })
}
