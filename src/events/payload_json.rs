//! Hand-written JSON for the three payloads every workflow publishes: the signal, the
//! allocation comparison and the plan. They are about 70% of the bytes a backtest's chain
//! digest hashes. Through serde, every key and every decimal's text went through the
//! string escaper; the hash writer ([`JsonWriter`], in its payload form) knows better:
//! decimals are digits, and keys, symbols and hashes are checked in one pass.
//!
//! The output is byte for byte serde_json's for the same value. The unit tests check
//! that for the fixtures and for random payloads with awkward strings, so a field added
//! to one of these payloads and not to its writer fails them.

use super::hash::JsonWriter;
use super::payload::{
    AllocationCompared, AllocationRow, PlanItem, RebalancePlanned, SignalGenerated,
    StrategyAllocation,
};
use super::Payload;

/// Writes `payload`'s JSON onto `out` if it is one of the hand-written kinds.
pub(crate) fn write_by_hand(payload: &Payload, out: &mut Vec<u8>) -> bool {
    match payload {
        Payload::SignalGenerated(p) => write(out, |w| signal(p, w)),
        Payload::AllocationCompared(p) => write(out, |w| compared(p, w)),
        Payload::RebalancePlanned(p) => write(out, |w| plan(p, w)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{PlanAction, Symbol};
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn hand_written_json_is_serde_jsons(
            payload in prop_oneof![signal_payload(), compared_payload(), plan_payload()]
        ) {
            prop_assert_eq!(by_hand(&payload), by_serde(&payload));
        }
    }

    /// Only the three hot kinds are written by hand; the rest go through serde.
    #[test]
    fn other_kinds_are_left_to_serde() {
        let started = Payload::WorkflowStarted(crate::events::WorkflowStarted {
            as_of: NaiveDate::from_ymd_opt(2024, 3, 4).unwrap_or_default(),
            mode: Default::default(),
            trigger: "manual".into(),
            attempt: 0,
        });
        assert!(!write_by_hand(&started, &mut Vec::new()));
    }
}
