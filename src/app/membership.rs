//! Joining and parting many Twitch channels at once (`POST`/`DELETE /v1/channels` with a list).
//!
//! A bulk request is checked and answered at once: each login is `invalid` (not a login),
//! `already` (joined, or waiting from an earlier request; for a part: not joined) or
//! `accepted`. The accepted ones go to one background task per request that joins (or parts)
//! them in order through the same [`Core::join`] / [`Core::part`] a single request uses: each
//! channel is registered (its actor starts on its first message, `supervisor.lazy_start`) and
//! the JOINs queue behind Twitch's pacing (`twitch.join`), so a request for 100,000 channels
//! is answered in well under a second and the work shows as it goes:
//! `firehose_channels_join_pending` (accepted, not registered yet), each channel's `joined` in `/v1/channels` (the server confirmed the JOIN), and
//! `firehose_channels_bulk_total{op,outcome}`. Bounded: at most [`MAX_PER_REQUEST`] logins in
//! a request and [`MAX_PENDING`] waiting in all (beyond: refused, nothing queued); bulk tasks
//! run one at a time. Shutdown stops them (what was not started yet is left, counted).

use std::collections::HashSet;
use std::sync::Arc;

use dashmap::DashSet;

use super::Core;
use crate::channel::ChannelKey;
use crate::config::is_login;

/// Logins in one request.
pub const MAX_PER_REQUEST: usize = 100_000;
/// Channels accepted and not started yet, all requests together.
pub const MAX_PENDING: usize = 200_000;
/// Longest invalid entry echoed back (they are hostile input).
const MAX_ECHO_CHARS: usize = 64;
/// Invalid entries echoed back at most.
const MAX_ECHOED: usize = 100;

/// What a bulk request did at once.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct BulkAnswer {
    /// Logins taken: they are joined (or parted) in the background, in order.
    pub accepted: usize,
    /// Joins: already joined or waiting; parts: not joined.
    pub already: usize,
    /// Entries that are not Twitch logins (the first 100, cut to 64 characters).
    pub invalid: Vec<String>,
    /// How many entries were invalid in all.
    pub invalid_count: usize,
}

/// Why a bulk request was refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BulkError {
    #[error("at most {MAX_PER_REQUEST} channels in one request (got {0})")]
    TooMany(usize),
    #[error("{MAX_PENDING} channels are already waiting to be joined; try again when fewer are")]
    Busy,
    #[error("the service is shutting down")]
    ShuttingDown,
}

/// The bulk work under way.
#[derive(Debug, Default)]
pub struct Membership {
    /// Logins accepted for joining that are not registered with the supervisor yet.
    pending: DashSet<Arc<str>>,
    /// Bulk tasks run one at a time.
    turn: tokio::sync::Mutex<()>,
}

impl Membership {
    /// Channels accepted and not started yet.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

/// Logins of `entries`, de-duplicated in order, and the invalid ones.
fn sort_out(entries: &[String]) -> (Vec<String>, BulkAnswer) {
    let mut answer = BulkAnswer::default();
    let mut seen = HashSet::new();
    let mut logins = Vec::new();
    for entry in entries {
        let login = entry.trim().to_ascii_lowercase();
        if !is_login(&login) {
            answer.invalid_count += 1;
            if answer.invalid.len() < MAX_ECHOED {
                answer
                    .invalid
                    .push(entry.chars().take(MAX_ECHO_CHARS).collect());
            }
            continue;
        }
        if seen.insert(login.clone()) {
            logins.push(login);
        }
    }
    (logins, answer)
}

impl Core {
    /// Accepts `entries` for joining; the joins go on in the background.
    pub fn join_many(self: &Arc<Self>, entries: &[String]) -> Result<BulkAnswer, BulkError> {
        self.check_bulk(entries)?;
        let (logins, mut answer) = sort_out(entries);
        let membership = &self.membership;
        let fresh: Vec<String> = logins
            .into_iter()
            .filter(|login| {
                let known = self.registry.get(&ChannelKey::twitch(login)).is_some()
                    || membership.pending.contains(login.as_str());
                if known {
                    answer.already += 1;
                }
                !known
            })
            .collect();
        if membership.pending.len() + fresh.len() > MAX_PENDING {
            return Err(BulkError::Busy);
        }
        for login in &fresh {
            membership.pending.insert(Arc::from(login.as_str()));
        }
        answer.accepted = fresh.len();
        self.metrics_bulk("join", &answer);
        self.metrics
            .channels_join_pending
            .set(membership.pending.len() as i64);
        let core = Arc::clone(self);
        tokio::spawn(async move { core.run_joins(fresh).await });
        Ok(answer)
    }

    /// Accepts `entries` for parting; the parts go on in the background.
    pub fn part_many(self: &Arc<Self>, entries: &[String]) -> Result<BulkAnswer, BulkError> {
        self.check_bulk(entries)?;
        let (logins, mut answer) = sort_out(entries);
        let joined: Vec<String> = logins
            .into_iter()
            .filter(|login| {
                let known = self.registry.get(&ChannelKey::twitch(login)).is_some()
                    || self.membership.pending.contains(login.as_str());
                if !known {
                    answer.already += 1;
                }
                known
            })
            .collect();
        answer.accepted = joined.len();
        self.metrics_bulk("part", &answer);
        let core = Arc::clone(self);
        tokio::spawn(async move { core.run_parts(joined).await });
        Ok(answer)
    }

    fn check_bulk(&self, entries: &[String]) -> Result<(), BulkError> {
        if entries.len() > MAX_PER_REQUEST {
            return Err(BulkError::TooMany(entries.len()));
        }
        if self.is_shutting_down() {
            return Err(BulkError::ShuttingDown);
        }
        Ok(())
    }

    fn metrics_bulk(&self, op: &'static str, answer: &BulkAnswer) {
        self.metrics.bulk(op, "accepted", answer.accepted);
        self.metrics.bulk(op, "already", answer.already);
        self.metrics.bulk(op, "invalid", answer.invalid_count);
    }

    async fn run_joins(self: Arc<Self>, logins: Vec<String>) {
        let _turn = self.membership.turn.lock().await;
        let mut left = logins.len();
        for login in &logins {
            let result = if self.is_shutting_down() {
                Err(super::AdminError::ShuttingDown)
            } else {
                self.join(login).await
            };
            self.membership.pending.remove(login.as_str());
            self.metrics
                .channels_join_pending
                .set(self.membership.pending.len() as i64);
            left -= 1;
            if let Err(error) = result {
                self.metrics.bulk("join", "failed", 1);
                if matches!(error, super::AdminError::ShuttingDown) {
                    for rest in logins.iter().rev().take(left) {
                        self.membership.pending.remove(rest.as_str());
                    }
                    self.metrics.bulk("join", "not_started", left);
                    self.metrics
                        .channels_join_pending
                        .set(self.membership.pending.len() as i64);
                    return;
                }
                tracing::warn!(channel = %login, %error, "bulk join failed for a channel");
            }
        }
    }

    async fn run_parts(self: Arc<Self>, logins: Vec<String>) {
        let _turn = self.membership.turn.lock().await;
        for login in &logins {
            if let Err(error) = self.part(login).await {
                self.metrics.bulk("part", "failed", 1);
                tracing::warn!(channel = %login, %error, "bulk part failed for a channel");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_sorted_into_logins_and_bounded_invalid_echoes() {
        let mut entries: Vec<String> = vec!["Alpha".into(), "alpha".into(), " beta ".into()];
        entries.push("not a login".into());
        entries.push("x".repeat(500));
        for n in 0..150 {
            entries.push(format!("bad#{n}"));
        }
        let (logins, answer) = sort_out(&entries);
        assert_eq!(logins, vec!["alpha".to_string(), "beta".to_string()]);
        assert_eq!(answer.invalid_count, 152);
        assert_eq!(answer.invalid.len(), MAX_ECHOED);
        assert!(answer
            .invalid
            .iter()
            .all(|i| i.chars().count() <= MAX_ECHO_CHARS));
    }
}
