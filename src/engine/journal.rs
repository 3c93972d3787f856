//! The engine's journal: the changes to lasting state that one event made.
//!
//! The engine stays pure: it does not write anywhere, it notes what changed (a counter went
//! up, a command was used, a user was warned) in the [`ChannelState`](super::ChannelState) it
//! was handed. The caller drains the notes with `ChannelState::take_changes` after each event
//! and decides what to do with them (the service hands them to the state store's writer; a
//! one-shot handler may ignore them). [`SavedState`] is the way back in: what a store kept,
//! restored into a fresh channel state.

use std::collections::BTreeMap;

/// One change to state that should outlive the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateChange {
    /// A named counter (`$(count.increment x)`) went up by `delta`.
    CounterAdded { name: String, delta: i64 },
    /// A custom command was used once more.
    CommandUsed { name: String },
    /// A filter warned a user; the warning lasts until `expires_ms`.
    Warned {
        filter: String,
        user_id: String,
        expires_ms: u64,
    },
    /// The raid defence engaged (`delta` > 0) or reverted (< 0) steps: kept so that a
    /// restarted channel still reverts what it turned on.
    DefenceSteps { delta: i64 },
}

/// Lasting state as a store kept it, to restore into a channel state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedState {
    /// Named counters by name.
    pub counters: BTreeMap<String, i64>,
    /// Uses of each custom command by name.
    pub command_uses: BTreeMap<String, u64>,
    /// Live filter warnings: (filter, user id) until ms since the epoch.
    pub warnings: Vec<(String, String, u64)>,
    /// Raid defence steps engaged when the state was kept.
    pub defence_steps: u64,
}
