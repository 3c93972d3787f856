//! The worker: takes jobs off the bounded queue and runs up to `max_in_flight` of them at once,
//! so one slow call does not stall the rest, and writes each outcome to the log and metrics.
//!
//! Jobs wait in a [`FairQueue`]: one line per channel, served round-robin, so a nuke that
//! queues hundreds of timeouts in one channel does not delay a ban in another. The lines hold at
//! most `staged_capacity` jobs in total; past that the worker stops taking jobs off the bounded
//! channel, whose own bound then applies to `submit`.
//!
//! On shutdown it stops taking jobs, logs the ones still queued as `dropped: shutdown`, lets the
//! calls in flight finish (their budget waits and backoffs end at once), then stops the log
//! file writer after everything is written.

use std::collections::{HashMap, VecDeque};
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
    if matches!(outcome, Outcome::Ok) {
        let latency = job.since.elapsed().as_secs_f64();
        shared.metrics.moderation_latency.observe(latency);
    }
    shared.log.record(entry(&job, &outcome, attempts));
}

/// Queued jobs, one line per channel, served round-robin.
#[derive(Debug, Default)]
pub struct FairQueue {
    lines: HashMap<String, VecDeque<Job>>,
    turn: VecDeque<String>,
    len: usize,
}

impl FairQueue {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, job: Job) {
        let line = self.lines.entry(job.channel.clone()).or_default();
        if line.is_empty() {
            self.turn.push_back(job.channel.clone());
        }
        line.push_back(job);
        self.len += 1;
    }

    /// The next job, from the channel whose turn it is.
    pub fn pop(&mut self) -> Option<Job> {
        let channel = self.turn.pop_front()?;
        let line = self.lines.get_mut(&channel)?;
        let job = line.pop_front()?;
        if line.is_empty() {
            self.lines.remove(&channel);
        } else {
            self.turn.push_back(channel);
        }
        self.len -= 1;
        Some(job)
    }
}

pub struct Worker {
    pub shared: Shared,
    pub rx: mpsc::Receiver<Job>,
    /// Jobs taken off `rx` and waiting their channel's turn, at most.
    pub staged_capacity: usize,
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
        let mut staged = FairQueue::default();
        let mut closed = false;
        loop {
            while in_flight.len() < self.max_in_flight {
                let Some(job) = staged.pop() else { break };
                self.shared.metrics.queue_depth.dec();
                in_flight.spawn(run_one(self.shared.clone(), job));
            }
            if closed && staged.is_empty() && in_flight.is_empty() {
                break;
            }
            let take = !closed && staged.len() < self.staged_capacity;
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                job = self.rx.recv(), if take => match job {
                    Some(job) => {
                        staged.push(job);
                        while staged.len() < self.staged_capacity {
                            let Ok(job) = self.rx.try_recv() else { break };
                            staged.push(job);
                        }
                    }
                    None => closed = true,
                },
            }
        }
        while let Some(job) = staged.pop() {
            self.shared.metrics.queue_depth.dec();
            record_dropped(&self.shared.log, &self.shared.metrics, &job, "shutdown");
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
