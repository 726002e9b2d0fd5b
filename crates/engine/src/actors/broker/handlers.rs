//! The broker's messages, each turned into an input of the core or answered from it.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::messages::*;
use super::{Broker, PublishAll};
use crate::bus::remote::Verdict;
use crate::causation::WorkflowSummary;
use crate::engine_core::{Answer, Input, PublishError};
use crate::events::{CorrelationId, Envelope};

use super::super::supervision::{ActorFailed, Consumed};

impl Broker {
    fn publish(
        &mut self,
        env: Arc<Envelope>,
        ctx: &mut Context<Self>,
    ) -> Result<u64, PublishError> {
        match self.process(Input::Publish(env), ctx) {
            Answer::Published(result) => result,
            other => unreachable!("a publish is answered with its seq, not {other:?}"),
        }
    }

    fn start_workflow(
        &mut self,
        msg: StartWorkflow,
        ctx: &mut Context<Self>,
    ) -> Result<CorrelationId, PublishError> {
        let input = Input::Start {
            started: msg.started,
            triggered_by: msg.triggered_by,
            correlation_id: msg.correlation_id,
        };
        match self.process(input, ctx) {
            Answer::Started(result) => result,
            other => unreachable!("a start is answered with its workflow, not {other:?}"),
        }
    }

    /// Resolves once the workflow is terminal and committed (at once if it is).
    fn await_workflow(
        &mut self,
        correlation: CorrelationId,
    ) -> ResponseFuture<Option<WorkflowSummary>> {
        let summary = self.core.workflow(&correlation, Instant::now());
        let committing = self.commit.holds(&correlation);
        match summary {
            Some(s) if s.stage.is_terminal() && !committing => Box::pin(async move { Some(s) }),
            Some(_) => {
                let (tx, rx) = oneshot::channel();
                self.waiters.entry(correlation).or_default().push(tx);
                Box::pin(async move { rx.await.ok() })
            }
            None => Box::pin(async { None }),
        }
    }
}

impl Handler<Consumed> for Broker {
    type Result = ();

    fn handle(&mut self, msg: Consumed, ctx: &mut Self::Context) {
        let input = Input::Consumed {
            consumer: msg.consumer,
            env: msg.env,
        };
        self.process(input, ctx);
    }
}

impl Handler<FlushJournal> for Broker {
    type Result = ();

    fn handle(&mut self, _msg: FlushJournal, ctx: &mut Self::Context) {
        self.flush_journal(ctx);
    }
}

impl Handler<Committed> for Broker {
    type Result = ();

    fn handle(&mut self, msg: Committed, ctx: &mut Self::Context) {
        let flushed = self.commit.committed(msg.0);
        self.on_flushed(flushed, ctx);
    }
}

impl Handler<Publish> for Broker {
    type Result = Result<u64, PublishError>;

    fn handle(&mut self, msg: Publish, ctx: &mut Self::Context) -> Self::Result {
        self.publish(msg.0, ctx)
    }
}

impl Handler<PublishAll> for Broker {
    type Result = ();

    fn handle(&mut self, msg: PublishAll, ctx: &mut Self::Context) {
        // A refused event is answered by the core (a rejection notice); the rest of the
        // reaction still goes on, as it did one message per event.
        for env in msg.0 {
            let _ = self.publish(env, ctx);
        }
    }
}

impl Handler<PublishRemote> for Broker {
    type Result = ResponseFuture<Vec<Verdict>>;

    fn handle(&mut self, msg: PublishRemote, ctx: &mut Self::Context) -> Self::Result {
        let mut last_accepted = 0;
        let verdicts: Vec<Verdict> = msg
            .0
            .into_iter()
            .map(|env| match self.publish(env, ctx) {
                Ok(seq) => {
                    last_accepted = seq;
                    Verdict::Accepted { seq }
                }
                Err(PublishError::AlreadyAccepted(_)) => Verdict::Duplicate,
                Err(PublishError::Refused(r)) => Verdict::Refused {
                    reason: r.to_string(),
                },
                Err(PublishError::Halted(r)) => Verdict::Refused { reason: r },
            })
            .collect();
        let (tx, rx) = oneshot::channel();
        if last_accepted <= self.core.dispatched_through() {
            let _ = tx.send(());
        } else {
            self.dispatch_waiters.push((last_accepted, tx));
        }
        Box::pin(async move {
            match rx.await {
                Ok(()) => verdicts,
                // The broker stopped before committing: nothing is settled.
                Err(_) => verdicts
                    .into_iter()
                    .map(|v| match v {
                        Verdict::Accepted { .. } => Verdict::Unavailable {
                            reason: "the broker stopped before journaling it".into(),
                        },
                        other => other,
                    })
                    .collect(),
            }
        })
    }
}

impl Handler<AlreadyHandled> for Broker {
    type Result = bool;

    fn handle(&mut self, msg: AlreadyHandled, _ctx: &mut Self::Context) -> bool {
        self.core.already_handled(msg.consumer, &msg.env)
    }
}

impl Handler<RemoteDeadLetter> for Broker {
    type Result = ();

    fn handle(&mut self, msg: RemoteDeadLetter, ctx: &mut Self::Context) {
        self.process(Input::RemoteDeadLetter(msg.0), ctx);
    }
}

impl Handler<StartWorkflow> for Broker {
    type Result = Result<CorrelationId, PublishError>;

    fn handle(&mut self, msg: StartWorkflow, ctx: &mut Self::Context) -> Self::Result {
        self.start_workflow(msg, ctx)
    }
}

impl Handler<ResumeUnfinished> for Broker {
    type Result = usize;

    fn handle(&mut self, _msg: ResumeUnfinished, ctx: &mut Self::Context) -> usize {
        match self.process(Input::ResumeUnfinished, ctx) {
            Answer::Unfinished(n) => n,
            other => unreachable!("resuming is answered with a count, not {other:?}"),
        }
    }
}

impl Handler<ActorFailed> for Broker {
    type Result = ();

    fn handle(&mut self, msg: ActorFailed, ctx: &mut Self::Context) {
        self.on_failure(msg.slot, msg.incarnation, msg.seq, msg.error, ctx);
    }
}

impl Handler<Resume> for Broker {
    type Result = bool;

    /// True when a halt was lifted.
    fn handle(&mut self, msg: Resume, ctx: &mut Self::Context) -> bool {
        let input = Input::Resume { detail: msg.detail };
        matches!(self.process(input, ctx), Answer::Resumed(true))
    }
}

impl Handler<QueryFollowUp> for Broker {
    type Result = MessageResult<QueryFollowUp>;

    fn handle(&mut self, msg: QueryFollowUp, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.core.follow_up(&msg.0))
    }
}

impl Handler<Halt> for Broker {
    type Result = ();

    fn handle(&mut self, msg: Halt, ctx: &mut Self::Context) {
        let input = Input::Halt {
            reason: msg.reason,
            detail: msg.detail,
        };
        self.process(input, ctx);
    }
}

impl Handler<RunWorkflow> for Broker {
    type Result = ResponseFuture<Result<(CorrelationId, Option<WorkflowSummary>), PublishError>>;

    fn handle(&mut self, msg: RunWorkflow, ctx: &mut Self::Context) -> Self::Result {
        match self.start_workflow(msg.0, ctx) {
            Ok(id) => {
                let ended = self.await_workflow(id);
                Box::pin(async move { Ok((id, ended.await)) })
            }
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}

impl Handler<AwaitWorkflow> for Broker {
    type Result = ResponseFuture<Option<WorkflowSummary>>;

    fn handle(&mut self, msg: AwaitWorkflow, _ctx: &mut Self::Context) -> Self::Result {
        self.await_workflow(msg.0)
    }
}

impl Handler<QueryTree> for Broker {
    type Result = MessageResult<QueryTree>;

    fn handle(&mut self, msg: QueryTree, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.core.tree(&msg.0))
    }
}

impl Handler<QueryWorkflow> for Broker {
    type Result = MessageResult<QueryWorkflow>;

    fn handle(&mut self, msg: QueryWorkflow, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.core.workflow(&msg.0, Instant::now()))
    }
}

impl Handler<QueryStats> for Broker {
    type Result = MessageResult<QueryStats>;

    fn handle(&mut self, _msg: QueryStats, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.stats())
    }
}

impl Handler<Observe> for Broker {
    type Result = ();

    fn handle(&mut self, msg: Observe, _ctx: &mut Self::Context) {
        self.observers.push(msg.0);
    }
}

impl Handler<Tap> for Broker {
    type Result = ();

    fn handle(&mut self, msg: Tap, _ctx: &mut Self::Context) {
        self.taps.push(msg.0);
    }
}
