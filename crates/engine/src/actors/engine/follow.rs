//! Following workflows as drivers wait for them: a workflow through recovery's
//! retries, and a reconciliation asked for now (the start-up check).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use super::super::broker::{
    AwaitWorkflow, Broker, FollowUp, Observe, Observed, Publish, QueryFollowUp,
};
use crate::causation::WorkflowSummary;
use crate::clock::Clock;
use crate::domain::Symbol;
use crate::events::{
    CorrelationId, Envelope, EventKind, Payload, ReconciliationCompleted, ReconciliationRequested,
};
use crate::workflow::WorkflowStatus;

/// Waits for `correlation` and, while it fails and recovery retries it, for each retry.
/// Returns every attempt's summary, the last one deciding. `patience`: how long to wait
/// for recovery's decision on a failure (its backoff and venue calls).
pub async fn await_outcome(
    broker: &Addr<Broker>,
    correlation: CorrelationId,
    patience: Duration,
) -> Result<Vec<WorkflowSummary>, MailboxError> {
    match broker.send(AwaitWorkflow(correlation)).await? {
        Some(first) => follow_retries(broker, first, patience).await,
        None => Ok(Vec::new()),
    }
}

/// From a workflow's end (`first`): while it failed and recovery retries it, waits for
/// each retry. Every attempt's summary, the last one deciding.
pub async fn follow_retries(
    broker: &Addr<Broker>,
    first: WorkflowSummary,
    patience: Duration,
) -> Result<Vec<WorkflowSummary>, MailboxError> {
    let mut attempts = vec![first];
    loop {
        let Some(last) = attempts.last() else {
            return Ok(attempts);
        };
        if last.status == WorkflowStatus::Completed {
            return Ok(attempts);
        }
        let mut current = last.correlation_id;
        let deadline = Instant::now() + patience;
        loop {
            match broker.send(QueryFollowUp(current)).await? {
                FollowUp::Successor(next) => {
                    current = next;
                    break;
                }
                FollowUp::Final => return Ok(attempts),
                FollowUp::Pending if Instant::now() > deadline => return Ok(attempts),
                FollowUp::Pending => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        match broker.send(AwaitWorkflow(current)).await? {
            Some(summary) => attempts.push(summary),
            None => return Ok(attempts),
        }
    }
}

/// Forwards the first event of one kind in one correlation, then stops.
struct Tap {
    correlation: CorrelationId,
    kind: EventKind,
    tx: Option<oneshot::Sender<Arc<Envelope>>>,
}

impl Actor for Tap {
    type Context = Context<Self>;
}

impl Handler<Observed> for Tap {
    type Result = ();

    fn handle(&mut self, msg: Observed, ctx: &mut Self::Context) {
        if msg.env.correlation_id == self.correlation && msg.env.kind() == self.kind {
            if let Some(tx) = self.tx.take() {
                let _ = tx.send(msg.env);
            }
            ctx.stop();
        }
    }
}

/// Asks reconciliation to compare the venue with `expected` (the journal's positions)
/// and waits for its report; returns the request's correlation with it.
pub async fn reconcile_now(
    broker: &Addr<Broker>,
    clock: &dyn Clock,
    reason: &str,
    expected: Option<std::collections::BTreeMap<Symbol, rust_decimal::Decimal>>,
    as_of: chrono::NaiveDate,
    wait: Duration,
) -> Result<(CorrelationId, ReconciliationCompleted), String> {
    let request = Envelope::root(
        ReconciliationRequested {
            reason: reason.into(),
            expected_positions: expected,
            as_of: Some(as_of),
        },
        "engine",
        clock,
        None,
    );
    let correlation = request.correlation_id;
    let (tx, rx) = oneshot::channel();
    let tap = Tap {
        correlation: request.correlation_id,
        kind: EventKind::ReconciliationCompleted,
        tx: Some(tx),
    }
    .start();
    let unavailable = |e: MailboxError| format!("broker unavailable: {e}");
    broker
        .send(Observe(tap.recipient()))
        .await
        .map_err(unavailable)?;
    broker
        .send(Publish(Arc::new(request)))
        .await
        .map_err(unavailable)?
        .map_err(|e| format!("reconciliation request refused: {e}"))?;
    match tokio::time::timeout(wait, rx).await {
        Ok(Ok(env)) => match &env.payload {
            Payload::ReconciliationCompleted(r) => Ok((correlation, r.clone())),
            _ => Err("reconciliation answered with something else".into()),
        },
        Ok(Err(_)) => Err("reconciliation stopped before answering".into()),
        Err(_) => Err(format!(
            "no reconciliation report within {}s",
            wait.as_secs()
        )),
    }
}
