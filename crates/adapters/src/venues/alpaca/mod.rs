//! The Alpaca venue: the [`Venue`] trait over Alpaca's REST API (paper by default).
//!
//! - `client`: HTTP, auth headers, rate limit, retries, idempotent submission.
//! - `wire`: Alpaca's JSON shapes; `error`: typed failures; `ratelimit`: sliding-window limit.
//! - `fake`: a stateful Alpaca server on 127.0.0.1 with fault injection, for tests and drills.

pub mod client;
pub mod error;
pub mod fake;
pub mod pull;
pub mod ratelimit;
pub mod wire;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rust_decimal::prelude::FromPrimitive;
use rust_decimal::Decimal;

use self::client::AlpacaClient;
use self::error::AlpacaError;
use crate::domain::{OrderType, Side, Symbol};
use crate::events::OrderIntent;
use crate::venue::{AccountSnapshot, Venue, VenueError, VenueFuture, VenueOrder, VenueOrderStatus};

/// How long `submit` waits for a market order to reach a final state.
#[derive(Clone, Debug)]
pub struct FillWait {
    pub poll_every: Duration,
    pub max_polls: u32,
}

impl Default for FillWait {
    fn default() -> Self {
        Self {
            poll_every: Duration::from_millis(250),
            max_polls: 40,
        }
    }
}

pub struct AlpacaVenue {
    client: Arc<AlpacaClient>,
    fill_wait: FillWait,
    /// `fractionable` per symbol, asked once.
    fractionable: std::sync::Mutex<BTreeMap<Symbol, bool>>,
}

impl AlpacaVenue {
    pub fn new(client: Arc<AlpacaClient>, fill_wait: FillWait) -> Self {
        Self {
            client,
            fill_wait,
            fractionable: Default::default(),
        }
    }

    pub fn client(&self) -> &Arc<AlpacaClient> {
        &self.client
    }

    /// Polls `order` until it is no longer open, at most `fill_wait.max_polls` times.
    async fn follow(&self, mut order: wire::Order) -> Result<wire::Order, VenueError> {
        for _ in 0..self.fill_wait.max_polls {
            if !status_of(&order.status).is_open() {
                break;
            }
            tokio::time::sleep(self.fill_wait.poll_every).await;
            order = self.client.order(&order.id).await.map_err(venue_error)?;
        }
        Ok(order)
    }
}

/// Alpaca bars as validated daily bars (prices through their JSON text into `Decimal`).
pub fn to_daily_bars(
    symbol: &str,
    bars: &[wire::Bar],
) -> Result<Vec<crate::market::DailyBar>, String> {
    use std::str::FromStr;
    let mut out: Vec<crate::market::DailyBar> = Vec::with_capacity(bars.len());
    for (i, b) in bars.iter().enumerate() {
        let where_ = || format!("{symbol} bar {} ({})", i + 1, b.t);
        let date = chrono::DateTime::parse_from_rfc3339(&b.t)
            .map(|t| t.with_timezone(&chrono_tz::America::New_York).date_naive())
            .map_err(|e| format!("{}: timestamp: {e}", where_()))?;
        let price = |n: &serde_json::Number, name: &str| {
            Decimal::from_str(&n.to_string())
                .or_else(|_| Decimal::from_scientific(&n.to_string()))
                .map_err(|_| {
                    format!(
                        "{}: {name} {}",
                        where_(),
                        crate::readable::not_a_decimal(&n.to_string())
                    )
                })
        };
        let bar = crate::market::DailyBar {
            date,
            open: price(&b.o, "open")?,
            high: price(&b.h, "high")?,
            low: price(&b.l, "low")?,
            close: price(&b.c, "close")?,
            volume: b
                .v
                .as_u64()
                .or_else(|| b.v.as_f64().map(|v| v as u64))
                .unwrap_or(0),
        };
        crate::market::check_bar(&bar).map_err(|m| format!("{}: {m}", where_()))?;
        if out.last().is_some_and(|p| p.date >= date) {
            return Err(format!("{}: dates not increasing", where_()));
        }
        out.push(bar);
    }
    Ok(out)
}

fn venue_error(e: AlpacaError) -> VenueError {
    match e {
        AlpacaError::Unauthorized { .. } => VenueError::Unauthorized(e.to_string()),
        AlpacaError::NotFound(id) => VenueError::NotFound(id),
        AlpacaError::SubmitUnknown { .. } => VenueError::OutcomeUnknown(e.to_string()),
        other => VenueError::Unavailable(other.to_string()),
    }
}

fn status_of(s: &str) -> VenueOrderStatus {
    match s {
        "filled" => VenueOrderStatus::Filled,
        "partially_filled" => VenueOrderStatus::PartiallyFilled,
        "canceled" | "expired" | "done_for_day" => VenueOrderStatus::Canceled,
        "rejected" => VenueOrderStatus::Rejected,
        _ => VenueOrderStatus::Accepted,
    }
}

fn to_venue_order(o: wire::Order, intent_qty: Decimal) -> VenueOrder {
    VenueOrder {
        client_order_id: o.client_order_id,
        venue_order_id: o.id,
        symbol: o.symbol.into(),
        side: if o.side == "sell" {
            Side::Sell
        } else {
            Side::Buy
        },
        qty: o.qty.unwrap_or(intent_qty),
        status: status_of(&o.status),
        filled_qty: o.filled_qty,
        avg_fill_price: o.filled_avg_price,
        commission: Decimal::ZERO,
        reject_reason: (o.status == "rejected").then(|| "rejected by Alpaca".to_string()),
    }
}

impl Venue for AlpacaVenue {
    fn account(&self) -> VenueFuture<'_, AccountSnapshot> {
        Box::pin(async move {
            let account = self.client.account().await.map_err(venue_error)?;
            let positions = self.client.positions().await.map_err(venue_error)?;
            Ok(AccountSnapshot {
                cash: account.cash,
                positions: positions
                    .into_iter()
                    .filter(|p| !p.qty.is_zero())
                    .map(|p| (Symbol::from(p.symbol), p.qty))
                    .collect(),
            })
        })
    }

    fn prices(&self, symbols: &[Symbol]) -> VenueFuture<'_, BTreeMap<Symbol, Decimal>> {
        let symbols = symbols.to_vec();
        Box::pin(async move {
            if symbols.is_empty() {
                return Ok(BTreeMap::new());
            }
            let quotes = self
                .client
                .latest_quotes(&symbols)
                .await
                .map_err(venue_error)?;
            symbols
                .iter()
                .map(|s| {
                    let q = quotes
                        .quotes
                        .get(s.as_str())
                        .ok_or_else(|| VenueError::NoPrice { symbol: s.clone() })?;
                    let mid = Decimal::from_f64((q.ap + q.bp) / 2.0)
                        .filter(|m| *m > Decimal::ZERO && q.bp > 0.0 && q.ap >= q.bp)
                        .ok_or_else(|| VenueError::NoPrice { symbol: s.clone() })?;
                    Ok((s.clone(), mid.round_dp(4)))
                })
                .collect()
        })
    }

    fn submit(&self, intent: &OrderIntent) -> VenueFuture<'_, VenueOrder> {
        let intent = intent.clone();
        Box::pin(async move {
            let order = wire::NewOrder {
                symbol: intent.symbol.to_string(),
                qty: intent.qty,
                side: intent.side.as_str().into(),
                order_type: intent.order_type.as_str().into(),
                time_in_force: "day".into(),
                limit_price: if intent.order_type == OrderType::Limit {
                    intent.limit_price
                } else {
                    None
                },
                client_order_id: intent.client_order_id.clone(),
            };
            let mut placed = match self.client.submit_order(&order).await {
                Ok(o) => o,
                Err(AlpacaError::InsufficientBuyingPower(why) | AlpacaError::Validation(why)) => {
                    return Ok(VenueOrder {
                        client_order_id: intent.client_order_id,
                        venue_order_id: String::new(),
                        symbol: intent.symbol,
                        side: intent.side,
                        qty: intent.qty,
                        status: VenueOrderStatus::Rejected,
                        filled_qty: Decimal::ZERO,
                        avg_fill_price: None,
                        commission: Decimal::ZERO,
                        reject_reason: Some(why),
                    })
                }
                Err(e) => return Err(venue_error(e)),
            };
            // Market orders settle quickly: wait for a final state.
            if intent.order_type == OrderType::Market {
                placed = self.follow(placed).await?;
            }
            Ok(to_venue_order(placed, intent.qty))
        })
    }

    fn order_by_client_id(&self, client_order_id: &str) -> VenueFuture<'_, Option<VenueOrder>> {
        let id = client_order_id.to_string();
        Box::pin(async move {
            Ok(self
                .client
                .order_by_client_id(&id)
                .await
                .map_err(venue_error)?
                .map(|o| to_venue_order(o, Decimal::ZERO)))
        })
    }

    fn open_orders(&self) -> VenueFuture<'_, Vec<VenueOrder>> {
        Box::pin(async move {
            Ok(self
                .client
                .open_orders()
                .await
                .map_err(venue_error)?
                .into_iter()
                .map(|o| to_venue_order(o, Decimal::ZERO))
                .collect())
        })
    }

    fn is_fractionable(&self, symbol: &str) -> VenueFuture<'_, bool> {
        let symbol = Symbol::from(symbol);
        Box::pin(async move {
            let known = self
                .fractionable
                .lock()
                .map(|m| m.get(&symbol).copied())
                .unwrap_or(None);
            if let Some(f) = known {
                return Ok(f);
            }
            let asset = self.client.asset(&symbol).await.map_err(venue_error)?;
            if let Ok(mut m) = self.fractionable.lock() {
                m.insert(symbol, asset.fractionable);
            }
            Ok(asset.fractionable)
        })
    }

    fn settle(&self, order: VenueOrder) -> VenueFuture<'_, VenueOrder> {
        Box::pin(async move {
            if !order.status.is_open() || order.venue_order_id.is_empty() {
                return Ok(order);
            }
            let now = self
                .client
                .order(&order.venue_order_id)
                .await
                .map_err(venue_error)?;
            let followed = self.follow(now).await?;
            Ok(to_venue_order(followed, order.qty))
        })
    }

    fn quote(&self, symbol: &str) -> VenueFuture<'_, crate::domain::Quote> {
        let symbol = Symbol::from(symbol);
        Box::pin(async move {
            let quotes = self
                .client
                .latest_quotes(std::slice::from_ref(&symbol))
                .await
                .map_err(venue_error)?;
            let q = quotes
                .quotes
                .get(symbol.as_str())
                .ok_or_else(|| VenueError::NoPrice {
                    symbol: symbol.clone(),
                })?;
            let no_price = || VenueError::NoPrice {
                symbol: symbol.clone(),
            };
            Ok(crate::domain::Quote {
                bid: Decimal::from_f64(q.bp).ok_or_else(no_price)?.round_dp(4),
                ask: Decimal::from_f64(q.ap).ok_or_else(no_price)?.round_dp(4),
                at: chrono::DateTime::parse_from_rfc3339(&q.t)
                    .map_err(|_| no_price())?
                    .with_timezone(&chrono::Utc),
            })
        })
    }

    fn cancel(&self, client_order_id: &str) -> VenueFuture<'_, VenueOrder> {
        let id = client_order_id.to_string();
        Box::pin(async move {
            let order = self
                .client
                .order_by_client_id(&id)
                .await
                .map_err(venue_error)?
                .ok_or_else(|| VenueError::NotFound(id.clone()))?;
            match self.client.cancel(&order.id).await {
                Ok(()) | Err(AlpacaError::NotCancelable(_)) => {}
                Err(e) => return Err(venue_error(e)),
            }
            let after = self.client.order(&order.id).await.map_err(venue_error)?;
            Ok(to_venue_order(after, Decimal::ZERO))
        })
    }
}
