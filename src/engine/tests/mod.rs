//! Engine tests that go through [`crate::engine::handle`]: commands, keywords, timers,
//! filters, nuke, shadow mode, chat management and the example rules file (the real-chat
//! corpus run needs the Twitch side: `tests/engine_corpus.rs`). Unit tests of single pieces
//! live next to them.

mod defence;
mod features;
mod hardening;
mod moderation;
mod props;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{
    handle, Action, ChannelRules, ChannelState, ChatEvent, ChatMessage, ChatUser, EmoteSpan,
    EventKind, Platform, Role,
};

/// Path of the example rules file.
pub const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/channels/example.toml");

/// Test time: a fixed epoch plus `secs`.
pub fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

pub fn rules(toml_text: &str) -> ChannelRules {
    toml::from_str(toml_text).expect("rules parse")
}

pub fn state(toml_text: &str) -> ChannelState {
    ChannelState::with_rules("chan", rules(toml_text), 1).expect("rules valid")
}

pub fn example() -> ChannelState {
    let text = std::fs::read_to_string(EXAMPLE).expect("example file");
    state(&text)
}

pub fn user(login: &str, role: Role) -> ChatUser {
    ChatUser {
        id: format!("id-{login}"),
        login: login.to_string(),
        display_name: login.to_string(),
        role,
    }
}

pub fn event(kind: EventKind) -> ChatEvent {
    ChatEvent {
        platform: Platform::Twitch,
        channel: "chan".into(),
        kind,
    }
}

/// Sends `text` from `login` (with `role`) at `secs`.
pub fn say(
    state: &mut ChannelState,
    login: &str,
    role: Role,
    text: &str,
    secs: u64,
) -> Vec<Action> {
    say_emotes(state, login, role, text, Vec::new(), secs)
}

pub fn say_emotes(
    state: &mut ChannelState,
    login: &str,
    role: Role,
    text: &str,
    emotes: Vec<EmoteSpan>,
    secs: u64,
) -> Vec<Action> {
    let message = ChatMessage {
        id: format!("m-{login}-{secs}-{}", state.messages_seen),
        user: user(login, role),
        text: text.to_string(),
        emotes,
        ..ChatMessage::default()
    };
    handle(state, &event(EventKind::Message(message)), at(secs))
}

pub fn tick(state: &mut ChannelState, secs: u64) -> Vec<Action> {
    handle(state, &event(EventKind::Tick), at(secs))
}

/// Chat texts of the actions.
pub fn texts(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| a.chat_text().map(str::to_string))
        .collect()
}

/// A compact description of the moderation actions: `delete:rule`, `timeout600:rule`, `ban:rule`.
pub fn moderation(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Delete { rule, .. } => Some(format!("delete:{rule}")),
            Action::Timeout {
                duration_s, rule, ..
            } => Some(format!("timeout{duration_s}:{rule}")),
            Action::Ban { rule, .. } => Some(format!("ban:{rule}")),
            Action::Unban { user_id, rule } => Some(format!("unban {user_id}:{rule}")),
            _ => None,
        })
        .collect()
}
