//! The protocol between the broker and business actors in other processes
//! (`alchemiser worker --roles ...`), over NATS. Pure: names, messages and the rule
//! that makes a handling repeated after a redelivery publish the same event ids.
//!
//! - Events reach a role through durable JetStream consumers, one per event type it
//!   consumes (`ROLE--TYPE`), shared by the role's workers: each event is handled by
//!   one of them, and redelivered to another if it is not acknowledged in time.
//! - What a handling publishes goes to the broker as a request on
//!   `PREFIX.broker.publish.ROLE`; the broker answers once it has accepted (and journaled)
//!   it, and only then does the worker acknowledge the event.
//! - Workers report on `PREFIX.workers.heartbeat`; a handling that fails its last
//!   allowed delivery is reported on `PREFIX.broker.dead_letter.ROLE`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::engine_core::DeadLetterReport;
pub use crate::events::StableIds;
use crate::events::{CorrelationId, Envelope, EventId};

/// Every request a worker makes of the broker goes to `PREFIX.broker.OP.ROLE`: the
/// server's permissions let each role's workers send only under their own role
/// (`ops/nats/permissions.conf`), and the broker takes what a request carries only for
/// the role its subject names.
fn request_subject(prefix: &str, op: &str, role: &str) -> String {
    format!("{prefix}.broker.{op}.{role}")
}

/// Every request to the broker: the engine's one subscription for its workers.
pub fn broker_requests(prefix: &str) -> String {
    format!("{prefix}.broker.>")
}

/// What a request on `subject` asks: its operation and, for a worker's, its role
/// (`PREFIX.broker.OP.ROLE`; the account question has none). None: not a request.
pub fn request_of<'a>(prefix: &str, subject: &'a str) -> Option<(&'a str, Option<&'a str>)> {
    let rest = subject.strip_prefix(prefix)?.strip_prefix(".broker.")?;
    match rest.split_once('.') {
        Some((op, role)) if !role.contains('.') => Some((op, Some(role))),
        Some(_) => None,
        None => Some((rest, None)),
    }
}

pub fn publish_subject(prefix: &str, role: &str) -> String {
    request_subject(prefix, "publish", role)
}

pub fn dead_letter_subject(prefix: &str, role: &str) -> String {
    request_subject(prefix, "dead_letter", role)
}

/// Where a worker tells the broker it has handled an event (the consumer mark), and
/// asks, for a redelivered one, whether that was done already.
pub fn consumed_subject(prefix: &str, role: &str) -> String {
    request_subject(prefix, "consumed", role)
}

pub fn handled_subject(prefix: &str, role: &str) -> String {
    request_subject(prefix, "handled", role)
}

/// A role and one event it handled (the event in its own JSON).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoleEvent {
    pub role: String,
    pub event: String,
    /// The handling that marks the event consumed (none when only asking).
    #[serde(default)]
    pub handling: Option<HandlingId>,
}

/// Where a worker claims the handling of one event, renews its claim while it works
/// and gives it up when done ([`HandlingClaim`]).
pub fn claim_subject(prefix: &str, role: &str) -> String {
    request_subject(prefix, "claim", role)
}

/// One handling of one event by one worker: a redelivery to another worker (the
/// server forgets what it delivered when it is killed) is another handling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HandlingId(pub uuid::Uuid);

impl HandlingId {
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4())
    }
}

impl Default for HandlingId {
    fn default() -> Self {
        Self::new()
    }
}

/// The handling of `event_id` by `role` that a request speaks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandlingRef {
    pub event_id: EventId,
    pub handling: HandlingId,
}

/// What a worker asks of the engine's handling claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimOp {
    /// Before handling: may this handling start?
    Take,
    /// While handling: still mine?
    Renew,
    /// Done (handled or failed): another handling may start at once.
    Release,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandlingClaim {
    pub role: String,
    pub op: ClaimOp,
    #[serde(flatten)]
    pub of: HandlingRef,
    /// The event's journal seq (the message's header), when known: an event this
    /// engine published itself cannot have been handled under an engine before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// The engine's answer to a claim (and to a request a handling makes while it has none).
pub const GRANTED: &[u8] = b"granted";
pub const HELD: &[u8] = b"another handling of this event is under way";

/// The engine's word on a claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimAnswer {
    Granted,
    /// Another live handling holds the event.
    Held,
    /// The engine has just started: handlings from before it may still be running and
    /// renew their claims first.
    Starting,
}

impl ClaimAnswer {
    pub fn wire(self) -> &'static [u8] {
        match self {
            ClaimAnswer::Granted => GRANTED,
            ClaimAnswer::Held => HELD,
            ClaimAnswer::Starting => STARTING,
        }
    }
}

/// Which handling of each event may act on it: one at a time. JetStream alone cannot
/// promise that (a killed server forgets its deliveries and gives a message still being
/// handled to a second worker), so the engine keeps leases: a handling takes one before
/// it starts and renews it while it works; a lease not renewed within `lease` lapses
/// (its worker died). Order intents, reactions and consumer marks are taken only from
/// the handling that holds the event. In memory: after an engine restart, for one
/// `lease`, a new handling of an event from before the start (journal seq up to
/// `journaled`) waits, so that one already running renews its claim first.
#[derive(Debug)]
pub struct HandlingLeases {
    lease: std::time::Duration,
    opened: std::time::Instant,
    /// The journal's last seq when the engine started.
    journaled: u64,
    held: std::collections::HashMap<(String, EventId), (HandlingId, std::time::Instant)>,
}

impl HandlingLeases {
    pub fn new(lease: std::time::Duration, now: std::time::Instant, journaled: u64) -> Self {
        Self {
            lease,
            opened: now,
            journaled,
            held: Default::default(),
        }
    }

    /// The answer to `claim` at `now`, the leases updated.
    pub fn claim(&mut self, claim: &HandlingClaim, now: std::time::Instant) -> ClaimAnswer {
        let key = (claim.role.clone(), claim.of.event_id);
        let mine = claim.of.handling;
        let live = |(holder, renewed): &(HandlingId, std::time::Instant)| {
            *holder != mine && now.duration_since(*renewed) < self.lease
        };
        if claim.op == ClaimOp::Release {
            if self.held.get(&key).is_some_and(|(h, _)| *h == mine) {
                self.held.remove(&key);
            }
            return ClaimAnswer::Granted;
        }
        if self.held.get(&key).is_some_and(live) {
            return ClaimAnswer::Held;
        }
        let starting = now.duration_since(self.opened) < self.lease
            && claim.seq.is_none_or(|seq| seq <= self.journaled);
        let holding = self.held.get(&key).is_some_and(|(h, _)| *h == mine);
        if claim.op == ClaimOp::Take && starting && !holding {
            return ClaimAnswer::Starting;
        }
        self.held
            .retain(|_, (_, renewed)| now.duration_since(*renewed) < self.lease);
        self.held.insert(key, (mine, now));
        ClaimAnswer::Granted
    }

    /// Whether a request of `role`'s handling `of` may act: it holds the event, or
    /// nobody does (it then takes it, as a renewal would).
    pub fn admits(&mut self, role: &str, of: HandlingRef, now: std::time::Instant) -> bool {
        let renew = HandlingClaim {
            role: role.to_string(),
            op: ClaimOp::Renew,
            of,
            seq: None,
        };
        self.claim(&renew, now) == ClaimAnswer::Granted
    }
}

/// The one role that asks for workflow roots (it retries from them).
pub const ROOT_ASKER: &str = "recovery";

/// Where a recovery worker asks the broker for a workflow's root.
pub fn root_subject(prefix: &str, role: &str) -> String {
    request_subject(prefix, "root", role)
}

/// The one role that places orders, so records intents.
pub const ORDER_PLACER: &str = "execution";

/// Where a worker's reconciliation asks whether the engine's outbox has an intent for
/// an order (the client order id; answered [`YES`] or [`NO`]): a worker's own memory of
/// the orders it saw is no record, as each worker sees only some of them.
pub fn known_subject(prefix: &str, role: &str) -> String {
    request_subject(prefix, "known", role)
}

/// The one role that asks whether an order is known.
pub const RECONCILER: &str = "reconciliation";

pub const YES: &[u8] = b"yes";
pub const NO: &[u8] = b"no";

/// Where a worker's execution has the engine record an order intent (before sending
/// it) and its outcome (after), in the engine's outbox.
pub fn intent_subject(prefix: &str, role: &str) -> String {
    request_subject(prefix, "intent", role)
}

/// What a worker asks the engine's outbox to record.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum IntentRecord {
    Intend {
        correlation_id: CorrelationId,
        plan_hash: String,
        intent: crate::events::OrderIntent,
        /// The handling of the plan that sends the order: only the one holding the
        /// plan may (see [`HandlingLeases`]).
        #[serde(default)]
        by: Option<HandlingRef>,
    },
    Resolve {
        client_order_id: String,
        outcome: String,
    },
}

/// The engine's answer when the record is on disk.
pub const RECORDED: &[u8] = b"recorded";

/// The engine's answer while its start-up check runs: a worker waits and asks again.
pub const STARTING: &[u8] = b"the engine is starting (its start-up check comes first)";

/// Where a worker asks the engine which venue account it trades.
pub fn account_subject(prefix: &str) -> String {
    format!("{prefix}.broker.account")
}

/// The venue account an engine trades: a worker serves it only with the same one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VenueAccount {
    /// `alpaca` or `simulated`.
    pub venue: String,
    /// Alpaca's account number (none for the simulated venue).
    pub account: Option<String>,
}

impl std::fmt::Display for VenueAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.account {
            Some(a) => write!(f, "{} account {a}", self.venue),
            None => write!(f, "the {} venue", self.venue),
        }
    }
}

pub fn heartbeat_subject(prefix: &str) -> String {
    format!("{prefix}.workers.heartbeat")
}

/// The durable consumer through which `role` receives `event_type`.
pub fn consumer_name(role: &str, event_type: &str) -> String {
    format!("{role}--{}", event_type.replace('.', "_"))
}

/// What a worker's handling of `handled` publishes, in order: each event in the
/// envelope's own JSON (`Envelope::to_json`), as the journal stores it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RemotePublish {
    pub worker: String,
    pub role: String,
    pub handled: EventId,
    /// Which handling of `handled` this is: the broker takes a reaction only from the
    /// one holding the event.
    pub handling: HandlingId,
    pub events: Vec<String>,
}

impl RemotePublish {
    /// The events, decoded; a broken one is named by its place.
    pub fn envelopes(&self) -> Result<Vec<Envelope>, String> {
        self.events
            .iter()
            .enumerate()
            .map(|(i, json)| Envelope::from_json(json).map_err(|e| format!("event {i}: {e}")))
            .collect()
    }
}

/// The broker's word on each published event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Verdict {
    /// Accepted and journaled at `seq`.
    Accepted { seq: u64 },
    /// The same id was accepted before (a repeated handling): nothing to do.
    Duplicate,
    /// Refused (a closed workflow, a broken causation): the handling is over anyway.
    Refused { reason: String },
    /// The broker could not take it now (halted, stopping): try again later.
    Unavailable { reason: String },
    /// Another handling of the same event holds it now: this one's reaction is not
    /// taken, and it leaves the event to that one.
    Superseded { reason: String },
}

impl Verdict {
    /// Whether the event is settled: on record, or never to be.
    pub fn is_settled(&self) -> bool {
        !matches!(self, Verdict::Unavailable { .. })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Heartbeat {
    pub worker: String,
    pub roles: Vec<String>,
    pub handled: u64,
    /// Events this worker received again (another incarnation or worker had them).
    pub redelivered: u64,
    pub failed: u64,
    pub at: DateTime<Utc>,
}

/// What the engine knows of its remote actors, for `/healthz`: each worker's last
/// heartbeat and when it came, and each role consumer's backlog.
#[derive(Clone, Debug, Default)]
pub struct RemoteView(std::sync::Arc<std::sync::Mutex<RemoteState>>);

#[derive(Clone, Debug, Default)]
struct RemoteState {
    /// Roles the engine gave to workers.
    roles: Vec<String>,
    workers: std::collections::BTreeMap<String, (Heartbeat, std::time::Instant)>,
    consumers: std::collections::BTreeMap<String, ConsumerLag>,
}

/// A role consumer's backlog, as the server counts it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ConsumerLag {
    /// Published, not yet delivered to any worker.
    pub pending: u64,
    /// Delivered, not yet acknowledged.
    pub ack_pending: u64,
    /// Messages delivered more than once.
    pub redelivered: u64,
}

/// A worker as `/healthz` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct WorkerHealth {
    pub worker: String,
    pub roles: Vec<String>,
    pub handled: u64,
    pub redelivered: u64,
    pub failed: u64,
    pub seconds_since_heartbeat: u64,
}

/// The remote part of `/healthz`.
#[derive(Clone, Debug, Serialize)]
pub struct RemoteHealth {
    pub roles: Vec<String>,
    /// Roles no worker has reported for within [`RemoteView::ALIVE`].
    pub unserved: Vec<String>,
    pub workers: Vec<WorkerHealth>,
    pub consumers: std::collections::BTreeMap<String, ConsumerLag>,
}

impl RemoteView {
    /// A worker silent longer than this no longer counts as serving its roles.
    pub const ALIVE: std::time::Duration = std::time::Duration::from_secs(10);

    pub fn new(roles: Vec<String>) -> Self {
        Self(std::sync::Arc::new(std::sync::Mutex::new(RemoteState {
            roles,
            ..RemoteState::default()
        })))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, RemoteState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The remote roles no live worker serves now.
    pub fn unserved(&self) -> Vec<String> {
        self.health().unserved
    }

    /// Waits up to `within` for a live worker of every remote role; the roles still
    /// unserved then (empty: all served).
    pub async fn await_served(&self, within: std::time::Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let unserved = self.unserved();
            if unserved.is_empty() || tokio::time::Instant::now() >= deadline {
                return unserved;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    pub fn heard(&self, beat: Heartbeat) {
        self.state()
            .workers
            .insert(beat.worker.clone(), (beat, std::time::Instant::now()));
    }

    pub fn lag(&self, consumer: &str, lag: ConsumerLag) {
        self.state().consumers.insert(consumer.to_string(), lag);
    }

    pub fn health(&self) -> RemoteHealth {
        let s = self.state();
        let now = std::time::Instant::now();
        let workers: Vec<WorkerHealth> = s
            .workers
            .values()
            .map(|(b, at)| WorkerHealth {
                worker: b.worker.clone(),
                roles: b.roles.clone(),
                handled: b.handled,
                redelivered: b.redelivered,
                failed: b.failed,
                seconds_since_heartbeat: (now - *at).as_secs(),
            })
            .collect();
        let unserved = s
            .roles
            .iter()
            .filter(|role| {
                !s.workers
                    .values()
                    .any(|(b, at)| now - *at < Self::ALIVE && b.roles.iter().any(|r| r == *role))
            })
            .cloned()
            .collect();
        RemoteHealth {
            roles: s.roles.clone(),
            unserved,
            workers,
            consumers: s.consumers.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    #[test]
    fn a_role_is_unserved_until_a_worker_of_it_reports() {
        let view = RemoteView::new(vec!["execution".into(), "reconciliation".into()]);
        assert_eq!(view.health().unserved, ["execution", "reconciliation"]);
        view.heard(Heartbeat {
            worker: "w1".into(),
            roles: vec!["execution".into()],
            handled: 3,
            redelivered: 1,
            failed: 0,
            at: chrono::Utc::now(),
        });
        let h = view.health();
        assert_eq!(h.unserved, ["reconciliation"]);
        assert_eq!((h.workers[0].handled, h.workers[0].redelivered), (3, 1));
    }
    use crate::events::{WorkflowCompleted, WorkflowStarted};

    /// One event, two handlings (a worker's, and a second worker's after the server
    /// forgot the first delivery): one at a time, whatever the order of their requests.
    #[test]
    fn one_handling_of_an_event_at_a_time() {
        use std::time::{Duration, Instant};
        let lease = Duration::from_secs(30);
        let t0 = Instant::now();
        let event = EventId::new();
        let (a, b) = (HandlingId::new(), HandlingId::new());
        let claim = |op, handling| HandlingClaim {
            role: "execution".into(),
            op,
            of: HandlingRef {
                event_id: event,
                handling,
            },
            seq: Some(7),
        };
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut leases = HandlingLeases::new(lease, t0, 7);
        use ClaimAnswer::*;
        use ClaimOp::*;
        // A fresh engine lets only handlings that were running renew, for one lease,
        // an event from before it started; its own events are handled at once.
        assert_eq!(leases.claim(&claim(Take, a), at(1)), Starting);
        let mut unknown = claim(Take, a);
        unknown.seq = None;
        assert_eq!(leases.claim(&unknown, at(1)), Starting);
        let mut new = claim(Take, a);
        new.seq = Some(8);
        new.of.event_id = EventId::new();
        assert_eq!(leases.claim(&new, at(1)), Granted);
        assert_eq!(leases.claim(&claim(Renew, a), at(2)), Granted);
        assert_eq!(leases.claim(&claim(Take, b), at(31)), Held);
        // Renewed within the lease: still a's; a's requests are admitted, b's not.
        assert_eq!(leases.claim(&claim(Renew, a), at(31)), Granted);
        assert!(leases.admits("execution", claim(Take, a).of, at(40)));
        assert!(!leases.admits("execution", claim(Take, b).of, at(40)));
        // Another role's handling of the same event is another claim.
        let mut other = claim(Take, b);
        other.role = "reconciliation".into();
        assert_eq!(leases.claim(&other, at(41)), Granted);
        // Not renewed for a lease: a's worker is taken for dead, b may handle.
        assert_eq!(leases.claim(&claim(Take, b), at(71)), Granted);
        assert_eq!(leases.claim(&claim(Renew, a), at(72)), Held);
        assert!(!leases.admits("execution", claim(Take, a).of, at(72)));
        // A release by a handling that does not hold the event changes nothing; the
        // holder's own frees it at once.
        assert_eq!(leases.claim(&claim(Release, a), at(73)), Granted);
        assert_eq!(leases.claim(&claim(Take, a), at(74)), Held);
        assert_eq!(leases.claim(&claim(Release, b), at(75)), Granted);
        assert_eq!(leases.claim(&claim(Take, a), at(76)), Granted);
    }

    #[test]
    fn a_request_subject_names_its_operation_and_role() {
        let p = "alc";
        for (op, role) in [("publish", "execution"), ("claim", "reconciliation")] {
            let subject = request_subject(p, op, role);
            assert_eq!(request_of(p, &subject), Some((op, Some(role))));
        }
        assert_eq!(request_of(p, &account_subject(p)), Some(("account", None)));
        assert_eq!(request_of(p, "alc.broker.a.b.c"), None);
        assert_eq!(request_of(p, "other.broker.publish.execution"), None);
        assert_eq!(request_of(p, "alc.events.x"), None);
    }

    #[test]
    fn a_claim_reads_as_json_with_its_handling_inline() {
        let claim = HandlingClaim {
            role: "execution".into(),
            op: ClaimOp::Renew,
            of: HandlingRef {
                event_id: EventId(uuid::Uuid::nil()),
                handling: HandlingId(uuid::Uuid::nil()),
            },
            seq: None,
        };
        let json = serde_json::to_string(&claim).unwrap();
        assert_eq!(
            json,
            r#"{"role":"execution","op":"renew","event_id":"00000000-0000-0000-0000-000000000000","handling":"00000000-0000-0000-0000-000000000000"}"#
        );
        assert_eq!(serde_json::from_str::<HandlingClaim>(&json).unwrap(), claim);
    }

    #[test]
    fn a_repeated_handling_gets_the_same_ids_and_its_causation_chain() {
        let started = Envelope::root(
            WorkflowStarted {
                as_of: chrono::NaiveDate::from_ymd_opt(2026, 12, 4).unwrap(),
                mode: crate::domain::RunMode::Paper,
                trigger: crate::domain::Trigger::Test,
                attempt: 0,
            },
            "engine",
            &SystemClock,
            None,
        );
        let handle = || {
            let first = Envelope::caused_by(
                &started,
                WorkflowCompleted {
                    orders_placed: 0,
                    duration_ms: 0,
                },
                "x",
                &SystemClock,
            );
            let second = Envelope::caused_by(
                &first,
                WorkflowCompleted {
                    orders_placed: 1,
                    duration_ms: 0,
                },
                "x",
                &SystemClock,
            );
            let mut ids = StableIds::default();
            let (mut a, mut b) = (first, second);
            ids.apply(started.event_id, "reconciliation", &mut a);
            ids.apply(started.event_id, "reconciliation", &mut b);
            (a, b)
        };
        let (a1, b1) = handle();
        let (a2, b2) = handle();
        assert_eq!((a1.event_id, b1.event_id), (a2.event_id, b2.event_id));
        assert_ne!(a1.event_id, b1.event_id);
        assert_eq!(b1.causation_id, Some(a1.event_id));
        assert_eq!(a1.causation_id, Some(started.event_id));
        // An id the handler derived itself is kept.
        let mut derived = a1.clone();
        derived.event_id = EventId::derived(&[b"plan"]);
        let kept = derived.event_id;
        StableIds::default().apply(started.event_id, "execution", &mut derived);
        assert_eq!(derived.event_id, kept);
        assert_eq!(
            consumer_name("execution", "portfolio.rebalance.planned.v1"),
            "execution--portfolio_rebalance_planned_v1"
        );
    }
}
