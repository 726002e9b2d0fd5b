//! The `[bus]` section of the configuration: the bus owns its settings and their
//! defaults; `config` reads them in with the rest.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Clone, Copy, Debug, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BusTransport {
    /// Only the engine's own process (the default).
    #[default]
    InProcess,
    /// Also a NATS JetStream stream, one subject per event type.
    Nats,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BusConfig {
    pub transport: BusTransport,
    /// The NATS server (`transport = "nats"`).
    pub url: String,
    /// The JetStream stream the broker publishes into (created if missing).
    pub stream: String,
    /// Subjects are `PREFIX.events.EVENT_TYPE`: one prefix per account.
    pub subject_prefix: String,
    /// How long the server remembers a message id to drop a resend, seconds.
    pub duplicate_window_secs: u64,
    /// A new workflow waits this long for an unreachable bus before it is refused.
    pub connect_timeout_secs: u64,
    /// Business actors served by `alchemiser worker` processes instead of this one.
    pub remote_roles: Vec<String>,
    /// A remote worker's event not acknowledged within this is redelivered (to any
    /// worker of the role).
    pub ack_wait_secs: u64,
    /// Deliveries of one event to a role's workers; a failure on the last is a dead letter.
    pub max_deliver: i64,
    /// How long the engine waits for a live worker (a heartbeat) of every remote role
    /// before a workflow; none in time fails it, naming the role.
    pub worker_wait_secs: u64,
    /// A PEM CA to trust for the server's certificate instead of the system's (empty:
    /// the system's). Credentials are not here: they come from the environment.
    pub tls_ca_file: PathBuf,
    /// A client certificate and its key (PEM), for a server that verifies clients.
    pub tls_cert_file: PathBuf,
    pub tls_key_file: PathBuf,
}

/// Business actors a worker process can serve — all five: they need only the venue (a
/// strategy worker fetches the day's bars from it, a recovery worker asks the broker
/// for the failed workflow's root) and the events.
pub const REMOTE_ROLES: [&str; 5] = [
    "strategy",
    "portfolio",
    "execution",
    "reconciliation",
    "recovery",
];

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            transport: BusTransport::InProcess,
            url: "nats://127.0.0.1:4222".into(),
            stream: "ALCHEMISER".into(),
            subject_prefix: "alchemiser".into(),
            duplicate_window_secs: 600,
            connect_timeout_secs: 30,
            remote_roles: Vec::new(),
            ack_wait_secs: 30,
            max_deliver: 3,
            worker_wait_secs: 30,
            tls_ca_file: PathBuf::new(),
            tls_cert_file: PathBuf::new(),
            tls_key_file: PathBuf::new(),
        }
    }
}

crate::display_as_wire_name!(BusTransport);
