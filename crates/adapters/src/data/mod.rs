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
}

impl DataSource {
    /// Detects the layout of `dir` from its contents.
    pub fn detect(dir: &Path, adjustment: Adjustment) -> Result<DataSource, DataError> {
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
        }
    }

    fn describe(&self) -> String {
        match self {
            DataSource::Lean { root, .. } => root.display().to_string(),
            DataSource::CsvFolder { dir } => dir.display().to_string(),
        }
    }
}
