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

    /// blake3 of the payload's JSON without its volatile fields (random ids, wall-clock
    /// durations): the content of the event. Serialisation is deterministic (struct
    /// fields in declaration order, maps are `BTreeMap`s), so equal content gives equal
    /// hashes.
    pub fn payload_hash(&self) -> String {
        let volatile = self.kind().volatile_fields();
        let stable = if volatile.is_empty() {
            self.payload_bytes()
        } else {
            self.payload.to_json_value().and_then(|mut v| {
                if let Some(map) = v.as_object_mut() {
                    for field in volatile {
                        map.remove(*field);
                    }
                }
                serde_json::to_vec(&v)
            })
        };
        // Payloads are plain data (strings, decimals, maps with string keys): their
        // serialisation cannot fail. Should it ever, the hash says so visibly.
        self.hash_payload(&stable.unwrap_or_else(|_| b"<unserialisable payload>".to_vec()))
    }

    /// The envelope's JSON and its payload hash from one serialisation of the payload
    /// (the journal's hot path).
    pub fn json_and_payload_hash(&self) -> Result<(String, String), EnvelopeError> {
        let payload = self
            .payload_bytes()
            .map_err(|e| EnvelopeError::Encode(e.to_string()))?;
        let payload_hash = if self.kind().volatile_fields().is_empty() {
            self.hash_payload(&payload)
        } else {
            self.payload_hash()
        };
        Ok((self.wrap(payload)?, payload_hash))
    }

    pub fn to_json(&self) -> Result<String, EnvelopeError> {
        let payload = self
            .payload_bytes()
            .map_err(|e| EnvelopeError::Encode(e.to_string()))?;
        self.wrap(payload)
    }

    /// The payload's JSON, in one buffer (blake3 is fast on whole buffers and slow on the
    /// many small writes a serialiser makes).
    fn payload_bytes(&self) -> serde_json::Result<Vec<u8>> {
        let mut json = Vec::with_capacity(512);
        self.payload.write_json(&mut json)?;
        Ok(json)
    }

    fn hash_payload(&self, json: &[u8]) -> String {
        let mut hasher = blake3::Hasher::new();
        hasher.update(self.event_type().as_bytes());
        hasher.update(&[0]);
        hasher.update(json);
        hasher.finalize().to_hex().to_string()
    }

    /// The envelope around an already serialised payload: the head's JSON with the
    /// payload's bytes spliced in as its last field (the payload came from serde_json,
    /// so it is valid JSON and needs no second parse).
    fn wrap(&self, payload: Vec<u8>) -> Result<String, EnvelopeError> {
        let head = WireHead {
            event_id: self.event_id,
            event_type: self.event_type(),
            schema_version: self.schema_version,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            triggered_by: self.triggered_by,
            occurred_at: self.occurred_at,
            source: &self.source,
        };
        let mut out = Vec::with_capacity(payload.len() + 320);
        serde_json::to_writer(&mut out, &head).map_err(|e| EnvelopeError::Encode(e.to_string()))?;
        if out.pop() != Some(b'}') {
            return Err(EnvelopeError::Encode(
                "envelope head is not an object".into(),
            ));
        }
        out.extend_from_slice(b",\"payload\":");
        out.extend_from_slice(&payload);
        out.push(b'}');
        String::from_utf8(out).map_err(|e| EnvelopeError::Encode(e.to_string()))
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

#[derive(Serialize)]
struct WireHead<'a> {
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
