//! Twitch's send limits applied to the bot's PRIVMSGs, as a pure, clock-injected checker.
//!
//! One [`AccountLimiter`] per bot account decides, for each PRIVMSG, whether Twitch would
//! accept it: too long, duplicate of the previous message in the channel (non-mod), over the
//! account window limit (20 / 100 as mod / 7,500 verified) or under the 1 s per-channel gap
//! (non-mod). Only accepted messages count against the limits. Memory is bounded.

use super::config::SendLimits;
use std::collections::{HashMap, VecDeque};
use std::time::Instant;

/// Account limits at or above this are treated as "no limit" (nothing is tracked).
const UNTRACKED_LIMIT: u32 = 1_000_000;
/// Most channels whose last message one account remembers.
const MAX_CHANNEL_HISTORY: usize = 100_000;

/// What Twitch does with one bot message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    RateLimited,
    Duplicate,
    TooLong,
}

impl Verdict {
    /// Why the message was dropped (`None` when accepted).
    pub fn rejected_reason(self) -> Option<&'static str> {
        match self {
            Verdict::Accepted => None,
            Verdict::RateLimited => Some("msg_ratelimit"),
            Verdict::Duplicate => Some("msg_duplicate"),
            Verdict::TooLong => Some("too_long"),
        }
    }
}

/// The last accepted message of the account in one channel.
#[derive(Debug)]
struct ChannelHistory {
    at: Instant,
    text: String,
}

/// Send-limit state of one bot account.
#[derive(Debug, Default)]
pub struct AccountLimiter {
    /// Arrival times of accepted messages still inside the window (at most the limit).
    accepted: VecDeque<Instant>,
    channels: HashMap<String, ChannelHistory>,
    /// Times of accepted JOINs still inside the JOIN window (at most the JOIN limit).
    joins: VecDeque<Instant>,
}

impl AccountLimiter {
    /// Applies the JOIN limit (per account, as Twitch does); true if this JOIN is allowed,
    /// in which case it is counted.
    pub fn allow_join(&mut self, limits: &SendLimits, now: Instant) -> bool {
        while let Some(front) = self.joins.front() {
            if now.saturating_duration_since(*front) >= limits.join_window {
                self.joins.pop_front();
            } else {
                break;
            }
        }
        if limits.join_limit >= UNTRACKED_LIMIT {
            return true;
        }
        if self.joins.len() >= limits.join_limit as usize {
            return false;
        }
        self.joins.push_back(now);
        true
    }

    /// Decides on one message and, when it is accepted, records it.
    pub fn check(
        &mut self,
        limits: &SendLimits,
        channel: &str,
        text: &str,
        is_mod: bool,
        now: Instant,
    ) -> Verdict {
        if text.chars().count() > limits.max_len {
            return Verdict::TooLong;
        }
        let limit = limits.account_limit_for(is_mod);
        let window_full = self.window_is_full(limits, limit, now);
        let previous = self.channels.get(channel);
        if !is_mod && is_duplicate(previous, limits, text, now) {
            return Verdict::Duplicate;
        }
        if window_full {
            return Verdict::RateLimited;
        }
        if !is_mod && too_soon_in_channel(previous, limits, now) {
            return Verdict::RateLimited;
        }
        self.record_accepted(limit, channel, text, now);
        Verdict::Accepted
    }

    fn window_is_full(&mut self, limits: &SendLimits, limit: u32, now: Instant) -> bool {
        while let Some(front) = self.accepted.front() {
            if now.saturating_duration_since(*front) >= limits.window {
                self.accepted.pop_front();
            } else {
                break;
            }
        }
        limit < UNTRACKED_LIMIT && self.accepted.len() >= limit as usize
    }

    fn record_accepted(&mut self, limit: u32, channel: &str, text: &str, now: Instant) {
        if limit < UNTRACKED_LIMIT {
            self.accepted.push_back(now);
        }
        if self.channels.len() >= MAX_CHANNEL_HISTORY && !self.channels.contains_key(channel) {
            self.channels.clear();
        }
        self.channels.insert(
            channel.to_string(),
            ChannelHistory {
                at: now,
                text: text.to_string(),
            },
        );
    }
}

fn is_duplicate(
    previous: Option<&ChannelHistory>,
    limits: &SendLimits,
    text: &str,
    now: Instant,
) -> bool {
    previous.is_some_and(|p| {
        p.text == text && now.saturating_duration_since(p.at) < limits.duplicate_window
    })
}

fn too_soon_in_channel(
    previous: Option<&ChannelHistory>,
    limits: &SendLimits,
    now: Instant,
) -> bool {
    previous.is_some_and(|p| now.saturating_duration_since(p.at) < limits.per_channel_interval)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn twenty_first_message_in_the_window_is_ratelimited_for_non_mods() {
        let limits = SendLimits::default();
        let mut limiter = AccountLimiter::default();
        let t0 = Instant::now();
        for i in 0..20 {
            let v = limiter.check(&limits, &format!("c{i}"), "hi", false, t0);
            assert_eq!(v, Verdict::Accepted, "message {i}");
        }
        assert_eq!(
            limiter.check(&limits, "c20", "hi", false, t0),
            Verdict::RateLimited
        );
        let later = t0 + Duration::from_secs(30);
        assert_eq!(
            limiter.check(&limits, "c20", "hi", false, later),
            Verdict::Accepted
        );
    }

    #[test]
    fn joins_over_the_limit_are_refused_until_the_window_passes() {
        let limits = SendLimits::default();
        let mut limiter = AccountLimiter::default();
        let t0 = Instant::now();
        assert!((0..20).all(|_| limiter.allow_join(&limits, t0)));
        assert!(!limiter.allow_join(&limits, t0 + Duration::from_secs(9)));
        assert!(limiter.allow_join(&limits, t0 + Duration::from_secs(10)));
    }

    #[test]
    fn mods_get_one_hundred_and_no_channel_gap_or_duplicate_rule() {
        let limits = SendLimits::default();
        let mut limiter = AccountLimiter::default();
        let t0 = Instant::now();
        for _ in 0..100 {
            assert_eq!(
                limiter.check(&limits, "c", "same", true, t0),
                Verdict::Accepted
            );
        }
        assert_eq!(
            limiter.check(&limits, "c", "x", true, t0),
            Verdict::RateLimited
        );
    }

    #[test]
    fn channel_gap_duplicates_length_and_verified() {
        let limits = SendLimits::default();
        let mut limiter = AccountLimiter::default();
        let t0 = Instant::now();
        assert_eq!(
            limiter.check(&limits, "c", "a", false, t0),
            Verdict::Accepted
        );
        let soon = t0 + Duration::from_millis(500);
        assert_eq!(
            limiter.check(&limits, "c", "b", false, soon),
            Verdict::RateLimited
        );
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(
            limiter.check(&limits, "c", "a", false, t1),
            Verdict::Duplicate
        );
        assert_eq!(
            limiter.check(&limits, "c", &"é".repeat(500), false, t1),
            Verdict::Accepted
        );
        assert_eq!(
            limiter.check(&limits, "d", &"é".repeat(501), false, t1),
            Verdict::TooLong
        );

        let verified = SendLimits {
            verified: true,
            ..SendLimits::default()
        };
        let mut limiter = AccountLimiter::default();
        for i in 0..7_500 {
            assert_eq!(
                limiter.check(&verified, &format!("c{i}"), "x", false, t0),
                Verdict::Accepted
            );
        }
        assert_eq!(
            limiter.check(&verified, "z", "x", false, t0),
            Verdict::RateLimited
        );
    }
}
