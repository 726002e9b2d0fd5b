//! A venue wrapper that counts and times every call (`venue_requests_total`,
//! `venue_latency_ms`) and remembers how the last one went, for `/healthz`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rust_decimal::Decimal;
use serde::Serialize;

use crate::domain::Quote;
use crate::domain::Symbol;
use crate::events::OrderIntent;
use crate::metrics::metrics;
use crate::venue::{AccountSnapshot, Venue, VenueError, VenueFuture, VenueOrder};

/// How the venue has been answering.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct VenueHealth {
    pub requests: u64,
    pub errors: u64,
    /// Whether the latest call succeeded (`None` before any call).
    pub last_ok: Option<bool>,
    pub last_error: Option<String>,
}

pub struct MeteredVenue {
    inner: Arc<dyn Venue>,
    requests: AtomicU64,
    errors: AtomicU64,
    last: Mutex<(Option<bool>, Option<String>)>,
}

impl MeteredVenue {
    pub fn new(inner: Arc<dyn Venue>) -> Self {
        Self {
            inner,
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last: Mutex::new((None, None)),
        }
    }

    pub fn health(&self) -> VenueHealth {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner()).clone();
        VenueHealth {
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            last_ok: last.0,
            last_error: last.1,
        }
    }

    fn metered<'a, T: Send + 'a>(
        &'a self,
        endpoint: &'static str,
        call: impl Future<Output = Result<T, VenueError>> + Send + 'a,
    ) -> VenueFuture<'a, T> {
        Box::pin(async move {
            let started = Instant::now();
            let result = call.await;
            let status = match &result {
                Ok(_) => "ok",
                Err(VenueError::NoPrice { .. }) => "no_price",
                Err(VenueError::Unavailable(_)) => "unavailable",
                Err(VenueError::NotFound(_)) => "not_found",
                Err(VenueError::Unauthorized(_)) => "unauthorized",
                Err(VenueError::OutcomeUnknown(_)) => "outcome_unknown",
            };
            metrics().venue_call(endpoint, status, started.elapsed().as_secs_f64() * 1000.0);
            self.requests.fetch_add(1, Ordering::Relaxed);
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            match &result {
                Ok(_) => *last = (Some(true), None),
                Err(e) => {
                    self.errors.fetch_add(1, Ordering::Relaxed);
                    *last = (Some(false), Some(format!("{endpoint}: {e}")));
                }
            }
            result
        })
    }
}

impl Venue for MeteredVenue {
    fn account(&self) -> VenueFuture<'_, AccountSnapshot> {
        self.metered("account", self.inner.account())
    }

    fn prices(&self, symbols: &[Symbol]) -> VenueFuture<'_, BTreeMap<Symbol, Decimal>> {
        self.metered("prices", self.inner.prices(symbols))
    }

    fn submit(&self, intent: &OrderIntent) -> VenueFuture<'_, VenueOrder> {
        self.metered("submit", self.inner.submit(intent))
    }

    fn order_by_client_id(&self, client_order_id: &str) -> VenueFuture<'_, Option<VenueOrder>> {
        self.metered(
            "order_by_client_id",
            self.inner.order_by_client_id(client_order_id),
        )
    }

    fn open_orders(&self) -> VenueFuture<'_, Vec<VenueOrder>> {
        self.metered("open_orders", self.inner.open_orders())
    }

    fn cancel(&self, client_order_id: &str) -> VenueFuture<'_, VenueOrder> {
        self.metered("cancel", self.inner.cancel(client_order_id))
    }

    fn is_fractionable(&self, symbol: &str) -> VenueFuture<'_, bool> {
        self.metered("asset", self.inner.is_fractionable(symbol))
    }

    fn quote(&self, symbol: &str) -> VenueFuture<'_, Quote> {
        self.metered("quote", self.inner.quote(symbol))
    }

    fn settle(&self, order: VenueOrder) -> VenueFuture<'_, VenueOrder> {
        self.metered("settle", self.inner.settle(order))
    }
}
