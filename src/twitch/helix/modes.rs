//! What a channel's chat modes were before the raid defence changed them, so its revert puts
//! them back rather than turning them off.
//!
//! Before an engaging change the executor reads the channel's current state (`GET
//! /moderation/shield_mode` or `GET /chat/settings`, one budget point). A mode that was off
//! is turned off again at the end, as before. A mode that was on already is remembered: if it
//! was at least as strict as the defence's step (Shield Mode on; followers-only of at least as
//! many minutes; slow mode of at least as many seconds; emote- or subscribers-only on), the
//! defence does not touch it at all, on the way in or out; if it was milder (slow 3 s, the
//! defence wants 30 s), the defence's step applies and the revert restores the moderators'
//! setting. When the read fails the change goes ahead and the revert turns the mode off.
//! Memory is bounded ([`MAX_PRIORS`]) and not kept over a restart (a revert after a restart
//! turns the mode off).

use std::collections::HashMap;
use std::sync::Mutex;

use reqwest::Method;
use serde_json::{json, Value};

use super::request::{Call, Job};
use crate::engine::action::ChatModeChange;

/// Most (channel, mode) pairs remembered at once.
pub const MAX_PRIORS: usize = 10_000;

/// One mode as it was before the defence.
#[derive(Debug, Clone, PartialEq)]
pub struct Prior {
    /// The body that sets it back.
    pub body: Value,
    /// It was at least as strict as the defence's step: nothing was changed.
    pub untouched: bool,
}

/// Modes on before the defence, per (channel, mode).
#[derive(Debug, Default)]
pub struct Priors {
    map: Mutex<HashMap<(String, &'static str), Prior>>,
}

impl Priors {
    pub fn remember(&self, channel: &str, change: ChatModeChange, prior: Prior) {
        let Ok(mut map) = self.map.lock() else { return };
        let key = (channel.to_string(), mode_of(change));
        if map.len() >= MAX_PRIORS && !map.contains_key(&key) {
            // Bounded: a full map forgets one (its revert then turns the mode off).
            if let Some(old) = map.keys().next().cloned() {
                map.remove(&old);
            }
        }
        map.insert(key, prior);
    }

    pub fn forget(&self, channel: &str, change: ChatModeChange) {
        let _ = self.take(channel, change);
    }

    pub fn take(&self, channel: &str, change: ChatModeChange) -> Option<Prior> {
        let mut map = self.map.lock().ok()?;
        map.remove(&(channel.to_string(), mode_of(change)))
    }
}

/// Which mode a change is about.
pub fn mode_of(change: ChatModeChange) -> &'static str {
    match change {
        ChatModeChange::ShieldMode(_) => "shield_mode",
        ChatModeChange::FollowersOnly(_) => "follower_mode",
        ChatModeChange::EmoteOnly(_) => "emote_mode",
        ChatModeChange::Slow(_) => "slow_mode",
        ChatModeChange::SubscribersOnly(_) => "subscriber_mode",
    }
}

/// The `GET` that reads the state `job`'s change is about.
pub fn read_call(job: &Job, change: ChatModeChange) -> Call {
    let path = match change {
        ChatModeChange::ShieldMode(_) => "/moderation/shield_mode",
        _ => "/chat/settings",
    };
    Call {
        method: Method::GET,
        path,
        query: vec![
            ("broadcaster_id", job.broadcaster_id.clone()),
            ("moderator_id", job.moderator_id.clone()),
        ],
        body: None,
    }
}

/// From Helix's answer to [`read_call`] (`{"data": [{...}]}`): the mode as it was, if it was
/// on; `None` if it was off or the answer says nothing about it.
pub fn prior_of(change: ChatModeChange, answer: &Value) -> Option<Prior> {
    let data = answer.get("data")?.get(0)?;
    let on = |key: &str| data.get(key).and_then(Value::as_bool) == Some(true);
    // A plain switch that was on: `{key: true}`, untouched if the step only turns it on.
    let switch = |key: &str, want: bool| on(key).then(|| (json!({ key: true }), want));
    // A switch with a setting (minutes, seconds): restored with its setting, untouched if at
    // least as strict as the step's. Only values Helix itself accepts are ever sent back.
    let setting =
        |key: &str, field: &str, range: std::ops::RangeInclusive<u64>, want: Option<u64>| {
            if !on(key) {
                return None;
            }
            let value = data
                .get(field)
                .and_then(Value::as_u64)
                .filter(|n| range.contains(n))?;
            let body = json!({ key: true, field: value });
            Some((body, want.is_some_and(|w| value >= w)))
        };
    let (body, untouched) = match change {
        ChatModeChange::ShieldMode(want) => switch("is_active", want)?,
        ChatModeChange::EmoteOnly(want) => switch("emote_mode", want)?,
        ChatModeChange::SubscribersOnly(want) => switch("subscriber_mode", want)?,
        ChatModeChange::FollowersOnly(want) => {
            setting("follower_mode", "follower_mode_duration", 0..=129_600, want)?
        }
        ChatModeChange::Slow(want) => setting("slow_mode", "slow_mode_wait_time", 3..=120, want)?,
    };
    Some(Prior { body, untouched })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(fields: Value) -> Value {
        json!({ "data": [fields] })
    }

    #[test]
    fn a_mode_that_was_off_has_no_prior() {
        let off =
            settings(json!({"follower_mode": false, "slow_mode": false, "emote_mode": false}));
        assert_eq!(
            prior_of(ChatModeChange::FollowersOnly(Some(10)), &off),
            None
        );
        assert_eq!(prior_of(ChatModeChange::Slow(Some(30)), &off), None);
        let shield = json!({"data": [{"is_active": false}]});
        assert_eq!(prior_of(ChatModeChange::ShieldMode(true), &shield), None);
        assert_eq!(prior_of(ChatModeChange::EmoteOnly(true), &json!({})), None);
    }

    #[test]
    fn values_helix_would_refuse_are_never_restored() {
        for bad in [
            json!({"slow_mode": true, "slow_mode_wait_time": 0}),
            json!({"slow_mode": true, "slow_mode_wait_time": null}),
            json!({"slow_mode": true, "slow_mode_wait_time": 99_999}),
        ] {
            assert_eq!(
                prior_of(ChatModeChange::Slow(Some(30)), &settings(bad)),
                None
            );
        }
        let huge = settings(json!({"follower_mode": true, "follower_mode_duration": u64::MAX}));
        assert_eq!(
            prior_of(ChatModeChange::FollowersOnly(Some(10)), &huge),
            None
        );
    }

    #[test]
    fn a_stricter_mode_is_left_alone_a_milder_one_is_restored() {
        let slow = settings(json!({"slow_mode": true, "slow_mode_wait_time": 3}));
        let prior = prior_of(ChatModeChange::Slow(Some(30)), &slow).expect("on");
        assert!(!prior.untouched, "3 s is milder than 30 s");
        assert_eq!(
            prior.body,
            json!({"slow_mode": true, "slow_mode_wait_time": 3})
        );
        let followers = settings(json!({"follower_mode": true, "follower_mode_duration": 60}));
        let prior = prior_of(ChatModeChange::FollowersOnly(Some(10)), &followers).expect("on");
        assert!(prior.untouched, "60 min is stricter than 10");
        let shield = json!({"data": [{"is_active": true}]});
        assert!(prior_of(ChatModeChange::ShieldMode(true), &shield).is_some_and(|p| p.untouched));
    }

    #[test]
    fn priors_are_per_channel_and_mode_taken_once_and_bounded() {
        let priors = Priors::default();
        let prior = Prior {
            body: json!({"emote_mode": true}),
            untouched: true,
        };
        priors.remember("a", ChatModeChange::EmoteOnly(true), prior.clone());
        assert_eq!(priors.take("b", ChatModeChange::EmoteOnly(false)), None);
        assert_eq!(priors.take("a", ChatModeChange::Slow(None)), None);
        assert_eq!(
            priors.take("a", ChatModeChange::EmoteOnly(false)),
            Some(prior.clone())
        );
        assert_eq!(priors.take("a", ChatModeChange::EmoteOnly(false)), None);
        for i in 0..MAX_PRIORS + 5 {
            priors.remember(
                &format!("c{i}"),
                ChatModeChange::EmoteOnly(true),
                prior.clone(),
            );
        }
        assert!(priors.map.lock().map(|m| m.len()).unwrap_or(usize::MAX) <= MAX_PRIORS);
    }
}
