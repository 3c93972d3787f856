//! The bot engine: pure, transport-free chat logic.
//!
//! Everything in here is a function of `(channel state, chat event, time)` and returns the
//! [`Action`]s the bot wants taken. No sockets, no clocks, no database, no OS randomness: the
//! caller (a channel actor in the service, or a one-shot handler) brings the event in and
//! carries the actions out, and hands a channel state its random seed when it makes one (the
//! service draws it from the OS, tests pass a fixed one). That keeps the engine cheap to test,
//! to fuzz and to run anywhere.
//!
//! - [`event`], [`action`]: the platform-neutral input and output.
//! - [`rules`]: the channel configuration, [`compiled`]: its matchers, built once per change.
//! - [`template`]: response templates; [`fold`]: text folding for matching.
//! - [`builtin`], [`commands`], [`keywords`], [`timers`], [`filters`], [`nuke`]: the features;
//!   [`defence`]: the channel-level raid defence (chat modes in steps, reverted when calm).
//! - [`roles`]: permission levels; [`bounded`], [`rng`]: bounded state, seeded randomness.
//! - [`outgoing`]: what every text the bot posts is held to (chat input screened by the
//!   channel's content filters and never leading with a command prefix).
//! - [`fuzzing`]: the property the `engine` fuzz target checks (and the suite smoke-runs).
//!
//! A chat message goes through: filters (harshest action wins) and live nukes; a moderated
//! message gets no answer. Otherwise the first of built-in commands, moderator commands,
//! custom commands and keywords that answers does, and the message joins the nuke scrollback.
//! `EventKind::Tick` (every second) drives timers; `EventKind::StreamStatus` sets uptime and
//! the online/offline conditions. Rules are validated and compiled once per change.
//!
//! Every per-channel buffer is bounded in entries and bytes: cooldowns (global ones apart from
//! per-user ones, [`MAX_GLOBAL_COOLDOWNS`], [`MAX_COOLDOWNS`]), warnings ([`MAX_WARNINGS`],
//! never evicted), permits ([`MAX_PERMITS`], logins of at most 64 bytes), with user ids in
//! keys cut to [`MAX_KEY_ID_BYTES`]; the nuke scrollback ([`nuke::SCROLLBACK_BYTES`] besides
//! its message and age caps) and nukes (8 of at most 10,000 users); named counters
//! ([`template::MAX_COUNTERS`]); command uses and timers (one entry per rule); the journal
//! ([`MAX_JOURNAL`]). What they drop or refuse is counted ([`Drops`]).
//!
//! The seam is the [`ChatHandler`] trait: the service holds an `Arc<dyn ChatHandler>`, so an
//! operator (or a test) can put another piece in its place.

pub mod action;
pub mod bounded;
pub mod builtin;
pub mod commands;
pub mod compiled;
pub mod defence;
pub mod event;
pub mod filters;
pub mod fold;
pub mod fuzzing;
pub mod journal;
pub mod keywords;
pub mod nuke;
pub mod outgoing;
pub mod rng;
pub mod roles;
pub mod rules;
pub mod template;
pub mod timers;

#[cfg(test)]
mod tests;

pub use action::Action;
pub use event::{ChatEvent, ChatMessage, ChatUser, EmoteSpan, EventKind, Platform, Role};
pub use journal::{SavedState, StateChange};
pub use roles::Level;
pub use rules::{ChannelRules, RuleError};
pub use template::{Template, TemplateError};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bounded::ExpiringMap;
use compiled::Compiled;
use nuke::{NukeBook, Scrollback};
use rng::XorShift;
use template::Counters;

/// Most live per-user cooldown entries per channel (a full map drops the soonest-expiring).
pub const MAX_COOLDOWNS: usize = 20_000;
/// Most live global cooldown entries per channel. Keys are rule keys (commands, keywords and
/// built-ins, at most about 1,200 in valid rules), so no chatter can fill this map, and it is
/// apart from the per-user map so that no number of fresh accounts evicts a global cooldown.
pub const MAX_GLOBAL_COOLDOWNS: usize = 4_096;
/// Most live filter warnings per channel. A full map of live warnings refuses new ones
/// (counted) rather than dropping existing ones: a flood of fresh accounts cannot reset a
/// warned user. A refused offender is warned again on the next offence.
pub const MAX_WARNINGS: usize = 20_000;
/// Most live link permits per channel.
pub const MAX_PERMITS: usize = 1_000;
/// Most accounts flagged by other channels kept per channel (a full map drops the
/// soonest-expiring).
pub const MAX_FLAGGED: usize = 10_000;
/// How long `!permit` lasts.
pub const PERMIT_S: u64 = 60;
/// Longest user id (bytes) kept in a cooldown or warning key; longer ids (no platform issues
/// them: Twitch and Discord ids are short numbers) are cut, so each entry stays small.
pub const MAX_KEY_ID_BYTES: usize = 64;
/// Most journal entries kept for the caller between two `take_changes` (the service takes
/// them after every event; a caller that never does loses the newest, counted).
pub const MAX_JOURNAL: usize = 10_000;

/// Things the engine's bounded state dropped or refused, by kind, since the state was made.
/// The service adds the increase after every event to
/// `firehose_engine_state_dropped_total{reason}` ([`Drops::REASONS`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drops {
    /// Live per-user cooldowns dropped to make room.
    pub cooldowns_evicted: u64,
    /// Live global cooldowns dropped to make room (only with heavy rule churn).
    pub global_cooldowns_evicted: u64,
    /// New warnings refused because the map was full of live ones.
    pub warnings_refused: u64,
    /// Live link permits dropped to make room.
    pub permits_evicted: u64,
    /// Scrollback messages dropped for the byte budget before their time or count was up.
    pub scrollback_evicted_bytes: u64,
    /// Journal entries dropped because the caller did not take them.
    pub journal_dropped: u64,
}

impl Drops {
    /// The metric label of each count, in the order of [`Drops::counts`].
    pub const REASONS: [&'static str; 6] = [
        "cooldown_evicted",
        "global_cooldown_evicted",
        "warning_refused",
        "permit_evicted",
        "scrollback_evicted_bytes",
        "journal_dropped",
    ];

    /// The counts, in the order of [`Drops::REASONS`].
    pub fn counts(&self) -> [u64; 6] {
        [
            self.cooldowns_evicted,
            self.global_cooldowns_evicted,
            self.warnings_refused,
            self.permits_evicted,
            self.scrollback_evicted_bytes,
            self.journal_dropped,
        ]
    }
}

/// `id` cut to [`MAX_KEY_ID_BYTES`] on a char boundary.
pub fn key_id(id: &str) -> String {
    let mut end = id.len().min(MAX_KEY_ID_BYTES);
    while !id.is_char_boundary(end) {
        end -= 1;
    }
    id[..end].to_string()
}

/// Runtime bookkeeping of a channel: everything that changes as chat flows.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// When the stream went live, `None` while offline.
    pub stream_started_ms: Option<u64>,
    /// Chat lines seen (for timers' minimum lines).
    pub lines: u64,
    /// Uses of each custom command, by command name.
    pub command_uses: BTreeMap<String, u64>,
    pub counters: Counters,
    /// Global cooldowns keyed by rule key (`cmd:!name`, `kw:name`, `builtin:!echo`).
    pub global_cooldowns: ExpiringMap<String, ()>,
    /// Per-user cooldowns keyed by (rule key, user id).
    pub user_cooldowns: ExpiringMap<(String, String), ()>,
    /// Filter warnings keyed by (filter name, user id).
    pub warnings: ExpiringMap<(String, String), ()>,
    /// One-link permits keyed by lower-case login.
    pub permits: ExpiringMap<String, ()>,
    pub scrollback: Scrollback,
    pub nukes: NukeBook,
    /// Per timer name: (last fired or first seen at ms, lines at that time).
    pub timers: BTreeMap<String, (u64, u64)>,
    /// The raid defence's window and engaged steps.
    pub defence: defence::DefenceRuntime,
    /// Accounts another channel banned, waiting for their first message here: user key ->
    /// (source channel, reason). At most [`MAX_FLAGGED`], for a day each.
    pub flagged: ExpiringMap<String, (String, String)>,
    pub rng: XorShift,
    /// Changes to lasting state not yet taken by the caller (see [`journal`]); at most
    /// [`MAX_JOURNAL`], see [`Runtime::note`].
    pub journal: Vec<StateChange>,
    pub journal_dropped: u64,
}

impl Runtime {
    /// Notes a change to lasting state for the caller; once the caller has let
    /// [`MAX_JOURNAL`] notes pile up, further ones are dropped (counted).
    pub fn note(&mut self, change: StateChange) {
        if self.journal.len() >= MAX_JOURNAL {
            self.journal_dropped += 1;
            return;
        }
        self.journal.push(change);
    }

    /// What the bounded state dropped or refused so far.
    pub fn drops(&self) -> Drops {
        Drops {
            cooldowns_evicted: self.user_cooldowns.evicted(),
            global_cooldowns_evicted: self.global_cooldowns.evicted(),
            warnings_refused: self.warnings.refused(),
            permits_evicted: self.permits.evicted(),
            scrollback_evicted_bytes: self.scrollback.evicted_for_bytes(),
            journal_dropped: self.journal_dropped,
        }
    }
}

impl Default for Runtime {
    fn default() -> Self {
        Self {
            stream_started_ms: None,
            lines: 0,
            command_uses: BTreeMap::new(),
            counters: Counters::default(),
            global_cooldowns: ExpiringMap::new(MAX_GLOBAL_COOLDOWNS),
            user_cooldowns: ExpiringMap::new(MAX_COOLDOWNS),
            warnings: ExpiringMap::new(MAX_WARNINGS),
            permits: ExpiringMap::new(MAX_PERMITS),
            scrollback: Scrollback::default(),
            nukes: NukeBook::default(),
            timers: BTreeMap::new(),
            defence: defence::DefenceRuntime::default(),
            flagged: ExpiringMap::new(MAX_FLAGGED),
            rng: XorShift::default(),
            journal: Vec::new(),
            journal_dropped: 0,
        }
    }
}

/// What [`ChannelState::forget_user`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ForgottenUser {
    pub warnings: usize,
    pub cooldowns: usize,
    /// Messages in the nuke scrollback.
    pub scrollback: usize,
}

impl ForgottenUser {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: ForgottenUser) {
        self.warnings += other.warnings;
        self.cooldowns += other.cooldowns;
        self.scrollback += other.scrollback;
    }

    /// Entries removed, all kinds.
    pub fn total(&self) -> usize {
        self.warnings + self.cooldowns + self.scrollback
    }
}

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
    /// The channel's rules; replaced as a whole (copy-on-write) when edited.
    pub rules: Arc<ChannelRules>,
    compiled: Arc<Compiled>,
    pub runtime: Runtime,
}

impl ChannelState {
    /// A channel with no rules beyond the built-in commands, its `$(random)` seeded with
    /// `seed` (the service passes OS randomness; the same seed gives the same sequence).
    pub fn new(channel: impl Into<String>, seed: u64) -> Self {
        let runtime = Runtime {
            rng: XorShift::from_seed(seed),
            ..Runtime::default()
        };
        Self {
            channel: channel.into(),
            runtime,
            ..Self::default()
        }
    }

    /// A channel running `rules` (refused if they do not compile), seeded like
    /// [`ChannelState::new`].
    pub fn with_rules(
        channel: impl Into<String>,
        rules: ChannelRules,
        seed: u64,
    ) -> Result<Self, RuleError> {
        let mut state = Self::new(channel, seed);
        state.set_rules(rules)?;
        Ok(state)
    }

    /// A channel running `rules` already compiled: `compiled` must be what
    /// [`Compiled::build`] made of these very rules (the service shares one compiled form
    /// between the channels whose rules are the same; an edit in one of them compiles its own
    /// and changes no other).
    pub fn with_compiled(
        channel: impl Into<String>,
        rules: Arc<ChannelRules>,
        compiled: Arc<Compiled>,
        seed: u64,
    ) -> Self {
        let mut state = Self::new(channel, seed);
        state.set_compiled(rules, compiled);
        state
    }

    /// Replaces the rules with `rules` already compiled into `compiled` (see
    /// [`ChannelState::with_compiled`]).
    pub fn set_compiled(&mut self, rules: Arc<ChannelRules>, compiled: Arc<Compiled>) {
        let names: std::collections::BTreeSet<&str> =
            rules.commands.iter().map(|c| c.name.as_str()).collect();
        self.runtime
            .command_uses
            .retain(|name, _| names.contains(name.as_str()));
        self.rules = rules;
        self.compiled = compiled;
    }

    /// Replaces the rules (validated and compiled first; on error nothing changes).
    pub fn set_rules(&mut self, rules: ChannelRules) -> Result<(), RuleError> {
        let compiled = if rules.filters == self.rules.filters && !rules.filters.is_empty() {
            Compiled::rebuild(&rules, &self.compiled)?
        } else {
            Compiled::build(&rules)?
        };
        self.set_compiled(Arc::new(rules), Arc::new(compiled));
        Ok(())
    }

    /// Applies `edit` to a copy of the rules and installs the copy if it still validates.
    pub fn edit_rules(&mut self, edit: impl FnOnce(&mut ChannelRules)) -> Result<(), RuleError> {
        let mut rules = (*self.rules).clone();
        edit(&mut rules);
        self.set_rules(rules)
    }

    /// The compiled matchers of the current rules.
    pub fn compiled(&self) -> &Arc<Compiled> {
        &self.compiled
    }

    /// Whether the stream is live.
    pub fn online(&self) -> bool {
        self.runtime.stream_started_ms.is_some()
    }

    /// Takes the changes to lasting state made since the last call (counter increments of one
    /// name are summed).
    pub fn take_changes(&mut self) -> Vec<StateChange> {
        let mut changes = std::mem::take(&mut self.runtime.journal);
        for (name, delta) in self.runtime.counters.take_increments() {
            changes.push(StateChange::CounterAdded { name, delta });
        }
        changes
    }

    /// Puts back what a store kept: counters, command uses and live warnings. Values the state
    /// already holds for the same keys are replaced; nothing is journalled.
    pub fn restore(&mut self, saved: &SavedState, now_ms: u64) {
        for (name, value) in &saved.counters {
            self.runtime.counters.set(name, *value);
        }
        let names: std::collections::BTreeSet<&str> = self
            .rules
            .commands
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        for (name, uses) in &saved.command_uses {
            if names.contains(name.as_str()) {
                self.runtime.command_uses.insert(name.clone(), *uses);
            }
        }
        defence::restore(self, saved.defence_steps, now_ms);
        for (filter, user, expires_ms) in &saved.warnings {
            if *expires_ms > now_ms {
                self.runtime.warnings.try_insert(
                    (filter.clone(), key_id(user)),
                    (),
                    *expires_ms,
                    now_ms,
                );
            }
        }
    }

    /// Forgets what this state holds about one user (an operator deleting their data): their
    /// filter warnings, their per-user cooldowns and their messages in the nuke scrollback.
    /// Channel-wide state (counters, global cooldowns, the users a live nuke acted on, which
    /// `!nukeundo` needs) stays.
    pub fn forget_user(&mut self, user_id: &str) -> ForgottenUser {
        let runtime = &mut self.runtime;
        let key = key_id(user_id);
        ForgottenUser {
            warnings: runtime.warnings.remove_where(|(_, user)| *user == key),
            cooldowns: runtime
                .user_cooldowns
                .remove_where(|(_, user)| *user == key),
            scrollback: runtime.scrollback.forget_user(user_id),
        }
    }

    /// Marks the stream live since `started_ms`, or offline with `None`.
    pub fn set_stream_started(&mut self, started_ms: Option<u64>) {
        self.runtime.stream_started_ms = started_ms;
    }
}

/// The seam between the service and the bot logic.
///
/// Implementations must be pure with respect to I/O: all effects are returned as actions.
/// They may panic on a bug; the channel actor that calls them is supervised and restarts.
pub trait ChatHandler: Send + Sync + 'static {
    fn handle(&self, state: &mut ChannelState, event: &ChatEvent, now: SystemTime) -> Vec<Action>;
}

/// The default engine.
#[derive(Debug, Default, Clone)]
pub struct Engine;

impl ChatHandler for Engine {
    fn handle(&self, state: &mut ChannelState, event: &ChatEvent, now: SystemTime) -> Vec<Action> {
        handle(state, event, now)
    }
}

/// Whether a chat message invokes a command: its first word is `!` and a name, as every
/// command's name (and every built-in's) is. Transports answer these before automatic output.
pub fn invokes_command(text: &str) -> bool {
    text.split_whitespace()
        .next()
        .is_some_and(|first| first.len() > 1 && first.starts_with('!'))
}

/// Milliseconds since the Unix epoch (0 for times before it).
pub fn millis(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Handles one chat event for one channel and returns what the bot should do.
pub fn handle(state: &mut ChannelState, event: &ChatEvent, now: SystemTime) -> Vec<Action> {
    let now_ms = millis(now);
    match &event.kind {
        EventKind::Message(message) => on_message(state, message, now_ms),
        EventKind::Tick => {
            let mut actions = timers::on_tick(state, now_ms);
            actions.extend(defence::on_tick(state, now_ms));
            actions
        }
        EventKind::UserNotice { kind, .. } if kind == "raid" => {
            defence::on_raid(state, now_ms);
            Vec::new()
        }
        EventKind::UserFlagged {
            user_id,
            login,
            source,
            reason,
        } => defence::on_flagged(state, (user_id, login), source, reason, now_ms),
        EventKind::ModerationBacklog { drain_ms, waiting } => {
            defence::on_backlog(state, *drain_ms, *waiting, now_ms)
        }
        EventKind::ChatModeFailed { change, why } => {
            defence::on_mode_failed(state, *change, why, now_ms)
        }
        EventKind::StreamStatus {
            online,
            started_at_ms,
        } => {
            let started = online.then(|| started_at_ms.unwrap_or(now_ms));
            state.set_stream_started(started);
            Vec::new()
        }
        _ => Vec::new(),
    }
}

/// One chat message on its way through the engine's stages, with what each of them needs.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub message: &'a ChatMessage,
    /// The text folded for matching (case, accents, look-alikes, zalgo).
    pub folded: &'a str,
    /// The author's level in this channel (regulars included).
    pub level: Level,
    pub now_ms: u64,
}

fn on_message(state: &mut ChannelState, message: &ChatMessage, now_ms: u64) -> Vec<Action> {
    state.messages_seen += 1;
    state.runtime.lines += 1;
    let level = Level::of(&message.user, &state.compiled.regulars);
    let folded = fold::fold(&message.text);
    let incoming = Incoming {
        message,
        folded: &folded,
        level,
        now_ms,
    };
    if let Some(actions) = defence::flagged_speaks(state, incoming) {
        return actions;
    }
    let mut actions = filters::check(state, incoming);
    let moderated = actions.iter().any(Action::is_moderation);
    if !moderated {
        actions.extend(nuke::check_live(state, incoming));
    }
    let defended = defence::observe(state, incoming, &actions);
    if actions.iter().any(Action::is_moderation) {
        actions.extend(defended);
        return actions;
    }
    let answered = answer(state, incoming);
    // Remembered after answering, so a `!nuke` never matches its own command message.
    state
        .runtime
        .scrollback
        .push(message, &folded, level, now_ms);
    if answered.iter().any(|a| a.chat_text().is_some()) {
        state.commands_answered += 1;
    }
    // The defence's decision on this message before the answer: a moderator's `!raidoff`
    // that also tripped a detection ends with the modes off, as the engine then holds them.
    actions.extend(defended);
    actions.extend(answered);
    actions
}

fn answer(state: &mut ChannelState, incoming: Incoming<'_>) -> Vec<Action> {
    if let Some(actions) = defence::command(state, incoming) {
        return actions;
    }
    if let Some(actions) = builtin::answer(state, incoming) {
        return actions;
    }
    if let Some(actions) = commands::manage(state, incoming) {
        return actions;
    }
    if let Some(actions) = commands::run_custom(state, incoming) {
        return actions;
    }
    keywords::respond(state, incoming)
}
