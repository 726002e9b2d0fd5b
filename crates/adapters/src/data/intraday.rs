//! LEAN minute bars for one day: trades (`minute/SYMBOL/YYYYMMDD_trade.zip`:
//! `ms_since_midnight,open,high,low,close,volume`) and quotes (`YYYYMMDD_quote.zip`:
//! `ms,bid_open,bid_high,bid_low,bid_close,bid_size,ask_open,ask_high,ask_low,ask_close,
//! ask_size`), times in New York exchange time, prices ×10000.

use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, NaiveTime};
use rust_decimal::Decimal;

use crate::market::{DailyBar, DataError};

/// One minute of trades; `start` is when the minute begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MinuteTrade {
    pub start: NaiveTime,
    pub open: Decimal,
    pub high: Decimal,
    pub low: Decimal,
    pub close: Decimal,
    pub volume: u64,
}

/// One minute of quotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MinuteQuote {
    pub start: NaiveTime,
    pub bid_low: Decimal,
    pub bid_high: Decimal,
    pub bid_close: Decimal,
    pub ask_low: Decimal,
    pub ask_high: Decimal,
    pub ask_close: Decimal,
}

impl MinuteQuote {
    pub fn mid(&self) -> Decimal {
        (self.bid_close + self.ask_close) / Decimal::TWO
    }
}

fn file(root: &Path, symbol: &str, date: NaiveDate, kind: &str) -> PathBuf {
    root.join("equity/usa/minute")
        .join(symbol.to_lowercase())
        .join(format!("{}_{kind}.zip", date.format("%Y%m%d")))
}

/// The CSV text inside a LEAN minute zip, and a name for errors.
fn read_zip(path: &Path, symbol: &str, date: NaiveDate) -> Result<(String, PathBuf), DataError> {
    if !path.exists() {
        return Err(DataError::file(
            path,
            format!("no minute data for {symbol} on {date}"),
        ));
    }
    let f = std::fs::File::open(path).map_err(|e| DataError::file(path, e.to_string()))?;
    let mut archive = zip::ZipArchive::new(f).map_err(|e| DataError::file(path, e.to_string()))?;
    let mut entry = archive
        .by_index(0)
        .map_err(|e| DataError::file(path, e.to_string()))?;
    let name = path.join(entry.name());
    let mut text = String::new();
    entry
        .read_to_string(&mut text)
        .map_err(|e| DataError::file(&name, e.to_string()))?;
    Ok((text, name))
}

fn fields<'a>(
    line: &'a str,
    n: usize,
    path: &Path,
    line_no: usize,
) -> Result<Vec<&'a str>, DataError> {
    let f: Vec<&str> = line.split(',').map(str::trim).collect();
    if f.len() < n {
        return Err(DataError::invalid(
            path,
            line_no,
            format!("expected {n} fields, found {}", f.len()),
        ));
    }
    Ok(f)
}

fn minute(s: &str, path: &Path, line_no: usize) -> Result<NaiveTime, DataError> {
    let ms: u32 = s.parse().map_err(|_| {
        DataError::invalid(
            path,
            line_no,
            format!("time `{s}` is not milliseconds since midnight"),
        )
    })?;
    NaiveTime::from_num_seconds_from_midnight_opt(ms / 1000, 0)
        .ok_or_else(|| DataError::invalid(path, line_no, format!("time {ms} ms is past midnight")))
}

fn price(s: &str, name: &str, path: &Path, line_no: usize) -> Result<Decimal, DataError> {
    s.parse::<i64>().map(|v| Decimal::new(v, 4)).map_err(|_| {
        DataError::invalid(
            path,
            line_no,
            format!("{name} `{s}` is not an integer price (×10000)"),
        )
    })
}

pub fn read_trades(
    root: &Path,
    symbol: &str,
    date: NaiveDate,
) -> Result<Vec<MinuteTrade>, DataError> {
    let (text, path) = read_zip(&file(root, symbol, date, "trade"), symbol, date)?;
    let mut out: Vec<MinuteTrade> = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let n = i + 1;
        let f = fields(line, 6, &path, n)?;
        let bar = MinuteTrade {
            start: minute(f[0], &path, n)?,
            open: price(f[1], "open", &path, n)?,
            high: price(f[2], "high", &path, n)?,
            low: price(f[3], "low", &path, n)?,
            close: price(f[4], "close", &path, n)?,
            volume: f[5].parse().map_err(|_| {
                DataError::invalid(&path, n, format!("volume `{}` is not a whole number", f[5]))
            })?,
        };
        if out.last().is_some_and(|p| p.start >= bar.start) {
            return Err(DataError::invalid(
                &path,
                n,
                format!("minute {} is not after the previous one", bar.start),
            ));
        }
        out.push(bar);
    }
    Ok(out)
}

pub fn read_quotes(
    root: &Path,
    symbol: &str,
    date: NaiveDate,
) -> Result<Vec<MinuteQuote>, DataError> {
    let (text, path) = read_zip(&file(root, symbol, date, "quote"), symbol, date)?;
    let mut out: Vec<MinuteQuote> = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let n = i + 1;
        let f = fields(line, 11, &path, n)?;
        let q = MinuteQuote {
            start: minute(f[0], &path, n)?,
            bid_high: price(f[2], "bid_high", &path, n)?,
            bid_low: price(f[3], "bid_low", &path, n)?,
            bid_close: price(f[4], "bid_close", &path, n)?,
            ask_high: price(f[7], "ask_high", &path, n)?,
            ask_low: price(f[8], "ask_low", &path, n)?,
            ask_close: price(f[9], "ask_close", &path, n)?,
        };
        if out.last().is_some_and(|p| p.start >= q.start) {
            return Err(DataError::invalid(
                &path,
                n,
                format!("minute {} is not after the previous one", q.start),
            ));
        }
        out.push(q);
    }
    Ok(out)
}

/// The regular-session bar so far: minutes starting at or after `open` and before
/// `cutoff`, aggregated (first open, highest high, lowest low, last close, summed volume).
pub fn bar_until(
    trades: &[MinuteTrade],
    date: NaiveDate,
    open: NaiveTime,
    cutoff: NaiveTime,
) -> Option<DailyBar> {
    let mut minutes = trades
        .iter()
        .filter(|t| t.start >= open && t.start < cutoff);
    let first = minutes.next()?;
    let mut bar = DailyBar {
        date,
        open: first.open,
        high: first.high,
        low: first.low,
        close: first.close,
        volume: first.volume,
    };
    for t in minutes {
        bar.high = bar.high.max(t.high);
        bar.low = bar.low.min(t.low);
        bar.close = t.close;
        bar.volume += t.volume;
    }
    Some(bar)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn t(h: u32, m: u32, close: Decimal) -> MinuteTrade {
        MinuteTrade {
            start: NaiveTime::from_hms_opt(h, m, 0).unwrap(),
            open: close,
            high: close + dec!(1),
            low: close - dec!(1),
            close,
            volume: 10,
        }
    }

    #[test]
    fn the_partial_bar_covers_the_session_up_to_the_cutoff() {
        let d = NaiveDate::from_ymd_opt(2013, 10, 7).unwrap();
        let trades = [
            t(4, 0, dec!(1)),
            t(9, 30, dec!(10)),
            t(12, 0, dec!(20)),
            t(15, 44, dec!(15)),
            t(15, 45, dec!(99)),
        ];
        let bar = bar_until(
            &trades,
            d,
            NaiveTime::from_hms_opt(9, 30, 0).unwrap(),
            NaiveTime::from_hms_opt(15, 45, 0).unwrap(),
        )
        .unwrap();
        assert_eq!(
            (bar.open, bar.high, bar.low, bar.close, bar.volume),
            (dec!(10), dec!(21), dec!(9), dec!(15), 30)
        );
    }
}
