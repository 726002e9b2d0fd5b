//! Deterministic content hashes (`signal_hash`, `plan_hash`, `execution_plan_hash`).
//!
//! Each hashed payload writes its trade-relevant fields through a [`JsonWriter`] in its
//! canonical form: compact JSON with object keys sorted and every `Decimal`
//! written in normalised form (`1.50` and `1.5` hash alike). Ids and timestamps are
//! never written, so the same inputs give the same hash in every run. The writer streams
//! into one buffer: hashing runs for every signal, plan and order, and building a value
//! tree first (a vector per object, then sorting its keys) cost as much as the encoding.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::decimal_text::write_text;

/// Compact JSON, written value by value, in one of two forms (see [`JsonForm`]).
/// Objects are written through [`JsonObject`].
#[derive(Debug, Default)]
pub struct JsonWriter {
    out: Vec<u8>,
    form: JsonForm,
}

/// What a [`JsonWriter`] writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JsonForm {
    /// Hash input: object keys in sorted order (checked in debug builds and by the
    /// tests), decimals normalised (`1.50` and `1.5` hash alike).
    #[default]
    Canonical,
    /// A payload as serde writes it: keys in declaration order, decimals as their
    /// `Display` text.
    Payload,
}

impl JsonWriter {
    /// A writer of the canonical form.
    pub fn new() -> Self {
        Self {
            out: Vec::with_capacity(512),
            form: JsonForm::Canonical,
        }
    }

    /// A writer of the payload form that appends to `out`.
    pub(crate) fn payload(out: Vec<u8>) -> Self {
        Self {
            out,
            form: JsonForm::Payload,
        }
    }

    /// The bytes written, the buffer given back.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.out
    }

    pub fn str(&mut self, s: &str) {
        write_json_str(s, &mut self.out);
    }

    pub fn dec(&mut self, d: Decimal) {
        self.out.push(b'"');
        write_text(&d, self.form == JsonForm::Canonical, &mut self.out);
        self.out.push(b'"');
    }

    /// A date as `YYYY-MM-DD` (its `Debug` text, which chrono's serde form uses too).
    pub fn date(&mut self, d: NaiveDate) {
        self.out.push(b'"');
        let _ = write!(self.out, "{d:?}");
        self.out.push(b'"');
    }

    pub fn opt_dec(&mut self, d: Option<Decimal>) {
        match d {
            Some(d) => self.dec(d),
            None => self.null(),
        }
    }

    pub fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.str(s),
            None => self.null(),
        }
    }

    pub fn int(&mut self, i: i64) {
        let _ = write!(self.out, "{i}");
    }

    pub fn null(&mut self) {
        self.out.extend_from_slice(b"null");
    }

    /// A list: `item` writes each element.
    pub fn list<T>(
        &mut self,
        items: impl IntoIterator<Item = T>,
        mut item: impl FnMut(&mut Self, T),
    ) {
        self.out.push(b'[');
        for (i, x) in items.into_iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            item(self, x);
        }
        self.out.push(b']');
    }

    /// An object: `fields` writes its fields, in key order.
    pub fn map(&mut self, fields: impl FnOnce(&mut JsonObject<'_>)) {
        self.out.push(b'{');
        let mut map = JsonObject {
            w: self,
            fields: 0,
            #[cfg(debug_assertions)]
            last_key: None,
        };
        fields(&mut map);
        self.out.push(b'}');
    }

    /// A decimal-valued map (weights by symbol); a `BTreeMap` is in key order already.
    pub fn decimal_map<K: AsRef<str>>(&mut self, map: &BTreeMap<K, Decimal>) {
        self.map(|m| {
            for (k, v) in map {
                m.entry(k.as_ref()).dec(*v);
            }
        });
    }

    /// [`Self::decimal_map`], or `null`.
    pub fn opt_decimal_map<K: AsRef<str>>(&mut self, map: Option<&BTreeMap<K, Decimal>>) {
        match map {
            Some(map) => self.decimal_map(map),
            None => self.null(),
        }
    }

    /// The canonical bytes written so far.
    pub fn bytes(&self) -> &[u8] {
        &self.out
    }

    /// blake3 of the canonical encoding, as lowercase hex, under a domain tag so that a
    /// signal and a plan with coincidentally equal encodings never share a hash.
    pub fn hash(&self, domain: &str) -> String {
        let mut hasher = blake3::Hasher::new();
        hasher.update(domain.as_bytes());
        hasher.update(&[0]);
        hasher.update(&self.out);
        hasher.finalize().to_hex().to_string()
    }

    /// Writes one value and hashes it: `JsonWriter::hash_of("plan.v1", |w| ...)`.
    ///
    /// The buffer is the thread's own, kept between calls: a plan's encoding (~1.2 KB)
    /// grew a fresh buffer twice per plan, and its allocation and copies were a tenth of
    /// the hash's cost.
    pub fn hash_of(domain: &str, value: impl FnOnce(&mut Self)) -> String {
        thread_local! {
            static BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
        }
        let mut w = Self {
            out: BUFFER.with(|b| b.take()),
            form: JsonForm::Canonical,
        };
        w.out.clear();
        value(&mut w);
        let hash = w.hash(domain);
        BUFFER.with(|b| b.set(w.out));
        hash
    }
}

/// The fields of an object being written.
pub struct JsonObject<'w> {
    w: &'w mut JsonWriter,
    fields: usize,
    #[cfg(debug_assertions)]
    last_key: Option<String>,
}

impl JsonObject<'_> {
    /// Starts the field `key`, a name from the code (plain ASCII: written as it is, the
    /// copy inlined where its length is known); in the canonical form keys strictly
    /// increase. Write its value next.
    #[inline(always)]
    pub fn field(&mut self, key: &'static str) -> &mut JsonWriter {
        debug_assert!(
            !needs_escape(key),
            "field names are written unescaped: {key:?}"
        );
        self.check_order(key);
        let out = &mut self.w.out;
        if self.fields > 0 {
            out.push(b',');
        }
        self.fields += 1;
        out.push(b'"');
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
        self.w
    }

    /// Starts the field `key` taken from data (a symbol, an indicator's label), escaped
    /// as JSON requires.
    pub fn entry(&mut self, key: &str) -> &mut JsonWriter {
        self.check_order(key);
        if self.fields > 0 {
            self.w.out.push(b',');
        }
        self.fields += 1;
        write_json_str(key, &mut self.w.out);
        self.w.out.push(b':');
        self.w
    }

    #[inline(always)]
    fn check_order(&mut self, _key: &str) {
        #[cfg(debug_assertions)]
        if self.w.form == JsonForm::Canonical {
            if let Some(last) = &self.last_key {
                debug_assert!(
                    last.as_str() < _key,
                    "canonical keys out of order: {_key:?} after {last:?}"
                );
            }
            self.last_key = Some(_key.to_string());
        }
    }
}

/// Whether `s` needs escaping in a JSON string. The test runs over every byte without
/// stopping early, which the compiler vectorises.
fn needs_escape(s: &str) -> bool {
    s.bytes().fold(false, |any, b| {
        any | (b == b'"') | (b == b'\\') | (b < 0x20)
    })
}

pub(crate) fn write_json_str(s: &str, out: &mut Vec<u8>) {
    // Symbols, names and hashes need no escaping: copied as they are.
    if !needs_escape(s) {
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

    fn encode(value: impl FnOnce(&mut JsonWriter)) -> Vec<u8> {
        let mut w = JsonWriter::new();
        value(&mut w);
        w.bytes().to_vec()
    }

    #[test]
    fn decimals_are_normalised() {
        let a = encode(|w| w.map(|m| m.field("x").dec(Decimal::from_str("1.50").unwrap())));
        let b = encode(|w| w.map(|m| m.field("x").dec(Decimal::from_str("1.5").unwrap())));
        assert_eq!(a, b);
        assert_eq!(a, br#"{"x":"1.5"}"#.to_vec());
    }

    #[test]
    fn values_nest_as_compact_json() {
        let mut weights = BTreeMap::new();
        weights.insert("SPY".to_string(), Decimal::from_str("0.600").unwrap());
        weights.insert("IWM".to_string(), Decimal::from_str("-0").unwrap());
        let bytes = encode(|w| {
            w.map(|m| {
                m.field("a").str("q\"uote");
                m.field("b").int(-2);
                m.field("c")
                    .list([Some(Decimal::TEN), None], |w, d| w.opt_dec(d));
                m.field("d").decimal_map(&weights);
                m.field("e").map(|_| {});
                m.field("f").opt_str(None);
            })
        });
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"a":"q\"uote","b":-2,"c":["10",null],"d":{"IWM":"0","SPY":"0.6"},"e":{},"f":null}"#
        );
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "canonical keys out of order")]
    fn keys_out_of_order_are_caught_in_debug_builds() {
        encode(|w| {
            w.map(|m| {
                m.field("b").int(1);
                m.field("a").int(2);
            })
        });
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
    fn domain_separates_hashes() {
        let list = |w: &mut JsonWriter| w.list(std::iter::empty::<()>(), |_, _| {});
        let signal = JsonWriter::hash_of("signal", list);
        assert_ne!(signal, JsonWriter::hash_of("plan", list));
        assert_eq!(signal.len(), 64);
    }
}
