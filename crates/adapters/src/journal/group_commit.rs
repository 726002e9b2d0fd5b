//! The group commit: the events a broker turn accepts are journaled in one transaction
//! and dispatched only once it is committed. A file journal commits on its writer
//! thread (the broker goes on accepting while SQLite writes, and hears back per batch,
//! in order); an in-memory one (backtests) commits inline, where a thread hop would cost
//! more than the insert. Without a journal, accepted events are dispatched at once.
//!
//! If a commit fails, nothing more is handed out for dispatch: the engine must not act
//! on events it could not record.

use std::collections::VecDeque;

use super::writer::{Done, JournalWriter};
use super::{ConsumerMark, Journal, Serialized};
use crate::events::{CorrelationId, Envelope};

pub use crate::engine_core::Accepted;

/// Where commits go.
enum Store {
    None,
    Inline(Journal),
    Thread(JournalWriter),
}

/// What a flush or a commit's answer leaves the broker to do.
#[derive(Debug)]
pub enum Flushed {
    /// Nothing to dispatch (yet): no batch, or one still on the writer thread.
    Nothing,
    /// This batch is on record: dispatch it, in order.
    Committed(Vec<Accepted>),
    /// Journaling failed: halt, dispatch nothing.
    Failed { error: String, events: usize },
}

pub struct GroupCommit {
    store: Store,
    /// Accepted this turn, in sequence order, waiting for the flush.
    unflushed: Vec<Accepted>,
    /// Consumer marks to commit with the next batch.
    marks: Vec<ConsumerMark>,
    /// Batches on the writer thread, oldest first.
    committing: VecDeque<Vec<Accepted>>,
    failure: Option<String>,
}

impl GroupCommit {
    pub fn new(journal: Option<Journal>) -> Self {
        Self {
            store: journal.map_or(Store::None, Store::Inline),
            unflushed: Vec::new(),
            marks: Vec::new(),
            committing: VecDeque::new(),
            failure: None,
        }
    }

    /// The journal, while it is still read in place (before [`Self::start_writer`]).
    pub fn journal(&self) -> Option<&Journal> {
        match &self.store {
            Store::Inline(j) => Some(j),
            _ => None,
        }
    }

    /// Moves a file journal onto its writer thread; an in-memory one stays inline.
    pub fn start_writer(&mut self) -> Result<(), String> {
        if !matches!(&self.store, Store::Inline(j) if j.is_durable()) {
            return Ok(());
        }
        let Store::Inline(journal) = std::mem::replace(&mut self.store, Store::None) else {
            return Ok(());
        };
        match JournalWriter::spawn(journal) {
            Ok(w) => {
                self.store = Store::Thread(w);
                Ok(())
            }
            Err(e) => {
                self.failure = Some(e.to_string());
                Err(e.to_string())
            }
        }
    }

    /// Whether events go through a journal before dispatch.
    pub fn is_journaled(&self) -> bool {
        !matches!(self.store, Store::None)
    }

    /// Whether the journal survives the process (then consumers' marks are kept).
    pub fn is_durable(&self) -> bool {
        match &self.store {
            Store::None => false,
            Store::Inline(j) => j.is_durable(),
            Store::Thread(w) => w.is_durable(),
        }
    }

    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Records a failure that is not a commit's (the broker's own).
    pub fn fail(&mut self, error: String) {
        self.failure = Some(error);
    }

    /// Nothing waits for a flush: the next event or mark starts a new turn's batch.
    pub fn is_idle(&self) -> bool {
        self.unflushed.is_empty() && self.marks.is_empty()
    }

    /// Events waiting for the flush.
    pub fn pending(&self) -> usize {
        self.unflushed.len()
    }

    /// Whether the writer works on its own thread (long turns then commit in slices).
    pub fn is_threaded(&self) -> bool {
        matches!(self.store, Store::Thread(_))
    }

    /// Adds an accepted event, keeping sequence order (events made while accepting
    /// another have later numbers but may be added first).
    pub fn push(&mut self, accepted: Accepted) {
        let at = self.unflushed.partition_point(|(s, _, _)| *s < accepted.0);
        self.unflushed.insert(at, accepted);
    }

    pub fn mark(&mut self, mark: ConsumerMark) {
        self.marks.push(mark);
    }

    /// Without a journal: the accepted events, to dispatch now.
    pub fn take_unjournaled(&mut self) -> Vec<Accepted> {
        std::mem::take(&mut self.unflushed)
    }

    /// Whether an event of `correlation` is accepted but not yet committed.
    pub fn holds(&self, correlation: &CorrelationId) -> bool {
        self.unflushed
            .iter()
            .chain(self.committing.iter().flatten())
            .any(|(_, e, _)| e.correlation_id == *correlation)
    }

    /// Commits what this turn accepted: inline at once, or handed to the writer thread,
    /// whose answer comes through `done` (then call [`Self::committed`]).
    pub fn flush(&mut self, done: impl FnOnce(Result<(), String>) + Send + 'static) -> Flushed {
        let batch = std::mem::take(&mut self.unflushed);
        let marks = std::mem::take(&mut self.marks);
        match &mut self.store {
            Store::None => Flushed::Nothing,
            Store::Inline(journal) => {
                let entries: Vec<(u64, &Envelope)> = batch
                    .iter()
                    .map(|(seq, env, _)| (*seq, env.as_ref()))
                    .collect();
                let result = journal.append(&entries, &marks).map_err(|e| e.to_string());
                self.committing.push_back(batch);
                self.committed(result)
            }
            Store::Thread(writer) => {
                // Serialised here, inserted there: the two threads share the work.
                let mut events = Vec::with_capacity(batch.len());
                for (seq, env, _) in &batch {
                    match Serialized::of(*seq, env) {
                        Ok(z) => events.push((*seq, env.clone(), z)),
                        Err(e) => return self.failed(e.to_string(), batch.len()),
                    }
                }
                let done: Done = Box::new(done);
                match writer.submit(events, marks, done) {
                    Ok(()) => {
                        self.committing.push_back(batch);
                        Flushed::Nothing
                    }
                    Err(e) => self.failed(e, batch.len()),
                }
            }
        }
    }

    /// The answer for the oldest batch handed over.
    pub fn committed(&mut self, result: Result<(), String>) -> Flushed {
        let Some(batch) = self.committing.pop_front() else {
            return Flushed::Nothing;
        };
        match result {
            Ok(()) if self.failure.is_none() => Flushed::Committed(batch),
            Ok(()) => Flushed::Nothing,
            Err(e) => self.failed(e, batch.len()),
        }
    }

    fn failed(&mut self, error: String, events: usize) -> Flushed {
        self.failure = Some(error.clone());
        Flushed::Failed { error, events }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::causation::Recorded;
    use crate::clock::SystemClock;
    use crate::events::TradingResumed;
    use std::sync::Arc;

    fn accepted(seq: u64) -> Accepted {
        let env = Envelope::root(
            TradingResumed {
                detail: format!("{seq}"),
            },
            "test",
            &SystemClock,
            None,
        );
        (
            seq,
            Arc::new(env),
            Recorded {
                stage: None,
                closed_workflow: false,
            },
        )
    }

    fn seqs(batch: &[Accepted]) -> Vec<u64> {
        batch.iter().map(|(s, _, _)| *s).collect()
    }

    #[test]
    fn an_inline_turn_commits_in_sequence_order_and_hands_the_batch_back() {
        let mut commit = GroupCommit::new(Some(Journal::in_memory().unwrap()));
        assert!(commit.is_journaled() && !commit.is_durable() && commit.is_idle());
        commit.push(accepted(2));
        commit.push(accepted(1));
        commit.push(accepted(3));
        assert!(commit.holds(&commit.unflushed[0].1.correlation_id));
        match commit.flush(|_| {}) {
            Flushed::Committed(batch) => assert_eq!(seqs(&batch), [1, 2, 3]),
            other => panic!("{other:?}"),
        }
        assert!(commit.is_idle());
        assert_eq!(commit.journal().unwrap().last_seq(), 3);
    }

    #[test]
    fn a_failed_commit_dispatches_nothing_then_or_after() {
        let mut commit = GroupCommit::new(Some(Journal::in_memory().unwrap()));
        // Seq 2 without seq 1: the journal refuses the gap.
        commit.push(accepted(2));
        assert!(matches!(
            commit.flush(|_| {}),
            Flushed::Failed { events: 1, .. }
        ));
        assert!(commit.failure().is_some());
        commit.push(accepted(1));
        assert!(matches!(commit.flush(|_| {}), Flushed::Nothing));
    }

    #[test]
    fn without_a_journal_events_are_handed_out_unjournaled() {
        let mut commit = GroupCommit::new(None);
        assert!(!commit.is_journaled());
        commit.push(accepted(1));
        assert_eq!(seqs(&commit.take_unjournaled()), [1]);
        assert!(matches!(commit.flush(|_| {}), Flushed::Nothing));
    }
}
