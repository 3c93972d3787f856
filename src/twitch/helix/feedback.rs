//! What the Helix worker tells a channel about its moderation calls.
//!
//! Two things go back up to the channel's engine: that the channel's waiting calls are behind
//! the token's budget (they need longer than [`REPORT_AFTER`] to go out: one delete at a time
//! is losing), and that a chat-mode change it asked for was refused (a missing scope, the bot
//! not a moderator). The raid defence acts on both (it escalates, or skips the refused step).
//! [`ActorFeedback`] hands them to the channel's actor as internal messages
//! ([`ChannelMsg::Feedback`], like its ticks): they are not chat, so they neither take an
//! admission permit nor count as messages received or processed. At most one backlog report
//! per channel a second, and one report per refused call: the actor's mailbox stays bounded.

use std::sync::Arc;
use std::time::Duration;

use crate::channel::{ChannelKey, ChannelMsg, ChannelRegistry};
use crate::engine::action::ChatModeChange;
use crate::engine::{EventKind, Platform};

/// A channel's line is reported once its calls need longer than this to go out.
pub const REPORT_AFTER: Duration = Duration::from_secs(1);
/// How often the worker checks its lines (and so reports a channel at most).
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Where the worker's reports go.
pub trait ChannelFeedback: Send + Sync + std::fmt::Debug + 'static {
    /// `channel`'s `waiting` calls need `drain` to go out at the budget.
    fn backlog(&self, channel: &str, drain: Duration, waiting: usize);
    /// The chat-mode change `change` of `channel` did not happen, for `why`.
    fn chat_mode_failed(&self, channel: &str, change: ChatModeChange, why: &str);
}

/// Reports to the channels' actors.
#[derive(Debug)]
pub struct ActorFeedback {
    channels: Arc<ChannelRegistry>,
}

impl ActorFeedback {
    pub fn new(channels: Arc<ChannelRegistry>) -> Arc<ActorFeedback> {
        Arc::new(ActorFeedback { channels })
    }

    fn send(&self, channel: &str, kind: EventKind) {
        let key = ChannelKey {
            platform: Platform::Twitch,
            name: Arc::from(channel),
        };
        // A channel no longer joined (or between actors) has nobody to tell.
        if let Some(shared) = self.channels.get(&key) {
            shared.mailbox.send(ChannelMsg::Feedback(kind));
        }
    }
}

impl ChannelFeedback for ActorFeedback {
    fn backlog(&self, channel: &str, drain: Duration, waiting: usize) {
        let drain_ms = u64::try_from(drain.as_millis()).unwrap_or(u64::MAX);
        let waiting = u64::try_from(waiting).unwrap_or(u64::MAX);
        self.send(channel, EventKind::ModerationBacklog { drain_ms, waiting });
    }

    fn chat_mode_failed(&self, channel: &str, change: ChatModeChange, why: &str) {
        let why = why.chars().take(200).collect();
        self.send(channel, EventKind::ChatModeFailed { change, why });
    }
}
