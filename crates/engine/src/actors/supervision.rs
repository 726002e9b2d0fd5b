//! Supervision that really restarts.
//!
//! actix 0.13's `Supervisor` does not survive a panicking handler (the panic ends the
//! actor's task). Here each business handler runs inside a [`HandlerActor`] that
//! catches panics (and fatal [`HandlerFault`]s) at the handler boundary, reports the
//! failure to the broker and stops. The broker owns every subscriber's unacknowledged
//! deliveries, builds a fresh handler from the registered factory after the policy's
//! backoff, and redelivers what was not acknowledged: at-least-once, in order.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::future::{abortable, AbortHandle};
use futures_util::FutureExt;
use thiserror::Error;

use super::deps::EngineDeps;
use crate::events::{CorrelationId, Envelope, EventId, EventKind, Payload, TriggeredBy};
use crate::supervision::{RestartDecision, RestartHistory, RestartPolicy};

/// A failure that should restart the actor (state is suspect), as opposed to a business
/// failure, which a handler reports by publishing `workflow.failed.v1`.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{0}")]
pub struct HandlerFault(pub String);

/// How a handler actor reaches the broker: the three messages it sends, as recipients,
/// so that supervision does not depend on the broker's type (the broker depends on it).
#[derive(Clone)]
pub struct BrokerLink {
    pub publish: Recipient<PublishAll>,
    pub consumed: Recipient<Consumed>,
    pub failed: Recipient<ActorFailed>,
}

/// The events of one handler's reaction, published in order within one turn of the
/// broker: one message per reaction rather than per event (execution reacts to a plan
/// with an event per order and per fill).
#[derive(Message)]
#[rtype(result = "()")]
pub struct PublishAll(pub Vec<Arc<Envelope>>);

/// One event handed to a subscriber.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Deliver {
    pub seq: u64,
    pub env: Arc<Envelope>,
    /// Report [`Consumed`] after handling (the broker journals consumer marks).
    pub mark: bool,
}

/// A subscriber handled `env` (after publishing what it produced): the broker journals
/// the mark with those events, so a redelivered or replayed copy is skipped.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Consumed {
    pub consumer: &'static str,
    pub env: Arc<Envelope>,
}

/// A subscriber incarnation failed while handling `seq` (if known).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ActorFailed {
    pub slot: usize,
    pub incarnation: u32,
    pub seq: Option<u64>,
    pub error: String,
}

/// One payload a handler publishes, and what caused it: the handled event, or an
/// earlier output of the same reaction (so `submitted → filled` chains stay visible).
#[derive(Clone, Debug, PartialEq)]
pub struct Emit {
    pub payload: Payload,
    /// Index of the earlier output that caused this one; `None`: the handled event.
    /// For a new workflow's root: the event that triggered it.
    pub after: Option<usize>,
    /// Publish as the root of a new workflow with this id (a recovery retry, a
    /// corrective rebalance), `triggered_by` the causing event, instead of as a child.
    pub new_workflow: Option<CorrelationId>,
    /// The event's id when it must be reproducible (execution derives its events' ids
    /// from the plan's, so a plan handled again repeats them); `None`: a fresh one.
    pub event_id: Option<EventId>,
}

impl Emit {
    /// An output caused by output `index` of the same reaction.
    pub fn after(index: usize, payload: impl Into<Payload>) -> Emit {
        Emit {
            payload: payload.into(),
            after: Some(index),
            new_workflow: None,
            event_id: None,
        }
    }

    /// The root of a new workflow `correlation`, triggered by the handled event (or by
    /// output `after` of the same reaction). A derived `correlation` makes a redelivered
    /// handling start the same workflow, which the broker refuses the second time.
    pub fn new_workflow(
        correlation: CorrelationId,
        after: Option<usize>,
        payload: impl Into<Payload>,
    ) -> Emit {
        Emit {
            payload: payload.into(),
            after,
            new_workflow: Some(correlation),
            event_id: None,
        }
    }
}

impl<P: Into<Payload>> From<P> for Emit {
    fn from(payload: P) -> Emit {
        Emit {
            payload: payload.into(),
            after: None,
            new_workflow: None,
            event_id: None,
        }
    }
}

pub type PendingReaction = Pin<Box<dyn Future<Output = Result<Vec<Emit>, HandlerFault>>>>;

/// An asynchronous step that publishes through the [`EmitSink`] it is given as it goes.
pub type StreamedReaction = Box<dyn FnOnce(EmitSink) -> PendingReaction>;

/// What a handler does with one event: what to publish, now or when an asynchronous
/// step (a venue call) finishes, or as that step goes (execution: each order when it
/// is placed, not all at the end of the plan).
pub enum Reaction {
    Publish(Vec<Emit>),
    Later(PendingReaction),
    Streamed(StreamedReaction),
}

impl Reaction {
    pub fn nothing() -> Reaction {
        Reaction::Publish(Vec::new())
    }

    pub fn one(payload: impl Into<Payload>) -> Reaction {
        Reaction::Publish(vec![Emit::from(payload)])
    }
}

/// Where one handling's outputs go: each becomes an envelope (a child of the handled
/// event or of an earlier output) and is held until [`EmitSink::go_live`]; from then on
/// each is sent to the broker at once. A handling that finishes on its first poll (the
/// simulated venue) thus sends one message for its whole reaction, and one that waits
/// on a real venue shows each order as it happens.
#[derive(Clone)]
pub struct EmitSink(std::rc::Rc<std::cell::RefCell<SinkState>>);

struct SinkState {
    handled: Arc<Envelope>,
    source: &'static str,
    clock: Arc<dyn crate::clock::Clock>,
    publish: Recipient<PublishAll>,
    /// Every envelope made so far, for `after` indices.
    made: Vec<Arc<Envelope>>,
    /// Made but not yet sent.
    held: Vec<Arc<Envelope>>,
    live: bool,
}

impl EmitSink {
    fn new(
        handled: Arc<Envelope>,
        source: &'static str,
        clock: Arc<dyn crate::clock::Clock>,
        publish: Recipient<PublishAll>,
    ) -> Self {
        Self(std::rc::Rc::new(std::cell::RefCell::new(SinkState {
            handled,
            source,
            clock,
            publish,
            made: Vec::new(),
            held: Vec::new(),
            live: false,
        })))
    }

    /// The event the handling reacts to.
    pub fn handled(&self) -> Arc<Envelope> {
        self.0.borrow().handled.clone()
    }

    /// Makes `out` an envelope and publishes it (or holds it, before `go_live`); its
    /// index, for the `after` of later outputs.
    pub fn emit(&self, out: Emit) -> usize {
        let mut s = self.0.borrow_mut();
        let env = {
            let parent = out
                .after
                .and_then(|i| s.made.get(i))
                .map_or(&*s.handled, |p| p.as_ref());
            let clock = &*s.clock;
            let mut env = match out.new_workflow {
                Some(correlation) => {
                    let trigger = TriggeredBy {
                        correlation_id: parent.correlation_id,
                        event_id: parent.event_id,
                    };
                    Envelope::root_in(correlation, out.payload, s.source, clock, Some(trigger))
                }
                None => Envelope::caused_by(parent, out.payload, s.source, clock),
            };
            if let Some(id) = out.event_id {
                env.event_id = id;
            }
            Arc::new(env)
        };
        s.made.push(env.clone());
        if s.live {
            s.publish.do_send(PublishAll(vec![env]));
        } else {
            s.held.push(env);
        }
        s.made.len() - 1
    }

    /// Sends what is held; every later output goes out as it is made.
    fn go_live(&self) {
        self.flush();
        self.0.borrow_mut().live = true;
    }

    /// Sends what is held, as one message.
    fn flush(&self) {
        let mut s = self.0.borrow_mut();
        if !s.held.is_empty() {
            let held = std::mem::take(&mut s.held);
            s.publish.do_send(PublishAll(held));
        }
    }
}

/// One handling run to its end outside the broker's supervision (a business actor in
/// a worker process): what it publishes goes to `publish` in order, exactly as the
/// in-process actor would send it (held until the first wait, then as it is made). A
/// panic is a fault, as it would be in process.
pub async fn react(
    handler: &mut dyn EventHandler,
    env: Arc<Envelope>,
    source: &'static str,
    clock: Arc<dyn crate::clock::Clock>,
    publish: Recipient<PublishAll>,
) -> Result<(), HandlerFault> {
    let reaction = catch_unwind(AssertUnwindSafe(|| handler.handle(&env)))
        .map_err(|p| HandlerFault(panic_message(p.as_ref())))??;
    let sink = EmitSink::new(env, source, clock, publish);
    let pending = match reaction {
        Reaction::Publish(outputs) => {
            for out in outputs {
                sink.emit(out);
            }
            sink.flush();
            return Ok(());
        }
        Reaction::Later(pending) => pending,
        Reaction::Streamed(stream) => catch_unwind(AssertUnwindSafe(|| stream(sink.clone())))
            .map_err(|p| HandlerFault(panic_message(p.as_ref())))?,
    };
    sink.go_live();
    let outputs = AssertUnwindSafe(pending)
        .catch_unwind()
        .await
        .map_err(|p| HandlerFault(panic_message(p.as_ref())))??;
    for out in outputs {
        sink.emit(out);
    }
    sink.flush();
    Ok(())
}

/// A business actor's behaviour: receive an event, call the core, say what to publish.
pub trait EventHandler: 'static {
    fn handle(&mut self, event: &Arc<Envelope>) -> Result<Reaction, HandlerFault>;
}

pub type HandlerFactory = Box<dyn Fn() -> Box<dyn EventHandler>>;

/// One business actor as the broker knows it: its name, the event types it consumes
/// and how to build a fresh one.
pub struct Subscription {
    pub name: &'static str,
    pub consumes: Vec<EventKind>,
    pub factory: HandlerFactory,
}

/// What the broker wiring knows of the business modules: each adds itself here.
pub struct Registry {
    deps: EngineDeps,
    pub(crate) subscriptions: Vec<Subscription>,
}

impl Registry {
    pub fn new(deps: EngineDeps) -> Self {
        Self {
            deps,
            subscriptions: Vec::new(),
        }
    }

    pub fn deps(&self) -> &EngineDeps {
        &self.deps
    }

    /// Wraps the handlers `name`'s factory builds (drills inject faults this way).
    pub fn wrap(
        &mut self,
        name: &str,
        wrapper: impl Fn(Box<dyn EventHandler>) -> Box<dyn EventHandler> + 'static,
    ) {
        let wrapper = std::rc::Rc::new(wrapper);
        self.subscriptions = std::mem::take(&mut self.subscriptions)
            .into_iter()
            .map(|mut sub| {
                if sub.name == name {
                    let inner = sub.factory;
                    let wrapper = wrapper.clone();
                    sub.factory = Box::new(move || wrapper(inner()));
                }
                sub
            })
            .collect();
    }

    /// Registers an actor consuming `consumes`, built by `factory` at start and after
    /// every restart.
    pub fn add<H, F>(&mut self, name: &'static str, consumes: &[EventKind], factory: F)
    where
        H: EventHandler,
        F: Fn() -> H + 'static,
    {
        self.subscriptions.push(Subscription {
            name,
            consumes: consumes.to_vec(),
            factory: Box::new(move || Box::new(factory())),
        });
    }
}

/// An asynchronous handling in progress: which delivery, since when, and how to stop it.
#[derive(Debug)]
struct PendingHandling {
    seq: u64,
    since: Instant,
    abort: AbortHandle,
}

/// One subscriber as the broker keeps it: how to build it, its running incarnation,
/// the deliveries it has not acknowledged (handed again, in order, to the next
/// incarnation) and its restart history. An event that fails twice is dead-lettered.
pub struct Subscriber {
    pub name: &'static str,
    factory: HandlerFactory,
    addr: Option<Addr<HandlerActor>>,
    incarnation: u32,
    pub progress: Arc<SubscriberProgress>,
    inflight: std::collections::VecDeque<Inflight>,
    history: RestartHistory,
}

/// A delivery not yet acknowledged.
pub struct Inflight {
    pub seq: u64,
    pub env: Arc<Envelope>,
    /// Incarnations that failed on it.
    pub failures: u8,
    /// Handed to some incarnation already (a later send counts as a redelivery).
    sent: bool,
}

/// Deliveries handed to a fresh incarnation: first sends and repeats.
pub struct Handed {
    pub first: u64,
    pub again: u64,
}

/// What one failure of an incarnation means.
pub struct Failure {
    /// The event it failed on (when known) and how often it has failed on it.
    pub failed_on: Option<(Arc<Envelope>, u8)>,
    /// The event, taken off the queue after its second failure.
    pub dead: Option<Inflight>,
    pub decision: RestartDecision,
}

impl Subscriber {
    pub fn new(name: &'static str, factory: HandlerFactory) -> Self {
        Self {
            name,
            factory,
            addr: None,
            incarnation: 0,
            progress: Arc::new(SubscriberProgress::default()),
            inflight: std::collections::VecDeque::new(),
            history: RestartHistory::default(),
        }
    }

    pub fn incarnation(&self) -> u32 {
        self.incarnation
    }

    pub fn is_running(&self) -> bool {
        self.addr.is_some()
    }

    pub fn restarts(&self) -> u64 {
        self.history.total()
    }

    /// Its figures for the broker's stats.
    pub fn stats(&mut self) -> crate::engine_core::ActorStats {
        let (handled, mean, max) = self.progress.latency();
        crate::engine_core::ActorStats {
            name: self.name,
            restarts: self.restarts(),
            handled,
            handler_latency_mean_us: mean,
            handler_latency_max_us: max,
            unacknowledged: self.unacknowledged(),
            running: self.is_running(),
        }
    }

    pub fn unacknowledged(&mut self) -> usize {
        self.trim_acked();
        self.inflight.len()
    }

    fn trim_acked(&mut self) {
        let acked = self.progress.acked();
        while self.inflight.front().is_some_and(|d| d.seq <= acked) {
            self.inflight.pop_front();
        }
    }

    /// Builds a fresh incarnation (slot `slot` of the broker) and hands it every
    /// unacknowledged delivery, in order; the factory's panic, if it panics.
    pub fn start(
        &mut self,
        link: BrokerLink,
        slot: usize,
        deps: EngineDeps,
        mark: bool,
    ) -> Result<Handed, String> {
        self.incarnation += 1;
        let handler = catch_unwind(AssertUnwindSafe(|| (self.factory)()))
            .map_err(|panic| format!("factory failed: {}", panic_message(panic.as_ref())))?;
        let actor = HandlerActor::new(
            self.name,
            handler,
            link,
            slot,
            self.incarnation,
            self.progress.clone(),
            deps,
        );
        let addr = actor.start();
        self.trim_acked();
        let mut handed = Handed { first: 0, again: 0 };
        for d in self.inflight.iter_mut() {
            addr.do_send(Deliver {
                seq: d.seq,
                env: d.env.clone(),
                mark,
            });
            if d.sent {
                handed.again += 1;
            } else {
                handed.first += 1;
                d.sent = true;
            }
        }
        self.addr = Some(addr);
        Ok(handed)
    }

    /// Queues a delivery and hands it to the running incarnation, if one runs (else
    /// the next one gets it); whether it was handed now.
    pub fn deliver(&mut self, seq: u64, env: Arc<Envelope>, mark: bool) -> bool {
        self.trim_acked();
        let sent = match &self.addr {
            Some(addr) => {
                addr.do_send(Deliver {
                    seq,
                    env: env.clone(),
                    mark,
                });
                true
            }
            None => false,
        };
        self.inflight.push_back(Inflight {
            seq,
            env,
            failures: 0,
            sent,
        });
        sent
    }

    /// Incarnation `incarnation` failed while handling `seq` (the oldest unacknowledged
    /// delivery when unknown): counts the failure on that event, dead-letters it on its
    /// second, and asks the restart policy. `None` when that incarnation was already
    /// replaced (a late report).
    pub fn fail(
        &mut self,
        incarnation: u32,
        seq: Option<u64>,
        policy: &RestartPolicy,
        now: Instant,
    ) -> Option<Failure> {
        if incarnation != self.incarnation {
            return None;
        }
        self.addr = None;
        self.trim_acked();
        let failing = seq.or_else(|| self.inflight.front().map(|d| d.seq));
        let mut dead = None;
        let mut failed_on = None;
        if let Some(pos) = failing.and_then(|s| self.inflight.iter().position(|d| d.seq == s)) {
            self.inflight[pos].failures += 1;
            let d = &self.inflight[pos];
            failed_on = Some((d.env.clone(), d.failures));
            if d.failures >= 2 {
                dead = self.inflight.remove(pos);
            }
        }
        Some(Failure {
            failed_on,
            dead,
            decision: self.history.on_failure(policy, now),
        })
    }
}

/// Progress of one subscriber, written by its actor and read by the broker: the last
/// acknowledged sequence number (deliveries are handled in order), handler latency, and
/// the asynchronous handling in flight (so that a hung one can be aborted).
#[derive(Debug, Default)]
pub struct SubscriberProgress {
    acked: AtomicU64,
    handled: AtomicU64,
    /// Handlings whose latency was timed (see `engine.latency_sample_every`).
    timed: AtomicU64,
    latency_ns_total: AtomicU64,
    latency_ns_max: AtomicU64,
    pending: Mutex<Option<PendingHandling>>,
}

impl SubscriberProgress {
    fn set_pending(&self, seq: u64, since: Instant, abort: AbortHandle) {
        *self.pending.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(PendingHandling { seq, since, abort });
    }

    fn clear_pending(&self) {
        *self.pending.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Aborts the asynchronous handling in flight if it has run longer than `limit`;
    /// returns the sequence number it was handling. The actor then reports the failure.
    pub fn abort_if_older_than(&self, limit: Duration) -> Option<u64> {
        let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        match pending.as_ref() {
            Some(p) if p.since.elapsed() > limit => {
                p.abort.abort();
                Some(p.seq)
            }
            _ => None,
        }
    }

    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Acquire)
    }

    /// Records a handled delivery; returns how long it took when it was timed.
    fn ack(&self, seq: u64, started: Option<Instant>) -> Option<Duration> {
        self.handled.fetch_add(1, Ordering::Relaxed);
        let took = started.map(|started| {
            let took = started.elapsed();
            let ns = took.as_nanos().min(u128::from(u64::MAX)) as u64;
            self.timed.fetch_add(1, Ordering::Relaxed);
            self.latency_ns_total.fetch_add(ns, Ordering::Relaxed);
            self.latency_ns_max.fetch_max(ns, Ordering::Relaxed);
            took
        });
        self.acked.fetch_max(seq, Ordering::AcqRel);
        took
    }

    /// (handled, mean µs, max µs), the mean and max over the timed handlings.
    pub fn latency(&self) -> (u64, f64, f64) {
        let handled = self.handled.load(Ordering::Relaxed);
        let n = self.timed.load(Ordering::Relaxed);
        let total = self.latency_ns_total.load(Ordering::Relaxed) as f64;
        let max = self.latency_ns_max.load(Ordering::Relaxed) as f64;
        let mean = if n == 0 {
            0.0
        } else {
            total / n as f64 / 1000.0
        };
        (handled, mean, max / 1000.0)
    }
}

/// The actix actor around one business handler incarnation.
pub struct HandlerActor {
    name: &'static str,
    handler: Box<dyn EventHandler>,
    broker: BrokerLink,
    slot: usize,
    incarnation: u32,
    progress: Arc<SubscriberProgress>,
    deps: EngineDeps,
    /// Set once a failure is reported: later deliveries in the mailbox are ignored (the
    /// broker redelivers them to the next incarnation).
    faulted: bool,
    stopped_cleanly: bool,
    /// Handler latency histograms by event type index (handles made once).
    latency: Vec<Option<prometheus_client::metrics::histogram::Histogram>>,
    /// Deliveries handled by this incarnation: one in `sample_every` is timed.
    deliveries: u64,
    sample_every: u64,
}

impl HandlerActor {
    pub(crate) fn new(
        name: &'static str,
        handler: Box<dyn EventHandler>,
        broker: BrokerLink,
        slot: usize,
        incarnation: u32,
        progress: Arc<SubscriberProgress>,
        deps: EngineDeps,
    ) -> Self {
        Self {
            name,
            handler,
            broker,
            slot,
            incarnation,
            progress,
            faulted: false,
            stopped_cleanly: false,
            latency: vec![None; EventKind::COUNT],
            deliveries: 0,
            sample_every: u64::from(deps.config.engine.latency_sample_every.max(1)),
            deps,
        }
    }

    fn sink(&self, delivery: &Deliver) -> EmitSink {
        EmitSink::new(
            delivery.env.clone(),
            self.name,
            self.deps.clock.clone(),
            self.broker.publish.clone(),
        )
    }

    fn complete(
        &mut self,
        delivery: &Deliver,
        sink: EmitSink,
        outputs: Vec<Emit>,
        started: Option<Instant>,
    ) {
        let handled: &Envelope = &delivery.env;
        let seq = delivery.seq;
        for out in outputs {
            sink.emit(out);
        }
        sink.flush();
        if delivery.mark {
            self.broker.consumed.do_send(Consumed {
                consumer: self.name,
                env: delivery.env.clone(),
            });
        }
        let took_ms = self
            .progress
            .ack(seq, started)
            .map(|took| took.as_secs_f64() * 1000.0);
        let name = self.name;
        tracing::debug!(
            actor = name,
            event_id = %handled.event_id,
            event_type = handled.event_type(),
            correlation_id = %handled.correlation_id,
            causation_id = %handled.causation_id.map(|c| c.to_string()).unwrap_or_default(),
            source = %handled.source,
            latency_ms = took_ms,
            "handled"
        );
        if let Some(took_ms) = took_ms {
            let kind = handled.kind();
            self.latency[kind.index()]
                .get_or_insert_with(|| crate::metrics::metrics().handler_latency(name, kind))
                .observe(took_ms);
        }
    }

    fn fault(&mut self, seq: u64, error: String, ctx: &mut Context<Self>) {
        tracing::error!(actor = self.name, seq, error = %error, "handler failed; restarting");
        self.faulted = true;
        self.broker.failed.do_send(ActorFailed {
            slot: self.slot,
            incarnation: self.incarnation,
            seq: Some(seq),
            error,
        });
        ctx.stop();
    }
}

impl Actor for HandlerActor {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.stopped_cleanly = true;
    }
}

impl Drop for HandlerActor {
    /// An actor that disappears without reporting (a panic outside a handler) is a
    /// failure too; during system shutdown the broker is gone and this is a no-op.
    fn drop(&mut self) {
        if !self.faulted && !self.stopped_cleanly {
            self.broker.failed.do_send(ActorFailed {
                slot: self.slot,
                incarnation: self.incarnation,
                seq: None,
                error: format!("actor {} stopped unexpectedly", self.name),
            });
        }
    }
}

impl Handler<Deliver> for HandlerActor {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        if self.faulted {
            return;
        }
        let started = self
            .deliveries
            .is_multiple_of(self.sample_every)
            .then(Instant::now);
        self.deliveries += 1;
        let env = &msg.env;
        // Logs made while handling carry the event's identity; the span closes with
        // the handling, asynchronous part included.
        let span = tracing::debug_span!(
            "handle",
            actor = self.name,
            event_id = %env.event_id,
            event_type = env.event_type(),
            correlation_id = %env.correlation_id,
            causation_id = %env.causation_id.map(|c| c.to_string()).unwrap_or_default(),
            source = %env.source,
        );
        let entered = span.clone().entered();
        let reaction = catch_unwind(AssertUnwindSafe(|| self.handler.handle(env)));
        drop(entered);
        let sink = self.sink(&msg);
        let pending = match reaction {
            Ok(Ok(Reaction::Publish(payloads))) => {
                return self.complete(&msg, sink, payloads, started)
            }
            Ok(Ok(Reaction::Later(pending))) => pending,
            Ok(Ok(Reaction::Streamed(stream))) => {
                match catch_unwind(AssertUnwindSafe(|| stream(sink.clone()))) {
                    Ok(pending) => pending,
                    Err(panic) => return self.fault(msg.seq, panic_message(panic.as_ref()), ctx),
                }
            }
            Ok(Err(fault)) => return self.fault(msg.seq, fault.0, ctx),
            Err(panic) => return self.fault(msg.seq, panic_message(panic.as_ref()), ctx),
        };
        self.await_reaction(msg, sink, pending, started, span, ctx);
    }
}

impl HandlerActor {
    /// Finishes an asynchronous reaction: polled once at once, then (still pending)
    /// under the handler timeout, with the sink live so that what it emits meanwhile
    /// reaches the broker as it is made.
    fn await_reaction(
        &mut self,
        msg: Deliver,
        sink: EmitSink,
        mut pending: PendingReaction,
        started: Option<Instant>,
        span: tracing::Span,
        ctx: &mut Context<Self>,
    ) {
        // A venue that answers at once (the simulated one) needs no waiting: one poll
        // now spares the timeout guard and the actor's wait queue. A future still
        // pending is polled again, with the actor's waker, below.
        let mut poll = std::task::Context::from_waker(futures_util::task::noop_waker_ref());
        let polled =
            span.in_scope(|| catch_unwind(AssertUnwindSafe(|| pending.as_mut().poll(&mut poll))));
        match polled {
            Ok(std::task::Poll::Ready(Ok(payloads))) => {
                return self.complete(&msg, sink, payloads, started)
            }
            // What a failed handling held is dropped, as a crash would lose it; what
            // a live one sent stays (its ids let a handling again repeat it).
            Ok(std::task::Poll::Ready(Err(fault))) => return self.fault(msg.seq, fault.0, ctx),
            Err(panic) => return self.fault(msg.seq, panic_message(panic.as_ref()), ctx),
            Ok(std::task::Poll::Pending) => {}
        }
        sink.go_live();
        // Still waiting: this handling is timed whatever the sampling.
        let started = started.unwrap_or_else(Instant::now);
        let (pending, abort) = abortable(tracing::Instrument::instrument(pending, span));
        self.progress.set_pending(msg.seq, started, abort);
        let fut = AssertUnwindSafe(pending).catch_unwind();
        ctx.wait(fut.into_actor(self).map(move |outcome, act, ctx| {
            act.progress.clear_pending();
            match outcome {
                Ok(Ok(Ok(payloads))) => act.complete(&msg, sink, payloads, Some(started)),
                Ok(Ok(Err(fault))) => act.fault(msg.seq, fault.0, ctx),
                Ok(Err(_aborted)) => {
                    let waited = started.elapsed().as_secs_f64();
                    let error = format!("no answer within the handler timeout ({waited:.1}s)");
                    act.fault(msg.seq, error, ctx)
                }
                Err(panic) => act.fault(msg.seq, panic_message(panic.as_ref()), ctx),
            }
        }));
    }
}

/// The text of a caught panic.
pub fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        format!("panic: {s}")
    } else if let Some(s) = panic.downcast_ref::<String>() {
        format!("panic: {s}")
    } else {
        "panic with a non-text payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_handling_counts_and_only_timed_ones_make_the_latency() {
        let progress = SubscriberProgress::default();
        let long_ago = Instant::now() - Duration::from_millis(5);
        assert!(progress.ack(1, None).is_none());
        let took = progress.ack(2, Some(long_ago)).expect("timed");
        assert!(took >= Duration::from_millis(5));
        assert!(progress.ack(3, None).is_none());
        let (handled, mean_us, max_us) = progress.latency();
        assert_eq!(handled, 3);
        assert_eq!(progress.acked(), 3);
        // One timed handling: the mean is its latency, not a third of it.
        assert_eq!(mean_us, max_us);
        assert!(mean_us >= 5000.0, "{mean_us}");
    }
}
