//! The one canonical encoder behind every content hash (`signal_hash`, `plan_hash`,
//! `execution_plan_hash`, `account_snapshot_id`): serde's compact JSON of a content
//! type, whose fields are declared in sorted order, with every `Decimal` normalised
//! (`1.50` and `1.5` hash alike), blake3'd under a domain tag. Ids and timestamps are
//! never part of a content type, so the same inputs give the same hash in every run.
//!
//! Canonical by construction: a content type's fields are declared in key order and its
//! maps are `BTreeMap`s, so serde writes sorted keys; `tests::content_keys_are_sorted`
//! holds every content type to that in any build, against `serde_json::Value`'s own
//! sorting.
//!
//! The journal's payload hash is not this encoding: it is blake3 of the event type and
//! the payload's JSON as stored (serde's, fields in declaration order, decimals as
//! written), which is deterministic for the same payload and lets `journal verify`
//! recompute it from the stored bytes alone.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Serialize, Serializer};

use super::decimal_text::DecimalText;

/// blake3 of `domain`, a zero byte and `content`'s canonical JSON, as lowercase hex.
pub fn hash<T: Serialize + ?Sized>(domain: &str, content: &T) -> String {
    thread_local! {
        // Hashing runs for every signal, plan and order: one buffer per thread.
        static BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
    }
    let mut buf = BUFFER.with(|b| b.take());
    buf.clear();
    let mut hasher = blake3::Hasher::new();
    hasher.update(domain.as_bytes());
    hasher.update(&[0]);
    let hex = match serde_json::to_writer(&mut buf, content) {
        Ok(()) => hasher.update(&buf).finalize().to_hex().to_string(),
        // Content types are plain data: this cannot happen, and would show if it did.
        Err(e) => format!("unhashable content: {e}"),
    };
    BUFFER.with(|b| b.set(buf));
    hex
}

/// `#[serde(serialize_with = ...)]` for a content type's decimals: normalised text.
pub fn dec<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    DecimalText::normalized(d).serialize(s)
}

pub fn opt_dec<S: Serializer>(d: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&DecimalText::normalized(d)),
        None => s.serialize_none(),
    }
}

/// A borrowed decimal map (content types borrow what they hash).
pub fn dec_map<K: AsRef<str>, S: Serializer>(
    m: &&BTreeMap<K, Decimal>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(
        m.iter()
            .map(|(k, v)| (k.as_ref(), DecimalText::normalized(v))),
    )
}

/// Whether `json`'s objects all have their keys in sorted order, as canonical encodings
/// do (false for text that is not JSON): `serde_json::Value` sorts them (its maps are
/// `BTreeMap`s), so sorted JSON survives the round trip.
pub fn keys_sorted(json: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(json)
        .ok()
        .and_then(|value| serde_json::to_vec(&value).ok())
        .is_some_and(|again| again == json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sortedness_check_can_fail() {
        assert!(keys_sorted(br#"{"a":1,"b":{"c":2,"d":[{"e":3,"f":4}]}}"#));
        assert!(!keys_sorted(br#"{"b":1,"a":2}"#));
        assert!(!keys_sorted(br#"{"a":{"d":1,"c":2}}"#));
    }

    #[test]
    fn decimals_are_normalised_and_domains_separate() {
        #[derive(Serialize)]
        struct X {
            #[serde(serialize_with = "dec")]
            x: Decimal,
        }
        let a = hash(
            "d",
            &X {
                x: Decimal::new(150, 2),
            },
        );
        assert_eq!(
            a,
            hash(
                "d",
                &X {
                    x: Decimal::new(15, 1)
                }
            )
        );
        assert_ne!(
            a,
            hash(
                "e",
                &X {
                    x: Decimal::new(15, 1)
                }
            )
        );
        let mut expected = blake3::Hasher::new();
        expected.update(b"d\0{\"x\":\"1.5\"}");
        assert_eq!(a, expected.finalize().to_hex().to_string());
    }
}
