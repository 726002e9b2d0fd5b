//! Reaching NATS at start: a bounded number of tries, a warning for each that fails,
//! then a clear refusal. `async-nats` left to retry on its own would wait forever
//! in silence for a server that is not there.

use std::time::{Duration, Instant};

use thiserror::Error;

/// NATS did not answer within the time allowed.
#[derive(Debug, Error)]
#[error("cannot reach NATS at {url} within {secs} s (bus.connect_timeout_secs): {last}")]
pub struct Unreachable {
    pub url: String,
    pub secs: u64,
    pub last: String,
}

/// Connects to `url`, trying again each second until `within` has passed. Once
/// connected, the client reconnects by itself after an outage.
pub async fn connect_within(
    url: &str,
    within: Duration,
) -> Result<async_nats::Client, Unreachable> {
    let deadline = Instant::now() + within;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        let options = async_nats::ConnectOptions::new()
            .connection_timeout(left.clamp(Duration::from_millis(200), Duration::from_secs(5)));
        let last = match options.connect(url).await {
            Ok(client) => return Ok(client),
            Err(e) => e.to_string(),
        };
        tracing::warn!(%url, attempt, error = %last, "NATS unreachable; trying again");
        if Instant::now() + Duration::from_secs(1) > deadline {
            return Err(Unreachable {
                url: url.to_string(),
                secs: within.as_secs(),
                last,
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
