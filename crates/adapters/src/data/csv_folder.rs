//! Plain CSV folder: one `SYMBOL.csv` per symbol, header
//! `date,open,high,low,close,volume`, ISO dates, decimal prices.

use std::path::Path;
use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::market::{BarSeries, BarSink, DailyBar, DataError, ValidatedBars};

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
                .and_then(|t| {
                    crate::readable::without_bom(&t)
                        .lines()
                        .next()
                        .map(|l| l.trim() == HEADER)
                })
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
    // Room for every line (the header's included): the columns never grow, nor waste.
    let lines = text.bytes().filter(|b| *b == b'\n').count() + 1;
    let series = BarSeries::with_capacity(symbol.into(), lines);
    parse_into(&text, &path, series)
}

/// `SYMBOL.csv`, or `symbol.csv` as some exports name it.
fn text_of(dir: &Path, symbol: &str) -> Result<(String, std::path::PathBuf), DataError> {
    let named = dir.join(format!("{symbol}.csv"));
    let lower = dir.join(format!("{}.csv", symbol.to_lowercase()));
    let Some(path) = [named, lower].into_iter().find(|p| p.exists()) else {
        return Err(DataError::UnknownSymbol {
            symbol: symbol.into(),
            dir: dir.display().to_string(),
        });
    };
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

/// The fields of a line between commas, as `str::split(',')` gives them (its searcher
/// was a twentieth of loading a large universe; fields here are a few bytes).
fn split_commas(line: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(line);
    std::iter::from_fn(move || {
        let text = rest?;
        match text.bytes().position(|b| b == b',') {
            Some(i) => {
                rest = Some(&text[i + 1..]);
                Some(&text[..i])
            }
            None => {
                rest = None;
                Some(text)
            }
        }
    })
}

/// `digits[.digits]` of up to 18 digits, as `Decimal::from_str` reads it (the same
/// mantissa and scale), without its general parser; `None` for any other text, which
/// goes to that parser.
fn plain_decimal(text: &str) -> Option<Decimal> {
    let bytes = text.as_bytes();
    let (mut mantissa, mut digits, mut point) = (0i64, 0, None);
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b'0'..=b'9' if digits < 18 => {
                mantissa = mantissa * 10 + i64::from(b - b'0');
                digits += 1;
            }
            b'.' if point.is_none() && i > 0 => point = Some(i),
            _ => return None,
        }
    }
    let scale = match point {
        None if digits > 0 => 0,
        Some(p) if p + 1 < bytes.len() => bytes.len() - p - 1,
        _ => return None,
    };
    Some(Decimal::new(mantissa, scale as u32))
}

/// `str::trim`, answered at once when both ends are visible ASCII (every field of a
/// well-formed file).
fn trimmed(s: &str) -> &str {
    match (s.as_bytes().first(), s.as_bytes().last()) {
        (Some(a), Some(z)) if a.is_ascii_graphic() && z.is_ascii_graphic() => s,
        _ => s.trim(),
    }
}

pub fn parse(text: &str, path: &Path) -> Result<Vec<DailyBar>, DataError> {
    parse_into(text, path, Vec::new())
}

fn parse_into<T: BarSink>(text: &str, path: &Path, out: T) -> Result<T, DataError> {
    let mut lines = crate::readable::without_bom(text).lines().enumerate();
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
        let line = trimmed(line);
        if line.is_empty() {
            continue;
        }
        let mut fields = [""; 6];
        let mut found = 0;
        for field in split_commas(line) {
            if let Some(slot) = fields.get_mut(found) {
                *slot = trimmed(field);
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
            plain_decimal(fields[k])
                .map_or_else(|| Decimal::from_str(fields[k]), Ok)
                .map_err(|_| {
                    DataError::invalid(
                        path,
                        line_no,
                        format!("{name} {}", crate::readable::not_a_decimal(fields[k])),
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

    /// The plain reading gives `Decimal::from_str`'s mantissa and scale wherever it
    /// answers, and the comma split gives `split(',')`'s fields.
    #[test]
    fn plain_decimals_and_fields_read_as_the_general_parsers() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        let alphabet = b"0123456789.,-+_e ";
        let mut served = 0;
        for i in 0..200_000 {
            let len = rng.random_range(0..22);
            let text: String = (0..len)
                .map(|_| {
                    let pool = if i % 2 == 0 {
                        &alphabet[..11]
                    } else {
                        &alphabet[..]
                    };
                    pool[rng.random_range(0..pool.len())] as char
                })
                .collect();
            if let Some(fast) = plain_decimal(&text) {
                served += 1;
                let general = Decimal::from_str(&text).unwrap();
                assert_eq!(
                    (fast.mantissa(), fast.scale()),
                    (general.mantissa(), general.scale()),
                    "{text:?}"
                );
            }
            let ours: Vec<&str> = split_commas(&text).collect();
            let std: Vec<&str> = text.split(',').collect();
            assert_eq!(ours, std, "{text:?}");
            assert_eq!(trimmed(&text), text.trim(), "{text:?}");
        }
        assert!(served > 20_000, "served {served}");
        for text in ["\u{a0}1.5 ", "\t1.5", "1.5\u{3000}"] {
            assert_eq!(trimmed(text), text.trim(), "{text:?}");
        }
        for text in ["123.4500", "0.0001", "000123", "999999999999999999", "1.5"] {
            let fast = plain_decimal(text).unwrap();
            assert_eq!(
                fast.to_string(),
                Decimal::from_str(text).unwrap().to_string()
            );
        }
        for text in [
            "1.",
            ".5",
            "",
            "1.2.3",
            "1e5",
            "-1.5",
            "+1",
            "1_000",
            "1234567890123456789",
        ] {
            assert_eq!(plain_decimal(text), None, "{text:?}");
        }
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
