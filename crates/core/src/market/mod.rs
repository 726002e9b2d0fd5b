//! Market data as the engine holds it: daily bars per symbol, checked as they are read
//! (errors name file and line), held as columns ([`series`]) shared read-only (`Arc`);
//! [`snapshot`] names what a book holds up to a day. Where bars come from is a
//! [`BarSource`]: the readers of folders live with the adapters (`alchemiser::data`).

pub mod checks;
pub mod series;
pub mod snapshot;

pub use series::BarSeries;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;
use thiserror::Error;

use crate::domain::Symbol;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DailyBar {
    pub date: NaiveDate,
    pub open: Decimal,
    pub high: Decimal,
    pub low: Decimal,
    pub close: Decimal,
    pub volume: u64,
}

impl DailyBar {
    /// A bar that traded at one price all day, volume 1 (test series, synthetic data).
    pub fn flat(date: NaiveDate, price: Decimal) -> Self {
        Self {
            date,
            open: price,
            high: price,
            low: price,
            close: price,
            volume: 1,
        }
    }
}

/// Split- and dividend-adjusted or raw prices (LEAN data; CSV folders are taken as given).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Adjustment {
    #[default]
    Raw,
    Adjusted,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DataError {
    #[error("{file}:{line}: {message}")]
    Invalid {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{file}: {message}")]
    File { file: String, message: String },
    #[error("{0}")]
    BadSymbol(String),
    #[error("no data for symbol {symbol} in {dir}")]
    UnknownSymbol { symbol: Symbol, dir: String },
    #[error(
        "{dir}: not a data folder (expected SYMBOL.csv files or a LEAN equity/usa/daily folder)"
    )]
    UnknownLayout { dir: String },
}

impl DataError {
    pub fn invalid(file: &Path, line: usize, message: impl Into<String>) -> Self {
        DataError::Invalid {
            file: file.display().to_string(),
            line,
            message: message.into(),
        }
    }

    pub fn file(file: &Path, message: impl Into<String>) -> Self {
        DataError::File {
            file: file.display().to_string(),
            message: message.into(),
        }
    }
}

/// Where daily bars come from: a folder (CSV or LEAN) today. The book asks it for the
/// series of a symbol it did not load (a position an earlier configuration bought).
pub trait BarSource: Send + Sync + std::fmt::Debug {
    /// The symbol's series (the columns the engine keeps).
    fn load(&self, symbol: &str) -> Result<BarSeries, DataError>;
    /// Every field of the symbol's bars, validated (what [`BarSeries`] does not keep: a
    /// venue double serving bars, a report of the file).
    fn read(&self, symbol: &str) -> Result<Vec<DailyBar>, DataError>;
    /// Where the bars are, as a person reads it.
    fn describe(&self) -> String;
}

/// A source with no bars (a book with no files).
#[derive(Debug)]
pub struct NoBars;

impl BarSource for NoBars {
    fn load(&self, symbol: &str) -> Result<BarSeries, DataError> {
        Ok(BarSeries::new(symbol.into(), self.read(symbol)?))
    }

    fn read(&self, symbol: &str) -> Result<Vec<DailyBar>, DataError> {
        Err(DataError::UnknownSymbol {
            symbol: symbol.into(),
            dir: self.describe(),
        })
    }

    fn describe(&self) -> String {
        "no data".to_string()
    }
}

/// Market data that a long-running engine refreshes (live bars each day) while actors
/// read it: readers take the current snapshot, the refresher swaps in a new one.
#[derive(Clone, Debug, Default)]
pub struct SharedMarket(Arc<std::sync::RwLock<Arc<MarketData>>>);

impl SharedMarket {
    pub fn new(data: MarketData) -> Self {
        Self(Arc::new(std::sync::RwLock::new(Arc::new(data))))
    }

    pub fn current(&self) -> Arc<MarketData> {
        self.0
            .read()
            .map(|d| d.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    pub fn replace(&self, data: MarketData) {
        match self.0.write() {
            Ok(mut d) => *d = Arc::new(data),
            Err(p) => *p.into_inner() = Arc::new(data),
        }
    }
}

/// Loaded series by symbol.
#[derive(Clone, Debug, Default)]
pub struct MarketData {
    pub series: BTreeMap<Symbol, Arc<BarSeries>>,
}

impl MarketData {
    /// The market of freshly loaded series, their dates shared where they can be
    /// ([`series::share_axes`]).
    pub fn sharing_dates(mut loaded: BTreeMap<Symbol, BarSeries>) -> Self {
        series::share_axes(loaded.values_mut());
        Self {
            series: loaded
                .into_iter()
                .map(|(symbol, s)| (symbol, Arc::new(s)))
                .collect(),
        }
    }

    /// Bytes the series hold (columns, and each date axis once).
    pub fn held_bytes(&self) -> usize {
        let mut axes = BTreeMap::new();
        let mut total = 0;
        for s in self.series.values() {
            let (own, (axis, bytes)) = s.held_bytes();
            total += own;
            axes.insert(axis, bytes);
        }
        total + axes.values().sum::<usize>()
    }

    /// The dates on which every series has a bar.
    pub fn common_dates(&self) -> Vec<NaiveDate> {
        let mut iter = self.series.values();
        let Some(first) = iter.next() else {
            return Vec::new();
        };
        let mut dates: Vec<NaiveDate> = first.dates().to_vec();
        for s in iter {
            dates.retain(|d| s.dates().binary_search(d).is_ok());
        }
        dates
    }

    pub fn get(&self, symbol: &str) -> Option<&Arc<BarSeries>> {
        self.series.get(symbol)
    }

    /// Close of `symbol` on the last bar dated on or before `date`.
    pub fn close_on_or_before(
        &self,
        symbol: &str,
        date: NaiveDate,
    ) -> Option<(NaiveDate, Decimal)> {
        let s = self.series.get(symbol)?;
        let last = s.count_until(date).checked_sub(1)?;
        Some((s.dates()[last], s.close(last)?))
    }
}

/// Every symbol's last close on or before one date. A backtest moves it every day and
/// asks for the closes of the few symbols it plans, trades and holds: each question is
/// one search, and moving is free (building every symbol's close each day took a tenth
/// of a 500-symbol backtest).
#[derive(Debug, Default)]
pub struct DayCloses {
    date: Option<NaiveDate>,
    /// The market's series in symbol order, taken when it is first (or another) market.
    series: Vec<(Symbol, Arc<BarSeries>)>,
}

impl DayCloses {
    /// Moves to `date` (any date) on `market`.
    pub fn move_to(&mut self, market: &MarketData, date: NaiveDate) {
        let same = self.series.len() == market.series.len()
            && self
                .series
                .iter()
                .zip(market.series.values())
                .all(|((_, a), b)| Arc::ptr_eq(a, b));
        if !same {
            self.series = market
                .series
                .iter()
                .map(|(s, series)| (s.clone(), series.clone()))
                .collect();
        }
        self.date = Some(date);
    }

    /// The close of `symbol`'s last bar on or before the date, with that bar's date.
    pub fn on_or_before(&self, symbol: &str) -> Option<(NaiveDate, Decimal)> {
        let date = self.date?;
        let i = self
            .series
            .binary_search_by(|(s, _)| s.as_str().cmp(symbol))
            .ok()?;
        let series = &self.series[i].1;
        let last = series.count_until(date).checked_sub(1)?;
        Some((series.dates()[last], series.close(last)?))
    }

    /// The close of `symbol` on the date itself (none when it has no bar that day).
    pub fn on_date(&self, symbol: &str) -> Option<Decimal> {
        self.on_or_before(symbol)
            .filter(|(d, _)| Some(*d) == self.date)
            .map(|(_, close)| close)
    }
}

/// Every symbol's open on one date, for symbols with a bar that day: what a backtest
/// that fills at the next session's open trades at.
#[derive(Debug, Default)]
pub struct DayOpens {
    date: Option<NaiveDate>,
    /// `(symbol, open)` in symbol order.
    opens: Vec<(Symbol, Decimal)>,
}

impl DayOpens {
    pub fn on(market: &MarketData, date: NaiveDate) -> Self {
        let opens = market
            .series
            .iter()
            .filter_map(|(symbol, series)| {
                let i = series.count_until(date).checked_sub(1)?;
                (series.dates()[i] == date)
                    .then(|| series.open(i))
                    .flatten()
                    .map(|open| (symbol.clone(), open))
            })
            .collect();
        Self {
            date: Some(date),
            opens,
        }
    }

    pub fn date(&self) -> Option<NaiveDate> {
        self.date
    }

    /// The open of `symbol` on the date (none when it has no bar that day).
    pub fn of(&self, symbol: &str) -> Option<Decimal> {
        self.opens
            .binary_search_by(|(s, _)| s.as_str().cmp(symbol))
            .ok()
            .map(|i| self.opens[i].1)
    }
}

/// Where validated bars go: every field (for a caller that wants them all) or the
/// columns a [`BarSeries`] keeps, filled as the file is read (a whole-bar copy of a
/// large universe first was a tenth of loading it).
pub trait BarSink {
    fn push_bar(&mut self, bar: &DailyBar);
    fn is_empty(&self) -> bool;
}

impl BarSink for Vec<DailyBar> {
    fn push_bar(&mut self, bar: &DailyBar) {
        self.push(*bar);
    }

    fn is_empty(&self) -> bool {
        Vec::is_empty(self)
    }
}

impl BarSink for BarSeries {
    fn push_bar(&mut self, bar: &DailyBar) {
        self.push(bar);
    }

    fn is_empty(&self) -> bool {
        BarSeries::is_empty(self)
    }
}

/// Collects validated bars in file order: each must be internally consistent and dated
/// after the previous one.
pub struct ValidatedBars<T> {
    last: Option<NaiveDate>,
    out: T,
}

impl<T: BarSink> ValidatedBars<T> {
    pub fn new(out: T) -> Self {
        Self { last: None, out }
    }

    pub fn push(&mut self, path: &Path, line: usize, bar: DailyBar) -> Result<(), DataError> {
        check_order(self.last, bar.date).map_err(|m| DataError::invalid(path, line, m))?;
        check_bar(&bar).map_err(|m| DataError::invalid(path, line, m))?;
        self.last = Some(bar.date);
        self.out.push_bar(&bar);
        Ok(())
    }

    /// The bars, or an error naming `first_data_line` when there are none.
    pub fn finish(self, path: &Path, first_data_line: usize) -> Result<T, DataError> {
        if self.out.is_empty() {
            return Err(DataError::invalid(path, first_data_line, "no bars"));
        }
        Ok(self.out)
    }
}

/// Checks one bar's internal consistency.
pub fn check_bar(bar: &DailyBar) -> Result<(), String> {
    for (name, p) in [
        ("open", bar.open),
        ("high", bar.high),
        ("low", bar.low),
        ("close", bar.close),
    ] {
        if p <= Decimal::ZERO {
            return Err(format!("non-positive {name} price {p}"));
        }
    }
    if bar.high < bar.low {
        return Err(format!("high {} is below low {}", bar.high, bar.low));
    }
    if bar.close < bar.low || bar.close > bar.high {
        return Err(format!(
            "close {} is outside [low {}, high {}]",
            bar.close, bar.low, bar.high
        ));
    }
    Ok(())
}

/// Checks dates strictly increase.
pub fn check_order(prev: Option<NaiveDate>, date: NaiveDate) -> Result<(), String> {
    match prev {
        Some(p) if p == date => Err(format!("duplicate date {date}")),
        Some(p) if p > date => Err(format!("date {date} comes after {p}: bars are not sorted")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Days;

    fn series(symbol: &str, days: &[u64]) -> (Symbol, Arc<BarSeries>) {
        let start = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
        let bars = days
            .iter()
            .map(|d| DailyBar::flat(start + Days::new(*d), Decimal::from(100 + *d)))
            .collect();
        (symbol.into(), Arc::new(BarSeries::new(symbol.into(), bars)))
    }

    /// Walking forward (with gaps, before a series starts, after it ends) and stepping
    /// back, the day's closes are what a search per question finds.
    #[test]
    fn day_closes_match_a_search_on_every_date() {
        let market = MarketData {
            series: [
                series("AAA", &[0, 1, 2, 5, 6, 7, 20]),
                series("BBB", &[3, 4, 9]),
                series("CCC", &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
            ]
            .into_iter()
            .collect(),
        };
        let start = NaiveDate::from_ymd_opt(2019, 12, 30).unwrap();
        let walk: Vec<NaiveDate> = (0..25)
            .chain([4, 4, 12, 0, 30])
            .map(|d| start + Days::new(d))
            .collect();
        let mut closes = DayCloses::default();
        for date in walk {
            closes.move_to(&market, date);
            for symbol in ["AAA", "BBB", "CCC", "ZZZ"] {
                let searched = market.close_on_or_before(symbol, date);
                assert_eq!(closes.on_or_before(symbol), searched, "{symbol} {date}");
                let on_date = searched.filter(|(d, _)| *d == date).map(|(_, c)| c);
                assert_eq!(closes.on_date(symbol), on_date, "{symbol} {date}");
            }
        }
    }
}
