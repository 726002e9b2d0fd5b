//! One symbol's daily bars as a Parquet file, readable by any Parquet reader (pandas,
//! DuckDB, Polars): `date` (DATE), `open`/`high`/`low`/`close` (DECIMAL(18, s), one scale
//! per file: the prices' own, or the most decimal places any needs) and `volume` (INT64), one
//! row group, delta-encoded and uncompressed (a 20-year file is ~40 kB; decoding is
//! what loading costs, and compression would add to it). Where the bars came from is in
//! the file's key-value metadata, so a file explains itself without the manifest.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{Datelike, NaiveDate};
use parquet::basic::{Compression, Encoding};
use parquet::column::reader::ColumnReader;
use parquet::data_type::{Int32Type, Int64Type};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::reader::FileReader;
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use rust_decimal::Decimal;

use crate::domain::Symbol;
use crate::market::{BarSeries, DailyBar};

/// The most decimal places a stored price keeps (Alpaca's adjusted prices have 4).
pub const MAX_SCALE: u32 = 10;
/// DECIMAL(18, s) in an INT64: mantissas below 10^18.
const MAX_MANTISSA: i128 = 999_999_999_999_999_999;
/// Days from 0001-01-01 (chrono's day 1) to 1970-01-01 (Parquet's DATE day 0).
const EPOCH_FROM_CE: i32 = 719_163;
const COLUMNS: [&str; 6] = ["date", "open", "high", "low", "close", "volume"];

/// Where a symbol's bars came from, kept in its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provenance {
    /// `alpaca (iex)`, or `import from DIR`.
    pub source: String,
    /// `raw` or `adjusted`.
    pub adjustment: String,
    /// When the bars were written (RFC 3339, UTC).
    pub written_at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ColumnsError {
    #[error("{file}: {message}")]
    Unreadable { file: String, message: String },
    #[error("{symbol} {date}: price {price} has more than {MAX_SCALE} decimal places or 18 digits, which the store does not keep")]
    Unstorable {
        symbol: String,
        date: NaiveDate,
        price: Decimal,
    },
}

impl ColumnsError {
    /// As the data readers' error, the file named once.
    pub fn into_data_error(self, file: &Path) -> crate::market::DataError {
        match self {
            ColumnsError::Unreadable { file, message } => {
                crate::market::DataError::File { file, message }
            }
            other => crate::market::DataError::file(file, other.to_string()),
        }
    }
}

fn unreadable(file: &Path, message: impl ToString) -> ColumnsError {
    ColumnsError::Unreadable {
        file: file.display().to_string(),
        message: message.to_string(),
    }
}

/// The file's bytes for `bars` (ascending, validated by the caller).
pub fn encode(
    symbol: &str,
    bars: &[DailyBar],
    provenance: &Provenance,
) -> Result<Vec<u8>, ColumnsError> {
    // The prices' own scale when they share one (a file's "392.8400" stays as written, so
    // the events of a run on the store are those of one on the folder it came from);
    // else the most places any needs.
    let prices_of = || bars.iter().flat_map(|b| [b.open, b.high, b.low, b.close]);
    let written = prices_of().map(|p| p.scale()).max().unwrap_or(0);
    let scale = if written <= MAX_SCALE {
        written
    } else {
        prices_of()
            .map(|p| p.normalize().scale())
            .max()
            .unwrap_or(0)
    };
    let mantissas = |pick: fn(&DailyBar) -> Decimal| -> Result<Vec<i64>, ColumnsError> {
        bars.iter()
            .map(|b| {
                let price = pick(b);
                let mut scaled = price.normalize();
                scaled.rescale(scale);
                let m = scaled.mantissa();
                if scale > MAX_SCALE || scaled.scale() != scale || m.abs() > MAX_MANTISSA {
                    return Err(ColumnsError::Unstorable {
                        symbol: symbol.into(),
                        date: b.date,
                        price,
                    });
                }
                Ok(m as i64)
            })
            .collect()
    };
    let prices = [
        mantissas(|b| b.open)?,
        mantissas(|b| b.high)?,
        mantissas(|b| b.low)?,
        mantissas(|b| b.close)?,
    ];
    let dates: Vec<i32> = bars
        .iter()
        .map(|b| b.date.num_days_from_ce() - EPOCH_FROM_CE)
        .collect();
    let volumes: Vec<i64> = bars
        .iter()
        .map(|b| i64::try_from(b.volume).unwrap_or(i64::MAX))
        .collect();
    let schema = format!(
        "message bars {{ required int32 date (DATE); required int64 open (DECIMAL(18,{scale})); required int64 high (DECIMAL(18,{scale})); required int64 low (DECIMAL(18,{scale})); required int64 close (DECIMAL(18,{scale})); required int64 volume; }}"
    );
    let write = || -> parquet::errors::Result<Vec<u8>> {
        let schema = Arc::new(parse_message_type(&schema)?);
        let properties = WriterProperties::builder()
            .set_dictionary_enabled(false)
            .set_encoding(Encoding::DELTA_BINARY_PACKED)
            .set_compression(Compression::UNCOMPRESSED)
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .set_created_by("alchemiser".into())
            .set_key_value_metadata(Some(vec![
                KeyValue::new("alchemiser.symbol".into(), symbol.to_string()),
                KeyValue::new("alchemiser.source".into(), provenance.source.clone()),
                KeyValue::new(
                    "alchemiser.adjustment".into(),
                    provenance.adjustment.clone(),
                ),
                KeyValue::new(
                    "alchemiser.written_at".into(),
                    provenance.written_at.clone(),
                ),
            ]))
            .build();
        let mut out = Vec::new();
        let mut writer = SerializedFileWriter::new(&mut out, schema, Arc::new(properties))?;
        let mut group = writer.next_row_group()?;
        if let Some(mut column) = group.next_column()? {
            column
                .typed::<Int32Type>()
                .write_batch(&dates, None, None)?;
            column.close()?;
        }
        for values in prices.iter().chain([&volumes]) {
            if let Some(mut column) = group.next_column()? {
                column
                    .typed::<Int64Type>()
                    .write_batch(values, None, None)?;
                column.close()?;
            }
        }
        group.close()?;
        writer.close()?;
        Ok(out)
    };
    write().map_err(|e| unreadable(Path::new(symbol), e))
}

/// A file's columns as read: the dates, the price mantissas at `scale`, the volumes.
struct Columns {
    dates: Vec<NaiveDate>,
    scale: u32,
    /// open, high, low, close (those read; the others empty).
    prices: [Vec<i64>; 4],
    volumes: Vec<i64>,
    provenance: Provenance,
}

/// Reads the file at `path`: the dates, and of the other columns those `wanted` (by
/// index in [`COLUMNS`]); checks the layout and that dates ascend.
fn read_columns(path: &Path, wanted: &[usize]) -> Result<Columns, ColumnsError> {
    let bytes = std::fs::read(path).map_err(|e| unreadable(path, e))?;
    let reader = SerializedFileReader::new(Bytes::from(bytes)).map_err(|e| unreadable(path, e))?;
    let metadata = reader.metadata();
    let schema = metadata.file_metadata().schema_descr();
    let names: Vec<&str> = schema.columns().iter().map(|c| c.name()).collect();
    if names != COLUMNS {
        return Err(unreadable(
            path,
            format!(
                "columns are {}, expected {}",
                names.join(", "),
                COLUMNS.join(", ")
            ),
        ));
    }
    let scale = u32::try_from(schema.column(1).type_scale()).unwrap_or(u32::MAX);
    if scale > MAX_SCALE
        || (2..5).any(|j| schema.column(j).type_scale() != schema.column(1).type_scale())
    {
        return Err(unreadable(
            path,
            "the price columns' scales differ or are out of range",
        ));
    }
    let value = |key: &str| {
        metadata
            .file_metadata()
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|k| k.key == key))
            .and_then(|k| k.value.clone())
            .unwrap_or_default()
    };
    let provenance = Provenance {
        source: value("alchemiser.source"),
        adjustment: value("alchemiser.adjustment"),
        written_at: value("alchemiser.written_at"),
    };
    let rows = usize::try_from(metadata.file_metadata().num_rows()).unwrap_or(0);
    let mut days: Vec<i32> = Vec::with_capacity(rows);
    let mut prices: [Vec<i64>; 4] = Default::default();
    let mut volumes = Vec::new();
    for g in 0..reader.num_row_groups() {
        let group = reader.get_row_group(g).map_err(|e| unreadable(path, e))?;
        for column in std::iter::once(0).chain(wanted.iter().copied()) {
            let reader = group
                .get_column_reader(column)
                .map_err(|e| unreadable(path, e))?;
            let n = usize::try_from(group.metadata().num_rows()).unwrap_or(0);
            let read = match (column, reader) {
                (0, ColumnReader::Int32ColumnReader(mut r)) => {
                    r.read_records(n, None, None, &mut days)
                }
                (1..=4, ColumnReader::Int64ColumnReader(mut r)) => {
                    r.read_records(n, None, None, &mut prices[column - 1])
                }
                (5, ColumnReader::Int64ColumnReader(mut r)) => {
                    r.read_records(n, None, None, &mut volumes)
                }
                _ => {
                    return Err(unreadable(
                        path,
                        format!("column {} has the wrong type", COLUMNS[column]),
                    ))
                }
            };
            read.map_err(|e| unreadable(path, e))?;
        }
    }
    let read_lengths_agree = wanted.iter().all(|&j| match j {
        1..=4 => prices[j - 1].len() == days.len(),
        _ => volumes.len() == days.len(),
    });
    if days.len() != rows || !read_lengths_agree {
        return Err(unreadable(path, "the columns' lengths differ"));
    }
    let mut dates = Vec::with_capacity(days.len());
    for d in days {
        let date = d
            .checked_add(EPOCH_FROM_CE)
            .and_then(NaiveDate::from_num_days_from_ce_opt)
            .ok_or_else(|| unreadable(path, format!("day {d} is not a date")))?;
        if dates.last().is_some_and(|p| *p >= date) {
            return Err(unreadable(path, format!("dates do not ascend at {date}")));
        }
        dates.push(date);
    }
    Ok(Columns {
        dates,
        scale,
        prices,
        volumes,
        provenance,
    })
}

/// Every field of the file's bars, and where they came from.
pub fn decode(path: &Path) -> Result<(Vec<DailyBar>, Provenance), ColumnsError> {
    let c = read_columns(path, &[1, 2, 3, 4, 5])?;
    let price = |m: i64| Decimal::try_new(m, c.scale).map_err(|e| unreadable(path, e));
    let mut bars = Vec::with_capacity(c.dates.len());
    for (i, date) in c.dates.iter().enumerate() {
        bars.push(DailyBar {
            date: *date,
            open: price(c.prices[0][i])?,
            high: price(c.prices[1][i])?,
            low: price(c.prices[2][i])?,
            close: price(c.prices[3][i])?,
            volume: u64::try_from(c.volumes[i]).unwrap_or(0),
        });
    }
    Ok((bars, c.provenance))
}

/// The series the engine keeps (dates, opens, closes: the other columns are not read),
/// and where the bars came from.
pub fn decode_series(
    path: &Path,
    symbol: &Symbol,
) -> Result<(BarSeries, Provenance), ColumnsError> {
    let c = read_columns(path, &[1, 4])?;
    let series =
        BarSeries::from_scaled(symbol.clone(), c.dates, &c.prices[0], &c.prices[3], c.scale);
    Ok((series, c.provenance))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provenance() -> Provenance {
        Provenance {
            source: "test".into(),
            adjustment: "raw".into(),
            written_at: "2026-12-08T00:00:00Z".into(),
        }
    }

    /// Every field comes back as the same value; the series read from the file equals
    /// the one built from the bars.
    #[test]
    fn bars_come_back_from_their_file_value_for_value() {
        let day = |i: u64| NaiveDate::from_ymd_opt(2024, 1, 2).unwrap() + chrono::Days::new(i);
        let bars: Vec<DailyBar> = (0..300)
            .map(|i| {
                let close = Decimal::new(10_000 + (i as i64 * 37) % 900, 2 + (i as u32 % 3));
                DailyBar {
                    date: day(i),
                    open: close,
                    high: close + Decimal::new(5, 1),
                    low: close - Decimal::new(25, 3),
                    close,
                    volume: 1_000_000 + i,
                }
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("SPY.parquet");
        std::fs::write(&path, encode("SPY", &bars, &provenance()).unwrap()).unwrap();
        let (back, p) = decode(&path).unwrap();
        assert_eq!(back, bars);
        assert_eq!(p, provenance());
        let (series, _) = decode_series(&path, &"SPY".into()).unwrap();
        let built = BarSeries::new("SPY".into(), bars.clone());
        assert_eq!(series.dates(), built.dates());
        assert_eq!(series.closes(), built.closes());
        assert!((0..bars.len()).all(|i| series.open(i) == built.open(i)));
    }

    #[test]
    fn a_price_the_store_cannot_keep_is_refused_naming_symbol_and_day() {
        let date = NaiveDate::from_ymd_opt(2024, 1, 2).unwrap();
        let bar = DailyBar::flat(date, Decimal::new(1, 12));
        let e = encode("XYZ", &[bar], &provenance())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("XYZ 2024-01-02: price 0.000000000001"), "{e}");
    }

    #[test]
    fn a_file_that_is_not_parquet_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("BAD.parquet");
        std::fs::write(&path, b"date,open\n").unwrap();
        let e = decode(&path).unwrap_err().to_string();
        assert!(e.starts_with(&path.display().to_string()), "{e}");
    }
}
