//! Smart limit pricing: where to place a limit order from the current quote, how to
//! walk it toward the far side when it does not fill, and when a quote is too poor to
//! trust (then the order goes to market).

use std::time::Duration;

use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use thiserror::Error;

use crate::domain::Side;

pub use crate::domain::Quote;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuoteLimits {
    /// Widest acceptable spread, as a percentage of the mid (0.5 = 0.5%).
    pub max_spread_pct: Decimal,
    pub max_age: Duration,
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum QuoteProblem {
    #[error("bid {0} is not positive")]
    BadBid(Decimal),
    #[error("ask {0} is not positive")]
    BadAsk(Decimal),
    #[error("crossed quote: ask {ask} below bid {bid}")]
    Crossed { bid: Decimal, ask: Decimal },
    #[error("spread {spread_pct}% wider than {max}%")]
    TooWide { spread_pct: Decimal, max: Decimal },
    #[error("quote {age_secs}s old, older than {max_secs}s")]
    Stale { age_secs: i64, max_secs: u64 },
}

const CENT: Decimal = Decimal::from_parts(1, 0, 0, false, 2);

/// Whether `q` is fit to price a limit order at `now`.
pub fn check_quote(
    q: &Quote,
    now: DateTime<Utc>,
    limits: &QuoteLimits,
) -> Result<(), QuoteProblem> {
    if q.bid <= Decimal::ZERO {
        return Err(QuoteProblem::BadBid(q.bid));
    }
    if q.ask <= Decimal::ZERO {
        return Err(QuoteProblem::BadAsk(q.ask));
    }
    if q.ask < q.bid {
        return Err(QuoteProblem::Crossed {
            bid: q.bid,
            ask: q.ask,
        });
    }
    let spread_pct = (q.ask - q.bid) / q.mid() * Decimal::ONE_HUNDRED;
    if spread_pct > limits.max_spread_pct {
        return Err(QuoteProblem::TooWide {
            spread_pct: spread_pct.round_dp(4),
            max: limits.max_spread_pct,
        });
    }
    let age = now - q.at;
    if age.num_milliseconds() > limits.max_age.as_millis() as i64 {
        return Err(QuoteProblem::Stale {
            age_secs: age.num_seconds(),
            max_secs: limits.max_age.as_secs(),
        });
    }
    Ok(())
}

fn cents(p: Decimal, toward_up: bool) -> Decimal {
    let strategy = if toward_up {
        RoundingStrategy::ToPositiveInfinity
    } else {
        RoundingStrategy::ToNegativeInfinity
    };
    p.round_dp_with_strategy(2, strategy)
}

/// First limit: buys at min(bid + $0.01, mid), sells at max(ask − $0.01, mid), in cents
/// (rounded in the order's favour).
pub fn initial_limit(side: Side, q: &Quote) -> Decimal {
    match side {
        Side::Buy => cents((q.bid + CENT).min(q.mid()), false),
        Side::Sell => cents((q.ask - CENT).max(q.mid()), true),
    }
}

/// Half way from `current` toward the far side of `q`, moving at least a cent (and never
/// past the far side).
pub fn repeg(side: Side, current: Decimal, q: &Quote) -> Decimal {
    match side {
        Side::Buy => {
            let next = cents(current + (q.ask - current) / Decimal::TWO, true);
            next.max(current + CENT).min(q.ask.max(current))
        }
        Side::Sell => {
            let next = cents(current - (current - q.bid) / Decimal::TWO, false);
            next.min(current - CENT).max(q.bid.min(current))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn q(bid: Decimal, ask: Decimal) -> Quote {
        Quote {
            bid,
            ask,
            at: DateTime::parse_from_rfc3339("2024-01-02T20:45:00Z")
                .unwrap()
                .with_timezone(&Utc),
        }
    }

    #[test]
    fn first_limits_improve_on_the_near_side_up_to_the_mid() {
        // Wide spread: bid + 1c is below the mid.
        assert_eq!(
            initial_limit(Side::Buy, &q(dec!(100.00), dec!(100.10))),
            dec!(100.01)
        );
        assert_eq!(
            initial_limit(Side::Sell, &q(dec!(100.00), dec!(100.10))),
            dec!(100.09)
        );
        // One-cent spread: the mid (100.005) caps it, rounded in the order's favour.
        assert_eq!(
            initial_limit(Side::Buy, &q(dec!(100.00), dec!(100.01))),
            dec!(100.00)
        );
        assert_eq!(
            initial_limit(Side::Sell, &q(dec!(100.00), dec!(100.01))),
            dec!(100.01)
        );
    }

    #[test]
    fn repegs_walk_half_way_to_the_far_side() {
        let quote = q(dec!(100.00), dec!(100.10));
        assert_eq!(repeg(Side::Buy, dec!(100.01), &quote), dec!(100.06));
        assert_eq!(repeg(Side::Buy, dec!(100.06), &quote), dec!(100.08));
        assert_eq!(repeg(Side::Buy, dec!(100.09), &quote), dec!(100.10));
        assert_eq!(repeg(Side::Buy, dec!(100.10), &quote), dec!(100.10));
        assert_eq!(repeg(Side::Sell, dec!(100.09), &quote), dec!(100.04));
        assert_eq!(repeg(Side::Sell, dec!(100.01), &quote), dec!(100.00));
    }

    #[test]
    fn poor_quotes_are_refused() {
        let limits = QuoteLimits {
            max_spread_pct: dec!(0.5),
            max_age: Duration::from_secs(60),
        };
        let now = q(dec!(1), dec!(1)).at;
        assert!(check_quote(&q(dec!(100), dec!(100.1)), now, &limits).is_ok());
        assert_eq!(
            check_quote(&q(dec!(0), dec!(100.1)), now, &limits),
            Err(QuoteProblem::BadBid(dec!(0)))
        );
        assert!(matches!(
            check_quote(&q(dec!(101), dec!(100)), now, &limits),
            Err(QuoteProblem::Crossed { .. })
        ));
        assert!(matches!(
            check_quote(&q(dec!(100), dec!(101)), now, &limits),
            Err(QuoteProblem::TooWide { .. })
        ));
        let later = now + chrono::Duration::seconds(61);
        assert!(matches!(
            check_quote(&q(dec!(100), dec!(100.1)), later, &limits),
            Err(QuoteProblem::Stale { age_secs: 61, .. })
        ));
    }
}
