//! Recovery core: what to do about a failed workflow.
//!
//! A failure is retried as a new workflow (same day and mode, `attempt` + 1) after a
//! backoff, up to `recovery.max_attempts` times; then recovery gives up and, with
//! `recovery.halt_on_give_up`, halts trading. A failure caused by a halt or by refused
//! credentials is not retried: trading is already halted and a retry could only fail.

use std::time::Duration;

use crate::engine_core::ResumeMode;
use crate::events::{
    CorrelationId, FailureReason, HaltReason, TradingHalted, WorkflowFailed, WorkflowStarted,
};

#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Start `started` (the retry) after `wait`.
    Retry {
        started: WorkflowStarted,
        wait: Duration,
    },
    /// No retry; halt when `halt` is given.
    GiveUp {
        why: String,
        halt: Option<TradingHalted>,
    },
}

/// The decision for `failure` of the workflow started by `root` (`None`: its root is
/// unknown, e.g. not a workflow).
pub fn decide(
    failure: &WorkflowFailed,
    root: Option<&WorkflowStarted>,
    config: &RecoveryConfig,
) -> Decision {
    let what = describe(failure);
    if matches!(
        failure.reason,
        FailureReason::TradingHalted | FailureReason::Unauthorized
    ) {
        return Decision::GiveUp {
            why: format!("not retried, trading is halted: {what}"),
            halt: None,
        };
    }
    let halt = |detail: String| {
        config.halt_on_give_up.then_some(TradingHalted {
            reason: HaltReason::RecoveryExhausted,
            detail,
        })
    };
    let Some(root) = root else {
        let why = format!("no workflow root known to retry: {what}");
        return Decision::GiveUp {
            halt: halt(why.clone()),
            why,
        };
    };
    if root.attempt < config.max_attempts {
        let attempt = root.attempt + 1;
        return Decision::Retry {
            started: WorkflowStarted {
                trigger: crate::domain::Trigger::Recovery,
                attempt,
                ..root.clone()
            },
            wait: config.backoff(attempt),
        };
    }
    let why = format!(
        "gave up on the workflow of {} after {} retries: {what}",
        root.as_of, root.attempt
    );
    Decision::GiveUp {
        halt: halt(why.clone()),
        why,
    }
}

/// The failure in words, for actions and halts.
pub fn describe(failure: &WorkflowFailed) -> String {
    match failure.reason {
        FailureReason::Timeout => {
            format!("workflow timed out in {}: {}", failure.step, failure.detail)
        }
        _ => format!(
            "{} failed ({}): {}",
            failure.step,
            failure.reason.as_str(),
            failure.detail
        ),
    }
}

/// The id of the retry of workflow `failed`: derived, so that a redelivered failure
/// starts the same workflow again, which the broker refuses as a second root.
pub fn retry_correlation(failed: CorrelationId) -> CorrelationId {
    CorrelationId::derived(&[b"recovery.retry", failed.0.as_bytes()])
}

#[derive(Clone, Debug, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RecoveryConfig {
    pub resume: ResumeMode,
    /// Retries of a failed workflow (each a new workflow triggered by the failure);
    /// after the last one recovery gives up and halts trading.
    pub max_attempts: u32,
    /// Wait before retry n: `backoff_ms` × 2^(n−1), at most `backoff_cap_ms`.
    pub backoff_ms: u64,
    pub backoff_cap_ms: u64,
    /// Halt trading when giving up (backtests record the failed day and go on).
    pub halt_on_give_up: bool,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self {
            resume: ResumeMode::Resume,
            max_attempts: 2,
            backoff_ms: 1000,
            backoff_cap_ms: 30_000,
            halt_on_give_up: true,
        }
    }
}

impl RecoveryConfig {
    /// The wait before retry `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u64 << attempt.saturating_sub(1).min(20);
        Duration::from_millis(
            self.backoff_ms
                .saturating_mul(factor)
                .min(self.backoff_cap_ms),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn failure(reason: FailureReason) -> WorkflowFailed {
        WorkflowFailed {
            step: "execution".into(),
            reason,
            detail: "venue unavailable".into(),
        }
    }

    fn root(attempt: u32) -> WorkflowStarted {
        WorkflowStarted {
            as_of: NaiveDate::from_ymd_opt(2024, 3, 4).unwrap(),
            mode: Default::default(),
            trigger: crate::domain::Trigger::Schedule,
            attempt,
        }
    }

    fn config() -> RecoveryConfig {
        RecoveryConfig {
            max_attempts: 2,
            backoff_ms: 100,
            backoff_cap_ms: 150,
            ..Default::default()
        }
    }

    #[test]
    fn retries_with_growing_backoff_then_gives_up_and_halts() {
        let f = failure(FailureReason::StepFailed);
        let Decision::Retry { started, wait } = decide(&f, Some(&root(0)), &config()) else {
            panic!("first failure is retried");
        };
        assert_eq!(
            (started.attempt, started.trigger),
            (1, crate::domain::Trigger::Recovery)
        );
        assert_eq!(started.as_of, root(0).as_of);
        assert_eq!(wait, Duration::from_millis(100));
        let Decision::Retry { wait, .. } = decide(&f, Some(&root(1)), &config()) else {
            panic!("second failure is retried");
        };
        assert_eq!(wait, Duration::from_millis(150), "capped");
        let Decision::GiveUp { halt: Some(h), why } = decide(&f, Some(&root(2)), &config()) else {
            panic!("third failure gives up and halts");
        };
        assert_eq!(h.reason, HaltReason::RecoveryExhausted);
        assert!(why.contains("after 2 retries"), "{why}");
    }

    #[test]
    fn halted_and_unauthorized_failures_are_not_retried() {
        for reason in [FailureReason::TradingHalted, FailureReason::Unauthorized] {
            let d = decide(&failure(reason), Some(&root(0)), &config());
            assert!(matches!(d, Decision::GiveUp { halt: None, .. }), "{d:?}");
        }
    }

    #[test]
    fn giving_up_without_halting_when_configured() {
        let c = RecoveryConfig {
            max_attempts: 0,
            halt_on_give_up: false,
            ..config()
        };
        let d = decide(&failure(FailureReason::Timeout), Some(&root(0)), &c);
        assert!(matches!(d, Decision::GiveUp { halt: None, .. }), "{d:?}");
    }

    #[test]
    fn retry_ids_are_derived_from_the_failed_workflow() {
        let c = CorrelationId::new();
        assert_eq!(retry_correlation(c), retry_correlation(c));
        assert_ne!(
            retry_correlation(c),
            retry_correlation(CorrelationId::new())
        );
    }
}
