//! A fake Alpaca: a real HTTP server on 127.0.0.1 (ephemeral port, its own thread and
//! runtime) that speaks Alpaca's JSON, checks the auth headers, keeps an account, fills
//! market orders at a configured price and limit orders when a configured quote crosses,
//! and injects faults on demand: 429 bursts, 5xx, a response delayed past the client's
//! timeout *after* the order was created, dropped connections. Duplicate
//! `client_order_id`s get Alpaca's 422. Tests and the recovery drills start it in-process.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::json;

use super::wire;
use crate::domain::Symbol;

/// Which calls a fault applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    SubmitOrder,
    GetOrder,
    OrderByClientId,
    Account,
    Positions,
    Quotes,
    Bars,
    Any,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status (and, for 429, `X-RateLimit-Reset` this many seconds ahead).
    Status {
        route: Route,
        status: u16,
        reset_in_secs: Option<u64>,
    },
    /// Create the order, then hold the response this long (past the client's timeout).
    DelayAfterCreate(Duration),
    /// Close the connection without answering.
    DropConnection(Route),
    /// Let `skip` more requests of `route` through, then answer one with `status` (a
    /// fault in the middle of a paginated read).
    Later {
        route: Route,
        skip: u32,
        status: u16,
    },
}

impl Fault {
    fn route(&self) -> Route {
        match self {
            Fault::Status { route, .. }
            | Fault::DropConnection(route)
            | Fault::Later { route, .. } => *route,
            Fault::DelayAfterCreate(_) => Route::SubmitOrder,
        }
    }
}

/// The fake's state; tests read and set it through [`FakeAlpaca::state`].
#[derive(Debug, Default)]
pub struct FakeState {
    pub cash: Decimal,
    pub positions: BTreeMap<Symbol, Decimal>,
    /// Market orders fill at these prices.
    pub prices: BTreeMap<Symbol, Decimal>,
    /// (bid, ask) per symbol; limit orders fill when the far side crosses.
    pub quotes: BTreeMap<Symbol, (Decimal, Decimal)>,
    pub orders: Vec<wire::Order>,
    /// How many times each client order id led to an order being created.
    pub created: BTreeMap<String, u32>,
    /// Every request, as `METHOD path`.
    pub requests: Vec<String>,
    /// When each request arrived (same order as `requests`).
    pub arrivals: Vec<std::time::Instant>,
    /// Daily bars served by `GET /v2/stocks/bars`, per symbol, oldest first.
    pub bars: BTreeMap<Symbol, Vec<wire::Bar>>,
    /// Bars per page (pagination by `next_page_token`); 0 means all in one page.
    pub bars_page_size: usize,
    /// Symbols that trade in whole shares only (`fractionable: false`).
    pub whole_shares_only: std::collections::BTreeSet<Symbol>,
    /// Market orders fill in this many equal parts, one each `fill_every` after the
    /// order is created, as Alpaca's fill a moment later and in parts; 0 (the default)
    /// fills at once. Fills happen with time, whoever looks.
    pub fill_parts: u32,
    pub fill_every: Duration,
    /// When each order (by venue id) was created, for `fill_parts`.
    created_at: BTreeMap<String, std::time::Instant>,
    /// How long every answer takes (a slow venue); zero by default.
    pub latency: Duration,
    /// The account's number (`PA0000FAKE` when unset): two fakes with different
    /// numbers are two accounts.
    pub account_number: String,
    /// The venue's time, as `GET /v2/clock` tells it (real time when unset): the engine
    /// trades the session of the venue's day.
    pub now: Option<chrono::DateTime<chrono::Utc>>,
    faults: VecDeque<Fault>,
    key_id: String,
    secret: String,
}

type Shared = Arc<Mutex<FakeState>>;

pub struct FakeAlpaca {
    addr: SocketAddr,
    state: Shared,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeAlpaca {
    /// Starts the server with these credentials and starting cash.
    pub fn start(key_id: &str, secret: &str, cash: Decimal) -> std::io::Result<Self> {
        let state: Shared = Arc::new(Mutex::new(FakeState {
            cash,
            key_id: key_id.into(),
            secret: secret.into(),
            ..FakeState::default()
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let shared = state.clone();
        let thread = std::thread::Builder::new()
            .name("fake-alpaca".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let app = Router::new().fallback(handle).with_state(shared);
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = rx.await;
                        })
                        .await;
                });
            })?;
        Ok(Self {
            addr,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`: both the trading and the data base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the venue's clock to 15:45 New York on `day` (the default schedule's time).
    pub fn set_today(&self, day: chrono::NaiveDate) {
        use chrono::TimeZone;
        let at = day.and_hms_opt(15, 45, 0).unwrap_or_default();
        self.state().now = chrono_tz::America::New_York
            .from_local_datetime(&at)
            .single()
            .map(|t| t.with_timezone(&chrono::Utc));
    }

    /// Queues a fault for the next matching request.
    pub fn inject(&self, fault: Fault) {
        self.state().faults.push_back(fault);
    }
}

impl Drop for FakeAlpaca {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn error(status: StatusCode, code: u64, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "code": code, "message": message })),
    )
        .into_response()
}

fn dec(d: Decimal) -> String {
    d.normalize().to_string()
}

fn query(uri: &Uri) -> BTreeMap<String, String> {
    uri.query()
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .unwrap_or_default()
        .into_iter()
        .collect()
}

fn route_of(method: &Method, path: &str) -> Route {
    match (method, path) {
        (&Method::POST, "/v2/orders") => Route::SubmitOrder,
        (&Method::GET, "/v2/orders:by_client_order_id") => Route::OrderByClientId,
        (&Method::GET, p) if p.starts_with("/v2/orders/") => Route::GetOrder,
        (&Method::GET, "/v2/account") => Route::Account,
        (&Method::GET, "/v2/positions") => Route::Positions,
        (&Method::GET, "/v2/stocks/quotes/latest") => Route::Quotes,
        (&Method::GET, "/v2/stocks/bars") => Route::Bars,
        _ => Route::Any,
    }
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let route = route_of(&method, &path);
    // A slow venue: every answer takes this long, whatever it says.
    let latency = shared.lock().unwrap_or_else(|p| p.into_inner()).latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let (fault, delay) = {
        let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
        fill_due(&mut s);
        s.requests.push(format!("{method} {path}"));
        s.arrivals.push(std::time::Instant::now());
        let key_ok =
            headers.get("APCA-API-KEY-ID").and_then(|v| v.to_str().ok()) == Some(s.key_id.as_str());
        let secret_ok = headers
            .get("APCA-API-SECRET-KEY")
            .and_then(|v| v.to_str().ok())
            == Some(s.secret.as_str());
        if !(key_ok && secret_ok) {
            return error(
                StatusCode::UNAUTHORIZED,
                wire::CODE_UNAUTHORIZED,
                "request is not authorized",
            );
        }
        let mut pos = s
            .faults
            .iter()
            .position(|f| f.route() == route || f.route() == Route::Any);
        // A later fault lets its requests through first.
        if let Some(Fault::Later { skip, .. }) = pos.and_then(|i| s.faults.get_mut(i)) {
            if *skip > 0 {
                *skip -= 1;
                pos = None;
            }
        }
        let fault = pos.and_then(|i| s.faults.remove(i));
        let fault = match fault {
            Some(Fault::Later { route, status, .. }) => Some(Fault::Status {
                route,
                status,
                reset_in_secs: (status == 429).then_some(1),
            }),
            other => other,
        };
        match fault {
            Some(Fault::DelayAfterCreate(d)) => (None, Some(d)),
            other => (other, None),
        }
    };
    match fault {
        Some(Fault::Status {
            status,
            reset_in_secs,
            ..
        }) => {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut resp = error(code, u64::from(status) * 100_000, "injected fault");
            if let Some(secs) = reset_in_secs {
                let reset = chrono::Utc::now().timestamp() + secs as i64;
                if let Ok(v) = reset.to_string().parse() {
                    resp.headers_mut().insert("X-RateLimit-Reset", v);
                }
            }
            return resp;
        }
        Some(Fault::DropConnection(_)) => {
            // Ends this connection's task without a response: the client sees the
            // connection closed, as when a network path fails mid-request.
            std::panic::resume_unwind(Box::new("injected dropped connection"));
        }
        _ => {}
    }
    let response = answer(&shared, &method, &path, &uri, &body);
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    response
}

fn order_json(o: &wire::Order) -> serde_json::Value {
    serde_json::to_value(o).unwrap_or_default()
}

fn answer(shared: &Shared, method: &Method, path: &str, uri: &Uri, body: &Bytes) -> Response {
    let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
    match (method, path) {
        (&Method::GET, "/v2/account") => {
            let equity = s.cash
                + s.positions
                    .iter()
                    .map(|(sym, q)| *q * s.prices.get(sym).copied().unwrap_or_default())
                    .sum::<Decimal>();
            let number = if s.account_number.is_empty() {
                "PA0000FAKE"
            } else {
                s.account_number.as_str()
            };
            axum::Json(json!({
                "id": format!("fake-{number}"),
                "account_number": number,
                "status": "ACTIVE",
                "cash": dec(s.cash),
                "buying_power": dec(s.cash),
                "equity": dec(equity),
            }))
            .into_response()
        }
        (&Method::GET, "/v2/positions") => {
            let list: Vec<_> = s
                .positions
                .iter()
                .map(|(sym, q)| json!({"symbol": sym, "qty": dec(*q), "market_value": dec(*q * s.prices.get(sym).copied().unwrap_or_default())}))
                .collect();
            axum::Json(list).into_response()
        }
        (&Method::GET, "/v2/clock") => {
            // Alpaca states the time in New York's offset.
            let now = s
                .now
                .unwrap_or_else(chrono::Utc::now)
                .with_timezone(&chrono_tz::America::New_York)
                .to_rfc3339();
            axum::Json(json!({
                "timestamp": now,
                "is_open": true,
                "next_open": now,
                "next_close": now,
            }))
            .into_response()
        }
        (&Method::GET, "/v2/stocks/quotes/latest") => {
            let symbols = query(uri).remove("symbols").unwrap_or_default();
            let mut quotes = serde_json::Map::new();
            for sym in symbols.split(',').filter(|x| !x.is_empty()) {
                let (bid, ask) = s
                    .quotes
                    .get(sym)
                    .copied()
                    .or_else(|| s.prices.get(sym).map(|p| (*p, *p)))
                    .unwrap_or_default();
                if !ask.is_zero() {
                    quotes.insert(sym.to_string(), json!({"bp": bid.to_f64(), "ap": ask.to_f64(), "t": chrono::Utc::now().to_rfc3339()}));
                }
            }
            axum::Json(json!({ "quotes": quotes })).into_response()
        }
        (&Method::GET, p) if p.starts_with("/v2/assets/") => {
            let symbol = &p["/v2/assets/".len()..];
            if !s.prices.contains_key(symbol) {
                return error(
                    StatusCode::NOT_FOUND,
                    wire::CODE_NOT_FOUND,
                    "asset not found",
                );
            }
            axum::Json(json!({"symbol": symbol, "tradable": true, "fractionable": !s.whole_shares_only.contains(symbol)})).into_response()
        }
        (&Method::GET, "/v2/calendar") => {
            let q = query(uri);
            let (Some(start), Some(end)) = (q.get("start"), q.get("end")) else {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    wire::CODE_VALIDATION,
                    "start and end are required",
                );
            };
            let parse = |d: &str| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok();
            let (Some(start), Some(end)) = (parse(start), parse(end)) else {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    wire::CODE_VALIDATION,
                    "bad date",
                );
            };
            let cal = crate::calendar::UsEquityCalendar::get();
            let days: Vec<_> = cal
                .sessions(start, end)
                .into_iter()
                .map(|d| json!({"date": d.to_string(), "open": "09:30", "close": cal.close_time(d).format("%H:%M").to_string()}))
                .collect();
            axum::Json(days).into_response()
        }
        (&Method::GET, "/v2/stocks/bars") => {
            let q = query(uri);
            let symbols: Vec<String> = q
                .get("symbols")
                .map(|v| v.split(',').map(str::to_string).collect())
                .unwrap_or_default();
            let start = q.get("start").cloned().unwrap_or_default();
            let end = q.get("end").cloned().unwrap_or_else(|| "9999".into());
            let offset: usize = q
                .get("page_token")
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            // The bars in range, symbol by symbol, as references: only the page's are
            // copied (a 500-symbol history is millions of bars).
            let all = symbols.iter().flat_map(|sym| {
                s.bars
                    .get(sym.as_str())
                    .into_iter()
                    .flatten()
                    .filter(|b| {
                        let day = &b.t[..10.min(b.t.len())];
                        day >= start.as_str() && day <= end.as_str()
                    })
                    .map(move |b| (sym, b))
            });
            // Alpaca's `limit` counts bars across the page's symbols; the fake's own
            // page size, when set, is smaller.
            let limit: usize = q
                .get("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(1000)
                .clamp(1, 10_000);
            let size = match s.bars_page_size {
                0 => limit,
                n => n.min(limit),
            };
            let mut bars: BTreeMap<String, Vec<wire::Bar>> = BTreeMap::new();
            let mut rest = all.skip(offset);
            for (sym, b) in rest.by_ref().take(size) {
                bars.entry(sym.clone()).or_default().push(b.clone());
            }
            let next = rest.next().map(|_| (offset + size).to_string());
            axum::Json(json!({ "bars": bars, "next_page_token": next })).into_response()
        }
        (&Method::GET, "/v2/orders") => {
            let open: Vec<_> = s
                .orders
                .iter()
                .filter(|o| matches!(o.status.as_str(), "new" | "accepted" | "partially_filled"))
                .map(order_json)
                .collect();
            axum::Json(open).into_response()
        }
        (&Method::GET, "/v2/orders:by_client_order_id") => {
            let id = query(uri).remove("client_order_id").unwrap_or_default();
            match s.orders.iter().find(|o| o.client_order_id == id) {
                Some(o) => axum::Json(order_json(o)).into_response(),
                None => error(
                    StatusCode::NOT_FOUND,
                    wire::CODE_NOT_FOUND,
                    "order not found",
                ),
            }
        }
        (&Method::GET, p) if p.starts_with("/v2/orders/") => {
            let id = &p["/v2/orders/".len()..];
            match s.orders.iter().find(|o| o.id == id) {
                Some(o) => axum::Json(order_json(o)).into_response(),
                None => error(
                    StatusCode::NOT_FOUND,
                    wire::CODE_NOT_FOUND,
                    "order not found",
                ),
            }
        }
        (&Method::DELETE, p) if p.starts_with("/v2/orders/") => {
            let id = p["/v2/orders/".len()..].to_string();
            match s.orders.iter_mut().find(|o| o.id == id) {
                None => error(
                    StatusCode::NOT_FOUND,
                    wire::CODE_NOT_FOUND,
                    "order not found",
                ),
                Some(o) if matches!(o.status.as_str(), "new" | "accepted" | "partially_filled") => {
                    o.status = "canceled".into();
                    StatusCode::NO_CONTENT.into_response()
                }
                Some(_) => error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    wire::CODE_NOT_CANCELABLE,
                    "order is not cancelable",
                ),
            }
        }
        (&Method::POST, "/v2/orders") => {
            let Ok(new) = serde_json::from_slice::<wire::NewOrder>(body) else {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    wire::CODE_VALIDATION,
                    "invalid order body",
                );
            };
            if s.orders
                .iter()
                .any(|o| o.client_order_id == new.client_order_id)
            {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    wire::CODE_VALIDATION,
                    wire::DUPLICATE_CLIENT_ORDER_ID,
                );
            }
            if new.qty <= Decimal::ZERO {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    wire::CODE_VALIDATION,
                    "qty must be > 0",
                );
            }
            let Some(price) = s.prices.get(new.symbol.as_str()).copied() else {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    wire::CODE_VALIDATION,
                    "asset not found",
                );
            };
            let held = s
                .positions
                .get(new.symbol.as_str())
                .copied()
                .unwrap_or_default();
            let buy = new.side == "buy";
            let (fills, fill_price) = match (new.order_type.as_str(), new.limit_price) {
                ("limit", Some(limit)) => {
                    let (bid, ask) = s
                        .quotes
                        .get(new.symbol.as_str())
                        .copied()
                        .unwrap_or((price, price));
                    let crosses = if buy { ask <= limit } else { bid >= limit };
                    (crosses, limit)
                }
                _ => (true, price),
            };
            if buy && new.qty * fill_price > s.cash {
                return error(
                    StatusCode::FORBIDDEN,
                    wire::CODE_INSUFFICIENT_BUYING_POWER,
                    "insufficient buying power",
                );
            }
            if !buy && new.qty > held {
                return error(
                    StatusCode::FORBIDDEN,
                    wire::CODE_INSUFFICIENT_BUYING_POWER,
                    "insufficient qty available for order",
                );
            }
            let n = s.orders.len() + 1;
            let mut order = wire::Order {
                id: format!("fake-order-{n:06}"),
                client_order_id: new.client_order_id.clone(),
                symbol: new.symbol.clone(),
                qty: Some(new.qty),
                filled_qty: Decimal::ZERO,
                filled_avg_price: None,
                side: new.side.clone(),
                order_type: new.order_type.clone(),
                time_in_force: new.time_in_force.clone(),
                limit_price: new.limit_price,
                status: "new".into(),
            };
            let later = s.fill_parts > 0 && new.order_type != "limit";
            if later {
                let at = std::time::Instant::now();
                s.created_at.insert(order.id.clone(), at);
            }
            if fills && !later {
                fill(&mut s, &mut order, new.qty, fill_price);
            }
            *s.created.entry(new.client_order_id.clone()).or_default() += 1;
            s.orders.push(order.clone());
            axum::Json(order_json(&order)).into_response()
        }
        _ => error(
            StatusCode::NOT_FOUND,
            wire::CODE_NOT_FOUND,
            "no such endpoint",
        ),
    }
}

/// Fills `qty` more of `order` at `price`: the account's cash and position move with it.
fn fill(s: &mut FakeState, order: &mut wire::Order, qty: Decimal, price: Decimal) {
    let before = order.filled_qty;
    order.filled_qty += qty;
    let ordered = order.qty.unwrap_or(order.filled_qty);
    // The average over every part, as Alpaca reports it.
    let paid = before * order.filled_avg_price.unwrap_or(price) + qty * price;
    order.filled_avg_price = Some((paid / order.filled_qty).round_dp(4));
    order.status = if order.filled_qty >= ordered {
        "filled"
    } else {
        "partially_filled"
    }
    .into();
    let notional = qty * price;
    let position = s.positions.entry(order.symbol.as_str().into()).or_default();
    if order.side == "buy" {
        *position += qty;
        s.cash -= notional;
    } else {
        *position -= qty;
        s.cash += notional;
    }
    s.positions.retain(|_, q| !q.is_zero());
}

/// Fills what time has made due: with `fill_parts`, each open market order gets the
/// parts whose time has come since it was created (the last part the rest).
fn fill_due(s: &mut FakeState) {
    if s.fill_parts == 0 {
        return;
    }
    let now = std::time::Instant::now();
    for i in 0..s.orders.len() {
        let mut order = s.orders[i].clone();
        if order.order_type == "limit"
            || !matches!(
                order.status.as_str(),
                "new" | "accepted" | "partially_filled"
            )
        {
            continue;
        }
        let Some(created) = s.created_at.get(&order.id).copied() else {
            continue;
        };
        let Some(price) = s.prices.get(order.symbol.as_str()).copied() else {
            continue;
        };
        let every = s.fill_every.max(Duration::from_millis(1));
        let due =
            ((now - created).as_millis() / every.as_millis()).min(u128::from(s.fill_parts)) as u32;
        let ordered = order.qty.unwrap_or_default();
        let target = if due >= s.fill_parts {
            ordered
        } else {
            (ordered * Decimal::from(due) / Decimal::from(s.fill_parts)).round_dp(6)
        };
        let part = target - order.filled_qty;
        if part > Decimal::ZERO {
            fill(s, &mut order, part, price);
            s.orders[i] = order;
        }
    }
}
