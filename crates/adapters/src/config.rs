//! Typed configuration: every section defaulted, unknown keys refused, and
//! [`Config::validate`] reporting *every* violation at once with its key path.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveTime;
use rust_decimal::Decimal;
use serde::Deserialize;
use thiserror::Error;

use crate::domain::RunMode;
use crate::supervision::RestartPolicy;

pub use crate::backtest::FillTiming;
pub use crate::bus::settings::{BusConfig, BusTransport, REMOTE_ROLES};
pub use crate::engine_core::ResumeMode;
pub use crate::notify::settings::{
    EmailConfig, NotificationsConfig, SmtpSecurity, WebhookConfig, WebhookFormat,
};
pub use crate::recovery::RecoveryConfig;
pub use crate::risk::RiskConfig;
pub use crate::strategy::settings::{
    AccountRebalance, OnStrategyError, StrategyConfig, StrategyFile,
};

/// The defaults shipped in the repository's `config.toml`, compiled in so that the
/// engine runs with no file at all.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../../config.toml");

/// The configuration read when no `--config` is given and the current folder has it.
pub const DEFAULT_CONFIG_FILE: &str = "config.toml";

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub engine: EngineConfig,
    pub supervision: SupervisionConfig,
    pub venue: VenueConfig,
    pub strategy: StrategyConfig,
    pub portfolio: PortfolioConfig,
    pub alpaca: AlpacaConfig,
    pub schedule: ScheduleConfig,
    pub execution: ExecutionConfig,
    pub journal: JournalConfig,
    pub recovery: RecoveryConfig,
    pub reconciliation: ReconciliationConfig,
    pub risk: RiskConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
    pub backtest: BacktestConfig,
    pub notifications: NotificationsConfig,
    pub bus: BusConfig,
    pub data: DataConfig,
    /// Folder that relative paths are resolved against: the config file's folder.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BacktestConfig {
    /// `close` or `next_open`.
    pub fill: FillTiming,
}

/// Where accepted events go besides the journal.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VenueConfig {
    pub sim: SimVenueConfig,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SimVenueConfig {
    /// Starting cash of the simulated account.
    pub initial_cash: Decimal,
    pub slippage_bps: Decimal,
    pub commission_per_order: Decimal,
    pub commission_bps: Decimal,
    /// Charge the regulatory fees below on top of the commission.
    pub regulatory_fees: bool,
    /// SEC transaction fee, a fraction of each sell's proceeds.
    pub sec_fee_rate: Decimal,
    /// FINRA trading activity fee per share sold, and its cap per trade.
    pub finra_taf_per_share: Decimal,
    pub finra_taf_max: Decimal,
    /// Consolidated audit trail fee per share, both sides.
    pub cat_fee_per_share: Decimal,
    /// Where `run` keeps the simulated account between runs (relative to this file's
    /// folder); empty to start from `initial_cash` every time.
    pub state_file: PathBuf,
}

impl Default for SimVenueConfig {
    fn default() -> Self {
        Self {
            initial_cash: Decimal::from(100_000),
            slippage_bps: Decimal::from(5),
            commission_per_order: Decimal::ZERO,
            commission_bps: Decimal::ZERO,
            regulatory_fees: false,
            sec_fee_rate: crate::venues::sim::RegulatoryFees::alpaca().sec_rate,
            finra_taf_per_share: crate::venues::sim::RegulatoryFees::alpaca().taf_per_share,
            finra_taf_max: crate::venues::sim::RegulatoryFees::alpaca().taf_max,
            cat_fee_per_share: crate::venues::sim::RegulatoryFees::alpaca().cat_per_share,
            state_file: PathBuf::from("state/sim_account.json"),
        }
    }
}

impl SimVenueConfig {
    pub fn costs(&self) -> crate::venues::sim::SimCosts {
        crate::venues::sim::SimCosts {
            slippage_bps: self.slippage_bps,
            commission_per_order: self.commission_per_order,
            commission_bps: self.commission_bps,
            regulatory: self
                .regulatory_fees
                .then_some(crate::venues::sim::RegulatoryFees {
                    sec_rate: self.sec_fee_rate,
                    taf_per_share: self.finra_taf_per_share,
                    taf_max: self.finra_taf_max,
                    cat_per_share: self.cat_fee_per_share,
                }),
        }
    }
}

/// The Prometheus endpoint of `run`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub enabled: bool,
    /// Address of `/metrics` and `/healthz`.
    pub listen: String,
    /// Binding an address other than loopback exposes the engine's state to the
    /// network: it must be asked for.
    pub allow_remote: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: "127.0.0.1:9464".into(),
            allow_remote: false,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Pretty on a terminal, JSON otherwise.
    #[default]
    Auto,
    Json,
    Pretty,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
}

/// What reconciliation does when the venue drifts from what the journal expects.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnDrift {
    /// Stop trading until a person looks (`alchemiser resume`).
    #[default]
    Halt,
    /// Start a corrective workflow (a new rebalance toward the targets); a corrective
    /// workflow that drifts again halts.
    Rebalance,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReconciliationConfig {
    /// Allowed |expected − actual| as a fraction of the expected quantity.
    pub tolerance_pct: Decimal,
    pub on_drift: OnDrift,
}

impl Default for ReconciliationConfig {
    fn default() -> Self {
        Self {
            tolerance_pct: Decimal::new(1, 3),
            on_drift: OnDrift::Halt,
        }
    }
}

/// The durable event journal of `run` (backtests keep theirs in memory unless told).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JournalConfig {
    /// SQLite file, relative to this file's folder.
    pub path: PathBuf,
    /// "normal": survives a crash of the process; "full": survives power loss too.
    pub sync: crate::journal::SyncMode,
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("state/journal.sqlite"),
            sync: crate::journal::SyncMode::Normal,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OrderTypeChoice {
    #[default]
    Market,
    /// Smart limit orders: priced from the quote, repegged, then market.
    Limit,
}

/// How orders are placed.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutionConfig {
    pub order_type: OrderTypeChoice,
    /// How long a limit order may rest unfilled before it is repegged (milliseconds).
    pub fill_wait_ms: u64,
    pub max_repegs: u32,
    /// Widest spread a limit order is priced from, in percent of the mid.
    pub max_spread_pct: Decimal,
    pub max_quote_age_secs: u64,
}

impl Default for ExecutionConfig {
    fn default() -> Self {
        Self {
            order_type: OrderTypeChoice::Market,
            fill_wait_ms: 10_000,
            max_repegs: 2,
            max_spread_pct: Decimal::new(5, 1),
            max_quote_age_secs: 60,
        }
    }
}

/// When `run` starts the daily workflow.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// New York time, HH:MM.
    pub time: String,
    /// On early-close days, run this many minutes before the close (if earlier).
    pub early_close_offset_mins: u64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            time: "15:45".into(),
            early_close_offset_mins: 15,
        }
    }
}

impl ScheduleConfig {
    pub fn daily(&self) -> crate::schedule::DailySchedule {
        crate::schedule::DailySchedule {
            time: NaiveTime::parse_from_str(&self.time, "%H:%M").unwrap_or_default(),
            early_close_offset: Duration::from_secs(self.early_close_offset_mins * 60),
        }
    }
}

/// The Alpaca connection (used when `APCA_API_KEY_ID` and `APCA_API_SECRET_KEY` are set).
/// The market-data store (`alchemiser data`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// The store's folder (relative to the config's folder).
    pub store: PathBuf,
    /// The first day of history a pull asks for a symbol the store does not hold.
    pub from: chrono::NaiveDate,
    /// `run` pulls the day's completed bar into the store after the close.
    pub refresh: bool,
    /// `data check`: a one-day close-to-close move beyond this fraction that the next
    /// bar does not confirm is a finding.
    pub max_move: Decimal,
    /// Findings looked at and accepted (a real move, a known halt), each
    /// `"SYMBOL YYYY-MM-DD"` as `data check` dates it: not refused.
    pub accept: Vec<String>,
}

impl DataConfig {
    /// Whether the finding of `symbol` on `date` was accepted.
    pub fn accepts(&self, symbol: &str, date: chrono::NaiveDate) -> bool {
        self.accept.iter().any(|a| {
            accepted(a)
                .is_ok_and(|(s, from, to)| s.as_str() == symbol && (from..=to).contains(&date))
        })
    }
}

/// An entry of `data.accept`: `"SYMBOL YYYY-MM-DD"`, or a range of days
/// `"SYMBOL YYYY-MM-DD..YYYY-MM-DD"` (a sample's years of gaps); the symbol in any case.
fn accepted(
    entry: &str,
) -> Result<(crate::domain::Symbol, chrono::NaiveDate, chrono::NaiveDate), String> {
    let bad =
        || format!("\"{entry}\" is not \"SYMBOL YYYY-MM-DD\" or \"SYMBOL YYYY-MM-DD..YYYY-MM-DD\"");
    let (symbol, days) = entry.trim().split_once(' ').ok_or_else(bad)?;
    let symbol = crate::domain::parse_symbol(&symbol.trim().to_uppercase())?;
    let day = |d: &str| {
        chrono::NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d")
            .ok()
            .filter(|p| p.format("%Y-%m-%d").to_string() == d.trim())
            .ok_or_else(bad)
    };
    let (from, to) = match days.split_once("..") {
        Some((a, b)) => (day(a)?, day(b)?),
        None => (day(days)?, day(days)?),
    };
    if from > to {
        return Err(format!("\"{entry}\": the range ends before it starts"));
    }
    Ok((symbol, from, to))
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            store: PathBuf::from("state/bars"),
            from: chrono::NaiveDate::from_ymd_opt(2016, 1, 4).unwrap_or_default(),
            refresh: false,
            max_move: Decimal::new(5, 1),
            accept: Vec::new(),
        }
    }
}

/// Keys never go in this file.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AlpacaConfig {
    /// Trading API base URL; empty means Alpaca paper (or live when `engine.mode = "live"`).
    pub trading_url: String,
    pub data_url: String,
    pub requests_per_minute: u32,
    pub timeout_secs: u64,
    pub max_attempts: u32,
    /// Market data feed for bars and quotes: "iex" (free) or "sip".
    pub feed: String,
}

impl Default for AlpacaConfig {
    fn default() -> Self {
        Self {
            trading_url: String::new(),
            data_url: crate::venues::alpaca::client::DATA_URL.into(),
            requests_per_minute: 200,
            timeout_secs: 10,
            max_attempts: 5,
            feed: "iex".into(),
        }
    }
}

/// Rebalance planning rules.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PortfolioConfig {
    /// Share of portfolio value kept in cash.
    pub cash_reserve_pct: Decimal,
    /// A trade smaller than this share of portfolio value is not made.
    pub min_trade_pct: Decimal,
    /// Fractional shares (6 decimals) or whole shares.
    pub fractional: bool,
}

impl Default for PortfolioConfig {
    fn default() -> Self {
        let p = crate::portfolio::PlanParams::default();
        Self {
            cash_reserve_pct: p.cash_reserve_pct,
            min_trade_pct: p.min_trade_pct,
            fractional: p.fractional,
        }
    }
}

impl PortfolioConfig {
    pub fn params(&self) -> crate::portfolio::PlanParams {
        crate::portfolio::PlanParams {
            cash_reserve_pct: self.cash_reserve_pct,
            min_trade_pct: self.min_trade_pct,
            fractional: self.fractional,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    pub mode: RunMode,
    /// A workflow still open after this long fails with reason `timeout`.
    pub workflow_timeout_secs: u64,
    /// An actor whose asynchronous handling (a venue call) runs longer than this is
    /// aborted and restarted; the event is redelivered once, then dead-lettered.
    pub handler_timeout_secs: u64,
    /// How often the broker looks for overdue workflows.
    pub timeout_check_ms: u64,
    /// Finished workflows whose causation chains stay in memory.
    pub retain_finished_workflows: usize,
    /// Handler latency is timed on one delivery in this many (1: on every one); an
    /// asynchronous handling still waiting after its first poll is always timed.
    /// Backtests time one in 64: two clock reads per delivery were about 3% of a
    /// backtest's busiest thread, and a backtest measures the strategy, not the handlers.
    pub latency_sample_every: u32,
    /// On SIGINT/SIGTERM the running workflow gets this long to finish.
    pub shutdown_grace_secs: u64,
    /// Where `alchemiser halt` / `resume` leave their requests for a running engine.
    pub control_dir: PathBuf,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            mode: RunMode::Paper,
            workflow_timeout_secs: 300,
            handler_timeout_secs: 120,
            timeout_check_ms: 500,
            retain_finished_workflows: 1000,
            latency_sample_every: 1,
            shutdown_grace_secs: 60,
            control_dir: PathBuf::from("state"),
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisionConfig {
    pub max_restarts: u32,
    pub within_secs: u64,
    pub backoff_initial_ms: u64,
    pub backoff_cap_ms: u64,
}

impl Default for SupervisionConfig {
    fn default() -> Self {
        let p = RestartPolicy::default();
        Self {
            max_restarts: p.max_restarts,
            within_secs: p.within.as_secs(),
            backoff_initial_ms: p.backoff_initial.as_millis() as u64,
            backoff_cap_ms: p.backoff_cap.as_millis() as u64,
        }
    }
}

impl SupervisionConfig {
    pub fn policy(&self) -> RestartPolicy {
        RestartPolicy {
            max_restarts: self.max_restarts,
            within: Duration::from_secs(self.within_secs),
            backoff_initial: Duration::from_millis(self.backoff_initial_ms),
            backoff_cap: Duration::from_millis(self.backoff_cap_ms),
        }
    }
}

/// One violated rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigViolation {
    pub key: String,
    pub message: String,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub struct ConfigErrors {
    pub source_name: String,
    pub violations: Vec<ConfigViolation>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration in {}:", self.source_name)?;
        for v in &self.violations {
            write!(f, "\n  {}: {}", v.key, v.message)?;
        }
        Ok(())
    }
}

/// The first error the whole document gave (with its line), then what each top-level
/// section gives on its own (with its key path), then the rules broken in the
/// sections that do parse.
/// Where a TOML error is, as people count: `line N`.
fn error_line(text: &str, e: &toml::de::Error) -> String {
    e.span()
        .map(|s| {
            let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}")
        })
        .unwrap_or_else(|| "(document)".into())
}

/// A TOML file's error for people: its line, the key when the parser names it, and the
/// message in plain words.
pub fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let shown = e.to_string();
    let key = shown
        .lines()
        .find_map(|l| l.trim().strip_prefix("in `")?.strip_suffix('`'))
        .map(str::to_string)
        .or_else(|| key_at(text, e.span()?.start));
    let at = error_line(text, e);
    match key {
        Some(key) => format!("{at}, {key}: {}", plain_words(e.message().trim())),
        None => format!("{at}: {}", plain_words(e.message().trim())),
    }
}

/// The dotted key whose line holds byte `at`: the section header above it and the
/// key before its `=`.
fn key_at(text: &str, at: usize) -> Option<String> {
    let before = &text[..at.min(text.len())];
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let key = line.split_once('=')?.0.trim().trim_matches('"');
    let section = before[..start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && !l.starts_with("[["))
        .map(|l| l.trim_matches(['[', ']']).trim());
    Some(match section {
        Some(s) if !s.is_empty() => format!("{s}.{key}"),
        _ => key.to_string(),
    })
}

fn every_parse_error(text: &str, first: &toml::de::Error) -> Vec<ConfigViolation> {
    let first_found = || ConfigViolation {
        key: error_line(text, first),
        message: plain_words(first.message().trim()),
    };
    // Not even a TOML table (a syntax error): nothing more can be read.
    let Ok(mut table) = toml::from_str::<toml::Table>(text) else {
        return vec![first_found()];
    };
    // The deserializer stops at the first error: take each one, leave its key out (its
    // default stands in) and read again, until the rest reads; then the rules, on the
    // keys that did read.
    let mut typed: Vec<(usize, ConfigViolation)> = Vec::new();
    let mut rules = Vec::new();
    let mut left_out: Vec<String> = Vec::new();
    for _ in 0..MAX_TYPE_ERRORS {
        let error = match toml::Value::Table(table.clone()).try_into::<Config>() {
            Ok(config) => {
                if let Err(violations) = config.validate() {
                    rules.extend(violations.into_iter().filter(|v| {
                        !left_out
                            .iter()
                            .any(|k| v.key == *k || v.key.starts_with(&format!("{k}.")))
                    }));
                }
                break;
            }
            Err(e) => e.to_string(),
        };
        let mut lines = error.lines();
        let message = lines.next().unwrap_or_default().trim().to_string();
        let path = lines
            .find_map(|l| l.trim().strip_prefix("in `")?.strip_suffix('`'))
            .unwrap_or_default();
        let key = match unknown_field(&message) {
            Some(field) if path.is_empty() => field.to_string(),
            Some(field) => format!("{path}.{field}"),
            None => path.to_string(),
        };
        let line = line_of_key(text, &key);
        let shown = match line {
            Some(line) => format!("{key} (line {line})"),
            None => key.clone(),
        };
        typed.push((
            line.unwrap_or(usize::MAX),
            ConfigViolation {
                key: shown,
                message: plain_words(&message),
            },
        ));
        if key.is_empty() || !remove_key(&mut table, &key) {
            break;
        }
        left_out.push(key);
    }
    // In the file's order, then the rules.
    typed.sort_by_key(|(line, _)| *line);
    let mut found: Vec<ConfigViolation> = typed.into_iter().map(|(_, v)| v).collect();
    found.extend(rules);
    if found.is_empty() {
        found.push(first_found());
    }
    found
}

/// Type errors reported from one file at the most.
const MAX_TYPE_ERRORS: usize = 64;

/// The field an "unknown field `x`, expected …" message names.
fn unknown_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("unknown field `")?
        .split_once('`')
        .map(|(field, _)| field)
}

/// The line (from 1) where the dotted `key` is set, for keys in plain tables.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    let mut section = String::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with("[[") {
            section = format!("{}[]", line.trim_matches(['[', ']']).trim());
        } else if line.starts_with('[') {
            section = line.trim_matches(['[', ']']).trim().to_string();
            if section == key {
                return Some(i + 1);
            }
        } else if let Some((name, _)) = line.split_once('=') {
            let name = name.trim().trim_matches('"');
            let full = if section.is_empty() {
                name.to_string()
            } else {
                format!("{section}.{name}")
            };
            if full == key {
                return Some(i + 1);
            }
        }
    }
    None
}

/// Removes the dotted `key` from `table`; false when it is not a plain table's key.
fn remove_key(table: &mut toml::Table, key: &str) -> bool {
    if key.contains('[') {
        return false;
    }
    let mut parts: Vec<&str> = key.split('.').collect();
    let Some(last) = parts.pop() else {
        return false;
    };
    let mut at = table;
    for part in parts {
        match at.get_mut(part) {
            Some(toml::Value::Table(inner)) => at = inner,
            _ => return false,
        }
    }
    at.remove(last).is_some()
}

/// A deserializer's message in the words of the file's reader: what was found and what
/// the key takes, never a Rust type name (`u64`, `a Decimal type representing…`,
/// `unit variant`).
pub fn plain_words(message: &str) -> String {
    let expected = |rust: &str| -> Option<&'static str> {
        Some(match rust {
            "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number, 0 or more",
            "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number",
            "f32" | "f64" => "a number",
            "a Decimal type representing a fixed-point number" => {
                "a decimal number written as a string, e.g. \"0.05\""
            }
            "a boolean" => "true or false",
            "a string" => "a string in quotes",
            "a sequence" => "a list in brackets, e.g. [1, 2]",
            _ => return None,
        })
    };
    let (found, wanted) = match message.split_once(", expected ") {
        Some((found, wanted)) => (found, wanted),
        None => return message.to_string(),
    };
    let wanted = expected(wanted).map_or_else(
        || {
            wanted
                .replace("unit variant", "value")
                .replace("one of `", "one of \"")
                .replace("`, `", "\", \"")
                .replace("` or `", "\" or \"")
                .replace('`', "\"")
        },
        str::to_string,
    );
    // A decimal key given text it cannot hold: say why (`1e30` is out of range).
    if wanted.starts_with("a decimal number") {
        if let Some(text) = found
            .strip_prefix("invalid value: string \"")
            .and_then(|t| t.strip_suffix('"'))
        {
            return format!(
                "{}: expected {wanted}",
                crate::readable::not_a_decimal(text)
            );
        }
    }
    let found = found
        .replace("invalid type: ", "")
        .replace("invalid value: ", "")
        .replace("unknown variant ", "unknown value ")
        .replace("floating point ", "the number ")
        .replace("integer ", "the number ")
        .replace("string ", "the text ")
        .replace("sequence", "a list")
        .replace('`', "");
    let found = match found.strip_prefix("unknown value ") {
        Some(value) => format!("unknown value \"{value}\""),
        None => found,
    };
    // A number the key's type cannot hold (`1e30` for a count): say so.
    let range = message.contains("floating point") && wanted.starts_with("a whole number")
        || message.contains("integer") && message.contains("invalid value");
    if range {
        format!("{found} is out of range or not whole: expected {wanted}")
    } else {
        format!("{found}: expected {wanted}")
    }
}

/// The largest cost the simulated venue takes, in basis points (10%).
pub const MAX_COST_BPS: Decimal = Decimal::from_parts(1000, 0, 0, false, 0);

#[derive(Default)]
struct Violations(Vec<ConfigViolation>);

impl Violations {
    fn check(&mut self, ok: bool, key: &str, message: impl Into<String>) {
        if !ok {
            self.0.push(ConfigViolation {
                key: key.to_string(),
                message: message.into(),
            });
        }
    }
}

impl Config {
    /// Reads and validates `path`; relative paths inside resolve against its folder.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
            source_name: name.clone(),
            violations: vec![ConfigViolation {
                key: "(file)".into(),
                message: format!("cannot read: {e}"),
            }],
        })?;
        let mut config = Self::parse(&text, &name)?;
        config.base_dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        Ok(config)
    }

    /// Loads `path` if given; else `./config.toml` when the current folder has one; else
    /// the embedded defaults, whose relative paths resolve against the current folder.
    /// Never against the tree the binary was built from: a `halt` that wrote its request
    /// there would never reach an engine started elsewhere.
    pub fn load_or_default(path: Option<&PathBuf>) -> Result<Config, ConfigErrors> {
        match path {
            Some(p) => Self::load(p),
            None => {
                let mut config = if Path::new(DEFAULT_CONFIG_FILE).is_file() {
                    Self::load(Path::new(DEFAULT_CONFIG_FILE))?
                } else {
                    Self::parse(EMBEDDED_DEFAULT, "embedded config.toml")?
                };
                // Held as an absolute path: what a run passes on (a drill's child
                // process, a sweep's variants) resolves the same from any folder.
                config.base_dir = std::path::absolute(".").unwrap_or_else(|_| PathBuf::from("."));
                Ok(config)
            }
        }
    }

    /// `path` resolved against the config file's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.base_dir.join(path)
    }

    /// The folder a command reads bars from: `data` when given (`--data DIR`); else the
    /// store once it holds bars (`data.store`); else `strategy.data`.
    pub fn bars_folder(&self, data: Option<&Path>) -> PathBuf {
        if let Some(dir) = data {
            return dir.to_path_buf();
        }
        let store = self.resolve(&self.data.store);
        if crate::store::BarStore::is_store(&store) {
            store
        } else {
            self.resolve(&self.strategy.data)
        }
    }

    /// Parses TOML text; `source_name` names it in errors. Every violation is
    /// reported at once: when a value does not parse, the other sections are still
    /// read and checked.
    pub fn parse(text: &str, source_name: &str) -> Result<Config, ConfigErrors> {
        let text = crate::readable::without_bom(text);
        let errors = |violations| ConfigErrors {
            source_name: source_name.to_string(),
            violations,
        };
        let config: Config =
            toml::from_str(text).map_err(|e| errors(every_parse_error(text, &e)))?;
        config.validate().map_err(errors)?;
        Ok(config)
    }

    /// Every rule violated, not just the first.
    fn validate_notifications(&self, v: &mut Violations) {
        let n = &self.notifications;
        v.check(
            n.max_attempts > 0,
            "notifications.max_attempts",
            "must be > 0",
        );
        v.check(
            n.timeout_secs > 0,
            "notifications.timeout_secs",
            "must be > 0",
        );
        v.check(
            n.backoff_cap_ms >= n.backoff_ms,
            "notifications.backoff_cap_ms",
            "must be >= backoff_ms",
        );
        let email = &n.email;
        if !email.smtp_host.is_empty() {
            let mailbox = |a: &str| a.parse::<lettre::message::Mailbox>().is_ok();
            v.check(
                mailbox(&email.from),
                "notifications.email.from",
                format!("{:?} is not an e-mail address", email.from),
            );
            v.check(
                !email.to.is_empty(),
                "notifications.email.to",
                "needs at least one address",
            );
            for (i, to) in email.to.iter().enumerate() {
                v.check(
                    mailbox(to),
                    &format!("notifications.email.to[{i}]"),
                    format!("{to:?} is not an e-mail address"),
                );
            }
            v.check(
                email.smtp_port > 0,
                "notifications.email.smtp_port",
                "must be > 0",
            );
        }
        for (i, hook) in n.webhooks.iter().enumerate() {
            v.check(
                hook.url.is_empty() != hook.url_env.is_empty(),
                &format!("notifications.webhooks[{i}]"),
                "set exactly one of url and url_env",
            );
        }
    }

    pub fn validate(&self) -> Result<(), Vec<ConfigViolation>> {
        let mut v = Violations::default();
        let e = &self.engine;
        v.check(
            e.workflow_timeout_secs > 0,
            "engine.workflow_timeout_secs",
            "must be > 0",
        );
        v.check(
            e.handler_timeout_secs > 0,
            "engine.handler_timeout_secs",
            "must be > 0",
        );
        v.check(
            e.timeout_check_ms > 0,
            "engine.timeout_check_ms",
            "must be > 0",
        );
        v.check(
            e.retain_finished_workflows > 0,
            "engine.retain_finished_workflows",
            "must be > 0",
        );
        v.check(
            e.latency_sample_every > 0,
            "engine.latency_sample_every",
            "must be > 0",
        );
        self.validate_notifications(&mut v);
        v.check(
            self.data.max_move > Decimal::ZERO,
            "data.max_move",
            "must be > 0 (a fraction: 0.5 is a 50% move)",
        );
        for a in &self.data.accept {
            if let Err(why) = accepted(a) {
                v.check(false, "data.accept", why);
            }
        }
        v.check(
            !self.data.store.as_os_str().is_empty(),
            "data.store",
            "must name a folder (the market-data store)",
        );
        v.check(
            self.data.store != self.strategy.data,
            "data.store",
            "must not be strategy.data's folder: the store is written to, a data folder only read",
        );
        let bus = &self.bus;
        if bus.transport == BusTransport::Nats {
            v.check(
                crate::bus::valid_token(&bus.stream),
                "bus.stream",
                "must be letters, digits, '-' or '_'",
            );
            v.check(
                !bus.subject_prefix.is_empty()
                    && bus.subject_prefix.split('.').all(crate::bus::valid_token),
                "bus.subject_prefix",
                "must be dot-separated tokens of letters, digits, '-' or '_'",
            );
            v.check(
                bus.url.starts_with("nats://") || bus.url.starts_with("tls://"),
                "bus.url",
                "must start with nats:// or tls://",
            );
            v.check(
                bus.duplicate_window_secs > 0,
                "bus.duplicate_window_secs",
                "must be > 0",
            );
            v.check(bus.ack_wait_secs > 0, "bus.ack_wait_secs", "must be > 0");
            v.check(bus.max_deliver > 0, "bus.max_deliver", "must be > 0");
            v.check(
                bus.worker_wait_secs > 0,
                "bus.worker_wait_secs",
                "must be > 0",
            );
        }
        for role in &bus.remote_roles {
            v.check(
                REMOTE_ROLES.contains(&role.as_str()),
                "bus.remote_roles",
                format!(
                    "\"{role}\" cannot run in a worker (one of {})",
                    REMOTE_ROLES.join(", ")
                ),
            );
        }
        v.check(
            bus.remote_roles.is_empty() || bus.transport == BusTransport::Nats,
            "bus.remote_roles",
            "needs transport = \"nats\"",
        );
        if NaiveTime::parse_from_str(&self.schedule.time, "%H:%M").is_err() {
            v.check(
                false,
                "schedule.time",
                format!("`{}` is not HH:MM", self.schedule.time),
            );
        }
        let s = &self.supervision;
        v.check(s.within_secs > 0, "supervision.within_secs", "must be > 0");
        v.check(
            s.backoff_cap_ms >= s.backoff_initial_ms,
            "supervision.backoff_cap_ms",
            format!(
                "must be >= supervision.backoff_initial_ms ({})",
                s.backoff_initial_ms
            ),
        );
        let sim = &self.venue.sim;
        v.check(
            sim.initial_cash > Decimal::ZERO,
            "venue.sim.initial_cash",
            format!("must be > 0 (got {})", sim.initial_cash),
        );
        // Costs are basis points of the traded value: 1,000 (10%) is already far beyond
        // any real market; more turns fill prices and equity meaningless or negative.
        for (key, bps) in [
            ("venue.sim.slippage_bps", sim.slippage_bps),
            ("venue.sim.commission_bps", sim.commission_bps),
        ] {
            v.check(
                bps >= Decimal::ZERO && bps <= MAX_COST_BPS,
                key,
                format!("must be in [0, {MAX_COST_BPS}] basis points (got {bps})"),
            );
        }
        for (key, amount) in [
            ("venue.sim.commission_per_order", sim.commission_per_order),
            ("venue.sim.finra_taf_max", sim.finra_taf_max),
        ] {
            v.check(
                amount >= Decimal::ZERO,
                key,
                format!("must be >= 0 (got {amount})"),
            );
        }
        // Fee rates: a hundredth of the value or a dollar a share is far beyond any.
        for (key, rate) in [
            ("venue.sim.sec_fee_rate", sim.sec_fee_rate),
            ("venue.sim.finra_taf_per_share", sim.finra_taf_per_share),
            ("venue.sim.cat_fee_per_share", sim.cat_fee_per_share),
        ] {
            v.check(
                rate >= Decimal::ZERO && rate <= Decimal::new(1, 2),
                key,
                format!("must be in [0, 0.01] (got {rate})"),
            );
        }
        v.check(
            self.alpaca.requests_per_minute > 0,
            "alpaca.requests_per_minute",
            "must be > 0",
        );
        v.check(
            self.alpaca.timeout_secs > 0,
            "alpaca.timeout_secs",
            "must be > 0",
        );
        v.check(
            self.alpaca.max_attempts > 0,
            "alpaca.max_attempts",
            "must be > 0",
        );
        if self.execution.order_type == OrderTypeChoice::Limit {
            let walk = self
                .execution
                .fill_wait_ms
                .saturating_mul(u64::from(self.execution.max_repegs) + 1);
            v.check(
                walk.saturating_mul(10) < e.handler_timeout_secs.saturating_mul(9_000),
                "execution.fill_wait_ms",
                format!(
                    "one limit order's walk ({} ms: fill_wait_ms x (max_repegs + 1)) must fit in nine tenths of engine.handler_timeout_secs ({}s)",
                    walk, e.handler_timeout_secs
                ),
            );
        }
        v.check(
            self.execution.max_spread_pct > Decimal::ZERO,
            "execution.max_spread_pct",
            "must be > 0",
        );
        match self.metrics.listen.parse::<std::net::SocketAddr>() {
            Err(_) => v.check(
                false,
                "metrics.listen",
                format!("`{}` is not an address:port", self.metrics.listen),
            ),
            Ok(addr) => v.check(
                addr.ip().is_loopback() || self.metrics.allow_remote,
                "metrics.listen",
                format!(
                    "{addr} is not a loopback address: set metrics.allow_remote = true to expose the engine's metrics to the network"
                ),
            ),
        }
        let r = &self.recovery;
        v.check(
            r.backoff_cap_ms >= r.backoff_ms,
            "recovery.backoff_cap_ms",
            format!("must be >= recovery.backoff_ms ({})", r.backoff_ms),
        );
        v.check(
            r.backoff_cap_ms < e.handler_timeout_secs.saturating_mul(1000),
            "recovery.backoff_cap_ms",
            format!(
                "must be shorter than engine.handler_timeout_secs ({}s): recovery waits inside its handler",
                e.handler_timeout_secs
            ),
        );
        v.check(
            self.reconciliation.tolerance_pct >= Decimal::ZERO
                && self.reconciliation.tolerance_pct < Decimal::ONE,
            "reconciliation.tolerance_pct",
            format!(
                "must be in [0, 1) (got {})",
                self.reconciliation.tolerance_pct
            ),
        );
        for (key, limit) in [
            ("risk.max_order_notional", self.risk.max_order_notional),
            ("risk.max_daily_notional", self.risk.max_daily_notional),
        ] {
            v.check(
                limit.is_none_or(|l| l > Decimal::ZERO),
                key,
                "must be > 0 (leave it out for no limit)",
            );
        }
        if let Some(symbols) = &self.risk.allowed_symbols {
            // Checked like any ticker in a symphony: a lower-case `aapl` would match no
            // order and deny every one.
            for (i, s) in symbols.iter().enumerate() {
                if let Err(why) = crate::domain::parse_symbol(s) {
                    v.check(false, &format!("risk.allowed_symbols[{i}]"), why);
                }
            }
        }
        let p = &self.portfolio;
        v.check(
            p.cash_reserve_pct >= Decimal::ZERO && p.cash_reserve_pct < Decimal::ONE,
            "portfolio.cash_reserve_pct",
            "must be in [0, 1)",
        );
        v.check(
            p.min_trade_pct >= Decimal::ZERO && p.min_trade_pct < Decimal::ONE,
            "portfolio.min_trade_pct",
            "must be in [0, 1)",
        );
        v.check(
            !self.strategy.files.is_empty(),
            "strategy.files",
            "at least one [[strategy.files]] entry is needed (an engine without a strategy would only hold cash)",
        );
        for (i, f) in self.strategy.files.iter().enumerate() {
            v.check(
                f.weight > Decimal::ZERO,
                &format!("strategy.files[{i}].weight"),
                format!("must be > 0 (got {})", f.weight),
            );
        }
        if let Some(t) = self.strategy.rebalance_threshold {
            v.check(
                t > Decimal::ZERO && t < Decimal::ONE,
                "strategy.rebalance_threshold",
                format!(
                    "must be between 0 and 1, a share of the account (got {t}; 0.05 = 5 points)"
                ),
            );
        }
        if v.0.is_empty() {
            Ok(())
        } else {
            Err(v.0)
        }
    }

    pub fn workflow_timeout(&self) -> Duration {
        Duration::from_secs(self.engine.workflow_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults live in the `Default` impls; the shipped config.toml spells every
    /// one of them out for the reader. They must say the same thing (the strategy
    /// files aside: the code has no default strategy).
    #[test]
    fn the_shipped_config_states_the_code_defaults() {
        let mut shipped = Config::parse(EMBEDDED_DEFAULT, "config.toml").unwrap();
        assert!(!shipped.strategy.files.is_empty());
        shipped.strategy.files.clear();
        assert_eq!(shipped, Config::default());
    }

    /// Regulatory fees are off unless asked for; on, Alpaca's rates unless others are
    /// given; a negative or absurd rate is refused naming its key.
    #[test]
    fn regulatory_fees_are_opt_in_with_alpacas_rates() {
        let base = "[[strategy.files]]\npath = \"x.clj\"\nweight = \"1\"\n[venue.sim]\n";
        let off = Config::parse(base, "c.toml").unwrap();
        assert_eq!(off.venue.sim.costs().regulatory, None);
        let on = Config::parse(&format!("{base}regulatory_fees = true\n"), "c.toml").unwrap();
        assert_eq!(
            on.venue.sim.costs().regulatory,
            Some(crate::venues::sim::RegulatoryFees::alpaca())
        );
        let bad = format!("{base}regulatory_fees = true\nsec_fee_rate = \"-0.1\"\n");
        let err = Config::parse(&bad, "c.toml").unwrap_err();
        let keys: Vec<_> = err.violations.iter().map(|v| v.key.as_str()).collect();
        assert_eq!(keys, ["venue.sim.sec_fee_rate"]);
    }

    #[test]
    fn the_backtest_fill_model_is_close_unless_told() {
        let base = "[[strategy.files]]\npath = \"x.clj\"\nweight = \"1\"\n";
        assert_eq!(
            Config::parse(base, "c.toml").unwrap().backtest.fill,
            FillTiming::Close
        );
        let next = format!("{base}[backtest]\nfill = \"next_open\"\n");
        let next = Config::parse(&next, "c.toml").unwrap().backtest.fill;
        assert_eq!(
            (next, next.to_string()),
            (FillTiming::NextOpen, "next_open".into())
        );
        let bad = format!("{base}[backtest]\nfill = \"tomorrow\"\n");
        let err = Config::parse(&bad, "c.toml").unwrap_err();
        assert!(err.to_string().contains("backtest.fill"), "{err}");
    }

    #[test]
    fn shipped_config_parses_and_validates() {
        let c = Config::parse(EMBEDDED_DEFAULT, "config.toml").unwrap();
        assert_eq!(c.engine.mode, RunMode::Paper);
    }

    #[test]
    fn every_violation_is_reported() {
        let text = "[engine]\nworkflow_timeout_secs = 0\nlatency_sample_every = 0\n[supervision]\nbackoff_initial_ms = 10\nbackoff_cap_ms = 5\n";
        let err = Config::parse(text, "bad.toml").unwrap_err();
        let keys: Vec<_> = err.violations.iter().map(|v| v.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "engine.workflow_timeout_secs",
                "engine.latency_sample_every",
                "supervision.backoff_cap_ms",
                "strategy.files"
            ]
        );
        assert!(err.to_string().contains("bad.toml"));
    }

    #[test]
    fn nonsense_values_and_unparsable_ones_are_reported_together() {
        let text = "[venue.sim]\nslippage_bps = \"20000\"\ninitial_cash = \"0\"\n\
                    [engine]\nworkflow_timeout_secs = \"soon\"\n\
                    [portfolio]\nmin_trade_pct = []\n\
                    [reconciliation]\ntolerance_pct = \"2\"\n\
                    [strategy]\nfiles = []\n";
        let err = Config::parse(text, "bad.toml").unwrap_err();
        let keys: Vec<_> = err.violations.iter().map(|v| v.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "engine.workflow_timeout_secs (line 5)",
                // Every type error names its line, not just the document's first.
                "portfolio.min_trade_pct (line 7)",
                "venue.sim.initial_cash",
                "venue.sim.slippage_bps",
                "reconciliation.tolerance_pct",
                "strategy.files"
            ],
            "{err}"
        );
        assert!(err.to_string().contains("got 20000"), "{err}");
    }

    #[test]
    fn the_default_on_a_strategy_error_keeps_the_positions() {
        assert_eq!(
            Config::parse(EMBEDDED_DEFAULT, "config.toml")
                .unwrap()
                .strategy
                .on_strategy_error,
            OnStrategyError::Fail
        );
        assert_eq!(
            StrategyConfig::default().on_strategy_error,
            OnStrategyError::Fail
        );
    }

    #[test]
    fn unknown_key_names_its_line() {
        let err = Config::parse("[engine]\n\nworkflow_timout_secs = 3\n", "typo.toml").unwrap_err();
        // The key itself, with its line (it was the table's name).
        assert_eq!(
            err.violations[0].key,
            "engine.workflow_timout_secs (line 3)"
        );
        assert!(err.violations[0].message.contains("workflow_timout_secs"));
    }

    #[test]
    fn two_type_errors_and_a_rule_in_one_table_are_all_named() {
        let text = "[engine]\nworkflow_timeout_secs = -1\nbogus_key = 1\nmode = \"papr\"\nhandler_timeout_secs = 0\n[[strategy.files]]\npath = \"a.clj\"\n";
        let err = Config::parse(text, "two.toml").unwrap_err();
        let keys: Vec<_> = err.violations.iter().map(|v| v.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "engine.workflow_timeout_secs (line 2)",
                "engine.bogus_key (line 3)",
                "engine.mode (line 4)",
                "engine.handler_timeout_secs",
                "recovery.backoff_cap_ms"
            ],
            "{err}"
        );
    }
}
