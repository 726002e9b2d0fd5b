//! `alchemiser data pull`: daily bars from Alpaca's multi-symbol bars endpoint into the
//! store ([`crate::store`]), only what it lacks. A symbol already held is asked for from a few bars before
//! its last one: if the venue's bars on that overlap differ from the stored ones, its
//! adjusted history was rewritten (a split, a dividend) and the symbol is pulled again
//! whole. Each symbol is written as soon as its request is answered, so a killed pull
//! keeps every symbol it finished and the next one asks only for the rest.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::client::AlpacaClient;
use super::to_daily_bars;
use crate::domain::Symbol;
use crate::market::{Adjustment, DailyBar};
use crate::store::{adjustment_name, BarStore, Provenance, StoreError};

/// Stored bars asked for again to see whether the venue's history still matches.
pub const OVERLAP_BARS: usize = 5;
/// Symbols per request (the endpoint takes a list; pages are followed to the end).
pub const SYMBOLS_PER_REQUEST: usize = 100;

/// What to pull.
#[derive(Clone, Debug)]
pub struct PullRequest {
    pub symbols: Vec<Symbol>,
    /// History starts here for a symbol the store does not hold (or holds from later
    /// than a previous pull asked).
    pub from: NaiveDate,
    /// The last session wanted: a completed one (a bar of a session still trading would
    /// change after it is stored).
    pub to: NaiveDate,
    pub adjustment: Adjustment,
    /// Alpaca's feed: `iex` or `sip`.
    pub feed: String,
}

/// What a pull did for one symbol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pulled {
    /// The store already held it to `to`.
    UpToDate,
    /// Not held before: `bars` pulled.
    New { bars: usize },
    /// `bars` new bars after the stored ones.
    Appended { bars: usize },
    /// Pulled again whole (`bars`), because of `why`.
    Repulled { bars: usize, why: String },
    /// Not pulled (the store keeps what it held).
    Failed(String),
}

/// One symbol's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymbolPulled {
    pub symbol: Symbol,
    pub pulled: Pulled,
}

/// Every symbol's outcome, and how many HTTP requests the pull sent.
#[derive(Clone, Debug, Default)]
pub struct PullReport {
    pub symbols: Vec<SymbolPulled>,
    pub requests: u64,
}

impl PullReport {
    pub fn failed(&self) -> impl Iterator<Item = (&Symbol, &str)> {
        self.symbols.iter().filter_map(|s| match &s.pulled {
            Pulled::Failed(why) => Some((&s.symbol, why.as_str())),
            _ => None,
        })
    }

    pub fn bars(&self) -> usize {
        self.symbols
            .iter()
            .map(|s| match s.pulled {
                Pulled::New { bars }
                | Pulled::Appended { bars }
                | Pulled::Repulled { bars, .. } => bars,
                _ => 0,
            })
            .sum()
    }
}

/// How a symbol is asked for.
#[derive(Clone, Debug)]
enum Ask {
    /// From `from`: not held, or held as other bars (`why`).
    Whole { why: Option<String> },
    /// From the overlap's first day: the stored bars, to compare and extend.
    Extend { stored: Vec<DailyBar> },
}

/// Pulls `request` into `store`; `progress` hears of each symbol as it is done. An
/// error of the venue fails the symbols of that request (named in the report) and the
/// pull goes on; only a store that cannot be written stops it.
pub async fn pull(
    store: &mut BarStore,
    client: &AlpacaClient,
    request: &PullRequest,
    progress: &mut (dyn FnMut(&SymbolPulled) + Send),
) -> Result<PullReport, StoreError> {
    let sent_before = client.requests_sent();
    let mut report = PullReport::default();
    let mut asks: BTreeMap<NaiveDate, Vec<(Symbol, Ask)>> = BTreeMap::new();
    for symbol in &request.symbols {
        match plan(store, symbol, request)? {
            None => {
                let done = SymbolPulled {
                    symbol: symbol.clone(),
                    pulled: Pulled::UpToDate,
                };
                progress(&done);
                report.symbols.push(done);
            }
            Some((start, ask)) => asks.entry(start).or_default().push((symbol.clone(), ask)),
        }
    }
    let mut again = Vec::new();
    for (start, group) in asks {
        for batch in group.chunks(SYMBOLS_PER_REQUEST) {
            let answered = fetch(client, batch.iter().map(|(s, _)| s), start, request).await;
            for (symbol, ask) in batch {
                let outcome = match &answered {
                    Err(why) => Pulled::Failed(why.clone()),
                    Ok(bars) => match settle(
                        store,
                        symbol,
                        ask,
                        bars.get(symbol.as_str()),
                        start,
                        request,
                    )? {
                        Settled::Done(pulled) => pulled,
                        Settled::Again(why) => {
                            again.push((symbol.clone(), why));
                            continue;
                        }
                    },
                };
                let done = SymbolPulled {
                    symbol: symbol.clone(),
                    pulled: outcome,
                };
                progress(&done);
                report.symbols.push(done);
            }
            store.commit()?;
        }
    }
    // Histories the venue rewrote: each pulled again from the first day it held.
    for (symbol, why) in again {
        let start = store
            .get(&symbol)
            .map_or(request.from, |e| e.first.min(request.from));
        let answered = fetch(client, std::iter::once(&symbol), start, request).await;
        let pulled = match answered {
            Err(why) => Pulled::Failed(why),
            Ok(bars) => match settle(
                store,
                &symbol,
                &Ask::Whole { why: Some(why) },
                bars.get(symbol.as_str()),
                start,
                request,
            )? {
                Settled::Done(pulled) => pulled,
                Settled::Again(why) => Pulled::Failed(why),
            },
        };
        let done = SymbolPulled { symbol, pulled };
        progress(&done);
        report.symbols.push(done);
        store.commit()?;
    }
    report.requests = client.requests_sent() - sent_before;
    report.symbols.sort_by(|a, b| a.symbol.cmp(&b.symbol));
    Ok(report)
}

/// The first day to ask `symbol` for, and how; `None` when the store holds it to `to`.
fn plan(
    store: &BarStore,
    symbol: &Symbol,
    request: &PullRequest,
) -> Result<Option<(NaiveDate, Ask)>, StoreError> {
    let Some(entry) = store.get(symbol) else {
        return Ok(Some((request.from, Ask::Whole { why: None })));
    };
    let wanted = adjustment_name(request.adjustment);
    if entry.adjustment != wanted {
        let why = format!("the store held {} bars, {wanted} asked", entry.adjustment);
        return Ok(Some((
            request.from.min(entry.first),
            Ask::Whole { why: Some(why) },
        )));
    }
    let asked_from = history_from(&entry.source).unwrap_or(entry.first);
    if request.from < asked_from {
        let why = format!(
            "history asked from {} (held from {})",
            request.from, entry.first
        );
        return Ok(Some((request.from, Ask::Whole { why: Some(why) })));
    }
    if entry.last >= request.to {
        return Ok(None);
    }
    let stored = store.bars(symbol)?;
    let start = stored[stored.len().saturating_sub(OVERLAP_BARS)].date;
    Ok(Some((start, Ask::Extend { stored })))
}

/// One request for `symbols` from `start` to `request.to`, every page; the venue's
/// error (after the client's retries) as text.
async fn fetch(
    client: &AlpacaClient,
    symbols: impl Iterator<Item = &Symbol>,
    start: NaiveDate,
    request: &PullRequest,
) -> Result<BTreeMap<String, Vec<super::wire::Bar>>, String> {
    let symbols: Vec<&str> = symbols.map(Symbol::as_str).collect();
    let adjustment = match request.adjustment {
        Adjustment::Raw => "raw",
        Adjustment::Adjusted => "all",
    };
    client
        .daily_bars(&symbols, start, request.to, adjustment, &request.feed)
        .await
        .map_err(|e| e.to_string())
}

enum Settled {
    Done(Pulled),
    /// The venue's history differs from the stored one: pull it whole.
    Again(String),
}

/// Writes what the venue answered for `symbol`.
fn settle(
    store: &mut BarStore,
    symbol: &Symbol,
    ask: &Ask,
    answered: Option<&Vec<super::wire::Bar>>,
    start: NaiveDate,
    request: &PullRequest,
) -> Result<Settled, StoreError> {
    let fetched = match to_daily_bars(symbol, answered.map_or(&[][..], Vec::as_slice)) {
        Ok(bars) => bars,
        Err(why) => return Ok(Settled::Done(Pulled::Failed(why))),
    };
    // Only completed sessions, whatever the venue sends.
    let fetched: Vec<DailyBar> = fetched
        .into_iter()
        .filter(|b| b.date <= request.to)
        .collect();
    let provenance = |from: NaiveDate| Provenance {
        source: format!("alpaca ({}) from {from}", request.feed),
        adjustment: adjustment_name(request.adjustment).to_string(),
        written_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    match ask {
        Ask::Whole { why } => {
            if fetched.is_empty() {
                return Ok(Settled::Done(Pulled::Failed(format!(
                    "Alpaca has no daily bars of {symbol} from {start} to {}",
                    request.to
                ))));
            }
            store.replace(symbol, &fetched, provenance(start))?;
            let bars = fetched.len();
            Ok(Settled::Done(match why {
                None => Pulled::New { bars },
                Some(why) => Pulled::Repulled {
                    bars,
                    why: why.clone(),
                },
            }))
        }
        Ask::Extend { stored } => {
            let last = stored.last().map(|b| b.date);
            let overlap = stored.iter().filter(|b| b.date >= start);
            for held in overlap {
                match fetched.iter().find(|b| b.date == held.date) {
                    Some(b) if b == held => {}
                    Some(_) => {
                        return Ok(Settled::Again(format!(
                            "the venue's bar of {} differs from the stored one (a split or dividend rewrote the adjusted history)",
                            held.date
                        )))
                    }
                    None => {
                        return Ok(Settled::Again(format!(
                            "the venue no longer has the stored bar of {}",
                            held.date
                        )))
                    }
                }
            }
            let new: Vec<DailyBar> = fetched
                .into_iter()
                .filter(|b| Some(b.date) > last)
                .collect();
            if new.is_empty() {
                return Ok(Settled::Done(Pulled::UpToDate));
            }
            let mut all = stored.clone();
            all.extend_from_slice(&new);
            let from = store
                .get(symbol)
                .and_then(|e| history_from(&e.source))
                .unwrap_or(stored[0].date);
            store.replace(symbol, &all, provenance(from))?;
            Ok(Settled::Done(Pulled::Appended { bars: new.len() }))
        }
    }
}

/// The first day a pull asked for, from a source written by [`settle`].
fn history_from(source: &str) -> Option<NaiveDate> {
    source.rsplit_once(" from ")?.1.parse().ok()
}
