//! `alchemiser backtest`: history replayed through the actors, the files written.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::NaiveDate;

use crate::backtest::tearsheet::{find_benchmark, Benchmark, Tearsheet};
use crate::journal::lock::JournalLock;
use crate::journal::Journal;

use super::error::CliError;
use super::{load_book, load_config};

// What `alchemiser backtest` was asked for (no doc comment: clap would take it for the
// subcommand's description).
#[derive(clap::Args)]
pub(super) struct BacktestRequest {
    /// Configuration file (default: ./config.toml if the current folder has one, else the embedded defaults).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// First day (YYYY-MM-DD); trading starts when every strategy can evaluate.
    #[arg(long)]
    pub from: NaiveDate,
    /// Last day (YYYY-MM-DD), included.
    #[arg(long)]
    pub to: NaiveDate,
    /// Market data folder (LEAN or plain CSV, detected) instead of the configured one.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Where the files go.
    #[arg(long, default_value = "out/backtest")]
    pub out: PathBuf,
    /// Journal every event to this SQLite file (a fresh one; default: no journal).
    #[arg(long)]
    pub journal: Option<PathBuf>,
    /// Buy-and-hold benchmark for report.html (default: the first of SPY, VOO, IVV,
    /// VTI, QQQ that the data has).
    #[arg(long)]
    pub benchmark: Option<String>,
}

pub(super) fn backtest(request: BacktestRequest) -> Result<(), CliError> {
    let config = load_config(request.config.as_ref())?;
    let mut book = load_book(&config, request.data.as_ref())?;
    let out = &request.out;
    if out.exists() && !out.is_dir() {
        return Err(CliError::input(format!(
            "--out {} is a file: the backtest writes a folder of files",
            out.display()
        )));
    }
    let sessions = crate::actors::backtest::sessions(&book, request.from, request.to)
        .map_err(CliError::input)?;
    // A range wider than the data is run on the part the data covers: said, not silent.
    if let (Some(first), Some(last)) = (sessions.first(), sessions.last()) {
        let calendar = crate::calendar::UsEquityCalendar::get();
        let asked = calendar.sessions(request.from, request.to);
        if asked.first() < Some(first) || asked.last() > Some(last) {
            eprintln!(
                "the data ({}) covers {first} to {last} of the sessions asked ({} to {}): backtesting those",
                book.source.describe(),
                request.from,
                request.to
            );
        }
    }
    let benchmark = find_benchmark(
        book.source.as_ref(),
        &book.data,
        request.benchmark.as_deref(),
    )
    .map_err(|e| CliError::input(format!("benchmark: {e}")))?;
    // What the run never reads is not held.
    book.keep_until(request.to);
    let book = Arc::new(book);
    let (dates, warm_up) =
        crate::actors::backtest::after_warm_up(&book, &sessions).map_err(CliError::input)?;
    if warm_up > 0 {
        eprintln!(
            "warm-up: the strategies first evaluate on {}; trading starts then ({warm_up} sessions from {} skipped)",
            dates[0], sessions[0]
        );
    }
    // Found out now, once the inputs are known good, not after the whole run.
    check_writable(out).map_err(|e| {
        CliError::input(format!("--out {}: cannot write there: {e}", out.display()))
    })?;
    let dates = dates.to_vec();
    let (journal, _lock) = open_journal(request.journal.as_deref(), &config)?;
    let bar = indicatif::ProgressBar::new(dates.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} sessions  {elapsed} (eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let progress = bar.clone();
    let on_progress = move |done: usize, _| progress.set_position(done as u64);
    let system = actix::System::new();
    let result = match journal {
        Some(journal) => system.block_on(crate::actors::backtest::run_journaled(
            config,
            book.clone(),
            &dates,
            on_progress,
            journal,
        )),
        None => system.block_on(crate::actors::backtest::run(
            config,
            book.clone(),
            &dates,
            on_progress,
        )),
    };
    bar.finish_and_clear();
    let mut record = result.map_err(CliError::failed)?;
    record.warm_up_sessions = warm_up;
    write_files(out, &record, &book, benchmark.as_ref())
}

/// The journal the backtest writes when asked (`--journal`): a fresh file, held locked.
/// Without one nothing is journaled: an in-memory journal no one could read took 60% of
/// a 500-symbol backtest's time and half its memory.
fn open_journal(
    path: Option<&std::path::Path>,
    config: &crate::config::Config,
) -> Result<(Option<Journal>, Option<JournalLock>), CliError> {
    let Some(path) = path else {
        return Ok((None, None));
    };
    let lock = JournalLock::acquire(path).map_err(CliError::input)?;
    let journal = Journal::open(path, config.journal.sync).map_err(CliError::input)?;
    if journal.last_seq() > 0 {
        return Err(CliError::input(format!(
            "journal {} already holds {} events: a backtest writes a journal of its own (remove the file or name another)",
            path.display(),
            journal.last_seq()
        )));
    }
    Ok((Some(journal), Some(lock)))
}

/// The tearsheet and the run's files; the summary on standard output.
fn write_files(
    out: &std::path::Path,
    record: &crate::backtest::BacktestRecord,
    book: &crate::strategy::book::StrategyBook,
    benchmark: Option<&(crate::domain::Symbol, Arc<crate::market::BarSeries>)>,
) -> Result<(), CliError> {
    let summary = crate::backtest::summarize(record)
        .ok_or_else(|| CliError::failed("the backtest produced no sessions"))?;
    let benchmark = benchmark.map(|(symbol, series)| Benchmark {
        symbol: symbol.clone(),
        series,
    });
    let sheet = Tearsheet::of(record, &summary, &book.data, benchmark.as_ref());
    let no_benchmark = benchmark
        .is_none()
        .then(crate::backtest::html::no_benchmark_note);
    let files =
        crate::backtest::report::write_all(out, record, &summary, &sheet, no_benchmark.as_deref())
            .map_err(CliError::failed)?;
    if let Ok(json) = serde_json::to_string_pretty(&summary) {
        outln!("{json}");
    }
    for f in files {
        eprintln!("wrote {}", f.display());
    }
    for (date, why) in &record.failed_workflows {
        eprintln!("warning: workflow of {date} failed: {why}");
    }
    let errors = &summary.strategy_errors;
    if let (Some(first), Some(last), Some(reason)) =
        (errors.first_day, errors.last_day, &errors.reason)
    {
        eprintln!(
            "warning: {} strategy evaluation errors from {first} to {last}; the first: {reason}",
            errors.count
        );
    }
    Ok(())
}

/// Makes `dir` if needed and writes (then removes) a probe file in it.
fn check_writable(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(".alchemiser-write-check");
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}
