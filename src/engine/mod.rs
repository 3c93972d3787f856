//! The bot engine: pure, transport-free chat logic.
//!
//! Everything in here is a function of `(channel state, chat event, time)` and returns the
//! [`Action`]s the bot wants taken. No sockets, no clocks, no database: the caller (a channel
//! actor in the service, or a one-shot handler) brings the event in and carries the actions out.
//! That keeps the engine cheap to test, to fuzz and to run anywhere.
//!
//! - [`event`]: the platform-neutral chat event the engine reads.
//! - [`action`]: the platform-neutral actions it returns.
//! - [`builtin`]: the built-in commands (`!ping`, `!echo`).
//!
//! The seam is the [`ChatHandler`] trait: the service holds an `Arc<dyn ChatHandler>`, so an
//! operator (or a test) can put another piece in its place.

pub mod action;
pub mod builtin;
pub mod event;

pub use action::Action;
pub use event::{ChatEvent, ChatMessage, ChatUser, EmoteSpan, EventKind, Platform, Role};

use std::time::SystemTime;

/// Per-channel engine state, owned by exactly one channel actor.
///
/// It is rebuilt from scratch when the actor restarts, so everything in here must be either
/// cheap to lose or (from the storage issue on) loaded back from the store.
#[derive(Debug, Default, Clone)]
pub struct ChannelState {
    /// The channel this state belongs to (login for Twitch, channel id for Discord).
    pub channel: String,
    /// Chat messages this state has seen since it was created.
    pub messages_seen: u64,
    /// Commands answered since it was created.
    pub commands_answered: u64,
}

impl ChannelState {
    pub fn new(channel: impl Into<String>) -> Self {
        Self {
            channel: channel.into(),
            ..Self::default()
        }
    }
}

/// The seam between the service and the bot logic.
///
/// Implementations must be pure with respect to I/O: all effects are returned as actions.
/// They may panic on a bug; the channel actor that calls them is supervised and restarts.
pub trait ChatHandler: Send + Sync + 'static {
    fn handle(&self, state: &mut ChannelState, event: &ChatEvent, now: SystemTime) -> Vec<Action>;
}

/// The default engine: today the built-in commands only.
#[derive(Debug, Default, Clone)]
pub struct Engine;

impl ChatHandler for Engine {
    fn handle(&self, state: &mut ChannelState, event: &ChatEvent, now: SystemTime) -> Vec<Action> {
        handle(state, event, now)
    }
}

/// Handles one chat event for one channel and returns what the bot should do.
pub fn handle(state: &mut ChannelState, event: &ChatEvent, _now: SystemTime) -> Vec<Action> {
    let EventKind::Message(message) = &event.kind else {
        return Vec::new();
    };
    state.messages_seen += 1;
    let actions = builtin::answer(message);
    if !actions.is_empty() {
        state.commands_answered += 1;
    }
    actions
}
