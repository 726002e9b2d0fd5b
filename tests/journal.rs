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
            trigger: "test".into(),
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
    assert!(why.contains("entry hash"), "{why}");
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
