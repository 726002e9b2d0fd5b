//! The `[notifications]` section of the configuration: notifications own their
//! settings and defaults; `config` reads them in with the rest.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// How the SMTP connection is secured.
#[derive(Clone, Copy, Debug, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS, which must succeed (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: loopback relays only when credentials are set.
    None,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    /// Empty: no e-mail.
    pub smtp_host: String,
    pub smtp_port: u16,
    pub security: SmtpSecurity,
    pub from: String,
    pub to: Vec<String>,
    /// A PEM root certificate to trust besides the public ones (a private relay).
    pub ca_file: PathBuf,
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            smtp_host: String::new(),
            smtp_port: 587,
            security: SmtpSecurity::Starttls,
            from: String::new(),
            to: Vec::new(),
            ca_file: PathBuf::new(),
        }
    }
}

/// The body a webhook receives.
#[derive(Clone, Copy, Debug, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// Every field of the notification as JSON.
    #[default]
    Json,
    /// Slack's incoming webhooks: `{"text": ...}`.
    Slack,
    /// Discord's webhooks: `{"content": ...}` (at most 2,000 characters).
    Discord,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// The address, when it holds no secret.
    pub url: String,
    /// The environment variable holding the address (Slack's and Discord's carry a
    /// token: keep them out of this file).
    pub url_env: String,
    pub format: WebhookFormat,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsConfig {
    /// What to notify: `completed`, `failed`, `halted`, `drift`, `gave_up`.
    pub on: Vec<super::NotifyKind>,
    /// Attempts per send while failures are transient.
    pub max_attempts: u32,
    pub backoff_ms: u64,
    pub backoff_cap_ms: u64,
    pub timeout_secs: u64,
    pub email: EmailConfig,
    pub webhooks: Vec<WebhookConfig>,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            on: super::NotifyKind::ALL.to_vec(),
            max_attempts: 5,
            backoff_ms: 2000,
            backoff_cap_ms: 60_000,
            timeout_secs: 15,
            email: EmailConfig::default(),
            webhooks: Vec::new(),
        }
    }
}

impl NotificationsConfig {
    pub fn retry_policy(&self) -> super::delivery::RetryPolicy {
        super::delivery::RetryPolicy {
            max_attempts: self.max_attempts,
            backoff: Duration::from_millis(self.backoff_ms),
            backoff_cap: Duration::from_millis(self.backoff_cap_ms),
        }
    }
}

crate::display_as_wire_name!(SmtpSecurity, WebhookFormat);
