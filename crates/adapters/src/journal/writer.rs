//! The journal on its own thread: the broker hands each group commit over and goes on
//! accepting events while SQLite writes, and dispatches a batch when its commit is
//! confirmed (in order: one writer, one queue). On a two-core machine this overlaps the
//! broker's work with the journal's.
//!
//! Checkpoints (copying the WAL into the database file, with an fsync each side) run on a
//! third thread with its own connection, every 64 MiB of committed rows: SQLite's
//! automatic checkpoint would run them inside a commit, stalling every event behind it.
//! A passive checkpoint never blocks the writer; the WAL starts over once a checkpoint
//! has caught up with it.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use super::{ConsumerMark, Journal, Serialized};
use crate::events::Envelope;

/// Called on the writer thread with the commit's outcome.
pub type Done = Box<dyn FnOnce(Result<(), String>) + Send>;

struct Job {
    events: Vec<(u64, Arc<Envelope>, Serialized)>,
    marks: Vec<ConsumerMark>,
    done: Done,
}

pub struct JournalWriter {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    /// Ends when the writer thread (which holds its requests' sender) has ended.
    checkpointer: Option<JoinHandle<()>>,
    durable: bool,
}

impl JournalWriter {
    /// Moves `journal` onto a writer thread (and, for a file, its checkpoints onto
    /// another).
    pub fn spawn(journal: Journal) -> std::io::Result<Self> {
        Self::spawn_checkpointing_every(journal, CHECKPOINT_EVERY)
    }

    /// [`JournalWriter::spawn`], checkpointing every `bytes` of committed rows.
    pub fn spawn_checkpointing_every(mut journal: Journal, bytes: usize) -> std::io::Result<Self> {
        let durable = journal.is_durable();
        let (checkpoints, checkpointer) = match journal.checkpoint_connection() {
            Ok(Some(conn)) => {
                let (tx, handle) = spawn_checkpointer(conn)?;
                (Some(tx), Some(handle))
            }
            Ok(None) => (None, None),
            Err(e) => {
                tracing::warn!(error = %e, "journal checkpoints stay in the writer's commits");
                (None, None)
            }
        };
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || {
                let mut since_checkpoint = 0usize;
                for job in rx {
                    let entries: Vec<(u64, &Envelope, &Serialized)> = job
                        .events
                        .iter()
                        .map(|(s, e, z)| (*s, e.as_ref(), z))
                        .collect();
                    let result = journal
                        .append_serialized(&entries, &job.marks)
                        .map_err(|e| e.to_string());
                    if let (Ok(()), Some(checkpoints)) = (&result, &checkpoints) {
                        since_checkpoint += entries
                            .iter()
                            .map(|(_, _, z)| z.stored_len())
                            .sum::<usize>();
                        if since_checkpoint >= bytes {
                            since_checkpoint = 0;
                            let _ = checkpoints.send(());
                        }
                    }
                    (job.done)(result);
                }
            })?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            checkpointer,
            durable,
        })
    }

    pub fn is_durable(&self) -> bool {
        self.durable
    }

    /// Queues one group commit; `done` runs once it is committed (or failed).
    pub fn submit(
        &self,
        events: Vec<(u64, Arc<Envelope>, Serialized)>,
        marks: Vec<ConsumerMark>,
        done: Done,
    ) -> Result<(), String> {
        let tx = self.tx.as_ref().ok_or("journal writer stopped")?;
        tx.send(Job {
            events,
            marks,
            done,
        })
        .map_err(|_| "journal writer stopped".to_string())
    }
}

/// Committed row bytes between two checkpoints.
const CHECKPOINT_EVERY: usize = 64 << 20;

/// The checkpoint thread: a passive checkpoint per request, until the writer is gone.
fn spawn_checkpointer(
    conn: rusqlite::Connection,
) -> std::io::Result<(mpsc::Sender<()>, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel::<()>();
    let handle = std::thread::Builder::new()
        .name("journal-checkpoint".into())
        .spawn(move || {
            while rx.recv().is_ok() {
                // Requests that queued up during a slow checkpoint need no second run.
                while rx.try_recv().is_ok() {}
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "journal checkpoint failed; the next one retries");
                }
            }
        })?;
    Ok((tx, handle))
}

impl Drop for JournalWriter {
    /// Lets the writer finish what is queued, then joins it and the checkpoint thread.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(t) = self.checkpointer.take() {
            let _ = t.join();
        }
    }
}
