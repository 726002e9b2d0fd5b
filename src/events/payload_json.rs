//! Hand-written JSON for the three payloads every workflow publishes: the signal, the
//! allocation comparison and the plan. They are about 70% of the bytes a backtest's chain
//! digest hashes. Through serde, every key and every decimal's text went through the
//! string escaper; a writer that knows the fields need not: keys are fixed ASCII,
//! decimals are digits, and symbols and hashes are checked in one pass.
//!
//! The output is byte for byte serde_json's for the same value. The unit tests check
//! that for the fixtures and for random payloads with awkward strings, so a field added
//! to one of these payloads and not to its writer fails them.

use std::collections::BTreeMap;
use std::io::Write;

use rust_decimal::Decimal;

use super::decimal_text::DecimalText;
use super::hash::write_json_str;
use super::payload::{
    AllocationCompared, AllocationRow, PlanItem, RebalancePlanned, SignalGenerated,
    StrategyAllocation,
};
use super::Payload;

/// Writes `payload`'s JSON into `out` if it is one of the hand-written kinds.
pub(crate) fn write_by_hand(payload: &Payload, out: &mut Vec<u8>) -> bool {
    match payload {
        Payload::SignalGenerated(p) => signal(p, out),
        Payload::AllocationCompared(p) => compared(p, out),
        Payload::RebalancePlanned(p) => plan(p, out),
        _ => return false,
    }
    true
}

/// The fields of one JSON object, in declaration order.
struct Object<'o> {
    out: &'o mut Vec<u8>,
    fields: usize,
}

impl<'o> Object<'o> {
    fn write(out: &'o mut Vec<u8>, fields: impl FnOnce(&mut Object<'_>)) {
        out.push(b'{');
        let mut object = Object { out, fields: 0 };
        fields(&mut object);
        object.out.push(b'}');
    }

    /// Starts field `key` (plain ASCII, so written as it is); its value comes next.
    fn key(&mut self, key: &'static str) -> &mut Vec<u8> {
        debug_assert!(key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        if self.fields > 0 {
            self.out.push(b',');
        }
        self.fields += 1;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    fn str(&mut self, key: &'static str, value: &str) {
        write_json_str(value, self.key(key));
    }

    fn dec(&mut self, key: &'static str, value: &Decimal) {
        dec(value, self.key(key));
    }

    fn dec_map<K: AsRef<str>>(&mut self, key: &'static str, map: &BTreeMap<K, Decimal>) {
        let out = self.key(key);
        out.push(b'{');
        for (i, (k, v)) in map.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_json_str(k.as_ref(), out);
            out.push(b':');
            dec(v, out);
        }
        out.push(b'}');
    }

    fn list<T>(&mut self, key: &'static str, items: &[T], item: impl Fn(&T, &mut Vec<u8>)) {
        let out = self.key(key);
        out.push(b'[');
        for (i, x) in items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            item(x, out);
        }
        out.push(b']');
    }
}

/// A decimal as serde writes it here: its `Display` text, as a string.
fn dec(value: &Decimal, out: &mut Vec<u8>) {
    out.push(b'"');
    out.extend_from_slice(DecimalText::of(value).as_bytes());
    out.push(b'"');
}

fn signal(p: &SignalGenerated, out: &mut Vec<u8>) {
    Object::write(out, |o| {
        // chrono serialises a date through its Debug text (the same as its Display).
        let out = o.key("as_of");
        out.push(b'"');
        let _ = write!(out, "{:?}", p.as_of);
        out.push(b'"');
        o.dec_map("target_weights", &p.target_weights);
        o.list("strategies", &p.strategies, strategy);
        o.str("signal_hash", &p.signal_hash);
        o.str("market_snapshot_id", &p.market_snapshot_id);
    });
}

fn strategy(s: &StrategyAllocation, out: &mut Vec<u8>) {
    Object::write(out, |o| {
        o.str("name", &s.name);
        o.dec("file_weight", &s.file_weight);
        o.dec_map("weights", &s.weights);
        o.dec_map("indicators", &s.indicators);
        match &s.error {
            Some(e) => o.str("error", e),
            None => o.key("error").extend_from_slice(b"null"),
        }
    });
}

fn compared(p: &AllocationCompared, out: &mut Vec<u8>) {
    Object::write(out, |o| {
        o.str("signal_hash", &p.signal_hash);
        o.dec("portfolio_value", &p.portfolio_value);
        o.list("rows", &p.rows, row);
    });
}

fn row(r: &AllocationRow, out: &mut Vec<u8>) {
    Object::write(out, |o| {
        o.str("symbol", &r.symbol);
        o.dec("target_weight", &r.target_weight);
        o.dec("target_value", &r.target_value);
        o.dec("current_value", &r.current_value);
        o.dec("delta", &r.delta);
    });
}

fn plan(p: &RebalancePlanned, out: &mut Vec<u8>) {
    Object::write(out, |o| {
        o.str("signal_hash", &p.signal_hash);
        o.str("plan_hash", &p.plan_hash);
        o.str("account_snapshot_id", &p.account_snapshot_id);
        o.dec("portfolio_value", &p.portfolio_value);
        o.dec("cash", &p.cash);
        o.dec("investable", &p.investable);
        o.list("items", &p.items, item);
    });
}

fn item(i: &PlanItem, out: &mut Vec<u8>) {
    Object::write(out, |o| {
        o.str("symbol", &i.symbol);
        o.str("action", i.action.as_str());
        o.dec("qty", &i.qty);
        o.dec("price", &i.price);
        o.dec("target_value", &i.target_value);
        o.dec("current_value", &i.current_value);
        o.dec("delta", &i.delta);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{PlanAction, Symbol};
    use chrono::NaiveDate;
    use proptest::prelude::*;

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
