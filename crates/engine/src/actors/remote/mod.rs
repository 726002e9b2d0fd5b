//! Business actors in other processes, over NATS (`bus.remote_roles`): the broker's
//! endpoint that takes their reactions, and the worker loop that serves roles
//! (`alchemiser worker --roles ...`). The protocol is `bus::remote`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use async_nats::jetstream::{self, consumer::pull, AckKind};
use futures_util::StreamExt;

use super::deps::EngineDeps;
use super::engine::business_registry;
use super::supervision::{react, EventHandler, PublishAll, Registry};
use crate::bus::remote::{
    account_subject, claim_subject, consumed_subject, consumer_name, dead_letter_subject,
    handled_subject, heartbeat_subject, intent_subject, known_subject, publish_subject,
    root_subject, ClaimOp, ConsumerLag, DeadLetterReport, HandlingClaim, HandlingId, HandlingRef,
    Heartbeat, IntentRecord, RemotePublish, RemoteView, RoleEvent, StableIds, VenueAccount,
    Verdict, GRANTED, HELD, NO, ORDER_PLACER, RECONCILER, RECORDED, ROOT_ASKER, STARTING, YES,
};
use crate::bus::subject;
use crate::config::Config;
use crate::events::{
    CorrelationId, Envelope, EventId, EventKind, HaltReason, Payload, TradingHalted,
    WorkflowStarted,
};
use crate::halt::TradingGate;

/// The durable consumers the remote roles read from: (name, subject), one per event
/// type each role consumes.
pub fn remote_consumers(deps: &EngineDeps) -> Vec<(String, String)> {
    let bus = &deps.config.bus;
    let registry = business_registry(deps.clone());
    registry
        .subscriptions
        .iter()
        .filter(|s| bus.remote_roles.iter().any(|r| r == s.name))
        .flat_map(|s| {
            s.consumes.iter().map(|k| {
                (
                    consumer_name(s.name, k.as_str()),
                    subject(&bus.subject_prefix, k.as_str()),
                )
            })
        })
        .collect()
}

/// Reads each remote consumer's backlog every few seconds into `view` and the metrics.
pub async fn watch_lag(
    client: async_nats::Client,
    stream: String,
    consumers: Vec<String>,
    view: RemoteView,
) {
    let js = jetstream::new(client);
    loop {
        if let Ok(s) = js.get_stream(&stream).await {
            for name in &consumers {
                let consumer: Result<jetstream::consumer::Consumer<pull::Config>, _> =
                    s.get_consumer(name).await;
                if let Ok(mut c) = consumer {
                    if let Ok(info) = c.info().await {
                        let lag = ConsumerLag {
                            pending: info.num_pending,
                            ack_pending: info.num_ack_pending as u64,
                            redelivered: info.num_redelivered as u64,
                        };
                        crate::metrics::metrics().remote_lag(
                            name,
                            lag.pending + lag.ack_pending,
                            lag.redelivered,
                        );
                        view.lag(name, lag);
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The engine's outbox, reached over the bus: a worker's executor records each order
/// intent there before sending it, and its outcome after. While the engine is away (a
/// restart, a bus outage) or still in its start-up check, the worker waits up to
/// `patience` before it gives the order up: an engine back within that time finds the
/// plan going on, not a step failed for a pause.
pub struct NatsIntents {
    pub client: async_nats::Client,
    /// The bus's subject prefix.
    pub prefix: String,
    pub patience: Duration,
    /// The execution role's handling under way: the engine takes its intents only
    /// while it holds the plan.
    pub current: CurrentHandling,
}

/// The handling a role's worker is doing now (none between events).
pub type CurrentHandling = Arc<Mutex<Option<HandlingRef>>>;

impl NatsIntents {
    async fn record(&self, record: IntentRecord) -> Result<(), String> {
        let body = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
        let deadline = tokio::time::Instant::now() + self.patience;
        let mut waited = false;
        loop {
            let answer = tokio::time::timeout(
                Duration::from_secs(2),
                self.client.request(
                    intent_subject(&self.prefix, ORDER_PLACER),
                    body.clone().into(),
                ),
            )
            .await;
            let why = match answer {
                Ok(Ok(reply)) if reply.payload.as_ref() == RECORDED => {
                    if waited {
                        tracing::info!("the engine journals order intents again: going on");
                    }
                    return Ok(());
                }
                Ok(Ok(reply)) if reply.payload.as_ref() == STARTING => {
                    String::from_utf8_lossy(STARTING).into_owned()
                }
                // Refused for what it is: asking again would not change the answer.
                Ok(Ok(reply)) => return Err(String::from_utf8_lossy(&reply.payload).into_owned()),
                Ok(Err(e)) => format!("the engine is unreachable: {e}"),
                Err(_) => "the engine did not answer within 2 s".to_string(),
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(format!("{why} (waited {} s)", self.patience.as_secs()));
            }
            if !waited {
                tracing::warn!(reason = %why, "waiting for the engine to journal the order intent before sending the order");
                waited = true;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl crate::intents::IntentRecorder for NatsIntents {
    /// Not asked over the wire: a worker's executor looks up every id its plan can use.
    fn intents_of<'a>(
        &'a self,
        _correlation: CorrelationId,
    ) -> crate::intents::Recorded<'a, Option<Vec<String>>> {
        Box::pin(std::future::ready(Ok(None)))
    }

    fn knows<'a>(
        &'a self,
        client_order_id: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, String>> + Send + 'a>>
    {
        Box::pin(async move {
            let reply = tokio::time::timeout(
                Duration::from_secs(5),
                self.client.request(
                    known_subject(&self.prefix, RECONCILER),
                    client_order_id.to_string().into(),
                ),
            )
            .await
            .map_err(|_| "the engine did not answer within 5 s".to_string())?
            .map_err(|e| format!("the engine is unreachable: {e}"))?;
            match reply.payload.as_ref() {
                YES => Ok(true),
                NO => Ok(false),
                other => Err(String::from_utf8_lossy(other).into_owned()),
            }
        })
    }

    fn intend<'a>(
        &'a self,
        correlation: CorrelationId,
        plan_hash: &'a str,
        intent: &'a crate::events::OrderIntent,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        let by = *self.current.lock().unwrap_or_else(|p| p.into_inner());
        Box::pin(self.record(IntentRecord::Intend {
            correlation_id: correlation,
            plan_hash: plan_hash.to_string(),
            intent: intent.clone(),
            by,
        }))
    }

    fn resolve<'a>(
        &'a self,
        client_order_id: &'a str,
        outcome: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(self.record(IntentRecord::Resolve {
            client_order_id: client_order_id.to_string(),
            outcome: outcome.to_string(),
        }))
    }
}

/// Whether the engine trades the account `mine` (this worker's venue): asks it, again
/// each second while it does not answer (not started yet, or restarting). A worker
/// trading another account than the engine reads would move money nobody reconciles.
pub async fn confirm_same_account(
    client: &async_nats::Client,
    prefix: &str,
    mine: &VenueAccount,
) -> Result<(), String> {
    let subject = account_subject(prefix);
    let mut asked = 0u32;
    loop {
        asked += 1;
        let answer = tokio::time::timeout(
            Duration::from_secs(2),
            client.request(subject.clone(), "".into()),
        )
        .await;
        match answer {
            Ok(Ok(reply)) => {
                let engine: VenueAccount = serde_json::from_slice(&reply.payload)
                    .map_err(|e| format!("the engine's account answer is unreadable: {e}"))?;
                return if engine == *mine {
                    tracing::info!(account = %engine, "the engine trades this worker's account");
                    Ok(())
                } else {
                    Err(format!(
                        "this worker's venue is {mine}, but the engine trades {engine}: refusing to serve (give the worker the engine's Alpaca keys)"
                    ))
                };
            }
            Ok(Err(e)) => {
                tracing::warn!(attempt = asked, error = %e, "the engine does not answer which account it trades; waiting before serving")
            }
            Err(_) => {
                tracing::warn!(
                    attempt = asked,
                    "the engine does not answer which account it trades; waiting before serving"
                )
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

mod endpoint;
pub use endpoint::{serve_endpoint, Endpoint};

/// How long a worker waits before sending a reaction the broker did not take again.
const RESEND_AFTER: Duration = Duration::from_millis(500);

/// Sends a worker's reaction to the broker, batch by batch in order, each answered
/// before the next is sent (an atomic response: the actor takes no other message
/// meanwhile), so [`Finish`] answers once the whole reaction is settled.
struct RemoteBroker {
    client: async_nats::Client,
    /// The bus's subject prefix: reactions go to the handling role's publish subject.
    prefix: String,
    worker: String,
    role: &'static str,
    handled: EventId,
    handling: HandlingId,
    ids: StableIds,
    /// Why the reaction is not settled, if it is not.
    unsettled: Option<Unsettled>,
    timeout: Duration,
}

/// Why a handling's reaction is not (all) on record.
#[derive(Debug)]
enum Unsettled {
    /// The broker or the bus was away: handled again later.
    Away(String),
    /// Another handling of the event holds it: left to that one.
    Superseded(String),
}

impl Actor for RemoteBroker {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "()")]
struct Begin {
    handled: EventId,
    role: &'static str,
    handling: HandlingId,
}

#[derive(Message)]
#[rtype(result = "Result<(), Unsettled>")]
struct Finish;

impl Handler<Begin> for RemoteBroker {
    type Result = ();

    fn handle(&mut self, msg: Begin, _ctx: &mut Self::Context) {
        self.handled = msg.handled;
        self.role = msg.role;
        self.handling = msg.handling;
        self.ids = StableIds::default();
        self.unsettled = None;
    }
}

impl Handler<PublishAll> for RemoteBroker {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: PublishAll, _ctx: &mut Self::Context) -> Self::Result {
        if self.unsettled.is_some() {
            // An earlier batch of this reaction is not on record: a later one would
            // reach the broker before its causes. The whole reaction is sent again, in
            // order and with the same ids, when the event is redelivered.
            return AtomicResponse::new(Box::pin(async {}.into_actor(self)));
        }
        let mut events = Vec::with_capacity(msg.0.len());
        for env in msg.0 {
            let mut env = Arc::unwrap_or_clone(env);
            self.ids.apply(self.handled, self.role, &mut env);
            match env.to_json() {
                Ok(json) => events.push(json),
                Err(e) => self.unsettled = Some(Unsettled::Away(format!("encoding: {e}"))),
            }
        }
        let request = RemotePublish {
            worker: self.worker.clone(),
            role: self.role.to_string(),
            handled: self.handled,
            handling: self.handling,
            events,
        };
        let (client, subject, timeout) = (
            self.client.clone(),
            publish_subject(&self.prefix, self.role),
            self.timeout,
        );
        // Sent again while the bus or the broker is away (a server restart, an engine
        // restarting) until the handler's time runs out: the client reconnects by
        // itself, and the broker keeps a resent event once.
        let send = async move {
            let body = serde_json::to_vec(&request).map_err(|e| Unsettled::Away(e.to_string()))?;
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let attempt = async {
                    let reply = tokio::time::timeout(
                        left.min(Duration::from_secs(5)),
                        client.request(subject.clone(), body.clone().into()),
                    )
                    .await
                    .map_err(|_| "the broker did not answer".to_string())?
                    .map_err(|e| e.to_string())?;
                    let verdicts: Vec<Verdict> =
                        serde_json::from_slice(&reply.payload).map_err(|e| e.to_string())?;
                    Ok(verdicts.into_iter().find_map(|v| match v {
                        Verdict::Superseded { reason } => Some(Unsettled::Superseded(reason)),
                        Verdict::Unavailable { reason } => Some(Unsettled::Away(reason)),
                        _ => None,
                    }))
                };
                match attempt.await {
                    Ok(None) => return Ok(()),
                    Ok(Some(Unsettled::Superseded(why))) => return Err(Unsettled::Superseded(why)),
                    Ok(Some(Unsettled::Away(e))) | Err(e) if left > RESEND_AFTER => {
                        tracing::warn!(error = %e, "the broker did not take a reaction: sending it again");
                        tokio::time::sleep(RESEND_AFTER).await;
                    }
                    Ok(Some(Unsettled::Away(e))) | Err(e) => return Err(Unsettled::Away(e)),
                }
            }
        };
        AtomicResponse::new(Box::pin(send.into_actor(self).map(|result, act, _ctx| {
            if let Err(e) = result {
                act.unsettled.get_or_insert(e);
            }
        })))
    }
}

impl Handler<Finish> for RemoteBroker {
    type Result = Result<(), Unsettled>;

    fn handle(&mut self, _msg: Finish, _ctx: &mut Self::Context) -> Self::Result {
        match self.unsettled.take() {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }
}

/// One role served by this worker: its handler (rebuilt after a fault) and how.
struct Role {
    name: &'static str,
    factory: super::supervision::HandlerFactory,
    handler: Box<dyn EventHandler>,
}

/// Keeps this worker's gate in step with the broker's halts: the latest halt or
/// resume on the stream at start, then each one as it is published.
async fn follow_halts(
    js: &jetstream::Context,
    client: &async_nats::Client,
    config: &Config,
    gate: TradingGate,
) -> Result<(), String> {
    let prefix = &config.bus.subject_prefix;
    let halted = subject(prefix, EventKind::TradingHalted.as_str());
    let resumed = subject(prefix, EventKind::TradingResumed.as_str());
    // The engine makes the stream; a worker may start first.
    let stream = loop {
        match js.get_stream(&config.bus.stream).await {
            Ok(stream) => break stream,
            Err(e) => {
                tracing::info!(stream = %config.bus.stream, error = %e, "waiting for the engine's stream");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    let last = |m: Result<jetstream::message::StreamMessage, _>| m.ok().map(|m| m.sequence);
    let (h, r) = (
        last(stream.get_last_raw_message_by_subject(&halted).await),
        last(stream.get_last_raw_message_by_subject(&resumed).await),
    );
    if h > r {
        crate::metrics::move_gate(&gate, true);
        tracing::warn!("trading is halted: this worker places no order until it is resumed");
    }
    let mut subs = futures_util::stream::select(
        client.subscribe(halted).await.map_err(|e| e.to_string())?,
        client.subscribe(resumed).await.map_err(|e| e.to_string())?,
    );
    tokio::task::spawn_local(async move {
        while let Some(msg) = subs.next().await {
            let text = String::from_utf8_lossy(&msg.payload);
            match Envelope::from_json(&text).map(|e| e.payload) {
                Ok(Payload::TradingHalted(TradingHalted { reason, detail })) => {
                    tracing::error!(%reason, %detail, "trading halted: this worker places no order");
                    crate::metrics::move_gate(&gate, true);
                }
                Ok(Payload::TradingResumed(_)) => crate::metrics::move_gate(&gate, false),
                _ => {
                    // An unreadable notice: fail closed.
                    tracing::error!(reason = %HaltReason::Manual, "unreadable halt notice: halting this worker");
                    crate::metrics::move_gate(&gate, true);
                }
            }
        }
    });
    Ok(())
}

/// What a worker does before handling an event (a strategy worker fetches the day's
/// bars before a workflow's start); an error leaves the event for later.
pub type BeforeHandling =
    Box<dyn Fn(&Envelope) -> futures_util::future::LocalBoxFuture<'static, Result<(), String>>>;

/// Serves `roles` until the connection ends (see [`serve_role`]), with a heartbeat.
pub async fn work(
    mut deps: EngineDeps,
    client: async_nats::Client,
    roles: &[String],
    worker: String,
    before: Option<BeforeHandling>,
) -> Result<(), String> {
    let config = deps.config.clone();
    let bus = &config.bus;
    // No order leaves this worker before the engine's journal has its intent.
    let current = CurrentHandling::default();
    deps.remote_intents = Some(Arc::new(NatsIntents {
        client: client.clone(),
        prefix: bus.subject_prefix.clone(),
        // Well inside the handling's own time limit.
        patience: Duration::from_secs(config.engine.handler_timeout_secs / 4),
        current: current.clone(),
    }));
    let js = jetstream::new(client.clone());
    follow_halts(&js, &client, &config, deps.gate.clone()).await?;
    let served = roles_served(business_registry(deps.clone()), roles);
    let counts = Arc::new(Mutex::new((0u64, 0u64, 0u64)));
    let names = served.iter().map(|(r, _)| r.name.to_string()).collect();
    let beat = heartbeat(
        client.clone(),
        heartbeat_subject(&bus.subject_prefix),
        worker.clone(),
        names,
        counts.clone(),
    );
    tokio::task::spawn_local(beat);
    tracing::info!(%worker, roles = %roles.join(","), "worker serving");
    let shared = Serving {
        deps: &deps,
        client: &client,
        js: &js,
        worker: &worker,
        counts: &counts,
        before: before.as_ref(),
        handler_timeout: Duration::from_secs(config.engine.handler_timeout_secs),
        // Well inside the server's wait for an acknowledgement: a long handling is
        // never taken for a dead worker's.
        progress_every: (Duration::from_secs(bus.ack_wait_secs) / 3)
            .max(Duration::from_millis(100)),
        current,
    };
    // Each role handles its events on its own, as its actor does in one process: an
    // execution waiting for the engine never holds up the reconciliation the engine's
    // start-up check asks for.
    futures_util::future::try_join_all(
        served
            .into_iter()
            .map(|(role, wanted)| serve_role(&shared, role, wanted)),
    )
    .await
    .map(|_| ())
}

/// The registry's business actors this worker was asked to serve, each with the
/// durable consumers of the events it takes.
fn roles_served(registry: Registry, roles: &[String]) -> Vec<(Role, Vec<(usize, String)>)> {
    let mut served = Vec::new();
    for sub in registry.subscriptions {
        if !roles.iter().any(|r| r == sub.name) {
            continue;
        }
        let wanted = sub
            .consumes
            .iter()
            .map(|kind| (0, consumer_name(sub.name, kind.as_str())))
            .collect();
        let role = Role {
            name: sub.name,
            handler: (sub.factory)(),
            factory: sub.factory,
        };
        served.push((role, wanted));
    }
    served
}

/// The worker's heartbeat every 2 s: its roles and what it has handled, redelivered
/// and failed (the engine's `/healthz` and `status` show them).
async fn heartbeat(
    client: async_nats::Client,
    subject: String,
    worker: String,
    roles: Vec<String>,
    counts: Arc<Mutex<(u64, u64, u64)>>,
) {
    loop {
        let (handled, redelivered, failed) = *counts.lock().unwrap_or_else(|p| p.into_inner());
        let beat = Heartbeat {
            worker: worker.clone(),
            roles: roles.clone(),
            handled,
            redelivered,
            failed,
            at: chrono::Utc::now(),
        };
        if let Ok(body) = serde_json::to_vec(&beat) {
            let _ = client.publish(subject.clone(), body.into()).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// What every role of a worker shares.
struct Serving<'a> {
    deps: &'a EngineDeps,
    client: &'a async_nats::Client,
    js: &'a jetstream::Context,
    worker: &'a str,
    /// Handled, redelivered, failed: for the heartbeat.
    counts: &'a Arc<Mutex<(u64, u64, u64)>>,
    before: Option<&'a BeforeHandling>,
    handler_timeout: Duration,
    progress_every: Duration,
    /// The execution role's handling under way, for its order intents.
    current: CurrentHandling,
}

impl Serving<'_> {
    /// Updates the heartbeat's counts.
    fn count(&self, update: impl FnOnce(&mut (u64, u64, u64))) {
        update(&mut self.counts.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// Serves one role until the connection ends: each event from its durable consumers
/// is handled by its actor; what it publishes goes to the broker, and the event is
/// acknowledged only once the broker has it on record.
async fn serve_role(
    serving: &Serving<'_>,
    mut role: Role,
    wanted: Vec<(usize, String)>,
) -> Result<(), String> {
    let bus = &serving.deps.config.bus;
    let publisher = RemoteBroker {
        client: serving.client.clone(),
        prefix: bus.subject_prefix.clone(),
        worker: serving.worker.to_string(),
        role: role.name,
        handled: EventId::new(),
        handling: HandlingId::new(),
        ids: StableIds::default(),
        unsettled: None,
        timeout: serving.handler_timeout,
    }
    .start();
    let mut feed = bind(serving.js, &bus.stream, &wanted).await;
    loop {
        let message = match feed.next().await {
            Some((_, Ok(message))) => message,
            // The server restarted or the connection dropped: what was not
            // acknowledged is redelivered, to this worker or another, once bound again.
            Some((_, Err(e))) => {
                tracing::warn!(error = %e, "the event feed broke: binding the consumers again");
                tokio::time::sleep(Duration::from_millis(250)).await;
                feed = bind(serving.js, &bus.stream, &wanted).await;
                continue;
            }
            None => {
                feed = bind(serving.js, &bus.stream, &wanted).await;
                continue;
            }
        };
        serve_message(serving, &mut role, &publisher, &message).await?;
    }
}

/// One delivered event, from the engine's claim to its acknowledgement (or not).
async fn serve_message(
    serving: &Serving<'_>,
    role: &mut Role,
    publisher: &Addr<RemoteBroker>,
    message: &jetstream::Message,
) -> Result<(), String> {
    let delivered = message.info().map_or(1, |i| i.delivered);
    let env = match Envelope::from_json(&String::from_utf8_lossy(&message.payload)) {
        Ok(env) => Arc::new(env),
        Err(e) => {
            tracing::error!(role = role.name, error = %e, "unreadable event: dropped");
            let _ = message.ack_with(AckKind::Term).await;
            return Ok(());
        }
    };
    let handling = HandlingId::new();
    let mut mark = RoleEvent {
        role: role.name.to_string(),
        event: String::from_utf8_lossy(&message.payload).into_owned(),
        handling: None,
    };
    let holding = Holding::new(serving, role.name, message, env.event_id, handling);
    if delivered > 1 {
        serving.count(|c| c.1 += 1);
    }
    // The engine's claim first (no other handling of the event runs meanwhile),
    // then whether the event was handled already (the acknowledgement was lost,
    // another worker had it while the server was away, or its workflow closed):
    // nothing to do again. Both asked until the engine answers: handling without
    // knowing would act on a moment that has passed (a reconciliation while
    // another handling trades).
    if !holding.keep(holding.take(&mark)).await || holding.keep(holding.handled(&mark)).await {
        tracing::info!(role = role.name, event_id = %env.event_id, delivered, "already handled: skipped");
        let _ = message.ack().await;
        holding.release().await;
        return Ok(());
    }
    mark.handling = Some(handling);
    if let Err(why) = ready_to_handle(serving, role, &env).await {
        tracing::warn!(role = role.name, event_id = %env.event_id, error = %why, "not ready to handle: redelivery later");
        let _ = message
            .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
            .await;
        return Ok(());
    }
    let (handled, settled) = handle(serving, role, publisher, &holding, &env, handling).await?;
    if holding.lost.get() {
        // Not acknowledged, not marked: the handling that holds the event does.
        return Ok(());
    }
    match (handled, settled) {
        (Ok(()), Ok(())) => acknowledge(serving, role, &holding, &env, &mark, delivered).await,
        // Handled, but the broker does not have it all: handled again later (the
        // same ids; client order ids keep the venue from a second order).
        (Ok(()), Err(why)) => {
            tracing::warn!(role = role.name, event_id = %env.event_id, error = %why, "the broker did not take the reaction: redelivery later");
            let _ = message
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
        }
        (Err(fault), _) => failed(serving, role, message, &env, delivered, fault).await,
    }
    holding.release().await;
    Ok(())
}

/// What must hold before the role handles `env`: recovery retries from the failed
/// workflow's root, which the broker keeps (asked for here); a worker's own check
/// (`before`: its live bars refreshed) passed.
async fn ready_to_handle(serving: &Serving<'_>, role: &Role, env: &Envelope) -> Result<(), String> {
    if let (true, Payload::WorkflowFailed(_)) = (role.name == ROOT_ASKER, &env.payload) {
        let prefix = &serving.deps.config.bus.subject_prefix;
        match ask_root(serving.client, prefix, env.correlation_id).await {
            Ok(Some(started)) => serving.deps.roots.insert(env.correlation_id, started),
            Ok(None) => {}
            Err(why) => {
                return Err(format!(
                    "cannot ask the broker for the workflow's root: {why}"
                ))
            }
        }
    }
    match serving.before {
        Some(before) => before(env).await,
        None => Ok(()),
    }
}

/// Runs the role's actor on `env` under the handler timeout, then settles what it
/// published with the broker: (how the handling went, whether the broker has it all).
async fn handle(
    serving: &Serving<'_>,
    role: &mut Role,
    publisher: &Addr<RemoteBroker>,
    holding: &Holding<'_>,
    env: &Arc<Envelope>,
    handling: HandlingId,
) -> Result<(Result<(), String>, Result<(), String>), String> {
    publisher
        .send(Begin {
            handled: env.event_id,
            role: role.name,
            handling,
        })
        .await
        .map_err(|e| e.to_string())?;
    if role.name == ORDER_PLACER {
        *serving.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(holding.claim.of);
    }
    let injected = crate::fault::fails(&format!("remote.handle:{}", env.event_type()));
    let handled = if injected {
        Err("injected failure (ALCHEMISER_FAIL_ON)".to_string())
    } else {
        let timeout = serving.handler_timeout;
        let handling = tokio::time::timeout(
            timeout,
            react(
                role.handler.as_mut(),
                env.clone(),
                role.name,
                serving.deps.clock.clone(),
                publisher.clone().recipient(),
            ),
        );
        holding
            .during(handling)
            .await
            .map_err(|_| format!("no answer within {} s", timeout.as_secs()))
            .and_then(|r| r.map_err(|f| f.0))
    };
    let settled = holding
        .during(publisher.send(Finish))
        .await
        .map_err(|e| e.to_string())?;
    *serving.current.lock().unwrap_or_else(|p| p.into_inner()) = None;
    if let Err(Unsettled::Superseded(why)) = &settled {
        holding.lost(why);
    }
    let settled = settled.map_err(|u| match u {
        Unsettled::Away(why) | Unsettled::Superseded(why) => why,
    });
    Ok((handled, settled))
}

/// Handled and on record: the consumer mark, then the acknowledgement.
async fn acknowledge(
    serving: &Serving<'_>,
    role: &Role,
    holding: &Holding<'_>,
    env: &Envelope,
    mark: &RoleEvent,
    delivered: i64,
) {
    // The consumer mark first: a redelivery after a lost acknowledgement is then
    // skipped. Answered once the broker has it; waited on briefly: without the engine
    // (it may have just stopped) a redelivery is handled again, harmlessly.
    if let Ok(body) = serde_json::to_vec(mark) {
        let subject = consumed_subject(&serving.deps.config.bus.subject_prefix, role.name);
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            serving.client.request(subject, body.into()),
        )
        .await;
    }
    // Given up before the acknowledgement: a redelivery after a crash here is skipped
    // at once, not held off for a lease.
    holding.release().await;
    crate::fault::crash_point(&format!("remote.acknowledge.{}", env.event_type()));
    let _ = holding.message.ack().await;
    serving.count(|c| c.0 += 1);
    tracing::info!(role = role.name, event_type = env.event_type(), event_id = %env.event_id, delivered, "handled");
}

/// The handling failed: a fresh actor for the role, and the event redelivered, or
/// reported to the broker as a dead letter once it has been delivered `max_deliver`
/// times.
async fn failed(
    serving: &Serving<'_>,
    role: &mut Role,
    message: &jetstream::Message,
    env: &Envelope,
    delivered: i64,
    fault: String,
) {
    let bus = &serving.deps.config.bus;
    serving.count(|c| c.2 += 1);
    role.handler = (role.factory)();
    if delivered >= bus.max_deliver {
        let report = DeadLetterReport {
            worker: serving.worker.to_string(),
            role: role.name.to_string(),
            event_id: env.event_id,
            correlation_id: env.correlation_id,
            event_type: env.event_type().to_string(),
            deliveries: delivered.max(0) as u64,
            error: fault.clone(),
        };
        if let Ok(body) = serde_json::to_vec(&report) {
            let _ = serving
                .client
                .request(
                    dead_letter_subject(&bus.subject_prefix, role.name),
                    body.into(),
                )
                .await;
        }
        tracing::error!(role = role.name, event_id = %env.event_id, error = %fault, "dead letter: reported to the broker");
        let _ = message.ack_with(AckKind::Term).await;
    } else {
        tracing::warn!(role = role.name, event_id = %env.event_id, delivered, error = %fault, "handling failed: redelivery");
        let _ = message
            .ack_with(AckKind::Nak(Some(Duration::from_millis(500))))
            .await;
    }
}

/// A worker's hold on one delivered event while it asks the engine and handles it:
/// the server is told the handling goes on (JetStream's progress acknowledgement) and
/// the engine's claim on the event is renewed (see [`HandlingLeases`]).
struct Holding<'a> {
    message: &'a jetstream::Message,
    every: Duration,
    client: &'a async_nats::Client,
    prefix: &'a str,
    claim: HandlingClaim,
    /// The engine gave the event to another handling (this one's claim lapsed).
    lost: std::cell::Cell<bool>,
    released: std::cell::Cell<bool>,
}

impl<'a> Holding<'a> {
    /// A hold on `message` for one handling of `event_id` by `role`, not yet claimed.
    fn new(
        serving: &Serving<'a>,
        role: &str,
        message: &'a jetstream::Message,
        event_id: EventId,
        handling: HandlingId,
    ) -> Self {
        Holding {
            message,
            every: serving.progress_every,
            client: serving.client,
            prefix: &serving.deps.config.bus.subject_prefix,
            claim: HandlingClaim {
                role: role.to_string(),
                op: ClaimOp::Take,
                of: HandlingRef { event_id, handling },
                seq: message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(crate::bus::SEQ_HEADER))
                    .and_then(|v| v.as_str().parse().ok()),
            },
            lost: std::cell::Cell::new(false),
            released: std::cell::Cell::new(false),
        }
    }
    /// The engine's answer on `subject`, or why there is none.
    async fn ask(&self, subject: String, body: Vec<u8>) -> Result<Vec<u8>, String> {
        self.ask_within(subject, body, Duration::from_secs(2)).await
    }

    async fn ask_within(
        &self,
        subject: String,
        body: Vec<u8>,
        within: Duration,
    ) -> Result<Vec<u8>, String> {
        match tokio::time::timeout(within, self.client.request(subject, body.into())).await {
            Ok(Ok(reply)) => Ok(reply.payload.to_vec()),
            Ok(Err(e)) => Err(format!("the engine is unreachable: {e}")),
            Err(_) => Err(format!(
                "the engine did not answer within {} ms",
                within.as_millis()
            )),
        }
    }

    async fn ask_claim(&self, op: ClaimOp) -> Result<Vec<u8>, String> {
        let claim = HandlingClaim {
            op,
            ..self.claim.clone()
        };
        let body = serde_json::to_vec(&claim).map_err(|e| e.to_string())?;
        // A renewal is asked between two looks at the handling: briefly.
        let within = match op {
            ClaimOp::Renew => (self.every / 2).min(Duration::from_secs(2)),
            _ => Duration::from_secs(2),
        };
        self.ask_within(claim_subject(self.prefix, &self.claim.role), body, within)
            .await
    }

    /// Runs `work` while telling the server every `every` that the event is still
    /// held: it would give it to another worker.
    async fn keep<T>(&self, work: impl std::future::Future<Output = T>) -> T {
        self.holding(work, false).await
    }

    /// [`Holding::keep`], renewing the engine's claim with each word to the server too.
    async fn holding<T>(&self, work: impl std::future::Future<Output = T>, renew: bool) -> T {
        tokio::pin!(work);
        loop {
            tokio::select! {
                done = &mut work => return done,
                _ = tokio::time::sleep(self.every) => {
                    if let Err(e) = self.message.ack_with(AckKind::Progress).await {
                        tracing::warn!(error = %e, "cannot tell the server the event is still held");
                    }
                    if !renew {
                        continue;
                    }
                    if let Ok(HELD) = self.ask_claim(ClaimOp::Renew).await.as_deref() {
                        self.lost(HELD.escape_ascii());
                    }
                }
            }
        }
    }

    /// Whether the engine has `mark`'s event handled by this role: asked until it
    /// answers.
    async fn handled(&self, mark: &RoleEvent) -> bool {
        let Ok(body) = serde_json::to_vec(mark) else {
            return false;
        };
        let mut waited = false;
        loop {
            match self
                .ask(handled_subject(self.prefix, &mark.role), body.clone())
                .await
            {
                Ok(answer) => return answer == YES,
                Err(why) if !waited => {
                    tracing::warn!(role = %mark.role, reason = %why, "waiting for the engine to say whether the event was handled");
                    waited = true;
                }
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Takes the engine's claim on the event, waiting while another handling holds
    /// it or the engine is away or starting: true once granted; false when, while
    /// another held it, the event came to be handled (nothing left to do).
    async fn take(&self, mark: &RoleEvent) -> bool {
        let mut said = None;
        loop {
            let why = match self.ask_claim(ClaimOp::Take).await.as_deref() {
                Ok(GRANTED) => return true,
                Ok(HELD) if self.handled(mark).await => return false,
                Ok(other) => String::from_utf8_lossy(other).into_owned(),
                Err(why) => why.clone(),
            };
            if said.as_ref() != Some(&why) {
                tracing::warn!(role = %self.claim.role, event_id = %self.claim.of.event_id, reason = %why, "waiting before handling the event");
                said = Some(why);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Runs `work`, telling the server every `every` that the handling goes on and
    /// renewing the engine's claim: a slow venue does not get the event handled a
    /// second time by another worker.
    async fn during<T>(&self, work: impl std::future::Future<Output = T>) -> T {
        self.holding(work, true).await
    }

    fn lost(&self, why: impl std::fmt::Display) {
        if !self.lost.replace(true) {
            tracing::warn!(role = %self.claim.role, event_id = %self.claim.of.event_id, reason = %why, "another handling holds the event now: this one leaves it to that one");
        }
    }

    /// Gives the claim up, so that a redelivery is handled at once, not a lease later;
    /// once.
    async fn release(&self) {
        if !self.released.replace(true) {
            let _ = self.ask_claim(ClaimOp::Release).await;
        }
    }
}

type Feed = futures_util::stream::SelectAll<
    futures_util::stream::LocalBoxStream<
        'static,
        (
            usize,
            Result<jetstream::Message, jetstream::consumer::pull::MessagesError>,
        ),
    >,
>;

/// The roles' durable consumers as one stream of messages, each tagged with its role;
/// waits for the engine to have made them.
async fn bind(js: &jetstream::Context, stream_name: &str, wanted: &[(usize, String)]) -> Feed {
    let mut feeds = Vec::new();
    for (index, name) in wanted {
        let index = *index;
        let messages = loop {
            let bound = async {
                let stream = js
                    .get_stream(stream_name)
                    .await
                    .map_err(|e| e.to_string())?;
                let consumer: jetstream::consumer::Consumer<pull::Config> =
                    stream.get_consumer(name).await.map_err(|e| e.to_string())?;
                consumer.messages().await.map_err(|e| e.to_string())
            };
            match bound.await {
                Ok(m) => break m,
                Err(e) => {
                    tracing::info!(consumer = %name, error = %e, "waiting for the engine's consumer");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        };
        feeds.push(messages.map(move |m| (index, m)).boxed_local());
    }
    futures_util::stream::select_all(feeds)
}

/// Asks the broker for the root of `correlation` (the workflow's start), which a
/// recovery worker retries from; `None`: the broker does not know it (any more).
pub async fn ask_root(
    client: &async_nats::Client,
    prefix: &str,
    correlation: CorrelationId,
) -> Result<Option<WorkflowStarted>, String> {
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        client.request(
            root_subject(prefix, ROOT_ASKER),
            correlation.to_string().into(),
        ),
    )
    .await
    .map_err(|_| "the broker did not answer".to_string())?
    .map_err(|e| e.to_string())?;
    serde_json::from_slice(&reply.payload).map_err(|e| e.to_string())
}
