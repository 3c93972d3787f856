//! Runs the 4000-line recording of a top channel's chat through the example rules: the
//! engine on real chat, converted exactly as the service converts it (`twitch::convert`).
//! (It lived among the engine's unit tests; it needs the Twitch side, one floor up, so it is
//! an integration test.)

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use firehose::engine::{handle, ChannelState, ChatEvent, ChatMessage, EventKind, Platform};
use firehose::twitch::convert::to_chat_event;
use twitch_irc::message::{IRCMessage, ServerMessage};

const CORPUS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/corpus/xqcow-chat-2019.txt"
));
const EXAMPLE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/config/channels/example.toml"
));

/// The PRIVMSGs of the corpus as engine messages.
fn corpus_messages() -> Vec<ChatMessage> {
    CORPUS.lines().filter_map(to_message).collect()
}

/// A corpus line as the service would see it.
fn to_message(line: &str) -> Option<ChatMessage> {
    let irc = IRCMessage::parse(line).ok()?;
    let event = to_chat_event(&ServerMessage::try_from(irc).ok()?)?;
    event.message().cloned()
}

/// Test time: a fixed epoch plus `secs` (as the engine's unit tests count it).
fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn event(kind: EventKind) -> ChatEvent {
    ChatEvent {
        platform: Platform::Twitch,
        channel: "chan".into(),
        kind,
    }
}

fn example() -> ChannelState {
    let rules = toml::from_str(EXAMPLE).expect("rules parse");
    ChannelState::with_rules("chan", rules, 1).expect("rules valid")
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
