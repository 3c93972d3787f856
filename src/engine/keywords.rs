//! Keywords: responses to message content rather than to a command name.
//!
//! A keyword fires when any of its phrase groups matches (every phrase of the group occurs in
//! the message) or its regex matches. Matching is on folded text (case- and accent-insensitive)
//! unless the keyword is case-sensitive, then on the raw text; all phrases of the channel are
//! found in one Aho-Corasick pass per text ([`crate::engine::compiled::PhraseIndex`]).
//! `$(count)` renders 0 in keyword responses. Keywords have their own
//! cooldowns; at most one keyword answers a message (the first that matches and is ready).

use super::commands::{cooldown_ok, render, respond as response_action};
use super::{Action, ChannelState, Incoming};

/// The answer of the first ready matching keyword, if any.
pub fn respond(state: &mut ChannelState, incoming: Incoming<'_>) -> Vec<Action> {
    let Incoming {
        message,
        folded,
        level,
        now_ms,
    } = incoming;
    let rules = state.rules.clone();
    let compiled = state.compiled().clone();
    if compiled.keywords.is_empty() {
        return Vec::new();
    }
    let hits = compiled.phrases.scan(folded, &message.text);
    for (rule, keyword) in rules.keywords.iter().zip(&compiled.keywords) {
        if !rule.enabled || level < rule.level {
            continue;
        }
        let group_hit = keyword
            .groups
            .iter()
            .any(|g| g.iter().all(|id| hits.has(*id)));
        let regex_hit = || {
            keyword
                .regex
                .as_ref()
                .is_some_and(|re| re.is_match(&message.text))
        };
        if !(group_hit || regex_hit()) {
            continue;
        }
        let key = format!("kw:{}", rule.name);
        if !cooldown_ok(
            state,
            &key,
            &message.user.id,
            rule.global_cooldown_s,
            rule.user_cooldown_s,
            now_ms,
        ) {
            continue;
        }
        let args: Vec<&str> = message.text.split_whitespace().collect();
        let out = render(
            state,
            &keyword.template,
            message,
            &args,
            0,
            rule.shadow,
            now_ms,
        );
        let action = response_action(state, rule.response_type, message, out, now_ms);
        return vec![action.shadowed(&rule.name, rule.shadow)];
    }
    Vec::new()
}
