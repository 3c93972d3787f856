//! `!nuke` and `!nukeundo`: moderate everything that matched a phrase recently, and what
//! matches it next.
//!
//! `!nuke <phrase or /regex/> [scrollback seconds <= 600] [delete | timeout N | ban]` applies
//! the action to every message in the bounded scrollback that matches (folded text, like banned
//! phrases) and keeps applying it to new matching messages for `nuke.window_s` seconds.
//! Timeouts and bans act once per user; deletes once per message. Users at or above
//! `nuke.exempt` are never nuked. `!nukeundo` lifts the timeouts and bans of the most recent
//! nuke ([`Action::Unban`]) and stops it. Scrollback, nukes and their user lists are capped.

use std::collections::{BTreeSet, VecDeque};

use regex::Regex;

use super::filters::mod_action;
use super::fold::fold;
use super::roles::Level;
use super::rules::{ascii_word_boundaries, build_regex, ModAction, PatternError, MAX_TIMEOUT_S};
use super::{Action, ChannelState, ChatMessage, ChatUser, Incoming};

/// Most messages the scrollback keeps.
pub const SCROLLBACK_MESSAGES: usize = 5000;
/// Oldest message the scrollback keeps, in seconds (the longest nuke scrollback).
pub const SCROLLBACK_S: u64 = 600;
const MAX_NUKES: usize = 8;
const MAX_NUKED_USERS: usize = 10_000;
const RULE: &str = "nuke";

/// A message as remembered for nukes.
#[derive(Debug, Clone)]
pub struct SeenMessage {
    pub id: String,
    pub user_id: String,
    pub folded: String,
    pub at_ms: u64,
    pub level: Level,
}

/// Recent messages, bounded in count and age.
#[derive(Debug, Clone, Default)]
pub struct Scrollback {
    items: VecDeque<SeenMessage>,
}

impl Scrollback {
    /// Remembers `message`, dropping what is too old or over the cap.
    pub fn push(&mut self, message: &ChatMessage, folded: &str, level: Level, now_ms: u64) {
        let oldest = now_ms.saturating_sub(SCROLLBACK_S * 1000);
        while self.items.front().is_some_and(|m| m.at_ms < oldest)
            || self.items.len() >= SCROLLBACK_MESSAGES
        {
            self.items.pop_front();
        }
        self.items.push_back(SeenMessage {
            id: message.id.clone(),
            user_id: message.user.id.clone(),
            folded: folded.to_string(),
            at_ms: now_ms,
            level,
        });
    }

    /// Number of messages held.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Forgets every message of `user_id`; returns how many went.
    pub fn forget_user(&mut self, user_id: &str) -> usize {
        let before = self.items.len();
        self.items.retain(|m| m.user_id != user_id);
        before - self.items.len()
    }

    /// Whether no message is held.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
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
            return vec![Action::Say {
                text: format!("nuke: {error}"),
            }]
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
        if seen.at_ms < since || seen.level >= exempt || !nuke.pattern.matches(&seen.folded) {
            continue;
        }
        messages += 1;
        if let Some(action) = act(&mut nuke, &seen.id, &seen.user_id) {
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
    let first_time = nuke.users.len() < MAX_NUKED_USERS && nuke.users.insert(user_id.to_string());
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
