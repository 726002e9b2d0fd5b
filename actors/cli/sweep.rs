//! `alchemiser sweep`: every combination of a grid's values backtested, on every core,
//! with a summary per variant and a ranked leaderboard (CSV and a chart).

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::NaiveDate;

use super::load_config;
use crate::actors::sweep::{materialize, outcomes, run_all, SweepPlan};
use crate::backtest::chart::{bars, Unit};
use crate::config::EMBEDDED_DEFAULT;
use crate::sweep::{leaderboard, sweep_id, Grid};

/// Variants drawn in the leaderboard's chart (the best ones).
const CHARTED: usize = 30;

pub(super) struct SweepRequest {
    pub config: Option<PathBuf>,
    pub grid: PathBuf,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub out: PathBuf,
    pub threads: Option<usize>,
    /// Run the variants on `worker --roles backtest` processes through this NATS server.
    pub nats: Option<String>,
}

pub(super) fn sweep(request: SweepRequest) -> ExitCode {
    let config = match load_config(request.config.as_ref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let text = match &request.config {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        None => EMBEDDED_DEFAULT.to_string(),
    };
    let base: toml::Table = match toml::from_str(crate::readable::without_bom(&text)) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let grid_name = request.grid.display().to_string();
    let grid_text = match std::fs::read_to_string(&request.grid) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {grid_name}: {e}");
            return ExitCode::from(2);
        }
    };
    let grid = match Grid::parse(&grid_text, &grid_name) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let sweep = sweep_id(&grid_text, &text, request.from, request.to);
    if request.out.exists() && !request.out.is_dir() {
        eprintln!(
            "error: --out {} is a file: the sweep writes a folder",
            request.out.display()
        );
        return ExitCode::from(2);
    }
    let plan = SweepPlan {
        grid,
        base,
        // Absolute: each variant's paths are made absolute from it.
        base_dir: std::path::absolute(&config.base_dir).unwrap_or_else(|_| config.base_dir.clone()),
        from: request.from,
        to: request.to,
        out: request.out.clone(),
    };
    let variants = plan.grid.variants();
    // Every variant's configuration is checked (and written to its folder) before any
    // runs: a bad key or value is named at once, not after an hour of backtests.
    let mut jobs = Vec::with_capacity(variants.len());
    for v in &variants {
        let made = plan
            .job(&sweep, v)
            .and_then(|job| materialize(&job, &plan.folder(v)).map(|_| job));
        match made {
            Ok(job) => jobs.push(job),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let threads = request.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let bar = indicatif::ProgressBar::new(variants.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} variants  {elapsed} (eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let progress = |done: usize, _: usize| bar.set_position(done as u64);
    let ran = match &request.nats {
        None => run_all(&plan, &jobs, threads, &progress)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Some(url) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let runtime = match runtime {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let client = match runtime.block_on(super::worker::reach_nats(&config, url)) {
                Ok(c) => c,
                Err(e) => {
                    bar.finish_and_clear();
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            runtime.block_on(crate::actors::sweep_queue::drive(
                client,
                &plan,
                &jobs,
                std::time::Duration::from_secs(config.bus.ack_wait_secs),
                config.bus.max_deliver,
                &progress,
            ))
        }
    };
    if let Err(e) = ran {
        bar.finish_and_clear();
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let outcomes = outcomes(&plan, &variants);
    bar.finish_and_clear();
    let (order, csv) = leaderboard(&plan.grid, &outcomes);
    let board = request.out.join("leaderboard.csv");
    let chart = request.out.join("leaderboard.svg");
    let charted: Vec<usize> = order.iter().copied().take(CHARTED).collect();
    let labels: Vec<String> = charted
        .iter()
        .map(|i| outcomes[*i].variant.id.clone())
        .collect();
    let values: Vec<f64> = charted
        .iter()
        .map(|i| {
            outcomes[*i].summary[&plan.grid.rank]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(f64::NAN)
        })
        .collect();
    let unit = if plan.grid.rank == "sharpe" {
        Unit::Ratio
    } else {
        Unit::Percent
    };
    let title = format!(
        "{} by variant (best {} of {})",
        plan.grid.rank,
        charted.len(),
        outcomes.len()
    );
    for (path, body) in [
        (&board, csv),
        (&chart, bars(&title, &labels, &values, unit)),
    ] {
        if let Err(e) = std::fs::write(path, body) {
            eprintln!("error: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    let on = match &request.nats {
        Some(url) => format!("workers via {url}"),
        None => format!("{threads} threads"),
    };
    eprintln!(
        "{} variants in {:.1} s on {on}; wrote {} and {}",
        outcomes.len(),
        started.elapsed().as_secs_f64(),
        board.display(),
        chart.display()
    );
    if let Some(best) = order.first() {
        outln!(
            "best by {}: {} {}",
            plan.grid.rank,
            outcomes[*best].variant.id,
            outcomes[*best]
                .variant
                .values
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    ExitCode::SUCCESS
}
