//! The counters keep the tally of what the engine core reports it did (its audit
//! effects), so that the core itself touches no metrics.

use crate::engine_core::Audit;
use crate::metrics::metrics;
use crate::workflow::WorkflowStatus;

/// The counters keep the tally of what the core reports it did.
pub(super) fn count(audit: &Audit) {
    let m = metrics();
    match audit {
        Audit::Published(kind) => m.published(*kind),
        Audit::Reconciled(status) => m.reconciled(&status.to_string()),
        Audit::WorkflowEnded { status, at } => {
            m.workflow_ended(&status.to_string());
            if *status == WorkflowStatus::Completed {
                m.workflow_completed_at(*at);
            }
        }
        Audit::OrderSettled(status) => m.order_settled(&status.to_string()),
        Audit::Restarted(actor) => m.restarted(actor),
        Audit::DeadLettered => {
            m.dead_letters.inc();
        }
    }
}
