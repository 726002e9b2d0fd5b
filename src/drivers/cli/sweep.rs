//! `alchemiser sweep`: every combination of a grid's values backtested, on every core,
//! with a summary per variant and a ranked leaderboard (CSV and a chart).

use std::path::PathBuf;

use chrono::NaiveDate;

use super::error::CliError;
use super::load_config;
use crate::backtest::chart::{bars, Unit};
use crate::config::{Config, EMBEDDED_DEFAULT};
use crate::drivers::sweep::{materialize, outcomes, run_all, Reuse, SweepPlan};
use crate::sweep::{leaderboard, Grid, Outcome, VariantJob};

/// Variants drawn in the leaderboard's chart (the best ones).
const CHARTED: usize = 30;

// What `alchemiser sweep` was asked for (no doc comment: clap would take it for the
// subcommand's description).
#[derive(clap::Args)]
pub(super) struct SweepRequest {
    /// Configuration file (default: ./config.toml if the current folder has one, else the embedded defaults).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The grid (TOML: rank, [params], [config]).
    #[arg(long)]
    pub grid: PathBuf,
    /// First day (YYYY-MM-DD).
    #[arg(long)]
    pub from: NaiveDate,
    /// Last day (YYYY-MM-DD), included.
    #[arg(long)]
    pub to: NaiveDate,
    /// Out of sample: rank on the days before this one (YYYY-MM-DD) and report each
    /// variant's figures from it on beside them.
    #[arg(long)]
    pub split: Option<NaiveDate>,
    /// Where the variants' folders and the leaderboard go.
    #[arg(long, default_value = "out/sweep")]
    pub out: PathBuf,
    /// Variants run at once (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Queue the variants on this NATS server for `worker --roles backtest`
    /// processes (which must see the same market data) instead of running them here.
    #[arg(long)]
    pub nats: Option<String>,
}

pub(super) fn sweep(request: SweepRequest) -> Result<(), CliError> {
    let config = load_config(request.config.as_ref())?;
    let plan = plan_of(&request, &config)?;
    // Every variant is checked (its configuration written to its folder, its
    // symphonies parsed, its data read) before any runs: a bad key, value or symbol is
    // named at once, not after an hour of backtests.
    let jobs = plan.jobs().map_err(CliError::input)?;
    for job in &jobs {
        materialize(job, &plan.folder(&job.variant)).map_err(CliError::input)?;
    }
    let reuse = reuse_line(&plan, &jobs);
    let threads = request.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let bar = indicatif::ProgressBar::new(jobs.len() as u64);
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
            .map_err(CliError::failed),
        Some(url) => on_workers(&config, url, &plan, &jobs, &progress),
    };
    bar.finish_and_clear();
    ran?;
    let outcomes = outcomes(&plan, &jobs);
    let (order, csv) = leaderboard(&plan.grid, &outcomes);
    let (board, chart) = write_leaderboard(&plan, &outcomes, &order, csv)?;
    let on = match &request.nats {
        Some(url) => format!("workers via {url}"),
        None => format!("{threads} threads"),
    };
    eprintln!("{reuse}");
    eprintln!(
        "{} variants in {:.1} s on {on}; wrote {} and {}",
        outcomes.len(),
        started.elapsed().as_secs_f64(),
        board.display(),
        chart.display()
    );
    if let Some(best) = order.first() {
        let values: Vec<String> = outcomes[*best]
            .variant
            .values
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let id = &outcomes[*best].variant.id;
        outln!("best by {}: {id} {}", plan.grid.rank, values.join(" "));
    }
    // Failed variants are on the board, unranked; the sweep says so and fails.
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.failure.is_some()).collect();
    for o in &failed {
        let why = o.failure.as_deref().unwrap_or_default();
        eprintln!("variant {} failed: {why}", o.variant.id);
    }
    if !failed.is_empty() {
        return Err(CliError::failed(format!(
            "{} of {} variants failed (listed in {})",
            failed.len(),
            outcomes.len(),
            board.display()
        )));
    }
    Ok(())
}

/// How many variants a rerun reuses, and why the others are computed.
fn reuse_line(plan: &SweepPlan, jobs: &[VariantJob]) -> String {
    let (mut reused, mut new) = (0, 0);
    let mut changed: std::collections::BTreeMap<&str, usize> = Default::default();
    for job in jobs {
        match plan.reuse(job) {
            Reuse::Reused => reused += 1,
            Reuse::New => new += 1,
            Reuse::Changed(parts) => {
                for part in parts {
                    *changed.entry(part).or_default() += 1;
                }
            }
        }
    }
    let mut why: Vec<String> = Vec::new();
    if new > 0 {
        why.push(format!("{new} not run before"));
    }
    why.extend(
        changed
            .iter()
            .map(|(part, n)| format!("{n} with changed {part}")),
    );
    let computed = jobs.len() - reused;
    match why.is_empty() {
        true => format!("reused {reused} of {} variants", jobs.len()),
        false => format!(
            "reused {reused} of {} variants; computing {computed}: {}",
            jobs.len(),
            why.join(", ")
        ),
    }
}

/// The sweep's plan from its base configuration and grid.
fn plan_of(request: &SweepRequest, config: &Config) -> Result<SweepPlan, CliError> {
    let text = match &request.config {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| CliError::input(format!("{}: {e}", path.display())))?,
        None => EMBEDDED_DEFAULT.to_string(),
    };
    let base: toml::Table = toml::from_str(crate::readable::without_bom(&text))
        .map_err(|e| CliError::input(format!("configuration: {e}")))?;
    let grid_name = request.grid.display().to_string();
    let grid_text = std::fs::read_to_string(&request.grid)
        .map_err(|e| CliError::input(format!("{grid_name}: {e}")))?;
    let grid = Grid::parse(&grid_text, &grid_name).map_err(CliError::input)?;
    if request.out.exists() && !request.out.is_dir() {
        return Err(CliError::input(format!(
            "--out {} is a file: the sweep writes a folder",
            request.out.display()
        )));
    }
    if let Some(split) = request.split {
        if split <= request.from || split > request.to {
            return Err(CliError::input(format!(
                "--split {split} is not after --from {} and on or before --to {}: both periods need days",
                request.from, request.to
            )));
        }
    }
    let plan = SweepPlan {
        grid,
        base,
        // Absolute: each variant's paths are made absolute from it.
        base_dir: std::path::absolute(&config.base_dir).unwrap_or_else(|_| config.base_dir.clone()),
        from: request.from,
        to: request.to,
        out: request.out.clone(),
        split: request.split,
        grid_text,
        config_text: text,
        snapshots: Default::default(),
    };
    Ok(plan)
}

/// Runs the variants on `worker --roles backtest` processes through the NATS server at `url`.
fn on_workers(
    config: &Config,
    url: &str,
    plan: &SweepPlan,
    jobs: &[VariantJob],
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::failed)?;
    let client = runtime
        .block_on(super::worker::reach_nats(config, url))
        .map_err(CliError::input)?;
    runtime
        .block_on(crate::drivers::sweep_queue::drive(
            client,
            plan,
            jobs,
            std::time::Duration::from_secs(config.bus.ack_wait_secs),
            config.bus.max_deliver,
            progress,
        ))
        .map_err(CliError::failed)
}

/// Writes the leaderboard (CSV) and its chart of the best variants; their paths.
fn write_leaderboard(
    plan: &SweepPlan,
    outcomes: &[Outcome],
    order: &[usize],
    csv: String,
) -> Result<(PathBuf, PathBuf), CliError> {
    let board = plan.out.join("leaderboard.csv");
    let chart = plan.out.join("leaderboard.svg");
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
        std::fs::write(path, body)
            .map_err(|e| CliError::failed(format!("{}: {e}", path.display())))?;
    }
    Ok((board, chart))
}
