//! `alchemiser backtest`: history replayed through the actors, the files written.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use chrono::NaiveDate;

use crate::backtest::tearsheet::{find_benchmark, Benchmark, Tearsheet};
use crate::journal::lock::JournalLock;
use crate::journal::Journal;

use super::{load_book, load_config};

/// What `alchemiser backtest` was asked for.
pub(super) struct BacktestRequest {
    pub config: Option<PathBuf>,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub data: Option<PathBuf>,
    pub out: PathBuf,
    pub journal: Option<PathBuf>,
    pub benchmark: Option<String>,
}

pub(super) fn backtest(request: BacktestRequest) -> ExitCode {
    let BacktestRequest {
        config,
        from,
        to,
        data,
        out,
        journal: journal_path,
        benchmark,
    } = request;
    let config = match load_config(config.as_ref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut book = match load_book(&config, data.as_ref()) {
        Ok(b) => b,
        Err(code) => return code,
    };
    if out.exists() && !out.is_dir() {
        eprintln!(
            "error: --out {} is a file: the backtest writes a folder of files",
            out.display()
        );
        return ExitCode::from(2);
    }
    let sessions = match super::super::backtest::sessions(&book, from, to) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let benchmark = match find_benchmark(&book.source, &book.data, benchmark.as_deref()) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: benchmark: {e}");
            return ExitCode::from(2);
        }
    };
    // What the run never reads is not held.
    book.keep_until(to);
    let book = Arc::new(book);
    let (dates, warm_up) = match super::super::backtest::after_warm_up(&book, &sessions) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if warm_up > 0 {
        eprintln!(
            "warm-up: the strategies first evaluate on {}; trading starts then ({warm_up} sessions from {} skipped)",
            dates[0], sessions[0]
        );
    }
    // Found out now, once the inputs are known good, not after the whole run.
    if let Err(e) = check_writable(&out) {
        eprintln!("error: --out {}: cannot write there: {e}", out.display());
        return ExitCode::from(2);
    }
    let dates = dates.to_vec();
    let bar = indicatif::ProgressBar::new(dates.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} sessions  {elapsed} (eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let system = actix::System::new();
    let progress = bar.clone();
    let mut _lock = None;
    let journal = match &journal_path {
        Some(p) => match JournalLock::acquire(p) {
            Ok(lock) => {
                _lock = Some(lock);
                Journal::open(p, config.journal.sync)
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        None => Journal::in_memory(),
    };
    let journal = match journal {
        Ok(j) => j,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let (Some(p), true) = (&journal_path, journal.last_seq() > 0) {
        eprintln!(
            "error: journal {} already holds {} events: a backtest writes a journal of its own (remove the file or name another)",
            p.display(),
            journal.last_seq()
        );
        return ExitCode::from(2);
    }
    let result = system.block_on(super::super::backtest::run_journaled(
        config,
        book.clone(),
        &dates,
        move |done, _| progress.set_position(done as u64),
        journal,
    ));
    bar.finish_and_clear();
    let mut record = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    record.warm_up_sessions = warm_up;
    let Some(summary) = crate::backtest::summarize(&record) else {
        eprintln!("error: the backtest produced no sessions");
        return ExitCode::FAILURE;
    };
    let sheet = Tearsheet::of(
        &record,
        &summary,
        &book.data,
        benchmark
            .as_ref()
            .map(|(symbol, series)| Benchmark {
                symbol: symbol.clone(),
                series,
            })
            .as_ref(),
    );
    let no_benchmark = benchmark
        .is_none()
        .then(crate::backtest::html::no_benchmark_note);
    match crate::backtest::report::write_all(
        &out,
        &record,
        &summary,
        &sheet,
        no_benchmark.as_deref(),
    ) {
        Ok(files) => {
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
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Makes `dir` if needed and writes (then removes) a probe file in it.
fn check_writable(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(".alchemiser-write-check");
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}
