//! Recovery core: what to do about a failed workflow.

use crate::events::{CorrelationId, FailureReason, RecoveryAction, RecoveryKind, WorkflowFailed};

/// The decision for one failure. Retries and order cancellation come with the recovery
/// issue; until then every failure is recorded as `noted` with its reason, so `trace`
/// shows it.
pub fn decide(failed_correlation: CorrelationId, failure: &WorkflowFailed) -> RecoveryAction {
    let detail = match failure.reason {
        FailureReason::Timeout => {
            format!("workflow timed out in {}: {}", failure.step, failure.detail)
        }
        _ => format!(
            "{} failed ({}): {}",
            failure.step,
            failure.reason.as_str(),
            failure.detail
        ),
    };
    RecoveryAction {
        failed_correlation,
        action: RecoveryKind::Noted,
        attempt: 0,
        detail,
    }
}
