//! Operating a running engine: following a workflow through its retries, the
//! reconciliation at start, and the kill switch (`alchemiser halt` / `resume`), which
//! reaches a running engine through request files in `engine.control_dir`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use super::broker::{
    AwaitWorkflow, Broker, FollowUp, Halt, Observe, Observed, Publish, QueryFollowUp, Resume,
};
use crate::causation::WorkflowSummary;
use crate::clock::Clock;
use crate::domain::Symbol;
use crate::events::{
    CorrelationId, Envelope, EventKind, HaltReason, Payload, ReconciliationCompleted,
    ReconciliationRequested,
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
    let mut attempts = Vec::new();
    let mut current = correlation;
    loop {
        let Some(summary) = broker.send(AwaitWorkflow(current)).await? else {
            return Ok(attempts);
        };
        let completed = summary.status == WorkflowStatus::Completed;
        attempts.push(summary);
        if completed {
            return Ok(attempts);
        }
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

/// The request files of the kill switch.
#[derive(Clone, Debug)]
pub struct ControlFiles {
    dir: PathBuf,
}

impl ControlFiles {
    const HALT: &'static str = "HALT";
    const RESUME: &'static str = "RESUME";

    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn write(&self, name: &str, text: &str) -> Result<PathBuf, String> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        let path = self.dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    }

    /// `alchemiser halt`: a later `resume` request is dropped (the newest wins).
    pub fn request_halt(&self, reason: &str) -> Result<PathBuf, String> {
        let _ = std::fs::remove_file(self.dir.join(Self::RESUME));
        self.write(Self::HALT, reason)
    }

    pub fn request_resume(&self, detail: &str) -> Result<PathBuf, String> {
        let _ = std::fs::remove_file(self.dir.join(Self::HALT));
        self.write(Self::RESUME, detail)
    }

    fn take(path: &Path) -> Option<String> {
        let text = std::fs::read_to_string(path).ok()?;
        std::fs::remove_file(path).ok()?;
        Some(text.trim().to_string())
    }

    /// Hands pending requests to the broker; true when one was applied.
    pub async fn apply(&self, broker: &Addr<Broker>) -> bool {
        let mut applied = false;
        if let Some(reason) = Self::take(&self.dir.join(Self::HALT)) {
            let detail = if reason.is_empty() {
                "alchemiser halt".to_string()
            } else {
                format!("alchemiser halt: {reason}")
            };
            tracing::warn!(%detail, "halt requested");
            applied |= broker
                .send(Halt {
                    reason: HaltReason::Manual,
                    detail,
                })
                .await
                .is_ok();
        }
        if let Some(detail) = Self::take(&self.dir.join(Self::RESUME)) {
            let detail = if detail.is_empty() {
                "alchemiser resume".to_string()
            } else {
                detail
            };
            tracing::warn!(%detail, "resume requested");
            applied |= broker.send(Resume { detail }).await.unwrap_or(false);
        }
        applied
    }

    /// Applies requests as they arrive, every `every`, for the engine's life.
    pub fn watch(self, broker: Addr<Broker>, every: Duration) {
        actix_rt::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                self.apply(&broker).await;
            }
        });
    }
}
