//! The envelope around every payload: identity, lineage and provenance.
//!
//! Children are built only through [`Envelope::caused_by`], which copies the parent's
//! correlation and sets the causation, so lineage cannot be forgotten. An envelope is
//! immutable once published (the broker shares it behind an `Arc`).

use std::borrow::Cow;
use std::io::Write;
use std::ops::Range;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use thiserror::Error;
use uuid::Uuid;

use super::ids::{CorrelationId, EventId};
use super::payload::{EventKind, Payload, WorkflowCompleted};
use crate::clock::Clock;

/// On a workflow's root: the workflow and event that started it, when another workflow
/// did (a recovery retry, a corrective rebalance).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggeredBy {
    pub correlation_id: CorrelationId,
    pub event_id: EventId,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    pub event_id: EventId,
    pub schema_version: u32,
    pub correlation_id: CorrelationId,
    /// The event that caused this one; `None` only on a chain's root.
    pub causation_id: Option<EventId>,
    pub triggered_by: Option<TriggeredBy>,
    pub occurred_at: DateTime<Utc>,
    /// Name of the actor that published it.
    pub source: Cow<'static, str>,
    pub payload: Payload,
}

impl Envelope {
    /// A new chain (a workflow's `workflow.started.v1`, a halt, a rejection notice).
    pub fn root(
        payload: impl Into<Payload>,
        source: impl Into<Cow<'static, str>>,
        clock: &dyn Clock,
        triggered_by: Option<TriggeredBy>,
    ) -> Envelope {
        let payload = payload.into();
        Envelope {
            event_id: EventId::new(),
            schema_version: payload.kind().schema_version(),
            correlation_id: CorrelationId::new(),
            causation_id: None,
            triggered_by,
            occurred_at: clock.now(),
            source: source.into(),
            payload,
        }
    }

    /// A root in a chosen correlation (a backtest's reproducible workflow ids).
    pub fn root_in(
        correlation_id: CorrelationId,
        payload: impl Into<Payload>,
        source: impl Into<Cow<'static, str>>,
        clock: &dyn Clock,
        triggered_by: Option<TriggeredBy>,
    ) -> Envelope {
        Envelope {
            correlation_id,
            ..Self::root(payload, source, clock, triggered_by)
        }
    }

    /// A child of `parent`: same correlation, causation = parent's id.
    pub fn caused_by(
        parent: &Envelope,
        payload: impl Into<Payload>,
        source: impl Into<Cow<'static, str>>,
        clock: &dyn Clock,
    ) -> Envelope {
        Self::child_of(
            parent.correlation_id,
            parent.event_id,
            payload,
            source,
            clock,
        )
    }

    /// A child of the event `causation` in `correlation`, for code that holds the ids
    /// but not the parent (the broker failing a workflow on its latest event).
    pub fn child_of(
        correlation_id: CorrelationId,
        causation: EventId,
        payload: impl Into<Payload>,
        source: impl Into<Cow<'static, str>>,
        clock: &dyn Clock,
    ) -> Envelope {
        let payload = payload.into();
        Envelope {
            event_id: EventId::new(),
            schema_version: payload.kind().schema_version(),
            correlation_id,
            causation_id: Some(causation),
            triggered_by: None,
            occurred_at: clock.now(),
            source: source.into(),
            payload,
        }
    }

    pub fn kind(&self) -> EventKind {
        self.payload.kind()
    }

    pub fn event_type(&self) -> &'static str {
        self.kind().as_str()
    }

    pub fn is_root(&self) -> bool {
        self.causation_id.is_none()
    }

    /// blake3 of the payload's JSON without its volatile fields (random ids, wall-clock
    /// durations): the content of the event. Serialisation is deterministic (struct
    /// fields in declaration order, maps are `BTreeMap`s), so equal content gives equal
    /// hashes.
    pub fn payload_hash(&self) -> String {
        // Payloads are plain data (strings, decimals, maps with string keys): their
        // serialisation cannot fail. Should it ever, the hash says so visibly.
        match self.payload_digest() {
            Ok(hash) => hash.to_hex().to_string(),
            Err(e) => format!("unhashable payload: {e}"),
        }
    }

    /// [`Envelope::payload_hash`] as a digest (no text made: backtests fold one per event).
    pub fn payload_digest(&self) -> Result<blake3::Hash, EnvelopeError> {
        thread_local! {
            static INPUT: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
        }
        let mut input = INPUT.with(|b| b.take());
        input.clear();
        let written = self.write_payload_hash_input(&mut input);
        let hash = written.map(|()| blake3::hash(&input));
        INPUT.with(|b| b.set(input));
        hash
    }

    /// Appends what the payload hash is the blake3 of: the event type, a zero byte, and
    /// the payload's JSON without its volatile fields. Batched hashing (the backtest's
    /// chain digest) writes many of these and hashes them together.
    pub fn write_payload_hash_input(&self, out: &mut Vec<u8>) -> Result<(), EnvelopeError> {
        let kind = self.kind();
        out.extend_from_slice(kind.as_str().as_bytes());
        out.push(0);
        if let Payload::WorkflowCompleted(c) = &self.payload {
            write_completed_stable(c, out);
            return Ok(());
        }
        if kind.volatile_fields().is_empty() {
            return self
                .payload
                .write_json(out)
                .map_err(|e| EnvelopeError::Encode(e.to_string()));
        }
        let json = self
            .payload_bytes()
            .map_err(|e| EnvelopeError::Encode(e.to_string()))?;
        out.extend_from_slice(&without_volatile(kind, &json)?);
        Ok(())
    }

    /// The envelope's JSON (byte for byte what serde gives for the typed envelope, with
    /// the payload last), its payload hash, and where the id and time texts sit in the
    /// JSON: the journal's columns repeat them, and slicing them out of the JSON spares
    /// formatting and allocating them again on the hot path.
    pub fn encode(&self) -> Result<EncodedEnvelope, EnvelopeError> {
        let payload = self
            .payload_bytes()
            .map_err(|e| EnvelopeError::Encode(e.to_string()))?;
        let payload_hash = payload_digest(self.kind(), &payload)?;
        let (json, head_len, at) = self.assemble(&payload)?;
        Ok(EncodedEnvelope {
            json,
            head_len,
            payload_hash,
            at,
        })
    }

    pub fn to_json(&self) -> Result<String, EnvelopeError> {
        let payload = self
            .payload_bytes()
            .map_err(|e| EnvelopeError::Encode(e.to_string()))?;
        Ok(self.assemble(&payload)?.0)
    }

    /// The head, then the payload's JSON as its last field: the JSON, the head's length
    /// and where the head's texts are.
    fn assemble(&self, payload: &[u8]) -> Result<(String, usize, HeadRanges), EnvelopeError> {
        let mut out = Vec::with_capacity(payload.len() + 320);
        let at = self.write_head(&mut out)?;
        let head_len = out.len();
        out.extend_from_slice(PAYLOAD_KEY);
        out.extend_from_slice(payload);
        out.push(b'}');
        let json = String::from_utf8(out).map_err(|e| EnvelopeError::Encode(e.to_string()))?;
        Ok((json, head_len, at))
    }

    /// The payload's JSON, in one buffer (blake3 is fast on whole buffers and slow on the
    /// many small writes a serialiser makes).
    fn payload_bytes(&self) -> sonic_rs::Result<Vec<u8>> {
        // Room for a plan (~1.3 KB): growing the buffer copied it, twice per plan.
        let mut json = Vec::with_capacity(2048);
        self.payload.write_json(&mut json)?;
        Ok(json)
    }

    /// The head: every field but the payload, without the closing brace, written as
    /// serde writes the typed fields (hyphenated lowercase uuids; RFC 3339 with `Z` and
    /// as many fraction digits as needed; event types are plain ASCII names).
    fn write_head(&self, out: &mut Vec<u8>) -> Result<HeadRanges, EnvelopeError> {
        let encode = |e: std::io::Error| EnvelopeError::Encode(e.to_string());
        out.extend_from_slice(b"{\"event_id\":\"");
        let event_id = push_uuid(out, &self.event_id.0);
        out.extend_from_slice(b"\",\"event_type\":\"");
        out.extend_from_slice(self.event_type().as_bytes());
        out.extend_from_slice(b"\",\"schema_version\":");
        write!(out, "{}", self.schema_version).map_err(encode)?;
        out.extend_from_slice(b",\"correlation_id\":\"");
        let correlation_id = push_uuid(out, &self.correlation_id.0);
        out.extend_from_slice(b"\",\"causation_id\":");
        let causation_id = match &self.causation_id {
            None => {
                out.extend_from_slice(b"null");
                None
            }
            Some(c) => {
                out.push(b'"');
                let range = push_uuid(out, &c.0);
                out.push(b'"');
                Some(range)
            }
        };
        if let Some(t) = &self.triggered_by {
            out.extend_from_slice(b",\"triggered_by\":");
            serde_json::to_writer(&mut *out, t)
                .map_err(|e| EnvelopeError::Encode(e.to_string()))?;
        }
        out.extend_from_slice(b",\"occurred_at\":\"");
        let start = out.len();
        push_rfc3339(out, &self.occurred_at).map_err(encode)?;
        let occurred_at = start..out.len();
        out.extend_from_slice(b"\",\"source\":");
        serde_json::to_writer(&mut *out, self.source.as_ref())
            .map_err(|e| EnvelopeError::Encode(e.to_string()))?;
        Ok(HeadRanges {
            event_id,
            correlation_id,
            causation_id,
            occurred_at,
        })
    }

    /// Parses one event; errors name what is wrong (malformed JSON with line and column,
    /// an unknown event type, or the payload field that failed).
    pub fn from_json(json: &str) -> Result<Envelope, EnvelopeError> {
        let wire: WireIn = serde_json::from_str(json).map_err(|e| EnvelopeError::Malformed {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        let kind = EventKind::from_wire(&wire.event_type)
            .ok_or_else(|| EnvelopeError::UnknownEventType(wire.event_type.clone()))?;
        let payload = Payload::from_json_str(kind, wire.payload.get()).map_err(|e| {
            EnvelopeError::Payload {
                event_type: kind.as_str(),
                message: e.to_string(),
            }
        })?;
        Ok(Envelope {
            event_id: wire.event_id,
            schema_version: wire.schema_version.unwrap_or_else(|| kind.schema_version()),
            correlation_id: wire.correlation_id,
            causation_id: wire.causation_id,
            triggered_by: wire.triggered_by,
            occurred_at: wire.occurred_at,
            source: Cow::Owned(wire.source),
            payload,
        })
    }
}

#[derive(Debug, Error, PartialEq)]
pub enum EnvelopeError {
    #[error("malformed event JSON at line {line}, column {column}: {message}")]
    Malformed {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("unknown event type `{0}`")]
    UnknownEventType(String),
    #[error("invalid payload for `{event_type}`: {message}")]
    Payload {
        event_type: &'static str,
        message: String,
    },
    #[error("cannot encode event: {0}")]
    Encode(String),
}

/// What `wrap` puts between the head and the payload.
const PAYLOAD_KEY: &[u8] = b",\"payload\":";

/// The payload hash of a payload's JSON as stored: blake3 of the event type and the
/// bytes, or, for kinds with volatile fields, of the JSON without those fields (what
/// [`Envelope::payload_hash`] gives for the typed payload).
pub fn stored_payload_hash(kind: EventKind, payload_json: &[u8]) -> Result<String, EnvelopeError> {
    Ok(payload_digest(kind, payload_json)?.to_hex().to_string())
}

/// A `workflow.completed.v1`'s JSON without its volatile `duration_ms`, written
/// directly: every workflow ends with one, and the generic route (parse, drop
/// `duration_ms`, write again) cost a twentieth of a backtest's digest thread. A test
/// holds the two routes equal. `encode` takes the generic route: it has the JSON in hand.
fn write_completed_stable(c: &WorkflowCompleted, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"orders_placed\":");
    out.extend_from_slice(itoa::Buffer::new().format(c.orders_placed).as_bytes());
    out.push(b'}');
}

fn payload_digest(kind: EventKind, payload_json: &[u8]) -> Result<blake3::Hash, EnvelopeError> {
    let bytes = without_volatile(kind, payload_json)?;
    let mut hasher = blake3::Hasher::new();
    hasher.update(kind.as_str().as_bytes());
    hasher.update(&[0]);
    hasher.update(&bytes);
    Ok(hasher.finalize())
}

/// The payload's JSON without the kind's volatile fields (as it is when it has none).
fn without_volatile(kind: EventKind, payload_json: &[u8]) -> Result<Cow<'_, [u8]>, EnvelopeError> {
    let volatile = kind.volatile_fields();
    if volatile.is_empty() {
        return Ok(Cow::Borrowed(payload_json));
    }
    let mut value: serde_json::Value =
        serde_json::from_slice(payload_json).map_err(|e| EnvelopeError::Encode(e.to_string()))?;
    if let Some(map) = value.as_object_mut() {
        for field in volatile {
            map.remove(*field);
        }
    }
    serde_json::to_vec(&value)
        .map(Cow::Owned)
        .map_err(|e| EnvelopeError::Encode(e.to_string()))
}

/// An envelope's JSON as [`Envelope::encode`] writes it, cut into its head (every field
/// but the payload, without the closing brace) and its payload; `None` when the JSON is
/// not in that form.
pub fn split_stored(json: &str) -> Option<(&str, &str)> {
    #[derive(Deserialize)]
    struct PayloadOnly<'a> {
        #[serde(borrow)]
        payload: &'a RawValue,
    }
    let parsed: PayloadOnly<'_> = serde_json::from_str(json).ok()?;
    let payload = parsed.payload.get();
    let start = (payload.as_ptr() as usize).checked_sub(json.as_ptr() as usize)?;
    let head_end = start.checked_sub(PAYLOAD_KEY.len())?;
    let fits = json.as_bytes().get(head_end..start) == Some(PAYLOAD_KEY)
        && json.get(start + payload.len()..) == Some("}");
    fits.then(|| (&json[..head_end], payload))
}

/// An envelope as stored: see [`Envelope::encode`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedEnvelope {
    pub json: String,
    /// `json[..head_len]` is the head: every field but the payload.
    pub head_len: usize,
    pub payload_hash: blake3::Hash,
    at: HeadRanges,
}

impl EncodedEnvelope {
    pub fn event_id(&self) -> &str {
        &self.json[self.at.event_id.clone()]
    }

    pub fn correlation_id(&self) -> &str {
        &self.json[self.at.correlation_id.clone()]
    }

    pub fn causation_id(&self) -> Option<&str> {
        self.at.causation_id.clone().map(|r| &self.json[r])
    }

    /// RFC 3339 ending in `Z`, as in the JSON.
    pub fn occurred_at(&self) -> &str {
        &self.json[self.at.occurred_at.clone()]
    }
}

/// Where the head's id and time texts are in the JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
struct HeadRanges {
    event_id: Range<usize>,
    correlation_id: Range<usize>,
    causation_id: Option<Range<usize>>,
    occurred_at: Range<usize>,
}

fn push_uuid(out: &mut Vec<u8>, id: &Uuid) -> Range<usize> {
    let start = out.len();
    let mut buf = Uuid::encode_buffer();
    out.extend_from_slice(id.hyphenated().encode_lower(&mut buf).as_bytes());
    start..out.len()
}

/// RFC 3339 as chrono's serde writes a UTC time: `Z`, and 0, 3, 6 or 9 fraction digits
/// (the fewest that are exact). Years outside 0..=9999 and leap seconds, which chrono
/// writes its own way, go through chrono.
fn push_rfc3339(out: &mut Vec<u8>, at: &DateTime<Utc>) -> std::io::Result<()> {
    let t = at.naive_utc();
    let nanos = t.nanosecond();
    if !(0..=9999).contains(&t.year()) || nanos >= 1_000_000_000 {
        out.extend_from_slice(
            at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                .as_bytes(),
        );
        return Ok(());
    }
    write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )?;
    if nanos == 0 {
    } else if nanos.is_multiple_of(1_000_000) {
        write!(out, ".{:03}", nanos / 1_000_000)?;
    } else if nanos.is_multiple_of(1_000) {
        write!(out, ".{:06}", nanos / 1_000)?;
    } else {
        write!(out, ".{nanos:09}")?;
    }
    out.push(b'Z');
    Ok(())
}

#[derive(Deserialize)]
struct WireIn {
    event_id: EventId,
    event_type: String,
    #[serde(default)]
    schema_version: Option<u32>,
    correlation_id: CorrelationId,
    #[serde(default)]
    causation_id: Option<EventId>,
    #[serde(default)]
    triggered_by: Option<TriggeredBy>,
    occurred_at: DateTime<Utc>,
    source: String,
    payload: Box<RawValue>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::events::OrderFilled;
    use chrono::TimeZone;
    use rust_decimal::Decimal;

    /// The head as serde writes the typed fields: what the preformatted texts must equal.
    #[derive(Serialize)]
    struct TypedHead<'a> {
        event_id: EventId,
        event_type: &'static str,
        schema_version: u32,
        correlation_id: CorrelationId,
        causation_id: Option<EventId>,
        #[serde(skip_serializing_if = "Option::is_none")]
        triggered_by: Option<TriggeredBy>,
        occurred_at: DateTime<Utc>,
        source: &'a str,
    }

    fn fill() -> OrderFilled {
        OrderFilled {
            client_order_id: "alc-1".into(),
            fill_id: "f1".into(),
            symbol: "SPY".into(),
            side: crate::domain::Side::Buy,
            qty: Decimal::new(15, 1),
            price: Decimal::new(50_012, 2),
            commission: Decimal::ZERO,
        }
    }

    /// The direct digest of a completed workflow is the generic one (JSON without its
    /// volatile `duration_ms`), whatever the figures; so is the one the journal stores.
    #[test]
    fn completed_workflows_digest_as_the_generic_route_does() {
        let clock = ManualClock::new(Utc.timestamp_opt(1_700_000_000, 0).unwrap());
        for (orders_placed, duration_ms) in [(0, 0), (3, 17), (u32::MAX, u64::MAX)] {
            let completed = WorkflowCompleted {
                orders_placed,
                duration_ms,
            };
            let env = Envelope::root(completed.clone(), "test", &clock, None);
            let json = env.payload_bytes().unwrap();
            let generic = payload_digest(EventKind::WorkflowCompleted, &json).unwrap();
            assert_eq!(env.payload_digest().unwrap(), generic, "{completed:?}");
            assert_eq!(env.encode().unwrap().payload_hash, generic, "{completed:?}");
        }
    }

    #[test]
    fn encoded_json_is_what_the_typed_head_serialises_to() {
        let times = [
            Utc.with_ymd_and_hms(2024, 3, 1, 14, 30, 0).unwrap(),
            Utc.timestamp_opt(1_700_000_000, 120_000_000).unwrap(),
            Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap(),
            Utc.timestamp_opt(1_700_000_000, 1_000).unwrap(),
            Utc.timestamp_opt(1_700_000_000, 1_500_000).unwrap(),
            Utc.timestamp_opt(0, 7).unwrap(),
        ];
        for t in times {
            let clock = ManualClock::new(t);
            let root = Envelope::root(fill(), "bench", &clock, None);
            let child = Envelope::caused_by(&root, fill(), "execution", &clock);
            let retry = Envelope::root(
                fill(),
                "recovery \"quoted\"",
                &clock,
                Some(TriggeredBy {
                    correlation_id: root.correlation_id,
                    event_id: child.event_id,
                }),
            );
            for env in [root, child, retry] {
                let head = TypedHead {
                    event_id: env.event_id,
                    event_type: env.event_type(),
                    schema_version: env.schema_version,
                    correlation_id: env.correlation_id,
                    causation_id: env.causation_id,
                    triggered_by: env.triggered_by,
                    occurred_at: env.occurred_at,
                    source: &env.source,
                };
                let mut expected = serde_json::to_string(&head).unwrap();
                expected.pop();
                let encoded = env.encode().unwrap();
                assert!(
                    encoded
                        .json
                        .starts_with(&format!("{expected},\"payload\":")),
                    "{} vs {expected}",
                    encoded.json
                );
                assert_eq!(&encoded.json[..encoded.head_len], expected);
                assert_eq!(encoded.json, env.to_json().unwrap());
                assert_eq!(encoded.payload_hash.to_hex().as_str(), env.payload_hash());
                assert_eq!(Envelope::from_json(&encoded.json).unwrap(), env);
                assert_eq!(encoded.event_id(), env.event_id.to_string());
                assert_eq!(encoded.correlation_id(), env.correlation_id.to_string());
                assert_eq!(
                    encoded.causation_id(),
                    env.causation_id.map(|c| c.to_string()).as_deref()
                );
                assert_eq!(
                    encoded.occurred_at().replace('Z', "+00:00"),
                    env.occurred_at.to_rfc3339()
                );
            }
        }
    }
}
