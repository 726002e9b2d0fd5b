//! Notifications: what a person is told about a workflow, a halt, drift or a recovery
//! that gave up, built from the events alone (pure; sending is `channels`, retrying and
//! deduplicating `delivery`).
//!
//! A workflow's message gathers what its events said on the way (the day, the fills,
//! the equity reconciliation found), so that "completed" can say what was traded.

pub mod channels;
pub mod delivery;
pub mod settings;

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::domain::Symbol;
use crate::events::{
    CorrelationId, Envelope, EventId, Payload, ReconciliationStatus, RecoveryKind,
};

/// What a notification is about; also the names `notifications.on` lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyKind {
    Completed,
    Failed,
    Halted,
    Drift,
    GaveUp,
}

crate::display_as_wire_name!(NotifyKind);

impl NotifyKind {
    pub const ALL: [NotifyKind; 5] = [
        NotifyKind::Completed,
        NotifyKind::Failed,
        NotifyKind::Halted,
        NotifyKind::Drift,
        NotifyKind::GaveUp,
    ];
}

/// One fill, as a message lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FillLine {
    pub symbol: Symbol,
    pub side: &'static str,
    #[serde(with = "rust_decimal::serde::str")]
    pub qty: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub price: Decimal,
}

impl FillLine {
    /// `  buy 5.5 TLT at 90.01`, as a message lists it.
    fn line(&self) -> String {
        format!(
            "  {} {} {} at {}",
            self.side,
            self.qty.normalize(),
            self.symbol,
            self.price.normalize()
        )
    }
}

/// A message, before it is formatted for a channel.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Notification {
    /// The event it reports: the key that keeps a redelivered event from sending twice.
    pub event_id: EventId,
    pub kind: NotifyKind,
    pub correlation_id: CorrelationId,
    pub as_of: Option<NaiveDate>,
    /// One line: an e-mail's subject, a chat message's first line.
    pub title: String,
    /// The rest, line by line.
    pub lines: Vec<String>,
    pub orders_placed: Option<u32>,
    pub fills: Vec<FillLine>,
    #[serde(with = "rust_decimal::serde::str_option")]
    pub equity: Option<Decimal>,
    #[serde(with = "rust_decimal::serde::str_option")]
    pub cash: Option<Decimal>,
    /// Why it failed, halted or drifted.
    pub reason: Option<String>,
}

impl Notification {
    /// Title and lines as plain text (an e-mail body, a chat message).
    pub fn text(&self) -> String {
        let mut out = self.title.clone();
        for line in &self.lines {
            out.push('\n');
            out.push_str(line);
        }
        out
    }
}

/// What one workflow's events have said so far.
#[derive(Default)]
struct WorkflowSoFar {
    as_of: Option<NaiveDate>,
    fills: BTreeMap<String, FillLine>,
    equity: Option<(Decimal, Decimal)>,
}

/// Builds notifications from the event stream. Per workflow it keeps the day, the
/// fills (by fill id: a redelivered fill is not listed twice) and the equity that
/// reconciliation found, until the workflow ends.
pub struct Notes {
    /// `run` mode, shown in titles (`paper`, `live`).
    mode: String,
    on: Vec<NotifyKind>,
    workflows: HashMap<CorrelationId, WorkflowSoFar>,
}

/// Money as people read it: `$101,234.56`.
fn dollars(value: Decimal) -> String {
    let text = crate::readable::money(value);
    match text.strip_prefix('-') {
        Some(positive) => format!("-${positive}"),
        None => format!("${text}"),
    }
}

impl Notes {
    pub fn new(mode: impl Into<String>, on: &[NotifyKind]) -> Self {
        Self {
            mode: mode.into(),
            on: on.to_vec(),
            workflows: HashMap::new(),
        }
    }

    /// What an ended workflow's events said, forgotten here, and its day as a title
    /// shows it.
    fn ended(&mut self, correlation: CorrelationId) -> (WorkflowSoFar, String) {
        let so_far = self.workflows.remove(&correlation).unwrap_or_default();
        let day = so_far
            .as_of
            .map_or_else(|| "workflow".to_string(), |d| d.to_string());
        (so_far, day)
    }

    /// Takes in one event; returns the notification it calls for, if any.
    pub fn observe(&mut self, env: &Envelope) -> Option<Notification> {
        let note = |kind, title: String| Notification {
            event_id: env.event_id,
            kind,
            correlation_id: env.correlation_id,
            as_of: None,
            title,
            lines: Vec::new(),
            orders_placed: None,
            fills: Vec::new(),
            equity: None,
            cash: None,
            reason: None,
        };
        let made = match &env.payload {
            Payload::WorkflowStarted(s) => {
                self.workflows.entry(env.correlation_id).or_default().as_of = Some(s.as_of);
                None
            }
            Payload::OrderFilled(f) => {
                self.workflows
                    .entry(env.correlation_id)
                    .or_default()
                    .fills
                    .insert(
                        f.fill_id.clone(),
                        FillLine {
                            symbol: f.symbol.clone(),
                            side: f.side.as_str(),
                            qty: f.qty,
                            price: f.price,
                        },
                    );
                None
            }
            Payload::ReconciliationCompleted(r) => {
                let values: Option<Decimal> = r.positions.iter().map(|p| p.actual_value).sum();
                if let (Some(cash), Some(held)) = (r.actual_cash, values) {
                    self.workflows.entry(env.correlation_id).or_default().equity =
                        Some((cash + held, cash));
                }
                (r.status == ReconciliationStatus::Drift).then(|| {
                    let detail = r
                        .detail
                        .clone()
                        .unwrap_or_else(|| "positions differ".into());
                    let mut n = note(
                        NotifyKind::Drift,
                        format!(
                            "[alchemiser {}] drift: the venue differs from the journal",
                            self.mode
                        ),
                    );
                    n.lines.push(format!("Reconciliation: {detail}"));
                    for p in r
                        .positions
                        .iter()
                        .filter(|p| p.expected_qty != p.actual_qty)
                    {
                        n.lines.push(format!(
                            "  {} expected {} held {}",
                            p.symbol,
                            p.expected_qty.normalize(),
                            p.actual_qty.normalize()
                        ));
                    }
                    n.reason = Some(detail);
                    n
                })
            }
            Payload::WorkflowCompleted(c) => {
                let (so_far, day) = self.ended(env.correlation_id);
                let mut title = format!(
                    "[alchemiser {}] {day}: completed, {} order{}",
                    self.mode,
                    c.orders_placed,
                    if c.orders_placed == 1 { "" } else { "s" }
                );
                if let Some((equity, _)) = so_far.equity {
                    title.push_str(&format!(", equity {}", dollars(equity)));
                }
                let mut n = note(NotifyKind::Completed, title);
                n.as_of = so_far.as_of;
                n.orders_placed = Some(c.orders_placed);
                n.lines.push(format!(
                    "Workflow {} completed in {:.1} s: {} order{} placed, {} fill{}.",
                    env.correlation_id,
                    c.duration_ms as f64 / 1000.0,
                    c.orders_placed,
                    if c.orders_placed == 1 { "" } else { "s" },
                    so_far.fills.len(),
                    if so_far.fills.len() == 1 { "" } else { "s" }
                ));
                n.fills = so_far.fills.into_values().collect();
                n.lines.extend(n.fills.iter().map(FillLine::line));
                if let Some((equity, cash)) = so_far.equity {
                    n.lines.push(format!(
                        "Equity {} (cash {}), as reconciled after the orders.",
                        dollars(equity),
                        dollars(cash)
                    ));
                    n.equity = Some(equity);
                    n.cash = Some(cash);
                }
                Some(n)
            }
            Payload::WorkflowFailed(f) => {
                let (so_far, day) = self.ended(env.correlation_id);
                let reason = format!("{} at step {}: {}", f.reason, f.step, f.detail);
                let mut n = note(
                    NotifyKind::Failed,
                    format!("[alchemiser {}] {day}: FAILED at {}", self.mode, f.step),
                );
                n.as_of = so_far.as_of;
                n.lines
                    .push(format!("Workflow {} failed: {reason}", env.correlation_id));
                n.fills = so_far.fills.into_values().collect();
                if !n.fills.is_empty() {
                    n.lines.push("Filled before the failure:".into());
                    n.lines.extend(n.fills.iter().map(FillLine::line));
                }
                n.reason = Some(reason);
                Some(n)
            }
            Payload::TradingHalted(h) => {
                let reason = format!("{}: {}", h.reason, h.detail);
                let mut n = note(
                    NotifyKind::Halted,
                    format!("[alchemiser {}] TRADING HALTED ({})", self.mode, h.reason),
                );
                n.lines.push(format!("Trading is halted: {reason}"));
                n.lines
                    .push("No workflow trades until `alchemiser resume`.".into());
                n.reason = Some(reason);
                Some(n)
            }
            Payload::RecoveryAction(a) if a.action == RecoveryKind::GiveUp => {
                let mut n = note(
                    NotifyKind::GaveUp,
                    format!(
                        "[alchemiser {}] recovery gave up after {} attempt{}",
                        self.mode,
                        a.attempt,
                        if a.attempt == 1 { "" } else { "s" }
                    ),
                );
                n.lines.push(format!(
                    "Recovery gave up on workflow {}: {}",
                    a.failed_correlation, a.detail
                ));
                n.reason = Some(a.detail.clone());
                Some(n)
            }
            _ => None,
        };
        made.filter(|n| self.on.contains(&n.kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::domain::{RunMode, Side};
    use crate::events::{
        FailureReason, OrderFilled, PositionCheck, ReconciliationCompleted, WorkflowCompleted,
        WorkflowFailed, WorkflowStarted,
    };
    use rust_decimal_macros::dec;

    fn started() -> Envelope {
        Envelope::root(
            WorkflowStarted {
                as_of: NaiveDate::from_ymd_opt(2026, 12, 4).unwrap(),
                mode: RunMode::Paper,
                trigger: crate::domain::Trigger::Schedule,
                attempt: 0,
            },
            "test",
            &SystemClock,
            None,
        )
    }

    fn next(cause: &Envelope, payload: impl Into<Payload>) -> Envelope {
        Envelope::caused_by(cause, payload, "test", &SystemClock)
    }

    fn fill(id: &str, symbol: &str, side: Side, qty: Decimal, price: Decimal) -> OrderFilled {
        OrderFilled {
            client_order_id: format!("c-{id}"),
            fill_id: id.into(),
            symbol: symbol.into(),
            side,
            qty,
            price,
            commission: Decimal::ZERO,
        }
    }

    #[test]
    fn a_completed_workflow_lists_its_fills_and_equity_once_each() {
        let mut notes = Notes::new("paper", &NotifyKind::ALL);
        let s = started();
        assert!(notes.observe(&s).is_none());
        let f1 = next(&s, fill("f1", "SPY", Side::Sell, dec!(10), dec!(450.12)));
        assert!(notes.observe(&f1).is_none());
        // Redelivered: not listed twice.
        assert!(notes.observe(&f1).is_none());
        let f2 = next(&s, fill("f2", "TLT", Side::Buy, dec!(5.5), dec!(90.01)));
        notes.observe(&f2);
        let rec = next(
            &s,
            ReconciliationCompleted {
                status: ReconciliationStatus::Ok,
                positions: vec![PositionCheck {
                    symbol: "TLT".into(),
                    expected_qty: dec!(5.5),
                    actual_qty: dec!(5.5),
                    expected_value: Some(dec!(495.055)),
                    actual_value: Some(dec!(495.055)),
                }],
                expected_cash: Some(dec!(100739.5)),
                actual_cash: Some(dec!(100739.5)),
                unexplained_orders: vec![],
                detail: None,
            },
        );
        assert!(notes.observe(&rec).is_none());
        let done = next(
            &s,
            WorkflowCompleted {
                orders_placed: 2,
                duration_ms: 1234,
            },
        );
        let n = notes.observe(&done).unwrap();
        assert_eq!(n.kind, NotifyKind::Completed);
        assert_eq!(n.event_id, done.event_id);
        assert_eq!(
            n.title,
            "[alchemiser paper] 2026-12-04: completed, 2 orders, equity $101,234.56"
        );
        let text = n.text();
        assert!(text.contains("  sell 10 SPY at 450.12"), "{text}");
        assert!(text.contains("  buy 5.5 TLT at 90.01"), "{text}");
        assert!(
            text.contains("Equity $101,234.56 (cash $100,739.50)"),
            "{text}"
        );
        assert!(text.contains("2 orders placed, 2 fills"), "{text}");
        assert_eq!(n.equity, Some(dec!(101234.555)));
    }

    #[test]
    fn a_failure_says_why_and_kinds_not_asked_for_are_not_sent() {
        let mut notes = Notes::new("live", &[NotifyKind::Failed]);
        let s = started();
        notes.observe(&s);
        let failed = next(
            &s,
            WorkflowFailed {
                step: "execution".into(),
                reason: FailureReason::StepFailed,
                detail: "venue refused the order".into(),
            },
        );
        let n = notes.observe(&failed).unwrap();
        assert_eq!(n.title, "[alchemiser live] 2026-12-04: FAILED at execution");
        assert_eq!(
            n.reason.as_deref(),
            Some("step_failed at step execution: venue refused the order")
        );
        // Completed is not in `on`.
        let s2 = started();
        notes.observe(&s2);
        let done = next(
            &s2,
            WorkflowCompleted {
                orders_placed: 0,
                duration_ms: 5,
            },
        );
        assert!(notes.observe(&done).is_none());
    }

    #[test]
    fn dollars_read_plainly() {
        assert_eq!(dollars(dec!(101234.555)), "$101,234.56");
        assert_eq!(dollars(dec!(0.5)), "$0.50");
        assert_eq!(dollars(dec!(-1234)), "-$1,234.00");
    }
}
