//! The `[strategy]` section of the configuration: the strategies own their settings and
//! defaults; `config` reads them in with the rest.

use std::path::PathBuf;

use rust_decimal::Decimal;
use serde::Deserialize;

use crate::market::Adjustment;

/// What to do when a strategy file cannot be evaluated. The default keeps the
/// positions: an evaluation error (too little history, a data gap) must never turn into
/// a liquidation that reports success.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnStrategyError {
    /// Fail the workflow: nothing trades, recovery retries, the failure is reported.
    #[default]
    Fail,
    /// Give the file's slice to cash, say why in the signal and log a warning.
    Cash,
}

/// When the account sets each file's share back to its configured weight.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AccountRebalance {
    /// Every session: the files are merged with their configured weights every day.
    #[default]
    Daily,
    Weekly,
    Monthly,
    Quarterly,
    Yearly,
    /// Never (only `rebalance_threshold`, if set): each file is funded once and its
    /// share drifts with its own performance, as separately funded symphonies do.
    None,
}

impl AccountRebalance {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountRebalance::Daily => "daily",
            AccountRebalance::Weekly => "weekly",
            AccountRebalance::Monthly => "monthly",
            AccountRebalance::Quarterly => "quarterly",
            AccountRebalance::Yearly => "yearly",
            AccountRebalance::None => "none",
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StrategyConfig {
    /// Market data folder: plain CSV (`SYMBOL.csv`) or a LEAN data root, detected.
    pub data: PathBuf,
    /// `raw` or `adjusted` (LEAN data, via factor files).
    pub adjustment: Adjustment,
    pub on_strategy_error: OnStrategyError,
    /// Symphony files with their allocation weights (normalised to 1).
    pub files: Vec<StrategyFile>,
    /// When the files' shares go back to their configured weights.
    pub rebalance: AccountRebalance,
    /// Also when a file's share has drifted more than this (absolute) from its weight.
    pub rebalance_threshold: Option<Decimal>,
    /// The first day the files' slices are followed from, when any file (or the account)
    /// trades other than daily; the data's first evaluable day if unset.
    pub slices_from: Option<chrono::NaiveDate>,
}

impl Default for StrategyConfig {
    fn default() -> Self {
        Self {
            data: PathBuf::from("examples/data"),
            adjustment: Adjustment::Raw,
            on_strategy_error: OnStrategyError::Fail,
            files: Vec::new(),
            rebalance: AccountRebalance::Daily,
            rebalance_threshold: None,
            slices_from: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StrategyFile {
    pub path: PathBuf,
    #[serde(default = "one")]
    pub weight: Decimal,
}

fn one() -> Decimal {
    Decimal::ONE
}
