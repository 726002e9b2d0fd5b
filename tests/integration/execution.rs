//! The execution actor against the simulated venue: sells before buys, buys capped to
//! cash, sub-$1 orders skipped with a reason, deterministic client order ids, and the
//! reconciliation that follows.

use crate::common;

use std::sync::Arc;

use alchemiser::domain::{PlanAction, Side};
use alchemiser::events::*;
use alchemiser::execution::client_order_id;
use alchemiser::venues::sim::{SimCosts, SimVenue};
use alchemiser::workflow::WorkflowStatus;
use common::*;
use rust_decimal::Decimal;
use std::str::FromStr;

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn item(symbol: &str, action: PlanAction, qty: &str, price: &str) -> PlanItem {
    PlanItem {
        symbol: symbol.into(),
        action,
        qty: dec(qty),
        price: dec(price),
        target_value: Decimal::ZERO,
        current_value: Decimal::ZERO,
        delta: Decimal::ZERO,
    }
}

/// Runs one plan through execution and reconciliation; returns the workflow's events.
async fn execute(venue: Arc<SimVenue>, items: Vec<PlanItem>) -> (Vec<Envelope>, CorrelationId) {
    let mut config = test_config();
    config.venue.sim.slippage_bps = Decimal::ZERO;
    config.venue.sim.commission_per_order = dec("1");
    let (summary, events) = run_plan(venue, config, items).await;
    assert_eq!(summary.status, WorkflowStatus::Completed, "{summary:?}");
    (events, summary.correlation_id)
}

fn submitted(events: &[Envelope]) -> Vec<(String, Side, Decimal)> {
    events
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::OrderSubmitted(o) => Some((o.symbol.to_string(), o.side, o.qty)),
            _ => None,
        })
        .collect()
}

fn settled(events: &[Envelope]) -> OrderSettled {
    events
        .iter()
        .find_map(|e| match &e.payload {
            Payload::OrderSettled(s) => Some(s.clone()),
            _ => None,
        })
        .expect("settled")
}

#[actix_rt::test]
async fn sells_go_first_and_buys_are_capped_to_cash() {
    let costs = SimCosts {
        slippage_bps: Decimal::ZERO,
        commission_per_order: dec("1"),
        commission_bps: Decimal::ZERO,
        regulatory: None,
    };
    let venue = Arc::new(SimVenue::new(dec("1000"), costs, None));
    venue.set_mark("AAA", dec("100"));
    venue.set_mark("ZZZ", dec("50"));
    venue.adjust_position("ZZZ", dec("4"));
    // Buy 30 AAA (3000) with 1000 cash + 199 from selling ZZZ (after its $1
    // commission), less the buy's own $1 commission: capped to 11.98.
    let (events, id) = execute(
        venue.clone(),
        vec![
            item("ZZZ", PlanAction::Sell, "4", "50"),
            item("AAA", PlanAction::Buy, "30", "100"),
        ],
    )
    .await;
    let orders = submitted(&events);
    assert_eq!(
        orders,
        vec![
            ("ZZZ".into(), Side::Sell, dec("4")),
            ("AAA".into(), Side::Buy, dec("11.98"))
        ]
    );
    let s = settled(&events);
    assert_eq!((s.placed, s.succeeded), (2, 2));
    assert_eq!(s.orders[1].requested_qty, dec("11.98"));
    assert_eq!(venue.snapshot().cash, Decimal::ZERO);
    // Client ids derive from the workflow and the plan.
    let started = events
        .iter()
        .find_map(|e| match &e.payload {
            Payload::ExecutionStarted(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        started.orders[0].client_order_id,
        client_order_id(id, &started.plan_hash, "ZZZ", Side::Sell, 0)
    );
    assert_eq!(started.positions_before.get("ZZZ"), Some(&dec("4")));
    // Reconciliation agreed with the venue.
    let recon = events
        .iter()
        .find_map(|e| match &e.payload {
            Payload::ReconciliationCompleted(r) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(recon.status, ReconciliationStatus::Ok, "{recon:?}");
}

#[actix_rt::test]
async fn orders_under_a_dollar_are_skipped_with_a_reason() {
    let venue = Arc::new(SimVenue::with_cash(dec("1000")));
    venue.set_mark("AAA", dec("100"));
    let (events, _) = execute(venue, vec![item("AAA", PlanAction::Buy, "0.005", "100")]).await;
    assert!(submitted(&events).is_empty());
    let s = settled(&events);
    assert_eq!((s.placed, s.succeeded), (0, 0));
    assert_eq!(s.orders[0].status, OutcomeStatus::Skipped);
    assert!(s.orders[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("under the $1 minimum"));
}

/// Execution places its orders, then crashes before publishing; the plan comes again
/// with the cash already spent. The orders the first handling placed must be adopted
/// as they are — capped or skipped again, their fills would vanish from the settlement
/// and reconciliation would see drift (the soak found exactly this).
#[actix_rt::test]
async fn a_redelivered_plan_adopts_its_orders_even_when_the_cash_is_spent() {
    use alchemiser::drivers::drill::{FaultPlan, HandlerFaultKind, Injected};
    let venue = Arc::new(SimVenue::with_cash(dec("1000")));
    venue.set_mark("AAA", dec("100"));
    let mut config = test_config();
    config.venue.sim.slippage_bps = Decimal::ZERO;
    let injected = Injected::default();
    let fault = FaultPlan::new(
        HandlerFaultKind::CrashAfterEffects {
            kind: EventKind::RebalancePlanned,
            times: 1,
        },
        injected.clone(),
    );
    let (summary, events) = run_plan_with(
        venue.clone(),
        config,
        vec![item("AAA", PlanAction::Buy, "9.995", "100")],
        |reg| reg.wrap(alchemiser::actors::execution::NAME, move |h| fault.wrap(h)),
    )
    .await;
    assert_eq!(injected.count(), 1, "the crash happened");
    assert_eq!(summary.status, WorkflowStatus::Completed, "{summary:?}");
    let s = settled(&events);
    assert_eq!(s.orders[0].filled_qty, dec("9.995"), "{:?}", s.orders);
    let report = events
        .iter()
        .find_map(|e| match &e.payload {
            Payload::ReconciliationCompleted(r) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(report.status, ReconciliationStatus::Ok, "{report:?}");
    assert_eq!(venue.orders().len(), 1, "one order at the venue");
}

/// The simulated venue, with every submission after the first held until the engine
/// has published an order submission (or 5 s have passed): orders are only seen while
/// the plan runs if execution publishes them as they happen.
struct WaitsForFirstReport {
    inner: Arc<SimVenue>,
    seen: Arc<std::sync::Mutex<Vec<Envelope>>>,
    submits: std::sync::atomic::AtomicU32,
    /// Whether the first order's submission was published before the second was sent.
    reported_first: Arc<std::sync::atomic::AtomicBool>,
}

impl alchemiser::venue::Venue for WaitsForFirstReport {
    fn account(&self) -> alchemiser::venue::VenueFuture<'_, alchemiser::venue::AccountSnapshot> {
        self.inner.account()
    }
    fn prices(
        &self,
        symbols: &[alchemiser::domain::Symbol],
    ) -> alchemiser::venue::VenueFuture<
        '_,
        std::collections::BTreeMap<alchemiser::domain::Symbol, Decimal>,
    > {
        self.inner.prices(symbols)
    }
    fn submit(
        &self,
        intent: &OrderIntent,
    ) -> alchemiser::venue::VenueFuture<'_, alchemiser::venue::VenueOrder> {
        let nth = self
            .submits
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let intent = intent.clone();
        Box::pin(async move {
            if nth >= 1 {
                let seen = self.seen.clone();
                let published = eventually(std::time::Duration::from_secs(5), || {
                    let seen = seen.clone();
                    async move {
                        seen.lock()
                            .unwrap()
                            .iter()
                            .any(|e| e.kind() == EventKind::OrderSubmitted)
                    }
                })
                .await;
                self.reported_first
                    .store(published, std::sync::atomic::Ordering::SeqCst);
            }
            self.inner.submit(&intent).await
        })
    }
    fn order_by_client_id(
        &self,
        id: &str,
    ) -> alchemiser::venue::VenueFuture<'_, Option<alchemiser::venue::VenueOrder>> {
        self.inner.order_by_client_id(id)
    }
    fn open_orders(
        &self,
    ) -> alchemiser::venue::VenueFuture<'_, Vec<alchemiser::venue::VenueOrder>> {
        self.inner.open_orders()
    }
    fn cancel(
        &self,
        id: &str,
    ) -> alchemiser::venue::VenueFuture<'_, alchemiser::venue::VenueOrder> {
        self.inner.cancel(id)
    }
    fn is_fractionable(&self, symbol: &str) -> alchemiser::venue::VenueFuture<'_, bool> {
        self.inner.is_fractionable(symbol)
    }
    fn quote(
        &self,
        symbol: &str,
    ) -> alchemiser::venue::VenueFuture<'_, alchemiser::execution::smart_limit::Quote> {
        self.inner.quote(symbol)
    }

    fn settle(
        &self,
        order: alchemiser::venue::VenueOrder,
    ) -> alchemiser::venue::VenueFuture<'_, alchemiser::venue::VenueOrder> {
        self.inner.settle(order)
    }
}

#[actix_rt::test]
async fn orders_are_published_as_they_are_placed_not_at_the_end_of_the_plan() {
    let venue = Arc::new(SimVenue::with_cash(dec("10000")));
    venue.set_mark("AAA", dec("100"));
    venue.set_mark("BBB", dec("50"));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let reported_first = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let waits = Arc::new(WaitsForFirstReport {
        inner: venue,
        seen: seen.clone(),
        submits: Default::default(),
        reported_first: reported_first.clone(),
    });
    let (summary, events) = run_plan_with(
        waits,
        test_config(),
        vec![
            item("AAA", PlanAction::Buy, "10", "100"),
            item("BBB", PlanAction::Buy, "10", "50"),
        ],
        |registry| {
            let seen = seen.clone();
            registry.add("watcher", &[EventKind::OrderSubmitted], move || Recorder {
                seen: seen.clone(),
            });
        },
    )
    .await;
    assert_eq!(summary.status, WorkflowStatus::Completed, "{summary:?}");
    assert!(
        reported_first.load(std::sync::atomic::Ordering::SeqCst),
        "the first order's submission reached the broker before the second order was sent"
    );
    // Each order and each fill once, under the venue's fill ids.
    let fills: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::OrderFilled(f) => Some(f.fill_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(submitted(&events).len(), 2);
    assert_eq!(fills.len(), 2);
    assert!(fills.iter().all(|f| f.contains('@')), "{fills:?}");
}
