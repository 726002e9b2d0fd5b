//! Numbers as people write them, for what people read (reports, charts, messages):
//! thousands grouped, money to the cent rounded half away from zero.

use rust_decimal::{Decimal, RoundingStrategy};

/// Two decimals, a half rounded away from zero (as people round; `round_dp` alone
/// rounds a half to even).
pub fn two_places(value: Decimal) -> Decimal {
    value.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// Digits grouped by thousands: `1234567` → `1,234,567`.
fn group(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Money to the cent: `181715.256` → `181,715.26`, `-0.5` → `-0.50`.
pub fn money(value: Decimal) -> String {
    let v = two_places(value);
    let cents = (v.fract().abs() * Decimal::ONE_HUNDRED).round();
    let sign = if v.is_sign_negative() && !v.is_zero() {
        "-"
    } else {
        ""
    };
    format!("{sign}{}.{cents:0>2}", group(&v.trunc().abs().to_string()))
}

/// A whole number: `1199999.6` → `1,200,000`.
pub fn whole(value: f64) -> String {
    let rounded = value.round();
    let sign = if rounded < 0.0 { "-" } else { "" };
    format!("{sign}{}", group(&format!("{:.0}", rounded.abs())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn numbers_read_plainly() {
        assert_eq!(money(dec!(181715.256)), "181,715.26");
        assert_eq!(money(dec!(100000)), "100,000.00");
        assert_eq!(money(dec!(-0.5)), "-0.50");
        assert_eq!(money(dec!(0.125)), "0.13");
        assert_eq!(money(dec!(-1234)), "-1,234.00");
        assert_eq!(whole(1_200_000.0), "1,200,000");
        assert_eq!(whole(999.6), "1,000");
        assert_eq!(whole(-12_345.0), "-12,345");
    }
}
