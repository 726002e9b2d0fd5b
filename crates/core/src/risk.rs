//! Risk limits, checked by execution before every order.
//!
//! An order reaches the venue only as an [`Approved`] intent, and only
//! [`RiskLimits::check`] makes one: a path that skipped the check would not compile.
//! A breach is an [`OrderDenied`] event with a coded reason, never a silent drop.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::domain::{OrderType, Side, Symbol};
use crate::events::{OrderDenied, OrderIntent, RiskCode};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RiskLimits {
    pub max_order_notional: Option<Decimal>,
    pub max_daily_notional: Option<Decimal>,
    pub allowed_symbols: Option<BTreeSet<Symbol>>,
}

impl RiskLimits {
    pub fn from_config(config: &RiskConfig) -> Self {
        Self {
            max_order_notional: config.max_order_notional,
            max_daily_notional: config.max_daily_notional,
            allowed_symbols: config.allowed_symbols.as_ref().map(|s| {
                s.iter()
                    .map(|s| {
                        crate::domain::parse_symbol(s).unwrap_or_else(|_| Symbol::from(s.as_str()))
                    })
                    .collect()
            }),
        }
    }

    /// Approves `intent` priced at `price` on trading day `day`, reserving a buy's
    /// notional in `ledger`; or says which limit it breaches. `held` is the account's
    /// position in the symbol before the order: a sell of no more than it only reduces
    /// exposure and is never denied (the reduce-only rule), so a limit can never trap
    /// the account in a position it wants out of.
    pub fn check(
        &self,
        intent: OrderIntent,
        price: Decimal,
        day: NaiveDate,
        held: Decimal,
        ledger: &DeployedLedger,
    ) -> Result<Approved, Box<OrderDenied>> {
        let reduces = intent.side == Side::Sell && intent.qty <= held;
        let notional = (intent.qty * price).round_dp(2);
        let deny = |code: RiskCode, limit: Option<Decimal>, detail: String| {
            Box::new(OrderDenied {
                client_order_id: intent.client_order_id.clone(),
                symbol: intent.symbol.clone(),
                side: intent.side,
                qty: intent.qty,
                notional,
                code,
                limit,
                detail,
            })
        };
        if let (Some(allowed), false) = (&self.allowed_symbols, reduces) {
            if !allowed.contains(&intent.symbol) {
                return Err(deny(
                    RiskCode::SymbolNotAllowed,
                    None,
                    format!("{} is not in risk.allowed_symbols", intent.symbol),
                ));
            }
        }
        if let (Some(max), false) = (self.max_order_notional, reduces) {
            if notional > max {
                return Err(deny(
                    RiskCode::MaxOrderNotional,
                    Some(max),
                    format!("order notional {notional} exceeds risk.max_order_notional {max}"),
                ));
            }
        }
        let reserved = if intent.side == Side::Buy {
            notional
        } else {
            Decimal::ZERO
        };
        let mut days = ledger.lock();
        let deployed = days.entry(day).or_default();
        if let (Some(max), true) = (self.max_daily_notional, reserved > Decimal::ZERO) {
            if *deployed + reserved > max {
                let already = *deployed;
                return Err(deny(
                    RiskCode::MaxDailyNotional,
                    Some(max),
                    format!(
                        "buying {reserved} on {day} on top of {already} exceeds risk.max_daily_notional {max}"
                    ),
                ));
            }
        }
        *deployed += reserved;
        Ok(Approved {
            intent,
            day,
            reserved,
        })
    }
}

/// An order intent the risk limits let through, with the notional it reserved.
#[derive(Clone, Debug, PartialEq)]
pub struct Approved {
    intent: OrderIntent,
    day: NaiveDate,
    reserved: Decimal,
}

impl Approved {
    pub fn intent(&self) -> &OrderIntent {
        &self.intent
    }

    /// One leg of the approved order (a limit order walked toward the market, the
    /// market order for the rest): never more than the approved quantity.
    pub fn leg(
        &self,
        client_order_id: String,
        qty: Decimal,
        order_type: OrderType,
        limit_price: Option<Decimal>,
    ) -> Approved {
        Approved {
            intent: OrderIntent {
                client_order_id,
                qty: qty.min(self.intent.qty),
                order_type,
                limit_price,
                ..self.intent.clone()
            },
            day: self.day,
            reserved: Decimal::ZERO,
        }
    }

    /// Replaces the reservation with what was really bought.
    pub fn settle(&self, ledger: &DeployedLedger, bought: Decimal) {
        if self.intent.side == Side::Buy {
            *ledger.lock().entry(self.day).or_default() += bought - self.reserved;
        }
    }
}

/// Notional bought per trading day.
#[derive(Clone, Debug, Default)]
pub struct DeployedLedger(Arc<Mutex<BTreeMap<NaiveDate, Decimal>>>);

impl DeployedLedger {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<NaiveDate, Decimal>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn deployed(&self, day: NaiveDate) -> Decimal {
        self.lock().get(&day).copied().unwrap_or_default()
    }

    /// Money already bought on `day` before this process started (from the journal).
    pub fn seed(&self, day: NaiveDate, bought: Decimal) {
        *self.lock().entry(day).or_default() += bought;
    }
}

/// Limits checked by execution before every order; absent keys are no limit.
#[derive(Clone, Debug, Default, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RiskConfig {
    /// Largest notional (qty × plan price) of one order, either side.
    pub max_order_notional: Option<Decimal>,
    /// Largest notional bought per trading day: the circuit breaker on money deployed.
    pub max_daily_notional: Option<Decimal>,
    /// Only these symbols may be traded (either side), when given.
    pub allowed_symbols: Option<Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn intent(symbol: &str, side: Side, qty: Decimal) -> OrderIntent {
        OrderIntent {
            client_order_id: format!("{symbol}-{}", side.as_str()),
            symbol: symbol.into(),
            side,
            qty,
            order_type: OrderType::Market,
            limit_price: None,
        }
    }

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 3, 4).unwrap()
    }

    #[test]
    fn order_notional_limit_denies_either_side() {
        let limits = RiskLimits {
            max_order_notional: Some(dec!(1000)),
            ..Default::default()
        };
        let ledger = DeployedLedger::default();
        assert!(limits
            .check(
                intent("SPY", Side::Buy, dec!(2)),
                dec!(500),
                day(),
                Decimal::ZERO,
                &ledger
            )
            .is_ok());
        let denied = limits
            .check(
                intent("SPY", Side::Sell, dec!(2.01)),
                dec!(500),
                day(),
                Decimal::ZERO,
                &ledger,
            )
            .unwrap_err();
        assert_eq!(denied.code, RiskCode::MaxOrderNotional);
        assert_eq!(denied.notional, dec!(1005.00));
        assert_eq!(denied.limit, Some(dec!(1000)));
    }

    #[test]
    fn daily_budget_counts_buys_of_the_same_day_only() {
        let limits = RiskLimits {
            max_daily_notional: Some(dec!(1000)),
            ..Default::default()
        };
        let ledger = DeployedLedger::default();
        let first = limits
            .check(
                intent("SPY", Side::Buy, dec!(6)),
                dec!(100),
                day(),
                Decimal::ZERO,
                &ledger,
            )
            .unwrap();
        let denied = limits
            .check(
                intent("TLT", Side::Buy, dec!(5)),
                dec!(100),
                day(),
                Decimal::ZERO,
                &ledger,
            )
            .unwrap_err();
        assert_eq!(denied.code, RiskCode::MaxDailyNotional);
        // Sells never spend the budget; another day has its own.
        assert!(limits
            .check(
                intent("TLT", Side::Sell, dec!(50)),
                dec!(100),
                day(),
                dec!(50),
                &ledger
            )
            .is_ok());
        let next = day().succ_opt().unwrap();
        assert!(limits
            .check(
                intent("TLT", Side::Buy, dec!(5)),
                dec!(100),
                next,
                Decimal::ZERO,
                &ledger
            )
            .is_ok());
        // Only 300 of the reserved 600 was bought: the rest is free again.
        first.settle(&ledger, dec!(300));
        assert_eq!(ledger.deployed(day()), dec!(300));
        assert!(limits
            .check(
                intent("TLT", Side::Buy, dec!(5)),
                dec!(100),
                day(),
                Decimal::ZERO,
                &ledger
            )
            .is_ok());
    }

    #[test]
    fn symbols_outside_the_allowed_list_are_denied() {
        let limits = RiskLimits {
            allowed_symbols: Some([Symbol::from("SPY")].into_iter().collect()),
            ..Default::default()
        };
        let ledger = DeployedLedger::default();
        let denied = limits
            .check(
                intent("TQQQ", Side::Buy, dec!(1)),
                dec!(50),
                day(),
                Decimal::ZERO,
                &ledger,
            )
            .unwrap_err();
        assert_eq!(denied.code, RiskCode::SymbolNotAllowed);
        assert!(denied.detail.contains("TQQQ"));
    }

    #[test]
    fn a_leg_never_exceeds_the_approved_quantity() {
        let ledger = DeployedLedger::default();
        let approved = RiskLimits::default()
            .check(
                intent("SPY", Side::Buy, dec!(3)),
                dec!(10),
                day(),
                Decimal::ZERO,
                &ledger,
            )
            .unwrap();
        let leg = approved.leg("x".into(), dec!(5), OrderType::Limit, Some(dec!(9.99)));
        assert_eq!(leg.intent().qty, dec!(3));
        assert_eq!(leg.intent().client_order_id, "x");
    }

    #[test]
    fn a_sell_that_reduces_a_position_is_never_denied() {
        let limits = RiskLimits {
            max_order_notional: Some(dec!(100)),
            allowed_symbols: Some([Symbol::from("SPY")].into_iter().collect()),
            ..Default::default()
        };
        let ledger = DeployedLedger::default();
        // Out of the allowed list and far over the order limit, but only reducing.
        let sell = intent("AAPL", Side::Sell, dec!(10));
        assert!(limits
            .check(sell.clone(), dec!(200), day(), dec!(10), &ledger)
            .is_ok());
        // Selling more than is held opens a short: checked like any order.
        let denied = limits
            .check(sell, dec!(200), day(), dec!(4), &ledger)
            .unwrap_err();
        assert_eq!(denied.code, RiskCode::SymbolNotAllowed);
        // A buy of a held symbol adds exposure: checked.
        let denied = limits
            .check(
                intent("AAPL", Side::Buy, dec!(1)),
                dec!(50),
                day(),
                dec!(10),
                &ledger,
            )
            .unwrap_err();
        assert_eq!(denied.code, RiskCode::SymbolNotAllowed);
    }
}
