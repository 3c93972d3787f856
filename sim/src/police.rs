//! What moderation does to the simulated chat, as on Twitch: a ban stops the user in that room,
//! a timeout until it ends; chat modes stop whoever does not pass them:
//!
//! - **Shield Mode**: accounts that are new (the raid's fresh accounts) may not chat unless they
//!   follow or subscribe; moderators, VIPs and the broadcaster always may.
//! - **followers-only**: followers, moderators, VIPs and the broadcaster.
//! - **subscribers-only**: subscribers, moderators, VIPs and the broadcaster.
//! - **emote-only**: messages made of emotes only (moderators and up exempt).
//! - **slow mode**: one message per `slow_s` per user (moderators, VIPs, broadcaster exempt).
//!
//! The generator asks [`ChatPolice::may_speak`] before each message; a refused message is not
//! sent and is counted by why. The bench's Helix sets sanctions and modes as Twitch's API
//! calls arrive. Bounded: sanctions and slow-mode memory are capped at [`MAX_ENTRIES`]: expired
//! entries are swept first, then a new one is refused (counted in `evicted`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::content::Chatter;

/// Most sanctions and slow-mode entries kept.
pub const MAX_ENTRIES: usize = 200_000;

/// The chat modes of one room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoomModes {
    pub shield: bool,
    pub followers_only: bool,
    pub subscribers_only: bool,
    pub emote_only: bool,
    /// Seconds between two messages of one user; 0 = off.
    pub slow_s: u64,
}

/// Why a message was not let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    Banned,
    TimedOut,
    Shield,
    FollowersOnly,
    SubscribersOnly,
    EmoteOnly,
    Slow,
}

impl Refusal {
    pub const ALL: [Refusal; 7] = [
        Refusal::Banned,
        Refusal::TimedOut,
        Refusal::Shield,
        Refusal::FollowersOnly,
        Refusal::SubscribersOnly,
        Refusal::EmoteOnly,
        Refusal::Slow,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Refusal::Banned => "banned",
            Refusal::TimedOut => "timed_out",
            Refusal::Shield => "shield_mode",
            Refusal::FollowersOnly => "followers_only",
            Refusal::SubscribersOnly => "subscribers_only",
            Refusal::EmoteOnly => "emote_only",
            Refusal::Slow => "slow_mode",
        }
    }
}

/// Sanctions and modes of every room.
#[derive(Debug, Default)]
pub struct ChatPolice {
    /// (room, user id) -> until (None: banned).
    sanctions: HashMap<(u64, String), Option<Instant>>,
    modes: HashMap<u64, RoomModes>,
    last_spoke: HashMap<(u64, String), Instant>,
    /// Entries dropped at [`MAX_ENTRIES`].
    pub evicted: u64,
    refused: HashMap<Refusal, u64>,
}

impl ChatPolice {
    /// Whether nothing is in force (the generator then skips the lock-free check's slow path).
    pub fn is_idle(&self) -> bool {
        self.sanctions.is_empty() && self.modes.values().all(|m| *m == RoomModes::default())
    }

    /// Bans (`duration` none) or times out `user_id` in `room_id` from `now`.
    pub fn sanction(
        &mut self,
        room_id: u64,
        user_id: &str,
        duration: Option<Duration>,
        now: Instant,
    ) {
        if self.sanctions.len() >= MAX_ENTRIES {
            self.sanctions
                .retain(|_, until| until.is_none_or(|t| t > now));
            if self.sanctions.len() >= MAX_ENTRIES {
                self.evicted += 1;
                return;
            }
        }
        let until = duration.map(|d| now + d);
        let entry = self
            .sanctions
            .entry((room_id, user_id.to_string()))
            .or_insert(until);
        // The harsher one stands: a ban over a timeout, the later end of two timeouts.
        *entry = match (*entry, until) {
            (None, _) | (_, None) => None,
            (Some(a), Some(b)) => Some(a.max(b)),
        };
    }

    /// Lifts a ban or timeout.
    pub fn unban(&mut self, room_id: u64, user_id: &str) {
        self.sanctions.remove(&(room_id, user_id.to_string()));
    }

    pub fn modes(&self, room_id: u64) -> RoomModes {
        self.modes.get(&room_id).copied().unwrap_or_default()
    }

    /// Changes a room's modes with `change`.
    pub fn set_modes(&mut self, room_id: u64, change: impl FnOnce(&mut RoomModes)) {
        change(self.modes.entry(room_id).or_default());
    }

    /// Whether `chatter` may post a message (`emotes_only`: it is made of emotes only) in
    /// `room_id` at `now`; a refusal is counted.
    pub fn may_speak(
        &mut self,
        room_id: u64,
        chatter: &Chatter,
        emotes_only: bool,
        now: Instant,
    ) -> Result<(), Refusal> {
        let verdict = self.judge(room_id, chatter, emotes_only, now);
        if let Err(why) = verdict {
            *self.refused.entry(why).or_default() += 1;
        }
        verdict
    }

    fn judge(
        &mut self,
        room_id: u64,
        chatter: &Chatter,
        emotes_only: bool,
        now: Instant,
    ) -> Result<(), Refusal> {
        let key = (room_id, chatter.user_id.clone());
        match self.sanctions.get(&key) {
            Some(None) => return Err(Refusal::Banned),
            Some(Some(until)) if *until > now => return Err(Refusal::TimedOut),
            Some(Some(_)) => {
                self.sanctions.remove(&key);
            }
            None => {}
        }
        let modes = self.modes(room_id);
        let staff = chatter.is_mod || chatter.is_broadcaster;
        let trusted = staff || chatter.is_vip;
        let subscriber = chatter.sub_months > 0;
        if modes.shield && !trusted && chatter.new_account && !chatter.follows && !subscriber {
            return Err(Refusal::Shield);
        }
        if modes.followers_only && !trusted && !chatter.follows {
            return Err(Refusal::FollowersOnly);
        }
        if modes.subscribers_only && !trusted && !subscriber {
            return Err(Refusal::SubscribersOnly);
        }
        if modes.emote_only && !staff && !emotes_only {
            return Err(Refusal::EmoteOnly);
        }
        if modes.slow_s > 0 && !trusted {
            let gap = Duration::from_secs(modes.slow_s);
            if self
                .last_spoke
                .get(&key)
                .is_some_and(|at| now.saturating_duration_since(*at) < gap)
            {
                return Err(Refusal::Slow);
            }
            if self.last_spoke.len() >= MAX_ENTRIES {
                self.last_spoke
                    .retain(|_, at| now.saturating_duration_since(*at) < gap);
                if self.last_spoke.len() >= MAX_ENTRIES {
                    self.evicted += 1;
                    return Ok(());
                }
            }
            self.last_spoke.insert(key, now);
        }
        Ok(())
    }

    /// Messages refused so far, by why.
    pub fn refused(&self) -> Vec<(&'static str, u64)> {
        Refusal::ALL
            .iter()
            .map(|r| (r.name(), self.refused.get(r).copied().unwrap_or(0)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chatter(id: &str) -> Chatter {
        let mut c = Chatter::for_login(id);
        c.user_id = id.to_string();
        c
    }

    #[test]
    fn bans_timeouts_and_their_end() {
        let mut p = ChatPolice::default();
        let t0 = Instant::now();
        let (a, b) = (chatter("a"), chatter("b"));
        p.sanction(1, "a", None, t0);
        p.sanction(1, "b", Some(Duration::from_secs(10)), t0);
        // A shorter timeout later does not shorten a running one; a ban stays a ban.
        p.sanction(1, "b", Some(Duration::from_secs(1)), t0);
        p.sanction(1, "a", Some(Duration::from_secs(1)), t0);
        assert_eq!(p.may_speak(1, &a, false, t0), Err(Refusal::Banned));
        assert_eq!(
            p.may_speak(1, &b, false, t0 + Duration::from_secs(5)),
            Err(Refusal::TimedOut)
        );
        assert_eq!(
            p.may_speak(1, &b, false, t0 + Duration::from_secs(11)),
            Ok(())
        );
        assert_eq!(p.may_speak(2, &a, false, t0), Ok(()), "another room");
        p.unban(1, "a");
        assert_eq!(p.may_speak(1, &a, false, t0), Ok(()));
        assert!(p.refused().contains(&("banned", 1)));
        assert!(p.refused().contains(&("timed_out", 1)));
    }

    #[test]
    fn chat_modes_let_through_exactly_who_passes_them() {
        let mut p = ChatPolice::default();
        let t0 = Instant::now();
        let mut raider = chatter("raider");
        raider.new_account = true;
        raider.follows = false;
        raider.sub_months = 0;
        let mut follower = chatter("follower");
        follower.follows = true;
        follower.sub_months = 0;
        let mut lurker = chatter("lurker");
        lurker.follows = false;
        lurker.sub_months = 0;
        let mut sub = chatter("sub");
        sub.follows = false;
        sub.sub_months = 3;
        let mut moderator = chatter("moderator");
        moderator.is_mod = true;

        p.set_modes(1, |m| m.shield = true);
        assert_eq!(p.may_speak(1, &raider, false, t0), Err(Refusal::Shield));
        for c in [&follower, &lurker, &sub, &moderator] {
            assert_eq!(p.may_speak(1, c, false, t0), Ok(()), "{}", c.login);
        }
        p.set_modes(1, |m| {
            *m = RoomModes {
                followers_only: true,
                ..RoomModes::default()
            }
        });
        assert_eq!(
            p.may_speak(1, &lurker, false, t0),
            Err(Refusal::FollowersOnly)
        );
        assert_eq!(p.may_speak(1, &follower, false, t0), Ok(()));
        p.set_modes(1, |m| {
            *m = RoomModes {
                subscribers_only: true,
                ..RoomModes::default()
            }
        });
        assert_eq!(
            p.may_speak(1, &follower, false, t0),
            Err(Refusal::SubscribersOnly)
        );
        assert_eq!(p.may_speak(1, &sub, false, t0), Ok(()));
        p.set_modes(1, |m| {
            *m = RoomModes {
                emote_only: true,
                ..RoomModes::default()
            }
        });
        assert_eq!(p.may_speak(1, &sub, false, t0), Err(Refusal::EmoteOnly));
        assert_eq!(p.may_speak(1, &sub, true, t0), Ok(()));
        assert_eq!(p.may_speak(1, &moderator, false, t0), Ok(()));
        p.set_modes(1, |m| {
            *m = RoomModes {
                slow_s: 30,
                ..RoomModes::default()
            }
        });
        assert_eq!(p.may_speak(1, &lurker, false, t0), Ok(()));
        assert_eq!(
            p.may_speak(1, &lurker, false, t0 + Duration::from_secs(10)),
            Err(Refusal::Slow)
        );
        assert_eq!(
            p.may_speak(1, &lurker, false, t0 + Duration::from_secs(31)),
            Ok(())
        );
        p.set_modes(1, |m| *m = RoomModes::default());
        assert!(p.is_idle());
    }
}
