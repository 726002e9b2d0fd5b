//! The envelope around every payload: identity, lineage and provenance.
//!
//! Children are built only through [`Envelope::caused_by`], which copies the parent's
//! correlation and sets the causation, so lineage cannot be forgotten. An envelope is
//! immutable once published (the broker shares it behind an `Arc`).

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use thiserror::Error;

use super::ids::{CorrelationId, EventId};
use super::payload::{EventKind, Payload};
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

    /// blake3 of the event type and the payload's JSON without its volatile fields
    /// (random ids, wall-clock durations): the content of the event. serde writes
    /// struct fields in declaration order and maps are `BTreeMap`s, so equal content
    /// gives equal hashes.
    pub fn payload_hash(&self) -> String {
        // Payloads are plain data (strings, decimals, maps with string keys): their
        // serialisation cannot fail. Should it ever, the hash says so visibly.
        match self.payload_digest() {
            Ok(hash) => hash.to_hex().to_string(),
            Err(e) => format!("unhashable payload: {e}"),
        }
    }

    /// [`Envelope::payload_hash`] as a digest.
    pub fn payload_digest(&self) -> Result<blake3::Hash, EnvelopeError> {
        payload_digest(self.kind(), &self.payload_bytes()?)
    }

    /// The envelope's JSON (serde's, the payload last), its payload hash, and where
    /// the head ends: the journal's entry hash covers the head and the payload hash.
    pub fn encode(&self) -> Result<EncodedEnvelope, EnvelopeError> {
        let payload = self.payload_bytes()?;
        let payload_hash = payload_digest(self.kind(), &payload)?;
        let payload_len = payload.len();
        let json = self.assemble(payload)?;
        // `{head,"payload":PAYLOAD}`: the head is what comes before the payload's key.
        let head_len = json.len() - payload_len - PAYLOAD_KEY.len() - 1;
        if json.as_bytes().get(head_len..head_len + PAYLOAD_KEY.len()) != Some(PAYLOAD_KEY) {
            return Err(EnvelopeError::Encode(
                "the payload is not the envelope's last field".into(),
            ));
        }
        Ok(EncodedEnvelope {
            json,
            head_len,
            payload_hash,
        })
    }

    pub fn to_json(&self) -> Result<String, EnvelopeError> {
        self.assemble(self.payload_bytes()?)
    }

    /// The typed envelope through serde, with the payload's JSON already written.
    fn assemble(&self, payload: Vec<u8>) -> Result<String, EnvelopeError> {
        let encode = |e: serde_json::Error| EnvelopeError::Encode(e.to_string());
        let payload =
            String::from_utf8(payload).map_err(|e| EnvelopeError::Encode(e.to_string()))?;
        let payload = RawValue::from_string(payload).map_err(encode)?;
        serde_json::to_string(&WireOut {
            event_id: self.event_id,
            event_type: self.event_type(),
            schema_version: self.schema_version,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            triggered_by: self.triggered_by,
            occurred_at: self.occurred_at,
            source: &self.source,
            payload: &payload,
        })
        .map_err(encode)
    }

    fn payload_bytes(&self) -> Result<Vec<u8>, EnvelopeError> {
        serde_json::to_vec(&self.payload).map_err(|e| EnvelopeError::Encode(e.to_string()))
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
}

/// The envelope as written: the typed fields, then the payload's JSON.
#[derive(Serialize)]
struct WireOut<'a> {
    event_id: EventId,
    event_type: &'static str,
    schema_version: u32,
    correlation_id: CorrelationId,
    causation_id: Option<EventId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    triggered_by: Option<TriggeredBy>,
    occurred_at: DateTime<Utc>,
    source: &'a str,
    payload: &'a RawValue,
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

    /// A completed workflow's digest leaves out its wall-clock duration.
    #[test]
    fn completed_workflows_digest_without_their_duration() {
        let clock = ManualClock::new(Utc.timestamp_opt(1_700_000_000, 0).unwrap());
        let digest = |duration_ms| {
            let completed = crate::events::WorkflowCompleted {
                orders_placed: 3,
                duration_ms,
            };
            let env = Envelope::root(completed, "test", &clock, None);
            assert_eq!(
                env.encode().unwrap().payload_hash,
                env.payload_digest().unwrap()
            );
            env.payload_digest().unwrap()
        };
        assert_eq!(digest(0), digest(17));
        let mut expected = blake3::Hasher::new();
        expected.update(b"workflow.completed.v1\0{\"orders_placed\":3}");
        assert_eq!(digest(u64::MAX), expected.finalize());
    }

    #[test]
    fn the_head_ends_where_the_payload_begins_and_the_json_round_trips() {
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
                let encoded = env.encode().unwrap();
                // The head, then the payload's own JSON as the last field.
                let payload = serde_json::to_string(&env.payload).unwrap();
                assert_eq!(
                    encoded.json,
                    format!(
                        "{},\"payload\":{payload}}}",
                        &encoded.json[..encoded.head_len]
                    )
                );
                assert!(!encoded.json[..encoded.head_len].contains("\"payload\""));
                assert_eq!(encoded.json, env.to_json().unwrap());
                assert_eq!(encoded.payload_hash.to_hex().as_str(), env.payload_hash());
                assert_eq!(Envelope::from_json(&encoded.json).unwrap(), env);
            }
        }
    }
}
