//! Daily bars read from folders: a LEAN data folder or a plain CSV folder (prices parsed
//! from text straight into `Decimal`, every bar checked with errors naming file and
//! line), and LEAN's minute quotes for intraday replays. What they read into is the
//! core's [`crate::market`] model.

pub mod csv_folder;
pub mod intraday;
pub mod lean;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::domain::Symbol;
use crate::market::{Adjustment, BarSeries, BarSource, DailyBar, DataError, MarketData};

/// Where daily bars come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataSource {
    /// A LEAN data root (the folder holding `equity/`), or its `equity/usa/daily`.
    Lean {
        root: PathBuf,
        adjustment: Adjustment,
    },
    /// A folder of `SYMBOL.csv` files.
    CsvFolder { dir: PathBuf },
    /// The market-data store ([`crate::store`]): a Parquet file per symbol.
    Store {
        dir: PathBuf,
        adjustment: Adjustment,
    },
}

impl DataSource {
    /// Detects the layout of `dir` from its contents.
    pub fn detect(dir: &Path, adjustment: Adjustment) -> Result<DataSource, DataError> {
        if crate::store::BarStore::is_store(dir) {
            return Ok(DataSource::Store {
                dir: dir.to_path_buf(),
                adjustment,
            });
        }
        if let Some(root) = lean::root_of(dir) {
            return Ok(DataSource::Lean { root, adjustment });
        }
        if csv_folder::looks_like(dir) {
            return Ok(DataSource::CsvFolder {
                dir: dir.to_path_buf(),
            });
        }
        // CSV files with another header: name one, and what it starts with.
        let csv = std::fs::read_dir(dir).ok().and_then(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "csv"))
        });
        if let Some(file) = csv {
            let first = std::fs::read_to_string(&file)
                .ok()
                .and_then(|t| {
                    t.lines()
                        .next()
                        .map(|l| l.trim().chars().take(80).collect::<String>())
                })
                .unwrap_or_default();
            return Err(DataError::invalid(
                &file,
                1,
                format!(
                    "the header is `{first}`; a data folder's CSV files start with `{}`",
                    csv_folder::HEADER
                ),
            ));
        }
        Err(DataError::UnknownLayout {
            dir: dir.display().to_string(),
        })
    }

    /// The symbols the folder holds, sorted: its files' names (upper-cased for LEAN's
    /// lower-case ones); a store's symbols are its manifest's.
    pub fn symbols(&self) -> Result<Vec<Symbol>, DataError> {
        let (dir, extensions): (PathBuf, &[&str]) = match self {
            DataSource::Lean { root, .. } => (root.join("equity/usa/daily"), &["zip", "csv"]),
            DataSource::CsvFolder { dir } => (dir.clone(), &["csv"]),
            DataSource::Store { dir, .. } => (dir.clone(), &["parquet"]),
        };
        let entries = std::fs::read_dir(&dir).map_err(|e| DataError::file(&dir, e.to_string()))?;
        let mut symbols = std::collections::BTreeSet::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let (Some(stem), Some(ext)) = (path.file_stem(), path.extension()) else {
                continue;
            };
            if extensions.iter().any(|x| ext == *x) {
                let symbol = stem.to_string_lossy().to_uppercase();
                if crate::domain::parse_symbol(&symbol).is_ok() {
                    symbols.insert(Symbol::from(symbol.as_str()));
                }
            }
        }
        Ok(symbols.into_iter().collect())
    }

    /// Loads every symbol; the first failure is returned.
    pub fn load_all<'a>(
        &self,
        symbols: impl IntoIterator<Item = &'a Symbol>,
    ) -> Result<MarketData, DataError> {
        let mut series = BTreeMap::new();
        for s in symbols {
            if !series.contains_key(s) {
                series.insert(s.clone(), self.load(s)?);
            }
        }
        Ok(MarketData::sharing_dates(series))
    }
}

impl BarSource for DataSource {
    fn load(&self, symbol: &str) -> Result<BarSeries, DataError> {
        match self {
            DataSource::CsvFolder { dir } => {
                crate::domain::parse_symbol(symbol).map_err(DataError::BadSymbol)?;
                csv_folder::load(dir, symbol)
            }
            DataSource::Lean { .. } => Ok(BarSeries::new(symbol.into(), self.read(symbol)?)),
            DataSource::Store { dir, adjustment } => {
                crate::store::load_series(dir, symbol, *adjustment)
            }
        }
    }

    /// Every field of `symbol`'s bars, validated (what [`BarSeries`] does not keep: a
    /// venue double serving bars, a report of the file).
    fn read(&self, symbol: &str) -> Result<Vec<DailyBar>, DataError> {
        // A symbol names a file in the folder, never a path.
        crate::domain::parse_symbol(symbol).map_err(DataError::BadSymbol)?;
        match self {
            DataSource::Lean { root, adjustment } => lean::read_daily(root, symbol, *adjustment),
            DataSource::CsvFolder { dir } => csv_folder::read(dir, symbol),
            DataSource::Store { dir, adjustment } => {
                crate::store::read_bars(dir, symbol, *adjustment)
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            DataSource::Lean { root, .. } => root.display().to_string(),
            DataSource::CsvFolder { dir } | DataSource::Store { dir, .. } => {
                dir.display().to_string()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CSV files as people export them: a capitalised header is named with its file and
    /// line; a lower-case file name is found.
    #[test]
    fn exported_csv_folders_are_read_or_refused_naming_file_and_header() {
        let dir = tempfile::tempdir().unwrap();
        let bars = "2023-01-03,10,11,9,10.5,100\n";
        std::fs::write(
            dir.path().join("AAPL.csv"),
            format!("Date,Open,High,Low,Close,Volume\n{bars}"),
        )
        .unwrap();
        let e = DataSource::detect(dir.path(), Adjustment::Raw)
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("AAPL.csv:1: the header is `Date,Open,High,Low,Close,Volume`; a data folder's CSV files start with `date,open,high,low,close,volume`"),
            "{e}"
        );
        std::fs::remove_file(dir.path().join("AAPL.csv")).unwrap();
        std::fs::write(
            dir.path().join("aapl.csv"),
            format!("{}\n{bars}", csv_folder::HEADER),
        )
        .unwrap();
        let source = DataSource::detect(dir.path(), Adjustment::Raw).unwrap();
        assert_eq!(source.symbols().unwrap(), vec![Symbol::from("AAPL")]);
        assert_eq!(source.read("AAPL").unwrap().len(), 1);
    }
}
