//! Parameter sweeps: a grid file names the values to try, and every combination is one
//! variant backtested on its own (`alchemiser sweep`). Pure: the grid, the variants,
//! how a variant changes the configuration and the symphonies, and the leaderboard.
//!
//! ```toml
//! rank = "sharpe"                 # the summary statistic that orders the leaderboard
//! [params]                        # placeholders {{name}} in the symphony files
//! ma_window = [100, 200]
//! [config]                        # configuration keys, dotted; list items by index
//! "portfolio.cash_reserve_pct" = ["0.01", "0.05"]
//! "strategy.files.0.weight" = ["1", "3"]
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SweepError {
    #[error("{file}: {message}")]
    Grid { file: String, message: String },
    #[error("{file}: placeholder {{{{{name}}}}} has no value in the grid's [params]")]
    Unfilled { file: String, name: String },
    #[error("variant {variant}: {message}")]
    Variant { variant: String, message: String },
}

/// The most variants one sweep runs.
pub const MAX_VARIANTS: usize = 100_000;

/// A summary statistic a leaderboard can be ordered by, and which way is better.
pub const RANKABLE: [(&str, bool); 6] = [
    ("sharpe", true),
    ("cagr", true),
    ("total_return", true),
    ("max_drawdown", false),
    ("annual_volatility", false),
    ("turnover", false),
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GridFile {
    #[serde(default = "default_rank")]
    rank: String,
    #[serde(default)]
    params: BTreeMap<String, Vec<toml::Value>>,
    #[serde(default)]
    config: BTreeMap<String, Vec<toml::Value>>,
}

fn default_rank() -> String {
    "sharpe".into()
}

/// One axis of the grid: where a value goes, and the values.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    /// `param:NAME` (a symphony placeholder) or `config:KEY.PATH`.
    pub name: String,
    pub values: Vec<toml::Value>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    pub rank: String,
    pub axes: Vec<Axis>,
}

/// One combination: each axis's value, in axis order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    /// `v0007-1a2b3c4d`: its place in the grid and a digest of its values.
    pub id: String,
    pub values: Vec<(String, String)>,
}

/// A value as the leaderboard and the variant's file show it (strings unquoted).
pub fn shown(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A NAME token: letters, digits, `_` and `-`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Grid {
    pub fn parse(text: &str, file: &str) -> Result<Grid, SweepError> {
        let bad = |message: String| SweepError::Grid {
            file: file.to_string(),
            message,
        };
        let text = crate::readable::without_bom(text);
        let raw: GridFile =
            toml::from_str(text).map_err(|e| bad(crate::config::toml_error(text, &e)))?;
        if !RANKABLE.iter().any(|(k, _)| *k == raw.rank) {
            return Err(bad(format!(
                "rank = {:?}: one of {}",
                raw.rank,
                RANKABLE.map(|(k, _)| k).join(", ")
            )));
        }
        let mut axes = Vec::new();
        for (name, values) in &raw.params {
            if !valid_name(name) {
                return Err(bad(format!(
                    "params.{name}: a placeholder name is letters, digits, '_' or '-'"
                )));
            }
            axes.push(Axis {
                name: format!("param:{name}"),
                values: values.clone(),
            });
        }
        for (key, values) in &raw.config {
            if key.split('.').any(str::is_empty) {
                return Err(bad(format!("config.{key:?}: not a dotted key")));
            }
            axes.push(Axis {
                name: format!("config:{key}"),
                values: values.clone(),
            });
        }
        for axis in &axes {
            if axis.values.is_empty() {
                return Err(bad(format!("{}: no values", axis.name)));
            }
        }
        if axes.is_empty() {
            return Err(bad("no [params] or [config] values to sweep".into()));
        }
        // Each variant is a whole backtest held in memory until the leaderboard: a
        // grid past the cap is a typo or a plan for another tool.
        let sizes: Vec<String> = axes.iter().map(|a| a.values.len().to_string()).collect();
        let count = axes
            .iter()
            .try_fold(1u128, |n, a| n.checked_mul(a.values.len() as u128));
        match count {
            Some(n) if n <= MAX_VARIANTS as u128 => {}
            Some(n) => {
                return Err(bad(format!(
                    "the grid makes {n} variants ({}); a sweep runs at most {MAX_VARIANTS}",
                    sizes.join(" × ")
                )))
            }
            None => {
                return Err(bad(format!(
                    "the grid makes more variants than can be counted ({}); a sweep runs at most {MAX_VARIANTS}",
                    sizes.join(" × ")
                )))
            }
        }
        Ok(Grid {
            rank: raw.rank,
            axes,
        })
    }

    /// Every combination, the last axis moving fastest.
    pub fn variants(&self) -> Vec<Variant> {
        let total: usize = self.axes.iter().map(|a| a.values.len()).product();
        (0..total)
            .map(|n| {
                let mut rest = n;
                let mut picks = vec![0; self.axes.len()];
                for (i, axis) in self.axes.iter().enumerate().rev() {
                    picks[i] = rest % axis.values.len();
                    rest /= axis.values.len();
                }
                let values: Vec<(String, String)> = self
                    .axes
                    .iter()
                    .zip(&picks)
                    .map(|(a, p)| (a.name.clone(), shown(&a.values[*p])))
                    .collect();
                let mut h = blake3::Hasher::new();
                for (k, v) in &values {
                    h.update(k.as_bytes());
                    h.update(b"=");
                    h.update(v.as_bytes());
                    h.update(b"\n");
                }
                Variant {
                    id: format!("v{n:04}-{}", &h.finalize().to_hex()[..8]),
                    values,
                }
            })
            .collect()
    }

    /// The raw value of `axis` in `variant` (for the configuration's table).
    pub fn value_of(&self, variant: &Variant, axis: &str) -> Option<toml::Value> {
        let a = self.axes.iter().find(|a| a.name == axis)?;
        let shown_value = &variant.values.iter().find(|(k, _)| k == axis)?.1;
        a.values.iter().find(|v| shown(v) == *shown_value).cloned()
    }
}

/// Sets `key` (dotted; a number indexes a list) in `table` to `value`; on an error
/// the table is left as it was.
pub fn set_key(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), String> {
    fn set(
        here: &mut toml::Value,
        parts: &[&str],
        key: &str,
        value: toml::Value,
    ) -> Result<(), String> {
        let Some((part, rest)) = parts.split_first() else {
            *here = value;
            return Ok(());
        };
        match here {
            toml::Value::Table(t) => {
                let next = t
                    .entry(part.to_string())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                set(next, rest, key, value)
            }
            toml::Value::Array(items) => {
                let index: usize = part
                    .parse()
                    .map_err(|_| format!("{key}: {part:?} is not a list index"))?;
                let len = items.len();
                let item = items
                    .get_mut(index)
                    .ok_or_else(|| format!("{key}: index {index} past the list's {len} items"))?;
                set(item, rest, key, value)
            }
            _ => Err(format!("{key}: {part:?} is inside a value, not a table")),
        }
    }
    let parts: Vec<&str> = key.split('.').collect();
    let mut changed = toml::Value::Table(table.clone());
    set(&mut changed, &parts, key, value)?;
    if let toml::Value::Table(t) = changed {
        *table = t;
    }
    Ok(())
}

/// `text` with each `{{name}}` replaced by its value; a placeholder without one is an
/// error naming it (a symphony with placeholders is a sweep's template).
pub fn fill_placeholders(
    text: &str,
    params: &BTreeMap<String, String>,
    file: &str,
) -> Result<String, SweepError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = after[..end].trim();
        match params.get(name) {
            Some(v) => out.push_str(v),
            None => {
                return Err(SweepError::Unfilled {
                    file: file.to_string(),
                    name: name.to_string(),
                })
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A variant as any process can run it: its configuration (TOML, the data's path
/// absolute) and its symphonies (file name, text), placeholders filled in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VariantJob {
    /// The sweep it belongs to (see [`sweep_id`]).
    pub sweep: String,
    pub variant: Variant,
    pub from: chrono::NaiveDate,
    pub to: chrono::NaiveDate,
    pub config: String,
    /// Where the configuration's other relative paths resolve.
    pub base_dir: String,
    pub symphonies: Vec<(String, String)>,
    /// Where the in-sample period ends (`--split`): the figures before it rank the
    /// variants, those from it on are reported beside them.
    #[serde(default)]
    pub split: Option<chrono::NaiveDate>,
    /// What its result is computed from (see [`Inputs`]).
    pub inputs: Inputs,
}

/// What a variant's result is computed from, each part hashed: its configuration, its
/// symphonies' bytes, the market snapshot id of its data up to the last day, its dates
/// and the engine's version. A finished variant is reused only while every part is the
/// same, and a rerun names the parts that changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs {
    pub config: String,
    pub symphonies: String,
    pub market: String,
    pub dates: String,
    pub engine: String,
}

/// blake3 of `parts`, each length-prefixed; 16 hex digits.
fn digest<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    let mut h = blake3::Hasher::new();
    for part in parts {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().to_hex()[..16].to_string()
}

impl Inputs {
    /// The inputs of `job` (its own `inputs` aside), its data's snapshot id being
    /// `market_snapshot`.
    pub fn of(job: &VariantJob, market_snapshot: &str) -> Self {
        let (from, to) = (job.from.to_string(), job.to.to_string());
        let split = job.split.map(|d| d.to_string()).unwrap_or_default();
        Inputs {
            config: digest([job.config.as_str(), job.base_dir.as_str()]),
            symphonies: digest(
                job.symphonies
                    .iter()
                    .flat_map(|(name, text)| [name.as_str(), text.as_str()]),
            ),
            market: digest([market_snapshot]),
            dates: digest([from.as_str(), to.as_str(), split.as_str()]),
            engine: digest([env!("CARGO_PKG_VERSION")]),
        }
    }

    /// The parts that differ from `earlier`, as a person names them.
    pub fn changed_since(&self, earlier: &Inputs) -> Vec<&'static str> {
        [
            (self.config != earlier.config, "configuration"),
            (self.symphonies != earlier.symphonies, "symphony"),
            (self.market != earlier.market, "market data"),
            (self.dates != earlier.dates, "dates"),
            (self.engine != earlier.engine, "engine version"),
        ]
        .into_iter()
        .filter_map(|(changed, name)| changed.then_some(name))
        .collect()
    }
}

/// What a worker reports for one variant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VariantResult {
    pub sweep: String,
    pub variant: String,
    pub worker: String,
    /// `summary.json`'s text, or why the variant could not run.
    pub summary: Result<String, String>,
    /// `split.json`'s text, when the sweep is split.
    #[serde(default)]
    pub split: Option<String>,
}

/// A sweep's identity: the same grid and configuration over the same variants' inputs
/// (symphonies, data, dates, engine) are the same sweep, its results found again by a
/// driver that restarted; a change to any input is another sweep, whose workers'
/// results are never taken for this one's.
pub fn sweep_id<'a>(
    grid: &str,
    config: &str,
    inputs: impl IntoIterator<Item = &'a Inputs>,
) -> String {
    let inputs: Vec<String> = inputs
        .into_iter()
        .map(|i| {
            [&i.config, &i.symphonies, &i.market, &i.dates, &i.engine]
                .map(String::as_str)
                .concat()
        })
        .collect();
    let all = [grid, config]
        .into_iter()
        .chain(inputs.iter().map(String::as_str));
    format!("s{}", &digest(all)[..12])
}

/// Subjects and streams of sweeps over NATS: a work queue of variants (each taken by
/// one worker, redelivered if unacknowledged) and a stream of results, one subject per
/// variant (a result recorded once: its id is the variant's).
pub mod queue {
    pub const JOBS_STREAM: &str = "ALCHEMISER_SWEEP_JOBS";
    pub const RESULTS_STREAM: &str = "ALCHEMISER_SWEEP_RESULTS";
    pub const JOBS_CONSUMER: &str = "backtest";

    pub fn jobs_subject(sweep: &str) -> String {
        format!("sweeps.{sweep}.variants")
    }

    pub fn result_subject(sweep: &str, variant: &str) -> String {
        format!("sweeps.{sweep}.results.{variant}")
    }

    pub fn results_of(sweep: &str) -> String {
        format!("sweeps.{sweep}.results.*")
    }
}

/// One finished variant's figures, as the leaderboard lists them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub variant: Variant,
    /// `summary.json`'s fields (null when it failed).
    pub summary: serde_json::Value,
    /// Why the variant could not be computed, when it could not.
    pub failure: Option<String>,
    /// With `--split`: the figures after the split (`summary` holds those before it).
    pub out_of_sample: Option<serde_json::Value>,
}

/// The figures a leaderboard shows for each variant (and, split, for each period).
pub const FIGURES: [&str; 7] = [
    "total_return",
    "cagr",
    "sharpe",
    "max_drawdown",
    "annual_volatility",
    "turnover",
    "trades",
];

/// The leaderboard as CSV: ranked by `rank` (best first; ties by variant id), one
/// column per axis, then the headline statistics (split: those before the split, which
/// rank, then those after it), and why a variant failed; failed variants last,
/// unranked. The order returned ranks the variants that ran.
pub fn leaderboard(grid: &Grid, outcomes: &[Outcome]) -> (Vec<usize>, String) {
    let higher_better = RANKABLE
        .iter()
        .find(|(k, _)| *k == grid.rank)
        .is_none_or(|(_, h)| *h);
    let stat = |o: &Outcome, key: &str| -> f64 {
        o.summary[key]
            .as_str()
            .and_then(|s| s.parse().ok())
            .or_else(|| o.summary[key].as_f64())
            .unwrap_or(f64::NAN)
    };
    let mut order: Vec<usize> = (0..outcomes.len())
        .filter(|i| outcomes[*i].failure.is_none())
        .collect();
    order.sort_by(|a, b| {
        let (x, y) = (
            stat(&outcomes[*a], &grid.rank),
            stat(&outcomes[*b], &grid.rank),
        );
        let by = if higher_better {
            y.total_cmp(&x)
        } else {
            x.total_cmp(&y)
        };
        by.then_with(|| outcomes[*a].variant.id.cmp(&outcomes[*b].variant.id))
    });
    let split = outcomes.iter().any(|o| o.out_of_sample.is_some());
    let quote = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut csv = String::from("rank,variant");
    for axis in &grid.axes {
        csv.push(',');
        csv.push_str(&quote(&axis.name));
    }
    for c in FIGURES {
        csv.push(',');
        csv.push_str(c);
    }
    if split {
        for c in FIGURES {
            csv.push_str(",out_of_sample_");
            csv.push_str(c);
        }
    }
    csv.push_str(",failure\n");
    let failed = (0..outcomes.len()).filter(|i| outcomes[*i].failure.is_some());
    let ranks = (1..=order.len()).map(|r| r.to_string());
    for (place, i) in ranks
        .chain(std::iter::repeat(String::new()))
        .zip(order.iter().copied().chain(failed))
    {
        let o = &outcomes[i];
        csv.push_str(&format!("{place},{}", o.variant.id));
        for (_, v) in &o.variant.values {
            csv.push(',');
            csv.push_str(&quote(v));
        }
        let cell = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        for c in FIGURES {
            csv.push(',');
            csv.push_str(&quote(&cell(&o.summary[c])));
        }
        if split {
            let after = o.out_of_sample.clone().unwrap_or_default();
            for c in FIGURES {
                csv.push(',');
                csv.push_str(&quote(&cell(&after[c])));
            }
        }
        csv.push(',');
        csv.push_str(&quote(o.failure.as_deref().unwrap_or_default()));
        csv.push('\n');
    }
    (order, csv)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRID: &str = r#"
rank = "cagr"
[params]
window = [100, 200]
[config]
"portfolio.cash_reserve_pct" = ["0.01", "0.05", "0.1"]
"strategy.files.0.weight" = ["2"]
"#;

    #[test]
    fn every_combination_once_with_stable_ids() {
        let grid = Grid::parse(GRID, "g.toml").unwrap();
        let variants = grid.variants();
        assert_eq!(variants.len(), 6);
        assert_eq!(
            variants[1].values,
            vec![
                ("param:window".to_string(), "100".to_string()),
                (
                    "config:portfolio.cash_reserve_pct".to_string(),
                    "0.05".to_string()
                ),
                (
                    "config:strategy.files.0.weight".to_string(),
                    "2".to_string()
                ),
            ]
        );
        let ids: std::collections::BTreeSet<_> = variants.iter().map(|v| v.id.clone()).collect();
        assert_eq!(ids.len(), 6);
        assert_eq!(Grid::parse(GRID, "g.toml").unwrap().variants(), variants);
        assert!(variants[0].id.starts_with("v0000-"));
    }

    #[test]
    fn bad_grids_are_named() {
        let err = Grid::parse("rank = \"luck\"\n[params]\nx = [1]\n", "g.toml").unwrap_err();
        assert!(
            err.to_string().starts_with("g.toml: rank = \"luck\""),
            "{err}"
        );
        let err = Grid::parse("[params]\nx = []\n", "g.toml").unwrap_err();
        assert_eq!(err.to_string(), "g.toml: param:x: no values");
        let err = Grid::parse("[nope]\n", "g.toml").unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn keys_are_set_in_tables_and_list_items() {
        let mut t: toml::Table =
            toml::from_str("[portfolio]\nmin_trade_pct = \"0.01\"\n[[strategy.files]]\npath = \"a.clj\"\nweight = \"1\"\n").unwrap();
        set_key(&mut t, "portfolio.cash_reserve_pct", "0.05".into()).unwrap();
        set_key(&mut t, "strategy.files.0.weight", "3".into()).unwrap();
        assert_eq!(t["portfolio"]["cash_reserve_pct"].as_str(), Some("0.05"));
        assert_eq!(t["portfolio"]["min_trade_pct"].as_str(), Some("0.01"));
        assert_eq!(t["strategy"]["files"][0]["weight"].as_str(), Some("3"));
        let err = set_key(&mut t, "strategy.files.4.weight", "1".into()).unwrap_err();
        assert!(err.contains("index 4 past the list's 1 items"), "{err}");
        assert_eq!(
            t["strategy"]["files"][0]["path"].as_str(),
            Some("a.clj"),
            "unchanged by an error"
        );
    }

    #[test]
    fn placeholders_are_filled_or_named() {
        let params = [("w".to_string(), "150".to_string())].into_iter().collect();
        assert_eq!(
            fill_placeholders("(ma {:window {{w}}}) {{ w }}", &params, "s.clj").unwrap(),
            "(ma {:window 150}) 150"
        );
        let err = fill_placeholders("{{n}}", &params, "s.clj").unwrap_err();
        assert_eq!(
            err.to_string(),
            "s.clj: placeholder {{n}} has no value in the grid's [params]"
        );
    }

    #[test]
    fn the_leaderboard_ranks_best_first() {
        let grid = Grid::parse("rank = \"max_drawdown\"\n[params]\nx = [1, 2, 3]\n", "g").unwrap();
        let outcomes: Vec<Outcome> = grid
            .variants()
            .into_iter()
            .zip(["0.3", "0.1", "0.2"])
            .map(|(variant, dd)| Outcome {
                variant,
                summary: serde_json::json!({"max_drawdown": dd, "trades": 5}),
                failure: None,
                out_of_sample: None,
            })
            .collect();
        let (order, csv) = leaderboard(&grid, &outcomes);
        assert_eq!(order, [1, 2, 0]);
        let second = csv.lines().nth(2).unwrap();
        assert!(
            second.starts_with("2,v0002-") && second.contains(",3,"),
            "{csv}"
        );
    }

    #[test]
    fn a_grid_past_the_cap_is_refused_with_its_count() {
        let axis = |n: usize| (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
        let big = format!(
            "rank = \"sharpe\"\n[params]\na = [{}]\nb = [{}]\n",
            axis(400),
            axis(300)
        );
        let err = Grid::parse(&big, "g.toml").unwrap_err().to_string();
        assert!(err.contains("120000 variants (400 × 300)"), "{err}");
        let axes: String = (0..40)
            .map(|i| format!("p{i} = [{}]\n", axis(10)))
            .collect();
        let huge = format!("rank = \"sharpe\"\n[params]\n{axes}");
        let err = Grid::parse(&huge, "g.toml").unwrap_err().to_string();
        assert!(err.contains("more variants than can be counted"), "{err}");
    }

    #[test]
    fn a_grid_type_error_names_line_and_key_in_plain_words() {
        let err = Grid::parse("rank = \"sharpe\"\n[params]\na = \"x\"\n", "g.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3") && err.contains("params.a"), "{err}");
        assert!(err.contains("a list in brackets"), "{err}");
        assert!(!err.contains("sequence"), "{err}");
    }
}
