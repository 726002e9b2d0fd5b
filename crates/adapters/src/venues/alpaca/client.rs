//! The Alpaca REST client: one reqwest client reused, credentials from the environment
//! sent as headers, every call through one rate limit, reads retried with bounded
//! exponential backoff and jitter, and order submission that never creates an order
//! twice (after an unknown outcome it looks the order up by `client_order_id`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use super::error::AlpacaError;
use super::ratelimit::SlidingWindow;
use super::wire::{self, ApiError};

pub const PAPER_TRADING_URL: &str = "https://paper-api.alpaca.markets";
pub const LIVE_TRADING_URL: &str = "https://api.alpaca.markets";
pub const DATA_URL: &str = "https://data.alpaca.markets";

/// API keys. `Debug` and `Display` never show the secret, and the key id only masked.
#[derive(Clone)]
pub struct Credentials {
    key_id: String,
    secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({})", self.masked_key_id())
    }
}

impl Credentials {
    pub fn new(key_id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            key_id: key_id.into(),
            secret: secret.into(),
        }
    }

    /// `APCA_API_KEY_ID` and `APCA_API_SECRET_KEY`, when both are set and non-empty.
    pub fn from_env() -> Option<Self> {
        let key = std::env::var("APCA_API_KEY_ID")
            .ok()
            .filter(|v| !v.is_empty())?;
        let secret = std::env::var("APCA_API_SECRET_KEY")
            .ok()
            .filter(|v| !v.is_empty())?;
        Some(Self::new(key, secret))
    }

    /// `PK…WXYZ`: enough to tell accounts apart in logs.
    pub fn masked_key_id(&self) -> String {
        let k = &self.key_id;
        if k.len() <= 6 {
            "****".into()
        } else {
            format!("{}…{}", &k[..2], &k[k.len() - 4..])
        }
    }
}

#[derive(Clone, Debug)]
pub struct ClientSettings {
    pub trading_url: String,
    pub data_url: String,
    pub requests_per_minute: u32,
    /// The window `requests_per_minute` applies to (a minute; tests shrink it).
    pub rate_window: Duration,
    pub timeout: Duration,
    /// Attempts for reads (and for resolving an unknown order outcome).
    pub max_attempts: u32,
    pub backoff_initial: Duration,
    pub backoff_cap: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            trading_url: PAPER_TRADING_URL.into(),
            data_url: DATA_URL.into(),
            requests_per_minute: 200,
            rate_window: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            max_attempts: 5,
            backoff_initial: Duration::from_millis(200),
            backoff_cap: Duration::from_secs(5),
        }
    }
}

pub struct AlpacaClient {
    http: reqwest::Client,
    settings: ClientSettings,
    credentials: Credentials,
    bucket: Mutex<SlidingWindow>,
    requests: AtomicU64,
}

enum Base {
    Trading,
    Data,
}

impl AlpacaClient {
    pub fn new(
        settings: ClientSettings,
        credentials: Credentials,
    ) -> Result<Arc<Self>, AlpacaError> {
        // reqwest is built without a default TLS provider; ring is the one linked in.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|e| AlpacaError::Transport(e.to_string()))?;
        // A request's slot is held a little longer than the window: arrival times at the
        // server jitter, and the limit is the server's to count.
        let margin = (settings.rate_window / 50).max(Duration::from_millis(50));
        let bucket = Mutex::new(SlidingWindow::new(
            settings.requests_per_minute,
            settings.rate_window + margin,
        ));
        Ok(Arc::new(Self {
            http,
            settings,
            credentials,
            bucket,
            requests: AtomicU64::new(0),
        }))
    }

    /// Requests sent so far (attempts, not calls).
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    async fn take_token(&self) {
        loop {
            let wait = {
                let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
                match b.try_take(Instant::now()) {
                    Ok(()) => return,
                    Err(wait) => wait,
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .settings
            .backoff_initial
            .saturating_mul(
                1u32.checked_shl(attempt.saturating_sub(1))
                    .unwrap_or(u32::MAX),
            )
            .min(self.settings.backoff_cap);
        let jitter = rand::rng().random_range(0.5..=1.0);
        base.mul_f64(jitter)
    }

    /// One request, decoded: typed errors from status and body.
    async fn once<T: DeserializeOwned>(
        &self,
        method: Method,
        base: Base,
        path: &str,
        query: &[(&str, String)],
        body: Option<&wire::NewOrder>,
    ) -> Result<T, AlpacaError> {
        self.take_token().await;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let root = match base {
            Base::Trading => &self.settings.trading_url,
            Base::Data => &self.settings.data_url,
        };
        let endpoint = format!("{method} {path}");
        let mut req = self
            .http
            .request(method, format!("{root}{path}"))
            .header("APCA-API-KEY-ID", &self.credentials.key_id)
            .header("APCA-API-SECRET-KEY", &self.credentials.secret)
            .query(query);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                AlpacaError::Timeout(endpoint.clone())
            } else {
                AlpacaError::Transport(format!("{endpoint}: {}", e.without_url()))
            }
        })?;
        let status = resp.status();
        let reset = resp
            .headers()
            .get("X-RateLimit-Reset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i64>().ok());
        let text = resp.text().await.map_err(|e| {
            if e.is_timeout() {
                AlpacaError::Timeout(endpoint.clone())
            } else {
                AlpacaError::Transport(format!("{endpoint}: {}", e.without_url()))
            }
        })?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|e| AlpacaError::Decode {
                endpoint,
                message: e.to_string(),
            });
        }
        let api: Option<ApiError> = serde_json::from_str(&text).ok();
        let message = api
            .as_ref()
            .map_or_else(|| text.chars().take(200).collect(), |a| a.message.clone());
        let code = api.as_ref().map_or(0, |a| a.code);
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                if code != wire::CODE_INSUFFICIENT_BUYING_POWER =>
            {
                AlpacaError::Unauthorized {
                    status: status.as_u16(),
                }
            }
            StatusCode::TOO_MANY_REQUESTS => {
                let retry_after = reset.and_then(|epoch| {
                    let now = chrono::Utc::now().timestamp();
                    u64::try_from(epoch - now).ok().map(Duration::from_secs)
                });
                if let Some(wait) = retry_after {
                    let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
                    b.pause_until(Instant::now() + wait);
                }
                AlpacaError::RateLimited { retry_after }
            }
            s if s.is_server_error() => AlpacaError::Server {
                status: s.as_u16(),
                endpoint,
            },
            _ if code == wire::CODE_INSUFFICIENT_BUYING_POWER => {
                AlpacaError::InsufficientBuyingPower(message)
            }
            _ if message.contains(wire::DUPLICATE_CLIENT_ORDER_ID) => {
                AlpacaError::DuplicateClientOrderId(
                    body.map_or_else(String::new, |b| b.client_order_id.clone()),
                )
            }
            _ if code == wire::CODE_NOT_CANCELABLE => AlpacaError::NotCancelable(message),
            StatusCode::NOT_FOUND => AlpacaError::NotFound(message),
            _ if code == wire::CODE_NOT_FOUND => AlpacaError::NotFound(message),
            _ => AlpacaError::Validation(message),
        })
    }

    /// A read, retried on transient failures with backoff.
    async fn read<T: DeserializeOwned>(
        &self,
        base: Base,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, AlpacaError> {
        let base_is_data = matches!(base, Base::Data);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let b = if base_is_data {
                Base::Data
            } else {
                Base::Trading
            };
            match self.once(Method::GET, b, path, query, None).await {
                Err(e) if e.is_transient() && attempt < self.settings.max_attempts => {
                    let wait = match &e {
                        AlpacaError::RateLimited {
                            retry_after: Some(w),
                        } => *w,
                        _ => self.backoff(attempt),
                    };
                    tracing::warn!(path, attempt, error = %e, "retrying");
                    tokio::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }

    pub async fn account(&self) -> Result<wire::Account, AlpacaError> {
        self.read(Base::Trading, "/v2/account", &[]).await
    }

    pub async fn positions(&self) -> Result<Vec<wire::Position>, AlpacaError> {
        self.read(Base::Trading, "/v2/positions", &[]).await
    }

    pub async fn open_orders(&self) -> Result<Vec<wire::Order>, AlpacaError> {
        self.read(
            Base::Trading,
            "/v2/orders",
            &[("status", "open".to_string())],
        )
        .await
    }

    pub async fn order(&self, id: &str) -> Result<wire::Order, AlpacaError> {
        self.read(Base::Trading, &format!("/v2/orders/{id}"), &[])
            .await
    }

    /// The order with this client id, or `None` when Alpaca has none.
    pub async fn order_by_client_id(
        &self,
        client_order_id: &str,
    ) -> Result<Option<wire::Order>, AlpacaError> {
        match self
            .read(
                Base::Trading,
                "/v2/orders:by_client_order_id",
                &[("client_order_id", client_order_id.to_string())],
            )
            .await
        {
            Ok(o) => Ok(Some(o)),
            Err(AlpacaError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn cancel(&self, id: &str) -> Result<(), AlpacaError> {
        self.take_token().await;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let resp = self
            .http
            .delete(format!("{}/v2/orders/{id}", self.settings.trading_url))
            .header("APCA-API-KEY-ID", &self.credentials.key_id)
            .header("APCA-API-SECRET-KEY", &self.credentials.secret)
            .send()
            .await
            .map_err(|e| {
                AlpacaError::Transport(format!("DELETE /v2/orders/{id}: {}", e.without_url()))
            })?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            StatusCode::NOT_FOUND => Err(AlpacaError::NotFound(id.to_string())),
            StatusCode::UNPROCESSABLE_ENTITY => Err(AlpacaError::NotCancelable(id.to_string())),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(AlpacaError::Unauthorized {
                status: resp.status().as_u16(),
            }),
            s => Err(AlpacaError::Server {
                status: s.as_u16(),
                endpoint: format!("DELETE /v2/orders/{id}"),
            }),
        }
    }

    pub async fn clock(&self) -> Result<wire::Clock, AlpacaError> {
        self.read(Base::Trading, "/v2/clock", &[]).await
    }

    pub async fn calendar(
        &self,
        start: chrono::NaiveDate,
        end: chrono::NaiveDate,
    ) -> Result<Vec<wire::CalendarDay>, AlpacaError> {
        self.read(
            Base::Trading,
            "/v2/calendar",
            &[("start", start.to_string()), ("end", end.to_string())],
        )
        .await
    }

    pub async fn asset(&self, symbol: &str) -> Result<wire::Asset, AlpacaError> {
        self.read(Base::Trading, &format!("/v2/assets/{symbol}"), &[])
            .await
    }

    pub async fn latest_quotes(
        &self,
        symbols: &[impl AsRef<str>],
    ) -> Result<wire::LatestQuotes, AlpacaError> {
        let symbols: Vec<&str> = symbols.iter().map(AsRef::as_ref).collect();
        self.read(
            Base::Data,
            "/v2/stocks/quotes/latest",
            &[("symbols", symbols.join(","))],
        )
        .await
    }

    /// Daily bars for `symbols` from `start` to `end` (inclusive), every page followed.
    /// `adjustment` is Alpaca's (`raw`, `split`, `dividend`, `all`).
    pub async fn daily_bars(
        &self,
        symbols: &[impl AsRef<str>],
        start: chrono::NaiveDate,
        end: chrono::NaiveDate,
        adjustment: &str,
        feed: &str,
    ) -> Result<std::collections::BTreeMap<String, Vec<wire::Bar>>, AlpacaError> {
        let mut out: std::collections::BTreeMap<String, Vec<wire::Bar>> =
            std::collections::BTreeMap::new();
        let symbols: Vec<&str> = symbols.iter().map(AsRef::as_ref).collect();
        let mut token: Option<String> = None;
        for _ in 0..10_000 {
            let mut query = vec![
                ("symbols", symbols.join(",")),
                ("timeframe", "1Day".to_string()),
                ("start", start.to_string()),
                ("end", end.to_string()),
                ("adjustment", adjustment.to_string()),
                ("feed", feed.to_string()),
                ("limit", "10000".to_string()),
            ];
            if let Some(t) = &token {
                query.push(("page_token", t.clone()));
            }
            let page: wire::BarsPage = self.read(Base::Data, "/v2/stocks/bars", &query).await?;
            for (symbol, bars) in page.bars {
                out.entry(symbol).or_default().extend(bars);
            }
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
        Err(AlpacaError::Decode {
            endpoint: "GET /v2/stocks/bars".into(),
            message: "pagination did not end".into(),
        })
    }

    /// Places an order without ever creating it twice. After a timeout, a dropped
    /// connection or a 5xx the order may exist: it is looked up by `client_order_id`
    /// and adopted if found, resubmitted with the same id if not. A 429 waits and
    /// resends the same id; "client_order_id must be unique" means it exists: adopt it.
    pub async fn submit_order(&self, order: &wire::NewOrder) -> Result<wire::Order, AlpacaError> {
        let id = &order.client_order_id;
        let mut last = String::new();
        for attempt in 1..=self.settings.max_attempts {
            match self
                .once::<wire::Order>(Method::POST, Base::Trading, "/v2/orders", &[], Some(order))
                .await
            {
                Ok(o) => return Ok(o),
                Err(AlpacaError::DuplicateClientOrderId(_)) => {
                    if let Some(o) = self.order_by_client_id(id).await? {
                        return Ok(o);
                    }
                    last = "duplicate client_order_id but the order cannot be found".into();
                }
                Err(AlpacaError::RateLimited { retry_after }) => {
                    last = "rate limited".into();
                    tokio::time::sleep(retry_after.unwrap_or_else(|| self.backoff(attempt))).await;
                }
                Err(
                    e @ (AlpacaError::Server { .. }
                    | AlpacaError::Timeout(_)
                    | AlpacaError::Transport(_)),
                ) => {
                    tracing::warn!(client_order_id = %id, attempt, error = %e, "order outcome unknown; looking it up");
                    last = e.to_string();
                    tokio::time::sleep(self.backoff(attempt)).await;
                    match self.order_by_client_id(id).await {
                        Ok(Some(o)) => return Ok(o),
                        Ok(None) => {}
                        Err(lookup) => last = format!("{last}; lookup: {lookup}"),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(AlpacaError::SubmitUnknown {
            client_order_id: id.clone(),
            attempts: self.settings.max_attempts,
            last,
        })
    }
}
