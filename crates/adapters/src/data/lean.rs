//! LEAN (QuantConnect) on-disk daily bars: `equity/usa/daily/SYMBOL.zip` holding one
//! CSV of `YYYYMMDD 00:00,open,high,low,close,volume` with prices in 1/10000 dollar
//! (a plain `SYMBOL.csv` beside it is read too). For adjusted prices, raw prices are
//! multiplied by `price_factor × split_factor` from `factor_files/SYMBOL.csv`, the row
//! in force being the first whose date is on or after the bar's date.

use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use rust_decimal::{Decimal, RoundingStrategy};

use crate::market::{check_order, Adjustment, DailyBar, DataError, ValidatedBars};

/// Decimal places of adjusted prices.
const ADJUSTED_DP: u32 = 6;

/// The LEAN data root for `dir`: `dir` itself when it holds `equity/usa/daily`, or the
/// root above `dir` when `dir` is such a daily folder.
pub fn root_of(dir: &Path) -> Option<PathBuf> {
    if dir.join("equity/usa/daily").is_dir() {
        return Some(dir.to_path_buf());
    }
    let canonical = dir.canonicalize().ok()?;
    if canonical.ends_with("equity/usa/daily") {
        return canonical
            .parent()?
            .parent()?
            .parent()
            .map(Path::to_path_buf);
    }
    None
}

fn daily_dir(root: &Path) -> PathBuf {
    root.join("equity/usa/daily")
}

/// Reads the CSV text of a symbol's daily file and a name for error messages.
fn daily_text(root: &Path, symbol: &str) -> Result<(String, PathBuf), DataError> {
    let lower = symbol.to_lowercase();
    let zip_path = daily_dir(root).join(format!("{lower}.zip"));
    let csv_path = daily_dir(root).join(format!("{lower}.csv"));
    if zip_path.exists() {
        let file = std::fs::File::open(&zip_path)
            .map_err(|e| DataError::file(&zip_path, e.to_string()))?;
        let mut archive =
            zip::ZipArchive::new(file).map_err(|e| DataError::file(&zip_path, e.to_string()))?;
        if archive.is_empty() {
            return Err(DataError::file(&zip_path, "empty archive"));
        }
        let mut entry = archive
            .by_index(0)
            .map_err(|e| DataError::file(&zip_path, e.to_string()))?;
        let name = zip_path.join(entry.name());
        let mut text = String::new();
        entry
            .read_to_string(&mut text)
            .map_err(|e| DataError::file(&name, e.to_string()))?;
        Ok((text, name))
    } else if csv_path.exists() {
        let text = std::fs::read_to_string(&csv_path)
            .map_err(|e| DataError::file(&csv_path, e.to_string()))?;
        Ok((text, csv_path))
    } else {
        Err(DataError::UnknownSymbol {
            symbol: symbol.into(),
            dir: daily_dir(root).display().to_string(),
        })
    }
}

fn parse_yyyymmdd(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.get(..8)?, "%Y%m%d").ok()
}

/// Parses LEAN daily CSV text (prices ×10000).
pub fn parse_daily(text: &str, path: &Path) -> Result<Vec<DailyBar>, DataError> {
    let mut bars = ValidatedBars::new(Vec::new());
    for (i, line) in crate::readable::without_bom(text).lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() < 6 {
            return Err(DataError::invalid(
                path,
                line_no,
                format!("expected 6 fields, found {}", fields.len()),
            ));
        }
        let date = parse_yyyymmdd(fields[0].trim()).ok_or_else(|| {
            DataError::invalid(
                path,
                line_no,
                format!("date `{}` is not YYYYMMDD", fields[0]),
            )
        })?;
        let scaled = |k: usize, name: &str| -> Result<Decimal, DataError> {
            let f = fields[k].trim();
            if f.is_empty() {
                return Err(DataError::invalid(path, line_no, format!("missing {name}")));
            }
            f.parse::<i64>().map(|v| Decimal::new(v, 4)).map_err(|_| {
                DataError::invalid(
                    path,
                    line_no,
                    format!("{name} `{f}` is not an integer price (×10000)"),
                )
            })
        };
        let volume = fields[5].trim().parse::<u64>().map_err(|_| {
            DataError::invalid(
                path,
                line_no,
                format!("volume `{}` is not a whole number", fields[5].trim()),
            )
        })?;
        let bar = DailyBar {
            date,
            open: scaled(1, "open")?,
            high: scaled(2, "high")?,
            low: scaled(3, "low")?,
            close: scaled(4, "close")?,
            volume,
        };
        bars.push(path, line_no, bar)?;
    }
    bars.finish(path, 1)
}

/// Factor rows `(date, price_factor × split_factor)`, sorted by date.
pub fn parse_factors(text: &str, path: &Path) -> Result<Vec<(NaiveDate, Decimal)>, DataError> {
    let mut rows: Vec<(NaiveDate, Decimal)> = Vec::new();
    for (i, line) in crate::readable::without_bom(text).lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() < 3 {
            return Err(DataError::invalid(
                path,
                line_no,
                format!("expected 4 fields, found {}", fields.len()),
            ));
        }
        let date = parse_yyyymmdd(fields[0]).ok_or_else(|| {
            DataError::invalid(
                path,
                line_no,
                format!("date `{}` is not YYYYMMDD", fields[0]),
            )
        })?;
        let num = |k: usize, name: &str| -> Result<Decimal, DataError> {
            Decimal::from_str_exact(fields[k])
                .or_else(|_| Decimal::from_scientific(fields[k]))
                .map_err(|_| {
                    DataError::invalid(
                        path,
                        line_no,
                        format!("{name} {}", crate::readable::not_a_decimal(fields[k])),
                    )
                })
        };
        let factor = num(1, "price_factor")? * num(2, "split_factor")?;
        if factor <= Decimal::ZERO {
            return Err(DataError::invalid(
                path,
                line_no,
                format!("non-positive factor {factor}"),
            ));
        }
        if let Some((prev, _)) = rows.last() {
            check_order(Some(*prev), date).map_err(|m| DataError::invalid(path, line_no, m))?;
        }
        rows.push((date, factor));
    }
    Ok(rows)
}

/// Applies factors: each bar is multiplied by the factor of the first row dated on or
/// after it (1 when no such row), rounded to 6 decimals.
pub fn adjust(bars: &mut [DailyBar], factors: &[(NaiveDate, Decimal)]) {
    let mut k = 0;
    for bar in bars.iter_mut() {
        while k < factors.len() && factors[k].0 < bar.date {
            k += 1;
        }
        let f = factors.get(k).map_or(Decimal::ONE, |r| r.1);
        let scale = |p: Decimal| {
            (p * f).round_dp_with_strategy(ADJUSTED_DP, RoundingStrategy::MidpointNearestEven)
        };
        bar.open = scale(bar.open);
        bar.high = scale(bar.high);
        bar.low = scale(bar.low);
        bar.close = scale(bar.close);
    }
}

pub fn read_daily(
    root: &Path,
    symbol: &str,
    adjustment: Adjustment,
) -> Result<Vec<DailyBar>, DataError> {
    let (text, name) = daily_text(root, symbol)?;
    let mut bars = parse_daily(&text, &name)?;
    if adjustment == Adjustment::Adjusted {
        let path = root.join(format!(
            "equity/usa/factor_files/{}.csv",
            symbol.to_lowercase()
        ));
        let text = std::fs::read_to_string(&path).map_err(|e| {
            DataError::file(
                &path,
                format!("factor file needed for adjusted prices: {e}"),
            )
        })?;
        let factors = parse_factors(&text, &path)?;
        adjust(&mut bars, &factors);
    }
    Ok(bars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn prices_are_scaled_by_ten_thousand() {
        let bars = parse_daily(
            "19980102 00:00,973100,975300,965300,973600,2150000\n",
            Path::new("spy.csv"),
        )
        .unwrap();
        assert_eq!(bars[0].close, dec!(97.36));
        assert_eq!(bars[0].date, NaiveDate::from_ymd_opt(1998, 1, 2).unwrap());
    }

    #[test]
    fn factor_in_force_is_the_first_row_on_or_after_the_bar() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        let bar = |date| DailyBar {
            date,
            open: dec!(100),
            high: dec!(100),
            low: dec!(100),
            close: dec!(100),
            volume: 1,
        };
        let mut bars = vec![
            bar(d(2020, 1, 2)),
            bar(d(2020, 3, 1)),
            bar(d(2020, 3, 2)),
            bar(d(2021, 1, 4)),
        ];
        let factors = vec![(d(2020, 3, 1), dec!(0.5)), (d(2020, 6, 1), dec!(0.9))];
        adjust(&mut bars, &factors);
        let closes: Vec<Decimal> = bars.iter().map(|b| b.close).collect();
        assert_eq!(closes, vec![dec!(50), dec!(50), dec!(90), dec!(100)]);
    }

    #[test]
    fn bad_rows_name_the_line() {
        let err = parse_daily(
            "19980102 00:00,1,1,1,1,1\n19980105 00:00,1,x,1,1,1\n",
            Path::new("spy.zip/spy.csv"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "spy.zip/spy.csv:2: high `x` is not an integer price (×10000)"
        );
    }
}
