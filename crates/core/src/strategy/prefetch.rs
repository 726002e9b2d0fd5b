//! Signals evaluated ahead of time for a backtest.
//!
//! A signal depends on the book and the date alone (never on the account), and a
//! backtest knows every date it will run, so a thread of its own can evaluate the next
//! days while the actors plan and trade the current one. The strategy actor still
//! publishes each signal when its workflow starts; it takes the evaluation from here
//! when it is ready and evaluates in place otherwise (a restarted actor re-handling a
//! day, a date out of order). Either way the signal is the same: evaluation is pure.

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;

use super::book::{StrategyBook, StrategyError};
use crate::events::SignalGenerated;

/// Evaluations handed over together: one wake-up of the other thread per batch, not
/// per day (a wake-up per day cost as much as it saved). Batches start small, so the
/// first day waits for few evaluations, and double up to `MAX_BATCH`: the producer runs
/// ahead and blocks on the full queue, and every batch taken wakes it (a futex call).
const FIRST_BATCH: usize = 8;
const MAX_BATCH: usize = 64;
/// Batches queued ahead of the actors: bounds memory however long the backtest.
const BATCHES_AHEAD: usize = 4;

type Evaluated = (NaiveDate, Result<SignalGenerated, StrategyError>);

/// Evaluations of a book for a known sequence of dates, made on a thread of their own.
pub struct SignalPrefetch {
    queue: Mutex<Queue>,
    /// Signals done with, going back to be freed where they were made: the allocator
    /// frees a block fastest on the thread that allocated it, and freeing them on the
    /// actors' thread showed on both threads' profiles.
    spent: Sender<Vec<SignalGenerated>>,
}

struct Queue {
    ready: Receiver<Vec<Evaluated>>,
    /// The batch being taken from, oldest date first.
    current: VecDeque<Evaluated>,
}

impl SignalPrefetch {
    /// Starts evaluating `book` for `dates`, in order. `None` if no thread can be had
    /// (the actor then evaluates every day itself).
    pub fn start(book: Arc<StrategyBook>, dates: Vec<NaiveDate>) -> Option<Self> {
        let (sender, ready) = sync_channel(BATCHES_AHEAD);
        let (spent, freed) = channel::<Vec<SignalGenerated>>();
        std::thread::Builder::new()
            .name("signal-prefetch".into())
            .spawn(move || {
                let mut rest = dates.as_slice();
                let mut size = FIRST_BATCH;
                while !rest.is_empty() {
                    while freed.try_recv().is_ok() {}
                    let (days, later) = rest.split_at(size.min(rest.len()));
                    let batch = days.iter().map(|d| (*d, book.evaluate(*d))).collect();
                    // The receiver is gone: the backtest ended early.
                    if sender.send(batch).is_err() {
                        return;
                    }
                    rest = later;
                    size = (size * 2).min(MAX_BATCH);
                }
            })
            .ok()?;
        Some(Self {
            queue: Mutex::new(Queue {
                ready,
                current: VecDeque::new(),
            }),
            spent,
        })
    }

    /// Hands back signals taken earlier, to be freed on the thread that made them (here,
    /// once that thread has ended).
    pub fn recycle(&self, spent: Vec<SignalGenerated>) {
        if spent.is_empty() {
            return;
        }
        // The thread has ended: the signals are freed here, with the error.
        let _ = self.spent.send(spent);
    }

    /// The evaluation for `as_of`, waiting for it if it is still being made; evaluations
    /// for earlier dates are dropped. `None`: not among those to come, evaluate in place.
    pub fn take(&self, as_of: NaiveDate) -> Option<Result<SignalGenerated, StrategyError>> {
        let mut queue = self.queue.lock().ok()?;
        loop {
            if queue.current.is_empty() {
                queue.current = queue.ready.recv().ok()?.into();
            }
            let date = queue.current.front()?.0;
            match date.cmp(&as_of) {
                Ordering::Less => {
                    queue.current.pop_front();
                }
                Ordering::Equal => return queue.current.pop_front().map(|(_, e)| e),
                // A day handled again: what is prepared stays for the days to come.
                Ordering::Greater => return None,
            }
        }
    }
}
