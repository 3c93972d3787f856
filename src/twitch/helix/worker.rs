//! The worker: takes jobs off the bounded queue and runs up to `max_in_flight` of them at once,
//! so one slow call does not stall the rest, and writes each outcome to the log and metrics.
//!
//! Jobs wait in a [`FairQueue`]: one line per channel, served round-robin, so a nuke that
//! queues hundreds of timeouts in one channel does not delay a ban in another. The lines hold at
//! most `staged_capacity` jobs in total; past that the worker stops taking jobs off the bounded
//! channel, whose own bound then applies to `submit`.
//!
//! Within a channel's line the points go where they count most: bans, then timeouts, then
//! deletes, then unbans (never ahead of an action already waiting for the same user); a second
//! timeout or ban of a user merges into one, the harshest (the other is logged as
//! `dropped: merged`); and an action still waiting `helix.max_action_age_ms` after its chat
//! message arrived is dropped (`dropped: too old`) rather than sent late.
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
use super::request::{Job, Kind};

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

/// The order of kinds in a channel's line: bans, timeouts, deletes, then the rest.
fn rank(kind: Kind) -> u8 {
    match kind {
        Kind::Ban => 3,
        Kind::Timeout => 2,
        Kind::Delete => 1,
        Kind::Unban => 0,
    }
}

fn rank_of(job: &Job) -> u8 {
    rank(job.kind)
}

/// Whether `a` and `b` are both a timeout or ban of the same user.
fn same_sanction(a: &Job, b: &Job) -> bool {
    let sanction = |j: &Job| matches!(j.kind, Kind::Timeout | Kind::Ban);
    sanction(a) && sanction(b) && a.user_id.is_some() && a.user_id == b.user_id
}

/// How harsh a sanction is: a ban, else the longer timeout.
fn severity(job: &Job) -> (u8, u64) {
    (rank(job.kind), job.duration_s.unwrap_or(0))
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

    /// Queues `job` in its channel's line: bans before timeouts before deletes before the
    /// rest (unbans), in order within each; but never before a job already waiting for the same
    /// user (an unban of a nuke stays after the timeout it lifts, a new ban after that unban).
    /// A timeout or ban of a user who already has one waiting is merged: the harsher stays
    /// (a ban, else the longer timeout), and the other comes back to be recorded as dropped.
    pub fn push(&mut self, job: Job) -> Option<Job> {
        let line = self.lines.entry(job.channel.clone()).or_default();
        if line.is_empty() {
            self.turn.push_back(job.channel.clone());
        }
        let mut merged = None;
        // Only a sanction after the user's last pending unban can merge (one before it is
        // lifted by that unban).
        let after_unban = line
            .iter()
            .rposition(|j| j.kind == Kind::Unban && j.user_id.is_some() && j.user_id == job.user_id)
            .map_or(0, |i| i + 1);
        let found = line
            .iter()
            .skip(after_unban)
            .position(|j| same_sanction(j, &job))
            .map(|i| i + after_unban);
        if let Some(at) = found {
            if severity(&job) <= severity(&line[at]) {
                return Some(job);
            }
            merged = line.remove(at);
            self.len -= 1;
        }
        let rank = rank(job.kind);
        let after_rank = line
            .iter()
            .rposition(|j| rank_of(j) >= rank)
            .map_or(0, |i| i + 1);
        let after_user = job
            .user_id
            .as_ref()
            .and_then(|u| line.iter().rposition(|j| j.user_id.as_ref() == Some(u)))
            .map_or(0, |i| i + 1);
        line.insert(after_rank.max(after_user), job);
        self.len += 1;
        merged
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
    /// Actions older than this (since their chat message) are dropped, not sent late.
    pub max_age: Duration,
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
                if job.since.elapsed() > self.max_age {
                    record_dropped(&self.shared.log, &self.shared.metrics, &job, "too_old");
                    continue;
                }
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
                        self.stage(&mut staged, job);
                        while staged.len() < self.staged_capacity {
                            let Ok(job) = self.rx.try_recv() else { break };
                            self.stage(&mut staged, job);
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

    /// Stages `job`; a sanction merged into a harsher one is recorded as dropped.
    fn stage(&self, staged: &mut FairQueue, job: Job) {
        if let Some(merged) = staged.push(job) {
            self.shared.metrics.queue_depth.dec();
            record_dropped(&self.shared.log, &self.shared.metrics, &merged, "merged");
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn job(kind: Kind, user: Option<&str>, duration_s: Option<u64>, tag: &str) -> Job {
        Job {
            kind,
            channel: "chan".into(),
            broadcaster_id: "1".into(),
            moderator_id: "2".into(),
            user_id: user.map(str::to_string),
            message_id: Some(tag.into()),
            duration_s,
            reason: None,
            rule: tag.into(),
            since: Instant::now(),
        }
    }

    fn order(queue: &mut FairQueue) -> Vec<String> {
        std::iter::from_fn(|| queue.pop()).map(|j| j.rule).collect()
    }

    #[test]
    fn bans_go_first_then_timeouts_then_deletes_then_unbans() {
        let mut q = FairQueue::default();
        q.push(job(Kind::Delete, None, None, "delete 1"));
        q.push(job(Kind::Timeout, Some("u1"), Some(60), "timeout u1"));
        q.push(job(Kind::Unban, Some("u2"), None, "unban u2"));
        q.push(job(Kind::Ban, Some("u3"), None, "ban u3"));
        q.push(job(Kind::Delete, None, None, "delete 2"));
        assert_eq!(
            order(&mut q),
            ["ban u3", "timeout u1", "delete 1", "delete 2", "unban u2"]
        );
        assert!(q.is_empty());
    }

    #[test]
    fn a_users_sanctions_merge_into_the_harshest() {
        let mut q = FairQueue::default();
        assert!(q
            .push(job(Kind::Timeout, Some("u"), Some(60), "60 s"))
            .is_none());
        let merged = q.push(job(Kind::Timeout, Some("u"), Some(600), "600 s"));
        assert_eq!(merged.map(|j| j.rule).as_deref(), Some("60 s"));
        let merged = q.push(job(Kind::Timeout, Some("u"), Some(10), "10 s"));
        assert_eq!(
            merged.map(|j| j.rule).as_deref(),
            Some("10 s"),
            "a milder one is dropped"
        );
        let merged = q.push(job(Kind::Ban, Some("u"), None, "ban"));
        assert_eq!(merged.map(|j| j.rule).as_deref(), Some("600 s"));
        q.push(job(Kind::Timeout, Some("other"), Some(5), "other"));
        assert_eq!(q.len(), 2);
        assert_eq!(order(&mut q), ["ban", "other"]);
    }

    #[test]
    fn an_action_never_overtakes_one_for_the_same_user() {
        let mut q = FairQueue::default();
        // A nuke's timeout, then `!nukeundo`'s unban, then a new offence's timeout.
        q.push(job(Kind::Timeout, Some("u"), Some(60), "nuke"));
        q.push(job(Kind::Unban, Some("u"), None, "undo"));
        q.push(job(Kind::Timeout, Some("u"), Some(30), "new offence"));
        q.push(job(Kind::Ban, Some("v"), None, "ban v"));
        // Nothing merges across the unban: the new offence's timeout stays after it.
        assert_eq!(order(&mut q), ["ban v", "nuke", "undo", "new offence"]);
    }
}
