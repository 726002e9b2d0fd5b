//! Where notifications go: e-mail over SMTP (STARTTLS by default, credentials from the
//! environment) and webhooks (a generic JSON body, or Slack's or Discord's). A send
//! reports whether a retry may help ([`SendError::Transient`]) or not.
//!
//! Secrets (the SMTP password, a webhook URL carrying a token) come from the
//! environment and never appear in a channel's name, a log line or an error.

use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use thiserror::Error;

use super::settings::{
    EmailConfig, NotificationsConfig, SmtpSecurity, WebhookConfig, WebhookFormat,
};
use super::Notification;

/// Environment variables holding the SMTP login.
pub const SMTP_USERNAME_ENV: &str = "ALCHEMISER_SMTP_USERNAME";
pub const SMTP_PASSWORD_ENV: &str = "ALCHEMISER_SMTP_PASSWORD";

/// Discord refuses a message over 2,000 characters.
const DISCORD_LIMIT: usize = 2000;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SendError {
    /// Worth retrying: a connection that failed, a timeout, a 5xx or 429, an SMTP 4xx.
    #[error("{0}")]
    Transient(String),
    /// Not worth retrying: a refused login, a 4xx, an SMTP 5xx, a bad address.
    #[error("{0}")]
    Permanent(String),
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("notifications: {0}")]
pub struct ChannelError(pub String);

pub struct EmailChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    host: String,
}

pub struct WebhookChannel {
    client: reqwest::Client,
    url: reqwest::Url,
    format: WebhookFormat,
}

pub enum Channel {
    Email(EmailChannel),
    Webhook(WebhookChannel),
}

/// The body a webhook of `format` receives.
pub fn webhook_body(format: WebhookFormat, n: &Notification) -> serde_json::Value {
    match format {
        WebhookFormat::Json => serde_json::json!({
            "event_id": n.event_id,
            "kind": n.kind,
            "correlation_id": n.correlation_id,
            "as_of": n.as_of,
            "title": n.title,
            "text": n.text(),
            "orders_placed": n.orders_placed,
            "fills": n.fills,
            "equity": n.equity.map(|d| d.to_string()),
            "cash": n.cash.map(|d| d.to_string()),
            "reason": n.reason,
        }),
        WebhookFormat::Slack => serde_json::json!({ "text": n.text() }),
        WebhookFormat::Discord => {
            let text = n.text();
            let content = if text.chars().count() > DISCORD_LIMIT {
                let cut: String = text.chars().take(DISCORD_LIMIT - 1).collect();
                format!("{cut}…")
            } else {
                text
            };
            serde_json::json!({ "content": content })
        }
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl EmailChannel {
    fn build(
        config: &EmailConfig,
        base_dir: &std::path::Path,
        timeout: Duration,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ChannelError> {
        let bad = |what: String| ChannelError(format!("notifications.email: {what}"));
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| bad(format!("from {:?}: {e}", config.from)))?;
        let to = config
            .to
            .iter()
            .map(|a| a.parse().map_err(|e| bad(format!("to {a:?}: {e}"))))
            .collect::<Result<Vec<Mailbox>, _>>()?;
        let tls_parameters = || {
            let mut builder = TlsParameters::builder(config.smtp_host.clone());
            if !config.ca_file.as_os_str().is_empty() {
                let path = base_dir.join(&config.ca_file);
                let pem = std::fs::read(&path)
                    .map_err(|e| bad(format!("ca_file {}: {e}", path.display())))?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| bad(format!("ca_file {}: {e}", path.display())))?;
                builder = builder.add_root_certificate(cert);
            }
            builder.build_rustls().map_err(|e| bad(format!("TLS: {e}")))
        };
        let tls = match config.security {
            SmtpSecurity::Starttls => Tls::Required(tls_parameters()?),
            SmtpSecurity::Tls => Tls::Wrapper(tls_parameters()?),
            SmtpSecurity::None => Tls::None,
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.smtp_host)
                .port(config.smtp_port)
                .tls(tls)
                .timeout(Some(timeout));
        match (env(SMTP_USERNAME_ENV), env(SMTP_PASSWORD_ENV)) {
            (Some(user), Some(password)) => {
                if config.security == SmtpSecurity::None && !is_loopback(&config.smtp_host) {
                    return Err(bad(format!(
                        "security = \"none\" would send the password in the clear to {}",
                        config.smtp_host
                    )));
                }
                builder = builder.credentials(Credentials::new(user, password));
            }
            (None, None) => {}
            _ => {
                return Err(bad(format!(
                    "set both {SMTP_USERNAME_ENV} and {SMTP_PASSWORD_ENV}, or neither"
                )))
            }
        }
        Ok(Self {
            transport: builder.build(),
            from,
            to,
            host: config.smtp_host.clone(),
        })
    }

    async fn send(&self, n: &Notification) -> Result<(), SendError> {
        let mut message = Message::builder()
            .from(self.from.clone())
            .subject(n.title.clone())
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            message = message.to(to.clone());
        }
        let message = message
            .body(n.text())
            .map_err(|e| SendError::Permanent(format!("message: {e}")))?;
        self.transport.send(message).await.map(|_| ()).map_err(|e| {
            // lettre's errors name the server's reply, never the credentials.
            if e.is_permanent() {
                SendError::Permanent(e.to_string())
            } else {
                SendError::Transient(e.to_string())
            }
        })
    }
}

impl WebhookChannel {
    fn build(
        config: &WebhookConfig,
        timeout: Duration,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ChannelError> {
        let (raw, named) = if config.url_env.is_empty() {
            (config.url.clone(), "notifications.webhooks.url".to_string())
        } else {
            let value = env(&config.url_env).ok_or_else(|| {
                ChannelError(format!(
                    "notifications.webhooks.url_env: {} is not set",
                    config.url_env
                ))
            })?;
            (value, format!("the URL in {}", config.url_env))
        };
        // The URL may carry a token: errors name where it came from, not what it is.
        let url = reqwest::Url::parse(&raw)
            .map_err(|e| ChannelError(format!("{named} is not a URL ({e})")))?;
        let host = url.host_str().unwrap_or_default().to_string();
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&host) => {}
            other => {
                return Err(ChannelError(format!(
                    "{named}: scheme {other:?} refused (https, or http on loopback only)"
                )))
            }
        }
        // reqwest is built without a default TLS provider; ring is the one linked in.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| ChannelError(format!("HTTP client: {e}")))?;
        Ok(Self {
            client,
            url,
            format: config.format,
        })
    }

    async fn send(&self, n: &Notification) -> Result<(), SendError> {
        let response = self
            .client
            .post(self.url.clone())
            .json(&webhook_body(self.format, n))
            .send()
            .await
            // Without the URL: it may hold a token.
            .map_err(|e| SendError::Transient(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_server_error() || status.as_u16() == 429 {
            Err(SendError::Transient(format!("HTTP {status}")))
        } else {
            Err(SendError::Permanent(format!("HTTP {status}")))
        }
    }
}

impl Channel {
    /// A name for logs and metrics: the kind and host, never a credential or a path.
    pub fn name(&self) -> String {
        match self {
            Channel::Email(e) => format!("email:{}", e.host),
            Channel::Webhook(w) => format!(
                "webhook:{}:{}",
                crate::wire_name::wire_name(&w.format),
                w.url.host_str().unwrap_or_default()
            ),
        }
    }

    /// The metric label: `email` or `webhook`.
    pub fn kind(&self) -> &'static str {
        match self {
            Channel::Email(_) => "email",
            Channel::Webhook(_) => "webhook",
        }
    }

    pub async fn send(&self, n: &Notification) -> Result<(), SendError> {
        match self {
            Channel::Email(e) => e.send(n).await,
            Channel::Webhook(w) => w.send(n).await,
        }
    }
}

/// The configured channels, credentials read through `env` (the process environment
/// in the engine). An e-mail channel exists when `smtp_host` is set.
pub fn channels(
    config: &NotificationsConfig,
    base_dir: &std::path::Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Channel>, ChannelError> {
    let timeout = Duration::from_secs(config.timeout_secs);
    let mut out = Vec::new();
    if !config.email.smtp_host.is_empty() {
        out.push(Channel::Email(EmailChannel::build(
            &config.email,
            base_dir,
            timeout,
            env,
        )?));
    }
    for hook in &config.webhooks {
        out.push(Channel::Webhook(WebhookChannel::build(hook, timeout, env)?));
    }
    Ok(out)
}
