//! Restart policy maths: how many restarts are allowed within a window, how long to
//! wait before each, and when to escalate. Pure; the actor layer applies it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Restarts allowed within `within` before escalating.
    pub max_restarts: u32,
    pub within: Duration,
    /// Backoff before the first restart in a window; doubles each time, up to `backoff_cap`.
    pub backoff_initial: Duration,
    pub backoff_cap: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            max_restarts: 5,
            within: Duration::from_secs(60),
            backoff_initial: Duration::from_millis(100),
            backoff_cap: Duration::from_secs(5),
        }
    }
}

/// What to do after a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartDecision {
    /// Restart after `delay`.
    Restart { delay: Duration, attempt: u32 },
    /// The intensity is exceeded: escalate (halt trading), and still restart after
    /// `delay` so that nothing already delivered is lost.
    Escalate { delay: Duration, attempt: u32 },
}

/// One actor's recent restarts.
#[derive(Clone, Debug, Default)]
pub struct RestartHistory {
    recent: VecDeque<Instant>,
    total: u64,
}

impl RestartHistory {
    /// Records a failure at `now` and decides.
    pub fn on_failure(&mut self, policy: &RestartPolicy, now: Instant) -> RestartDecision {
        while let Some(first) = self.recent.front() {
            if now.saturating_duration_since(*first) > policy.within {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        self.recent.push_back(now);
        self.total += 1;
        let attempt = self.recent.len() as u32;
        let delay = backoff(policy, attempt);
        if attempt > policy.max_restarts {
            RestartDecision::Escalate { delay, attempt }
        } else {
            RestartDecision::Restart { delay, attempt }
        }
    }

    pub fn total(&self) -> u64 {
        self.total
    }
}

/// `initial · 2^(attempt−1)`, capped.
pub fn backoff(policy: &RestartPolicy, attempt: u32) -> Duration {
    let factor = 1u32
        .checked_shl(attempt.saturating_sub(1))
        .unwrap_or(u32::MAX);
    policy
        .backoff_initial
        .checked_mul(factor)
        .map_or(policy.backoff_cap, |d| d.min(policy.backoff_cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RestartPolicy {
        RestartPolicy {
            max_restarts: 3,
            within: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(100),
            backoff_cap: Duration::from_millis(350),
        }
    }

    #[test]
    fn backoff_doubles_then_caps() {
        let p = policy();
        assert_eq!(backoff(&p, 1), Duration::from_millis(100));
        assert_eq!(backoff(&p, 2), Duration::from_millis(200));
        assert_eq!(backoff(&p, 3), Duration::from_millis(350));
        assert_eq!(backoff(&p, 40), Duration::from_millis(350));
    }

    #[test]
    fn escalates_past_max_restarts_within_window() {
        let p = policy();
        let mut h = RestartHistory::default();
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(matches!(
                h.on_failure(&p, t0 + Duration::from_secs(i)),
                RestartDecision::Restart { .. }
            ));
        }
        assert!(matches!(
            h.on_failure(&p, t0 + Duration::from_secs(3)),
            RestartDecision::Escalate { attempt: 4, .. }
        ));
    }

    #[test]
    fn old_failures_leave_the_window() {
        let p = policy();
        let mut h = RestartHistory::default();
        let t0 = Instant::now();
        for i in 0..3 {
            h.on_failure(&p, t0 + Duration::from_secs(i));
        }
        let later = t0 + Duration::from_secs(30);
        assert_eq!(
            h.on_failure(&p, later),
            RestartDecision::Restart {
                delay: Duration::from_millis(100),
                attempt: 1
            }
        );
        assert_eq!(h.total(), 4);
    }
}
