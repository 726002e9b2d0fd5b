//! Running a sweep's variants: each one's configuration and symphonies made in its own
//! folder, then backtested through the same actors as `backtest` (one actor system per
//! variant), on every core. A variant whose folder already holds its summary is not run
//! again: a sweep whose driver died resumes where it stopped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;

use super::backtest::{after_warm_up, run, sessions};
use crate::backtest::summarize;
use crate::config::Config;
use crate::strategy::book::StrategyBook;
use crate::sweep::{fill_placeholders, set_key, Grid, Outcome, SweepError, Variant};

/// What every variant starts from.
pub struct SweepPlan {
    pub grid: Grid,
    /// The configuration file's table (or the embedded default's).
    pub base: toml::Table,
    /// Where the configuration's relative paths resolve.
    pub base_dir: PathBuf,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub out: PathBuf,
}

impl SweepPlan {
    pub fn folder(&self, variant: &Variant) -> PathBuf {
        self.out.join("variants").join(&variant.id)
    }

    /// The variant's configuration, its symphonies filled in and written to its
    /// folder (with the configuration itself, for a rerun by hand).
    pub fn prepare(&self, variant: &Variant) -> Result<Config, SweepError> {
        let fail = |message: String| SweepError::Variant {
            variant: variant.id.clone(),
            message,
        };
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
                set_key(&mut table, key, value).map_err(fail)?;
            }
        }
        let folder = self.folder(variant);
        std::fs::create_dir_all(&folder).map_err(|e| fail(format!("{}: {e}", folder.display())))?;
        // Paths resolve against the configuration's folder: made absolute here.
        let data = table
            .get("strategy")
            .and_then(|s| s.get("data"))
            .and_then(|d| d.as_str())
            .unwrap_or("examples/data")
            .to_string();
        set_key(
            &mut table,
            "strategy.data",
            self.base_dir.join(data).display().to_string().into(),
        )
        .map_err(fail)?;
        let files: Vec<String> = table
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
        for (i, path) in files.iter().enumerate() {
            let source = self.base_dir.join(path);
            let shown = source.display().to_string();
            let text =
                std::fs::read_to_string(&source).map_err(|e| fail(format!("{shown}: {e}")))?;
            let filled = fill_placeholders(&text, &params, &shown)?;
            let name = Path::new(path).file_name().map_or_else(
                || format!("file{i}.clj"),
                |n| n.to_string_lossy().into_owned(),
            );
            let made = folder.join(format!("{i}-{name}"));
            std::fs::write(&made, filled).map_err(|e| fail(format!("{}: {e}", made.display())))?;
            set_key(
                &mut table,
                &format!("strategy.files.{i}.path"),
                made.display().to_string().into(),
            )
            .map_err(fail)?;
        }
        let text = toml::to_string(&table).map_err(|e| fail(e.to_string()))?;
        let mut config = Config::parse(&text, &format!("variant {}", variant.id))
            .map_err(|e| fail(e.to_string()))?;
        config.base_dir = self.base_dir.clone();
        std::fs::write(folder.join("config.toml"), &text)
            .map_err(|e| fail(format!("{}: {e}", folder.display())))?;
        Ok(config)
    }

    /// The summary a finished variant left in its folder (a resumed sweep skips it).
    pub fn finished(&self, variant: &Variant) -> Option<serde_json::Value> {
        let folder = self.folder(variant);
        let recorded: Variant =
            serde_json::from_slice(&std::fs::read(folder.join("variant.json")).ok()?).ok()?;
        if recorded != *variant {
            return None;
        }
        serde_json::from_slice(&std::fs::read(folder.join("summary.json")).ok()?).ok()
    }

    /// Backtests one variant on this thread; writes its summary; returns it.
    pub fn run_variant(&self, variant: &Variant) -> Result<serde_json::Value, SweepError> {
        let fail = |message: String| SweepError::Variant {
            variant: variant.id.clone(),
            message,
        };
        let config = self.prepare(variant)?;
        let mut book = StrategyBook::load(&config.strategy, &config.base_dir, None)
            .map_err(|e| fail(e.to_string()))?;
        let all = sessions(&book, self.from, self.to).map_err(|e| fail(e.to_string()))?;
        book.keep_until(self.to);
        let book = Arc::new(book);
        let (dates, warm_up) = after_warm_up(&book, &all).map_err(|e| fail(e.to_string()))?;
        let dates = dates.to_vec();
        let system = actix::System::new();
        let mut record = system
            .block_on(run(config, book, &dates, |_, _| {}))
            .map_err(|e| fail(e.to_string()))?;
        record.warm_up_sessions = warm_up;
        let summary = summarize(&record).ok_or_else(|| fail("no sessions".into()))?;
        let json = serde_json::to_value(&summary).map_err(|e| fail(e.to_string()))?;
        let folder = self.folder(variant);
        let write = |name: &str, text: Result<String, serde_json::Error>| {
            let text = text.map_err(|e| fail(e.to_string()))?;
            std::fs::write(folder.join(name), text + "\n").map_err(|e| fail(e.to_string()))
        };
        // The same bytes `backtest` writes for this configuration.
        write("summary.json", serde_json::to_string_pretty(&summary))?;
        // Last: its presence marks the variant finished.
        write("variant.json", serde_json::to_string_pretty(variant))?;
        Ok(json)
    }
}

/// Runs every variant not finished yet on `threads` threads; `progress(done, total)`
/// after each. Outcomes in variant order; the first error stops the sweep.
pub fn run_all(
    plan: &SweepPlan,
    variants: &[Variant],
    threads: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<Outcome>, SweepError> {
    let results: Mutex<Vec<Option<serde_json::Value>>> =
        Mutex::new(variants.iter().map(|v| plan.finished(v)).collect());
    let done = AtomicUsize::new(
        results
            .lock()
            .map(|r| r.iter().filter(|s| s.is_some()).count())
            .unwrap_or(0),
    );
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<SweepError>> = Mutex::new(None);
    progress(done.load(Ordering::SeqCst), variants.len());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(variant) = variants.get(i) else {
                    return;
                };
                if failure.lock().map_or(true, |f| f.is_some()) {
                    return;
                }
                let already = results.lock().is_ok_and(|r| r[i].is_some());
                if already {
                    continue;
                }
                match plan.run_variant(variant) {
                    Ok(summary) => {
                        if let Ok(mut r) = results.lock() {
                            r[i] = Some(summary);
                        }
                        progress(done.fetch_add(1, Ordering::SeqCst) + 1, variants.len());
                    }
                    Err(e) => {
                        if let Ok(mut f) = failure.lock() {
                            f.get_or_insert(e);
                        }
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e);
    }
    let results = results.into_inner().unwrap_or_default();
    Ok(variants
        .iter()
        .zip(results)
        .filter_map(|(v, s)| {
            s.map(|summary| Outcome {
                variant: v.clone(),
                summary,
            })
        })
        .collect())
}
