//! `alchemiser data`: the market-data store that `run`, `signals`, `backtest` and
//! `sweep` read — pull it from Alpaca, import a folder into it, check it, show it.

use std::path::PathBuf;

use chrono::NaiveDate;

use super::error::CliError;
use super::load_config;
use crate::config::Config;
use crate::data::DataSource;
use crate::domain::{parse_symbol, Symbol};
use crate::market::BarSource;
use crate::store::{adjustment_name, BarStore, Provenance};
use crate::venues::alpaca::pull::{pull, PullRequest, Pulled, SymbolPulled};

#[derive(clap::Subcommand)]
pub(super) enum DataCommand {
    /// Pull daily bars from Alpaca into the store: only what it lacks (a symbol whose
    /// adjusted history the venue rewrote is pulled again whole). Needs APCA_API_KEY_ID
    /// and APCA_API_SECRET_KEY. Exits 1 if any symbol failed (run it again for the rest).
    Pull {
        /// Symbols, comma-separated (default: every symbol the configured symphonies name).
        #[arg(long, value_delimiter = ',')]
        symbols: Vec<String>,
        /// First day of history for a symbol the store does not hold (default: data.from).
        #[arg(long)]
        from: Option<NaiveDate>,
        /// Last session (default: the last one whose bar is final in New York now).
        #[arg(long)]
        to: Option<NaiveDate>,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Import a CSV or LEAN data folder into the store (every symbol it holds, or those named).
    Import {
        /// The folder (SYMBOL.csv files, or a LEAN data root).
        dir: PathBuf,
        #[arg(long, value_delimiter = ',')]
        symbols: Vec<String>,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check the store's bars: gaps against the trading calendar, impossible bars, one-day
    /// moves beyond data.max_move that the next bar does not confirm. Lists each finding;
    /// exits 1 if there is any (`signals` and `run` refuse such a symbol).
    Check {
        #[arg(long, value_delimiter = ',')]
        symbols: Vec<String>,
        /// Check this folder (CSV, LEAN or a store) instead of the store.
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// What the store holds: a line per symbol.
    List {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// What the store holds of one symbol, and its last bars.
    Show {
        symbol: String,
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

impl DataCommand {
    pub(super) fn config_path(&self) -> Option<&PathBuf> {
        match self {
            DataCommand::Pull { config, .. }
            | DataCommand::Import { config, .. }
            | DataCommand::Check { config, .. }
            | DataCommand::List { config }
            | DataCommand::Show { config, .. } => config.as_ref(),
        }
    }
}

pub(super) fn data(command: DataCommand) -> Result<(), CliError> {
    let config = load_config(command.config_path())?;
    let store_dir = config.resolve(&config.data.store);
    match command {
        DataCommand::Pull {
            symbols, from, to, ..
        } => pull_into(&config, &store_dir, symbols, from, to),
        DataCommand::Import { dir, symbols, .. } => import(&config, &store_dir, &dir, symbols),
        DataCommand::Check { symbols, data, .. } => check(&config, &store_dir, data, symbols),
        DataCommand::List { .. } => list(&open(&store_dir)?),
        DataCommand::Show { symbol, .. } => show(&open(&store_dir)?, &symbol),
    }
}

fn open(dir: &std::path::Path) -> Result<BarStore, CliError> {
    BarStore::open(dir).map_err(CliError::input)
}

/// Symbols as a person typed them (`spy, qqq`), checked.
fn symbols_named(typed: &[String]) -> Result<Vec<Symbol>, CliError> {
    let mut out: Vec<Symbol> = Vec::new();
    for t in typed {
        let t = t.trim().to_uppercase();
        if t.is_empty() {
            continue;
        }
        let s = parse_symbol(&t).map_err(|e| CliError::input(format!("--symbols: {e}")))?;
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

fn pull_into(
    config: &Config,
    store_dir: &std::path::Path,
    symbols: Vec<String>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Result<(), CliError> {
    let mut symbols = symbols_named(&symbols)?;
    if symbols.is_empty() {
        symbols = crate::symphony_files::symbols_of(&config.strategy, &config.base_dir)
            .map_err(CliError::input)?;
    }
    let now = chrono::Utc::now()
        .with_timezone(&chrono_tz::America::New_York)
        .naive_local();
    let settled = crate::calendar::UsEquityCalendar::get().last_completed_session(now);
    let to = match to {
        Some(d) if d > settled => {
            return Err(CliError::input(format!(
                "--to {d}: the last session whose bar is final is {settled} (a session's bar is final {} minutes after its close)",
                crate::calendar::BAR_SETTLES_AFTER_CLOSE.num_minutes()
            )))
        }
        Some(d) => d,
        None => settled,
    };
    let from = from.unwrap_or(config.data.from);
    if from > to {
        return Err(CliError::input(format!("--from {from} is after --to {to}")));
    }
    let client = super::run::alpaca_data_client(config).map_err(CliError::input)?;
    let mut store = open(store_dir)?;
    let request = PullRequest {
        symbols: symbols.clone(),
        from,
        to,
        adjustment: config.strategy.adjustment,
        feed: config.alpaca.feed.clone(),
    };
    let bar = indicatif::ProgressBar::new(symbols.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} symbols {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("cannot start a runtime: {e}")))?;
    let mut progress = |done: &SymbolPulled| {
        bar.set_message(done.symbol.to_string());
        bar.inc(1);
    };
    let report = runtime
        .block_on(pull(&mut store, &client, &request, &mut progress))
        .map_err(CliError::failed)?;
    bar.finish_and_clear();
    for s in &report.symbols {
        let held = store
            .get(&s.symbol)
            .map(|e| format!("{} bars, {} to {}", e.bars, e.first, e.last))
            .unwrap_or_else(|| "not held".into());
        let what = match &s.pulled {
            Pulled::UpToDate => "up to date".to_string(),
            Pulled::New { bars } => format!("new: {bars} bars"),
            Pulled::Appended { bars } => format!("{bars} new bars"),
            Pulled::Repulled { bars, why } => format!("pulled again whole ({bars} bars): {why}"),
            Pulled::Failed(why) => format!("FAILED: {why}"),
        };
        outln!("{:<8} {what} | {held}", s.symbol);
    }
    let failed: Vec<&str> = report.failed().map(|(s, _)| s.as_str()).collect();
    outln!(
        "pulled {} bars of {} symbols to {to} in {} requests, {:.1} s, into {}",
        report.bars(),
        report.symbols.len(),
        report.requests,
        started.elapsed().as_secs_f64(),
        store_dir.display()
    );
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "{} of {} symbols not pulled ({}); what was pulled is kept: run it again for the rest",
            failed.len(),
            report.symbols.len(),
            failed.join(", ")
        )))
    }
}

fn import(
    config: &Config,
    store_dir: &std::path::Path,
    dir: &std::path::Path,
    symbols: Vec<String>,
) -> Result<(), CliError> {
    let source = DataSource::detect(dir, config.strategy.adjustment).map_err(CliError::input)?;
    if matches!(source, DataSource::Store { .. }) {
        return Err(CliError::input(format!(
            "{}: is a store already; import reads CSV or LEAN folders",
            dir.display()
        )));
    }
    let mut symbols = symbols_named(&symbols)?;
    if symbols.is_empty() {
        symbols = source.symbols().map_err(CliError::input)?;
    }
    // Every symbol read and checked before anything is written: a bad file leaves the
    // store as it was, not half imported.
    for symbol in &symbols {
        let bars = source.read(symbol).map_err(CliError::input)?;
        if bars.is_empty() {
            return Err(CliError::input(format!(
                "{symbol}: {} holds no bars of it",
                dir.display()
            )));
        }
    }
    let shown = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut store = open(store_dir)?;
    for symbol in &symbols {
        let bars = source.read(symbol).map_err(CliError::input)?;
        let provenance = Provenance {
            source: format!("import from {}", shown.display()),
            adjustment: adjustment_name(config.strategy.adjustment).into(),
            written_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        let replaced = store.get(symbol).map(|e| e.bars);
        store
            .replace(symbol, &bars, provenance)
            .map_err(CliError::failed)?;
        let (first, last) = (bars[0].date, bars[bars.len() - 1].date);
        let replaced = replaced.map_or(String::new(), |n| format!(" (replaced {n} stored bars)"));
        outln!(
            "{symbol:<8} {} bars, {first} to {last}{replaced}",
            bars.len()
        );
    }
    store.commit().map_err(CliError::failed)?;
    outln!(
        "imported {} into {}",
        count(symbols.len(), "symbol"),
        store_dir.display()
    );
    Ok(())
}

fn check(
    config: &Config,
    store_dir: &std::path::Path,
    data: Option<PathBuf>,
    symbols: Vec<String>,
) -> Result<(), CliError> {
    let dir = data.clone().unwrap_or_else(|| store_dir.to_path_buf());
    if data.is_none() && !BarStore::is_store(&dir) {
        return Err(CliError::input(format!(
            "the store {} holds no bars yet: `alchemiser data pull` or `alchemiser data import DIR` fills it",
            dir.display()
        )));
    }
    let source = DataSource::detect(&dir, config.strategy.adjustment).map_err(CliError::input)?;
    let mut symbols = symbols_named(&symbols)?;
    if symbols.is_empty() {
        symbols = source.symbols().map_err(CliError::input)?;
    }
    let mut store = data.is_none().then(|| open(&dir)).transpose()?;
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (mut with_findings, mut accepted) = (0, 0);
    for symbol in &symbols {
        let bars = match source.read(symbol) {
            Ok(bars) => bars,
            // One unreadable file is a finding, not the end of the check.
            Err(e @ crate::market::DataError::File { .. }) => {
                outln!("{symbol} unreadable: {e} (pull or import it again)");
                with_findings += 1;
                continue;
            }
            Err(e) => return Err(CliError::input(e)),
        };
        let found = crate::market::checks::findings(&bars, config.data.max_move);
        let mut open = 0;
        for f in &found {
            if config.data.accepts(symbol, f.date) {
                outln!("{symbol} {f} (accepted in data.accept)");
                accepted += 1;
            } else {
                outln!("{symbol} {f}");
                open += 1;
            }
        }
        with_findings += usize::from(open > 0);
        if let Some(store) = store.as_mut() {
            let texts = found.iter().map(ToString::to_string).collect();
            store.record_findings(symbol, texts, at.clone());
        }
    }
    if let Some(store) = &store {
        store.commit().map_err(CliError::failed)?;
    }
    outln!(
        "checked {} in {}: {}",
        count(symbols.len(), "symbol"),
        dir.display(),
        match (with_findings, accepted) {
            (0, 0) => "no findings".to_string(),
            (0, k) => format!("no findings but the {k} accepted in data.accept"),
            (n, _) => format!("{n} with findings"),
        }
    );
    if with_findings == 0 {
        Ok(())
    } else {
        Err(CliError::Reported)
    }
}

fn list(store: &BarStore) -> Result<(), CliError> {
    outln!(
        "{:<8} {:>6}  {:<10}  {:<10}  {:<9}  {:<20}  source",
        "symbol",
        "bars",
        "first",
        "last",
        "findings",
        "written"
    );
    let mut n = 0;
    for (symbol, e) in store.symbols() {
        let findings = match (&e.checked_at, e.findings.len()) {
            (None, _) => "unchecked".to_string(),
            (Some(_), k) => k.to_string(),
        };
        outln!(
            "{symbol:<8} {:>6}  {:<10}  {:<10}  {findings:<9}  {:<20}  {}",
            e.bars,
            e.first,
            e.last,
            e.written_at,
            e.source
        );
        n += 1;
    }
    for (symbol, why) in store.unreadable() {
        outln!("{symbol:<8} unreadable: {why} (pull or import it again)");
        n += 1;
    }
    outln!("{} in {}", count(n, "symbol"), store.dir().display());
    Ok(())
}

fn show(store: &BarStore, typed: &str) -> Result<(), CliError> {
    let symbol = parse_symbol(&typed.trim().to_uppercase()).map_err(CliError::input)?;
    if let Some((_, why)) = store.unreadable().find(|(s, _)| *s == symbol.as_str()) {
        return Err(CliError::input(format!(
            "{symbol}: its file in {} does not read ({why}): pull or import it again",
            store.dir().display()
        )));
    }
    let Some(e) = store.get(&symbol) else {
        return Err(CliError::input(format!(
            "the store {} holds no bars of {symbol}: `alchemiser data pull --symbols {symbol}` fetches them",
            store.dir().display()
        )));
    };
    outln!("symbol      {symbol}");
    outln!(
        "file        {}",
        crate::store::file_of(store.dir(), &symbol).display()
    );
    outln!("bars        {} ({} to {})", e.bars, e.first, e.last);
    outln!("adjustment  {}", e.adjustment);
    outln!("source      {}", e.source);
    outln!("written     {}", e.written_at);
    match &e.checked_at {
        None => outln!("findings    not checked yet (`alchemiser data check`)"),
        Some(at) if e.findings.is_empty() => outln!("findings    none (checked {at})"),
        Some(at) => {
            outln!("findings    {} (checked {at})", e.findings.len());
            for f in &e.findings {
                outln!("  {f}");
            }
        }
    }
    let bars = store.bars(&symbol).map_err(CliError::failed)?;
    outln!("last bars   date        open        high        low         close       volume");
    for b in bars.iter().rev().take(5).rev() {
        outln!(
            "            {}  {:<10}  {:<10}  {:<10}  {:<10}  {}",
            b.date,
            b.open.normalize(),
            b.high.normalize(),
            b.low.normalize(),
            b.close.normalize(),
            b.volume
        );
    }
    Ok(())
}

/// `n` things, in words ("1 symbol", "2 symbols").
fn count(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}
