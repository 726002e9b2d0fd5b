//! Plain CSV folder: one `SYMBOL.csv` per symbol, header
//! `date,open,high,low,close,volume`, ISO dates, decimal prices.

use std::path::Path;
use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::{BarSeries, BarSink, DailyBar, DataError, ValidatedBars};

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

/// Every field of `symbol`'s bars.
pub fn read(dir: &Path, symbol: &str) -> Result<Vec<DailyBar>, DataError> {
    let (text, path) = text_of(dir, symbol)?;
    parse(&text, &path)
}

/// `symbol`'s series, its columns filled line by line.
pub fn load(dir: &Path, symbol: &str) -> Result<BarSeries, DataError> {
    let (text, path) = text_of(dir, symbol)?;
    // About 45 bytes a line: room for every bar without growing.
    let series = BarSeries::with_capacity(symbol.into(), text.len() / 40 + 1);
    parse_into(&text, &path, series)
}

fn text_of(dir: &Path, symbol: &str) -> Result<(String, std::path::PathBuf), DataError> {
    let path = dir.join(format!("{symbol}.csv"));
    if !path.exists() {
        return Err(DataError::UnknownSymbol {
            symbol: symbol.into(),
            dir: dir.display().to_string(),
        });
    }
    let text = std::fs::read_to_string(&path).map_err(|e| DataError::file(&path, e.to_string()))?;
    Ok((text, path))
}

/// `YYYY-MM-DD` read digit by digit (chrono's format parser was a tenth of loading a
/// large universe); any other text goes to chrono, which decides as it always did.
fn iso_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    let number = |from: usize, to: usize| {
        b[from..to].iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
        if let (Some(y), Some(m), Some(d)) = (number(0, 4), number(5, 7), number(8, 10)) {
            return NaiveDate::from_ymd_opt(y as i32, m, d);
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

pub fn parse(text: &str, path: &Path) -> Result<Vec<DailyBar>, DataError> {
    parse_into(text, path, Vec::new())
}

fn parse_into<T: BarSink>(text: &str, path: &Path, out: T) -> Result<T, DataError> {
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
    let mut bars = ValidatedBars::new(out);
    for (i, line) in lines {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut fields = [""; 6];
        let mut found = 0;
        for field in line.split(',') {
            if let Some(slot) = fields.get_mut(found) {
                *slot = field.trim();
            }
            found += 1;
        }
        if found != 6 {
            return Err(DataError::invalid(
                path,
                line_no,
                format!("expected 6 fields, found {found}"),
            ));
        }
        let date = iso_date(fields[0]).ok_or_else(|| {
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
    use chrono::Datelike;
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

    /// The digit-by-digit reading decides every text as chrono's parser does.
    #[test]
    fn iso_dates_read_as_chrono_reads_them() {
        let mut texts: Vec<String> = [
            "2024-02-29",
            "2023-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-01-32",
            "0000-01-01",
            "9999-12-31",
            "2024-1-05",
            "2024-01-5",
            "+2024-01-05",
            "2024/01/05",
            "20240105",
            "2024-01-0x",
            "２０２４-01-05",
            "",
            "2024-01-05 ",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut day = NaiveDate::from_ymd_opt(1990, 1, 1).unwrap();
        while day.year() < 2031 {
            texts.push(day.to_string());
            day = day.succ_opt().unwrap();
        }
        for text in &texts {
            assert_eq!(
                iso_date(text),
                NaiveDate::parse_from_str(text, "%Y-%m-%d").ok(),
                "{text:?}"
            );
        }
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
