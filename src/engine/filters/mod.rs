//! Moderation filters: caps, links (with `!permit`), symbols, emote spam, repetition, length,
//! zalgo and banned phrases.
//!
//! For one message every enabled filter the author is not exempt from is checked (banned
//! phrases of all filters in one scan, see [`crate::engine::compiled::BannedSet`]). Each hit
//! goes through warning-first escalation: the first offence gets the filter's warning action
//! and starts a warning that expires after `warning_expiry_s`; an offence while the warning is
//! live gets the configured action and renews the warning. Warnings are never dropped to make
//! room (see [`crate::engine::MAX_WARNINGS`]). Of all live hits the harshest
//! action wins (ban > longer timeout > shorter timeout > delete; on a tie banned phrases beat
//! other filters, then the earlier filter wins) and only its message is posted, at most once
//! per user per `message_user_cooldown_s` and once per `message_global_cooldown_s` in the
//! channel (the action itself is never held back). Shadow filters keep their own warnings and
//! return [`Action::Shadow`] records only.

pub mod checks;

use super::compiled::Compiled;
use super::outgoing::screened;
use super::roles::Level;
use super::rules::{FilterKind, FilterRule, ModAction};
use super::template::RenderContext;
use super::{Action, ChannelState, ChatMessage, Incoming, StateChange};

/// One filter's decision about one message.
#[derive(Debug, Clone)]
struct Verdict {
    filter: usize,
    action: ModAction,
    warning: bool,
}

impl Verdict {
    fn rank(&self, rules: &[FilterRule]) -> (u8, u64, u8) {
        let (level, seconds) = self.action.severity();
        let banned = u8::from(rules[self.filter].kind == FilterKind::BannedPhrases);
        (level, seconds, banned)
    }
}

/// Runs every filter over `message`; returns moderation actions, messages and shadow records.
pub fn check(state: &mut ChannelState, incoming: Incoming<'_>) -> Vec<Action> {
    let Incoming {
        message, now_ms, ..
    } = incoming;
    if state.rules.filters.is_empty() {
        return Vec::new();
    }
    let rules = state.rules.clone();
    let compiled = state.compiled().clone();
    let hits = detect(state, &compiled, incoming);
    let mut actions = Vec::new();
    let mut winner: Option<Verdict> = None;
    for (filter, action) in hits {
        let verdict = escalate(
            state,
            &rules.filters[filter],
            filter,
            action,
            &message.user.id,
            now_ms,
        );
        if rules.filters[filter].shadow {
            actions.extend(outcome(state, &compiled, &verdict, message, now_ms));
            continue;
        }
        winner = match winner {
            Some(best) if best.rank(&rules.filters) >= verdict.rank(&rules.filters) => Some(best),
            _ => Some(verdict),
        };
    }
    if let Some(verdict) = winner {
        actions.extend(outcome(state, &compiled, &verdict, message, now_ms));
    }
    actions
}

/// Every filter `message` breaks, with the action its (phrase) configuration asks for.
fn detect(
    state: &mut ChannelState,
    compiled: &Compiled,
    incoming: Incoming<'_>,
) -> Vec<(usize, ModAction)> {
    let Incoming {
        message,
        folded,
        level,
        now_ms,
    } = incoming;
    let rules = state.rules.clone();
    let online = state.online();
    let mut hits = banned_hits(&rules.filters, compiled, folded, level, online, now_ms);
    for (i, filter) in rules.filters.iter().enumerate() {
        if !filter.enabled || level >= filter.exempt || filter.kind == FilterKind::BannedPhrases {
            continue;
        }
        if breaks(filter, compiled, message, folded) && !permitted(state, filter, message, now_ms) {
            hits.push((i, filter.action));
        }
    }
    hits.sort_by_key(|(i, _)| *i);
    hits
}

fn breaks(filter: &FilterRule, compiled: &Compiled, message: &ChatMessage, folded: &str) -> bool {
    let text = message.text.as_str();
    match filter.kind {
        FilterKind::Caps => checks::caps(filter, text, &message.emotes),
        FilterKind::Symbols => checks::symbols(filter, text, &message.emotes),
        FilterKind::Emotes => checks::emotes(filter, &message.emotes),
        FilterKind::Zalgo => checks::zalgo(filter, text),
        FilterKind::Length => checks::length(filter, text),
        FilterKind::Repetition => checks::repetition(filter, folded),
        FilterKind::Links => compiled
            .link
            .as_ref()
            .is_some_and(|re| checks::links(filter, folded, re)),
        FilterKind::BannedPhrases => false,
    }
}

/// A link from a user holding a `!permit` passes once, using the permit up.
fn permitted(
    state: &mut ChannelState,
    filter: &FilterRule,
    message: &ChatMessage,
    now_ms: u64,
) -> bool {
    filter.kind == FilterKind::Links
        && state
            .runtime
            .permits
            .remove(&message.user.login.to_lowercase(), now_ms)
            .is_some()
}

/// Banned-phrase filters hit by `folded`, each with its harshest applicable phrase action.
fn banned_hits(
    filters: &[FilterRule],
    compiled: &Compiled,
    folded: &str,
    level: Level,
    online: bool,
    now_ms: u64,
) -> Vec<(usize, ModAction)> {
    let mut hits: Vec<(usize, ModAction)> = Vec::new();
    for (fi, pi) in compiled.banned.matches(folded) {
        let filter = &filters[fi];
        let phrase = &filter.phrases[pi];
        let live = phrase.expires_at_ms.is_none_or(|t| t > now_ms)
            && (online || !phrase.online_only)
            && (!online || !phrase.offline_only);
        if !filter.enabled || level >= filter.exempt || !live {
            continue;
        }
        let action = phrase.action.unwrap_or(filter.action);
        match hits.iter_mut().find(|(i, _)| *i == fi) {
            Some(hit) if hit.1.severity() < action.severity() => hit.1 = action,
            Some(_) => {}
            None => hits.push((fi, action)),
        }
    }
    hits
}

/// Applies warning-first escalation to one hit.
fn escalate(
    state: &mut ChannelState,
    filter: &FilterRule,
    index: usize,
    action: ModAction,
    user_id: &str,
    now_ms: u64,
) -> Verdict {
    if !filter.warning_first {
        return Verdict {
            filter: index,
            action,
            warning: false,
        };
    }
    let key = (filter.name.clone(), super::key_id(user_id));
    let warned = state.runtime.warnings.contains(&key, now_ms);
    let expires = now_ms.saturating_add(filter.warning_expiry_s.saturating_mul(1000));
    // A full map of live warnings refuses a new one rather than dropping another user's:
    // this offender is then warned again next time (and the refusal is counted).
    if state.runtime.warnings.try_insert(key, (), expires, now_ms) {
        state.runtime.note(StateChange::Warned {
            filter: filter.name.clone(),
            user_id: user_id.to_string(),
            expires_ms: expires,
        });
    }
    if warned {
        Verdict {
            filter: index,
            action,
            warning: false,
        }
    } else {
        Verdict {
            filter: index,
            action: filter.warning_action,
            warning: true,
        }
    }
}

/// The actions of a verdict: the moderation action and, unless silent, the message.
fn outcome(
    state: &mut ChannelState,
    compiled: &Compiled,
    verdict: &Verdict,
    message: &ChatMessage,
    now_ms: u64,
) -> Vec<Action> {
    let filter = &state.rules.filters[verdict.filter];
    let (name, shadow, silent) = (filter.name.clone(), filter.shadow, filter.silent);
    let reason = if verdict.warning {
        format!("{name} (warning)")
    } else {
        name.clone()
    };
    let mut actions =
        vec![mod_action(verdict.action, message, &reason, &name).shadowed(&name, shadow)];
    let templates = &compiled.filters[verdict.filter];
    let template = if verdict.warning {
        templates
            .warning_message
            .as_ref()
            .or(templates.message.as_ref())
    } else {
        templates.message.as_ref()
    };
    let (global_s, user_s) = (
        filter.message_global_cooldown_s,
        filter.message_user_cooldown_s,
    );
    let post = template.is_some()
        && !silent
        && message_due(state, &name, &message.user.id, global_s, user_s, now_ms);
    if let (Some(template), true) = (template, post) {
        let ctx = RenderContext {
            user: &message.user.display_name,
            channel: &state.channel,
            args: &[],
            count: 0,
            now_ms,
            stream_started_ms: state.runtime.stream_started_ms,
        };
        let runtime = &mut state.runtime;
        let rendered = template.render_tracked(&ctx, &mut runtime.counters, &mut runtime.rng);
        let say = Action::Say {
            text: rendered.text.clone(),
        };
        actions.push(screened(state, &rendered, say, now_ms).shadowed(&name, shadow));
    }
    actions
}

/// Whether the filter `name` may post its message to `user_id` now (its message cooldowns;
/// a message not posted leaves them as they are).
fn message_due(
    state: &mut ChannelState,
    name: &str,
    user_id: &str,
    global_s: u64,
    user_s: u64,
    now_ms: u64,
) -> bool {
    let key = format!("filter-message:{name}");
    super::commands::cooldown_ok(state, &key, user_id, global_s, user_s, now_ms)
}

/// The platform action for a configured moderation action on `message`.
pub fn mod_action(action: ModAction, message: &ChatMessage, reason: &str, rule: &str) -> Action {
    match action {
        ModAction::Delete => Action::Delete {
            message_id: message.id.clone(),
            user_id: message.user.id.clone(),
            rule: rule.to_string(),
        },
        ModAction::Timeout(duration_s) => Action::Timeout {
            user_id: message.user.id.clone(),
            duration_s,
            reason: reason.to_string(),
            rule: rule.to_string(),
        },
        ModAction::Ban => Action::Ban {
            user_id: message.user.id.clone(),
            reason: reason.to_string(),
            rule: rule.to_string(),
        },
    }
}
