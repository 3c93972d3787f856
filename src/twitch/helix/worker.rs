//! The worker: takes jobs off the bounded queue and runs up to `max_in_flight` of them at once,
//! so one slow call does not stall the rest, and writes each outcome to the log and metrics.
//!
//! Jobs wait in a [`FairQueue`]: one line per channel, served round-robin, so a nuke that
//! queues hundreds of timeouts in one channel does not delay a ban in another. The lines hold at
//! most `staged_capacity` jobs in total; past that the worker stops taking jobs off the bounded
//! channel, whose own bound then applies to `submit`.
//!
//! A job leaves its line only when a budget point is there for it (reserved, then spent by
//! its first call), so calls never queue on the budget in flight and the order below is the
//! order the points are spent in. Within a channel's line the points go where they count most: chat-mode changes (the raid
//! defence's Shield Mode and chat settings: one call for the whole channel), bans, then
//! timeouts, then deletes, then what another channel's ban caused here (cross-channel
//! memory), then unbans (never ahead of an action already waiting for the same user); a second
//! timeout or ban of a user merges into one, the harshest (the other is logged as
//! `dropped: merged`); and an action still waiting `helix.max_action_age_ms` after its chat
//! message arrived is dropped (`dropped: too old`) rather than sent late (chat-mode changes
//! never are).
//!
//! Every second it plans: a channel whose line needs longer than
//! [`feedback::REPORT_AFTER`](super::feedback::REPORT_AFTER) to go out at the token's rate
//! (round-robin: each other line sends up to as many calls before this one's last) is told so,
//! and a chat-mode change Helix refused is reported to its channel too
//! ([`ChannelFeedback`]): the raid defence escalates or skips the step instead of the channel
//! queueing on.
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
use super::feedback::{ChannelFeedback, CHECK_EVERY, REPORT_AFTER};
use super::log::{unix_ms, ModerationLog, ModerationLogEntry};
use super::metrics::HelixMetrics;
use super::request::{Job, Kind};

/// What a worker needs; cloned into every in-flight task.
#[derive(Debug, Clone)]
pub struct Shared {
    pub executor: Arc<Executor>,
    pub log: Arc<ModerationLog>,
    pub metrics: HelixMetrics,
    /// Where backlogs and refused chat-mode changes are reported (none: nowhere).
    pub feedback: Option<Arc<dyn ChannelFeedback>>,
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

async fn run_one(shared: Shared, job: Job, prepaid: bool) {
    let (outcome, attempts) = shared.executor.execute(&job, prepaid).await;
    match &outcome {
        Outcome::Dropped(_) => shared.metrics.dropped("shutdown"),
        _ => shared.metrics.finished(job.kind.as_str(), outcome.label()),
    }
    if matches!(outcome, Outcome::Ok) {
        let latency = job.since.elapsed().as_secs_f64();
        shared.metrics.moderation_latency.observe(latency);
    }
    // Only Helix's definitive no: a call that may have happened keeps its step engaged (so
    // its revert still runs).
    if let (Some(change), Outcome::Refused(why), Some(feedback)) =
        (job.change, &outcome, &shared.feedback)
    {
        feedback.chat_mode_failed(&job.channel, change, why);
    }
    shared.log.record(entry(&job, &outcome, attempts));
}

/// The order of kinds in a channel's line: chat-mode changes (one call stops a whole raid),
/// bans, timeouts, deletes, then the rest.
fn rank(kind: Kind) -> u8 {
    match kind {
        Kind::ShieldMode | Kind::ChatSettings => 5,
        Kind::Ban => 4,
        Kind::Timeout => 3,
        Kind::Delete => 2,
        Kind::Unban => 0,
    }
}

/// A job's place in its line: its kind's, except that a sanction another channel's ban
/// caused (cross-channel memory: pre-emptive, nothing of it is in this chat yet) goes after
/// this channel's own deletes, so a raid elsewhere never spends the points this chat needs.
fn rank_of(job: &Job) -> u8 {
    if job.rule == crate::engine::defence::CROSS_RULE && job.kind != Kind::Unban {
        return 1;
    }
    rank(job.kind)
}

/// How harsh a sanction is: a ban, else the longer timeout.
fn severity(job: &Job) -> (u8, u64) {
    (rank(job.kind), job.duration_s.unwrap_or(0))
}

/// A line is behind because of its own traffic (a raid there), not only because many calm
/// channels each wait a little: it holds at least [`MIN_OWN_BACKLOG`] calls and a quarter of
/// everything waiting. Only such a channel is told (else a little spam in many channels would
/// engage every channel's defence).
fn is_own_backlog(waiting: usize, total: usize) -> bool {
    waiting >= MIN_OWN_BACKLOG && waiting.saturating_mul(4) >= total
}

/// Fewest waiting calls of a line reported as behind.
const MIN_OWN_BACKLOG: usize = 10;

/// The calls in flight, and which of them are a channel's chat-mode change (so the channel is
/// free again when the task ends, however it ends: a panicked task too).
#[derive(Default)]
struct InFlight {
    tasks: JoinSet<()>,
    modes: HashMap<tokio::task::Id, String>,
}

impl InFlight {
    /// Runs `job` (`prepaid`: with its first point reserved).
    fn spawn(&mut self, shared: Shared, job: Job, prepaid: bool) {
        let channel = job.kind.is_chat_mode().then(|| job.channel.clone());
        let handle = self.tasks.spawn(run_one(shared, job, prepaid));
        if let Some(channel) = channel {
            self.modes.insert(handle.id(), channel);
        }
    }

    fn len(&self) -> usize {
        self.tasks.len()
    }

    fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Waits for a task to end; the channel whose chat-mode call it was, if it was one.
    async fn next(&mut self) -> Option<Option<String>> {
        let id = match self.tasks.join_next_with_id().await? {
            Ok((id, ())) => id,
            Err(e) => {
                tracing::error!(error = %e, "a helix call's task ended abnormally");
                e.id()
            }
        };
        Some(self.modes.remove(&id))
    }
}

/// Chat-mode calls: at most one in flight per channel, the others held in order.
#[derive(Debug, Default)]
struct ModeCalls {
    busy: std::collections::HashSet<String>,
    held: HashMap<String, VecDeque<Job>>,
}

impl ModeCalls {
    /// Whether a call for `channel` may start now (it then counts as in flight).
    fn start(&mut self, channel: &str) -> bool {
        self.busy.insert(channel.to_string())
    }

    fn hold(&mut self, job: Job) {
        self.held
            .entry(job.channel.clone())
            .or_default()
            .push_back(job);
    }

    /// The call for `channel` finished: the next one held for it, which is then in flight.
    fn finished(&mut self, channel: &str) -> Option<Job> {
        let next = self.held.get_mut(channel).and_then(VecDeque::pop_front);
        if self.held.get(channel).is_some_and(VecDeque::is_empty) {
            self.held.remove(channel);
        }
        if next.is_none() {
            self.busy.remove(channel);
        }
        next
    }

    fn drain(&mut self) -> Vec<Job> {
        self.held.drain().flat_map(|(_, jobs)| jobs).collect()
    }
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
    /// user (an unban of a nuke stays after the timeout it lifts). One action per offender: a
    /// timeout or ban of a user who already has one waiting merges into the harsher (a ban,
    /// else the longer timeout); a timeout or ban takes the place of the user's waiting deletes
    /// (Twitch removes their messages with it), and a delete of a user with a timeout or ban
    /// waiting is not needed. Nothing merges across a waiting unban of the user. What is not
    /// sent comes back with why (`merged`, `superseded`), to be recorded as dropped.
    pub fn push(&mut self, job: Job) -> Vec<(Job, &'static str)> {
        let line = self.lines.entry(job.channel.clone()).or_default();
        if line.is_empty() {
            self.turn.push_back(job.channel.clone());
        }
        let mut dropped = Vec::new();
        let user = job.user_id.clone();
        let of_user = |j: &Job| user.is_some() && j.user_id == user;
        // Only what waits after the user's last pending unban can merge (what is before it is
        // lifted by that unban).
        let after_unban = line
            .iter()
            .rposition(|j| j.kind == Kind::Unban && of_user(j))
            .map_or(0, |i| i + 1);
        let sanction = |j: &Job| matches!(j.kind, Kind::Timeout | Kind::Ban);
        if job.kind == Kind::Delete
            && line
                .iter()
                .skip(after_unban)
                .any(|j| sanction(j) && of_user(j))
        {
            dropped.push((job, "superseded"));
            return dropped;
        }
        if sanction(&job) {
            let found = line
                .iter()
                .skip(after_unban)
                .position(|j| sanction(j) && of_user(j))
                .map(|i| i + after_unban);
            if let Some(at) = found {
                if severity(&job) <= severity(&line[at]) {
                    dropped.push((job, "merged"));
                    return dropped;
                }
                if let Some(milder) = line.remove(at) {
                    dropped.push((milder, "merged"));
                    self.len -= 1;
                }
            }
            let mut i = after_unban;
            while i < line.len() {
                if line[i].kind == Kind::Delete && of_user(&line[i]) {
                    if let Some(delete) = line.remove(i) {
                        dropped.push((delete, "superseded"));
                        self.len -= 1;
                    }
                } else {
                    i += 1;
                }
            }
        }
        let rank = rank_of(&job);
        let after_rank = line
            .iter()
            .rposition(|j| rank_of(j) >= rank)
            .map_or(0, |i| i + 1);
        let after_user = line.iter().rposition(of_user).map_or(0, |i| i + 1);
        line.insert(after_rank.max(after_user), job);
        self.len += 1;
        dropped
    }

    /// How long each channel's line needs to go out with `available` points in the bucket
    /// now and `per_second` more each second, and how many calls wait in it. Round-robin:
    /// before a line's last call goes, every other line sends up to as many of its own.
    pub fn drain_times(&self, per_second: f64, available: u64) -> Vec<(String, Duration, usize)> {
        let mut lengths: Vec<usize> = self.lines.values().map(VecDeque::len).collect();
        lengths.sort_unstable();
        // ahead[i]: the calls of the lines shorter than lengths[i], in full.
        let mut ahead = Vec::with_capacity(lengths.len());
        let mut sum = 0usize;
        for n in &lengths {
            ahead.push(sum);
            sum += n;
        }
        let rate = per_second.max(0.001);
        self.lines
            .iter()
            .map(|(channel, line)| {
                let n = line.len();
                let shorter = lengths.partition_point(|l| *l < n);
                let calls =
                    ahead.get(shorter).copied().unwrap_or(sum) + (lengths.len() - shorter) * n;
                let beyond = (calls as u64).saturating_sub(available);
                let drain = Duration::from_secs_f64(beyond as f64 / rate);
                (channel.clone(), drain, n)
            })
            .collect()
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
        let mut in_flight = InFlight::default();
        let mut staged = FairQueue::default();
        let mut modes = ModeCalls::default();
        let mut closed = false;
        let mut check = tokio::time::interval(CHECK_EVERY);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // A job starts only with its first point in hand: the lines' order (chat modes,
            // bans, timeouts, deletes) decides who spends each point, not which call happened
            // to be waiting for one.
            let mut next_point = None;
            while in_flight.len() < self.max_in_flight && !staged.is_empty() {
                let executor = &self.shared.executor;
                if let Err(at) = executor.reserve() {
                    next_point = Some(at);
                    break;
                }
                let Some(job) = staged.pop() else {
                    executor.refund();
                    break;
                };
                self.shared.metrics.queue_depth.dec();
                // A chat-mode change answers no one message: it is never too old (a revert
                // dropped would leave the mode on).
                if !job.kind.is_chat_mode() && job.since.elapsed() > self.max_age {
                    executor.refund();
                    record_dropped(&self.shared.log, &self.shared.metrics, &job, "too_old");
                    continue;
                }
                if job.kind.is_chat_mode() && !modes.start(&job.channel) {
                    // One chat-mode call per channel at a time, in order: an "off" must not
                    // overtake the "on" it follows (a retried call could otherwise land last).
                    executor.refund();
                    modes.hold(job);
                    continue;
                }
                in_flight.spawn(self.shared.clone(), job, true);
            }
            let point_at = next_point.unwrap_or_else(std::time::Instant::now);
            if closed && staged.is_empty() && in_flight.is_empty() {
                break;
            }
            let take = !closed && staged.len() < self.staged_capacity;
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                    if let Some(channel) = done {
                        if let Some(next) = modes.finished(&channel) {
                            in_flight.spawn(self.shared.clone(), next, false);
                        }
                    }
                }
                _ = check.tick() => self.report_backlogs(&staged),
                _ = tokio::time::sleep_until(point_at.into()), if next_point.is_some() => {}
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
        for job in modes.drain() {
            record_dropped(&self.shared.log, &self.shared.metrics, &job, "shutdown");
        }
        self.drain_queue();
        self.finish(in_flight).await;
        if let Some((handle, stop)) = writer {
            stop.cancel();
            let _ = handle.await;
        }
    }

    /// Tells every channel whose line is behind the budget.
    fn report_backlogs(&self, staged: &FairQueue) {
        let executor = &self.shared.executor;
        let drains = staged.drain_times(executor.per_second(), executor.available());
        let longest = drains.iter().map(|(_, d, _)| *d).max().unwrap_or_default();
        let longest_ms = i64::try_from(longest.as_millis()).unwrap_or(i64::MAX);
        self.shared.metrics.backlog_max_ms.set(longest_ms);
        let Some(feedback) = &self.shared.feedback else {
            return;
        };
        let total = staged.len();
        for (channel, drain, waiting) in drains {
            if drain > REPORT_AFTER && is_own_backlog(waiting, total) {
                self.shared.metrics.backlog_reports.inc();
                feedback.backlog(&channel, drain, waiting);
            }
        }
    }

    /// Stages `job`; what it makes unneeded (merged, superseded) is recorded as dropped.
    fn stage(&self, staged: &mut FairQueue, job: Job) {
        for (unneeded, why) in staged.push(job) {
            self.shared.metrics.queue_depth.dec();
            record_dropped(&self.shared.log, &self.shared.metrics, &unneeded, why);
        }
    }

    fn drain_queue(&mut self) {
        self.rx.close();
        while let Ok(job) = self.rx.try_recv() {
            self.shared.metrics.queue_depth.dec();
            record_dropped(&self.shared.log, &self.shared.metrics, &job, "shutdown");
        }
    }

    async fn finish(&self, in_flight: InFlight) {
        let mut in_flight = in_flight.tasks;
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
            settings: None,
            change: None,
            rule: tag.into(),
            since: Instant::now(),
        }
    }

    fn order(queue: &mut FairQueue) -> Vec<String> {
        std::iter::from_fn(|| queue.pop()).map(|j| j.rule).collect()
    }

    #[test]
    fn a_lines_drain_time_counts_what_round_robin_sends_before_its_last_call() {
        let mut q = FairQueue::default();
        let push = |q: &mut FairQueue, channel: &str, n: usize| {
            for i in 0..n {
                let mut j = job(Kind::Delete, None, None, &format!("{channel} {i}"));
                j.channel = channel.into();
                q.push(j);
            }
        };
        push(&mut q, "raided", 100);
        push(&mut q, "calm", 2);
        push(&mut q, "busy", 30);
        let drains = |available| -> HashMap<String, (Duration, usize)> {
            q.drain_times(10.0, available)
                .into_iter()
                .map(|(c, d, n)| (c, (d, n)))
                .collect()
        };
        // calm: 2 of each line = 6 calls; busy: 2 + 30 + 30; raided: everything (132).
        let empty_bucket = drains(0);
        assert_eq!(empty_bucket["calm"], (Duration::from_secs_f64(0.6), 2));
        assert_eq!(empty_bucket["busy"], (Duration::from_secs_f64(6.2), 30));
        assert_eq!(empty_bucket["raided"], (Duration::from_secs_f64(13.2), 100));
        // 62 points in the bucket: busy's calls all go at once, raided's last 70 wait.
        let some_points = drains(62);
        assert_eq!(some_points["busy"].0, Duration::ZERO);
        assert_eq!(some_points["raided"].0, Duration::from_secs_f64(7.0));
        assert!(FairQueue::default().drain_times(10.0, 0).is_empty());
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
    fn another_channels_bans_wait_behind_this_channels_own_actions() {
        let cross = |user: &str| {
            let mut shared = job(Kind::Ban, Some(user), None, "cross ban");
            shared.rule = crate::engine::defence::CROSS_RULE.into();
            shared
        };
        // Whichever comes first, the shared ban goes after the channel's own ban and delete.
        for cross_first in [true, false] {
            let mut q = FairQueue::default();
            if cross_first {
                q.push(cross("u1"));
            }
            q.push(job(Kind::Delete, Some("u2"), None, "own delete"));
            q.push(job(Kind::Ban, Some("u3"), None, "own ban"));
            if !cross_first {
                q.push(cross("u1"));
            }
            q.push(job(Kind::Unban, Some("u4"), None, "unban"));
            let order: Vec<String> = std::iter::from_fn(|| q.pop()).map(|j| j.rule).collect();
            assert_eq!(
                order,
                [
                    "own ban",
                    "own delete",
                    crate::engine::defence::CROSS_RULE,
                    "unban"
                ],
                "cross first: {cross_first}"
            );
        }
    }

    #[test]
    fn only_a_line_behind_on_its_own_traffic_is_reported() {
        assert!(is_own_backlog(100, 120), "a raided channel");
        assert!(
            !is_own_backlog(20, 1_000),
            "one of 50 calm channels waiting 20 each"
        );
        assert!(!is_own_backlog(5, 5), "a few calls are not a backlog");
        assert!(is_own_backlog(50, 200), "one of four raided channels");
    }

    #[test]
    fn chat_mode_changes_go_before_everything_in_their_order() {
        let mut q = FairQueue::default();
        q.push(job(Kind::Ban, Some("u1"), None, "ban u1"));
        q.push(job(Kind::ShieldMode, None, None, "shield on"));
        q.push(job(Kind::Delete, Some("u2"), None, "delete"));
        q.push(job(Kind::ChatSettings, None, None, "followers on"));
        q.push(job(Kind::ShieldMode, None, None, "shield off"));
        assert_eq!(
            order(&mut q),
            [
                "shield on",
                "followers on",
                "shield off",
                "ban u1",
                "delete"
            ]
        );
    }

    #[test]
    fn chat_mode_calls_of_a_channel_run_one_at_a_time_in_order() {
        let mut modes = ModeCalls::default();
        assert!(modes.start("chan"));
        assert!(!modes.start("chan"), "one in flight");
        assert!(modes.start("other"), "per channel");
        modes.hold(job(Kind::ShieldMode, None, None, "off"));
        modes.hold(job(Kind::ChatSettings, None, None, "followers off"));
        assert_eq!(modes.finished("chan").map(|j| j.rule), Some("off".into()));
        assert_eq!(
            modes.finished("chan").map(|j| j.rule),
            Some("followers off".into())
        );
        assert!(modes.finished("chan").is_none());
        assert!(modes.start("chan"), "free again");
    }

    #[test]
    fn a_users_sanctions_merge_into_the_harshest() {
        let mut q = FairQueue::default();
        let rules = |dropped: Vec<(Job, &'static str)>| {
            dropped
                .into_iter()
                .map(|(j, why)| format!("{} ({why})", j.rule))
                .collect::<Vec<_>>()
        };
        assert!(q
            .push(job(Kind::Timeout, Some("u"), Some(60), "60 s"))
            .is_empty());
        let merged = rules(q.push(job(Kind::Timeout, Some("u"), Some(600), "600 s")));
        assert_eq!(merged, ["60 s (merged)"]);
        let merged = rules(q.push(job(Kind::Timeout, Some("u"), Some(10), "10 s")));
        assert_eq!(merged, ["10 s (merged)"], "a milder one is dropped");
        let merged = rules(q.push(job(Kind::Ban, Some("u"), None, "ban")));
        assert_eq!(merged, ["600 s (merged)"]);
        q.push(job(Kind::Timeout, Some("other"), Some(5), "other"));
        assert_eq!(q.len(), 2);
        assert_eq!(order(&mut q), ["ban", "other"]);
    }

    #[test]
    fn a_ban_or_timeout_stands_for_the_deletes_of_that_users_messages() {
        let mut q = FairQueue::default();
        q.push(job(Kind::Delete, Some("u"), None, "delete u 1"));
        q.push(job(Kind::Delete, Some("w"), None, "delete w"));
        q.push(job(Kind::Delete, Some("u"), None, "delete u 2"));
        let dropped: Vec<_> = q
            .push(job(Kind::Timeout, Some("u"), Some(600), "timeout u"))
            .into_iter()
            .map(|(j, why)| (j.rule, why))
            .collect();
        assert_eq!(
            dropped,
            [
                ("delete u 1".to_string(), "superseded"),
                ("delete u 2".to_string(), "superseded")
            ]
        );
        let later = q.push(job(Kind::Delete, Some("u"), None, "delete u 3"));
        assert_eq!(
            later.len(),
            1,
            "a delete of a user about to be timed out is not needed"
        );
        let unknown = q.push(job(Kind::Delete, None, None, "delete, author unknown"));
        assert!(unknown.is_empty());
        assert_eq!(
            order(&mut q),
            ["timeout u", "delete w", "delete, author unknown"]
        );
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
