//! Built-in commands every channel has: `!ping` and `!echo <text>`.
//!
//! They exist so the whole reply path (ingest, actor, engine, outbound, rate limits) is
//! exercised and its latency measured. They obey levels and cooldowns like any command, set
//! per channel in the rules' `[builtins.ping]` / `[builtins.echo]` tables
//! ([`crate::engine::rules::BuiltinSettings`]): by default `!ping` is for everyone with no
//! cooldown, and `!echo`, which makes the bot post what it is given, is for moderators with a
//! 5 s global and 10 s per-user cooldown. A built-in the user may not run (or on cooldown,
//! or switched off) is silently ignored. `!echo`'s text is chat input through and through: its
//! lead is neutralised and it is screened by the content filters
//! ([`crate::engine::outgoing`]); a text that is empty after that is not posted.

use super::commands::cooldown_ok;
use super::outgoing::screened;
use super::rules::BuiltinLimits;
use super::template::Rendered;
use super::{Action, ChannelState, Incoming};

/// Answers a built-in command; `None` when the message is not one. A built-in the user may
/// not run now answers `Some` with no actions.
pub fn answer(state: &mut ChannelState, incoming: Incoming<'_>) -> Option<Vec<Action>> {
    let message = incoming.message;
    let text = message.text.trim();
    let (command, rest) = match text.split_once(char::is_whitespace) {
        Some((command, rest)) => (command, rest.trim()),
        None => (text, ""),
    };
    let limits = match command {
        "!ping" => state.rules.builtins.ping(),
        "!echo" => state.rules.builtins.echo(),
        _ => return None,
    };
    let echo = (command == "!echo").then(|| Rendered::from_chat(rest));
    if echo.as_ref().is_some_and(|r| r.text.is_empty())
        || !allowed(state, incoming, command, limits)
    {
        return Some(Vec::new());
    }
    let action = match echo {
        None => Action::Reply {
            parent_id: message.id.clone(),
            text: "pong".to_string(),
        },
        Some(rendered) => {
            let say = Action::Say {
                text: rendered.text.clone(),
            };
            screened(state, &rendered, say, incoming.now_ms)
        }
    };
    Some(vec![action])
}

/// Whether the user may run the built-in now (starting its cooldowns if so).
fn allowed(
    state: &mut ChannelState,
    incoming: Incoming<'_>,
    command: &str,
    limits: BuiltinLimits,
) -> bool {
    limits.enabled
        && incoming.level >= limits.level
        && cooldown_ok(
            state,
            &format!("builtin:{command}"),
            &incoming.message.user.id,
            limits.global_cooldown_s,
            limits.user_cooldown_s,
            incoming.now_ms,
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{ChatMessage, ChatUser, Level, Role};

    fn run(state: &mut ChannelState, text: &str, role: Role, now_ms: u64) -> Option<Vec<Action>> {
        let message = ChatMessage {
            id: "m1".into(),
            text: text.into(),
            user: ChatUser {
                id: "u1".into(),
                role,
                ..ChatUser::default()
            },
            ..ChatMessage::default()
        };
        let incoming = Incoming {
            message: &message,
            folded: &message.text,
            level: Level::from_role(role),
            now_ms,
        };
        answer(state, incoming)
    }

    #[test]
    fn ping_replies_pong_threaded_to_the_message() {
        let mut s = ChannelState::new("c", 1);
        assert_eq!(
            run(&mut s, "!ping", Role::Everyone, 0),
            Some(vec![Action::Reply {
                parent_id: "m1".into(),
                text: "pong".into()
            }])
        );
        assert_eq!(
            run(&mut s, "  !ping extra words ", Role::Everyone, 1).map(|a| a.len()),
            Some(1),
            "no cooldown by default"
        );
    }

    #[test]
    fn echo_is_for_moderators_says_its_argument_and_ignores_an_empty_one() {
        let mut s = ChannelState::new("c", 1);
        assert_eq!(run(&mut s, "!echo hi", Role::Everyone, 0), Some(vec![]));
        assert_eq!(run(&mut s, "!echo hi", Role::Vip, 0), Some(vec![]));
        assert_eq!(
            run(&mut s, "!echo hello  world", Role::Moderator, 0),
            Some(vec![Action::Say {
                text: "hello  world".into()
            }])
        );
        assert_eq!(run(&mut s, "!echo", Role::Moderator, 100_000), Some(vec![]));
        assert_eq!(
            run(&mut s, "!echo    ", Role::Moderator, 100_000),
            Some(vec![])
        );
        assert_eq!(
            run(&mut s, "!echo \u{200B}!!", Role::Moderator, 100_000),
            Some(vec![]),
            "nothing left once neutralised"
        );
    }

    #[test]
    fn other_messages_are_not_built_ins() {
        let mut s = ChannelState::new("c", 1);
        assert_eq!(run(&mut s, "ping", Role::Everyone, 0), None);
        assert_eq!(run(&mut s, "!pingx", Role::Everyone, 0), None);
        assert_eq!(run(&mut s, "", Role::Everyone, 0), None);
    }
}
