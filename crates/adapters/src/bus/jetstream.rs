//! The JetStream side of the mirror: the stream (created if missing), publishing an
//! event with its ids as headers, and reading where the stream stands.

use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage, stream};
use async_nats::HeaderMap;
use thiserror::Error;

use super::connect::NatsAccess;
use super::settings::BusConfig;
use super::{all_events, subject, SEQ_HEADER};

#[derive(Debug, Error)]
pub enum BusError {
    #[error("cannot reach NATS at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("JetStream stream {stream}: {message}")]
    Stream { stream: String, message: String },
    #[error("publishing seq {seq} to JetStream: {message}")]
    Publish { seq: u64, message: String },
}

/// A connection to the stream the broker mirrors into.
pub struct EventStream {
    context: jetstream::Context,
    stream: stream::Stream,
    name: String,
    prefix: String,
}

impl EventStream {
    /// Connects and gets the stream, creating it (file storage, the configured
    /// duplicate window) when it does not exist.
    pub async fn connect(
        config: &BusConfig,
        access: &NatsAccess,
        timeout: Duration,
    ) -> Result<Self, BusError> {
        let connect_error = |message: String| BusError::Connect {
            url: config.url.clone(),
            message,
        };
        let client = access
            .options()
            .connection_timeout(timeout)
            .request_timeout(Some(timeout))
            .retry_on_initial_connect()
            .max_reconnects(Some(0))
            .connect(config.url.as_str());
        let client = tokio::time::timeout(timeout, client)
            .await
            .map_err(|_| connect_error(format!("no answer in {} s", timeout.as_secs())))?
            .map_err(|e| connect_error(e.to_string()))?;
        let context = jetstream::new(client);
        let stream = context
            .get_or_create_stream(stream::Config {
                name: config.stream.clone(),
                subjects: vec![all_events(&config.subject_prefix)],
                storage: stream::StorageType::File,
                duplicate_window: Duration::from_secs(config.duplicate_window_secs),
                ..Default::default()
            })
            .await
            .map_err(|e| BusError::Stream {
                stream: config.stream.clone(),
                message: e.to_string(),
            })?;
        Ok(Self {
            context,
            stream,
            name: config.stream.clone(),
            prefix: config.subject_prefix.clone(),
        })
    }

    /// Makes sure the durable consumer `name` exists: created to deliver only what is
    /// published from now on (never the history a catch-up republished), each message
    /// redelivered after `ack_wait` unacknowledged, at most `max_deliver` times.
    pub async fn ensure_consumer(
        &self,
        name: &str,
        filter_subject: String,
        ack_wait: Duration,
        max_deliver: i64,
    ) -> Result<(), BusError> {
        self.stream
            .get_or_create_consumer(
                name,
                jetstream::consumer::pull::Config {
                    durable_name: Some(name.to_string()),
                    filter_subject,
                    deliver_policy: jetstream::consumer::DeliverPolicy::New,
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait,
                    max_deliver,
                    ..Default::default()
                },
            )
            .await
            .map(|_| ())
            .map_err(|e| BusError::Stream {
                stream: self.name.clone(),
                message: format!("consumer {name}: {e}"),
            })
    }

    /// The stream's last message: its journal seq and event id (none: empty).
    pub async fn last(&mut self) -> Result<Option<(u64, String)>, BusError> {
        let fail = |message: String| BusError::Stream {
            stream: self.name.clone(),
            message,
        };
        let last = self
            .stream
            .info()
            .await
            .map_err(|e| fail(e.to_string()))?
            .state
            .last_sequence;
        if last == 0 {
            return Ok(None);
        }
        let message = self
            .stream
            .get_raw_message(last)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let header = |name: &str| message.headers.get(name).map(|v| v.as_str().to_string());
        let seq = header(SEQ_HEADER)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| fail(format!("its last message has no {SEQ_HEADER} header")))?;
        let id = header("Nats-Msg-Id")
            .ok_or_else(|| fail("its last message has no Nats-Msg-Id header".into()))?;
        Ok(Some((seq, id)))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Publishes one event (its stored JSON) and waits for the stream's acknowledgement.
    pub async fn publish(
        &self,
        seq: u64,
        event_id: &str,
        event_type: &str,
        json: Vec<u8>,
    ) -> Result<(), BusError> {
        let fail = |message: String| BusError::Publish { seq, message };
        let mut headers = HeaderMap::new();
        headers.insert(SEQ_HEADER, seq.to_string().as_str());
        let message = PublishMessage::build()
            .payload(json.into())
            .headers(headers)
            .message_id(event_id);
        let ack = self
            .context
            .send_publish(subject(&self.prefix, event_type), message)
            .await
            .map_err(|e| fail(e.to_string()))?;
        ack.await.map_err(|e| fail(e.to_string()))?;
        Ok(())
    }
}
