//! `crash-mid-execution`: the engine runs as a child process against the fake Alpaca
//! server (served by the drill, on loopback), dies mid-run — at a seeded crash point,
//! or by SIGKILL once the venue has an order — and is started again.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::rig::{fake_orders, measure, Rig, KEY, SECRET};
use super::scenarios::Plans;
use crate::drill_report::DrillReport;
use crate::journal::{Journal, SyncMode};

/// Crash points and how many times a run of the bundled day passes each (at least):
/// the n-th pass is drawn from 1..=that.
const POINTS: [(&str, u32); 6] = [
    ("outbox.intent", 3),
    ("venue.accepted", 3),
    ("venue.submit", 3),
    ("execution.order.filled.v1", 3),
    ("execution.started.v1", 1),
    ("journal.commit", 3),
];

fn engine(cfg: &Path, as_of: chrono::NaiveDate) -> Result<Command, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the engine binary: {e}"))?;
    let mut c = Command::new(exe);
    c.args(["run", "--once", "--as-of", &as_of.to_string(), "--config"])
        .arg(cfg)
        .env("APCA_API_KEY_ID", KEY)
        .env("APCA_API_SECRET_KEY", SECRET)
        .env("RUST_LOG", "error")
        .env_remove("ALCHEMISER_CRASH_AFTER")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    Ok(c)
}

pub async fn crash_mid_execution(
    seed: u64,
    iteration: u32,
    plans: &Plans,
) -> Result<DrillReport, String> {
    let mut r = StdRng::seed_from_u64(seed ^ (u64::from(iteration) << 32) ^ 7);
    let mut report = DrillReport::new("crash-mid-execution", seed, iteration);
    let rig = Rig::new("crash", |_| {})?;
    let fake = rig.fake()?;
    let cfg = rig.dir.join("config.toml");
    let c = &rig.config;
    let text = format!(
        "[strategy]\ndata = {:?}\n[[strategy.files]]\npath = {:?}\n[journal]\npath = {:?}\n[venue.sim]\nstate_file = \"\"\n[engine]\ncontrol_dir = {:?}\n[metrics]\nenabled = false\n[recovery]\nbackoff_ms = 20\nbackoff_cap_ms = 200\n[alpaca]\ntrading_url = {:?}\ndata_url = {:?}\ntimeout_secs = 1\n",
        c.resolve(&c.strategy.data).display().to_string(),
        c.resolve(&c.strategy.files[0].path).display().to_string(),
        rig.journal_path().display().to_string(),
        rig.dir.display().to_string(),
        fake.url(),
        fake.url(),
    );
    std::fs::write(&cfg, text).map_err(|e| format!("{}: {e}", cfg.display()))?;
    // Bars for the child's strategies, from the same bundled data.
    for s in rig.book.symbols() {
        if let Ok(bars) = rig.book.source.read(&s) {
            let bars = bars
                .iter()
                .filter(|b| b.date <= rig.as_of)
                .map(crate::venues::alpaca::wire::Bar::from_daily)
                .collect();
            fake.state().bars.insert(s.clone(), bars);
        }
    }
    fake.state().bars_page_size = 2000;

    let sigkill = r.random_range(0..4) == 0;
    let crashed = if sigkill {
        report
            .faults
            .push("SIGKILL once the venue holds an order".into());
        let mut child = engine(&cfg, rig.as_of)?
            .spawn()
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while fake.state().created.is_empty() && Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let _ = child.kill();
        child.wait().map(|s| !s.success()).unwrap_or(false)
    } else {
        let (label, passes) = POINTS[r.random_range(0..POINTS.len())];
        let point = format!("{label}:{}", r.random_range(1..=passes));
        report.faults.push(format!("abort at {point}"));
        let out = engine(&cfg, rig.as_of)?
            .env("ALCHEMISER_CRASH_AFTER", &point)
            .output()
            .map_err(|e| e.to_string())?;
        !out.status.success()
    };
    report.faults_injected = u32::from(crashed);
    report.check("the engine died", crashed, "");
    let restarted = engine(&cfg, rig.as_of)?
        .output()
        .map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&restarted.stderr).to_string();
    report.check(
        "restart completed the day",
        restarted.status.success(),
        // A panic's own lines (where, what), not the backtrace hint after them.
        match stderr.lines().position(|l| l.contains("panicked")) {
            Some(at) => stderr
                .lines()
                .skip(at)
                .take(2)
                .collect::<Vec<_>>()
                .join(" "),
            None => stderr.lines().last().unwrap_or("").to_string(),
        },
    );

    let journal =
        Journal::open(&rig.journal_path(), SyncMode::Normal).map_err(|e| e.to_string())?;
    let entries = journal.entries().map_err(|e| e.to_string())?;
    let attempts: Vec<_> = Vec::new();
    let (orders, created_twice) = fake_orders(&fake);
    let positions = fake.state().positions.clone();
    measure(
        &mut report,
        None,
        &attempts,
        &rig.journal_path(),
        &orders,
        &positions,
        Some(&plans.fake),
        &rig,
    );
    report.duplicate_orders += created_twice;
    report.final_status = if restarted.status.success() {
        "completed".into()
    } else {
        "failed".into()
    };
    report.workflows = entries
        .iter()
        .filter(|e| e.envelope.kind() == crate::events::EventKind::WorkflowStarted)
        .count();
    report.check("positions match the plan", report.positions_match_plan, "");
    Ok(report)
}
