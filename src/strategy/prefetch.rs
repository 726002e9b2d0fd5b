//! Signals evaluated ahead of time for a backtest.
//!
//! A signal depends on the book and the date alone (never on the account), and a
//! backtest knows every date it will run, so a thread of its own can evaluate the next
//! days while the actors plan and trade the current one. The strategy actor still
//! publishes each signal when its workflow starts; it takes the evaluation from here
//! when it is ready and evaluates in place otherwise (a restarted actor re-handling a
//! day, a date out of order). Either way the signal is the same: evaluation is pure.

use std::cmp::Ordering;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;

use super::book::{StrategyBook, StrategyError};
use crate::events::SignalGenerated;

/// Evaluations queued ahead of the actors: bounds memory however long the backtest.
const AHEAD: usize = 64;

type Evaluated = (NaiveDate, Result<SignalGenerated, StrategyError>);

/// Evaluations of a book for a known sequence of dates, made on a thread of their own.
pub struct SignalPrefetch {
    queue: Mutex<Queue>,
}

struct Queue {
    ready: Receiver<Evaluated>,
    /// One taken from `ready` for a later date than was asked (a day handled again).
    ahead: Option<Evaluated>,
}

impl SignalPrefetch {
    /// Starts evaluating `book` for `dates`, in order. `None` if no thread can be had
    /// (the actor then evaluates every day itself).
    pub fn start(book: Arc<StrategyBook>, dates: Vec<NaiveDate>) -> Option<Self> {
        let (sender, ready) = sync_channel(AHEAD);
        std::thread::Builder::new()
            .name("signal-prefetch".into())
            .spawn(move || {
                for date in dates {
                    // The receiver is gone: the backtest ended early.
                    if sender.send((date, book.evaluate(date))).is_err() {
                        return;
                    }
                }
            })
            .ok()?;
        Some(Self {
            queue: Mutex::new(Queue { ready, ahead: None }),
        })
    }

    /// The evaluation for `as_of`, waiting for it if it is still being made; evaluations
    /// for earlier dates are dropped. `None`: not among those to come, evaluate in place.
    pub fn take(&self, as_of: NaiveDate) -> Option<Result<SignalGenerated, StrategyError>> {
        let mut queue = self.queue.lock().ok()?;
        loop {
            let next = match queue.ahead.take() {
                Some(next) => next,
                None => queue.ready.recv().ok()?,
            };
            match next.0.cmp(&as_of) {
                Ordering::Less => continue,
                Ordering::Equal => return Some(next.1),
                Ordering::Greater => {
                    queue.ahead = Some(next);
                    return None;
                }
            }
        }
    }
}
