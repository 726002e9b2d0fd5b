//! One way to reach NATS for the engine, its workers and sweeps: who this process is
//! (credentials from the environment, never from a file the repository holds), how the
//! connection is secured (TLS with a CA file and an optional client certificate), and a
//! bounded number of tries at start — `async-nats` left to retry on its own would wait
//! forever in silence for a server that is not there.
//!
//! Credentials, at most one kind:
//! - `ALCHEMISER_NATS_USER` and `ALCHEMISER_NATS_PASSWORD`;
//! - `ALCHEMISER_NATS_TOKEN`;
//! - `ALCHEMISER_NATS_NKEY_SEED` (an NKey user seed, `SU…`);
//! - `ALCHEMISER_NATS_CREDS` (the path of a `.creds` file: a user JWT and its seed).
//!
//! TLS: a `tls://` URL requires it; `[bus] tls_ca_file` trusts that CA instead of the
//! system's; `tls_cert_file` with `tls_key_file` present a client certificate.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use thiserror::Error;

use super::settings::BusConfig;

pub const USER_VAR: &str = "ALCHEMISER_NATS_USER";
pub const PASSWORD_VAR: &str = "ALCHEMISER_NATS_PASSWORD";
pub const TOKEN_VAR: &str = "ALCHEMISER_NATS_TOKEN";
pub const NKEY_SEED_VAR: &str = "ALCHEMISER_NATS_NKEY_SEED";
pub const CREDS_VAR: &str = "ALCHEMISER_NATS_CREDS";

/// How this process proves who it is. Holds secrets: shown only as [`Self::describe`].
#[derive(Clone, Default)]
enum Credentials {
    #[default]
    None,
    UserPassword {
        user: String,
        password: String,
    },
    Token(String),
    NKeySeed(String),
    /// A `.creds` file's text and where it came from.
    CredsFile {
        path: PathBuf,
        text: String,
    },
}

/// Why the NATS access is not usable; names the variable, key or file, never a secret.
#[derive(Debug, Error, PartialEq)]
pub enum AccessError {
    #[error("more than one kind of NATS credentials is set ({0}): set one")]
    Several(String),
    #[error("{set} is set but {missing} is not: set both")]
    Half { set: String, missing: String },
    #[error("{var} is not an NKey user seed (it starts with SU): {why}")]
    BadSeed { var: &'static str, why: String },
    #[error("{what} {path}: {why}")]
    File {
        what: String,
        path: String,
        why: String,
    },
}

/// Everything needed to open a connection: credentials and TLS files, checked once.
#[derive(Clone, Default)]
pub struct NatsAccess {
    credentials: Credentials,
    ca_file: Option<PathBuf>,
    client_cert: Option<(PathBuf, PathBuf)>,
}

impl std::fmt::Debug for NatsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl NatsAccess {
    /// No credentials, no TLS files (a local server without authorization).
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// The credentials in this process's environment and the TLS files of `bus`
    /// (relative paths from `base_dir`, the configuration's folder).
    pub fn from_env(bus: &BusConfig, base_dir: &Path) -> Result<Self, AccessError> {
        Self::from_vars(bus, base_dir, |name| std::env::var(name).ok())
    }

    /// [`Self::from_env`] with the variables read through `var` (empty counts as unset).
    pub fn from_vars(
        bus: &BusConfig,
        base_dir: &Path,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, AccessError> {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        let (user, password, token, seed, creds) = (
            var(USER_VAR),
            var(PASSWORD_VAR),
            var(TOKEN_VAR),
            var(NKEY_SEED_VAR),
            var(CREDS_VAR),
        );
        let kinds: Vec<&str> = [
            (user.is_some() || password.is_some(), "user and password"),
            (token.is_some(), TOKEN_VAR),
            (seed.is_some(), NKEY_SEED_VAR),
            (creds.is_some(), CREDS_VAR),
        ]
        .iter()
        .filter(|(set, _)| *set)
        .map(|(_, name)| *name)
        .collect();
        if kinds.len() > 1 {
            return Err(AccessError::Several(kinds.join(", ")));
        }
        let credentials = match (user, password, token, seed, creds) {
            (Some(user), Some(password), ..) => Credentials::UserPassword { user, password },
            (Some(_), None, ..) => return Err(half(USER_VAR, PASSWORD_VAR)),
            (None, Some(_), ..) => return Err(half(PASSWORD_VAR, USER_VAR)),
            (_, _, Some(token), ..) => Credentials::Token(token),
            (_, _, _, Some(seed), _) => {
                nkeys::KeyPair::from_seed(&seed).map_err(|e| AccessError::BadSeed {
                    var: NKEY_SEED_VAR,
                    why: e.to_string(),
                })?;
                Credentials::NKeySeed(seed)
            }
            (_, _, _, _, Some(path)) => {
                let path = base_dir.join(&path);
                let file = |why: String| AccessError::File {
                    what: format!("{CREDS_VAR}:"),
                    path: path.display().to_string(),
                    why,
                };
                let text = std::fs::read_to_string(&path).map_err(|e| file(e.to_string()))?;
                // Parsed now, so a broken file stops the start, not the first connection.
                // The parser's own message could quote the file: say only what it is.
                async_nats::ConnectOptions::new()
                    .credentials(&text)
                    .map_err(|_| {
                        file("not a NATS credentials file (a user JWT and its NKey seed)".into())
                    })?;
                Credentials::CredsFile { path, text }
            }
            _ => Credentials::None,
        };
        let file = |key: &str, path: &Path| -> Result<Option<PathBuf>, AccessError> {
            if path.as_os_str().is_empty() {
                return Ok(None);
            }
            let resolved = base_dir.join(path);
            std::fs::metadata(&resolved)
                .map_err(|e| AccessError::File {
                    what: format!("bus.{key}"),
                    path: resolved.display().to_string(),
                    why: e.to_string(),
                })
                .map(|_| Some(resolved))
        };
        let ca_file = file("tls_ca_file", &bus.tls_ca_file)?;
        let client_cert = match (
            file("tls_cert_file", &bus.tls_cert_file)?,
            file("tls_key_file", &bus.tls_key_file)?,
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            (Some(_), None) => return Err(half("bus.tls_cert_file", "bus.tls_key_file")),
            (None, Some(_)) => return Err(half("bus.tls_key_file", "bus.tls_cert_file")),
        };
        Ok(Self {
            credentials,
            ca_file,
            client_cert,
        })
    }

    /// Who this is and how it is secured, without a secret: for logs and errors.
    pub fn describe(&self) -> String {
        let who = match &self.credentials {
            Credentials::None => "no credentials".to_string(),
            Credentials::UserPassword { user, .. } => format!("user {user}"),
            Credentials::Token(_) => "a token".to_string(),
            Credentials::NKeySeed(seed) => match nkeys::KeyPair::from_seed(seed) {
                Ok(k) => format!("NKey {}", k.public_key()),
                Err(_) => "an NKey".to_string(),
            },
            Credentials::CredsFile { path, .. } => format!("credentials {}", path.display()),
        };
        match (&self.ca_file, &self.client_cert) {
            (None, None) => who,
            (ca, cert) => format!(
                "{who}, TLS{}{}",
                ca.as_ref()
                    .map(|p| format!(" trusting {}", p.display()))
                    .unwrap_or_default(),
                cert.as_ref()
                    .map(|(c, _)| format!(" with client certificate {}", c.display()))
                    .unwrap_or_default(),
            ),
        }
    }

    /// The connection options these credentials and files make; the caller adds its
    /// timeouts and reconnection policy.
    pub fn options(&self) -> async_nats::ConnectOptions {
        let options = async_nats::ConnectOptions::new();
        let mut options = match &self.credentials {
            Credentials::None => options,
            Credentials::UserPassword { user, password } => {
                options.user_and_password(user.clone(), password.clone())
            }
            Credentials::Token(token) => options.token(token.clone()),
            Credentials::NKeySeed(seed) => options.nkey(seed.clone()),
            // Parsed when the access was made: this cannot fail.
            Credentials::CredsFile { text, .. } => options.credentials(text).unwrap_or_default(),
        };
        if let Some(ca) = &self.ca_file {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let Some((cert, key)) = &self.client_cert {
            options = options
                .add_client_certificate(cert.clone(), key.clone())
                .require_tls(true);
        }
        options
    }
}

fn half(set: &str, missing: &str) -> AccessError {
    AccessError::Half {
        set: set.to_string(),
        missing: missing.to_string(),
    }
}

/// NATS did not answer within the time allowed, or refused who this is.
#[derive(Debug, Error)]
#[error("{}", self.shown())]
pub struct Unreachable {
    pub url: String,
    pub secs: u64,
    pub who: String,
    pub last: String,
    /// Refused (credentials, TLS) rather than silent.
    pub refused: bool,
}

impl Unreachable {
    fn shown(&self) -> String {
        let Self {
            url,
            secs,
            who,
            last,
            refused,
        } = self;
        if *refused {
            format!("NATS at {url} refuses {who}: {last}")
        } else {
            format!("cannot reach NATS at {url} within {secs} s (bus.connect_timeout_secs) as {who}: {last}")
        }
    }
}

/// Refused for who this is or for its TLS: trying again will not help.
fn refused(e: &async_nats::ConnectError) -> bool {
    use async_nats::ConnectErrorKind as Kind;
    matches!(
        e.kind(),
        Kind::AuthorizationViolation | Kind::Authentication | Kind::Tls
    )
}

/// One try at `url` as `access`: why the server refuses this process (its credentials
/// or TLS), if it does. An unreachable server is not a refusal: the caller waits for it.
pub async fn refusal(access: &NatsAccess, url: &str) -> Option<String> {
    let tried = access
        .options()
        .connection_timeout(Duration::from_secs(2))
        .connect(url)
        .await;
    match tried {
        Err(e) if refused(&e) => Some(format!("NATS at {url} refuses {}: {e}", access.describe())),
        _ => None,
    }
}

/// Connects to `url` as `access`, trying again each second until `within` has passed
/// (at once refused when the server rejects the credentials or the TLS handshake).
/// Once connected, the client reconnects by itself after an outage.
pub async fn connect_within(
    access: &NatsAccess,
    url: &str,
    within: Duration,
) -> Result<async_nats::Client, Unreachable> {
    let deadline = Instant::now() + within;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        let options = access
            .options()
            .connection_timeout(left.clamp(Duration::from_millis(200), Duration::from_secs(5)));
        let (last, refused) = match options.connect(url).await {
            Ok(client) => return Ok(client),
            Err(e) => (e.to_string(), refused(&e)),
        };
        let unreachable = || Unreachable {
            url: url.to_string(),
            secs: within.as_secs(),
            who: access.describe(),
            last: last.clone(),
            refused,
        };
        if refused {
            return Err(unreachable());
        }
        tracing::warn!(%url, attempt, error = %last, "NATS unreachable; trying again");
        if Instant::now() + Duration::from_secs(1) > deadline {
            return Err(unreachable());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(vars: &[(&str, &str)]) -> Result<NatsAccess, AccessError> {
        let config = crate::config::Config::default();
        NatsAccess::from_vars(&config.bus, &config.base_dir, |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn one_kind_of_credentials_at_most_and_no_secret_in_what_is_shown() {
        assert_eq!(
            access(&[]).map(|a| a.describe()),
            Ok("no credentials".into())
        );
        let a = access(&[(USER_VAR, "engine"), (PASSWORD_VAR, "hunter2")]).unwrap();
        assert_eq!(a.describe(), "user engine");
        assert!(!format!("{a:?}").contains("hunter2"));
        let a = access(&[(TOKEN_VAR, "s3cret")]).unwrap();
        assert_eq!(a.describe(), "a token");
        assert_eq!(
            access(&[(TOKEN_VAR, "t"), (USER_VAR, "u"), (PASSWORD_VAR, "p")]).unwrap_err(),
            AccessError::Several(format!("user and password, {TOKEN_VAR}"))
        );
        assert_eq!(
            access(&[(USER_VAR, "u")]).unwrap_err().to_string(),
            format!("{USER_VAR} is set but {PASSWORD_VAR} is not: set both")
        );
        // An empty variable counts as unset.
        assert!(access(&[(TOKEN_VAR, "")]).is_ok());
    }

    #[test]
    fn a_seed_is_checked_and_shown_by_its_public_key_only() {
        let pair = nkeys::KeyPair::new_user();
        let seed = pair.seed().unwrap();
        let a = access(&[(NKEY_SEED_VAR, &seed)]).unwrap();
        assert_eq!(a.describe(), format!("NKey {}", pair.public_key()));
        assert!(!a.describe().contains(&seed));
        let bad = access(&[(NKEY_SEED_VAR, "SUnot-a-seed")]).unwrap_err();
        assert!(bad.to_string().starts_with(NKEY_SEED_VAR), "{bad}");
        assert!(!bad.to_string().contains("SUnot-a-seed"), "{bad}");
    }

    #[test]
    fn credentials_and_tls_files_are_named_when_missing_or_broken() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("worker.creds");
        std::fs::write(&creds, "password=hunter2\n").unwrap();
        let e = access(&[(CREDS_VAR, creds.to_str().unwrap())]).unwrap_err();
        let shown = e.to_string();
        assert!(shown.contains("worker.creds"), "{shown}");
        assert!(shown.contains("not a NATS credentials file"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");

        let mut config = crate::config::Config::default();
        config.bus.tls_ca_file = PathBuf::from("missing-ca.pem");
        let e = NatsAccess::from_vars(&config.bus, &config.base_dir, |_| None).unwrap_err();
        assert!(e.to_string().starts_with("bus.tls_ca_file "), "{e}");
        assert!(e.to_string().contains("missing-ca.pem"), "{e}");

        let mut config = crate::config::Config::default();
        config.bus.tls_cert_file = creds.clone();
        let e = NatsAccess::from_vars(&config.bus, &config.base_dir, |_| None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "bus.tls_cert_file is set but bus.tls_key_file is not: set both"
        );
    }
}
