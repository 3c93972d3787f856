//! From an engine [`Action`] to the exact Helix call: method, path, query and JSON body.
//!
//! [`Job::from_request`] validates a [`ModerationRequest`] once, at submission (only Delete,
//! Timeout, Ban, Unban and ChatMode are accepted; durations are clamped to Helix's
//! 1..=1209600 s and reasons cut to 500 characters), so the worker only ever holds calls Helix
//! can accept. A chat-mode change is `PUT /moderation/shield_mode` (scope
//! `moderator:manage:shield_mode`) or `PATCH /chat/settings` (`moderator:manage:chat_settings`).

use std::time::Instant;

use reqwest::Method;
use serde_json::{json, Value};

use crate::engine::action::ChatModeChange;
use crate::engine::Action;

/// Helix's own ceiling for a timeout, in seconds (two weeks).
pub const MAX_TIMEOUT_S: u64 = 1_209_600;
/// Helix's ceiling for a ban or timeout reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// One moderation action for one channel, as the service submits it.
#[derive(Debug, Clone)]
pub struct ModerationRequest {
    pub channel_login: String,
    /// The channel's user id (`room-id`).
    pub broadcaster_id: String,
    /// The bot's user id (the token's owner, a moderator of the channel).
    pub moderator_id: String,
    /// Only Delete, Timeout, Ban and Unban are sent; anything else is refused.
    pub action: Action,
    /// When the chat message that caused it arrived (for the log's latency).
    pub received_at: Option<Instant>,
}

/// Why [`crate::twitch::helix::HelixModerator::submit`] did not take a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the pending-action queue is full")]
    QueueFull,
    #[error("the Helix moderator has shut down")]
    Closed,
    #[error("action `{0}` is not a Helix moderation action")]
    Unsupported(&'static str),
    #[error("invalid request: {0}")]
    Invalid(&'static str),
}

impl Refused {
    /// Label for `helix_dropped_total{reason}`.
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::QueueFull => "queue_full",
            Refused::Closed => "closed",
            Refused::Unsupported(_) => "unsupported",
            Refused::Invalid(_) => "invalid",
        }
    }
}

/// The Helix moderation calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Delete,
    Timeout,
    Ban,
    Unban,
    /// Shield Mode on or off.
    ShieldMode,
    /// Followers-only, emote-only, slow or subscribers-only mode.
    ChatSettings,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Delete => "delete",
            Kind::Timeout => "timeout",
            Kind::Ban => "ban",
            Kind::Unban => "unban",
            Kind::ShieldMode => "shield_mode",
            Kind::ChatSettings => "chat_settings",
        }
    }

    /// Whether this changes the channel's chat modes (one call for everyone in the channel).
    pub fn is_chat_mode(self) -> bool {
        matches!(self, Kind::ShieldMode | Kind::ChatSettings)
    }
}

/// A validated request, ready to be sent (and retried) by the worker.
#[derive(Debug, Clone)]
pub struct Job {
    pub kind: Kind,
    pub channel: String,
    pub broadcaster_id: String,
    pub moderator_id: String,
    pub user_id: Option<String>,
    pub message_id: Option<String>,
    pub duration_s: Option<u64>,
    pub reason: Option<String>,
    /// The JSON body of a chat-mode change.
    pub settings: Option<Value>,
    /// The chat-mode change this job carries out (reported back to the channel if refused).
    pub change: Option<ChatModeChange>,
    pub rule: String,
    /// `received_at` of the request, else the submission time.
    pub since: Instant,
}

/// One HTTP call, relative to the configured base URL.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub method: Method,
    pub path: &'static str,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Value>,
}

fn action_name(action: &Action) -> &'static str {
    match action {
        Action::Say { .. } => "say",
        Action::Reply { .. } => "reply",
        Action::Shadow { .. } => "shadow",
        Action::Withheld { .. } => "withheld",
        Action::Delete { .. } => "delete",
        Action::Timeout { .. } => "timeout",
        Action::Ban { .. } => "ban",
        Action::Unban { .. } => "unban",
        Action::ChatMode { .. } => "chat_mode",
    }
}

/// The call and body of a chat-mode change.
fn chat_mode(change: ChatModeChange) -> (Kind, Value) {
    match change {
        ChatModeChange::ShieldMode(on) => (Kind::ShieldMode, json!({ "is_active": on })),
        ChatModeChange::FollowersOnly(Some(minutes)) => (
            Kind::ChatSettings,
            json!({ "follower_mode": true, "follower_mode_duration": minutes.min(129_600) }),
        ),
        ChatModeChange::FollowersOnly(None) => {
            (Kind::ChatSettings, json!({ "follower_mode": false }))
        }
        ChatModeChange::EmoteOnly(on) => (Kind::ChatSettings, json!({ "emote_mode": on })),
        ChatModeChange::Slow(Some(seconds)) => (
            Kind::ChatSettings,
            json!({ "slow_mode": true, "slow_mode_wait_time": seconds.clamp(3, 120) }),
        ),
        ChatModeChange::Slow(None) => (Kind::ChatSettings, json!({ "slow_mode": false })),
        ChatModeChange::SubscribersOnly(on) => {
            (Kind::ChatSettings, json!({ "subscriber_mode": on }))
        }
    }
}

/// Cuts `reason` to Helix's limit on a character boundary.
pub fn cut_reason(reason: &str) -> String {
    reason.chars().take(MAX_REASON_CHARS).collect()
}

fn non_empty(value: &str, what: &'static str) -> Result<String, Refused> {
    let value = value.trim();
    if value.is_empty() {
        Err(Refused::Invalid(what))
    } else {
        Ok(value.to_string())
    }
}

impl Job {
    /// Validates a request; refuses non-moderation actions and empty ids.
    pub fn from_request(request: ModerationRequest) -> Result<Job, Refused> {
        let mut job = Job {
            kind: Kind::Delete,
            channel: request.channel_login,
            broadcaster_id: non_empty(&request.broadcaster_id, "empty broadcaster_id")?,
            moderator_id: non_empty(&request.moderator_id, "empty moderator_id")?,
            user_id: None,
            message_id: None,
            duration_s: None,
            reason: None,
            settings: None,
            change: None,
            rule: request.action.rule().unwrap_or_default().to_string(),
            since: request.received_at.unwrap_or_else(Instant::now),
        };
        match request.action {
            Action::Delete {
                message_id,
                user_id,
                ..
            } => {
                job.message_id = Some(non_empty(&message_id, "empty message_id")?);
                // The author: lets a ban or timeout of them stand for this delete. Empty when
                // not known (the delete then stands alone).
                job.user_id = (!user_id.trim().is_empty()).then_some(user_id);
            }
            Action::Timeout {
                user_id,
                duration_s,
                reason,
                ..
            } => {
                job.kind = Kind::Timeout;
                job.user_id = Some(non_empty(&user_id, "empty user_id")?);
                job.duration_s = Some(duration_s.clamp(1, MAX_TIMEOUT_S));
                job.reason = Some(cut_reason(&reason));
            }
            Action::Ban {
                user_id, reason, ..
            } => {
                job.kind = Kind::Ban;
                job.user_id = Some(non_empty(&user_id, "empty user_id")?);
                job.reason = Some(cut_reason(&reason));
            }
            Action::Unban { user_id, .. } => {
                job.kind = Kind::Unban;
                job.user_id = Some(non_empty(&user_id, "empty user_id")?);
            }
            Action::ChatMode { change, .. } => {
                let (kind, body) = chat_mode(change);
                job.kind = kind;
                job.settings = Some(body);
                job.change = Some(change);
                job.reason = Some(change.describe());
            }
            other => return Err(Refused::Unsupported(action_name(&other))),
        }
        Ok(job)
    }

    /// The Helix call that carries this job out.
    pub fn call(&self) -> Call {
        let mut query = vec![
            ("broadcaster_id", self.broadcaster_id.clone()),
            ("moderator_id", self.moderator_id.clone()),
        ];
        let user_id = self.user_id.clone().unwrap_or_default();
        match self.kind {
            Kind::Delete => {
                query.push(("message_id", self.message_id.clone().unwrap_or_default()));
                Call {
                    method: Method::DELETE,
                    path: "/moderation/chat",
                    query,
                    body: None,
                }
            }
            Kind::Unban => {
                query.push(("user_id", user_id));
                Call {
                    method: Method::DELETE,
                    path: "/moderation/bans",
                    query,
                    body: None,
                }
            }
            Kind::Timeout | Kind::Ban => Call {
                method: Method::POST,
                path: "/moderation/bans",
                query,
                body: Some(self.ban_body(user_id)),
            },
            Kind::ShieldMode => Call {
                method: Method::PUT,
                path: "/moderation/shield_mode",
                query,
                body: self.settings.clone(),
            },
            Kind::ChatSettings => Call {
                method: Method::PATCH,
                path: "/chat/settings",
                query,
                body: self.settings.clone(),
            },
        }
    }

    fn ban_body(&self, user_id: String) -> Value {
        let mut data = json!({ "user_id": user_id });
        if let Some(duration) = self.duration_s {
            data["duration"] = json!(duration);
        }
        if let Some(reason) = self.reason.as_deref().filter(|r| !r.is_empty()) {
            data["reason"] = json!(reason);
        }
        json!({ "data": data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(action: Action) -> ModerationRequest {
        ModerationRequest {
            channel_login: "chan".into(),
            broadcaster_id: "100".into(),
            moderator_id: "200".into(),
            action,
            received_at: None,
        }
    }

    #[test]
    fn timeout_is_a_post_with_duration_and_reason() {
        let job = Job::from_request(request(Action::Timeout {
            user_id: "7".into(),
            duration_s: 600,
            reason: "spam".into(),
            rule: "links".into(),
        }));
        let call = job.map(|j| j.call()).ok();
        let expected = Call {
            method: Method::POST,
            path: "/moderation/bans",
            query: vec![
                ("broadcaster_id", "100".into()),
                ("moderator_id", "200".into()),
            ],
            body: Some(json!({"data": {"user_id": "7", "duration": 600, "reason": "spam"}})),
        };
        assert_eq!(call, Some(expected));
    }

    #[test]
    fn durations_are_clamped_and_reasons_cut() {
        let long = "x".repeat(700);
        let job = Job::from_request(request(Action::Timeout {
            user_id: "7".into(),
            duration_s: 99_999_999,
            reason: long,
            rule: "r".into(),
        }));
        let job = job.ok();
        assert_eq!(job.as_ref().and_then(|j| j.duration_s), Some(MAX_TIMEOUT_S));
        let reason_len = job.and_then(|j| j.reason).map(|r| r.chars().count());
        assert_eq!(reason_len, Some(MAX_REASON_CHARS));
        let zero = Job::from_request(request(Action::Timeout {
            user_id: "7".into(),
            duration_s: 0,
            reason: String::new(),
            rule: "r".into(),
        }));
        assert_eq!(zero.ok().and_then(|j| j.duration_s), Some(1));
    }

    #[test]
    fn ban_has_no_duration_and_empty_reason_is_left_out() {
        let job = Job::from_request(request(Action::Ban {
            user_id: "7".into(),
            reason: String::new(),
            rule: "r".into(),
        }));
        let body = job.ok().and_then(|j| j.call().body);
        assert_eq!(body, Some(json!({"data": {"user_id": "7"}})));
    }

    #[test]
    fn chat_mode_changes_are_shield_mode_puts_and_chat_settings_patches() {
        let call = |change| {
            Job::from_request(request(Action::ChatMode {
                change,
                rule: "defence".into(),
            }))
            .map(|j| (j.kind, j.call()))
            .ok()
        };
        let (kind, shield) = call(ChatModeChange::ShieldMode(true)).expect("job");
        assert_eq!(kind, Kind::ShieldMode);
        assert_eq!(
            (shield.method, shield.path),
            (Method::PUT, "/moderation/shield_mode")
        );
        assert_eq!(shield.body, Some(json!({"is_active": true})));
        let (_, follow) = call(ChatModeChange::FollowersOnly(Some(10))).expect("job");
        assert_eq!(
            (follow.method, follow.path),
            (Method::PATCH, "/chat/settings")
        );
        assert_eq!(
            follow.body,
            Some(json!({"follower_mode": true, "follower_mode_duration": 10}))
        );
        let (_, slow) = call(ChatModeChange::Slow(Some(500))).expect("job");
        assert_eq!(
            slow.body,
            Some(json!({"slow_mode": true, "slow_mode_wait_time": 120})),
            "clamped to Twitch's range"
        );
        let (_, off) = call(ChatModeChange::SubscribersOnly(false)).expect("job");
        assert_eq!(off.body, Some(json!({"subscriber_mode": false})));
        assert_eq!(
            off.query,
            vec![
                ("broadcaster_id", "100".into()),
                ("moderator_id", "200".into())
            ]
        );
    }

    #[test]
    fn chat_and_shadow_actions_and_empty_ids_are_refused() {
        let say = Job::from_request(request(Action::Say { text: "hi".into() }));
        assert_eq!(say.err(), Some(Refused::Unsupported("say")));
        let shadow = Job::from_request(request(Action::Shadow {
            rule: "r".into(),
            would: Box::new(Action::Unban {
                user_id: "1".into(),
                rule: "r".into(),
            }),
        }));
        assert_eq!(shadow.err(), Some(Refused::Unsupported("shadow")));
        let empty = Job::from_request(request(Action::Delete {
            message_id: " ".into(),
            user_id: "1".into(),
            rule: "r".into(),
        }));
        assert_eq!(empty.err(), Some(Refused::Invalid("empty message_id")));
    }
}
