//! What people read shows a value as it is spelled on the wire (serde's name:
//! `recovery_exhausted`, `timed_out`), never Rust's debug form (`RecoveryExhausted`).
//! One spelling per value, in logs, messages, `status`, `/healthz` and JSON alike, and
//! serde's attributes are its only description.

use serde::Serialize;

/// The serde name of a unit-like value (an enum variant).
pub fn wire_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(e) => format!("(unprintable: {e})"),
    }
}

/// `Display` as [`wire_name`] for each listed type.
#[macro_export]
macro_rules! display_as_wire_name {
    ($($t:ty),+ $(,)?) => {$(
        impl ::std::fmt::Display for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&$crate::wire_name::wire_name(self))
            }
        }
    )+};
}

#[cfg(test)]
mod tests {
    use crate::events::{FailureReason, HaltReason, ReconciliationStatus};
    use crate::workflow::{WorkflowStage, WorkflowStatus};

    #[test]
    fn values_read_as_their_wire_names() {
        assert_eq!(
            HaltReason::RecoveryExhausted.to_string(),
            "recovery_exhausted"
        );
        assert_eq!(WorkflowStatus::TimedOut.to_string(), "timed_out");
        assert_eq!(
            WorkflowStage::NothingToTrade.to_string(),
            "nothing_to_trade"
        );
        assert_eq!(ReconciliationStatus::Ok.to_string(), "ok");
        assert_eq!(FailureReason::DeadLetter.to_string(), "dead_letter");
        assert_eq!(crate::domain::RunMode::Paper.to_string(), "paper");
    }
}
