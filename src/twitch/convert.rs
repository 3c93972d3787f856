//! Turns twitch-irc's parsed server messages into the engine's platform-neutral [`ChatEvent`].

use std::sync::Arc;

use twitch_irc::message::{
    Badge, ClearChatAction, IRCMessage, ServerMessage, ServerMessageParseError, TwitchUserBasics,
};

use crate::engine::{ChatEvent, ChatMessage, ChatUser, EmoteSpan, EventKind, Platform, Role};

/// twitch-irc's `ServerMessage::try_from`, after removing what its parser cannot take
/// (Twitch never sends either, but a corrupt line must not panic the reader; both found by
/// the `irc_line` fuzz target):
/// - ranges of the `emotes` tag its arithmetic overflows on: a range that ends before it
///   starts (`25:9-2`) or at `usize::MAX` (a panic where overflow checks are on, a wrapped
///   length elsewhere);
/// - a `color` tag that is not `#RRGGBB`: twitch-irc slices it by bytes and panics when a
///   7-byte value holds a multi-byte character (`#1Ǻɲ6`); an ASCII one it refuses, with the
///   whole message. The colour is cosmetic, so a bad one is cleared (no colour) and the
///   message kept;
/// - a ROOMSTATE `followers-only` number of minutes whose value in seconds does not fit an
///   `i64` (twitch-irc multiplies by 60 unchecked): it is capped at Twitch's longest
///   followers-only duration, three months ([`MAX_FOLLOWERS_ONLY_MINUTES`]).
pub fn server_message(mut irc: IRCMessage) -> Result<ServerMessage, ServerMessageParseError> {
    if let Some(emotes) = irc.tags.0.get_mut("emotes") {
        if let Some(kept) = without_overflowing_ranges(emotes) {
            *emotes = kept;
        }
    }
    if let Some(color) = irc.tags.0.get_mut("color") {
        if !is_rgb_color(color) {
            color.clear();
        }
    }
    if let Some(minutes) = irc.tags.0.get_mut("followers-only") {
        if minutes
            .parse::<i64>()
            .is_ok_and(|n| n > MAX_FOLLOWERS_ONLY_MINUTES)
        {
            *minutes = MAX_FOLLOWERS_ONLY_MINUTES.to_string();
        }
    }
    ServerMessage::try_from(irc)
}

/// The longest followers-only duration Twitch offers (three months), in minutes.
pub const MAX_FOLLOWERS_ONLY_MINUTES: i64 = 90 * 24 * 60;

/// `#RRGGBB` in hex digits (or empty: no colour set).
fn is_rgb_color(tag: &str) -> bool {
    tag.is_empty()
        || (tag.len() == 7
            && tag.starts_with('#')
            && tag.bytes().skip(1).all(|b| b.is_ascii_hexdigit()))
}

/// The `emotes` tag without its overflowing ranges; None when it has none. Ranges that do not
/// parse are kept, for twitch-irc to refuse the line.
fn without_overflowing_ranges(tag: &str) -> Option<String> {
    let overflows = |range: &str| {
        let Some((start, end)) = range.split_once('-') else {
            return false;
        };
        match (start.parse::<usize>(), end.parse::<usize>()) {
            (Ok(start), Ok(end)) => end == usize::MAX || end + 1 < start,
            _ => false,
        }
    };
    if !tag
        .split(['/', ','])
        .any(|part| overflows(part.rsplit(':').next().unwrap_or(part)))
    {
        return None;
    }
    let emotes: Vec<String> = tag
        .split('/')
        .filter_map(|emote| {
            let (id, ranges) = emote.split_once(':')?;
            let kept: Vec<&str> = ranges.split(',').filter(|r| !overflows(r)).collect();
            (!kept.is_empty()).then(|| format!("{id}:{}", kept.join(",")))
        })
        .collect();
    Some(emotes.join("/"))
}

/// The chat event in a server message, if it carries one (PRIVMSG, CLEARCHAT, CLEARMSG,
/// USERNOTICE). Everything else (PING, JOIN, NOTICE...) is the connection's business.
pub fn to_chat_event(message: &ServerMessage) -> Option<ChatEvent> {
    let (channel, kind) = match message {
        ServerMessage::Privmsg(m) => {
            let first_message = m.source.tags.0.get("first-msg").is_some_and(|v| v == "1");
            let chat = ChatMessage {
                id: m.message_id.clone(),
                user: user(&m.sender, &m.badges),
                text: m.message_text.clone(),
                emotes: emote_spans(m),
                sent_at_ms: m.server_timestamp.timestamp_millis().max(0) as u64,
                first_message,
                reply_to: m.reply_parent.as_ref().map(|p| p.message_id.clone()),
                mentions: Vec::new(),
            };
            (&m.channel_login, EventKind::Message(chat))
        }
        ServerMessage::ClearChat(m) => {
            let (user_id, duration_s) = match &m.action {
                ClearChatAction::ChatCleared => (None, None),
                ClearChatAction::UserBanned { user_id, .. } => (Some(user_id.clone()), None),
                ClearChatAction::UserTimedOut {
                    user_id,
                    timeout_length,
                    ..
                } => (Some(user_id.clone()), Some(timeout_length.as_secs())),
            };
            (
                &m.channel_login,
                EventKind::ChatCleared {
                    user_id,
                    duration_s,
                },
            )
        }
        ServerMessage::ClearMsg(m) => (
            &m.channel_login,
            EventKind::MessageDeleted {
                message_id: m.message_id.clone(),
            },
        ),
        ServerMessage::UserNotice(m) => (
            &m.channel_login,
            EventKind::UserNotice {
                kind: m.event_id.clone(),
                user: user(&m.sender, &m.badges),
                text: m.message_text.clone(),
            },
        ),
        _ => return None,
    };
    Some(ChatEvent {
        platform: Platform::Twitch,
        channel: Arc::from(channel.as_str()),
        kind,
    })
}

/// The message's emotes as character ranges within its text. Twitch's `emotes` tag is
/// sometimes off the end of the text (recorded lines have ranges one past it): such a range is
/// cut at the end, and one wholly past it is dropped, so spans always lie in the text (as
/// EventSub's fragments do).
fn emote_spans(m: &twitch_irc::message::PrivmsgMessage) -> Vec<EmoteSpan> {
    let len = m.message_text.chars().count();
    m.emotes
        .iter()
        .filter_map(|e| {
            let end = e.char_range.end.min(len);
            (e.char_range.start < end).then(|| EmoteSpan {
                id: e.id.clone(),
                start: e.char_range.start,
                end,
            })
        })
        .collect()
}

fn user(sender: &TwitchUserBasics, badges: &[Badge]) -> ChatUser {
    ChatUser {
        id: sender.id.clone(),
        login: sender.login.clone(),
        display_name: sender.name.clone(),
        role: role(badges),
    }
}

/// The highest role the badges grant.
pub fn role(badges: &[Badge]) -> Role {
    role_of(badges.iter().map(|b| b.name.as_str()))
}

/// The highest role these badge names (IRC's badge names, EventSub's `set_id`s) grant.
pub fn role_of<'a>(names: impl Iterator<Item = &'a str>) -> Role {
    names
        .map(|name| match name {
            "broadcaster" => Role::Broadcaster,
            "moderator" => Role::Moderator,
            "vip" => Role::Vip,
            "subscriber" | "founder" => Role::Subscriber,
            _ => Role::Everyone,
        })
        .max()
        .unwrap_or_default()
}

/// Property code shared by the `irc_line` fuzz target and the suite's smoke test over its seeds
/// (`fuzz/seeds/irc_line/`).
#[doc(hidden)]
pub mod fuzzing {
    use bytes::BytesMut;
    use tokio_util::codec::Decoder;
    use twitch_irc::message::IRCMessage;

    use super::to_chat_event;
    use crate::engine::EventKind;
    use crate::twitch::lines::{Line, LineCodec};

    /// The line limit the fuzz input is framed with (small, so over-long lines are common).
    const MAX_LINE_BYTES: usize = 2048;

    /// Raw bytes from the server, as the connection reads them: framed by [`LineCodec`] (no
    /// line holds CR or LF or is over the limit; nothing ends the stream), each line through
    /// twitch-irc's parser and [`to_chat_event`]: never a panic, and every event's emote spans
    /// lie within its text.
    pub fn check(data: &[u8]) {
        let mut codec = LineCodec::new(MAX_LINE_BYTES);
        let mut buf = BytesMut::from(data);
        // At most one item per input byte plus one: framing always makes progress.
        for _ in 0..=data.len() {
            match codec
                .decode_eof(&mut buf)
                .expect("framing never fails on bytes in memory")
            {
                Some(Line::Text(line)) => {
                    assert!(!line.contains(['\r', '\n']), "a framed line holds CR/LF");
                    assert!(
                        line.len() <= MAX_LINE_BYTES,
                        "a framed line is over the limit"
                    );
                    check_line(&line);
                }
                Some(Line::Skipped(_)) => {}
                None => return,
            }
        }
        panic!("framing did not finish within {} items", data.len() + 1);
    }

    fn check_line(line: &str) {
        let Ok(irc) = IRCMessage::parse(line) else {
            return;
        };
        let Ok(server) = super::server_message(irc) else {
            return;
        };
        let Some(event) = to_chat_event(&server) else {
            return;
        };
        if let EventKind::Message(message) = &event.kind {
            let len = message.text.chars().count();
            for span in &message.emotes {
                assert!(
                    span.start < span.end && span.end <= len,
                    "emote span {}..{} outside a {len}-character text",
                    span.start,
                    span.end
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emote_ranges_that_overflow_are_dropped_before_twitch_irc_sees_them() {
        let line = "@emotes=25:0-4,9-2/1902:6-10,3-18446744073709551615;id=x;user-id=1;room-id=2;\
                    tmi-sent-ts=1;badges=;badge-info=;color=;display-name=a :a!a@a.tmi.twitch.tv PRIVMSG #c :Kappa Keepo";
        let irc = IRCMessage::parse(line).expect("parses");
        let message = server_message(irc).expect("converts without a panic");
        let event = to_chat_event(&message).expect("a chat event");
        let EventKind::Message(chat) = event.kind else {
            panic!("a message");
        };
        let spans: Vec<(usize, usize)> = chat.emotes.iter().map(|e| (e.start, e.end)).collect();
        assert_eq!(spans, [(0, 5), (6, 11)]);
        assert_eq!(without_overflowing_ranges("25:0-4"), None);
        assert_eq!(without_overflowing_ranges("25:5-1"), Some(String::new()));
    }

    #[test]
    fn a_followers_only_duration_past_any_twitch_allows_is_capped_not_overflowed() {
        use std::time::Duration;
        use twitch_irc::message::FollowersOnlyMode;
        let state = |minutes: &str| {
            let line = format!(
                "@emote-only=0;followers-only={minutes};room-id=1 :tmi.twitch.tv ROOMSTATE #c"
            );
            let message = server_message(IRCMessage::parse(&line).expect("parses"))
                .expect("converts without a panic");
            let ServerMessage::RoomState(state) = message else {
                panic!("a ROOMSTATE");
            };
            state.followers_only
        };
        // 8e18 minutes: x60 overflows i64 (found by the irc_line fuzz target).
        assert_eq!(
            state("+08000000000040286300"),
            Some(FollowersOnlyMode::Enabled(Duration::from_secs(
                MAX_FOLLOWERS_ONLY_MINUTES as u64 * 60
            )))
        );
        assert_eq!(
            state("10"),
            Some(FollowersOnlyMode::Enabled(Duration::from_secs(600)))
        );
        assert_eq!(state("-1"), Some(FollowersOnlyMode::Disabled));
    }

    #[test]
    fn a_colour_that_is_not_rgb_is_cleared_and_the_message_kept() {
        // `#1Ǻɲ6` is 7 bytes: twitch-irc slices it at byte 3, inside `Ǻ`, and panics.
        for color in ["#1\u{1fa}\u{272}6", "#12345G", "red", "#1234567"] {
            let line = format!(
                "@badge-info=;badges=;color={color};display-name=a;emotes=;id=x;room-id=2;tmi-sent-ts=1;user-id=1 \
                 :a!a@a.tmi.twitch.tv PRIVMSG #c :hello"
            );
            let irc = IRCMessage::parse(&line).expect("parses");
            let message = server_message(irc).expect("converts without a panic");
            let ServerMessage::Privmsg(m) = &message else {
                panic!("a PRIVMSG");
            };
            assert_eq!(m.name_color, None, "{color:?} is no colour");
            assert_eq!(m.message_text, "hello");
        }
        let line = "@badge-info=;badges=;color=#7488FF;display-name=a;emotes=;id=x;room-id=2;tmi-sent-ts=1;user-id=1 \
                    :a!a@a.tmi.twitch.tv PRIVMSG #c :hello";
        let message = server_message(IRCMessage::parse(line).expect("parses")).expect("converts");
        let ServerMessage::Privmsg(m) = &message else {
            panic!("a PRIVMSG");
        };
        assert!(m.name_color.is_some(), "a real colour is kept");
    }
    use twitch_irc::message::IRCMessage;

    fn parse(line: &str) -> ServerMessage {
        let irc = IRCMessage::parse(line).expect("irc");
        ServerMessage::try_from(irc).expect("server message")
    }

    #[test]
    fn a_real_privmsg_becomes_a_chat_message_with_role_and_emotes() {
        let line = "@badge-info=subscriber/10;badges=moderator/1,subscriber/9,turbo/1;color=#7488FF;display-name=AidenWallis;emotes=932291:0-3;first-msg=1;flags=;id=68d3623c-0a07-4acb-bbe7-22e904737809;mod=1;room-id=71092938;subscriber=1;tmi-sent-ts=1568505601238;turbo=1;user-id=87763385;user-type=mod :aidenwallis!aidenwallis@aidenwallis.tmi.twitch.tv PRIVMSG #xqcow :xqcT hello";
        let event = to_chat_event(&parse(line)).expect("event");
        assert_eq!(&*event.channel, "xqcow");
        let m = event.message().expect("message");
        assert_eq!(m.id, "68d3623c-0a07-4acb-bbe7-22e904737809");
        assert_eq!(m.user.login, "aidenwallis");
        assert_eq!(m.user.display_name, "AidenWallis");
        assert_eq!(m.user.role, Role::Moderator);
        assert_eq!(m.text, "xqcT hello");
        assert_eq!(m.sent_at_ms, 1_568_505_601_238);
        assert!(m.first_message);
        assert_eq!(
            m.emotes,
            vec![EmoteSpan {
                id: "932291".into(),
                start: 0,
                end: 4
            }]
        );
    }

    #[test]
    fn clearchat_becomes_a_timeout_event() {
        let line = "@ban-duration=150;room-id=71092938;target-user-id=48215771;tmi-sent-ts=1568505600739 :tmi.twitch.tv CLEARCHAT #xqcow :onche";
        let event = to_chat_event(&parse(line)).expect("event");
        assert_eq!(
            event.kind,
            EventKind::ChatCleared {
                user_id: Some("48215771".into()),
                duration_s: Some(150)
            }
        );
    }

    #[test]
    fn ping_is_not_a_chat_event() {
        assert!(to_chat_event(&parse("PING :tmi.twitch.tv")).is_none());
    }

    #[test]
    fn roles_rank_broadcaster_over_everyone() {
        let b = |n: &str| Badge {
            name: n.into(),
            version: "1".into(),
        };
        assert_eq!(role(&[]), Role::Everyone);
        assert_eq!(role(&[b("premium"), b("founder")]), Role::Subscriber);
        assert_eq!(role(&[b("subscriber"), b("vip")]), Role::Vip);
        assert_eq!(
            role(&[b("broadcaster"), b("subscriber")]),
            Role::Broadcaster
        );
    }
}
