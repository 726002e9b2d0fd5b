//! Typed Alpaca failures, decoded from status codes and `{"code","message"}` bodies.
//! Messages never carry credentials (requests are described by method and path only).

use std::time::Duration;

use thiserror::Error;

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum AlpacaError {
    #[error("insufficient buying power: {0}")]
    InsufficientBuyingPower(String),
    #[error("rejected as invalid: {0}")]
    Validation(String),
    #[error("order is not cancelable: {0}")]
    NotCancelable(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("client_order_id {0} already exists")]
    DuplicateClientOrderId(String),
    #[error("not authorized (HTTP {status}): check APCA_API_KEY_ID and APCA_API_SECRET_KEY")]
    Unauthorized { status: u16 },
    #[error("rate limited ({})", retry_phrase(*.retry_after))]
    RateLimited { retry_after: Option<Duration> },
    #[error("server error HTTP {status} on {endpoint}")]
    Server { status: u16, endpoint: String },
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("connection failed: {0}")]
    Transport(String),
    #[error("unexpected response from {endpoint}: {message}")]
    Decode { endpoint: String, message: String },
    #[error("order {client_order_id}: outcome unknown after {attempts} attempts ({last})")]
    SubmitUnknown {
        client_order_id: String,
        attempts: u32,
        last: String,
    },
}

impl AlpacaError {
    /// Worth retrying a read: 5xx, 429, timeouts, dropped connections.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            AlpacaError::RateLimited { .. }
                | AlpacaError::Server { .. }
                | AlpacaError::Timeout(_)
                | AlpacaError::Transport(_)
        )
    }
}

/// When a rate limit says to try again, in words.
fn retry_phrase(after: Option<Duration>) -> String {
    match after {
        Some(d) => format!("retry after {:.1} s", d.as_secs_f64()),
        None => "the server gave no time to retry".into(),
    }
}
