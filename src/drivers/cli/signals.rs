//! `alchemiser signals`: one day's targets and how each strategy decided them.

use std::path::PathBuf;

use chrono::NaiveDate;

use crate::config::OnStrategyError;
use crate::events::SignalGenerated;

use super::error::CliError;
use super::{load_book_to_trade, load_config, Format};

pub(super) fn signals(
    config: Option<PathBuf>,
    as_of: NaiveDate,
    data: Option<PathBuf>,
    format: Format,
) -> Result<(), CliError> {
    let config = load_config(config.as_ref())?;
    let mut book = load_book_to_trade(&config, data.as_ref(), as_of)?;
    book.on_error = OnStrategyError::Fail;
    book.check_as_of(as_of).map_err(CliError::input)?;
    // Slices that trade on a calendar or a threshold need the days before.
    book.replay_slices_before(as_of);
    // The strategies cannot evaluate on this data (too little history for a window,
    // a flat series): bad input, like a date the data lacks.
    let signal = book.evaluate(as_of).map_err(CliError::input)?;
    match format {
        Format::Json => {
            let json = serde_json::to_string_pretty(&signal).map_err(CliError::failed)?;
            outln!("{json}");
        }
        Format::Table => out!("{}", signal_table(&signal)),
    }
    Ok(())
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
        if let Some(t) = &s.slice {
            let verdict = if t.trades {
                "trades today"
            } else {
                "holds today"
            };
            out.push_str(&format!(
                "  {verdict}: {} (share of the portfolio {})\n",
                t.reason,
                t.share.round_dp(6)
            ));
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
