//! Getting a notification out without ever holding up trading: each is handed to a
//! task of its own per channel, retried with doubling backoff while the failure is
//! transient, and given up (logged, counted) after `max_attempts`. A notification is
//! claimed once per event id first, so a redelivered event sends nothing twice.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::channels::{Channel, SendError};
use super::Notification;
use crate::events::EventId;
use crate::metrics::metrics;

/// How often, and how patiently, a send is retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub backoff: Duration,
    pub backoff_cap: Duration,
}

impl RetryPolicy {
    /// The wait before attempt `n` (2, 3, …): backoff × 2^(n−2), capped.
    pub fn delay_before(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(2).min(20);
        self.backoff
            .saturating_mul(1u32 << doublings)
            .min(self.backoff_cap)
    }
}

/// Event ids already notified: the last [`SentLedger::KEPT`] of them. Shared by every
/// incarnation of the actor, so a restart's redelivery is recognised.
#[derive(Default)]
pub struct SentLedger {
    inner: Mutex<(HashSet<EventId>, VecDeque<EventId>)>,
}

impl SentLedger {
    pub const KEPT: usize = 10_000;

    /// True the first time `id` is claimed.
    pub fn claim(&self, id: EventId) -> bool {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (seen, order) = &mut *guard;
        if !seen.insert(id) {
            return false;
        }
        order.push_back(id);
        if order.len() > Self::KEPT {
            if let Some(old) = order.pop_front() {
                seen.remove(&old);
            }
        }
        true
    }
}

/// Sends `n` on `channel` under `policy`; returns the attempts made and the outcome.
pub async fn deliver(
    channel: &Channel,
    n: &Notification,
    policy: RetryPolicy,
) -> (u32, Result<(), SendError>) {
    let mut attempt = 1;
    loop {
        let result = channel.send(n).await;
        match result {
            Ok(()) => return (attempt, Ok(())),
            Err(SendError::Transient(why)) if attempt < policy.max_attempts => {
                metrics().notification(channel.kind(), "retried");
                tracing::warn!(channel = %channel.name(), event_id = %n.event_id, attempt, error = %why, "notification not sent; retrying");
                attempt += 1;
                tokio::time::sleep(policy.delay_before(attempt)).await;
            }
            Err(e) => return (attempt, Err(e)),
        }
    }
}

/// Hands notifications to the channels, each send on a task of its own (spawned on
/// the caller's local task set: the engine's actor runtime), so a slow or failing
/// channel blocks nothing; counts
/// the sends in flight so that a stopping engine can let them finish.
pub struct Notifier {
    channels: Vec<Channel>,
    policy: RetryPolicy,
    in_flight: AtomicUsize,
    idle: tokio::sync::Notify,
}

impl Notifier {
    pub fn new(channels: Vec<Channel>, policy: RetryPolicy) -> Self {
        Self {
            channels,
            policy,
            in_flight: AtomicUsize::new(0),
            idle: tokio::sync::Notify::new(),
        }
    }

    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    pub fn dispatch(self: &Arc<Self>, n: Notification) {
        let n = Arc::new(n);
        for index in 0..self.channels.len() {
            self.in_flight.fetch_add(1, Ordering::SeqCst);
            let (this, n) = (self.clone(), n.clone());
            tokio::task::spawn_local(async move {
                let channel = &this.channels[index];
                match deliver(channel, &n, this.policy).await {
                    (attempts, Ok(())) => {
                        metrics().notification(channel.kind(), "sent");
                        tracing::info!(channel = %channel.name(), kind = %n.kind, event_id = %n.event_id, attempts, "notification sent");
                    }
                    (attempts, Err(e)) => {
                        metrics().notification(channel.kind(), "failed");
                        tracing::error!(channel = %channel.name(), kind = %n.kind, event_id = %n.event_id, attempts, error = %e, "notification given up");
                    }
                }
                if this.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
                    this.idle.notify_waiters();
                }
            });
        }
    }

    /// Waits until no send is in flight, or `within` has passed; whether all finished.
    pub async fn drain(&self, within: Duration) -> bool {
        let wait = async {
            loop {
                let idle = self.idle.notified();
                if self.in_flight.load(Ordering::SeqCst) == 0 {
                    return;
                }
                idle.await;
            }
        };
        tokio::time::timeout(within, wait).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_second_attempt_up_to_the_cap() {
        let p = RetryPolicy {
            max_attempts: 6,
            backoff: Duration::from_millis(100),
            backoff_cap: Duration::from_millis(500),
        };
        let waits: Vec<u128> = (2..=6).map(|a| p.delay_before(a).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
    }

    #[test]
    fn an_event_is_claimed_once_and_forgotten_only_after_many_others() {
        let ledger = SentLedger::default();
        let first = EventId::new();
        assert!(ledger.claim(first));
        assert!(!ledger.claim(first));
        for _ in 0..SentLedger::KEPT - 1 {
            assert!(ledger.claim(EventId::new()));
        }
        assert!(!ledger.claim(first), "still remembered");
        assert!(ledger.claim(EventId::new()));
        assert!(ledger.claim(first), "forgotten after KEPT newer ones");
    }
}
