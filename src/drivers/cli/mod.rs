//! The `alchemiser` command line: the arguments, and one module per subcommand.

/// `print!` that ends the process quietly when the reader has gone (`| head -1`)
/// instead of panicking on the broken pipe.
macro_rules! out {
    ($($t:tt)*) => {
        $crate::drivers::cli::emit(format_args!($($t)*))
    };
}

/// `println!`, likewise.
macro_rules! outln {
    ($($t:tt)*) => {
        $crate::drivers::cli::emit(format_args!("{}\n", format_args!($($t)*)))
    };
}

mod backtest;
mod control;
mod data;
mod drill;
mod error;
mod journal;
mod run;
mod signals;
mod sweep;
mod worker;

pub use run::check_live;
pub use signals::signal_table;

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::NaiveDate;
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{Config, LogFormat};
use crate::strategy::book::StrategyBook;
use error::CliError;

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
enum JournalCommand {
    /// Check the hash chain, sequence and causation links; exits 1 at the first break.
    Verify {
        /// Journal file (default: the config's journal.path).
        #[arg(long)]
        journal: Option<PathBuf>,
        /// Configuration file (default: ./config.toml if the current folder has one, else the embedded defaults).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Rebuild one workflow's state from the journal and print it.
    Replay {
        /// The workflow's correlation id (as `status` lists it).
        #[arg(long)]
        correlation: String,
        /// `table` for people, `json` for machines.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Journal file (default: the config's journal.path).
        #[arg(long)]
        journal: Option<PathBuf>,
        /// Configuration file (default: ./config.toml if the current folder has one, else the embedded defaults).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine: the daily workflow at `schedule.time` New York on trading days until
    /// SIGINT/SIGTERM (or just one, now, with --once).
    Run(run::RunArgs),
    /// Halt trading: a running engine halts within a second (no new workflows, no new
    /// orders); a stopped one starts halted. Lifted only by `resume` or `run --resume`.
    Halt {
        /// Configuration file (default: ./config.toml if the current folder has one, else the embedded defaults).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Why, for the journal and the logs.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Recent workflows from the journal: status, duration, orders, restarts, dead letters.
    Status {
        /// Journal file (default: the config's journal.path).
        #[arg(long)]
        journal: Option<PathBuf>,
        /// Configuration file (default: ./config.toml if the current folder has one, else the embedded defaults).
        #[arg(long)]
        config: Option<PathBuf>,
        /// How many of the latest workflows.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// `table` for a terminal, `json` for machines.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Run a recovery drill (or `all`): inject a fault for real and check that the engine
    /// recovers with no duplicate order and no lost event. One JSON report per line;
    /// exits 1 if any drill failed.
    Drill {
        #[arg(help = super::drill::SCENARIO_HELP)]
        scenario: String,
        /// Seed of the random choices (which actor, which event, which fault).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Runs of the scenario (each with its own derived seed); for `soak`, trading days.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        iterations: u32,
    },
    /// Backtest every combination of a grid's values (symphony placeholders, config
    /// keys) on every core: a summary per variant and a ranked leaderboard.
    Sweep(sweep::SweepRequest),
    /// Serve business actors for an engine over NATS (`bus.remote_roles`): each role's
    /// events come from its durable consumers, shared with the role's other workers.
    Worker {
        /// Roles to serve, comma-separated: any of strategy, portfolio, execution,
        /// reconciliation, recovery (each must be in the config's bus.remote_roles); or
        /// `backtest` alone (a sweep's variants).
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
        /// The NATS server (default: the configuration's bus.url).
        #[arg(long)]
        nats: Option<String>,
        /// The engine's configuration file (default: ./config.toml if the current folder has one, else the embedded defaults).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Lift a halt of a running engine (a stopped one resumes at its next start).
    Resume {
        /// Configuration file (default: ./config.toml if the current folder has one, else the embedded defaults).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Replay history day by day through the actors on the simulated venue; write
    /// summary.json, equity.csv, orders.csv, equity.svg and report.html (the tearsheet).
    Backtest(backtest::BacktestRequest),
    /// The durable journal: verify it, or rebuild a workflow from it.
    Journal {
        #[command(subcommand)]
        command: JournalCommand,
    },
    /// The market-data store: pull daily bars from Alpaca, import a folder, check, list, show.
    Data {
        #[command(subcommand)]
        command: data::DataCommand,
    },
    /// The causation tree of one workflow, from the journal.
    Trace {
        /// The workflow's correlation id (as `status` lists it).
        correlation_id: String,
        /// `table` for a terminal, `json` for machines.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Journal file (default: the config's journal.path).
        #[arg(long)]
        journal: Option<PathBuf>,
        /// Configuration file (default: ./config.toml if the current folder has one, else the embedded defaults).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print the consolidated target weights and each strategy's detail for one day.
    Signals {
        /// Configuration file (default: ./config.toml if the current folder has one, else the embedded defaults).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The trading session to evaluate as of (YYYY-MM-DD): its close is the last bar used.
        #[arg(long)]
        as_of: NaiveDate,
        /// Market data folder (LEAN, plain CSV or a store, detected) instead of the store.
        #[arg(long)]
        data: Option<PathBuf>,
        /// `json` (the stable contract) or `table` for a terminal.
        #[arg(long, value_enum, default_value = "json")]
        format: Format,
    },
}

impl Command {
    fn config_path(&self) -> Option<&PathBuf> {
        match self {
            Command::Run(run::RunArgs { config, .. })
            | Command::Halt { config, .. }
            | Command::Resume { config }
            | Command::Backtest(backtest::BacktestRequest { config, .. })
            | Command::Trace { config, .. }
            | Command::Status { config, .. }
            | Command::Signals { config, .. } => config.as_ref(),
            Command::Journal { command } => match command {
                JournalCommand::Verify { config, .. } | JournalCommand::Replay { config, .. } => {
                    config.as_ref()
                }
            },
            Command::Drill { .. } => None,
            Command::Data { command } => command.config_path(),
            Command::Worker { config, .. } | Command::Sweep(sweep::SweepRequest { config, .. }) => {
                config.as_ref()
            }
        }
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.command.config_path());
    error::exit(dispatch(cli.command))
}

/// Runs one subcommand.
fn dispatch(command: Command) -> Result<(), CliError> {
    match command {
        Command::Run(args) => run::run(args),
        Command::Halt { config, reason } => control::control_request(config, Some(reason)),
        Command::Resume { config } => control::control_request(config, None),
        Command::Worker {
            roles,
            nats,
            config,
        } => worker::worker(config, roles, nats),
        Command::Sweep(request) => sweep::sweep(request),
        Command::Drill {
            scenario,
            seed,
            iterations,
        } => drill::drill(&scenario, seed, iterations),
        Command::Status {
            journal,
            config,
            limit,
            format,
        } => journal::status(config, journal, limit, format),
        Command::Signals {
            config,
            as_of,
            data,
            format,
        } => signals::signals(config, as_of, data, format),
        Command::Backtest(request) => backtest::backtest(request),
        Command::Data { command } => data::data(command),
        Command::Journal { command } => match command {
            JournalCommand::Verify { journal, config } => journal::journal_verify(config, journal),
            JournalCommand::Replay {
                correlation,
                format,
                journal,
                config,
            } => journal::journal_replay(config, journal, &correlation, format),
        },
        Command::Trace {
            correlation_id,
            journal,
            config,
            format,
        } => journal::trace(config, journal, &correlation_id, format),
    }
}

/// Logs to stderr in `log.format` (read from the command's config when it has one;
/// a config that does not load is reported by the command itself).
fn init_tracing(config: Option<&PathBuf>) {
    let format = Config::load_or_default(config).map_or(LogFormat::Auto, |c| c.log.format);
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,alchemiser=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !terminal,
    };
    let _ = if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.with_ansi(terminal).try_init()
    };
}

fn load_config(path: Option<&PathBuf>) -> Result<Config, CliError> {
    Config::load_or_default(path).map_err(CliError::input)
}

/// The configured book on the bars of `data` when given, else of the store once it
/// holds bars, else of `strategy.data` ([`Config::bars_folder`]).
fn load_book(config: &Config, data: Option<&PathBuf>) -> Result<StrategyBook, CliError> {
    let folder = config.bars_folder(data.map(PathBuf::as_path));
    crate::symphony_files::load_book(&config.strategy, &config.base_dir, Some(&folder))
        .map_err(CliError::input)
}

/// [`load_book`], refused when a symbol's bars have a finding of `data check`: what
/// `signals` and `run` decide on (a backtest may study any data).
fn load_book_to_trade(
    config: &Config,
    data: Option<&PathBuf>,
    through: NaiveDate,
) -> Result<StrategyBook, CliError> {
    refuse_findings(config, load_book(config, data)?, through)
}

/// `book`, unless a symbol's bars have a finding dated on or before `through` that
/// `data.accept` does not list.
fn refuse_findings(
    config: &Config,
    book: StrategyBook,
    through: NaiveDate,
) -> Result<StrategyBook, CliError> {
    crate::symphony_files::refuse_findings(&*book.source, &book.symbols(), &config.data, through)
        .map_err(CliError::input)?;
    Ok(book)
}

/// Writes to standard output. A closed pipe means the reader has what it wanted: the
/// process ends quietly (exit 0); any other failure is reported.
pub(crate) fn emit(text: std::fmt::Arguments) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(text).and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}
