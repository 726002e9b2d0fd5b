//! The strategy book from files: the symphony files a configuration names, read and
//! parsed, and the bars they need read from the data folder (in parallel). The book
//! itself, and everything it decides, is the core's ([`crate::strategy::book`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::data::DataSource;
use crate::domain::Symbol;
use crate::market::{BarSeries, BarSource, DataError, MarketData};
use crate::strategy::book::{referenced_symbols, LoadedSymphony, StrategyBook, StrategyError};
use crate::strategy::dsl::{parse_symphony, Span};
use crate::strategy::settings::StrategyConfig;
use crate::strategy::slices::TradingRule;

/// The configured data folder (relative to `base`), or `data_dir` when given, with its
/// layout detected.
pub fn data_source(
    config: &StrategyConfig,
    base: &Path,
    data_dir: Option<&Path>,
) -> Result<DataSource, DataError> {
    let path = data_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| base.join(&config.data));
    DataSource::detect(&path, config.adjustment)
}

/// Reads the configured symphony files (paths relative to `base`), parses them, and loads
/// the bars of every symbol they reference from `data_dir` (the configured folder unless
/// overridden): the strategy book, ready to evaluate.
pub fn load_book(
    config: &StrategyConfig,
    base: &Path,
    data_dir: Option<&Path>,
) -> Result<StrategyBook, StrategyError> {
    let source = data_source(config, base, data_dir)?;
    let (files, wanted) = read_symphonies(config, base)?;
    let symbols: Vec<&Symbol> = wanted.iter().map(|(s, _, _)| s).collect();
    let mut series = BTreeMap::new();
    for ((symbol, span, shown), loaded) in wanted.iter().zip(load_all(&source, &symbols)) {
        match loaded {
            Ok(s) => {
                series.insert(symbol.clone(), s);
            }
            Err(DataError::UnknownSymbol { symbol, dir }) => {
                return Err(StrategyError::Located {
                    file: shown.clone(),
                    span: *span,
                    message: format!("no market data for symbol {symbol} in {dir}"),
                })
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(StrategyBook::new(
        config,
        files,
        MarketData::sharing_dates(series),
        Arc::new(source),
    ))
}

/// Every symbol the configured symphony files reference, each once, in the order they
/// are first named (what `data pull` fetches by default).
pub fn symbols_of(config: &StrategyConfig, base: &Path) -> Result<Vec<Symbol>, StrategyError> {
    Ok(read_symphonies(config, base)?
        .1
        .into_iter()
        .map(|(s, _, _)| s)
        .collect())
}

/// A symbol a file references, where it is first referenced, and the file as shown.
type Wanted = (Symbol, Span, String);

/// The configured symphony files read and parsed, and the symbols they reference.
fn read_symphonies(
    config: &StrategyConfig,
    base: &Path,
) -> Result<(Vec<LoadedSymphony>, Vec<Wanted>), StrategyError> {
    let mut files = Vec::new();
    // Each symbol once, where it is first referenced (for the error naming it).
    let mut wanted: Vec<Wanted> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for f in &config.files {
        let path = base.join(&f.path);
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| StrategyError::Read {
            file: shown.clone(),
            message: e.to_string(),
        })?;
        let symphony = parse_symphony(&text).map_err(|e| StrategyError::Located {
            file: shown.clone(),
            span: e.span,
            message: e.message,
        })?;
        for (symbol, span) in referenced_symbols(&symphony) {
            if seen.insert(symbol.clone()) {
                wanted.push((symbol, span, shown.clone()));
            }
        }
        let rule = TradingRule::from_options(&symphony.options).map_err(|message| {
            StrategyError::Read {
                file: shown.clone(),
                message,
            }
        })?;
        files.push(LoadedSymphony {
            path,
            weight: f.weight,
            symphony,
            rule,
        });
    }
    Ok((files, wanted))
}

/// Refuses to trade on bars with a finding of `data check` dated on or before `through`
/// that `data.accept` does not list: each symbol of `symbols` read from `source` and
/// checked ([`refuse_findings_in`]).
pub fn refuse_findings(
    source: &dyn BarSource,
    symbols: &[Symbol],
    data: &crate::config::DataConfig,
    through: chrono::NaiveDate,
) -> Result<(), String> {
    let mut read = Vec::with_capacity(symbols.len());
    for symbol in symbols {
        read.push((
            symbol.clone(),
            source.read(symbol).map_err(|e| e.to_string())?,
        ));
    }
    refuse_findings_in(&read, &source.describe(), data, through)
}

/// [`refuse_findings`] on bars already read from `folder`: the error names every symbol
/// with a finding, and its first.
pub fn refuse_findings_in(
    bars: &[(Symbol, Vec<crate::market::DailyBar>)],
    folder: &str,
    data: &crate::config::DataConfig,
    through: chrono::NaiveDate,
) -> Result<(), String> {
    let mut refused = Vec::new();
    for (symbol, bars) in bars {
        // What comes after the day cannot have moved its decision.
        let found: Vec<_> = crate::market::checks::findings(bars, data.max_move)
            .into_iter()
            .filter(|f| f.date <= through && !data.accepts(symbol, f.date))
            .collect();
        if let Some(first) = found.first() {
            let more = match found.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            };
            refused.push(format!("{symbol}: {first}{more}"));
        }
    }
    if refused.is_empty() {
        return Ok(());
    }
    Err(format!(
        "market data with unresolved findings, not trading on it: {}; `alchemiser data check --data {folder}` lists them (pull or import the data again, or accept a real one in data.accept as \"SYMBOL YYYY-MM-DD\")",
        refused.join("; ")
    ))
}

/// Loads `symbols` from `source` on every core the machine has (a 500-symbol universe
/// spent half its backtest reading CSV on one), each result in its symbol's place.
fn load_all(source: &DataSource, symbols: &[&Symbol]) -> Vec<Result<BarSeries, DataError>> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(symbols.len());
    if workers <= 1 {
        return symbols.iter().map(|s| source.load(s)).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut done: Vec<(usize, Result<BarSeries, DataError>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(symbol) = symbols.get(i) else {
                            return mine;
                        };
                        mine.push((i, source.load(symbol)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    if done.len() != symbols.len() {
        // A reader thread panicked: load in place, where the panic shows.
        return symbols.iter().map(|s| source.load(s)).collect();
    }
    done.into_iter().map(|(_, r)| r).collect()
}
