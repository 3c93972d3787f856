//! Runs the 4000-line recording of a top channel's chat through the example rules.

use twitch_irc::message::{IRCMessage, ServerMessage};

use super::*;

const CORPUS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/corpus/xqcow-chat-2019.txt"
));

/// The PRIVMSGs of the corpus as engine messages.
pub fn corpus_messages() -> Vec<ChatMessage> {
    CORPUS.lines().filter_map(to_message).collect()
}

/// A corpus line as the service would see it (the same conversion as `twitch::convert`).
fn to_message(line: &str) -> Option<ChatMessage> {
    let irc = IRCMessage::parse(line).ok()?;
    let event = crate::twitch::convert::to_chat_event(&ServerMessage::try_from(irc).ok()?)?;
    event.message().cloned()
}

#[test]
fn the_corpus_runs_through_the_example_rules_and_some_filters_act() {
    let messages = corpus_messages();
    assert!(messages.len() > 1000, "{} privmsgs", messages.len());
    let mut s = example();
    let mut by_rule: std::collections::BTreeMap<String, usize> = Default::default();
    for (i, message) in messages.into_iter().enumerate() {
        let now = at(i as u64 / 10);
        let mut actions = handle(&mut s, &event(EventKind::Message(message)), now);
        actions.extend(handle(&mut s, &event(EventKind::Tick), now));
        for action in &actions {
            if let Some(text) = action.chat_text() {
                assert!(text.chars().count() <= 500);
            }
            if let Some(rule) = action.rule() {
                *by_rule.entry(rule.to_string()).or_default() += 1;
            }
        }
    }
    let moderated: usize = by_rule.values().sum();
    eprintln!("corpus actions by rule: {by_rule:?}");
    assert!(moderated > 20, "{by_rule:?}");
    assert!(by_rule.len() >= 3, "several filters acted: {by_rule:?}");
}
