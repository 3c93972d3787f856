//! Built-in commands every channel has: `!ping` and `!echo <text>`.
//!
//! They exist so the whole reply path (ingest, actor, engine, outbound, rate limits) is
//! exercised and its latency measured; custom commands arrive with the full engine.

use super::{Action, ChatMessage};

/// Answers a built-in command, or returns nothing when the message is not one.
pub fn answer(message: &ChatMessage) -> Vec<Action> {
    let text = message.text.trim();
    let (command, rest) = match text.split_once(char::is_whitespace) {
        Some((command, rest)) => (command, rest.trim()),
        None => (text, ""),
    };
    match command {
        "!ping" => vec![Action::Reply {
            parent_id: message.id.clone(),
            text: "pong".to_string(),
        }],
        "!echo" if !rest.is_empty() => vec![Action::Say {
            text: rest.to_string(),
        }],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(text: &str) -> ChatMessage {
        ChatMessage {
            id: "m1".into(),
            text: text.into(),
            ..ChatMessage::default()
        }
    }

    #[test]
    fn ping_replies_pong_threaded_to_the_message() {
        assert_eq!(
            answer(&msg("!ping")),
            vec![Action::Reply {
                parent_id: "m1".into(),
                text: "pong".into()
            }]
        );
        assert_eq!(answer(&msg("  !ping extra words ")).len(), 1);
    }

    #[test]
    fn echo_says_its_argument_and_ignores_an_empty_one() {
        assert_eq!(
            answer(&msg("!echo hello  world")),
            vec![Action::Say {
                text: "hello  world".into()
            }]
        );
        assert!(answer(&msg("!echo")).is_empty());
        assert!(answer(&msg("!echo    ")).is_empty());
    }

    #[test]
    fn other_messages_get_no_answer() {
        assert!(answer(&msg("ping")).is_empty());
        assert!(answer(&msg("!pingx")).is_empty());
        assert!(answer(&msg("")).is_empty());
    }
}
