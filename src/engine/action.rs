//! Actions: what the engine asks a transport to do, the same for every platform.
//!
//! Every moderation action carries the `rule` that caused it (a filter name, `nuke`, ...) so
//! the service can write a moderation log. Rules in shadow mode return [`Action::Shadow`]:
//! what they would have done, for counting and logging, never to be carried out. A text built
//! from chat input that the channel's content filters forbid comes back as
//! [`Action::Withheld`] (see [`crate::engine::outgoing`]): counted, never posted.

/// One thing the bot wants done in the channel the event came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Action {
    /// Post a plain message in the channel.
    Say { text: String },
    /// Post a message threaded as a reply to `parent_id`.
    Reply { parent_id: String, text: String },
    /// Delete one message, of the user `user_id` (its author; what lets a ban or timeout of
    /// that user stand for the delete, as Twitch removes their messages with it).
    Delete {
        message_id: String,
        user_id: String,
        rule: String,
    },
    /// Time a user out for `duration_s` seconds.
    Timeout {
        user_id: String,
        duration_s: u64,
        reason: String,
        rule: String,
    },
    /// Ban a user.
    Ban {
        user_id: String,
        reason: String,
        rule: String,
    },
    /// Lift a ban or timeout (used by `!nukeundo`).
    Unban { user_id: String, rule: String },
    /// Change a chat mode of the channel (the raid defence: Shield Mode, followers-only, ...).
    ChatMode {
        change: ChatModeChange,
        rule: String,
    },
    /// What a rule in shadow mode would have done; never carried out.
    Shadow { rule: String, would: Box<Action> },
    /// A Say or Reply the bot did not post because chat input in it breaks the channel's
    /// content filter `rule`; counted by the transports, never carried out.
    Withheld { rule: String, would: Box<Action> },
}

/// One chat-mode change; `None` / `false` turns the mode off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "mode", content = "value", rename_all = "snake_case")]
pub enum ChatModeChange {
    ShieldMode(bool),
    /// Followers of at least this many minutes only.
    FollowersOnly(Option<u64>),
    EmoteOnly(bool),
    /// Seconds between two messages of a user.
    Slow(Option<u64>),
    SubscribersOnly(bool),
}

impl ChatModeChange {
    /// Words for chat and logs: `Shield Mode on`, `followers-only (10 min) on`, ...
    pub fn describe(self) -> String {
        let on = |b: bool| if b { "on" } else { "off" };
        match self {
            ChatModeChange::ShieldMode(b) => format!("Shield Mode {}", on(b)),
            ChatModeChange::FollowersOnly(Some(m)) => format!("followers-only ({m} min) on"),
            ChatModeChange::FollowersOnly(None) => "followers-only off".into(),
            ChatModeChange::EmoteOnly(b) => format!("emote-only {}", on(b)),
            ChatModeChange::Slow(Some(s)) => format!("slow mode ({s} s) on"),
            ChatModeChange::Slow(None) => "slow mode off".into(),
            ChatModeChange::SubscribersOnly(b) => format!("subscribers-only {}", on(b)),
        }
    }

    /// Whether this turns a mode on.
    pub fn engages(self) -> bool {
        match self {
            ChatModeChange::ShieldMode(b)
            | ChatModeChange::EmoteOnly(b)
            | ChatModeChange::SubscribersOnly(b) => b,
            ChatModeChange::FollowersOnly(m) => m.is_some(),
            ChatModeChange::Slow(s) => s.is_some(),
        }
    }
}

impl Action {
    /// The text this action posts in chat, if it posts any.
    pub fn chat_text(&self) -> Option<&str> {
        match self {
            Action::Say { text } | Action::Reply { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Whether this action deletes, times out or bans (shadow actions do not count).
    pub fn is_moderation(&self) -> bool {
        matches!(
            self,
            Action::Delete { .. } | Action::Timeout { .. } | Action::Ban { .. }
        )
    }

    /// The rule a moderation or shadow action names, if any.
    pub fn rule(&self) -> Option<&str> {
        match self {
            Action::Delete { rule, .. }
            | Action::Timeout { rule, .. }
            | Action::Ban { rule, .. }
            | Action::Unban { rule, .. }
            | Action::ChatMode { rule, .. }
            | Action::Shadow { rule, .. }
            | Action::Withheld { rule, .. } => Some(rule),
            _ => None,
        }
    }

    /// Wraps `self` as a shadow record of `rule` when `shadow` is set.
    pub fn shadowed(self, rule: &str, shadow: bool) -> Action {
        if shadow {
            Action::Shadow {
                rule: rule.to_string(),
                would: Box::new(self),
            }
        } else {
            self
        }
    }
}
