//! `alchemiser status`: the recent workflows as the journal tells them.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::{Journal, JournalError};
use crate::events::{CorrelationId, FailureReason, HaltReason, Payload};

/// One workflow, summarised from its events.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct WorkflowRow {
    pub correlation_id: CorrelationId,
    pub as_of: NaiveDate,
    pub trigger: crate::domain::Trigger,
    pub attempt: u32,
    pub started_at: DateTime<Utc>,
    pub status: WorkflowRowStatus,
    pub duration_ms: i64,
    pub orders: u32,
    /// Orders the risk limits refused.
    pub denied: u32,
    pub restarts: u32,
    pub dead_letters: u32,
    pub failure: Option<String>,
}

/// Where a workflow stands by the journal, as `status` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowRowStatus {
    /// Not ended (yet, or the engine stopped during it).
    Open,
    Completed,
    /// Completed, but the risk limits refused some of its orders: the account is not on
    /// target.
    Denied,
    Failed,
    TimedOut,
}

impl WorkflowRowStatus {
    /// The wire name (serde's).
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowRowStatus::Open => "open",
            WorkflowRowStatus::Completed => "completed",
            WorkflowRowStatus::Denied => "denied",
            WorkflowRowStatus::Failed => "failed",
            WorkflowRowStatus::TimedOut => "timed_out",
        }
    }
}

crate::display_as_wire_name!(WorkflowRowStatus);

/// Whether the engine may trade, by the journal: a halt stays in force across restarts
/// until it is lifted.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TradingState {
    pub halted: bool,
    pub since: Option<DateTime<Utc>>,
    pub reason: Option<HaltReason>,
    pub detail: Option<String>,
}

/// What `status` shows: the trading state, then the recent workflows.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct StatusView {
    pub trading: TradingState,
    pub workflows: Vec<WorkflowRow>,
}

pub fn trading_state(journal: &Journal) -> Result<TradingState, JournalError> {
    Ok(match journal.halted_since()? {
        Some((since, halt)) => TradingState {
            halted: true,
            since: Some(since),
            reason: Some(halt.reason),
            detail: Some(halt.detail),
        },
        None => TradingState {
            halted: false,
            since: None,
            reason: None,
            detail: None,
        },
    })
}

/// The trading state and the last `limit` workflows.
pub fn view(journal: &Journal, limit: usize) -> Result<StatusView, JournalError> {
    Ok(StatusView {
        trading: trading_state(journal)?,
        workflows: recent_workflows(journal, limit)?,
    })
}

/// The trading state as a line for a terminal.
pub fn trading_line(state: &TradingState) -> String {
    match (state.halted, state.since, state.reason) {
        (true, Some(since), Some(reason)) => format!(
            "trading: HALTED since {} UTC ({reason}): {}\n  lift it with `alchemiser resume` (a running engine) or `alchemiser run --resume`\n\n",
            since.format("%Y-%m-%d %H:%M:%S"),
            state.detail.as_deref().unwrap_or("")
        ),
        _ => "trading: active\n\n".into(),
    }
}

/// The last `limit` workflows, newest first.
pub fn recent_workflows(journal: &Journal, limit: usize) -> Result<Vec<WorkflowRow>, JournalError> {
    let mut rows: HashMap<CorrelationId, WorkflowRow> = HashMap::new();
    let mut order = Vec::new();
    for entry in journal.entries()? {
        let env = &entry.envelope;
        if let Payload::WorkflowStarted(s) = &env.payload {
            order.push(env.correlation_id);
            rows.insert(
                env.correlation_id,
                WorkflowRow {
                    correlation_id: env.correlation_id,
                    as_of: s.as_of,
                    trigger: s.trigger,
                    attempt: s.attempt,
                    started_at: env.occurred_at,
                    status: WorkflowRowStatus::Open,
                    duration_ms: 0,
                    orders: 0,
                    denied: 0,
                    restarts: 0,
                    dead_letters: 0,
                    failure: None,
                },
            );
            continue;
        }
        let Some(row) = rows.get_mut(&env.correlation_id) else {
            continue;
        };
        row.duration_ms = (env.occurred_at - row.started_at).num_milliseconds();
        match &env.payload {
            Payload::OrderSubmitted(_) => row.orders += 1,
            Payload::OrderDenied(d) => {
                row.denied += 1;
                if row.failure.is_none() {
                    row.failure = Some(format!(
                        "risk denied {} {}: {}",
                        d.side.as_str(),
                        d.symbol,
                        d.detail
                    ));
                }
            }
            Payload::ActorRestarted(r) => {
                row.restarts += 1;
                row.dead_letters += u32::from(r.dead_lettered);
            }
            Payload::WorkflowCompleted(_) => {
                row.status = if row.denied > 0 {
                    WorkflowRowStatus::Denied
                } else {
                    WorkflowRowStatus::Completed
                };
                if row.denied > 1 {
                    row.failure = row
                        .failure
                        .take()
                        .map(|f| format!("{} orders denied; first: {f}", row.denied));
                }
            }
            Payload::WorkflowFailed(f) => {
                row.status = if f.reason == FailureReason::Timeout {
                    WorkflowRowStatus::TimedOut
                } else {
                    WorkflowRowStatus::Failed
                };
                row.failure = Some(format!("{} ({}): {}", f.step, f.reason.as_str(), f.detail));
            }
            _ => {}
        }
    }
    Ok(order
        .iter()
        .rev()
        .take(limit)
        .filter_map(|c| rows.remove(c))
        .collect())
}

/// The rows as a table for a terminal.
pub fn table(rows: &[WorkflowRow]) -> String {
    let mut out = format!(
        "{:<20} {:<10} {:<16} {:<9} {:>9} {:>6} {:>8} {:>5}  {}\n",
        "started (UTC)",
        "as of",
        "trigger",
        "status",
        "duration",
        "orders",
        "restarts",
        "dead",
        "workflow / failure"
    );
    for r in rows {
        let trigger = if r.attempt > 0 {
            format!("{} #{}", r.trigger, r.attempt)
        } else {
            r.trigger.to_string()
        };
        out.push_str(&format!(
            "{:<20} {:<10} {:<16} {:<9} {:>8.1}s {:>6} {:>8} {:>5}  {}{}\n",
            r.started_at.format("%Y-%m-%d %H:%M:%S"),
            r.as_of,
            trigger,
            r.status.as_str(),
            r.duration_ms as f64 / 1000.0,
            r.orders,
            r.restarts,
            r.dead_letters,
            r.correlation_id,
            r.failure
                .as_ref()
                .map(|f| format!("  {f}"))
                .unwrap_or_default(),
        ));
    }
    if rows.is_empty() {
        out.push_str("(no workflow in the journal yet)\n");
    }
    out
}
