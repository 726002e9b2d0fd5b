//! What the broker is asked and told: one message type per request, each answered
//! from the [`crate::engine_core::EngineCore`] or from the shell's runtime state.

use std::sync::Arc;

use actix::prelude::*;

use crate::bus::remote::{DeadLetterReport, Verdict};
use crate::causation::{CausationTree, WorkflowSummary};
use crate::engine_core::{BrokerStats, FollowUp, PublishError};
use crate::events::{CorrelationId, Envelope, HaltReason, TriggeredBy, WorkflowStarted};

/// Publish one event. Answered with its sequence number, or why it was refused.
///
/// The envelope travels behind an `Arc` from the publisher on: it is immutable once
/// published, and fan-out to subscribers then copies a pointer, not the event.
#[derive(Message)]
#[rtype(result = "Result<u64, PublishError>")]
pub struct Publish(pub Arc<Envelope>);

impl From<Envelope> for Publish {
    fn from(env: Envelope) -> Self {
        Publish(Arc::new(env))
    }
}

/// Start a workflow (refused while trading is halted).
#[derive(Message)]
#[rtype(result = "Result<CorrelationId, PublishError>")]
pub struct StartWorkflow {
    pub started: WorkflowStarted,
    pub triggered_by: Option<TriggeredBy>,
    /// A chosen id (backtests derive one per day); a fresh random one if `None`.
    pub correlation_id: Option<CorrelationId>,
}

/// Lift a halt; answered true when one was lifted.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Resume {
    pub detail: String,
}

#[derive(Message)]
#[rtype(result = "FollowUp")]
pub struct QueryFollowUp(pub CorrelationId);

/// Halt trading by hand.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Halt {
    pub reason: HaltReason,
    pub detail: String,
}

/// Resolves once the workflow is terminal (at once if it already is); `None` if the
/// broker does not know it.
#[derive(Message)]
#[rtype(result = "Option<WorkflowSummary>")]
pub struct AwaitWorkflow(pub CorrelationId);

/// [`StartWorkflow`], then [`AwaitWorkflow`] on it, in one message: a backtest runs its
/// days one after another, and the second round trip per day showed in its profile.
#[derive(Message)]
#[rtype(result = "Result<(CorrelationId, Option<WorkflowSummary>), PublishError>")]
pub struct RunWorkflow(pub StartWorkflow);

#[derive(Message)]
#[rtype(result = "Option<CausationTree>")]
pub struct QueryTree(pub CorrelationId);

#[derive(Message)]
#[rtype(result = "Option<WorkflowSummary>")]
pub struct QueryWorkflow(pub CorrelationId);

#[derive(Message)]
#[rtype(result = "BrokerStats")]
pub struct QueryStats;

/// Every accepted event, for observers (tests, the CLI's progress output).
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Observed {
    pub seq: u64,
    pub env: Arc<Envelope>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Observe(pub Recipient<Observed>);

/// A function the broker calls with every accepted event, in sequence order, as it
/// dispatches it: an audit sink without a message per event (the backtest's recorder
/// sees every event of a run). It runs on the broker's turn, so it must be quick and
/// never block.
pub type EventTap = Box<dyn FnMut(u64, &Arc<Envelope>) + Send>;

#[derive(Message)]
#[rtype(result = "()")]
pub struct Tap(pub EventTap);

/// Resume (or fail, per `recovery.resume`) the unfinished workflows held at start;
/// answered with how many there were.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct ResumeUnfinished;

/// What a business actor in another process published (a worker's reaction), in
/// order: answered per event once every accepted one is dispatched (journaled first),
/// so that the worker acknowledges its event only when the reaction is on record.
#[derive(Message)]
#[rtype(result = "Vec<Verdict>")]
pub struct PublishRemote(pub Vec<Arc<Envelope>>);

/// Whether `consumer` has nothing (more) to do with `env`
/// ([`crate::engine_core::EngineCore::already_handled`]).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct AlreadyHandled {
    pub consumer: &'static str,
    pub env: Arc<Envelope>,
}

/// A worker gave up on an event after its last allowed delivery: a dead letter, as an
/// in-process actor's would be, and its workflow fails.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RemoteDeadLetter(pub DeadLetterReport);

/// Commits the events accepted this turn, then dispatches them.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct FlushJournal;

/// The writer's answer for the oldest batch it was handed.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Committed(pub Result<(), String>);
