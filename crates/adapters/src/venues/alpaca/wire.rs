//! Alpaca's JSON shapes (Trading API v2, Market Data v2). Money and quantities arrive as
//! strings and are parsed into `Decimal` here, at the boundary.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// `GET /v2/account`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Account {
    /// The account's id (a UUID at Alpaca).
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub account_number: String,
    #[serde(default)]
    pub status: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub cash: Decimal,
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub buying_power: Option<Decimal>,
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub equity: Option<Decimal>,
}

/// One element of `GET /v2/positions`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Position {
    pub symbol: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub qty: Decimal,
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub market_value: Option<Decimal>,
}

/// `POST /v2/orders` body.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NewOrder {
    pub symbol: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub qty: Decimal,
    pub side: String,
    #[serde(rename = "type")]
    pub order_type: String,
    pub time_in_force: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::str_option"
    )]
    pub limit_price: Option<Decimal>,
    pub client_order_id: String,
}

/// An order as Alpaca reports it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Order {
    pub id: String,
    pub client_order_id: String,
    pub symbol: String,
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub qty: Option<Decimal>,
    #[serde(with = "rust_decimal::serde::str")]
    pub filled_qty: Decimal,
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub filled_avg_price: Option<Decimal>,
    pub side: String,
    #[serde(rename = "type")]
    pub order_type: String,
    #[serde(default)]
    pub time_in_force: String,
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub limit_price: Option<Decimal>,
    /// `new`, `accepted`, `pending_new`, `partially_filled`, `filled`, `canceled`,
    /// `expired`, `rejected`, ...
    pub status: String,
}

/// Alpaca's error body.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApiError {
    pub code: u64,
    pub message: String,
}

/// `GET /v2/clock`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Clock {
    pub timestamp: String,
    pub is_open: bool,
    pub next_open: String,
    pub next_close: String,
}

/// One quote of `GET /v2/stocks/quotes/latest`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Quote {
    /// Ask price.
    pub ap: f64,
    /// Bid price.
    pub bp: f64,
    /// Timestamp (RFC 3339).
    pub t: String,
}

/// `GET /v2/stocks/quotes/latest?symbols=...`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LatestQuotes {
    pub quotes: std::collections::BTreeMap<String, Quote>,
}

pub const CODE_INSUFFICIENT_BUYING_POWER: u64 = 40310000;
pub const CODE_VALIDATION: u64 = 40010001;
pub const CODE_NOT_CANCELABLE: u64 = 42210000;
pub const CODE_NOT_FOUND: u64 = 40410000;
pub const CODE_UNAUTHORIZED: u64 = 40110000;
pub const DUPLICATE_CLIENT_ORDER_ID: &str = "client_order_id must be unique";

/// One bar of `GET /v2/stocks/bars`; prices are JSON numbers, read through their text.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Bar {
    pub t: String,
    pub o: serde_json::Number,
    pub h: serde_json::Number,
    pub l: serde_json::Number,
    pub c: serde_json::Number,
    pub v: serde_json::Number,
}

impl Bar {
    /// The bar as Alpaca serves it: stamped at New York midnight of its session.
    pub fn from_daily(bar: &crate::market::DailyBar) -> Bar {
        use chrono::TimeZone;
        let midnight = bar
            .date
            .and_hms_opt(0, 0, 0)
            .and_then(|t| {
                chrono_tz::America::New_York
                    .from_local_datetime(&t)
                    .single()
            })
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_default();
        let n = |d: rust_decimal::Decimal| {
            std::str::FromStr::from_str(&d.normalize().to_string())
                .unwrap_or_else(|_| serde_json::Number::from(0))
        };
        Bar {
            t: midnight.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            o: n(bar.open),
            h: n(bar.high),
            l: n(bar.low),
            c: n(bar.close),
            v: serde_json::Number::from(bar.volume),
        }
    }
}

/// `GET /v2/stocks/bars` (multi-symbol), paginated by `next_page_token`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BarsPage {
    #[serde(default)]
    pub bars: std::collections::BTreeMap<String, Vec<Bar>>,
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// `GET /v2/assets/{symbol}`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Asset {
    pub symbol: String,
    #[serde(default)]
    pub tradable: bool,
    #[serde(default)]
    pub fractionable: bool,
}

/// One day of `GET /v2/calendar`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CalendarDay {
    pub date: String,
    pub open: String,
    pub close: String,
}
