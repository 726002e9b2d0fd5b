//! Sweeps over NATS JetStream: the driver (`sweep --nats URL`) puts each unfinished
//! variant on a work queue and collects results; `worker --roles backtest` processes,
//! anywhere that sees the same market data, take variants one at a time. A variant a
//! killed worker held is redelivered after the acknowledgement wait; a variant with a
//! result is never run again (workers look before they run; results are one per
//! variant, deduplicated by id); a driver that restarts finds the results already in.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, stream, AckKind};
use futures_util::StreamExt;

use super::sweep::{run_job, Computed, SweepPlan};
use crate::sweep::queue::{
    jobs_subject, result_subject, results_of, JOBS_CONSUMER, JOBS_STREAM, RESULTS_STREAM,
};
use crate::sweep::{VariantJob, VariantResult};

/// How long results stay deduplicated by id, and kept.
const RESULTS_KEPT: Duration = Duration::from_secs(7 * 24 * 3600);

/// [`make_queues`], tried again a few times: a driver and its workers may make them at
/// the same moment.
async fn queues(
    js: &jetstream::Context,
    ack_wait: Duration,
    max_deliver: i64,
) -> Result<(stream::Stream, jetstream::consumer::Consumer<pull::Config>), String> {
    let mut tries = 0;
    loop {
        match make_queues(js, ack_wait, max_deliver).await {
            Ok(made) => return Ok(made),
            Err(e) if tries < 5 => {
                tries += 1;
                tracing::info!(error = %e, "making the sweep queues again");
                tokio::time::sleep(Duration::from_millis(100 * tries)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The work queue, its shared consumer, and the results stream, made if missing.
async fn make_queues(
    js: &jetstream::Context,
    ack_wait: Duration,
    max_deliver: i64,
) -> Result<(stream::Stream, jetstream::consumer::Consumer<pull::Config>), String> {
    let jobs = js
        .get_or_create_stream(stream::Config {
            name: JOBS_STREAM.into(),
            subjects: vec!["sweeps.*.variants".into()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(600),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("stream {JOBS_STREAM}: {e}"))?;
    let consumer = jobs
        .get_or_create_consumer(
            JOBS_CONSUMER,
            pull::Config {
                durable_name: Some(JOBS_CONSUMER.into()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait,
                max_deliver,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("consumer {JOBS_CONSUMER}: {e}"))?;
    let results = js
        .get_or_create_stream(stream::Config {
            name: RESULTS_STREAM.into(),
            subjects: vec!["sweeps.*.results.*".into()],
            storage: stream::StorageType::File,
            duplicate_window: RESULTS_KEPT,
            max_age: RESULTS_KEPT,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("stream {RESULTS_STREAM}: {e}"))?;
    Ok((results, consumer))
}

/// The result already recorded for a variant, if any.
async fn recorded(results: &stream::Stream, sweep: &str, variant: &str) -> Option<VariantResult> {
    let m = results
        .get_last_raw_message_by_subject(&result_subject(sweep, variant))
        .await
        .ok()?;
    serde_json::from_slice(&m.payload).ok()
}

/// Runs the sweep's unfinished variants on the queue; returns when each has a result.
pub async fn drive(
    client: async_nats::Client,
    plan: &SweepPlan,
    jobs: &[VariantJob],
    ack_wait: Duration,
    max_deliver: i64,
    progress: &dyn Fn(usize, usize),
) -> Result<(), String> {
    let js = jetstream::new(client);
    let (results, _) = queues(&js, ack_wait, max_deliver).await?;
    let Some(sweep) = jobs.first().map(|j| j.sweep.clone()) else {
        return Ok(());
    };
    let mut waiting = 0;
    // Variants with a result in this run: finished before, or settled now.
    let mut settled: std::collections::HashSet<&str> = jobs
        .iter()
        .filter(|j| plan.finished(j).is_some())
        .map(|j| j.variant.id.as_str())
        .collect();
    for job in jobs {
        if settled.contains(job.variant.id.as_str()) {
            continue;
        }
        if let Some(done) = recorded(&results, &sweep, &job.variant.id).await {
            settle(plan, job, &done)?;
            settled.insert(&job.variant.id);
            continue;
        }
        let body = serde_json::to_vec(job).map_err(|e| e.to_string())?;
        let message = jetstream::message::PublishMessage::build()
            .payload(body.into())
            .message_id(format!("{sweep}-{}", job.variant.id));
        js.send_publish(jobs_subject(&sweep), message)
            .await
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        waiting += 1;
    }
    let total = jobs.len();
    progress(total - waiting, total);
    if waiting == 0 {
        return Ok(());
    }
    let mut feed = results
        .create_consumer(pull::OrderedConfig {
            filter_subject: results_of(&sweep),
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?
        .messages()
        .await
        .map_err(|e| e.to_string())?;
    while let Some(message) = feed.next().await {
        let message = message.map_err(|e| e.to_string())?;
        let Ok(result) = serde_json::from_slice::<VariantResult>(&message.payload) else {
            continue;
        };
        let Some(job) = jobs.iter().find(|j| j.variant.id == result.variant) else {
            continue;
        };
        if plan.finished(job).is_some() {
            continue;
        }
        settle(plan, job, &result)?;
        let done = jobs.iter().filter(|j| plan.finished(j).is_some()).count();
        progress(done, total);
        if done == total {
            return Ok(());
        }
    }
    Err("the results feed ended".into())
}

/// Records a worker's result in the variant's folder: its summary, or why it failed
/// (the sweep goes on without it).
fn settle(plan: &SweepPlan, job: &VariantJob, result: &VariantResult) -> Result<(), String> {
    let recorded = match &result.summary {
        Ok(summary) => plan.record(
            job,
            &Computed {
                summary: summary.clone(),
                split: result.split.clone(),
            },
        ),
        Err(e) => plan.record_failure(job, &format!("{e} (on worker {})", result.worker)),
    };
    recorded.map_err(|e| e.to_string())
}

/// `worker --roles backtest`: takes variants from the queue until stopped. Each is
/// acknowledged once its result is recorded; meanwhile the worker says it is still at
/// it, so only a dead worker's variant is redelivered.
pub async fn serve_backtests(
    client: async_nats::Client,
    worker: String,
    scratch: PathBuf,
    ack_wait: Duration,
    max_deliver: i64,
) -> Result<(), String> {
    let js = jetstream::new(client);
    let (results, consumer) = queues(&js, ack_wait, max_deliver).await?;
    tracing::info!(%worker, "worker serving sweeps");
    let mut feed = consumer.messages().await.map_err(|e| e.to_string())?;
    while let Some(message) = feed.next().await {
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "the sweep queue broke: taking it up again");
                tokio::time::sleep(Duration::from_millis(250)).await;
                feed = consumer.messages().await.map_err(|e| e.to_string())?;
                continue;
            }
        };
        let job: VariantJob = match serde_json::from_slice(&message.payload) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(error = %e, "unreadable variant: dropped");
                let _ = message.ack_with(AckKind::Term).await;
                continue;
            }
        };
        // Finished elsewhere (a redelivery after a slow acknowledgement): never twice.
        if recorded(&results, &job.sweep, &job.variant.id)
            .await
            .is_some()
        {
            let _ = message.ack().await;
            continue;
        }
        crate::fault::crash_point("sweep.variant");
        let computed = run_holding(&message, &job, &scratch, ack_wait).await;
        let result = VariantResult {
            sweep: job.sweep.clone(),
            variant: job.variant.id.clone(),
            worker: worker.clone(),
            split: computed.as_ref().ok().and_then(|c| c.split.clone()),
            summary: computed.map(|c| c.summary),
        };
        let body = serde_json::to_vec(&result).map_err(|e| e.to_string())?;
        let publish = jetstream::message::PublishMessage::build()
            .payload(body.into())
            .message_id(format!("{}-{}", job.sweep, job.variant.id));
        let sent = async {
            js.send_publish(result_subject(&job.sweep, &job.variant.id), publish)
                .await
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())
        };
        match sent.await {
            Ok(_) => {
                let _ = message.ack().await;
                tracing::info!(sweep = %job.sweep, variant = %job.variant.id, "variant done");
            }
            Err(e) => {
                tracing::warn!(error = %e, "result not recorded: the variant goes back to the queue");
                let _ = message
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                    .await;
            }
        }
    }
    Err("the sweep queue ended".into())
}

/// Runs the variant on a blocking thread, telling the server every third of its
/// acknowledgement wait that the work goes on (a long backtest is not a dead worker's).
async fn run_holding(
    message: &jetstream::Message,
    job: &VariantJob,
    scratch: &Path,
    ack_wait: Duration,
) -> Result<Computed, String> {
    let folder = scratch.join(&job.sweep).join(&job.variant.id);
    let running = tokio::task::spawn_blocking({
        let job = job.clone();
        move || run_job(&job, &folder).map_err(|e| e.to_string())
    });
    tokio::pin!(running);
    loop {
        tokio::select! {
            done = &mut running => break done.map_err(|e| e.to_string()).and_then(|r| r),
            _ = tokio::time::sleep(ack_wait / 3) => {
                let _ = message.ack_with(AckKind::Progress).await;
            }
        }
    }
}
