//! The engine's metrics, in one process-wide registry, exposed in Prometheus text
//! format by `run` (`metrics.listen`).
//!
//! Hot paths hold pre-made handles (a counter per event type, a histogram per actor and
//! event type), so counting an event is one atomic add, not a label lookup.

use std::sync::atomic::AtomicU64;
use std::sync::LazyLock;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::events::EventKind;

type Labels = Vec<(&'static str, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// Milliseconds from 0.01 ms to about 5 minutes.
fn latency_ms() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 3.0, 16))
}

pub struct Metrics {
    registry: Registry,
    /// One handle per event type, indexed by [`EventKind::index`].
    published_by_kind: Vec<Counter>,
    pub delivered: Counter,
    handler_latency: HistogramFamily,
    restarts: Family<Labels, Counter>,
    pub dead_letters: Counter,
    workflows: Family<Labels, Counter>,
    /// Handles of `workflows` by status (`completed`, `failed`, `timed_out`).
    workflows_by_status: [(&'static str, Counter); 3],
    orders: Family<Labels, Counter>,
    /// Handles of `orders` for the statuses execution writes.
    orders_by_status: [(&'static str, Counter); 6],
    venue_requests: Family<Labels, Counter>,
    venue_latency: HistogramFamily,
    notifications: Family<Labels, Counter>,
    venue_errors: Family<Labels, Counter>,
    reconciliations: Family<Labels, Counter>,
    /// 1 while trading is halted.
    pub trading_halted: Gauge,
    /// Unix time of the last workflow that completed (0: none yet).
    workflow_last_completed: Gauge<f64, AtomicU64>,
    /// Unix time the last scheduled workflow was due, and the next one is.
    schedule_last_due: Gauge<f64, AtomicU64>,
    schedule_next_run: Gauge<f64, AtomicU64>,
    /// 1 while the event bus (NATS) is reachable and holds the journal.
    pub bus_connected: Gauge,
    /// Events published to the event bus (republished ones included).
    pub bus_published: Counter,
    remote_worker_heartbeat: Family<Labels, Gauge<f64, AtomicU64>>,
    remote_worker_redelivered: Family<Labels, Gauge>,
    remote_consumer_backlog: Family<Labels, Gauge>,
    remote_consumer_redelivered: Family<Labels, Gauge>,
}

/// The venue calls `MeteredVenue` times: each one's error counter exists from the start.
pub const VENUE_ENDPOINTS: [&str; 8] = [
    "account",
    "prices",
    "submit",
    "order_by_client_id",
    "open_orders",
    "is_fractionable",
    "quote",
    "cancel",
];

/// Counts one `status`: by its pre-made handle, or (a status not foreseen) by label.
fn count_status(made: &[(&'static str, Counter)], family: &Family<Labels, Counter>, status: &str) {
    match made.iter().find(|(s, _)| *s == status) {
        Some((_, c)) => {
            c.inc();
        }
        None => {
            family
                .get_or_create(&vec![("status", status.to_string())])
                .inc();
        }
    }
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let published = Family::<Labels, Counter>::default();
        let delivered = Counter::default();
        let handler_latency = HistogramFamily::new_with_constructor(latency_ms);
        let restarts = Family::<Labels, Counter>::default();
        let dead_letters = Counter::default();
        let workflows = Family::<Labels, Counter>::default();
        let orders = Family::<Labels, Counter>::default();
        let venue_requests = Family::<Labels, Counter>::default();
        let venue_latency = HistogramFamily::new_with_constructor(latency_ms);
        let notifications = Family::<Labels, Counter>::default();
        let venue_errors = Family::<Labels, Counter>::default();
        let reconciliations = Family::<Labels, Counter>::default();
        let trading_halted = Gauge::default();
        let workflow_last_completed = Gauge::<f64, AtomicU64>::default();
        let schedule_last_due = Gauge::<f64, AtomicU64>::default();
        let schedule_next_run = Gauge::<f64, AtomicU64>::default();
        let bus_connected = Gauge::default();
        let bus_published = Counter::default();
        let remote_worker_heartbeat = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        let remote_worker_redelivered = Family::<Labels, Gauge>::default();
        let remote_consumer_backlog = Family::<Labels, Gauge>::default();
        let remote_consumer_redelivered = Family::<Labels, Gauge>::default();
        registry.register(
            "remote_consumer_backlog",
            "Events of a remote role's consumer not yet acknowledged (pending + in flight)",
            remote_consumer_backlog.clone(),
        );
        registry.register(
            "remote_consumer_redelivered",
            "Events a remote role's consumer delivered more than once",
            remote_consumer_redelivered.clone(),
        );
        registry.register(
            "remote_worker_last_heartbeat_timestamp_seconds",
            "Unix time of each remote worker's last heartbeat",
            remote_worker_heartbeat.clone(),
        );
        registry.register(
            "remote_worker_redelivered",
            "Events each remote worker received again (as it last reported)",
            remote_worker_redelivered.clone(),
        );
        registry.register(
            "bus_connected",
            "1 while the NATS event bus is reachable and holds the journal (0 also when not configured)",
            bus_connected.clone(),
        );
        registry.register(
            "bus_published",
            "Events published to the NATS event bus, republished ones included",
            bus_published.clone(),
        );
        registry.register(
            "venue_errors",
            "Venue calls that failed, by endpoint",
            venue_errors.clone(),
        );
        registry.register(
            "reconciliations",
            "Reconciliations, by outcome (ok, drift, failed)",
            reconciliations.clone(),
        );
        registry.register(
            "trading_halted",
            "1 while trading is halted",
            trading_halted.clone(),
        );
        registry.register(
            "workflow_last_completed_timestamp_seconds",
            "Unix time the last workflow completed (0: none since start)",
            workflow_last_completed.clone(),
        );
        registry.register(
            "schedule_last_due_timestamp_seconds",
            "Unix time the last scheduled workflow was due (0: none since start)",
            schedule_last_due.clone(),
        );
        registry.register(
            "schedule_next_run_timestamp_seconds",
            "Unix time the next scheduled workflow is due (0: not scheduling)",
            schedule_next_run.clone(),
        );
        for endpoint in VENUE_ENDPOINTS {
            drop(venue_errors.get_or_create(&vec![("endpoint", endpoint.to_string())]));
        }
        for status in ["ok", "drift", "failed"] {
            drop(reconciliations.get_or_create(&vec![("status", status.to_string())]));
        }
        registry.register(
            "notifications",
            "Notification sends, by channel kind and outcome (sent, retried, failed, deduplicated)",
            notifications.clone(),
        );
        registry.register(
            "event_published",
            "Events accepted by the broker, by type",
            published.clone(),
        );
        registry.register(
            "event_delivered",
            "Deliveries of events to subscribers (redeliveries included)",
            delivered.clone(),
        );
        registry.register(
            "event_handler_latency_ms",
            "Time an actor took to handle an event, milliseconds",
            handler_latency.clone(),
        );
        registry.register(
            "actor_restarts",
            "Restarts of a business actor",
            restarts.clone(),
        );
        registry.register(
            "dead_letters",
            "Events that failed their handler twice",
            dead_letters.clone(),
        );
        registry.register("workflows", "Workflows ended, by status", workflows.clone());
        registry.register(
            "orders",
            "Orders settled, by outcome status",
            orders.clone(),
        );
        registry.register(
            "venue_requests",
            "Calls to the venue, by endpoint and status",
            venue_requests.clone(),
        );
        registry.register(
            "venue_latency_ms",
            "Venue call latency, milliseconds",
            venue_latency.clone(),
        );
        let published_by_kind = EventKind::ALL
            .iter()
            .map(|k| published.get_or_create_owned(&vec![("event_type", k.as_str().to_string())]))
            .collect();
        let by_status = |family: &Family<Labels, Counter>, status: &'static str| {
            (
                status,
                family.get_or_create_owned(&vec![("status", status.to_string())]),
            )
        };
        let workflows_by_status =
            ["completed", "failed", "timed_out"].map(|s| by_status(&workflows, s));
        let orders_by_status = [
            "filled",
            "partially_filled",
            "rejected",
            "skipped",
            "canceled",
            "denied",
        ]
        .map(|s| by_status(&orders, s));
        Self {
            registry,
            published_by_kind,
            workflows_by_status,
            orders_by_status,
            delivered,
            handler_latency,
            restarts,
            dead_letters,
            workflows,
            orders,
            venue_requests,
            venue_latency,
            notifications,
            venue_errors,
            reconciliations,
            trading_halted,
            workflow_last_completed,
            schedule_last_due,
            schedule_next_run,
            bus_connected,
            bus_published,
            remote_worker_heartbeat,
            remote_worker_redelivered,
            remote_consumer_backlog,
            remote_consumer_redelivered,
        }
    }

    pub fn published(&self, kind: EventKind) {
        if let Some(c) = self.published_by_kind.get(kind.index()) {
            c.inc();
        }
    }

    /// The histogram of one actor's handling of one event type (keep the handle).
    pub fn handler_latency(&self, actor: &str, kind: EventKind) -> Histogram {
        self.handler_latency.get_or_create_owned(&vec![
            ("actor", actor.to_string()),
            ("event_type", kind.as_str().to_string()),
        ])
    }

    /// Exports each actor's restart counter at 0 from the start, so that alerts and
    /// `rate()` work before the first restart.
    pub fn known_actors(&self, actors: &[&str]) {
        for actor in actors {
            drop(
                self.restarts
                    .get_or_create(&vec![("actor", actor.to_string())]),
            );
        }
    }

    pub fn restarted(&self, actor: &str) {
        self.restarts
            .get_or_create(&vec![("actor", actor.to_string())])
            .inc();
    }

    pub fn workflow_ended(&self, status: &str) {
        count_status(&self.workflows_by_status, &self.workflows, status);
    }

    pub fn order_settled(&self, status: &str) {
        count_status(&self.orders_by_status, &self.orders, status);
    }

    pub fn remote_heartbeat(&self, worker: &str, redelivered: u64) {
        let labels = vec![("worker", worker.to_string())];
        self.remote_worker_heartbeat
            .get_or_create(&labels)
            .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
        self.remote_worker_redelivered
            .get_or_create(&labels)
            .set(redelivered.min(i64::MAX as u64) as i64);
    }

    pub fn remote_lag(&self, consumer: &str, backlog: u64, redelivered: u64) {
        let labels = vec![("consumer", consumer.to_string())];
        let clip = |v: u64| v.min(i64::MAX as u64) as i64;
        self.remote_consumer_backlog
            .get_or_create(&labels)
            .set(clip(backlog));
        self.remote_consumer_redelivered
            .get_or_create(&labels)
            .set(clip(redelivered));
    }

    pub fn reconciled(&self, status: &str) {
        self.reconciliations
            .get_or_create(&vec![("status", status.to_string())])
            .inc();
    }

    pub fn workflow_completed_at(&self, at: chrono::DateTime<chrono::Utc>) {
        self.workflow_last_completed
            .set(at.timestamp_millis() as f64 / 1000.0);
    }

    /// A scheduled workflow became due at `due`; the next is due at `next`.
    pub fn schedule(
        &self,
        due: Option<chrono::DateTime<chrono::Utc>>,
        next: Option<chrono::DateTime<chrono::Utc>>,
    ) {
        if let Some(due) = due {
            self.schedule_last_due.set(due.timestamp() as f64);
        }
        if let Some(next) = next {
            self.schedule_next_run.set(next.timestamp() as f64);
        }
    }

    pub fn venue_call(&self, endpoint: &'static str, status: &str, millis: f64) {
        if status != "ok" {
            self.venue_errors
                .get_or_create(&vec![("endpoint", endpoint.to_string())])
                .inc();
        }
        self.venue_requests
            .get_or_create(&vec![
                ("endpoint", endpoint.to_string()),
                ("status", status.to_string()),
            ])
            .inc();
        self.venue_latency
            .get_or_create(&vec![("endpoint", endpoint.to_string())])
            .observe(millis);
    }

    /// Exports a configured channel kind's outcomes at 0 from the start.
    pub fn known_notification_channel(&self, channel: &str) {
        for status in ["sent", "retried", "failed", "deduplicated"] {
            drop(self.notifications.get_or_create(&vec![
                ("channel", channel.to_string()),
                ("status", status.to_string()),
            ]));
        }
    }

    pub fn notification(&self, channel: &str, status: &str) {
        self.notifications
            .get_or_create(&vec![
                ("channel", channel.to_string()),
                ("status", status.to_string()),
            ])
            .inc();
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// Halts or resumes trading through `gate`, and shows it on the `trading_halted` gauge.
pub fn move_gate(gate: &crate::halt::TradingGate, halted: bool) {
    if halted {
        gate.halt();
    } else {
        gate.resume();
    }
    metrics().trading_halted.set(i64::from(halted));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_in_prometheus_text_with_their_labels() {
        let m = Metrics::new();
        m.published(EventKind::WorkflowStarted);
        m.published(EventKind::WorkflowStarted);
        m.delivered.inc();
        m.workflow_ended("completed");
        m.order_settled("filled");
        m.order_settled("filled");
        m.order_settled("expired");
        m.venue_call("submit", "ok", 1.5);
        m.handler_latency("strategy", EventKind::WorkflowStarted)
            .observe(0.2);
        m.known_actors(&["execution", "recovery"]);
        m.restarted("recovery");
        let text = m.render();
        assert!(
            text.contains("actor_restarts_total{actor=\"execution\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("actor_restarts_total{actor=\"recovery\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("event_published_total{event_type=\"workflow.started.v1\"} 2"),
            "{text}"
        );
        assert!(text.contains("event_delivered_total 1"), "{text}");
        assert!(
            text.contains("workflows_total{status=\"completed\"} 1"),
            "{text}"
        );
        assert!(text.contains("orders_total{status=\"filled\"} 2"), "{text}");
        assert!(
            text.contains("orders_total{status=\"expired\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("workflows_total{status=\"failed\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("venue_requests_total{endpoint=\"submit\",status=\"ok\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("event_handler_latency_ms_count{actor=\"strategy\",event_type=\"workflow.started.v1\"} 1"),
            "{text}"
        );
    }
}
