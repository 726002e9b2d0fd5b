//! The broker's side of its workers: one subscription to every request
//! (`PREFIX.broker.>`), each answered by the operation its subject names, and one to
//! the workers' heartbeats.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::StreamExt;

use super::super::broker::{AlreadyHandled, Broker, PublishRemote, RemoteDeadLetter};
use super::super::supervision::Consumed;
use crate::bus::remote::{
    broker_requests, heartbeat_subject, request_of, DeadLetterReport, HandlingClaim, HandlingId,
    HandlingLeases, HandlingRef, Heartbeat, IntentRecord, RemotePublish, RemoteView, RoleEvent,
    VenueAccount, Verdict, HELD, NO, ORDER_PLACER, RECORDED, ROOT_ASKER, STARTING, YES,
};
use crate::config::REMOTE_ROLES;
use crate::events::{CorrelationId, Envelope};
use crate::journal::outbox::Outbox;
use crate::workflow_roots::WorkflowRoots;

/// What the broker's side of the workers' requests is made of.
pub struct Endpoint {
    pub prefix: String,
    pub broker: Addr<Broker>,
    pub view: RemoteView,
    pub roots: Option<WorkflowRoots>,
    pub account: VenueAccount,
    /// The journal's outbox, and whether the start-up check is over (intents are taken
    /// only then).
    pub outbox: Option<(Outbox, Arc<std::sync::atomic::AtomicBool>)>,
    /// How long a handling's claim lasts unrenewed: the bus's `ack_wait_secs`, within
    /// which a worker renews it (see [`HandlingLeases`]).
    pub lease: Duration,
    /// The journal's last seq when the engine started.
    pub journaled: u64,
    /// The journal, read: whether a workflow closed under an earlier engine (the
    /// broker keeps only this one's).
    pub journal: Option<crate::journal::Journal>,
}

/// Takes the workers' claims, reactions (answered once journaled), order intents,
/// consumer marks, questions, dead letters and heartbeats. Runs on the engine's actor
/// runtime until the connection ends.
pub async fn serve_endpoint(client: async_nats::Client, endpoint: Endpoint) -> Result<(), String> {
    let mut requests = client
        .subscribe(broker_requests(&endpoint.prefix))
        .await
        .map_err(|e| e.to_string())?;
    let mut beats = client
        .subscribe(heartbeat_subject(&endpoint.prefix))
        .await
        .map_err(|e| e.to_string())?;
    let mut desk = Desk {
        leases: HandlingLeases::new(endpoint.lease, Instant::now(), endpoint.journaled),
        endpoint,
    };
    loop {
        tokio::select! {
            Some(msg) = requests.next() => {
                let answer = desk.answer(&msg).await;
                if let Some(reply) = msg.reply {
                    let _ = client.publish(reply, answer.into()).await;
                }
            }
            Some(msg) = beats.next() => {
                if let Ok(beat) = serde_json::from_slice::<Heartbeat>(&msg.payload) {
                    crate::metrics::metrics().remote_heartbeat(&beat.worker, beat.redelivered);
                    desk.endpoint.view.heard(beat);
                }
            }
            else => return Ok(()),
        }
    }
}

/// One request: the role its subject names (which the server lets only that role's
/// workers use) and its body.
struct Request<'a> {
    subject: &'a str,
    role: &'a str,
    body: &'a [u8],
}

impl Request<'_> {
    /// Whether a request that says it comes from `role` came on that role's subject.
    fn same_role(&self, role: &str) -> Result<(), String> {
        if role == self.role {
            Ok(())
        } else {
            Err(format!(
                "a request for role {role} came on {}: each role sends only its own",
                self.subject
            ))
        }
    }

    /// A role's name as the broker keeps it (a consumer mark's), the event and the
    /// handling that speaks; none when the request names another role than its subject's.
    fn role_event(&self) -> Option<(&'static str, Arc<Envelope>, Option<HandlingId>)> {
        let r: RoleEvent = serde_json::from_slice(self.body).ok()?;
        let role = REMOTE_ROLES
            .iter()
            .find(|n| **n == r.role && **n == self.role)?;
        let env = Envelope::from_json(&r.event).ok()?;
        Some((*role, Arc::new(env), r.handling))
    }
}

/// The endpoint and the handling claims it keeps between requests.
struct Desk {
    endpoint: Endpoint,
    leases: HandlingLeases,
}

fn json(value: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|e| e.to_string().into_bytes())
}

impl Desk {
    async fn answer(&mut self, msg: &async_nats::Message) -> Vec<u8> {
        let Some((op, role)) = request_of(&self.endpoint.prefix, &msg.subject) else {
            return format!("{} is no request", msg.subject).into_bytes();
        };
        let Some(role) = role else {
            return match op {
                "account" => json(&self.endpoint.account),
                _ => format!("unknown request {op}").into_bytes(),
            };
        };
        let req = Request {
            subject: &msg.subject,
            role,
            body: &msg.payload,
        };
        match op {
            "claim" => self.claim(&req),
            "publish" => json(&self.publish(&req).await),
            "dead_letter" => self.dead_letter(&req).await,
            "consumed" => self.consumed(&req).await,
            "handled" => self.handled(&req).await,
            "intent" => self.intent(&req),
            "known" => self.known(&req),
            "root" => json(&self.root(&req)),
            _ => format!("unknown request {op}").into_bytes(),
        }
    }

    fn claim(&mut self, req: &Request<'_>) -> Vec<u8> {
        match serde_json::from_slice::<HandlingClaim>(req.body)
            .map_err(|e| format!("unreadable claim: {e}"))
            .and_then(|c| req.same_role(&c.role).map(|()| c))
        {
            Ok(claim) => self.leases.claim(&claim, Instant::now()).wire().to_vec(),
            Err(why) => why.into_bytes(),
        }
    }

    /// A handling's reaction, taken only from the handling that holds its event.
    async fn publish(&mut self, req: &Request<'_>) -> Vec<Verdict> {
        let read = serde_json::from_slice::<RemotePublish>(req.body)
            .map_err(|e| format!("unreadable: {e}"))
            .and_then(|p| {
                req.same_role(&p.role)?;
                let of = HandlingRef {
                    event_id: p.handled,
                    handling: p.handling,
                };
                let envs = p.envelopes().map_err(|e| format!("unreadable: {e}"))?;
                Ok((self.leases.admits(&p.role, of, Instant::now()), envs))
            });
        match read {
            Ok((false, envs)) => envs
                .iter()
                .map(|_| Verdict::Superseded {
                    reason: String::from_utf8_lossy(HELD).into_owned(),
                })
                .collect(),
            Ok((true, envs)) => self
                .endpoint
                .broker
                .send(PublishRemote(envs.into_iter().map(Arc::new).collect()))
                .await
                .unwrap_or_else(|e| {
                    vec![Verdict::Unavailable {
                        reason: e.to_string(),
                    }]
                }),
            Err(reason) => vec![Verdict::Refused { reason }],
        }
    }

    async fn dead_letter(&mut self, req: &Request<'_>) -> Vec<u8> {
        match serde_json::from_slice::<DeadLetterReport>(req.body) {
            Ok(report) => match req.same_role(&report.role) {
                Ok(()) => {
                    let _ = self.endpoint.broker.send(RemoteDeadLetter(report)).await;
                }
                Err(why) => tracing::warn!(error = %why, "a dead letter refused"),
            },
            Err(e) => tracing::warn!(error = %e, "an unreadable dead letter"),
        }
        b"ok".to_vec()
    }

    /// A consumer mark, taken only from the handling that holds the event.
    async fn consumed(&mut self, req: &Request<'_>) -> Vec<u8> {
        let Some((consumer, env, handling)) = req.role_event() else {
            return b"ok".to_vec();
        };
        let holds = handling.is_none_or(|handling| {
            let of = HandlingRef {
                event_id: env.event_id,
                handling,
            };
            self.leases.admits(consumer, of, Instant::now())
        });
        if !holds {
            return HELD.to_vec();
        }
        let _ = self.endpoint.broker.send(Consumed { consumer, env }).await;
        b"ok".to_vec()
    }

    async fn handled(&mut self, req: &Request<'_>) -> Vec<u8> {
        let done = match req.role_event() {
            Some((consumer, env, _)) => self
                .endpoint
                .broker
                .send(AlreadyHandled { consumer, env })
                .await
                .unwrap_or(false),
            None => false,
        };
        if done || self.closed_before(req) {
            YES
        } else {
            NO
        }
        .to_vec()
    }

    /// Whether the journal shows the request's event's workflow closed after it: one an
    /// earlier engine finished, which this broker's memory does not hold. (The closing
    /// event itself, recovery's `workflow.failed`, is handled after the close.)
    fn closed_before(&self, req: &Request<'_>) -> bool {
        let (Some(journal), Some((_, env, _))) = (&self.endpoint.journal, req.role_event()) else {
            return false;
        };
        let Ok(entries) = journal.correlation(&env.correlation_id) else {
            return false;
        };
        let seq_of = |found: &dyn Fn(&crate::journal::JournalEntry) -> bool| {
            entries.iter().find(|e| found(e)).map(|e| e.seq)
        };
        let own = seq_of(&|e| e.envelope.event_id == env.event_id);
        let closed = seq_of(&|e| {
            matches!(
                e.envelope.payload,
                crate::events::Payload::WorkflowCompleted(_)
                    | crate::events::Payload::WorkflowFailed(_)
            )
        });
        matches!((own, closed), (Some(own), Some(closed)) if own < closed)
    }

    fn intent(&mut self, req: &Request<'_>) -> Vec<u8> {
        if req.role != ORDER_PLACER {
            return format!("only {ORDER_PLACER} workers record order intents").into_bytes();
        }
        match &self.endpoint.outbox {
            Some((_, open)) if !open.load(std::sync::atomic::Ordering::SeqCst) => STARTING.to_vec(),
            Some((outbox, _)) => record_intent(outbox, req.body, &mut self.leases),
            None => b"this engine keeps no outbox".to_vec(),
        }
    }

    /// Whether the engine's outbox has an intent for a client order id.
    fn known(&self, req: &Request<'_>) -> Vec<u8> {
        let id = String::from_utf8_lossy(req.body);
        match &self.endpoint.outbox {
            Some((o, _)) => match o.knows(&id) {
                Ok(true) => YES.to_vec(),
                Ok(false) => NO.to_vec(),
                Err(e) => format!("the outbox cannot be read: {e}").into_bytes(),
            },
            None => b"this engine keeps no outbox".to_vec(),
        }
    }

    fn root(&self, req: &Request<'_>) -> Option<crate::events::WorkflowStarted> {
        if req.role != ROOT_ASKER {
            return None;
        }
        let id = String::from_utf8_lossy(req.body)
            .parse::<uuid::Uuid>()
            .ok()?;
        self.endpoint.roots.as_ref()?.get(&CorrelationId(id))
    }
}

/// Records a worker's order intent (or its outcome) in the engine's outbox; the
/// answer is [`RECORDED`] once it is on disk, the reason otherwise. An intent from a
/// handling that does not hold its plan is refused ([`HELD`]): another handling of the
/// plan places its orders.
fn record_intent(outbox: &Outbox, payload: &[u8], leases: &mut HandlingLeases) -> Vec<u8> {
    let record: IntentRecord = match serde_json::from_slice(payload) {
        Ok(r) => r,
        Err(e) => return format!("unreadable intent: {e}").into_bytes(),
    };
    let written = match &record {
        IntentRecord::Intend { by: Some(by), .. }
            if !leases.admits(ORDER_PLACER, *by, Instant::now()) =>
        {
            return HELD.to_vec();
        }
        IntentRecord::Intend {
            correlation_id,
            plan_hash,
            intent,
            ..
        } => outbox.intend(*correlation_id, plan_hash, intent),
        IntentRecord::Resolve {
            client_order_id,
            outcome,
        } => outbox.resolve(client_order_id, outcome),
    };
    match written {
        Ok(()) => RECORDED.to_vec(),
        Err(e) => format!("the outbox did not take it: {e}").into_bytes(),
    }
}
