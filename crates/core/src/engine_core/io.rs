//! What goes into the [`super::EngineCore`] and what comes out: inputs (things that
//! happened), the answer to the one who asked, and effects (things the shell must do).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::causation::Recorded;
use crate::causation::Refusal;
use crate::events::{
    CorrelationId, Envelope, EventId, EventKind, HaltReason, OutcomeStatus, ReconciliationStatus,
    TradingHalted, TriggeredBy, WorkflowStarted,
};
use crate::supervision::RestartDecision;
use crate::workflow::WorkflowStatus;

/// An accepted event: its sequence number, the event, and where it took its workflow.
pub type Accepted = (u64, Arc<Envelope>, Recorded);

/// A consumer has handled an event: recorded in the same transaction as the events it
/// published, so that a redelivered or replayed copy is skipped.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConsumerMark {
    pub consumer: String,
    pub event_type: String,
    pub correlation_id: CorrelationId,
    pub payload_hash: String,
    pub seq: u64,
}

/// One thing that happened, for the core to decide on.
pub enum Input {
    /// What the journal held at start: a halt in force, the workflows it shows
    /// unfinished (their events in order) and the consumer marks of open workflows.
    Restore {
        halt: Option<TradingHalted>,
        open: Vec<Vec<(u64, Envelope)>>,
        marks: Vec<ConsumerMark>,
    },
    /// An event to accept or refuse.
    Publish(Arc<Envelope>),
    /// Open a workflow (refused while trading is halted).
    Start {
        started: WorkflowStarted,
        triggered_by: Option<TriggeredBy>,
        /// A chosen id (backtests derive one per day); a fresh random one if `None`.
        correlation_id: Option<CorrelationId>,
    },
    /// These accepted events are on record (with a journal) or need none: dispatch them.
    Committed(Vec<Accepted>),
    /// Consumer `consumer` handled `env`.
    Consumed {
        consumer: &'static str,
        env: Arc<Envelope>,
    },
    /// An actor failed (its slot counted the failure and asked the restart policy).
    ActorFailed(ActorFailure),
    /// A worker in another process gave up on an event.
    RemoteDeadLetter(DeadLetterReport),
    /// The journal could not record a batch.
    JournalFailed { error: String, events: usize },
    /// Halt trading by hand.
    Halt { reason: HaltReason, detail: String },
    /// Lift a halt.
    Resume { detail: String },
    /// Resume (or fail, per `recovery.resume`) the unfinished workflows held at start.
    ResumeUnfinished,
    /// Time passed: fail the workflows that overran their timeout.
    Tick,
}

/// One failure of an actor, as its slot saw it.
pub struct ActorFailure {
    pub slot: usize,
    pub error: String,
    /// The event it failed on (when known) and how often it has failed on it.
    pub failed_on: Option<(Arc<Envelope>, u8)>,
    /// The event taken off its queue after its second failure.
    pub dead: Option<DeadDelivery>,
    pub decision: RestartDecision,
}

/// A delivery that failed twice: dead-lettered.
pub struct DeadDelivery {
    pub seq: u64,
    pub env: Arc<Envelope>,
    pub failures: u8,
}

/// The core's answer to whoever sent the input.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Nothing to say (the input was a notice).
    Noted,
    /// [`Input::Publish`]: the event's sequence number, or why it was refused.
    Published(Result<u64, PublishError>),
    /// [`Input::Start`]: the new workflow's id, or why it was refused.
    Started(Result<CorrelationId, PublishError>),
    /// [`Input::Resume`]: whether a halt was lifted.
    Resumed(bool),
    /// [`Input::ResumeUnfinished`]: how many unfinished workflows were held.
    Unfinished(usize),
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum PublishError {
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    #[error("trading is halted: {0}")]
    Halted(String),
    /// The same event again (a handling repeated after a crash or a timeout): dropped,
    /// as a message bus drops a resend with a known message id.
    #[error("event {0} was accepted already")]
    AlreadyAccepted(EventId),
}

/// One thing the shell must do, in the order given.
#[derive(Debug)]
pub enum Effect {
    /// Append this accepted event to the journal; dispatch comes with
    /// [`Input::Committed`].
    Journal(Accepted),
    /// Record that a consumer handled an event (with the next commit).
    Mark(ConsumerMark),
    /// Hand the event to the subscriber in `slot`. `mark`: the consumer reports back
    /// once it handled it.
    Deliver {
        slot: usize,
        seq: u64,
        env: Arc<Envelope>,
        mark: bool,
    },
    /// The event is dispatched (taps, observers and remote publishers waiting for it).
    Dispatched { seq: u64, env: Arc<Envelope> },
    /// An event of a closed workflow is dispatched: those waiting for it can hear.
    WorkflowClosed(CorrelationId),
    /// Start a fresh incarnation of the subscriber in `slot` after `delay`.
    Restart { slot: usize, delay: Duration },
    /// Close (true) or open (false) the trading gate the actors read.
    Gate { halted: bool },
    /// A workflow opened: actors read its root.
    RootOpened {
        correlation: CorrelationId,
        started: WorkflowStarted,
    },
    /// A workflow closed; a completed one's root is forgotten.
    RootClosed {
        correlation: CorrelationId,
        completed: bool,
    },
    /// Recovery decided on a failed workflow: its root is forgotten.
    RootForgotten(CorrelationId),
    /// For the counters.
    Audit(Audit),
}

/// What the counters count: the core says what happened, metrics keep the tally.
#[derive(Clone, Debug, PartialEq)]
pub enum Audit {
    Published(EventKind),
    Reconciled(ReconciliationStatus),
    WorkflowEnded {
        status: WorkflowStatus,
        at: DateTime<Utc>,
    },
    OrderSettled(OutcomeStatus),
    Restarted(&'static str),
    DeadLettered,
}

/// A worker in another process gave up on an event after its last allowed delivery
/// (sent over the bus; a dead letter, as an in-process actor's would be).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeadLetterReport {
    pub worker: String,
    pub role: String,
    pub event_id: EventId,
    pub correlation_id: CorrelationId,
    pub event_type: String,
    pub deliveries: u64,
    pub error: String,
}
