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
