//! What an event says, in one line a person reads (`trace`, `journal replay`): the
//! symbols, quantities, prices and reasons it carries, with values as plain text.

use std::fmt::Write;

use rust_decimal::Decimal;

use super::payload::*;
use crate::domain::PlanAction;

/// At most this many symbols of a list are named; the rest are counted.
const LISTED: usize = 6;

fn weights<'a>(items: impl Iterator<Item = (&'a str, &'a Decimal)>) -> String {
    let items: Vec<_> = items.collect();
    let mut out = items
        .iter()
        .take(LISTED)
        .map(|(s, w)| format!("{s} {}", w.normalize()))
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > LISTED {
        let _ = write!(out, " and {} more", items.len() - LISTED);
    }
    if items.is_empty() {
        out.push_str("all cash");
    }
    out
}

impl Payload {
    /// One line on what the event says.
    pub fn describe(&self) -> String {
        match self {
            Payload::WorkflowStarted(s) => format!(
                "as of {}, {}, trigger {}{}",
                s.as_of,
                s.mode,
                s.trigger,
                if s.attempt > 0 {
                    format!(", attempt {}", s.attempt)
                } else {
                    String::new()
                }
            ),
            Payload::SignalGenerated(s) => {
                let mut out = format!(
                    "targets {}",
                    weights(s.target_weights.iter().map(|(k, v)| (k.as_str(), v)))
                );
                for a in &s.strategies {
                    if let Some(e) = &a.error {
                        let _ = write!(out, "; {} failed: {e}", a.name);
                    }
                }
                out
            }
            Payload::AllocationCompared(a) => format!(
                "portfolio value {}, {} symbols compared",
                a.portfolio_value.round_dp(2),
                a.rows.len()
            ),
            Payload::RebalancePlanned(p) => {
                let trades: Vec<String> = p
                    .items
                    .iter()
                    .filter(|i| i.action != PlanAction::Hold)
                    .map(|i| format!("{} {} {} at {}", i.action, i.qty, i.symbol, i.price))
                    .collect();
                let holds = p.items.len() - trades.len();
                if trades.is_empty() {
                    format!("nothing to trade ({holds} held)")
                } else {
                    format!("{} ({holds} held)", trades.join(", "))
                }
            }
            Payload::ExecutionStarted(e) => format!("{} orders to place", e.orders.len()),
            Payload::OrderDenied(d) => format!(
                "{} {} {} denied ({}): {}",
                d.side, d.qty, d.symbol, d.code, d.detail
            ),
            Payload::OrderSubmitted(o) => match o.limit_price {
                Some(limit) => format!("{} {} {} limit {limit}", o.side, o.qty, o.symbol),
                None => format!("{} {} {} {}", o.side, o.qty, o.symbol, o.order_type),
            },
            Payload::OrderFilled(f) => format!(
                "{} {} {} at {} (fill {}{})",
                f.side,
                f.qty,
                f.symbol,
                f.price,
                f.fill_id,
                if f.commission.is_zero() {
                    String::new()
                } else {
                    format!(", commission {}", f.commission)
                }
            ),
            Payload::OrderSettled(s) => format!(
                "{} of {} orders filled, traded {}",
                s.succeeded,
                s.orders.len(),
                s.traded_value.round_dp(2)
            ),
            Payload::ReconciliationRequested(r) => format!("requested ({})", r.reason),
            Payload::ReconciliationCompleted(r) => {
                let mut out = format!("{} ({} positions)", r.status, r.positions.len());
                if let Some(d) = r.detail.as_deref().filter(|d| !d.is_empty()) {
                    let _ = write!(out, ": {d}");
                }
                out
            }
            Payload::RecoveryAction(a) => format!("{}: {}", a.action, a.detail),
            Payload::WorkflowCompleted(c) => {
                format!("{} orders placed in {} ms", c.orders_placed, c.duration_ms)
            }
            Payload::WorkflowFailed(f) => format!("{} ({}): {}", f.step, f.reason, f.detail),
            Payload::TradingHalted(h) => format!("{}: {}", h.reason, h.detail),
            Payload::TradingResumed(r) => r.detail.clone(),
            Payload::ActorRestarted(r) => format!(
                "{} restarted after failure {}{}: {}",
                r.actor,
                r.failures,
                if r.dead_lettered {
                    " (dead-lettered)"
                } else {
                    ""
                },
                r.error
            ),
            Payload::EventRejected(r) => format!("{} refused: {}", r.event_type, r.reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every v1 fixture describes itself in plain values: no Rust debug forms.
    #[test]
    fn every_kind_reads_plainly() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/events/v1");
        for kind in EventKind::ALL {
            let text =
                std::fs::read_to_string(dir.join(format!("{}.json", kind.as_str()))).unwrap();
            let env = crate::events::Envelope::from_json(&text).unwrap();
            let line = env.payload.describe();
            assert!(!line.is_empty(), "{kind}");
            for debug in ["Some(", "None", "::", "{ ", "\"", "Buy", "Sell", "Market"] {
                assert!(!line.contains(debug), "{kind}: {line}");
            }
        }
    }

    #[test]
    fn a_fill_says_what_where_and_at_what_price() {
        let fill = Payload::OrderFilled(OrderFilled {
            client_order_id: "alc-1".into(),
            fill_id: "v-1@3".into(),
            symbol: "SPY".into(),
            side: crate::domain::Side::Sell,
            qty: Decimal::new(3, 0),
            price: Decimal::new(40012, 2),
            commission: Decimal::ZERO,
        });
        assert_eq!(fill.describe(), "sell 3 SPY at 400.12 (fill v-1@3)");
    }
}
