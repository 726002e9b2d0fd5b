//! Replays one trading day through the full actor system and prints a JSON summary
//! (events, orders, fills, equity before and after, chain digest).
//!
//! `cargo run --release --example replay_day` replays the last day of the bundled data
//! with the daily fill model. With `--data examples/lean --date 2013-10-07` it
//! replays intraday: the decision is taken at 15:45 New York time from the daily
//! history up to the previous day plus a bar for today built from the regular-session
//! minute trades before 15:45, and orders fill against the minute quotes. Without
//! `--config`, `--data` uses `examples/replay_lean.toml` (a symphony over the symbols
//! that have minute bars).

use std::path::PathBuf;

use alchemiser::drivers::replay::{replay_day, ReplayOptions};
use chrono::{NaiveDate, NaiveTime};
use clap::Parser;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    config: Option<PathBuf>,
    /// Market data folder (LEAN or plain CSV).
    #[arg(long)]
    data: Option<PathBuf>,
    /// The day to replay (default: the last day of the data).
    #[arg(long)]
    date: Option<NaiveDate>,
    /// Decision time, New York (HH:MM).
    #[arg(long, default_value = "15:45")]
    at: String,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let Ok(at) = NaiveTime::parse_from_str(&args.at, "%H:%M") else {
        eprintln!("error: --at {} is not HH:MM", args.at);
        return std::process::ExitCode::from(2);
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = args.config.or_else(|| {
        args.data
            .as_ref()
            .map(|_| root.join("examples/replay_lean.toml"))
    });
    match replay_day(&ReplayOptions {
        config,
        data: args.data,
        date: args.date,
        at,
    }) {
        Ok((summary, completed)) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&summary).unwrap_or_default()
            );
            if completed {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
