//! The `alchemiser` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use chrono::NaiveDate;
use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;

use super::broker::{AwaitWorkflow, Broker, BrokerStats, QueryStats, QueryTree, StartWorkflow};
use super::engine::{self, EngineDeps};
use crate::causation::{CausationTree, WorkflowSummary};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, OnStrategyError};
use crate::events::{SignalGenerated, WorkflowStarted};
use crate::strategy::book::StrategyBook;
use crate::venue::sim::SimVenue;
use crate::venue::AccountSnapshot;

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

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Json,
    Table,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine: one workflow per cycle until interrupted (or just one with --once).
    Run {
        /// Configuration file; the embedded defaults (the repository's config.toml) if absent.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Run a single workflow, print its report as JSON and exit (non-zero unless it completed).
        #[arg(long)]
        once: bool,
        /// The trading day to run as of (default: the last day of the market data).
        #[arg(long)]
        as_of: Option<NaiveDate>,
    },
    /// Replay history day by day through the actors on the simulated venue; write
    /// summary.json, equity.csv, orders.csv and equity.svg.
    Backtest {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        from: NaiveDate,
        #[arg(long)]
        to: NaiveDate,
        /// Market data folder (LEAN or plain CSV, detected) instead of the configured one.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Where the files go.
        #[arg(long, default_value = "out/backtest")]
        out: PathBuf,
    },
    /// Print the consolidated target weights and each strategy's detail for one day.
    Signals {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        as_of: NaiveDate,
        /// Market data folder (LEAN or plain CSV, detected) instead of the configured one.
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "json")]
        format: Format,
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
        Command::Signals {
            config,
            as_of,
            data,
            format,
        } => signals(config, as_of, data, format),
        Command::Backtest {
            config,
            from,
            to,
            data,
            out,
        } => backtest(config, from, to, data, out),
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

fn load_config(path: Option<&PathBuf>) -> Result<Config, ExitCode> {
    Config::load_or_default(path).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

fn load_book(config: &Config, data: Option<&PathBuf>) -> Result<StrategyBook, ExitCode> {
    StrategyBook::load(
        &config.strategy,
        &config.base_dir,
        data.map(PathBuf::as_path),
    )
    .map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

fn signals(
    config: Option<PathBuf>,
    as_of: NaiveDate,
    data: Option<PathBuf>,
    format: Format,
) -> ExitCode {
    let config = match load_config(config.as_ref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut book = match load_book(&config, data.as_ref()) {
        Ok(b) => b,
        Err(code) => return code,
    };
    book.on_error = OnStrategyError::Fail;
    let signal = match book.evaluate(as_of) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match format {
        Format::Json => match serde_json::to_string_pretty(&signal) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
        Format::Table => print!("{}", signal_table(&signal)),
    }
    ExitCode::SUCCESS
}

/// A terminal rendering of a signal.
pub fn signal_table(signal: &SignalGenerated) -> String {
    let mut out = format!(
        "signal as of {}  ({})\n\n",
        signal.as_of,
        &signal.signal_hash[..16]
    );
    out.push_str(&format!("{:<10} {:>10}\n", "symbol", "weight"));
    for (symbol, w) in &signal.target_weights {
        out.push_str(&format!("{symbol:<10} {:>10}\n", w.to_string()));
    }
    if signal.target_weights.is_empty() {
        out.push_str("(all cash)\n");
    }
    for s in &signal.strategies {
        out.push_str(&format!("\n{} (file weight {})\n", s.name, s.file_weight));
        if let Some(e) = &s.error {
            out.push_str(&format!("  error: {e}\n"));
        }
        for (symbol, w) in &s.weights {
            out.push_str(&format!("  {symbol:<10} {:>10}\n", w.to_string()));
        }
        for (label, v) in &s.indicators {
            out.push_str(&format!("  {label:<36} {v}\n"));
        }
    }
    out
}

fn backtest(
    config: Option<PathBuf>,
    from: NaiveDate,
    to: NaiveDate,
    data: Option<PathBuf>,
    out: PathBuf,
) -> ExitCode {
    let config = match load_config(config.as_ref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let book = match load_book(&config, data.as_ref()) {
        Ok(b) => Arc::new(b),
        Err(code) => return code,
    };
    let dates = match super::backtest::sessions(&book, from, to) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let bar = indicatif::ProgressBar::new(dates.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} sessions  {elapsed} (eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let system = actix::System::new();
    let progress = bar.clone();
    let result = system.block_on(super::backtest::run(
        config,
        book,
        &dates,
        move |done, _| progress.set_position(done as u64),
    ));
    bar.finish_and_clear();
    let record = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(summary) = crate::backtest::summarize(&record) else {
        eprintln!("error: the backtest produced no sessions");
        return ExitCode::FAILURE;
    };
    match crate::backtest::report::write_all(&out, &record, &summary) {
        Ok(files) => {
            if let Ok(json) = serde_json::to_string_pretty(&summary) {
                println!("{json}");
            }
            for f in files {
                eprintln!("wrote {}", f.display());
            }
            for (date, why) in &record.failed_workflows {
                eprintln!("warning: workflow of {date} failed: {why}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Serialize)]
struct RunReport {
    as_of: NaiveDate,
    workflow: Option<WorkflowSummary>,
    account: AccountSnapshot,
    causation_tree: Option<CausationTree>,
    broker: BrokerStats,
}

fn run(config_path: Option<PathBuf>, once: bool, as_of: Option<NaiveDate>) -> ExitCode {
    let config = match load_config(config_path.as_ref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let book = match load_book(&config, None) {
        Ok(b) => Arc::new(b),
        Err(code) => return code,
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let as_of = as_of
        .or_else(|| book.common_dates().last().copied())
        .unwrap_or_else(|| clock.now().date_naive());
    let venue = Arc::new(SimVenue::new(
        config.venue.sim.initial_cash,
        config.venue.sim.costs(),
        Some(Arc::new(book.data.clone())),
    ));
    venue.set_date(as_of);
    let mode = config.engine.mode;
    let cycle = Duration::from_secs(config.engine.cycle_secs);
    let deps = EngineDeps::new(config, clock.clone(), venue.clone(), book);
    let system = actix::System::new();
    system.block_on(async move {
        let broker = engine::start(engine::standard_registry(deps));
        loop {
            let report = run_workflow(&broker, as_of, mode)
                .await
                .map(|(workflow, tree, stats)| RunReport {
                    as_of,
                    workflow,
                    account: venue.snapshot(),
                    causation_tree: tree,
                    broker: stats,
                });
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
) -> Result<(Option<WorkflowSummary>, Option<CausationTree>, BrokerStats), String> {
    let unavailable = |e: actix::MailboxError| format!("broker unavailable: {e}");
    let started = WorkflowStarted {
        as_of,
        mode,
        trigger: "schedule".into(),
    };
    let correlation = broker
        .send(StartWorkflow {
            started,
            triggered_by: None,
            correlation_id: None,
        })
        .await
        .map_err(unavailable)?
        .map_err(|e| format!("workflow not started: {e}"))?;
    let workflow = broker
        .send(AwaitWorkflow(correlation))
        .await
        .map_err(unavailable)?;
    let tree = broker
        .send(QueryTree(correlation))
        .await
        .map_err(unavailable)?;
    let stats = broker.send(QueryStats).await.map_err(unavailable)?;
    Ok((workflow, tree, stats))
}
