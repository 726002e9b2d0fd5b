//! The SQLite journal on a real file: appends in sequence, verification of the hash
//! chain and causation, detection of a flipped byte, and reopening.

use std::path::Path;

use alchemiser::clock::SystemClock;
use alchemiser::events::*;
use alchemiser::journal::{Journal, SyncMode};

fn workflow() -> Vec<Envelope> {
    let clock = SystemClock;
    let root = Envelope::root(
        WorkflowStarted {
            as_of: chrono::NaiveDate::from_ymd_opt(2024, 1, 2).unwrap(),
            mode: Default::default(),
            trigger: alchemiser::domain::Trigger::Test,
            attempt: 0,
        },
        "engine",
        &clock,
        None,
    );
    let done = Envelope::caused_by(
        &root,
        WorkflowFailed {
            step: "strategy".into(),
            reason: FailureReason::StepFailed,
            detail: "MARKER-DETAIL-TEXT".into(),
        },
        "strategy",
        &clock,
    );
    let note = Envelope::caused_by(
        &done,
        RecoveryAction {
            failed_correlation: root.correlation_id,
            action: RecoveryKind::Noted,
            attempt: 0,
            detail: "noted".into(),
        },
        "recovery",
        &clock,
    );
    vec![root, done, note]
}

fn append(j: &mut Journal, events: &[Envelope]) {
    let start = j.last_seq() + 1;
    let batch: Vec<(u64, &Envelope)> = events
        .iter()
        .enumerate()
        .map(|(i, e)| (start + i as u64, e))
        .collect();
    j.append_batch(&batch).unwrap();
}

#[test]
fn appends_verify_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/journal.sqlite");
    let first = workflow();
    let second = workflow();
    {
        let mut j = Journal::open(&path, SyncMode::Full).unwrap();
        append(&mut j, &first);
        assert_eq!(j.last_seq(), 3);
    }
    let mut j = Journal::open(&path, SyncMode::Normal).unwrap();
    assert_eq!(j.last_seq(), 3, "reopened at the last sequence");
    append(&mut j, &second);
    let report = j.verify().unwrap();
    assert_eq!(report.entries, 6);
    assert_eq!(report.first_broken, None);
    let back = j.correlation(&first[0].correlation_id).unwrap();
    assert_eq!(back.len(), 3);
    assert_eq!(back[1].envelope, first[1]);
    assert_eq!(
        back.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    // Out-of-order appends are refused.
    let extra = workflow();
    assert!(j.append_batch(&[(99, &extra[0])]).is_err());
}

/// Flips one bit in every place `marker` is stored (a row's text may also linger in
/// free pages; flipping them all guarantees the live row is hit).
fn flip_byte_in(path: &Path, marker: &[u8]) {
    let mut bytes = std::fs::read(path).unwrap();
    let places: Vec<usize> = bytes
        .windows(marker.len())
        .enumerate()
        .filter(|(_, w)| *w == marker)
        .map(|(i, _)| i)
        .collect();
    assert!(!places.is_empty(), "marker stored in the file");
    for at in places {
        bytes[at] ^= 0x01;
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_flipped_byte_is_found_at_its_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite");
    {
        let mut j = Journal::open(&path, SyncMode::Full).unwrap();
        append(&mut j, &workflow());
        append(&mut j, &workflow());
        // Fold the WAL into the main file so the bytes are there to flip.
        drop(j);
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
    drop(conn);
    flip_byte_in(&path, b"MARKER-DETAIL-TEXT");
    let j = Journal::open(&path, SyncMode::Normal).unwrap();
    let report = j.verify().unwrap();
    let (seq, why) = report.first_broken.expect("corruption detected");
    assert_eq!(seq, 2, "{why}");
    assert!(why.contains("changed after it was written"), "{why}");
}

#[test]
fn a_causation_pointing_nowhere_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite");
    let mut j = Journal::open(&path, SyncMode::Normal).unwrap();
    let mut events = workflow();
    events.remove(1); // the recovery note's cause is gone
    append(&mut j, &events);
    let report = j.verify().unwrap();
    let (seq, why) = report.first_broken.unwrap();
    assert_eq!(seq, 2);
    assert!(why.contains("is not an earlier event"), "{why}");
}

/// A journal written by the version before entry format 2 (30 events of two
/// `run --once`, format 1 rows, schema version 2): it migrates, verifies, takes format 2
/// rows after its own, and a changed byte in either kind of row is still found.
mod formats {
    use super::*;

    fn old_journal(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("journal.sqlite");
        std::fs::copy(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/journal_format1.sqlite"
            ),
            &path,
        )
        .unwrap();
        path
    }

    fn broken_at(path: &Path) -> Option<(u64, String)> {
        Journal::open(path, SyncMode::Normal)
            .unwrap()
            .verify()
            .unwrap()
            .first_broken
    }

    fn sql(path: &Path, statement: &str) {
        let conn = rusqlite::Connection::open(path).unwrap();
        assert_eq!(conn.execute(statement, []).unwrap(), 1, "{statement}");
    }

    #[test]
    fn an_old_journal_verifies_and_continues_in_the_new_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = old_journal(dir.path());
        {
            let mut j = Journal::open(&path, SyncMode::Normal).unwrap();
            assert_eq!(j.last_seq(), 30);
            assert_eq!(j.verify().unwrap().first_broken, None);
            append(&mut j, &workflow());
            let report = j.verify().unwrap();
            assert_eq!((report.entries, report.first_broken), (33, None));
        }
        let conn = rusqlite::Connection::open(&path).unwrap();
        let formats: Vec<(i64, i64)> = conn
            .prepare("SELECT entry_format, count(*) FROM events GROUP BY entry_format")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(formats, vec![(1, 30), (2, 3)]);
    }

    /// The previous version wrote these events: their content hashes and payload hashes,
    /// recomputed now, must be the same (canonical encodings and payload JSON are
    /// contracts: idempotency keys and chain digests compare across versions).
    #[test]
    fn hashes_written_by_the_previous_version_recompute_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&old_journal(dir.path()), SyncMode::Normal).unwrap();
        let mut content_hashes = 0;
        for e in j.entries().unwrap() {
            assert_eq!(e.envelope.payload_hash(), e.payload_hash, "seq {}", e.seq);
            match &e.envelope.payload {
                Payload::SignalGenerated(s) => {
                    let again =
                        SignalGenerated::compute_hash(s.as_of, &s.target_weights, &s.strategies);
                    assert_eq!(again, s.signal_hash);
                    content_hashes += 1;
                }
                Payload::RebalancePlanned(p) => {
                    let again = RebalancePlanned::compute_hash(
                        &p.signal_hash,
                        p.portfolio_value,
                        p.cash,
                        &p.items,
                    );
                    assert_eq!(again, p.plan_hash);
                    content_hashes += 1;
                }
                Payload::ExecutionStarted(x) => {
                    let again = ExecutionStarted::compute_hash(&x.plan_hash, &x.orders);
                    assert_eq!(again, x.execution_plan_hash);
                    content_hashes += 1;
                }
                _ => {}
            }
        }
        assert!(content_hashes >= 3, "{content_hashes}");
    }

    #[test]
    fn a_changed_format_1_row_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = old_journal(dir.path());
        sql(&path, "UPDATE events SET source = 'someone' WHERE seq = 7");
        let (seq, why) = broken_at(&path).expect("found");
        assert_eq!(seq, 7, "{why}");
    }

    #[test]
    fn every_column_of_a_format_2_row_is_covered() {
        let changes = [
            ("source = 'someone'", "column source"),
            ("event_type = 'order.filled.v1'", "column event_type"),
            (
                "occurred_at = '2020-01-01T00:00:00+00:00'",
                "column occurred_at",
            ),
            ("correlation_id = event_id", "column correlation_id"),
            ("schema_version = 9", "column schema_version"),
            ("payload_hash = chain_hash", "hash chain"),
            (
                "envelope = replace(envelope, 'MARKER-DETAIL-TEXT', 'MARKER-DETAIL-TEXU')",
                "payload does not match its hash",
            ),
            (
                "envelope = replace(envelope, '\"strategy\"', '\"strategz\"')",
                "hash chain",
            ),
        ];
        for (change, expected) in changes {
            let dir = tempfile::tempdir().unwrap();
            let path = old_journal(dir.path());
            {
                let mut j = Journal::open(&path, SyncMode::Normal).unwrap();
                append(&mut j, &workflow());
            }
            sql(&path, &format!("UPDATE events SET {change} WHERE seq = 32"));
            let (seq, why) = broken_at(&path).expect(change);
            assert_eq!(seq, 32, "{change}: {why}");
            assert!(why.contains(expected), "{change}: {why}");
        }
    }
}

/// The writer's checkpoints run on their own thread: committed rows reach the database
/// file while the writer is still open, and the journal verifies afterwards.
#[test]
fn checkpoints_copy_the_wal_into_the_file_while_the_writer_runs() {
    use alchemiser::journal::writer::JournalWriter;
    use alchemiser::journal::Serialized;
    use std::sync::{mpsc, Arc};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite");
    let journal = Journal::open(&path, SyncMode::Normal).unwrap();
    let before = std::fs::metadata(&path).unwrap().len();
    let writer = JournalWriter::spawn_checkpointing_every(journal, 1).unwrap();
    let mut seq = 0;
    for _ in 0..5 {
        let events: Vec<_> = workflow()
            .into_iter()
            .map(|env| {
                seq += 1;
                let z = Serialized::of(seq, &env).unwrap();
                (seq, Arc::new(env), z)
            })
            .collect();
        let (tx, rx) = mpsc::channel();
        writer
            .submit(events, Vec::new(), Box::new(move |r| tx.send(r).unwrap()))
            .unwrap();
        rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(&path).unwrap().len() <= before {
        assert!(Instant::now() < deadline, "no checkpoint reached the file");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(writer);
    let report = Journal::open(&path, SyncMode::Normal)
        .unwrap()
        .verify()
        .unwrap();
    assert_eq!((report.entries, report.first_broken), (15, None));
}

mod engine_journal {
    use std::process::Command;
    use std::sync::Arc;
    use std::time::Duration;

    use alchemiser::actors::broker::{AwaitWorkflow, QueryStats, StartWorkflow};
    use alchemiser::actors::engine::{Engine, EngineDeps};
    use alchemiser::clock::SystemClock;
    use alchemiser::config::Config;
    use alchemiser::events::{EventKind, WorkflowStarted};
    use alchemiser::journal::{Journal, SyncMode};
    use alchemiser::strategy::book::StrategyBook;
    use alchemiser::venues::sim::SimVenue;
    use alchemiser::workflow::WorkflowStatus;
    use rust_decimal::Decimal;

    fn deps() -> EngineDeps {
        EngineDeps::new(
            Config::default(),
            Arc::new(SystemClock),
            Arc::new(SimVenue::with_cash(Decimal::from(1000))),
            Arc::new(StrategyBook::empty()),
        )
    }

    async fn one_workflow(
        path: &std::path::Path,
        day: u32,
    ) -> (alchemiser::causation::WorkflowSummary, u64) {
        let journal = Journal::open(path, SyncMode::Full).unwrap();
        let broker = Engine::builder(deps())
            .journal(Some(journal))
            .start()
            .broker()
            .clone();
        let id = broker
            .send(StartWorkflow {
                started: WorkflowStarted {
                    as_of: chrono::NaiveDate::from_ymd_opt(2024, 3, day).unwrap(),
                    mode: Default::default(),
                    trigger: alchemiser::domain::Trigger::Test,
                    attempt: 0,
                },
                triggered_by: None,
                correlation_id: None,
            })
            .await
            .unwrap()
            .unwrap();
        let summary = tokio::time::timeout(Duration::from_secs(10), broker.send(AwaitWorkflow(id)))
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let stats = broker.send(QueryStats).await.unwrap();
        (summary, stats.last_seq)
    }

    #[actix_rt::test]
    async fn every_event_is_journaled_and_sequences_continue_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        let (first, last1) = one_workflow(&path, 4).await;
        assert_eq!(first.status, WorkflowStatus::Completed);
        assert_eq!(last1, first.events as u64);
        let (second, last2) = one_workflow(&path, 5).await;
        assert_eq!(second.status, WorkflowStatus::Completed);
        assert_eq!(
            last2,
            last1 + second.events as u64,
            "the second engine continued the sequence"
        );

        let j = Journal::open(&path, SyncMode::Normal).unwrap();
        assert_eq!(j.last_seq(), last2);
        assert_eq!(j.verify().unwrap().first_broken, None);
        let entries = j.correlation(&second.correlation_id).unwrap();
        assert_eq!(entries.len(), second.events);
        assert_eq!(
            entries.last().unwrap().envelope.kind(),
            EventKind::WorkflowCompleted
        );
    }

    #[actix_rt::test]
    async fn the_commands_verify_trace_and_replay_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        let (summary, _) = one_workflow(&path, 4).await;
        let bin = env!("CARGO_BIN_EXE_alchemiser");
        let verify = Command::new(bin)
            .args(["journal", "verify", "--journal"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            verify.status.success(),
            "{}",
            String::from_utf8_lossy(&verify.stderr)
        );
        let id = summary.correlation_id.to_string();
        let trace = Command::new(bin)
            .args(["trace", &id, "--journal"])
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&trace.stdout);
        assert!(trace.status.success());
        assert!(
            text.contains("(completed)") && text.contains("workflow.started.v1  [engine]"),
            "{text}"
        );
        assert_eq!(text.lines().count(), summary.events + 1);
        let replay = Command::new(bin)
            .args([
                "journal",
                "replay",
                "--format",
                "json",
                "--correlation",
                &id,
                "--journal",
            ])
            .arg(&path)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&replay.stdout).unwrap();
        assert_eq!(v["status"], "completed");
        assert_eq!(v["events"].as_array().unwrap().len(), summary.events);
        // For people (the default): a heading, then one line per event saying what it says.
        let table = Command::new(bin)
            .args(["journal", "replay", "--correlation", &id, "--journal"])
            .arg(&path)
            .output()
            .unwrap();
        let table = String::from_utf8_lossy(&table.stdout);
        assert!(
            table.starts_with(&format!("workflow {id}: completed at ")),
            "{table}"
        );
        assert_eq!(table.lines().count(), summary.events + 1, "{table}");
        for (line, event) in table.lines().skip(1).zip(v["events"].as_array().unwrap()) {
            assert!(
                line.ends_with(event["says"].as_str().unwrap()),
                "{line} / {event}"
            );
        }
        for text in [&table, &text] {
            assert!(!text.contains("Some(") && !text.contains("None"), "{text}");
        }

        // Corrupt one stored event: verify names the seq and exits non-zero.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute("UPDATE events SET envelope = replace(envelope, '\"engine\"', '\"engind\"') WHERE seq = 1", []).unwrap();
        drop(conn);
        let broken = Command::new(bin)
            .args(["journal", "verify", "--journal"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(broken.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&broken.stderr).contains("journal broken at seq 1"));
    }
}

mod consumer_marks {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use alchemiser::actors::broker::{QueryStats, StartWorkflow};
    use alchemiser::actors::engine::{Engine, EngineDeps};
    use alchemiser::actors::supervision::{EventHandler, HandlerFault, Reaction, Registry};
    use alchemiser::clock::SystemClock;
    use alchemiser::config::Config;
    use alchemiser::events::{Envelope, EventKind, WorkflowStarted};
    use alchemiser::journal::{Journal, SyncMode};
    use alchemiser::strategy::book::StrategyBook;
    use alchemiser::venues::sim::SimVenue;
    use rust_decimal::Decimal;

    /// Counts what it handles and publishes nothing (the workflow stays open).
    struct Counter(Arc<AtomicU32>);

    impl EventHandler for Counter {
        fn handle(&mut self, _event: &Arc<Envelope>) -> Result<Reaction, HandlerFault> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(Reaction::nothing())
        }
    }

    fn registry(names: &[(&'static str, Arc<AtomicU32>)]) -> Registry {
        let deps = EngineDeps::new(
            Config::default(),
            Arc::new(SystemClock),
            Arc::new(SimVenue::with_cash(Decimal::ONE)),
            Arc::new(StrategyBook::empty()),
        );
        let mut r = Registry::new(deps);
        for (name, count) in names {
            let c = count.clone();
            r.add(name, &[EventKind::WorkflowStarted], move || {
                Counter(c.clone())
            });
        }
        r
    }

    #[test]
    fn a_replayed_event_is_skipped_for_consumers_that_handled_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        let first = Arc::new(AtomicU32::new(0));
        {
            let system = actix::System::new();
            let f = first.clone();
            let p = path.clone();
            system.block_on(async move {
                let journal = Journal::open(&p, SyncMode::Full).unwrap();
                let broker = Engine::with_registry(registry(&[("handled", f.clone())]))
                    .journal(Some(journal))
                    .start()
                    .broker()
                    .clone();
                broker
                    .send(StartWorkflow {
                        started: WorkflowStarted {
                            as_of: chrono::NaiveDate::from_ymd_opt(2024, 3, 4).unwrap(),
                            mode: Default::default(),
                            trigger: alchemiser::domain::Trigger::Test,
                            attempt: 0,
                        },
                        triggered_by: None,
                        correlation_id: None,
                    })
                    .await
                    .unwrap()
                    .unwrap();
                // Wait until the consumer handled it and its mark is committed.
                for _ in 0..200 {
                    if f.load(Ordering::SeqCst) == 1
                        && broker.send(QueryStats).await.unwrap().last_seq == 1
                    {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            });
        }
        assert_eq!(first.load(Ordering::SeqCst), 1);
        // The engine restarts: the workflow is unfinished, so its last event (the root) is
        // handed out again — but not to the consumer that already handled it.
        let again = Arc::new(AtomicU32::new(0));
        let newcomer = Arc::new(AtomicU32::new(0));
        let system = actix::System::new();
        let (a, n, p) = (again.clone(), newcomer.clone(), path.clone());
        let skipped = system.block_on(async move {
            let journal = Journal::open(&p, SyncMode::Full).unwrap();
            let broker =
                Engine::with_registry(registry(&[("handled", a.clone()), ("newcomer", n.clone())]))
                    .journal(Some(journal))
                    .start()
                    .broker()
                    .clone();
            for _ in 0..200 {
                if n.load(Ordering::SeqCst) == 1 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            broker.send(QueryStats).await.unwrap().skipped_duplicates
        });
        assert_eq!(
            newcomer.load(Ordering::SeqCst),
            1,
            "a consumer that never saw it gets it"
        );
        assert_eq!(
            again.load(Ordering::SeqCst),
            0,
            "the consumer that handled it is skipped"
        );
        assert_eq!(skipped, 1);
    }
}

#[test]
fn verify_reports_an_event_id_journaled_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite");
    let mut j = Journal::open(&path, SyncMode::Normal).unwrap();
    let events = workflow();
    // A second engine once appended the same event (ids are unique per event).
    append(&mut j, &events);
    append(&mut j, &events[..1]);
    let report = j.verify().unwrap();
    let (seq, why) = report.first_broken.expect("the duplicate is found");
    assert_eq!(seq, 4);
    assert!(
        why.contains(&format!("duplicate event id {}", events[0].event_id)),
        "{why}"
    );
    assert!(why.contains("first at seq 1"), "{why}");
}

#[test]
fn a_lost_tail_is_found_even_when_what_is_left_chains() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite");
    let mut j = Journal::open(&path, SyncMode::Normal).unwrap();
    append(&mut j, &workflow());
    append(&mut j, &workflow());
    assert_eq!(j.verify().unwrap().first_broken, None);
    drop(j);
    // An older copy of the file put back: three entries, chaining fine on their own.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute("DELETE FROM events WHERE seq > 3", [])
            .unwrap();
    }
    let j = Journal::open(&path, SyncMode::Normal).unwrap();
    let lost = j.lost_tail().unwrap().expect("the loss is found");
    assert!(
        lost.contains("ends at seq 3") && lost.contains("records seq 6"),
        "{lost}"
    );
    let (seq, why) = j.verify().unwrap().first_broken.unwrap();
    assert_eq!((seq, why), (4, lost));
}
