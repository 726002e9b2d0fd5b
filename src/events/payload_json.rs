//! Hand-written JSON for the payloads a trading workflow publishes: its start, the
//! signal, the allocation comparison, the plan, the execution's start, orders, fills and
//! settlement, and the reconciliation. A backtest's chain digest hashes every one of
//! them. Through serde, every key and every decimal's text went through the string
//! escaper, and dates through the formatter; the hash writer ([`JsonWriter`], in its
//! payload form) knows better: decimals are digits, and keys, symbols and hashes are
//! checked in one pass. Rarer kinds (failures, recovery, supervision) go through serde.
//!
//! The output is byte for byte serde_json's for the same value. The unit tests check
//! that for the fixtures and for random payloads with awkward strings, so a field added
//! to one of these payloads and not to its writer fails them.

use super::hash::JsonWriter;
use super::payload::{
    AllocationCompared, AllocationRow, ExecutionStarted, OrderFilled, OrderIntent, OrderOutcome,
    OrderSettled, OrderSubmitted, PlanItem, PositionCheck, RebalancePlanned,
    ReconciliationCompleted, SignalGenerated, StrategyAllocation, WorkflowStarted,
};
use super::Payload;

/// Writes `payload`'s JSON onto `out` if it is one of the hand-written kinds.
pub(crate) fn write_by_hand(payload: &Payload, out: &mut Vec<u8>) -> bool {
    match payload {
        Payload::SignalGenerated(p) => write(out, |w| signal(p, w)),
        Payload::AllocationCompared(p) => write(out, |w| compared(p, w)),
        Payload::RebalancePlanned(p) => write(out, |w| plan(p, w)),
        Payload::WorkflowStarted(p) => write(out, |w| started(p, w)),
        Payload::ExecutionStarted(p) => write(out, |w| execution(p, w)),
        Payload::OrderSubmitted(p) => write(out, |w| submitted(p, w)),
        Payload::OrderFilled(p) => write(out, |w| filled(p, w)),
        Payload::OrderSettled(p) => write(out, |w| settled(p, w)),
        Payload::ReconciliationCompleted(p) => write(out, |w| reconciled(p, w)),
        _ => return false,
    }
    true
}

fn write(out: &mut Vec<u8>, value: impl FnOnce(&mut JsonWriter)) {
    let mut w = JsonWriter::payload(std::mem::take(out));
    value(&mut w);
    *out = w.into_bytes();
}

fn signal(p: &SignalGenerated, w: &mut JsonWriter) {
    w.map(|o| {
        o.field("as_of").date(p.as_of);
        o.field("target_weights").decimal_map(&p.target_weights);
        o.field("strategies").list(&p.strategies, strategy);
        o.field("signal_hash").str(&p.signal_hash);
        o.field("market_snapshot_id").str(&p.market_snapshot_id);
    });
}

fn strategy(w: &mut JsonWriter, s: &StrategyAllocation) {
    w.map(|o| {
        o.field("name").str(&s.name);
        o.field("file_weight").dec(s.file_weight);
        o.field("weights").decimal_map(&s.weights);
        o.field("indicators").decimal_map(&s.indicators);
        o.field("error").opt_str(s.error.as_deref());
    });
}

fn compared(p: &AllocationCompared, w: &mut JsonWriter) {
    w.map(|o| {
        o.field("signal_hash").str(&p.signal_hash);
        o.field("portfolio_value").dec(p.portfolio_value);
        o.field("rows").list(&p.rows, row);
    });
}

fn row(w: &mut JsonWriter, r: &AllocationRow) {
    w.map(|o| {
        o.field("symbol").str(&r.symbol);
        o.field("target_weight").dec(r.target_weight);
        o.field("target_value").dec(r.target_value);
        o.field("current_value").dec(r.current_value);
        o.field("delta").dec(r.delta);
    });
}

fn plan(p: &RebalancePlanned, w: &mut JsonWriter) {
    w.map(|o| {
        o.field("signal_hash").str(&p.signal_hash);
        o.field("plan_hash").str(&p.plan_hash);
        o.field("account_snapshot_id").str(&p.account_snapshot_id);
        o.field("portfolio_value").dec(p.portfolio_value);
        o.field("cash").dec(p.cash);
        o.field("investable").dec(p.investable);
        o.field("items").list(&p.items, item);
    });
}

fn item(w: &mut JsonWriter, i: &PlanItem) {
    w.map(|o| {
        o.field("symbol").str(&i.symbol);
        o.field("action").str(i.action.as_str());
        o.field("qty").dec(i.qty);
        o.field("price").dec(i.price);
        o.field("target_value").dec(i.target_value);
        o.field("current_value").dec(i.current_value);
        o.field("delta").dec(i.delta);
    });
}

fn started(p: &WorkflowStarted, w: &mut JsonWriter) {
    w.map(|o| {
        o.field("as_of").date(p.as_of);
        o.field("mode").str(p.mode.as_str());
        o.field("trigger").str(&p.trigger);
        o.field("attempt").int(p.attempt.into());
    });
}

fn execution(p: &ExecutionStarted, w: &mut JsonWriter) {
    w.map(|o| {
        o.field("plan_hash").str(&p.plan_hash);
        o.field("execution_plan_hash").str(&p.execution_plan_hash);
        o.field("orders").list(&p.orders, intent);
        o.field("positions_before").decimal_map(&p.positions_before);
        o.field("cash_before").opt_dec(p.cash_before);
    });
}

fn intent(w: &mut JsonWriter, i: &OrderIntent) {
    w.map(|o| {
        o.field("client_order_id").str(&i.client_order_id);
        o.field("symbol").str(&i.symbol);
        o.field("side").str(i.side.as_str());
        o.field("qty").dec(i.qty);
        o.field("order_type").str(i.order_type.as_str());
        o.field("limit_price").opt_dec(i.limit_price);
    });
}

fn submitted(p: &OrderSubmitted, w: &mut JsonWriter) {
    w.map(|o| {
        o.field("client_order_id").str(&p.client_order_id);
        o.field("venue_order_id")
            .opt_str(p.venue_order_id.as_deref());
        o.field("symbol").str(&p.symbol);
        o.field("side").str(p.side.as_str());
        o.field("qty").dec(p.qty);
        o.field("order_type").str(p.order_type.as_str());
        o.field("limit_price").opt_dec(p.limit_price);
    });
}

fn filled(p: &OrderFilled, w: &mut JsonWriter) {
    w.map(|o| {
        o.field("client_order_id").str(&p.client_order_id);
        o.field("fill_id").str(&p.fill_id);
        o.field("symbol").str(&p.symbol);
        o.field("side").str(p.side.as_str());
        o.field("qty").dec(p.qty);
        o.field("price").dec(p.price);
        o.field("commission").dec(p.commission);
    });
}

fn settled(p: &OrderSettled, w: &mut JsonWriter) {
    w.map(|o| {
        o.field("plan_hash").str(&p.plan_hash);
        o.field("execution_plan_hash").str(&p.execution_plan_hash);
        o.field("orders").list(&p.orders, outcome);
        o.field("placed").int(p.placed.into());
        o.field("succeeded").int(p.succeeded.into());
        o.field("traded_value").dec(p.traded_value);
        o.field("positions_before")
            .opt_decimal_map(p.positions_before.as_ref());
    });
}

fn outcome(w: &mut JsonWriter, r: &OrderOutcome) {
    w.map(|o| {
        o.field("client_order_id").str(&r.client_order_id);
        o.field("symbol").str(&r.symbol);
        o.field("side").str(r.side.as_str());
        o.field("requested_qty").dec(r.requested_qty);
        o.field("filled_qty").dec(r.filled_qty);
        o.field("avg_price").opt_dec(r.avg_price);
        o.field("status").str(&r.status);
        o.field("reason").opt_str(r.reason.as_deref());
    });
}

fn reconciled(p: &ReconciliationCompleted, w: &mut JsonWriter) {
    w.map(|o| {
        o.field("status").str(p.status.as_str());
        o.field("positions").list(&p.positions, position);
        o.field("expected_cash").opt_dec(p.expected_cash);
        o.field("actual_cash").opt_dec(p.actual_cash);
        o.field("unexplained_orders")
            .list(&p.unexplained_orders, |w, id| w.str(id));
        o.field("detail").opt_str(p.detail.as_deref());
    });
}

fn position(w: &mut JsonWriter, c: &PositionCheck) {
    w.map(|o| {
        o.field("symbol").str(&c.symbol);
        o.field("expected_qty").dec(c.expected_qty);
        o.field("actual_qty").dec(c.actual_qty);
        o.field("expected_value").opt_dec(c.expected_value);
        o.field("actual_value").opt_dec(c.actual_value);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{OrderType, PlanAction, RunMode, Side, Symbol};
    use crate::events::payload::ReconciliationStatus;
    use chrono::NaiveDate;
    use proptest::prelude::*;
    use rust_decimal::Decimal;
    use std::collections::BTreeMap;

    fn by_hand(payload: &Payload) -> String {
        let mut out = Vec::new();
        assert!(write_by_hand(payload, &mut out));
        String::from_utf8(out).expect("utf-8")
    }

    fn by_serde(payload: &Payload) -> String {
        let json = match payload {
            Payload::SignalGenerated(p) => serde_json::to_string(p),
            Payload::AllocationCompared(p) => serde_json::to_string(p),
            Payload::RebalancePlanned(p) => serde_json::to_string(p),
            Payload::WorkflowStarted(p) => serde_json::to_string(p),
            Payload::ExecutionStarted(p) => serde_json::to_string(p),
            Payload::OrderSubmitted(p) => serde_json::to_string(p),
            Payload::OrderFilled(p) => serde_json::to_string(p),
            Payload::OrderSettled(p) => serde_json::to_string(p),
            Payload::ReconciliationCompleted(p) => serde_json::to_string(p),
            _ => unreachable!("not written by hand"),
        };
        json.expect("serde")
    }

    /// Text that needs escaping in places, plain text mostly.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => "[A-Z]{1,5}",
            1 => "[a-z0-9 ]{0,12}",
            1 => "\\PC{0,8}",
            1 => prop::collection::vec(prop_oneof![
                Just('"'), Just('\\'), Just('\n'), Just('\u{1}'), Just('\u{7f}'),
                Just('\u{2028}'), Just('é'), Just('🦀'), Just('a')
            ], 0..8).prop_map(|c| c.into_iter().collect()),
        ]
    }

    /// Decimals of every sign and scale, up to 28 digits.
    fn decimal() -> impl Strategy<Value = Decimal> {
        prop_oneof![
            (any::<i64>(), 0u32..=12).prop_map(|(m, s)| Decimal::new(m, s)),
            (any::<i128>(), 0u32..=28).prop_map(|(m, s)| {
                Decimal::from_i128_with_scale(m % 79_228_162_514_264_337_593_543_950_335, s)
            }),
            Just(Decimal::ZERO),
            Just(-Decimal::new(0, 3)),
        ]
    }

    fn decimal_map() -> impl Strategy<Value = BTreeMap<Symbol, Decimal>> {
        prop::collection::btree_map(text().prop_map(Symbol::from), decimal(), 0..5)
    }

    fn action() -> impl Strategy<Value = PlanAction> {
        prop_oneof![
            Just(PlanAction::Sell),
            Just(PlanAction::Buy),
            Just(PlanAction::Hold)
        ]
    }

    fn signal_payload() -> impl Strategy<Value = Payload> {
        let strategy = (
            text(),
            decimal(),
            decimal_map(),
            decimal_map(),
            prop::option::of(text()),
        )
            .prop_map(|(name, file_weight, weights, indicators, error)| {
                StrategyAllocation {
                    name,
                    file_weight,
                    weights,
                    indicators: indicators
                        .into_iter()
                        .map(|(k, v)| (compact_str::CompactString::from(k.as_str()), v))
                        .collect(),
                    error,
                }
            });
        (
            -100_000i32..100_000,
            decimal_map(),
            prop::collection::vec(strategy, 0..3),
            text(),
            text(),
        )
            .prop_map(|(day, target_weights, strategies, signal_hash, snapshot)| {
                Payload::SignalGenerated(SignalGenerated {
                    as_of: NaiveDate::from_num_days_from_ce_opt(700_000 + day).unwrap_or_default(),
                    target_weights,
                    strategies,
                    signal_hash,
                    market_snapshot_id: snapshot,
                })
            })
    }

    fn compared_payload() -> impl Strategy<Value = Payload> {
        let row = (text(), decimal(), decimal(), decimal(), decimal()).prop_map(
            |(symbol, target_weight, target_value, current_value, delta)| AllocationRow {
                symbol: symbol.into(),
                target_weight,
                target_value,
                current_value,
                delta,
            },
        );
        (text(), decimal(), prop::collection::vec(row, 0..4)).prop_map(
            |(signal_hash, portfolio_value, rows)| {
                Payload::AllocationCompared(AllocationCompared {
                    signal_hash,
                    portfolio_value,
                    rows,
                })
            },
        )
    }

    fn plan_payload() -> impl Strategy<Value = Payload> {
        let item = (
            text(),
            action(),
            (decimal(), decimal(), decimal(), decimal(), decimal()),
        )
            .prop_map(
                |(symbol, action, (qty, price, target_value, current_value, delta))| PlanItem {
                    symbol: symbol.into(),
                    action,
                    qty,
                    price,
                    target_value,
                    current_value,
                    delta,
                },
            );
        (
            (text(), text(), text()),
            (decimal(), decimal(), decimal()),
            prop::collection::vec(item, 0..4),
        )
            .prop_map(
                |((signal_hash, plan_hash, account_snapshot_id), (pv, cash, investable), items)| {
                    Payload::RebalancePlanned(RebalancePlanned {
                        signal_hash,
                        plan_hash,
                        account_snapshot_id,
                        portfolio_value: pv,
                        cash,
                        investable,
                        items,
                    })
                },
            )
    }

    fn date() -> impl Strategy<Value = NaiveDate> {
        (-100_000i32..100_000)
            .prop_map(|day| NaiveDate::from_num_days_from_ce_opt(700_000 + day).unwrap_or_default())
    }

    fn side() -> impl Strategy<Value = Side> {
        prop_oneof![Just(Side::Buy), Just(Side::Sell)]
    }

    fn order_type() -> impl Strategy<Value = OrderType> {
        prop_oneof![Just(OrderType::Market), Just(OrderType::Limit)]
    }

    fn started_payload() -> impl Strategy<Value = Payload> {
        let mode = prop_oneof![
            Just(RunMode::Paper),
            Just(RunMode::Live),
            Just(RunMode::Backtest)
        ];
        (date(), mode, text(), any::<u32>()).prop_map(|(as_of, mode, trigger, attempt)| {
            Payload::WorkflowStarted(WorkflowStarted {
                as_of,
                mode,
                trigger,
                attempt,
            })
        })
    }

    fn execution_payload() -> impl Strategy<Value = Payload> {
        let intent = (
            text(),
            text(),
            side(),
            decimal(),
            order_type(),
            prop::option::of(decimal()),
        )
            .prop_map(
                |(client_order_id, symbol, side, qty, order_type, limit_price)| OrderIntent {
                    client_order_id,
                    symbol: symbol.into(),
                    side,
                    qty,
                    order_type,
                    limit_price,
                },
            );
        (
            (text(), text()),
            prop::collection::vec(intent, 0..4),
            decimal_map(),
            prop::option::of(decimal()),
        )
            .prop_map(
                |((plan_hash, execution_plan_hash), orders, positions_before, cash_before)| {
                    Payload::ExecutionStarted(ExecutionStarted {
                        plan_hash,
                        execution_plan_hash,
                        orders,
                        positions_before,
                        cash_before,
                    })
                },
            )
    }

    fn order_payload() -> impl Strategy<Value = Payload> {
        let submitted = (
            (text(), prop::option::of(text()), text()),
            (side(), decimal(), order_type(), prop::option::of(decimal())),
        )
            .prop_map(
                |(
                    (client_order_id, venue_order_id, symbol),
                    (side, qty, order_type, limit_price),
                )| {
                    Payload::OrderSubmitted(OrderSubmitted {
                        client_order_id,
                        venue_order_id,
                        symbol: symbol.into(),
                        side,
                        qty,
                        order_type,
                        limit_price,
                    })
                },
            );
        let filled = (
            (text(), text(), text()),
            (side(), decimal(), decimal(), decimal()),
        )
            .prop_map(
                |((client_order_id, fill_id, symbol), (side, qty, price, commission))| {
                    Payload::OrderFilled(OrderFilled {
                        client_order_id,
                        fill_id,
                        symbol: symbol.into(),
                        side,
                        qty,
                        price,
                        commission,
                    })
                },
            );
        prop_oneof![submitted, filled]
    }

    fn settled_payload() -> impl Strategy<Value = Payload> {
        let outcome = (
            (text(), text(), side()),
            (decimal(), decimal(), prop::option::of(decimal())),
            (text(), prop::option::of(text())),
        )
            .prop_map(
                |(
                    (client_order_id, symbol, side),
                    (requested_qty, filled_qty, avg_price),
                    (status, reason),
                )| {
                    OrderOutcome {
                        client_order_id,
                        symbol: symbol.into(),
                        side,
                        requested_qty,
                        filled_qty,
                        avg_price,
                        status,
                        reason,
                    }
                },
            );
        (
            (text(), text()),
            prop::collection::vec(outcome, 0..4),
            (any::<u32>(), any::<u32>(), decimal()),
            prop::option::of(decimal_map()),
        )
            .prop_map(
                |(
                    (plan_hash, execution_plan_hash),
                    orders,
                    (placed, succeeded, traded_value),
                    positions_before,
                )| {
                    Payload::OrderSettled(OrderSettled {
                        plan_hash,
                        execution_plan_hash,
                        orders,
                        placed,
                        succeeded,
                        traded_value,
                        positions_before,
                    })
                },
            )
    }

    fn reconciled_payload() -> impl Strategy<Value = Payload> {
        let status = prop_oneof![
            Just(ReconciliationStatus::Ok),
            Just(ReconciliationStatus::Drift),
            Just(ReconciliationStatus::Failed)
        ];
        let check = (
            text(),
            (decimal(), decimal()),
            (prop::option::of(decimal()), prop::option::of(decimal())),
        )
            .prop_map(
                |(symbol, (expected_qty, actual_qty), (expected_value, actual_value))| {
                    PositionCheck {
                        symbol: symbol.into(),
                        expected_qty,
                        actual_qty,
                        expected_value,
                        actual_value,
                    }
                },
            );
        (
            status,
            prop::collection::vec(check, 0..4),
            (prop::option::of(decimal()), prop::option::of(decimal())),
            prop::collection::vec(text(), 0..3),
            prop::option::of(text()),
        )
            .prop_map(
                |(status, positions, (expected_cash, actual_cash), unexplained_orders, detail)| {
                    Payload::ReconciliationCompleted(ReconciliationCompleted {
                        status,
                        positions,
                        expected_cash,
                        actual_cash,
                        unexplained_orders,
                        detail,
                    })
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn hand_written_json_is_serde_jsons(
            payload in prop_oneof![
                signal_payload(),
                compared_payload(),
                plan_payload(),
                started_payload(),
                execution_payload(),
                order_payload(),
                settled_payload(),
                reconciled_payload(),
            ]
        ) {
            prop_assert_eq!(by_hand(&payload), by_serde(&payload));
        }
    }

    /// Kinds outside a trading workflow's path go through serde.
    #[test]
    fn other_kinds_are_left_to_serde() {
        let failed = Payload::WorkflowFailed(crate::events::WorkflowFailed {
            step: "portfolio".into(),
            reason: crate::events::FailureReason::StepFailed,
            detail: "no prices".into(),
        });
        assert!(!write_by_hand(&failed, &mut Vec::new()));
    }
}
