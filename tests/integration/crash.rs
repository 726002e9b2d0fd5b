//! Crash tests: the engine runs as a child process against a fake Alpaca this test owns,
//! is aborted (no cleanup, as with kill -9) right after chosen journal commits, and is
//! started again. Every time: the interrupted workflow completes, every intended order
//! exists exactly once at the venue, positions equal the fills, and the journal verifies.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use alchemiser::events::{EventKind, Payload};
use alchemiser::journal::{Journal, SyncMode};
use alchemiser::venues::alpaca::fake::FakeAlpaca;
use rust_decimal::Decimal;

const KEY: &str = "PKCRASHTEST01";
const SECRET: &str = "crash-secret";

fn fake() -> FakeAlpaca {
    common::fake_alpaca(KEY, SECRET, "2023-09-21")
}

fn config(dir: &Path, fake: &FakeAlpaca) -> std::path::PathBuf {
    config_with(dir, fake, "")
}

fn config_with(dir: &Path, fake: &FakeAlpaca, extra: &str) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cfg = dir.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[metrics]\nenabled = false\n[strategy]\ndata = {:?}\n[[strategy.files]]\npath = {:?}\n[journal]\npath = {:?}\n[alpaca]\ntrading_url = {:?}\ndata_url = {:?}\n",
            root.join("examples/data").display().to_string(),
            root.join("examples/strategies/default.clj").display().to_string(),
            dir.join("journal.sqlite").display().to_string(),
                        fake.url(),
            fake.url(),
        ) + extra,
    )
    .unwrap();
    cfg
}

fn run(cfg: &Path, crash_after: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_alchemiser"));
    c.args(["run", "--once", "--as-of", "2023-09-21", "--config"])
        .arg(cfg)
        .env("APCA_API_KEY_ID", KEY)
        .env("APCA_API_SECRET_KEY", SECRET)
        .env("RUST_LOG", "warn");
    match crash_after {
        Some(point) => c.env("ALCHEMISER_CRASH_AFTER", point),
        None => c.env_remove("ALCHEMISER_CRASH_AFTER"),
    };
    c.output().unwrap()
}

/// The kill points: after each kind of commit in a trading workflow, after the n-th
/// order submission and fill are committed, and after the venue accepted the n-th order
/// but before the engine recorded anything about it.
fn kill_points() -> Vec<String> {
    let mut points: Vec<String> = [
        "workflow.started.v1",
        "strategy.signal.generated.v1",
        "portfolio.allocation.compared.v1",
        "portfolio.rebalance.planned.v1",
        "execution.started.v1",
        "execution.order.settled.v1",
        "reconciliation.completed.v1",
        "workflow.completed.v1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for n in 1..=5 {
        points.push(format!("execution.order.submitted.v1:{n}"));
        points.push(format!("execution.order.filled.v1:{n}"));
        // The venue has the order, the journal does not know yet: the resumed execution
        // must adopt it (same client order id), not place it again.
        points.push(format!("venue.submit:{n}"));
        // The intent is on disk, the venue never heard of it.
        points.push(format!("outbox.intent:{n}"));
        // The venue accepted it, the outbox has no outcome yet.
        points.push(format!("venue.accepted:{n}"));
    }
    // In the middle of a group commit: rows written, transaction not committed.
    for n in [1, 3, 6] {
        points.push(format!("journal.commit:{n}"));
    }
    points
}

#[test]
fn killed_at_any_commit_the_engine_recovers_without_duplicates() {
    let points = kill_points();
    assert!(points.len() >= 20);
    for point in points {
        let dir = tempfile::tempdir().unwrap();
        let f = fake();
        let cfg = config(dir.path(), &f);

        let crashed = run(&cfg, Some(&point));
        assert!(
            !crashed.status.success(),
            "{point}: the engine should have been aborted"
        );
        assert!(
            String::from_utf8_lossy(&crashed.stderr).contains("ALCHEMISER_CRASH_AFTER"),
            "{point}"
        );

        let restarted = run(&cfg, None);
        assert!(
            restarted.status.success(),
            "{point}: restart failed: {}",
            String::from_utf8_lossy(&restarted.stderr)
        );

        let journal = Journal::open(&dir.path().join("journal.sqlite"), SyncMode::Normal).unwrap();
        assert_eq!(journal.verify().unwrap().first_broken, None, "{point}");
        let entries = journal.entries().unwrap();
        let first = first_workflow(&entries);
        let first_events: Vec<_> = entries
            .iter()
            .filter(|e| e.envelope.correlation_id == first)
            .collect();
        assert_eq!(
            first_events.last().map(|e| e.envelope.kind()),
            Some(EventKind::WorkflowCompleted),
            "{point}: the interrupted workflow completed: {:#?}\n{}",
            first_events
                .iter()
                .map(|e| (
                    e.envelope.kind(),
                    format!("{:?}", e.envelope.payload)
                        .chars()
                        .take(300)
                        .collect::<String>()
                ))
                .collect::<Vec<_>>(),
            String::from_utf8_lossy(&restarted.stderr)
        );
        assert!(
            journal.open_workflows().unwrap().is_empty(),
            "{point}: nothing left unfinished"
        );

        let state = f.state();
        assert!(!state.created.is_empty(), "{point}: orders were placed");
        assert!(
            state.created.values().all(|n| *n == 1),
            "{point}: an order was created twice: {:?}",
            state.created
        );
        // Positions equal what the journal says was filled.
        let mut filled: std::collections::BTreeMap<alchemiser::domain::Symbol, Decimal> =
            Default::default();
        let mut fill_ids = std::collections::BTreeSet::new();
        for e in &entries {
            if let Payload::OrderFilled(fill) = &e.envelope.payload {
                if fill_ids.insert(fill.fill_id.clone()) {
                    *filled.entry(fill.symbol.clone()).or_default() += fill.qty;
                }
            }
        }
        assert_eq!(
            state.positions, filled,
            "{point}: venue positions equal the journaled fills"
        );
    }
}

/// With `recovery.resume = "fail"` the interrupted workflow is not re-run: the outbox alone
/// must account for its orders — adopting the one the venue accepted, sending the one it
/// never received — each exactly once.
#[test]
fn the_outbox_resolves_intents_when_workflows_are_not_resumed() {
    for point in ["venue.accepted:2", "outbox.intent:3"] {
        let dir = tempfile::tempdir().unwrap();
        let f = fake();
        let cfg = config_with(dir.path(), &f, "[recovery]\nresume = \"fail\"\n");
        let crashed = run(&cfg, Some(point));
        assert!(!crashed.status.success(), "{point}");
        let before: usize = f.state().created.len();
        let restarted = run(&cfg, None);
        assert!(
            restarted.status.success(),
            "{point}: {}",
            String::from_utf8_lossy(&restarted.stderr)
        );
        let stderr = String::from_utf8_lossy(&restarted.stderr);
        if point.starts_with("venue.accepted") {
            assert!(
                stderr.contains("adopted an order the last run sent"),
                "{point}: {stderr}"
            );
        } else {
            assert!(
                stderr.contains("submitted an order the last run intended"),
                "{point}: {stderr}"
            );
            assert_eq!(before, 2, "two orders reached the venue before the crash");
        }
        let journal = Journal::open(&dir.path().join("journal.sqlite"), SyncMode::Normal).unwrap();
        assert_eq!(journal.verify().unwrap().first_broken, None);
        let entries = journal.entries().unwrap();
        let first = first_workflow(&entries);
        let last_of_first = entries
            .iter()
            .rfind(|e| e.envelope.correlation_id == first)
            .map(|e| e.envelope.kind());
        assert_eq!(
            last_of_first,
            Some(EventKind::RecoveryAction),
            "{point}: the interrupted workflow was failed and handed to recovery"
        );
        let outbox =
            alchemiser::journal::outbox::Outbox::open(&dir.path().join("journal.sqlite")).unwrap();
        assert!(
            outbox.pending().unwrap().is_empty(),
            "{point}: every intent resolved"
        );
        let state = f.state();
        assert!(
            state.created.values().all(|n| *n == 1),
            "{point}: {:?}",
            state.created
        );
    }
}

/// The first workflow in the journal (the start-up reconciliation's chain comes first).
fn first_workflow(
    entries: &[alchemiser::journal::JournalEntry],
) -> alchemiser::events::CorrelationId {
    entries
        .iter()
        .find(|e| e.envelope.kind() == EventKind::WorkflowStarted)
        .map(|e| e.envelope.correlation_id)
        .expect("a workflow was journaled")
}
