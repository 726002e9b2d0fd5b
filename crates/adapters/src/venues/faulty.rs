//! A venue wrapper that injects faults for drills: the next submissions fail as a 5xx
//! would, or hang (a venue that accepted the connection and never answers). Every other
//! call goes straight through.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;

use crate::domain::Quote;
use crate::domain::Symbol;
use crate::events::OrderIntent;
use crate::venue::{AccountSnapshot, Venue, VenueError, VenueFuture, VenueOrder};

pub struct FaultyVenue {
    inner: Arc<dyn Venue>,
    fail_next: AtomicU32,
    hang_next: AtomicU32,
    hang_ms: AtomicU64,
    injected: AtomicU32,
}

impl FaultyVenue {
    pub fn new(inner: Arc<dyn Venue>) -> Self {
        Self {
            inner,
            fail_next: AtomicU32::new(0),
            hang_next: AtomicU32::new(0),
            hang_ms: AtomicU64::new(0),
            injected: AtomicU32::new(0),
        }
    }

    /// The next `n` submissions fail with "unavailable" before reaching the venue.
    pub fn fail_submits(&self, n: u32) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    /// The next `n` submissions wait `for_` before reaching the venue.
    pub fn hang_submits(&self, n: u32, for_: Duration) {
        self.hang_ms.store(
            for_.as_millis().min(u128::from(u64::MAX)) as u64,
            Ordering::SeqCst,
        );
        self.hang_next.store(n, Ordering::SeqCst);
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u32 {
        self.injected.load(Ordering::SeqCst)
    }

    fn take(counter: &AtomicU32) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

impl Venue for FaultyVenue {
    fn account(&self) -> VenueFuture<'_, AccountSnapshot> {
        self.inner.account()
    }

    fn prices(&self, symbols: &[Symbol]) -> VenueFuture<'_, BTreeMap<Symbol, Decimal>> {
        self.inner.prices(symbols)
    }

    fn submit(&self, intent: &OrderIntent) -> VenueFuture<'_, VenueOrder> {
        let intent = intent.clone();
        Box::pin(async move {
            if Self::take(&self.fail_next) {
                self.injected.fetch_add(1, Ordering::SeqCst);
                return Err(VenueError::Unavailable(format!(
                    "injected fault: 503 on {}",
                    intent.client_order_id
                )));
            }
            if Self::take(&self.hang_next) {
                self.injected.fetch_add(1, Ordering::SeqCst);
                let ms = self.hang_ms.load(Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            self.inner.submit(&intent).await
        })
    }

    fn order_by_client_id(&self, client_order_id: &str) -> VenueFuture<'_, Option<VenueOrder>> {
        self.inner.order_by_client_id(client_order_id)
    }

    fn open_orders(&self) -> VenueFuture<'_, Vec<VenueOrder>> {
        self.inner.open_orders()
    }

    fn cancel(&self, client_order_id: &str) -> VenueFuture<'_, VenueOrder> {
        self.inner.cancel(client_order_id)
    }

    fn is_fractionable(&self, symbol: &str) -> VenueFuture<'_, bool> {
        self.inner.is_fractionable(symbol)
    }

    fn quote(&self, symbol: &str) -> VenueFuture<'_, Quote> {
        self.inner.quote(symbol)
    }

    fn settle(&self, order: VenueOrder) -> VenueFuture<'_, VenueOrder> {
        self.inner.settle(order)
    }
}
