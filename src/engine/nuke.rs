//! `!nuke` and `!nukeundo`: moderate everything that matched a phrase recently, and what
//! matches it next.
//!
//! `!nuke <phrase or /regex/> [scrollback seconds <= 600] [delete | timeout N | ban]` applies
//! the action to every message in the bounded scrollback that matches (folded text, like banned
//! phrases) and keeps applying it to new matching messages for `nuke.window_s` seconds.
//! Timeouts and bans act once per user; deletes once per message. Users at or above
//! `nuke.exempt` are never nuked. `!nukeundo` lifts the timeouts and bans of the most recent
//! nuke ([`Action::Unban`]) and stops it. Scrollback, nukes and their user lists are capped:
//! the scrollback at [`SCROLLBACK_MESSAGES`], [`SCROLLBACK_S`] and [`SCROLLBACK_BYTES`] (each
//! message's folded text cut to [`SEEN_FOLDED_BYTES`]); at most 8 nukes of 10,000 users each
//! (user ids are platform ids, a few bytes), whose patterns are at most 500 characters.

use std::collections::{BTreeSet, VecDeque};

use regex::Regex;

use super::filters::mod_action;
use super::fold::fold;
use super::outgoing::screened;
use super::roles::Level;
use super::rules::{ascii_word_boundaries, build_regex, ModAction, PatternError, MAX_TIMEOUT_S};
use super::template::Rendered;
use super::{Action, ChannelState, ChatMessage, ChatUser, Incoming};

/// Most messages the scrollback keeps.
pub const SCROLLBACK_MESSAGES: usize = 5000;
/// Oldest message the scrollback keeps, in seconds (the longest nuke scrollback).
pub const SCROLLBACK_S: u64 = 600;
/// Most bytes the scrollback of one channel holds, counted by [`SeenMessage::bytes`] (its
/// folded text, ids and fixed size). Typical chat (5,000 messages of ~100 bytes) fits well
/// under it; a flood of text that folds long (U+FDFA folds to 33 bytes) evicts the oldest
/// messages instead of growing memory.
pub const SCROLLBACK_BYTES: usize = 2 << 20;
/// Most bytes of a message's folded text the scrollback keeps (a nuke looks at this much of
/// each remembered message; 500 characters of any script but the longest-folding ligatures).
pub const SEEN_FOLDED_BYTES: usize = 2048;
/// Longest message id kept for a remembered message, in bytes (user ids are cut to
/// [`crate::engine::MAX_KEY_ID_BYTES`], like everywhere in the engine's state).
pub const SEEN_ID_BYTES: usize = 128;
const MAX_NUKES: usize = 8;
const MAX_NUKED_USERS: usize = 10_000;
const RULE: &str = "nuke";

/// A message as remembered for nukes: its id, its author's id and its folded text in one
/// allocation (a busy channel remembers thousands; three strings each cost three allocations
/// and 72 bytes of headers).
#[derive(Debug, Clone)]
pub struct SeenMessage {
    /// The id, then the user id, then the folded text.
    text: Box<str>,
    id_len: u8,
    user_len: u8,
    pub at_ms: u64,
    pub level: Level,
}

// The lengths fit their bytes.
const _: () = assert!(SEEN_ID_BYTES <= u8::MAX as usize);
const _: () = assert!(super::MAX_KEY_ID_BYTES <= u8::MAX as usize);

impl SeenMessage {
    /// `id` cut to [`SEEN_ID_BYTES`], `user_id` (already cut to
    /// [`crate::engine::MAX_KEY_ID_BYTES`]) and `folded` cut to [`SEEN_FOLDED_BYTES`].
    fn new(id: &str, user_id: &str, folded: &str, at_ms: u64, level: Level) -> SeenMessage {
        let id = cut(id, SEEN_ID_BYTES);
        let user_id = cut(user_id, super::MAX_KEY_ID_BYTES);
        let folded = cut(folded, SEEN_FOLDED_BYTES);
        let mut text = String::with_capacity(id.len() + user_id.len() + folded.len());
        text.push_str(id);
        text.push_str(user_id);
        text.push_str(folded);
        SeenMessage {
            text: text.into_boxed_str(),
            id_len: id.len() as u8,
            user_len: user_id.len() as u8,
            at_ms,
            level,
        }
    }

    pub fn id(&self) -> &str {
        &self.text[..usize::from(self.id_len)]
    }

    pub fn user_id(&self) -> &str {
        let start = usize::from(self.id_len);
        &self.text[start..start + usize::from(self.user_len)]
    }

    /// The folded text, cut to [`SEEN_FOLDED_BYTES`].
    pub fn folded(&self) -> &str {
        &self.text[usize::from(self.id_len) + usize::from(self.user_len)..]
    }

    /// Bytes this message takes in the scrollback: its text and its own size.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<SeenMessage>() + self.text.len()
    }
}

/// `text` cut to at most `max` bytes on a char boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Recent messages, bounded in count, age and bytes.
#[derive(Debug, Clone, Default)]
pub struct Scrollback {
    items: VecDeque<SeenMessage>,
    bytes: usize,
    evicted_for_bytes: u64,
}

impl Scrollback {
    /// Remembers `message`, dropping what is too old or over the caps.
    pub fn push(&mut self, message: &ChatMessage, folded: &str, level: Level, now_ms: u64) {
        let seen = SeenMessage::new(&message.id, &message.user.id, folded, now_ms, level);
        let size = seen.bytes();
        let oldest = now_ms.saturating_sub(SCROLLBACK_S * 1000);
        while let Some(front) = self.items.front() {
            let old = front.at_ms < oldest;
            let full = self.items.len() >= SCROLLBACK_MESSAGES;
            let heavy = self.bytes + size > SCROLLBACK_BYTES;
            if !(old || full || heavy) {
                break;
            }
            if heavy && !old && !full {
                self.evicted_for_bytes += 1;
            }
            self.pop_front();
        }
        self.bytes += size;
        self.items.push_back(seen);
    }

    fn pop_front(&mut self) {
        if let Some(gone) = self.items.pop_front() {
            self.bytes -= gone.bytes();
        }
    }

    /// Number of messages held.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Forgets every message of `user_id`; returns how many went.
    pub fn forget_user(&mut self, user_id: &str) -> usize {
        let before = self.items.len();
        let user_id = super::key_id(user_id);
        self.items.retain(|m| m.user_id() != user_id);
        self.bytes = self.items.iter().map(SeenMessage::bytes).sum();
        before - self.items.len()
    }

    /// Whether no message is held.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes held (the sum of [`SeenMessage::bytes`]); at most [`SCROLLBACK_BYTES`].
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Messages dropped early (before their age or the message cap) to stay in the byte budget.
    pub fn evicted_for_bytes(&self) -> u64 {
        self.evicted_for_bytes
    }
}

/// What a nuke looks for.
#[derive(Debug, Clone)]
pub enum NukePattern {
    /// A folded substring.
    Plain(String),
    Regex(Regex),
}

impl NukePattern {
    fn matches(&self, folded: &str) -> bool {
        match self {
            NukePattern::Plain(p) => folded.contains(p.as_str()),
            NukePattern::Regex(re) => re.is_match(folded),
        }
    }
}

/// One nuke: its pattern, action, end of its live window and the users it acted on.
#[derive(Debug, Clone)]
pub struct Nuke {
    pub pattern: NukePattern,
    pub action: ModAction,
    pub until_ms: u64,
    pub users: BTreeSet<String>,
}

/// The recent nukes of a channel, newest last.
#[derive(Debug, Clone, Default)]
pub struct NukeBook {
    nukes: VecDeque<Nuke>,
}

impl NukeBook {
    /// Whether any nuke is still live at `now_ms`.
    pub fn any_live(&self, now_ms: u64) -> bool {
        self.nukes.iter().any(|n| n.until_ms > now_ms)
    }
}

/// A parsed `!nuke` command.
#[derive(Debug, Clone)]
struct NukeRequest {
    pattern: NukePattern,
    scrollback_s: u64,
    action: ModAction,
}

/// Why a `!nuke` is refused (its text is the bot's answer, after `nuke: `).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum NukeError {
    #[error("usage: !nuke <phrase or /regex/> [seconds] [delete|timeout N|ban]")]
    Usage,
    #[error("bad timeout '{0}'")]
    BadTimeout(String),
    #[error("timeout must be 1 to {MAX_TIMEOUT_S} seconds")]
    TimeoutRange,
    #[error("scrollback is at most {SCROLLBACK_S} seconds")]
    ScrollbackTooLong,
    #[error(transparent)]
    Pattern(#[from] PatternError),
}

fn parse_request(args: &[&str], state: &ChannelState) -> Result<NukeRequest, NukeError> {
    let settings = &state.rules.nuke;
    let mut words = args.to_vec();
    let mut action = settings.default_action;
    match words.as_slice() {
        [.., "timeout", n] => {
            let seconds: u64 = n
                .parse()
                .map_err(|_| NukeError::BadTimeout(n.to_string()))?;
            if !(1..=MAX_TIMEOUT_S).contains(&seconds) {
                return Err(NukeError::TimeoutRange);
            }
            action = ModAction::Timeout(seconds);
            words.truncate(words.len() - 2);
        }
        [.., "delete"] | [.., "ban"] => {
            action = if words.last() == Some(&"ban") {
                ModAction::Ban
            } else {
                ModAction::Delete
            };
            words.pop();
        }
        _ => {}
    }
    let mut scrollback_s = settings.default_scrollback_s;
    if let Some(seconds) = words
        .last()
        .and_then(|w| w.parse::<u64>().ok())
        .filter(|_| words.len() > 1)
    {
        if seconds > SCROLLBACK_S {
            return Err(NukeError::ScrollbackTooLong);
        }
        scrollback_s = seconds;
        words.pop();
    }
    let phrase = words.join(" ");
    Ok(NukeRequest {
        pattern: parse_pattern(&phrase)?,
        scrollback_s,
        action,
    })
}

fn parse_pattern(phrase: &str) -> Result<NukePattern, NukeError> {
    if phrase.is_empty() {
        return Err(NukeError::Usage);
    }
    match phrase.strip_prefix('/').and_then(|p| p.strip_suffix('/')) {
        Some(re) if !re.is_empty() => Ok(NukePattern::Regex(build_regex(
            &ascii_word_boundaries(re),
            true,
        )?)),
        _ => Ok(NukePattern::Plain(fold(phrase))),
    }
}

/// Runs `!nuke` with the words after the command name.
pub fn run(state: &mut ChannelState, args: &[&str], now_ms: u64) -> Vec<Action> {
    let request = match parse_request(args, state) {
        Ok(request) => request,
        Err(error) => {
            // The error may quote the phrase (chat input): screened like any such text.
            let rendered = Rendered::new().owner("nuke: ").chat(&error.to_string());
            let say = Action::Say {
                text: rendered.text.clone(),
            };
            return vec![screened(state, &rendered, say, now_ms)];
        }
    };
    let exempt = state.rules.nuke.exempt;
    let since = now_ms.saturating_sub(request.scrollback_s * 1000);
    let mut nuke = Nuke {
        pattern: request.pattern,
        action: request.action,
        until_ms: now_ms.saturating_add(state.rules.nuke.window_s * 1000),
        users: BTreeSet::new(),
    };
    let mut actions = Vec::new();
    let mut messages = 0usize;
    for seen in state.runtime.scrollback.items.iter() {
        if seen.at_ms < since || seen.level >= exempt || !nuke.pattern.matches(seen.folded()) {
            continue;
        }
        messages += 1;
        if let Some(action) = act(&mut nuke, seen.id(), seen.user_id()) {
            actions.push(action);
        }
    }
    let users = nuke.users.len();
    if state.runtime.nukes.nukes.len() >= MAX_NUKES {
        state.runtime.nukes.nukes.pop_front();
    }
    state.runtime.nukes.nukes.push_back(nuke);
    actions.push(Action::Say {
        text: format!("Nuked {messages} messages from {users} users."),
    });
    actions
}

/// The action a nuke takes on one message, once per user for timeouts and bans.
fn act(nuke: &mut Nuke, message_id: &str, user_id: &str) -> Option<Action> {
    let first_time =
        nuke.users.len() < MAX_NUKED_USERS && nuke.users.insert(super::key_id(user_id));
    if nuke.action != ModAction::Delete && !first_time {
        return None;
    }
    let target = ChatMessage {
        id: message_id.to_string(),
        user: ChatUser {
            id: user_id.to_string(),
            ..ChatUser::default()
        },
        ..ChatMessage::default()
    };
    Some(mod_action(nuke.action, &target, RULE, RULE))
}

/// Applies live nukes to a new message.
pub fn check_live(state: &mut ChannelState, incoming: Incoming<'_>) -> Vec<Action> {
    let Incoming {
        message,
        folded,
        level,
        now_ms,
    } = incoming;
    if level >= state.rules.nuke.exempt || !state.runtime.nukes.any_live(now_ms) {
        return Vec::new();
    }
    let live = state
        .runtime
        .nukes
        .nukes
        .iter_mut()
        .rev()
        .find(|n| n.until_ms > now_ms && n.pattern.matches(folded));
    live.and_then(|nuke| act(nuke, &message.id, &message.user.id))
        .into_iter()
        .collect()
}

/// Runs `!nukeundo`: lifts the most recent nuke's timeouts and bans and stops it.
pub fn undo(state: &mut ChannelState) -> Vec<Action> {
    let Some(nuke) = state.runtime.nukes.nukes.pop_back() else {
        return vec![Action::Say {
            text: "No nuke to undo.".into(),
        }];
    };
    let mut actions = Vec::new();
    if nuke.action != ModAction::Delete {
        actions.extend(nuke.users.iter().map(|user_id| Action::Unban {
            user_id: user_id.clone(),
            rule: RULE.to_string(),
        }));
    }
    actions.push(Action::Say {
        text: format!("Nuke undone: {} users unbanned.", actions.len()),
    });
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_message_keeps_its_three_parts_apart_and_cut_on_char_boundaries() {
        let id = "é".repeat(100); // 200 bytes: cut to 128, on a boundary
        let user = "ü".repeat(40); // 80 bytes: cut to 64
        let folded = "x".repeat(SEEN_FOLDED_BYTES + 10);
        let seen = SeenMessage::new(&id, &user, &folded, 7, Level::Everyone);
        assert_eq!(seen.id(), "é".repeat(64));
        assert_eq!(seen.user_id(), "ü".repeat(32));
        assert_eq!(seen.folded().len(), SEEN_FOLDED_BYTES);
        assert_eq!(
            seen.bytes(),
            std::mem::size_of::<SeenMessage>() + 128 + 64 + SEEN_FOLDED_BYTES
        );
        // Empty parts stay empty; text that looks like a separator is just text.
        let seen = SeenMessage::new("", "42", "a\u{0}b", 0, Level::Everyone);
        assert_eq!(
            (seen.id(), seen.user_id(), seen.folded()),
            ("", "42", "a\u{0}b")
        );
    }
}
