//! Actions: what the engine asks a transport to do, the same for every platform.

/// One thing the bot wants done in the channel the event came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Action {
    /// Post a plain message in the channel.
    Say { text: String },
    /// Post a message threaded as a reply to `parent_id`.
    Reply { parent_id: String, text: String },
    /// Delete one message.
    Delete { message_id: String },
    /// Time a user out for `duration_s` seconds.
    Timeout {
        user_id: String,
        duration_s: u64,
        reason: String,
    },
    /// Ban a user.
    Ban { user_id: String, reason: String },
}

impl Action {
    /// The text this action posts in chat, if it posts any.
    pub fn chat_text(&self) -> Option<&str> {
        match self {
            Action::Say { text } | Action::Reply { text, .. } => Some(text),
            _ => None,
        }
    }
}
