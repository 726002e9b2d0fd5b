//! Deterministic content hashes (`signal_hash`, `plan_hash`, `execution_plan_hash`).
//!
//! Each hashed payload lists its trade-relevant fields as a [`Canon`] value; the
//! canonical encoding is compact JSON with object keys sorted and every `Decimal`
//! written in normalised form (`1.50` and `1.5` hash alike). Ids and timestamps are
//! never part of a `Canon`, so the same inputs give the same hash in every run.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;

use rust_decimal::Decimal;

use super::decimal_text::DecimalText;

/// A canonical value: what a hash is computed over. It borrows the payload's texts
/// (hashing runs on every plan and signal; copying every name and symbol showed).
#[derive(Clone, Debug, PartialEq)]
pub enum Canon<'a> {
    Null,
    Str(Cow<'a, str>),
    Dec(Decimal),
    Int(i64),
    List(Vec<Canon<'a>>),
    /// Entries sorted by key, keys unique (built by [`Canon::map`]).
    Map(Vec<(Cow<'a, str>, Canon<'a>)>),
}

impl<'a> Canon<'a> {
    /// Builds a map from `(key, value)` pairs; key order does not matter, and of equal
    /// keys the last one counts.
    pub fn map<K: Into<Cow<'a, str>>>(pairs: impl IntoIterator<Item = (K, Canon<'a>)>) -> Self {
        let mut entries: Vec<(Cow<'a, str>, Canon<'a>)> =
            pairs.into_iter().map(|(k, v)| (k.into(), v)).collect();
        // Payloads list their fields in key order: nothing to sort then.
        if entries.windows(2).all(|w| w[0].0 < w[1].0) {
            return Canon::Map(entries);
        }
        entries.reverse();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|later, first| later.0 == first.0);
        Canon::Map(entries)
    }

    pub fn str(s: impl Into<Cow<'a, str>>) -> Self {
        Canon::Str(s.into())
    }

    pub fn opt_dec(d: Option<Decimal>) -> Self {
        d.map_or(Canon::Null, Canon::Dec)
    }

    /// The canonical byte encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Canon::Null => out.extend_from_slice(b"null"),
            Canon::Str(s) => write_json_str(s, out),
            Canon::Dec(d) => {
                out.push(b'"');
                out.extend_from_slice(DecimalText::normalized(d).as_str().as_bytes());
                out.push(b'"');
            }
            Canon::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Canon::List(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write(out);
                }
                out.push(b']');
            }
            Canon::Map(map) => {
                out.push(b'{');
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_json_str(k, out);
                    out.push(b':');
                    v.write(out);
                }
                out.push(b'}');
            }
        }
    }

    /// blake3 of the canonical encoding, as lowercase hex, under a domain tag so that a
    /// signal and a plan with coincidentally equal encodings never share a hash.
    pub fn hash(&self, domain: &str) -> String {
        let mut hasher = blake3::Hasher::new();
        hasher.update(domain.as_bytes());
        hasher.update(&[0]);
        hasher.update(&self.encode());
        hasher.finalize().to_hex().to_string()
    }
}

impl From<&Decimal> for Canon<'_> {
    fn from(d: &Decimal) -> Self {
        Canon::Dec(*d)
    }
}

impl<'a> From<&'a str> for Canon<'a> {
    fn from(s: &'a str) -> Self {
        Canon::Str(Cow::Borrowed(s))
    }
}

/// Decimal-valued map (weights by symbol) as a canonical map (a `BTreeMap` is sorted
/// by key already).
pub fn decimal_map(map: &BTreeMap<String, Decimal>) -> Canon<'_> {
    Canon::Map(
        map.iter()
            .map(|(k, v)| (Cow::Borrowed(k.as_str()), Canon::Dec(*v)))
            .collect(),
    )
}

fn write_json_str(s: &str, out: &mut Vec<u8>) {
    // Symbols, names and hashes need no escaping: copied as they are.
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    // serde_json's string escaping is canonical (shortest escapes), so reuse it.
    match serde_json::to_vec(s) {
        Ok(bytes) => out.extend_from_slice(&bytes),
        Err(_) => out.extend_from_slice(b"\"\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn decimals_are_normalised() {
        let a = Canon::map([("x", Canon::Dec(Decimal::from_str("1.50").unwrap()))]);
        let b = Canon::map([("x", Canon::Dec(Decimal::from_str("1.5").unwrap()))]);
        assert_eq!(a.encode(), b.encode());
        assert_eq!(a.encode(), br#"{"x":"1.5"}"#.to_vec());
    }

    #[test]
    fn keys_are_sorted_and_strings_escaped() {
        let v = Canon::map([("b", Canon::Int(2)), ("a", Canon::str("q\"uote"))]);
        assert_eq!(v.encode(), br#"{"a":"q\"uote","b":2}"#.to_vec());
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        for s in [
            "SPY",
            "a\"b",
            "back\\slash",
            "tab\there",
            "\u{1}",
            "é-ü",
            "",
        ] {
            let mut out = Vec::new();
            write_json_str(s, &mut out);
            assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn of_equal_keys_the_last_counts() {
        let v = Canon::map([
            ("a", Canon::Int(1)),
            ("b", Canon::Int(2)),
            ("a", Canon::Int(3)),
        ]);
        assert_eq!(v.encode(), br#"{"a":3,"b":2}"#.to_vec());
    }

    #[test]
    fn domain_separates_hashes() {
        let v = Canon::List(vec![]);
        assert_ne!(v.hash("signal"), v.hash("plan"));
        assert_eq!(v.hash("signal").len(), 64);
    }
}
