//! Plain CSV folder: one `SYMBOL.csv` per symbol, header
//! `date,open,high,low,close,volume`, ISO dates, decimal prices.

use std::path::Path;
use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::{DailyBar, DataError, ValidatedBars};

pub const HEADER: &str = "date,open,high,low,close,volume";

/// True when `dir` holds at least one `*.csv` file with the expected header.
pub fn looks_like(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let p = e.path();
        p.extension().is_some_and(|x| x == "csv")
            && std::fs::read_to_string(&p)
                .ok()
                .and_then(|t| t.lines().next().map(|l| l.trim() == HEADER))
                .unwrap_or(false)
    })
}

pub fn read(dir: &Path, symbol: &str) -> Result<Vec<DailyBar>, DataError> {
    let path = dir.join(format!("{symbol}.csv"));
    if !path.exists() {
        return Err(DataError::UnknownSymbol {
            symbol: symbol.into(),
            dir: dir.display().to_string(),
        });
    }
    let text = std::fs::read_to_string(&path).map_err(|e| DataError::file(&path, e.to_string()))?;
    parse(&text, &path)
}

pub fn parse(text: &str, path: &Path) -> Result<Vec<DailyBar>, DataError> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, h)) if h.trim() == HEADER => {}
        Some((_, h)) => {
            return Err(DataError::invalid(
                path,
                1,
                format!("header is `{}`, expected `{HEADER}`", h.trim()),
            ))
        }
        None => return Err(DataError::invalid(path, 1, "empty file")),
    }
    let mut bars = ValidatedBars::default();
    for (i, line) in lines {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != 6 {
            return Err(DataError::invalid(
                path,
                line_no,
                format!("expected 6 fields, found {}", fields.len()),
            ));
        }
        let date = NaiveDate::parse_from_str(fields[0], "%Y-%m-%d").map_err(|_| {
            DataError::invalid(
                path,
                line_no,
                format!("date `{}` is not YYYY-MM-DD", fields[0]),
            )
        })?;
        let price = |k: usize, name: &str| -> Result<Decimal, DataError> {
            if fields[k].is_empty() {
                return Err(DataError::invalid(path, line_no, format!("missing {name}")));
            }
            Decimal::from_str(fields[k]).map_err(|_| {
                DataError::invalid(
                    path,
                    line_no,
                    format!("{name} `{}` is not a number", fields[k]),
                )
            })
        };
        let volume = fields[5]
            .parse::<u64>()
            .or_else(|_| {
                Decimal::from_str(fields[5]).map_err(|_| ()).and_then(|d| {
                    use rust_decimal::prelude::ToPrimitive;
                    d.trunc().to_u64().ok_or(())
                })
            })
            .map_err(|_| {
                DataError::invalid(
                    path,
                    line_no,
                    format!("volume `{}` is not a whole number", fields[5]),
                )
            })?;
        let bar = DailyBar {
            date,
            open: price(1, "open")?,
            high: price(2, "high")?,
            low: price(3, "low")?,
            close: price(4, "close")?,
            volume,
        };
        bars.push(path, line_no, bar)?;
    }
    bars.finish(path, 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn p() -> PathBuf {
        PathBuf::from("X.csv")
    }

    fn err(text: &str) -> String {
        parse(text, &p()).unwrap_err().to_string()
    }

    #[test]
    fn parses_decimals_exactly() {
        let bars = parse(
            &format!("{HEADER}\n2024-01-02,1.10,1.30,1.00,1.20,100\n"),
            &p(),
        )
        .unwrap();
        assert_eq!(bars[0].close.to_string(), "1.20");
        assert_eq!(bars[0].volume, 100);
    }

    #[test]
    fn every_defect_names_file_and_line() {
        let h = HEADER;
        assert_eq!(
            err("date,close\n"),
            "X.csv:1: header is `date,close`, expected `date,open,high,low,close,volume`"
        );
        assert_eq!(
            err(&format!(
                "{h}\n2024-01-03,1,1,1,1,1\n2024-01-02,1,1,1,1,1\n"
            )),
            "X.csv:3: date 2024-01-02 comes after 2024-01-03: bars are not sorted"
        );
        assert_eq!(
            err(&format!(
                "{h}\n2024-01-03,1,1,1,1,1\n2024-01-03,1,1,1,1,1\n"
            )),
            "X.csv:3: duplicate date 2024-01-03"
        );
        assert_eq!(
            err(&format!("{h}\n2024-01-03,1,1,1,,1\n")),
            "X.csv:2: missing close"
        );
        assert_eq!(
            err(&format!("{h}\n2024-01-03,1,1,1,abc,1\n")),
            "X.csv:2: close `abc` is not a number"
        );
        assert_eq!(
            err(&format!("{h}\n2024-01-03,1,1,1\n")),
            "X.csv:2: expected 6 fields, found 4"
        );
        assert_eq!(
            err(&format!("{h}\n2024-01-03,1,1,0,1,1\n")),
            "X.csv:2: non-positive low price 0"
        );
        assert_eq!(
            err(&format!("{h}\n2024-01-03,1,1,2,1,1\n")),
            "X.csv:2: high 1 is below low 2"
        );
        assert_eq!(
            err(&format!("{h}\n2024-01-03,1,2,1,3,1\n")),
            "X.csv:2: close 3 is outside [low 1, high 2]"
        );
        assert_eq!(
            err(&format!("{h}\n01/03/2024,1,2,1,1,1\n")),
            "X.csv:2: date `01/03/2024` is not YYYY-MM-DD"
        );
    }

    #[test]
    fn holiday_gaps_are_fine() {
        let bars = parse(
            &format!("{HEADER}\n2024-12-24,1,1,1,1,1\n2024-12-26,1,1,1,1,1\n"),
            &p(),
        )
        .unwrap();
        assert_eq!(bars.len(), 2);
    }
}
