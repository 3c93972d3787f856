//! The chat event: what the engine reads, the same for every platform.
//!
//! Transports (`twitch/`, later `discord/`) convert their wire messages into these types;
//! the engine never sees an IRC line or a gateway frame.

use std::sync::Arc;

/// Which platform an event came from. The engine does not branch on it; it is carried for
/// labels, metrics and the way actions are sent back.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Twitch,
    Discord,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Twitch => "twitch",
            Platform::Discord => "discord",
        }
    }
}

/// A user's standing in a channel, ordered from least to most trusted.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    Everyone,
    Subscriber,
    Vip,
    Moderator,
    Broadcaster,
}

/// The author of a chat message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChatUser {
    /// Stable platform id (Twitch user-id, Discord user id).
    pub id: String,
    /// Login / username (lowercase on Twitch).
    pub login: String,
    /// Name as shown in chat.
    pub display_name: String,
    /// Highest role the user holds in this channel.
    pub role: Role,
}

/// One emote occurrence in a message, as char ranges (inclusive start, exclusive end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmoteSpan {
    pub id: String,
    pub start: usize,
    pub end: usize,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChatMessage {
    /// Platform message id; replies and deletions refer to it.
    pub id: String,
    pub user: ChatUser,
    pub text: String,
    /// Emotes in the message, from the platform's own markup (Twitch `emotes` tag).
    pub emotes: Vec<EmoteSpan>,
    /// When the platform says the message was sent, in ms since the Unix epoch.
    pub sent_at_ms: u64,
    /// The user's first message in this channel ever (Twitch `first-msg`).
    pub first_message: bool,
    /// Id of the message this one replies to, if any.
    pub reply_to: Option<String>,
    /// Ids of the users the message mentions (Discord's `mentions`; empty on Twitch, whose
    /// mentions are plain `@login` text).
    pub mentions: Vec<String>,
}

/// What happened in a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A chat message.
    Message(ChatMessage),
    /// A user was timed out (`duration_s` set) or banned, or the whole chat was cleared (`user_id` none).
    ChatCleared {
        user_id: Option<String>,
        duration_s: Option<u64>,
    },
    /// One message was deleted by a moderator.
    MessageDeleted { message_id: String },
    /// A subscription, raid or similar channel notice, with the user's attached text if any.
    UserNotice {
        kind: String,
        user: ChatUser,
        text: Option<String>,
    },
    /// Another channel of this service banned `user_id` for a filter hit (`reason`); the
    /// service hands it to channels whose `[defence] cross_channel` is set.
    UserFlagged {
        user_id: String,
        login: String,
        source: String,
        reason: String,
    },
    /// The moderation transport is behind in this channel: its waiting calls need `drain_ms`
    /// to go out at the token's budget (`waiting` of them). Sent at most once a second while
    /// it lasts; the raid defence may escalate on it.
    ModerationBacklog { drain_ms: u64, waiting: u64 },
    /// A chat-mode change the engine asked for did not happen (`why`: the platform's answer).
    ChatModeFailed {
        change: super::action::ChatModeChange,
        why: String,
    },
    /// The channel actor's one-second heartbeat; drives timers and expiries.
    Tick,
    /// The stream went live (`online`, optionally since `started_at_ms`) or offline.
    StreamStatus {
        online: bool,
        started_at_ms: Option<u64>,
    },
}

/// A chat event addressed to one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatEvent {
    pub platform: Platform,
    /// Channel key: Twitch login, or Discord channel id.
    pub channel: Arc<str>,
    pub kind: EventKind,
}

impl ChatEvent {
    /// The chat message in this event, if it is one.
    pub fn message(&self) -> Option<&ChatMessage> {
        match &self.kind {
            EventKind::Message(m) => Some(m),
            _ => None,
        }
    }
}
