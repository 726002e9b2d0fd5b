//! Reconciliation core: compare the positions the engine expects with the venue's.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;

use crate::domain::Symbol;
use crate::events::{PositionCheck, ReconciliationCompleted, ReconciliationStatus};

/// Per-symbol comparison; `drift` when any |expected − actual| exceeds
/// `tolerance_pct` of the expected quantity (or any difference at all when expected is 0).
pub fn reconcile(
    expected: &BTreeMap<Symbol, Decimal>,
    actual: &BTreeMap<Symbol, Decimal>,
    tolerance_pct: Decimal,
) -> ReconciliationCompleted {
    let symbols: BTreeSet<&Symbol> = expected.keys().chain(actual.keys()).collect();
    let mut drift = false;
    let positions = symbols
        .into_iter()
        .map(|s| {
            let e = expected.get(s).copied().unwrap_or_default();
            let a = actual.get(s).copied().unwrap_or_default();
            let allowed = e.abs() * tolerance_pct;
            drift |= (e - a).abs() > allowed;
            PositionCheck {
                symbol: s.clone(),
                expected_qty: e,
                actual_qty: a,
                expected_value: None,
                actual_value: None,
            }
        })
        .collect();
    ReconciliationCompleted {
        status: if drift {
            ReconciliationStatus::Drift
        } else {
            ReconciliationStatus::Ok
        },
        positions,
        expected_cash: None,
        actual_cash: None,
        unexplained_orders: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn m(p: &[(&str, Decimal)]) -> BTreeMap<Symbol, Decimal> {
        p.iter().map(|(s, q)| (s.to_string(), *q)).collect()
    }

    #[test]
    fn within_tolerance_is_ok_beyond_is_drift() {
        let e = m(&[("SPY", dec!(100))]);
        assert_eq!(
            reconcile(&e, &m(&[("SPY", dec!(100.5))]), dec!(0.01)).status,
            ReconciliationStatus::Ok
        );
        assert_eq!(
            reconcile(&e, &m(&[("SPY", dec!(98))]), dec!(0.01)).status,
            ReconciliationStatus::Drift
        );
        let r = reconcile(&e, &m(&[("SPY", dec!(100)), ("QQQ", dec!(1))]), dec!(0.01));
        assert_eq!(r.status, ReconciliationStatus::Drift);
        assert_eq!(r.positions.len(), 2);
    }
}
