//! Running a sweep's variants: each one made self-contained (its configuration and
//! filled-in symphonies, a [`VariantJob`]), written to a folder, and backtested through
//! the same actors as `backtest` (one actor system per variant) — on every core here,
//! or by `worker --roles backtest` processes over NATS (`sweep_queue`). A variant whose
//! folder holds a summary computed from the same inputs (configuration, symphonies,
//! market data, dates, engine version: [`Inputs`]) is not run again, so a sweep whose
//! driver died resumes; any other is recomputed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;

use crate::actors::backtest::{after_warm_up, run, sessions, sessions_in};
use crate::backtest::summarize;
use crate::config::Config;

use crate::data::DataSource;
use crate::market::snapshot::snapshot_id;
use crate::market::Adjustment;
use crate::strategy::book::referenced_symbols;
use crate::strategy::dsl::parse_symphony;
use crate::sweep::{
    fill_placeholders, set_key, sweep_id, Grid, Inputs, Outcome, SweepError, Variant, VariantJob,
    FIGURES,
};

/// What every variant starts from.
pub struct SweepPlan {
    pub grid: Grid,
    /// The configuration file's table (or the embedded default's).
    pub base: toml::Table,
    /// Where the configuration's relative paths resolve (absolute).
    pub base_dir: PathBuf,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub out: PathBuf,
    /// Where the in-sample period ends (`--split`), if the sweep is split.
    pub split: Option<NaiveDate>,
    /// The grid's and the configuration's text, for the sweep's id.
    pub grid_text: String,
    pub config_text: String,
    /// Market snapshot ids already computed, by data folder, adjustment and symbols.
    pub snapshots: Mutex<std::collections::BTreeMap<String, String>>,
}

/// Whether a variant's recorded result is reused, and why not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reuse {
    Reused,
    /// Nothing finished in its folder.
    New,
    /// Finished, from other inputs (the parts that changed).
    Changed(Vec<&'static str>),
}

fn variant_error(variant: &Variant) -> impl Fn(String) -> SweepError + '_ {
    move |message| SweepError::Variant {
        variant: variant.id.clone(),
        message,
    }
}

impl SweepPlan {
    pub fn folder(&self, variant: &Variant) -> PathBuf {
        self.out.join("variants").join(&variant.id)
    }

    /// Every variant as a job, checked (configuration keys, placeholders, symphonies,
    /// data) before any runs, stamped with the sweep's id.
    pub fn jobs(&self) -> Result<Vec<VariantJob>, SweepError> {
        let mut jobs = self
            .grid
            .variants()
            .iter()
            .map(|v| self.job(v))
            .collect::<Result<Vec<_>, _>>()?;
        let sweep = sweep_id(
            &self.grid_text,
            &self.config_text,
            jobs.iter().map(|j| &j.inputs),
        );
        for job in &mut jobs {
            job.sweep = sweep.clone();
        }
        Ok(jobs)
    }

    /// The variant as a job any process can run: its configuration (the data's path
    /// absolute), its symphonies with placeholders filled in, and what its result is
    /// computed from. Its sweep is stamped by [`SweepPlan::jobs`].
    pub fn job(&self, variant: &Variant) -> Result<VariantJob, SweepError> {
        let fail = variant_error(variant);
        let mut table = self.base.clone();
        let mut params = std::collections::BTreeMap::new();
        for (axis, shown) in &variant.values {
            if let Some(name) = axis.strip_prefix("param:") {
                params.insert(name.to_string(), shown.clone());
            } else if let Some(key) = axis.strip_prefix("config:") {
                let value = self
                    .grid
                    .value_of(variant, axis)
                    .ok_or_else(|| fail(format!("{axis}: no value")))?;
                set_key(&mut table, key, value).map_err(&fail)?;
            }
        }
        let data = table
            .get("strategy")
            .and_then(|s| s.get("data"))
            .and_then(|d| d.as_str())
            .unwrap_or("examples/data")
            .to_string();
        // The variant reads what `backtest` on its configuration would: the store once
        // it holds bars, else strategy.data.
        let store = table
            .get("data")
            .and_then(|s| s.get("store"))
            .and_then(|d| d.as_str())
            .map_or_else(|| crate::config::DataConfig::default().store, PathBuf::from);
        let store = self.base_dir.join(store);
        let folder = if crate::store::BarStore::is_store(&store) {
            store
        } else {
            self.base_dir.join(data)
        };
        set_key(
            &mut table,
            "strategy.data",
            folder.display().to_string().into(),
        )
        .map_err(&fail)?;
        let paths: Vec<String> = table
            .get("strategy")
            .and_then(|s| s.get("files"))
            .and_then(|f| f.as_array())
            .map(|files| {
                files
                    .iter()
                    .filter_map(|f| f.get("path").and_then(|p| p.as_str()).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let mut symphonies = Vec::new();
        for (i, path) in paths.iter().enumerate() {
            let source = self.base_dir.join(path);
            let shown = source.display().to_string();
            let text =
                std::fs::read_to_string(&source).map_err(|e| fail(format!("{shown}: {e}")))?;
            let filled = fill_placeholders(&text, &params, &shown)?;
            let name = Path::new(path).file_name().map_or_else(
                || "strategy.clj".into(),
                |n| n.to_string_lossy().into_owned(),
            );
            symphonies.push((format!("{i}-{name}"), filled));
        }
        let market = self.snapshot(&table, &symphonies).map_err(&fail)?;
        let mut job = VariantJob {
            sweep: String::new(),
            variant: variant.clone(),
            from: self.from,
            to: self.to,
            config: toml::to_string(&table).map_err(|e| fail(e.to_string()))?,
            base_dir: self.base_dir.display().to_string(),
            symphonies,
            split: self.split,
            inputs: Inputs::default(),
        };
        job.inputs = Inputs::of(&job, &market);
        Ok(job)
    }

    /// The market snapshot id, up to the sweep's last day, of the bars the symphonies
    /// name in the configuration's data folder (each folder, adjustment and symbol set
    /// read once per sweep).
    fn snapshot(
        &self,
        table: &toml::Table,
        symphonies: &[(String, String)],
    ) -> Result<String, String> {
        let strategy = table.get("strategy");
        let data = strategy
            .and_then(|s| s.get("data"))
            .and_then(|d| d.as_str())
            .unwrap_or_default();
        let adjustment: Adjustment = match strategy.and_then(|s| s.get("adjustment")) {
            Some(value) => value
                .clone()
                .try_into()
                .map_err(|e| format!("strategy.adjustment: {e}"))?,
            None => Adjustment::default(),
        };
        let mut symbols = std::collections::BTreeSet::new();
        for (name, text) in symphonies {
            let symphony =
                parse_symphony(text).map_err(|e| format!("{name}:{}: {}", e.span, e.message))?;
            symbols.extend(referenced_symbols(&symphony).into_keys());
        }
        let key = format!("{data}|{adjustment:?}|{symbols:?}");
        if let Some(id) = self
            .snapshots
            .lock()
            .ok()
            .and_then(|s| s.get(&key).cloned())
        {
            return Ok(id);
        }
        let source = DataSource::detect(Path::new(data), adjustment).map_err(|e| e.to_string())?;
        let market = source.load_all(&symbols).map_err(|e| e.to_string())?;
        // The dates against the data, before anything runs.
        sessions_in(&market, self.from, self.to).map_err(|e| e.to_string())?;
        let id = snapshot_id(&market, self.to);
        if let Ok(mut known) = self.snapshots.lock() {
            known.insert(key, id.clone());
        }
        Ok(id)
    }

    /// Whether `job`'s folder holds a result computed from the same variant and inputs.
    pub fn reuse(&self, job: &VariantJob) -> Reuse {
        let folder = self.folder(&job.variant);
        let read = |name: &str| std::fs::read(folder.join(name)).ok();
        let recorded: Option<Variant> =
            read("variant.json").and_then(|b| serde_json::from_slice(&b).ok());
        if recorded.as_ref() != Some(&job.variant) || read("summary.json").is_none() {
            return Reuse::New;
        }
        let inputs: Inputs = read("inputs.json")
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        match job.inputs.changed_since(&inputs) {
            changed if changed.is_empty() => Reuse::Reused,
            changed => Reuse::Changed(changed),
        }
    }

    /// The summary a finished variant left in its folder, when it was computed from the
    /// job's inputs (a resumed sweep skips the variant).
    pub fn finished(&self, job: &VariantJob) -> Option<String> {
        (self.reuse(job) == Reuse::Reused)
            .then(|| std::fs::read_to_string(self.folder(&job.variant).join("summary.json")).ok())
            .flatten()
    }

    /// Records a variant's summaries and inputs in its folder; the variant file last, as
    /// the mark that it is finished (a stale one is removed first).
    pub fn record(&self, job: &VariantJob, computed: &Computed) -> Result<(), SweepError> {
        let summary = &computed.summary;
        let variant = &job.variant;
        let fail = variant_error(variant);
        let folder = self.folder(variant);
        std::fs::create_dir_all(&folder).map_err(|e| fail(e.to_string()))?;
        let mark = folder.join("variant.json");
        for stale in [&mark, &folder.join(FAILURE)] {
            if stale.exists() {
                std::fs::remove_file(stale).map_err(|e| fail(e.to_string()))?;
            }
        }
        std::fs::write(folder.join("summary.json"), summary).map_err(|e| fail(e.to_string()))?;
        match &computed.split {
            Some(split) => std::fs::write(folder.join(SPLIT), split),
            None => std::fs::remove_file(folder.join(SPLIT)).or(Ok(())),
        }
        .map_err(|e| fail(e.to_string()))?;
        let inputs = serde_json::to_string_pretty(&job.inputs).map_err(|e| fail(e.to_string()))?;
        std::fs::write(folder.join("inputs.json"), inputs + "\n")
            .map_err(|e| fail(e.to_string()))?;
        let text = serde_json::to_string_pretty(variant).map_err(|e| fail(e.to_string()))?;
        std::fs::write(mark, text + "\n").map_err(|e| fail(e.to_string()))
    }
}

/// The file in a variant's folder that says why it failed (a rerun computes it again).
const FAILURE: &str = "failure.txt";
/// The file with a split sweep's figures before and after the split.
const SPLIT: &str = "split.json";

/// What computing a variant gives: its `summary.json` (the same bytes `backtest`
/// writes for its configuration) and, split, its `split.json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Computed {
    pub summary: String,
    pub split: Option<String>,
}

impl SweepPlan {
    /// Records why `job` could not be computed; the sweep goes on without it.
    pub fn record_failure(&self, job: &VariantJob, why: &str) -> Result<(), SweepError> {
        let fail = variant_error(&job.variant);
        let folder = self.folder(&job.variant);
        std::fs::create_dir_all(&folder).map_err(|e| fail(e.to_string()))?;
        let mark = folder.join("variant.json");
        if mark.exists() {
            std::fs::remove_file(&mark).map_err(|e| fail(e.to_string()))?;
        }
        std::fs::write(folder.join(FAILURE), format!("{why}\n")).map_err(|e| fail(e.to_string()))
    }

    /// Why `job` failed in this sweep, if it did and has not been computed since.
    pub fn failure(&self, job: &VariantJob) -> Option<String> {
        if self.finished(job).is_some() {
            return None;
        }
        let text = std::fs::read_to_string(self.folder(&job.variant).join(FAILURE)).ok()?;
        Some(text.trim_end().to_string())
    }
}

/// Writes `job`'s symphonies and configuration into `folder` and reads the
/// configuration back (validated), its files pointing there.
pub fn materialize(job: &VariantJob, folder: &Path) -> Result<Config, SweepError> {
    let fail = variant_error(&job.variant);
    // Absolute: the configuration's other paths resolve against its base folder, not
    // the folder the command runs in.
    let folder =
        &std::path::absolute(folder).map_err(|e| fail(format!("{}: {e}", folder.display())))?;
    std::fs::create_dir_all(folder).map_err(|e| fail(format!("{}: {e}", folder.display())))?;
    let mut table: toml::Table = toml::from_str(&job.config).map_err(|e| fail(e.to_string()))?;
    for (i, (name, text)) in job.symphonies.iter().enumerate() {
        let made = folder.join(name);
        std::fs::write(&made, text).map_err(|e| fail(format!("{}: {e}", made.display())))?;
        set_key(
            &mut table,
            &format!("strategy.files.{i}.path"),
            made.display().to_string().into(),
        )
        .map_err(&fail)?;
    }
    let text = toml::to_string(&table).map_err(|e| fail(e.to_string()))?;
    let mut config = Config::parse(&text, &format!("variant {}", job.variant.id))
        .map_err(|e| fail(e.to_string()))?;
    config.base_dir = PathBuf::from(&job.base_dir);
    std::fs::write(folder.join("config.toml"), &text)
        .map_err(|e| fail(format!("{}: {e}", folder.display())))?;
    Ok(config)
}

/// Backtests `job` (made in `folder`) on this thread.
pub fn run_job(job: &VariantJob, folder: &Path) -> Result<Computed, SweepError> {
    let fail = variant_error(&job.variant);
    let config = materialize(job, folder)?;
    let mut book = crate::symphony_files::load_book(&config.strategy, &config.base_dir, None)
        .map_err(|e| fail(e.to_string()))?;
    let all = sessions(&book, job.from, job.to).map_err(|e| fail(e.to_string()))?;
    book.keep_until(job.to);
    let book = Arc::new(book);
    let (dates, warm_up) = after_warm_up(&book, &all).map_err(|e| fail(e.to_string()))?;
    let dates = dates.to_vec();
    let system = actix::System::new();
    let mut record = system
        .block_on(run(config, book, &dates, |_, _| {}))
        .map_err(|e| fail(e.to_string()))?;
    record.warm_up_sessions = warm_up;
    let summary = summarize(&record).ok_or_else(|| fail("no sessions".into()))?;
    let split = match job.split {
        Some(at) => {
            let (before, after) = record.split_at(at);
            let figures = |r| summarize(r).map(|s| figures_of(&s)).unwrap_or_default();
            let split = serde_json::json!({
                "split": at,
                "in_sample": figures(&before),
                "out_of_sample": figures(&after),
            });
            Some(pretty(&split).map_err(|e| fail(e.to_string()))?)
        }
        None => None,
    };
    Ok(Computed {
        summary: pretty(&summary).map_err(|e| fail(e.to_string()))?,
        split,
    })
}

/// `value` as the files of a run hold JSON: pretty, with a final newline.
fn pretty(value: &impl serde::Serialize) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(value).map(|t| t + "\n")
}

/// A period's figures as the leaderboard shows them (its first and last day besides).
fn figures_of(summary: &crate::backtest::Summary) -> serde_json::Value {
    let all = serde_json::to_value(summary).unwrap_or_default();
    let mut picked = serde_json::Map::new();
    for key in ["start", "end"].into_iter().chain(FIGURES) {
        picked.insert(key.to_string(), all[key].clone());
    }
    serde_json::Value::Object(picked)
}

/// The outcomes of `jobs`, in order, from their recorded summaries and failures.
pub fn outcomes(plan: &SweepPlan, jobs: &[VariantJob]) -> Vec<Outcome> {
    jobs.iter()
        .filter_map(|j| {
            let (summary, failure) = match plan.finished(j) {
                Some(text) => match serde_json::from_str(&text) {
                    Ok(summary) => (summary, None),
                    Err(e) => (serde_json::Value::Null, Some(format!("summary.json: {e}"))),
                },
                None => (serde_json::Value::Null, Some(plan.failure(j)?)),
            };
            let mut outcome = Outcome {
                variant: j.variant.clone(),
                summary,
                failure,
                out_of_sample: None,
            };
            if j.split.is_some() && outcome.failure.is_none() {
                // Ranked on the figures before the split, those after beside them.
                let read = std::fs::read(plan.folder(&j.variant).join(SPLIT));
                match read
                    .ok()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                {
                    Some(split) => {
                        outcome.summary = split["in_sample"].clone();
                        outcome.out_of_sample = Some(split["out_of_sample"].clone());
                    }
                    None => outcome.failure = Some(format!("{SPLIT} is missing or unreadable")),
                }
            }
            Some(outcome)
        })
        .collect()
}

/// Runs every variant not finished yet on `threads` threads; `progress(done, total)`
/// after each. A variant that fails is recorded with its reason and the others go on;
/// an error recording a result stops the sweep. Outcomes in variant order.
pub fn run_all(
    plan: &SweepPlan,
    jobs: &[VariantJob],
    threads: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<Outcome>, SweepError> {
    let done = AtomicUsize::new(jobs.iter().filter(|j| plan.finished(j).is_some()).count());
    let next = AtomicUsize::new(0);
    let broken: Mutex<Option<SweepError>> = Mutex::new(None);
    progress(done.load(Ordering::SeqCst), jobs.len());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(job) = jobs.get(i) else { return };
                if broken.lock().map_or(true, |f| f.is_some()) {
                    return;
                }
                if plan.finished(job).is_some() {
                    continue;
                }
                let recorded = match run_job(job, &plan.folder(&job.variant)) {
                    Ok(computed) => plan.record(job, &computed),
                    Err(SweepError::Variant { message, .. }) => plan.record_failure(job, &message),
                    Err(e) => plan.record_failure(job, &e.to_string()),
                };
                match recorded {
                    Ok(()) => progress(done.fetch_add(1, Ordering::SeqCst) + 1, jobs.len()),
                    Err(e) => {
                        if let Ok(mut f) = broken.lock() {
                            f.get_or_insert(e);
                        }
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = broken.into_inner().ok().flatten() {
        return Err(e);
    }
    Ok(outcomes(plan, jobs))
}
