//! End-to-end latency tracking for `firehose bench`: from the simulator writing a message to
//! the bot's answer arriving back.
//!
//! The generator registers every message that expects an answer (see [`super::mix::Expect`])
//! with the time it was handed to the connection's writer. Two kinds of answer are matched:
//!
//! - **replies**: a bot PRIVMSG whose `reply-parent-msg-id` names a pending message (the
//!   engine threads every command reply). A bot message without that tag cannot be tied to
//!   one message reliably (several commands may be pending in a channel), so it is not guessed
//!   at: it is counted as `unthreaded_replies`;
//! - **moderation**: a Helix call seen by the bench's recording Helix. A delete names the
//!   message id; a timeout or ban names the broadcaster (room id) and user id and removes every
//!   pending spam message of that user in that room (Twitch clears them all from chat).
//!
//! Spam visibility: how long each spam message stayed in front of viewers, from its send to
//! the call that removed it; one that expired unremoved counts [`PENDING_TTL`] (a lower
//! bound), one still pending at the end its age. Spam a chat mode kept out never reached chat
//! and is not in that distribution (the simulator counts it apart). False positives: a delete naming a message
//! that was not spam, and a ban or timeout of a user who sent no spam within [`PENDING_TTL`]
//! (a legitimate chatter).
//!
//! Latencies go into a whole-run histogram and an interval histogram the bench takes every
//! sample (for latency-over-time plots). Pending entries expire after [`PENDING_TTL`] and are
//! capped at [`PENDING_CAP`]; what could not be kept is counted.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::mix::Expect;
use super::state::MAX_LATENCY_US;

/// A message unanswered for this long is forgotten (counted as expired).
pub const PENDING_TTL: Duration = Duration::from_secs(60);
/// Most pending messages kept (replies and moderation together).
pub const PENDING_CAP: usize = 500_000;

/// A pending message.
#[derive(Debug, Clone)]
struct Pending {
    sent_at: Instant,
    expect: Expect,
    /// (room id, user id) for moderation matching.
    author: (u64, String),
}

/// Counts and histograms of a [`Tracker`].
#[derive(Debug, Clone)]
pub struct TrackerSnapshot {
    pub replies_expected: u64,
    pub replies_matched: u64,
    pub moderation_expected: u64,
    pub moderation_matched: u64,
    /// Helix calls that named no pending message (repeat actions, or expired ones).
    pub moderation_unmatched: u64,
    pub unthreaded_replies: u64,
    pub expired: u64,
    pub dropped_at_cap: u64,
    pub reply_latency_us: Histogram<u64>,
    pub moderation_latency_us: Histogram<u64>,
    /// Spam messages removed by a call (delete of the message, or ban/timeout of its author).
    pub spam_removed: u64,
    /// Deletes of a message that was not spam.
    pub false_deletes: u64,
    /// Bans and timeouts of a user who had sent no spam.
    pub false_sanctions: u64,
    /// Visibility of every spam message so far (µs; see the module doc), pending ones at
    /// their age when the snapshot was taken.
    pub spam_visible_us: Histogram<u64>,
}

/// A moderation call as the recording Helix saw it.
#[derive(Debug, Clone)]
pub enum ModerationCall {
    /// `DELETE /moderation/chat?message_id=...`
    Delete { message_id: String },
    /// `POST /moderation/bans` (ban or timeout) for a user in a room.
    Ban { room_id: u64, user_id: String },
}

/// Pending messages and matched latencies.
#[derive(Debug)]
pub struct Tracker {
    pending: HashMap<String, Pending>,
    order: VecDeque<(String, Instant)>,
    by_author: HashMap<(u64, String), VecDeque<String>>,
    counts: [u64; 11],
    total: [Histogram<u64>; 2],
    interval: [Histogram<u64>; 2],
    visible: Histogram<u64>,
    /// Spam removed within [`PENDING_TTL`]: a second call for one is a repeat, not a mistake.
    removed: HashSet<String>,
    removed_order: VecDeque<(String, Instant)>,
    /// When each (room, user) last sent spam (pruned past [`PENDING_TTL`]).
    spam_authors: HashMap<(u64, String), Instant>,
}

const REPLIES_EXPECTED: usize = 0;
const REPLIES_MATCHED: usize = 1;
const MOD_EXPECTED: usize = 2;
const MOD_MATCHED: usize = 3;
const MOD_UNMATCHED: usize = 4;
const UNTHREADED: usize = 5;
const EXPIRED: usize = 6;
const DROPPED: usize = 7;
const SPAM_REMOVED: usize = 8;
const FALSE_DELETES: usize = 9;
const FALSE_SANCTIONS: usize = 10;
const REPLY: usize = 0;
const MODERATION: usize = 1;

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

fn histogram() -> std::io::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
        .map_err(|e| std::io::Error::other(e.to_string()))
}

impl Tracker {
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            pending: HashMap::new(),
            order: VecDeque::new(),
            by_author: HashMap::new(),
            counts: [0; 11],
            total: [histogram()?, histogram()?],
            interval: [histogram()?, histogram()?],
            visible: histogram()?,
            removed: HashSet::new(),
            removed_order: VecDeque::new(),
            spam_authors: HashMap::new(),
        })
    }

    /// Registers a message expecting an answer, sent at `sent_at`.
    pub fn expect(
        &mut self,
        id: &str,
        expect: Expect,
        room_id: u64,
        user_id: &str,
        sent_at: Instant,
    ) {
        if expect == Expect::Nothing {
            return;
        }
        self.expire(sent_at);
        if self.pending.len() >= PENDING_CAP {
            self.counts[DROPPED] += 1;
            return;
        }
        let author = (room_id, user_id.to_string());
        if expect == Expect::Moderation {
            self.counts[MOD_EXPECTED] += 1;
            if self.spam_authors.len() >= PENDING_CAP {
                self.spam_authors
                    .retain(|_, at| sent_at.saturating_duration_since(*at) <= PENDING_TTL);
            }
            self.spam_authors.insert(author.clone(), sent_at);
            self.by_author
                .entry(author.clone())
                .or_default()
                .push_back(id.to_string());
        } else {
            self.counts[REPLIES_EXPECTED] += 1;
        }
        self.pending.insert(
            id.to_string(),
            Pending {
                sent_at,
                expect,
                author,
            },
        );
        self.order.push_back((id.to_string(), sent_at));
    }

    /// Takes back a registration whose delivery failed.
    pub fn forget(&mut self, id: &str) {
        if let Some(p) = self.pending.remove(id) {
            let slot = if p.expect == Expect::Moderation {
                MOD_EXPECTED
            } else {
                REPLIES_EXPECTED
            };
            self.counts[slot] = self.counts[slot].saturating_sub(1);
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some((id, at)) = self.order.front() {
            let answered = !self.pending.contains_key(id);
            let expired = now.saturating_duration_since(*at) > PENDING_TTL;
            if !(answered || expired) {
                break;
            }
            let id = id.clone();
            self.order.pop_front();
            if let Some(p) = self.pending.remove(&id) {
                self.counts[EXPIRED] += 1;
                if p.expect == Expect::Moderation {
                    self.visible.saturating_record(micros(PENDING_TTL));
                }
                self.remove_from_author(&p.author, &id);
            }
        }
        while let Some((id, at)) = self.removed_order.front() {
            if now.saturating_duration_since(*at) <= PENDING_TTL {
                break;
            }
            self.removed.remove(id);
            self.removed_order.pop_front();
        }
    }

    fn remove_from_author(&mut self, author: &(u64, String), id: &str) {
        if let Some(ids) = self.by_author.get_mut(author) {
            ids.retain(|x| x != id);
            if ids.is_empty() {
                self.by_author.remove(author);
            }
        }
    }

    fn record(&mut self, which: usize, sent_at: Instant, at: Instant) -> u64 {
        let micros = micros(at.saturating_duration_since(sent_at));
        self.total[which].saturating_record(micros);
        self.interval[which].saturating_record(micros);
        micros
    }

    /// A bot PRIVMSG arrived at `at`; matches it if it threads a pending command.
    pub fn bot_message(&mut self, reply_parent: Option<&str>, at: Instant) -> Option<u64> {
        let Some(parent) = reply_parent else {
            self.counts[UNTHREADED] += 1;
            return None;
        };
        match self.pending.get(parent) {
            Some(p) if p.expect == Expect::Reply => {
                let sent_at = p.sent_at;
                self.pending.remove(parent);
                self.counts[REPLIES_MATCHED] += 1;
                Some(self.record(REPLY, sent_at, at))
            }
            _ => None,
        }
    }

    /// A moderation call arrived at `at`; removes the spam it answers (a delete: its message;
    /// a ban or timeout: every pending spam message of that user in that room) and returns
    /// the first latency, or counts the call as a repeat or a false positive.
    pub fn moderation(&mut self, call: &ModerationCall, at: Instant) -> Option<u64> {
        self.expire(at);
        let ids: Vec<String> = match call {
            ModerationCall::Delete { message_id } => vec![message_id.clone()],
            ModerationCall::Ban { room_id, user_id } => self
                .by_author
                .remove(&(*room_id, user_id.clone()))
                .map(Vec::from)
                .unwrap_or_default(),
        };
        let mut first = None;
        for id in ids {
            let Some(p) = self.pending.get(&id) else {
                continue;
            };
            if p.expect != Expect::Moderation {
                continue;
            }
            let p = p.clone();
            self.pending.remove(&id);
            self.remove_from_author(&p.author, &id);
            self.counts[MOD_MATCHED] += 1;
            self.counts[SPAM_REMOVED] += 1;
            let latency = self.record(MODERATION, p.sent_at, at);
            self.visible.saturating_record(latency);
            self.removed.insert(id.clone());
            self.removed_order.push_back((id, at));
            first = first.or(Some(latency));
        }
        if first.is_none() {
            self.counts[MOD_UNMATCHED] += 1;
            let mistaken = match call {
                ModerationCall::Delete { message_id } => !self.removed.contains(message_id),
                ModerationCall::Ban { room_id, user_id } => self
                    .spam_authors
                    .get(&(*room_id, user_id.clone()))
                    .is_none_or(|last| at.saturating_duration_since(*last) > PENDING_TTL),
            };
            if mistaken {
                let slot = match call {
                    ModerationCall::Delete { .. } => FALSE_DELETES,
                    ModerationCall::Ban { .. } => FALSE_SANCTIONS,
                };
                self.counts[slot] += 1;
            }
        }
        first
    }

    /// [`Tracker::snapshot`] with the spam still pending counted at its age at `now`.
    pub fn snapshot_at(&self, now: Instant) -> TrackerSnapshot {
        let mut snapshot = self.snapshot();
        for p in self.pending.values() {
            if p.expect == Expect::Moderation {
                let age = now.saturating_duration_since(p.sent_at);
                snapshot.spam_visible_us.saturating_record(micros(age));
            }
        }
        snapshot
    }

    /// Counts and whole-run histograms.
    pub fn snapshot(&self) -> TrackerSnapshot {
        TrackerSnapshot {
            replies_expected: self.counts[REPLIES_EXPECTED],
            replies_matched: self.counts[REPLIES_MATCHED],
            moderation_expected: self.counts[MOD_EXPECTED],
            moderation_matched: self.counts[MOD_MATCHED],
            moderation_unmatched: self.counts[MOD_UNMATCHED],
            unthreaded_replies: self.counts[UNTHREADED],
            expired: self.counts[EXPIRED],
            dropped_at_cap: self.counts[DROPPED],
            reply_latency_us: self.total[REPLY].clone(),
            moderation_latency_us: self.total[MODERATION].clone(),
            spam_removed: self.counts[SPAM_REMOVED],
            false_deletes: self.counts[FALSE_DELETES],
            false_sanctions: self.counts[FALSE_SANCTIONS],
            spam_visible_us: self.visible.clone(),
        }
    }

    /// The (reply, moderation) latencies matched since the previous call.
    pub fn take_interval(&mut self) -> (Histogram<u64>, Histogram<u64>) {
        let reply = self.interval[REPLY].clone();
        let moderation = self.interval[MODERATION].clone();
        self.interval[REPLY].reset();
        self.interval[MODERATION].reset();
        (reply, moderation)
    }

    /// Messages still waiting for an answer.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_and_moderation_match_once_each() {
        let mut t = Tracker::new().expect("tracker");
        let t0 = Instant::now();
        t.expect("c1", Expect::Reply, 1, "10", t0);
        t.expect("s1", Expect::Moderation, 1, "20", t0);
        t.expect(
            "s2",
            Expect::Moderation,
            1,
            "20",
            t0 + Duration::from_millis(1),
        );
        t.expect("x", Expect::Nothing, 1, "30", t0);
        assert_eq!(t.pending(), 3);
        let later = t0 + Duration::from_millis(5);
        assert_eq!(t.bot_message(Some("c1"), later), Some(5_000));
        assert_eq!(t.bot_message(Some("c1"), later), None);
        assert_eq!(t.bot_message(None, later), None);
        let delete = ModerationCall::Delete {
            message_id: "s2".into(),
        };
        assert_eq!(t.moderation(&delete, later), Some(4_000));
        let ban = ModerationCall::Ban {
            room_id: 1,
            user_id: "20".into(),
        };
        assert_eq!(t.moderation(&ban, later), Some(5_000));
        assert_eq!(t.moderation(&ban, later), None);
        let s = t.snapshot();
        assert_eq!((s.replies_expected, s.replies_matched), (1, 1));
        assert_eq!((s.moderation_expected, s.moderation_matched), (2, 2));
        assert_eq!((s.moderation_unmatched, s.unthreaded_replies), (1, 1));
        let (reply, moderation) = t.take_interval();
        assert_eq!((reply.len(), moderation.len()), (1, 2));
        assert_eq!(t.take_interval().0.len(), 0);
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn a_ban_removes_all_of_its_users_spam_and_mistakes_are_told_from_repeats() {
        let mut t = Tracker::new().expect("tracker");
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        t.expect("a1", Expect::Moderation, 1, "raider", t0);
        t.expect("a2", Expect::Moderation, 1, "raider", ms(100));
        t.expect("a3", Expect::Moderation, 1, "raider", ms(200));
        t.expect("b1", Expect::Moderation, 1, "other", ms(300));
        let ban = ModerationCall::Ban {
            room_id: 1,
            user_id: "raider".into(),
        };
        assert_eq!(t.moderation(&ban, ms(1_000)), Some(1_000_000));
        let s = t.snapshot();
        assert_eq!((s.spam_removed, s.moderation_matched), (3, 3));
        // The ban again, and a delete of a message the ban removed: repeats, not mistakes.
        assert_eq!(t.moderation(&ban, ms(1_100)), None);
        let delete = |id: &str| ModerationCall::Delete {
            message_id: id.into(),
        };
        assert_eq!(t.moderation(&delete("a2"), ms(1_200)), None);
        // A delete of a message that was never spam, and a timeout of a chatter who sent none.
        assert_eq!(t.moderation(&delete("legit"), ms(1_300)), None);
        let innocent = ModerationCall::Ban {
            room_id: 1,
            user_id: "viewer".into(),
        };
        assert_eq!(t.moderation(&innocent, ms(1_400)), None);
        let s = t.snapshot_at(ms(5_300));
        assert_eq!((s.false_deletes, s.false_sanctions), (1, 1));
        assert_eq!(s.moderation_unmatched, 4);
        // Visible: 1.0, 0.9, 0.8 s for the removed ones; b1 still up after 5 s.
        assert_eq!(s.spam_visible_us.len(), 4);
        assert!(
            s.spam_visible_us.max() >= 4_990_000,
            "{}",
            s.spam_visible_us.max()
        );
        assert!(s.spam_visible_us.min() >= 799_000 && s.spam_visible_us.min() <= 801_000);
    }

    #[test]
    fn unanswered_messages_expire() {
        let mut t = Tracker::new().expect("tracker");
        let t0 = Instant::now();
        t.expect("old", Expect::Reply, 1, "1", t0);
        t.expect(
            "new",
            Expect::Reply,
            1,
            "1",
            t0 + PENDING_TTL + Duration::from_secs(1),
        );
        assert_eq!(t.pending(), 1);
        assert_eq!(t.snapshot().expired, 1);
    }
}
