//! Decimals as text, fast. rust_decimal formats by dividing its 96-bit mantissa by ten
//! once per digit, which made decimal formatting the largest single cost of hashing
//! payloads (backtests hash every event). [`DecimalText`] writes the very same text
//! (`Display`, and serde's string form) from the mantissa's digits as `itoa` formats
//! them, in a stack buffer, so stored JSON and every hash are unchanged.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::ser::{Serialize, Serializer};

/// A decimal's text in a stack buffer (at most 29 digits, a sign, a point and a zero).
pub struct DecimalText {
    buf: [u8; 40],
    len: usize,
}

impl DecimalText {
    pub fn of(d: &Decimal) -> Self {
        Self::written(d, false)
    }

    /// The text of `d.normalize()` (no trailing fractional zeros, no negative zero),
    /// from the digits: normalising divides the mantissa by ten per zero stripped.
    pub fn normalized(d: &Decimal) -> Self {
        Self::written(d, true)
    }

    fn written(d: &Decimal, normalized: bool) -> Self {
        let mut out = Self {
            buf: [0; 40],
            len: 0,
        };
        write_text(d, normalized, &mut out);
        out
    }

    /// The text's bytes (for writers that take bytes: no UTF-8 check needed).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits, '-' and '.' were written.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("0")
    }
}

/// Where decimal text goes: a [`DecimalText`], or straight onto a JSON buffer (one
/// copy fewer per decimal, and hashing writes hundreds of thousands of them per run).
pub(crate) trait TextSink {
    fn push(&mut self, b: u8);
    fn extend(&mut self, bytes: &[u8]);
}

impl TextSink for DecimalText {
    fn push(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    fn extend(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }
}

impl TextSink for Vec<u8> {
    fn push(&mut self, b: u8) {
        Vec::push(self, b);
    }

    fn extend(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Writes `d`'s text (`Display`'s, or `normalize()`'s when `normalized`) from the
/// mantissa's digits as `itoa` formats them.
pub(crate) fn write_text(d: &Decimal, normalized: bool, out: &mut impl TextSink) {
    let mut itoa_digits = itoa::Buffer::new();
    let mantissa = d.mantissa().unsigned_abs();
    // Prices, quantities and cash fit 64 bits; 128-bit formatting divides slowly.
    let mut digits: &[u8] = match u64::try_from(mantissa) {
        Ok(0) => b"",
        Ok(small) => itoa_digits.format(small).as_bytes(),
        Err(_) => itoa_digits.format(mantissa).as_bytes(),
    };
    let mut scale = d.scale() as usize;
    if normalized {
        while scale > 0 && digits.last() == Some(&b'0') {
            digits = &digits[..digits.len() - 1];
            scale -= 1;
        }
        if digits.is_empty() {
            scale = 0;
        }
    }
    if d.is_sign_negative() && !(normalized && digits.is_empty()) {
        out.push(b'-');
    }
    if digits.len() > scale {
        let whole = digits.len() - scale;
        out.extend(&digits[..whole]);
        if scale > 0 {
            out.push(b'.');
            out.extend(&digits[whole..]);
        }
    } else if scale > 0 {
        // All fraction: "0." then zeros up to the scale, then the digits.
        out.extend(b"0.");
        for _ in digits.len()..scale {
            out.push(b'0');
        }
        out.extend(digits);
    } else {
        out.push(b'0');
    }
}

impl Serialize for DecimalText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// `#[serde(serialize_with = ...)]` helpers giving rust_decimal's own string form.
pub mod text {
    use super::*;

    pub fn plain<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        DecimalText::of(d).serialize(s)
    }

    pub fn opt<S: Serializer>(d: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&DecimalText::of(d)),
            None => s.serialize_none(),
        }
    }

    pub fn map<K: AsRef<str>, S: Serializer>(
        m: &BTreeMap<K, Decimal>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(m.iter().map(|(k, v)| (k.as_ref(), DecimalText::of(v))))
    }

    pub fn opt_map<K: AsRef<str>, S: Serializer>(
        m: &Option<BTreeMap<K, Decimal>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        struct Map<'a, K>(&'a BTreeMap<K, Decimal>);
        impl<K: AsRef<str>> Serialize for Map<'_, K> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                map(self.0, s)
            }
        }
        match m {
            Some(m) => s.serialize_some(&Map(m)),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde::Serialize;

    fn check(d: Decimal) {
        assert_eq!(DecimalText::of(&d).as_str(), d.to_string(), "{d:?}");
        assert_eq!(
            DecimalText::normalized(&d).as_str(),
            d.normalize().to_string(),
            "{d:?} normalised"
        );
        // Straight onto a buffer: the same text, after what the buffer held.
        for normalized in [false, true] {
            let mut out = b"x".to_vec();
            write_text(&d, normalized, &mut out);
            let text = if normalized { d.normalize() } else { d }.to_string();
            assert_eq!(out, [b"x", text.as_bytes()].concat(), "{d:?} onto a buffer");
        }
    }

    #[test]
    fn text_is_rust_decimals_own() {
        for s in [
            "0",
            "0.00",
            "-0.00",
            "100",
            "100.00",
            "-100.0100",
            "1",
            "-1",
            "1.50",
            "-0.05",
            "0.000001",
            "123456.789",
        ] {
            check(s.parse().unwrap());
        }
        check(Decimal::MAX);
        check(Decimal::MIN);
        // Either side of the 64-bit mantissa boundary (u64::MAX, then 2^64).
        check(Decimal::from_parts(u32::MAX, u32::MAX, 0, false, 3));
        check(Decimal::from_parts(0, 0, 1, true, 3));
        check(Decimal::new(-0, 3));
        let mut negative_zero = Decimal::new(0, 2);
        negative_zero.set_sign_negative(true);
        check(negative_zero);
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..200_000 {
            let width: u32 = rng.random_range(1..=96);
            let mut mantissa = rng.random::<u128>() >> (128 - width);
            // Trailing zeros, for the normalised text.
            for _ in 0..rng.random_range(0..4) {
                if mantissa < (1u128 << 92) {
                    mantissa *= 10;
                }
            }
            let scale: u32 = rng.random_range(0..=28);
            let negative: bool = rng.random();
            let d = Decimal::from_parts(
                mantissa as u32,
                (mantissa >> 32) as u32,
                (mantissa >> 64) as u32,
                negative,
                scale,
            );
            check(d);
        }
    }

    #[test]
    fn serde_helpers_write_what_serde_writes() {
        #[derive(Serialize)]
        struct Fast {
            #[serde(serialize_with = "text::plain")]
            a: Decimal,
            #[serde(serialize_with = "text::opt")]
            b: Option<Decimal>,
            #[serde(serialize_with = "text::opt")]
            c: Option<Decimal>,
            #[serde(serialize_with = "text::map")]
            d: BTreeMap<String, Decimal>,
            #[serde(serialize_with = "text::opt_map")]
            e: Option<BTreeMap<String, Decimal>>,
            #[serde(serialize_with = "text::opt_map")]
            f: Option<BTreeMap<String, Decimal>>,
        }
        #[derive(Serialize)]
        struct Plain {
            a: Decimal,
            b: Option<Decimal>,
            c: Option<Decimal>,
            d: BTreeMap<String, Decimal>,
            e: Option<BTreeMap<String, Decimal>>,
            f: Option<BTreeMap<String, Decimal>>,
        }
        let map: BTreeMap<String, Decimal> = [
            ("SPY".to_string(), "0.25".parse().unwrap()),
            ("T\"Q".to_string(), "-3".parse().unwrap()),
        ]
        .into();
        let a: Decimal = "1234.5600".parse().unwrap();
        let fast = Fast {
            a,
            b: Some(a),
            c: None,
            d: map.clone(),
            e: Some(map.clone()),
            f: None,
        };
        let plain = Plain {
            a,
            b: Some(a),
            c: None,
            d: map.clone(),
            e: Some(map),
            f: None,
        };
        assert_eq!(
            serde_json::to_string(&fast).unwrap(),
            serde_json::to_string(&plain).unwrap()
        );
    }
}
