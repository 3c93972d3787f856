//! The worker: takes jobs off the bounded queue and runs up to `max_in_flight` of them at once,
//! so one slow call does not stall the rest, and writes each outcome to the log and metrics.
//!
//! On shutdown it stops taking jobs, logs the ones still queued as `dropped: shutdown`, lets the
//! calls in flight finish (their budget waits and backoffs end at once), then stops the log
//! file writer after everything is written.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::client::{Executor, Outcome};
use super::log::{unix_ms, ModerationLog, ModerationLogEntry};
use super::metrics::HelixMetrics;
use super::request::Job;

/// What a worker needs; cloned into every in-flight task.
#[derive(Debug, Clone)]
pub struct Shared {
    pub executor: Arc<Executor>,
    pub log: Arc<ModerationLog>,
    pub metrics: HelixMetrics,
}

/// A log entry for `job` with `outcome` after `attempts` calls.
pub fn entry(job: &Job, outcome: &Outcome, attempts: u32) -> ModerationLogEntry {
    ModerationLogEntry {
        at_ms: unix_ms(),
        channel: job.channel.clone(),
        action: job.kind.as_str().to_string(),
        user_id: job.user_id.clone(),
        message_id: job.message_id.clone(),
        duration_s: job.duration_s,
        reason: job.reason.clone(),
        rule: job.rule.clone(),
        outcome: outcome.text(),
        attempts,
        latency_ms: Some(job.since.elapsed().as_millis() as u64),
    }
}

/// Records a job that never reached Helix.
pub fn record_dropped(
    shared_log: &ModerationLog,
    metrics: &HelixMetrics,
    job: &Job,
    reason: &'static str,
) {
    metrics.dropped(reason);
    shared_log.record(entry(job, &Outcome::Dropped(reason.replace('_', " ")), 0));
}

async fn run_one(shared: Shared, job: Job) {
    let (outcome, attempts) = shared.executor.execute(&job).await;
    match &outcome {
        Outcome::Dropped(_) => shared.metrics.dropped("shutdown"),
        _ => shared.metrics.finished(job.kind.as_str(), outcome.label()),
    }
    shared.log.record(entry(&job, &outcome, attempts));
}

pub struct Worker {
    pub shared: Shared,
    pub rx: mpsc::Receiver<Job>,
    pub max_in_flight: usize,
    /// Longest wait for in-flight calls at shutdown.
    pub drain_timeout: Duration,
}

impl Worker {
    pub async fn run(
        mut self,
        shutdown: CancellationToken,
        writer: Option<(tokio::task::JoinHandle<()>, CancellationToken)>,
    ) {
        let mut in_flight = JoinSet::new();
        loop {
            let room = in_flight.len() < self.max_in_flight;
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                job = self.rx.recv(), if room => match job {
                    Some(job) => {
                        self.shared.metrics.queue_depth.dec();
                        in_flight.spawn(run_one(self.shared.clone(), job));
                    }
                    None => break,
                },
            }
        }
        self.drain_queue();
        self.finish(in_flight).await;
        if let Some((handle, stop)) = writer {
            stop.cancel();
            let _ = handle.await;
        }
    }

    fn drain_queue(&mut self) {
        self.rx.close();
        while let Ok(job) = self.rx.try_recv() {
            self.shared.metrics.queue_depth.dec();
            record_dropped(&self.shared.log, &self.shared.metrics, &job, "shutdown");
        }
    }

    async fn finish(&self, mut in_flight: JoinSet<()>) {
        let drained = tokio::time::timeout(self.drain_timeout, async {
            while in_flight.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                left = in_flight.len(),
                "helix calls still in flight at shutdown were abandoned"
            );
            in_flight.abort_all();
        }
    }
}
