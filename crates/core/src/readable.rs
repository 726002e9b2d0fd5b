//! Numbers as people write them, for what people read (reports, charts, messages):
//! thousands grouped, money to the cent rounded half away from zero.

use rust_decimal::{Decimal, RoundingStrategy};

/// `text` without a leading byte-order mark: files saved by some editors start with
/// one, and they are the same file without it. (Line ends need nothing: `lines()`
/// reads `\r\n` as `\n`, and TOML and symphonies take `\r` as white space.)
pub fn without_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// Why `text` is not a decimal this engine can hold, in words: out of range (`1e30`:
/// a decimal holds 28 to 29 significant digits), an exponent where a plain number
/// belongs, or not a number at all.
pub fn not_a_decimal(text: &str) -> String {
    let text = text.trim();
    if Decimal::from_scientific(text).is_ok() {
        return format!("`{text}` has an exponent: write it as a plain number");
    }
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => format!(
            "`{text}` is out of range: the largest number held exactly is {}",
            Decimal::MAX
        ),
        _ => format!("`{text}` is not a number"),
    }
}

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
