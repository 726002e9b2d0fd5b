//! Reconciliation core: compare what the engine expects the account to hold with what
//! the venue reports, symbol by symbol, and list open orders nobody here placed.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;

use crate::domain::Symbol;
use crate::events::{OrderOutcome, PositionCheck, ReconciliationCompleted, ReconciliationStatus};
use crate::venue::{AccountSnapshot, VenueOrder};

pub use crate::domain::Positions;

/// `before` plus the fills of `orders`: what the account should hold after them.
pub fn expected_after(before: &Positions, orders: &[OrderOutcome]) -> Positions {
    let mut expected = before.clone();
    let fills = orders.iter().map(|o| (&o.symbol, o.side, o.filled_qty));
    crate::domain::apply_fills(&mut expected, fills);
    expected
}

/// Per-symbol comparison. A symbol drifts when |expected − actual| exceeds
/// `tolerance_pct` of the expected quantity (any difference when nothing is expected);
/// an open order that `explained` does not recognise is drift too, and is listed.
/// Values use `prices` where known.
pub fn reconcile(
    expected: &Positions,
    venue: &AccountSnapshot,
    open_orders: &[VenueOrder],
    explained: impl Fn(&str) -> bool,
    prices: &BTreeMap<Symbol, Decimal>,
    tolerance_pct: Decimal,
) -> ReconciliationCompleted {
    let actual = &venue.positions;
    let symbols: BTreeSet<&Symbol> = expected.keys().chain(actual.keys()).collect();
    let mut drifted = Vec::new();
    let positions = symbols
        .into_iter()
        .map(|s| {
            let e = expected.get(s).copied().unwrap_or_default();
            let a = actual.get(s).copied().unwrap_or_default();
            if (e - a).abs() > e.abs() * tolerance_pct {
                drifted.push(format!("{s} expected {e} held {a}"));
            }
            let price = prices.get(s).copied();
            PositionCheck {
                symbol: s.clone(),
                expected_qty: e,
                actual_qty: a,
                expected_value: price.map(|p| (e * p).round_dp(2)),
                actual_value: price.map(|p| (a * p).round_dp(2)),
            }
        })
        .collect();
    let unexplained: Vec<String> = open_orders
        .iter()
        .filter(|o| o.status.is_open() && !explained(&o.client_order_id))
        .map(|o| o.client_order_id.clone())
        .collect();
    let mut problems = drifted;
    if !unexplained.is_empty() {
        problems.push(format!(
            "open orders no journaled intent explains: {}",
            unexplained.join(", ")
        ));
    }
    ReconciliationCompleted {
        status: if problems.is_empty() {
            ReconciliationStatus::Ok
        } else {
            ReconciliationStatus::Drift
        },
        positions,
        expected_cash: None,
        actual_cash: Some(venue.cash),
        unexplained_orders: unexplained,
        detail: (!problems.is_empty()).then(|| problems.join("; ")),
    }
}

/// The report of a check that could not read the venue.
pub fn failed(detail: String) -> ReconciliationCompleted {
    ReconciliationCompleted {
        status: ReconciliationStatus::Failed,
        positions: vec![],
        expected_cash: None,
        actual_cash: None,
        unexplained_orders: vec![],
        detail: Some(detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Side;
    use crate::events::OutcomeStatus;
    use crate::venue::VenueOrderStatus;
    use rust_decimal_macros::dec;

    fn m(p: &[(&str, Decimal)]) -> Positions {
        p.iter().map(|(s, q)| (Symbol::from(*s), *q)).collect()
    }

    fn account(p: &[(&str, Decimal)]) -> AccountSnapshot {
        AccountSnapshot {
            cash: dec!(1000),
            positions: m(p),
        }
    }

    fn check(expected: &Positions, venue: &AccountSnapshot) -> ReconciliationCompleted {
        reconcile(
            expected,
            venue,
            &[],
            |_| true,
            &BTreeMap::new(),
            dec!(0.001),
        )
    }

    fn outcome(symbol: &str, side: Side, requested: Decimal, filled: Decimal) -> OrderOutcome {
        OrderOutcome {
            client_order_id: format!("{symbol}-1"),
            symbol: symbol.into(),
            side,
            requested_qty: requested,
            filled_qty: filled,
            avg_price: Some(dec!(10)),
            status: if filled == requested {
                OutcomeStatus::Filled
            } else {
                OutcomeStatus::PartiallyFilled
            },
            reason: None,
        }
    }

    fn open_order(id: &str) -> VenueOrder {
        VenueOrder {
            client_order_id: id.into(),
            venue_order_id: format!("v-{id}"),
            symbol: "SPY".into(),
            side: Side::Buy,
            qty: dec!(1),
            status: VenueOrderStatus::Accepted,
            filled_qty: Decimal::ZERO,
            avg_fill_price: None,
            commission: Decimal::ZERO,
            reject_reason: None,
        }
    }

    #[test]
    fn matching_positions_within_tolerance_are_ok() {
        let e = m(&[("SPY", dec!(100))]);
        let r = check(&e, &account(&[("SPY", dec!(100.05))]));
        assert_eq!(r.status, ReconciliationStatus::Ok);
        assert_eq!(r.detail, None);
        assert_eq!(r.actual_cash, Some(dec!(1000)));
    }

    #[test]
    fn a_missing_position_is_drift() {
        let e = m(&[("SPY", dec!(100)), ("TLT", dec!(20))]);
        let r = check(&e, &account(&[("SPY", dec!(100))]));
        assert_eq!(r.status, ReconciliationStatus::Drift);
        let tlt = r.positions.iter().find(|p| p.symbol == "TLT").unwrap();
        assert_eq!((tlt.expected_qty, tlt.actual_qty), (dec!(20), dec!(0)));
        assert!(r.detail.unwrap().contains("TLT expected 20 held 0"));
    }

    #[test]
    fn an_extra_position_is_drift() {
        let e = m(&[("SPY", dec!(100))]);
        let r = check(&e, &account(&[("SPY", dec!(100)), ("QQQ", dec!(0.5))]));
        assert_eq!(r.status, ReconciliationStatus::Drift);
        assert_eq!(r.positions.len(), 2);
    }

    #[test]
    fn a_partial_fill_is_expected_as_filled_not_as_requested() {
        let before = m(&[("SPY", dec!(10))]);
        let orders = [
            outcome("SPY", Side::Sell, dec!(10), dec!(10)),
            outcome("TLT", Side::Buy, dec!(8), dec!(5)),
        ];
        let expected = expected_after(&before, &orders);
        assert_eq!(expected, m(&[("TLT", dec!(5))]));
        assert_eq!(
            check(&expected, &account(&[("TLT", dec!(5))])).status,
            ReconciliationStatus::Ok
        );
        // The venue filled all 8 after the engine recorded 5: drift, not silence.
        assert_eq!(
            check(&expected, &account(&[("TLT", dec!(8))])).status,
            ReconciliationStatus::Drift
        );
    }

    #[test]
    fn an_unexplained_open_order_is_reported_never_adopted() {
        let e = m(&[("SPY", dec!(1))]);
        let venue = account(&[("SPY", dec!(1))]);
        let orders = [open_order("ours"), open_order("stranger")];
        let r = reconcile(
            &e,
            &venue,
            &orders,
            |id| id == "ours",
            &BTreeMap::new(),
            dec!(0.001),
        );
        assert_eq!(r.status, ReconciliationStatus::Drift);
        assert_eq!(r.unexplained_orders, vec!["stranger".to_string()]);
        let ok = reconcile(
            &e,
            &venue,
            &orders[..1],
            |id| id == "ours",
            &BTreeMap::new(),
            dec!(0.001),
        );
        assert_eq!(ok.status, ReconciliationStatus::Ok);
    }

    #[test]
    fn values_use_the_prices_given() {
        let e = m(&[("SPY", dec!(2))]);
        let prices = [(Symbol::from("SPY"), dec!(500.125))].into_iter().collect();
        let r = reconcile(
            &e,
            &account(&[("SPY", dec!(2))]),
            &[],
            |_| true,
            &prices,
            dec!(0),
        );
        assert_eq!(r.positions[0].expected_value, Some(dec!(1000.25)));
    }
}
