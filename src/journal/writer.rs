//! The journal on its own thread: the broker hands each group commit over and goes on
//! accepting events while SQLite writes, and dispatches a batch when its commit is
//! confirmed (in order: one writer, one queue). On a two-core machine this overlaps the
//! broker's work with the journal's.

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
    durable: bool,
}

impl JournalWriter {
    /// Moves `journal` onto a writer thread.
    pub fn spawn(mut journal: Journal) -> std::io::Result<Self> {
        let durable = journal.is_durable();
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || {
                for job in rx {
                    let entries: Vec<(u64, &Envelope, &Serialized)> = job
                        .events
                        .iter()
                        .map(|(s, e, z)| (*s, e.as_ref(), z))
                        .collect();
                    let result = journal
                        .append_serialized(&entries, &job.marks)
                        .map_err(|e| e.to_string());
                    (job.done)(result);
                }
            })?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
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

impl Drop for JournalWriter {
    /// Lets the writer finish what is queued, then joins it.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
