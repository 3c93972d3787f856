//! EventSub JSON in Twitch's exact shapes: the WebSocket frames (welcome, keepalive,
//! notification, reconnect, revocation), the subscription object, and the event of every
//! chat type the simulator emits, built from the chat simulator's own IRC lines (so the same
//! generated or recorded chat reaches a bot over IRC and over EventSub: PRIVMSG ->
//! `channel.chat.message`, CLEARMSG -> `channel.chat.message_delete`, CLEARCHAT ->
//! `channel.chat.clear` / `channel.chat.clear_user_messages`, USERNOTICE ->
//! `channel.chat.notification`). The unit tests parse every shape with the `twitch_api` crate.

use serde_json::{json, Map, Value};
use twitch_irc::message::{ClearChatAction, IRCMessage, ServerMessage};

use crate::content::Chatter;

/// RFC 3339 with nanoseconds, as Twitch writes timestamps.
pub fn now_rfc3339() -> String {
    chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// One chat event for the subscriptions of `kind` in the channel with `broadcaster_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatEvent {
    pub kind: &'static str,
    pub broadcaster_id: String,
    pub channel: String,
    pub event: Value,
    /// When it happened (RFC 3339): the IRC line's `tmi-sent-ts` when it has one, so both
    /// ingests see the same time; None = now.
    pub sent_at: Option<String>,
}

/// The `tmi-sent-ts` of a line as RFC 3339.
fn sent_at(irc: &IRCMessage) -> Option<String> {
    let ms: i64 = tag(irc, "tmi-sent-ts")?.parse().ok()?;
    Some(
        chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)?
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
    )
}

fn broadcaster(event: &mut Map<String, Value>, id: &str, login: &str) {
    event.insert("broadcaster_user_id".into(), json!(id));
    event.insert("broadcaster_user_login".into(), json!(login));
    event.insert("broadcaster_user_name".into(), json!(login));
}

fn tag<'a>(irc: &'a IRCMessage, name: &str) -> Option<&'a str> {
    irc.tags
        .0
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// Converts one line the chat simulator sends into the EventSub event it stands for.
pub fn from_irc_line(line: &str) -> Option<ChatEvent> {
    let irc = IRCMessage::parse(line).ok()?;
    let message = ServerMessage::try_from(irc.clone()).ok()?;
    let mut event = convert_message(&irc, message)?;
    event.sent_at = sent_at(&irc);
    Some(event)
}

fn convert_message(irc: &IRCMessage, message: ServerMessage) -> Option<ChatEvent> {
    let irc = irc.clone();
    match message {
        ServerMessage::Privmsg(m) => {
            let mut event = Map::new();
            broadcaster(&mut event, &m.channel_id, &m.channel_login);
            event.insert("chatter_user_id".into(), json!(m.sender.id));
            event.insert("chatter_user_login".into(), json!(m.sender.login));
            event.insert("chatter_user_name".into(), json!(m.sender.name));
            event.insert("message_id".into(), json!(m.message_id));
            let emotes: Vec<(usize, usize, String)> = m
                .emotes
                .iter()
                .map(|e| (e.char_range.start, e.char_range.end, e.id.clone()))
                .collect();
            event.insert(
                "message".into(),
                json!({"text": m.message_text, "fragments": fragments(&m.message_text, &emotes)}),
            );
            let intro = tag(&irc, "msg-id") == Some("user-intro");
            event.insert(
                "message_type".into(),
                json!(if intro { "user_intro" } else { "text" }),
            );
            event.insert("badges".into(), badges(&irc));
            event.insert(
                "cheer".into(),
                match m.bits {
                    Some(bits) => json!({ "bits": bits }),
                    None => Value::Null,
                },
            );
            event.insert(
                "color".into(),
                json!(tag(&irc, "color").unwrap_or_default()),
            );
            event.insert("reply".into(), reply(&irc));
            event.insert(
                "channel_points_custom_reward_id".into(),
                json!(tag(&irc, "custom-reward-id")),
            );
            event.insert("channel_points_animation_id".into(), Value::Null);
            for key in [
                "source_broadcaster_user_id",
                "source_broadcaster_user_login",
                "source_broadcaster_user_name",
                "source_message_id",
                "source_badges",
                "is_source_only",
            ] {
                event.insert(key.into(), Value::Null);
            }
            Some(ChatEvent {
                kind: "channel.chat.message",
                broadcaster_id: m.channel_id,
                channel: m.channel_login,
                event: Value::Object(event),
                sent_at: None,
            })
        }
        ServerMessage::ClearMsg(m) => {
            let mut event = Map::new();
            let room = tag(&irc, "room-id").unwrap_or_default().to_string();
            broadcaster(&mut event, &room, &m.channel_login);
            let target = Chatter::for_login(&m.sender_login);
            event.insert("target_user_id".into(), json!(target.user_id));
            event.insert("target_user_login".into(), json!(m.sender_login));
            event.insert("target_user_name".into(), json!(m.sender_login));
            event.insert("message_id".into(), json!(m.message_id));
            Some(ChatEvent {
                kind: "channel.chat.message_delete",
                broadcaster_id: room,
                channel: m.channel_login,
                event: Value::Object(event),
                sent_at: None,
            })
        }
        ServerMessage::ClearChat(m) => {
            let mut event = Map::new();
            broadcaster(&mut event, &m.channel_id, &m.channel_login);
            let kind = match &m.action {
                ClearChatAction::ChatCleared => "channel.chat.clear",
                ClearChatAction::UserBanned {
                    user_login,
                    user_id,
                }
                | ClearChatAction::UserTimedOut {
                    user_login,
                    user_id,
                    ..
                } => {
                    event.insert("target_user_id".into(), json!(user_id));
                    event.insert("target_user_login".into(), json!(user_login));
                    event.insert("target_user_name".into(), json!(user_login));
                    "channel.chat.clear_user_messages"
                }
            };
            Some(ChatEvent {
                kind,
                broadcaster_id: m.channel_id,
                channel: m.channel_login,
                event: Value::Object(event),
                sent_at: None,
            })
        }
        ServerMessage::UserNotice(m) => {
            let mut event = Map::new();
            broadcaster(&mut event, &m.channel_id, &m.channel_login);
            event.insert("chatter_user_id".into(), json!(m.sender.id));
            event.insert("chatter_user_login".into(), json!(m.sender.login));
            event.insert("chatter_user_name".into(), json!(m.sender.name));
            event.insert("chatter_is_anonymous".into(), json!(false));
            event.insert(
                "color".into(),
                json!(tag(&irc, "color").unwrap_or_default()),
            );
            event.insert("badges".into(), badges(&irc));
            event.insert("system_message".into(), json!(m.system_message));
            event.insert("message_id".into(), json!(m.message_id));
            let text = m.message_text.clone().unwrap_or_default();
            let emotes: Vec<(usize, usize, String)> = m
                .emotes
                .iter()
                .map(|e| (e.char_range.start, e.char_range.end, e.id.clone()))
                .collect();
            event.insert(
                "message".into(),
                json!({"text": text, "fragments": fragments(&text, &emotes)}),
            );
            // IRC notices without a chat notification type on EventSub (rituals: EventSub shows
            // a new chatter's intro as a `user_intro` chat message instead) have no event.
            let (notice_type, body) = notice(&irc, &m.event_id)?;
            for key in NOTICE_FIELDS {
                event.insert((*key).into(), Value::Null);
            }
            event.insert("notice_type".into(), json!(notice_type));
            event.insert(notice_type, body);
            for key in [
                "source_broadcaster_user_id",
                "source_broadcaster_user_login",
                "source_broadcaster_user_name",
                "source_message_id",
                "source_badges",
                "is_source_only",
            ] {
                event.insert(key.into(), Value::Null);
            }
            Some(ChatEvent {
                kind: "channel.chat.notification",
                broadcaster_id: m.channel_id,
                channel: m.channel_login,
                event: Value::Object(event),
                sent_at: None,
            })
        }
        _ => None,
    }
}

/// The per-notice objects every `channel.chat.notification` carries (null but for one).
const NOTICE_FIELDS: &[&str] = &[
    "sub",
    "resub",
    "sub_gift",
    "community_sub_gift",
    "gift_paid_upgrade",
    "prime_paid_upgrade",
    "pay_it_forward",
    "raid",
    "unraid",
    "announcement",
    "bits_badge_tier",
    "charity_donation",
];

fn int_tag(irc: &IRCMessage, name: &str) -> i64 {
    tag(irc, name).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn tier(irc: &IRCMessage) -> String {
    match tag(irc, "msg-param-sub-plan") {
        Some("2000") => "2000".into(),
        Some("3000") => "3000".into(),
        _ => "1000".into(),
    }
}

/// IRC's `msg-id` -> EventSub's `notice_type` and its object (None: no such type).
fn notice(irc: &IRCMessage, msg_id: &str) -> Option<(String, Value)> {
    if msg_id == "sharedchatnotice" {
        // Shared chat: the source channel's notice, as `shared_chat_<type>`.
        let source = tag(irc, "source-msg-id").unwrap_or_default();
        let (inner, body) = plain_notice(irc, source)?;
        let shared = [
            "sub",
            "resub",
            "sub_gift",
            "community_sub_gift",
            "gift_paid_upgrade",
            "prime_paid_upgrade",
            "pay_it_forward",
            "raid",
            "announcement",
        ];
        return shared
            .contains(&inner)
            .then(|| (format!("shared_chat_{inner}"), body));
    }
    plain_notice(irc, msg_id).map(|(t, b)| (t.to_string(), b))
}

fn plain_notice(irc: &IRCMessage, msg_id: &str) -> Option<(&'static str, Value)> {
    let prime = tag(irc, "msg-param-sub-plan") == Some("Prime");
    let recipient = || {
        let login = tag(irc, "msg-param-recipient-user-name").unwrap_or("someone");
        json!({
            "recipient_user_id": tag(irc, "msg-param-recipient-id").unwrap_or("1"),
            "recipient_user_login": login,
            "recipient_user_name": tag(irc, "msg-param-recipient-display-name").unwrap_or(login),
        })
    };
    Some(match msg_id {
        "sub" => (
            "sub",
            json!({"sub_tier": tier(irc), "is_prime": prime, "duration_months": int_tag(irc, "msg-param-multimonth-duration").max(1)}),
        ),
        "resub" => (
            "resub",
            json!({
                "cumulative_months": int_tag(irc, "msg-param-cumulative-months"),
                "duration_months": int_tag(irc, "msg-param-multimonth-duration"),
                "streak_months": tag(irc, "msg-param-streak-months").and_then(|v| v.parse::<i64>().ok()),
                "sub_tier": tier(irc), "is_prime": prime, "is_gift": false,
                "gifter_is_anonymous": null, "gifter_user_id": null,
                "gifter_user_name": null, "gifter_user_login": null
            }),
        ),
        "subgift" | "anonsubgift" => {
            let mut body = recipient();
            body["duration_months"] = json!(int_tag(irc, "msg-param-gift-months").max(1));
            body["cumulative_total"] = Value::Null;
            body["sub_tier"] = json!(tier(irc));
            body["community_gift_id"] = json!(tag(irc, "msg-param-community-gift-id"));
            ("sub_gift", body)
        }
        "submysterygift" | "anonsubmysterygift" => (
            "community_sub_gift",
            json!({
                "id": tag(irc, "msg-param-community-gift-id").unwrap_or("0"),
                "total": int_tag(irc, "msg-param-mass-gift-count"),
                "sub_tier": tier(irc),
                "cumulative_total": tag(irc, "msg-param-sender-count").and_then(|v| v.parse::<i64>().ok()),
            }),
        ),
        "giftpaidupgrade" | "anongiftpaidupgrade" => (
            "gift_paid_upgrade",
            json!({"gifter_is_anonymous": msg_id.starts_with("anon"),
                   "gifter_user_id": tag(irc, "msg-param-sender-login").map(|l| Chatter::for_login(l).user_id),
                   "gifter_user_name": tag(irc, "msg-param-sender-name"),
                   "gifter_user_login": tag(irc, "msg-param-sender-login")}),
        ),
        "primepaidupgrade" => ("prime_paid_upgrade", json!({"sub_tier": tier(irc)})),
        "raid" => {
            let login = tag(irc, "msg-param-login").unwrap_or("raider");
            (
                "raid",
                json!({
                    "user_id": tag(irc, "user-id").unwrap_or("1"),
                    "user_login": login,
                    "user_name": tag(irc, "msg-param-displayName").unwrap_or(login),
                    "viewer_count": int_tag(irc, "msg-param-viewerCount"),
                    "profile_image_url": tag(irc, "msg-param-profileImageURL").unwrap_or_default(),
                }),
            )
        }
        "unraid" => ("unraid", json!({})),
        "announcement" => (
            "announcement",
            json!({"color": tag(irc, "msg-param-color").unwrap_or("PRIMARY")}),
        ),
        "bitsbadgetier" => (
            "bits_badge_tier",
            json!({"tier": int_tag(irc, "msg-param-threshold")}),
        ),
        "paybackgift" | "standardpayforward" | "communitypayforward" => (
            "pay_it_forward",
            json!({"gifter_is_anonymous": false,
                   "gifter_user_id": tag(irc, "msg-param-prior-gifter-id").unwrap_or("1"),
                   "gifter_user_name": tag(irc, "msg-param-prior-gifter-display-name").unwrap_or("gifter"),
                   "gifter_user_login": tag(irc, "msg-param-prior-gifter-user-name").unwrap_or("gifter"),
                   "recipient_user_id": null, "recipient_user_name": null, "recipient_user_login": null}),
        ),
        "charitydonation" => (
            "charity_donation",
            json!({"charity_name": tag(irc, "msg-param-charity-name").unwrap_or("charity"),
                   "amount": {"value": int_tag(irc, "msg-param-donation-amount"), "decimal_places": 2, "currency": "USD"}}),
        ),
        // Anything else IRC calls a USERNOTICE (ritual, ...) has no chat notification type.
        _ => return None,
    })
}

/// Badges from IRC's `badges` and `badge-info` tags (`info` is the subscriber's months).
fn badges(irc: &IRCMessage) -> Value {
    let info: std::collections::HashMap<&str, &str> = tag(irc, "badge-info")
        .unwrap_or_default()
        .split(',')
        .filter_map(|b| b.split_once('/'))
        .collect();
    let list: Vec<Value> = tag(irc, "badges")
        .unwrap_or_default()
        .split(',')
        .filter_map(|b| b.split_once('/'))
        .map(|(set, id)| json!({"set_id": set, "id": id, "info": info.get(set).copied().unwrap_or_default()}))
        .collect();
    Value::Array(list)
}

fn reply(irc: &IRCMessage) -> Value {
    let Some(parent) = tag(irc, "reply-parent-msg-id") else {
        return Value::Null;
    };
    let user_login = tag(irc, "reply-parent-user-login").unwrap_or_default();
    let user_id = tag(irc, "reply-parent-user-id").unwrap_or_default();
    let user_name = tag(irc, "reply-parent-display-name").unwrap_or(user_login);
    let thread = tag(irc, "reply-thread-parent-msg-id").unwrap_or(parent);
    let thread_login = tag(irc, "reply-thread-parent-user-login").unwrap_or(user_login);
    json!({
        "parent_message_id": parent,
        "parent_message_body": tag(irc, "reply-parent-msg-body").unwrap_or_default(),
        "parent_user_id": user_id, "parent_user_login": user_login, "parent_user_name": user_name,
        "thread_message_id": thread,
        "thread_user_id": tag(irc, "reply-thread-parent-user-id").unwrap_or(user_id),
        "thread_user_login": thread_login,
        "thread_user_name": tag(irc, "reply-thread-parent-display-name").unwrap_or(thread_login),
    })
}

/// The message's fragments: emotes (char ranges, as IRC gives them), `@login` mentions, and
/// text in between. Joined, the fragments' texts give the message back unchanged.
pub fn fragments(text: &str, emotes: &[(usize, usize, String)]) -> Value {
    let chars: Vec<char> = text.chars().collect();
    // Twitch's IRC ranges are sometimes one past the text's end: cut at the end.
    let mut sorted: Vec<(usize, usize, &String)> = emotes
        .iter()
        .map(|(s, e, id)| (*s, (*e).min(chars.len()), id))
        .filter(|(s, e, _)| s < e)
        .collect();
    sorted.sort_by_key(|(s, _, _)| *s);
    let mut out = Vec::new();
    let mut at = 0;
    for (start, end, id) in sorted {
        if start < at {
            continue;
        }
        push_text(&mut out, &chars[at..start]);
        let piece: String = chars[start..end].iter().collect();
        out.push(json!({
            "type": "emote", "text": piece, "cheermote": null, "mention": null,
            "emote": {"id": id, "emote_set_id": "0", "owner_id": "0", "format": ["static"]}
        }));
        at = end;
    }
    push_text(&mut out, &chars[at..]);
    Value::Array(out)
}

/// Text, split so each `@login` word becomes a mention fragment.
fn push_text(out: &mut Vec<Value>, chars: &[char]) {
    let text: String = chars.iter().collect();
    let mut plain = String::new();
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let at_word_start = plain.is_empty() || plain.ends_with(' ');
        if at_word_start && rest.starts_with('@') {
            let word_len = rest.find(' ').unwrap_or(rest.len());
            let login = rest[1..word_len].to_ascii_lowercase();
            if crate::api::is_login(&login) {
                if !plain.is_empty() {
                    out.push(json!({"type": "text", "text": std::mem::take(&mut plain), "cheermote": null, "emote": null, "mention": null}));
                }
                out.push(json!({
                    "type": "mention", "text": &rest[..word_len], "cheermote": null, "emote": null,
                    "mention": {"user_id": Chatter::for_login(&login).user_id, "user_login": login, "user_name": &rest[1..word_len]}
                }));
                rest = &rest[word_len..];
                continue;
            }
        }
        let next = rest.chars().next().map_or(1, char::len_utf8);
        plain.push_str(&rest[..next]);
        rest = &rest[next..];
    }
    if !plain.is_empty() {
        out.push(json!({"type": "text", "text": plain, "cheermote": null, "emote": null, "mention": null}));
    }
}

/// The `subscription` object of notifications and API answers.
#[allow(clippy::too_many_arguments)]
pub fn subscription(
    id: &str,
    kind: &str,
    version: &str,
    status: &str,
    condition: &Value,
    transport: &Value,
    created_at: &str,
    cost: u32,
) -> Value {
    json!({
        "id": id, "status": status, "type": kind, "version": version, "cost": cost,
        "condition": condition, "transport": transport, "created_at": created_at
    })
}

pub fn welcome(message_id: &str, session_id: &str, keepalive_s: u64, connected_at: &str) -> String {
    json!({
        "metadata": {"message_id": message_id, "message_type": "session_welcome", "message_timestamp": now_rfc3339()},
        "payload": {"session": {"id": session_id, "status": "connected", "connected_at": connected_at,
                                "keepalive_timeout_seconds": keepalive_s, "reconnect_url": null, "recovery_url": null}}
    })
    .to_string()
}

pub fn keepalive(message_id: &str) -> String {
    json!({
        "metadata": {"message_id": message_id, "message_type": "session_keepalive", "message_timestamp": now_rfc3339()},
        "payload": {}
    })
    .to_string()
}

pub fn reconnect(message_id: &str, session_id: &str, url: &str, connected_at: &str) -> String {
    json!({
        "metadata": {"message_id": message_id, "message_type": "session_reconnect", "message_timestamp": now_rfc3339()},
        "payload": {"session": {"id": session_id, "status": "reconnecting", "keepalive_timeout_seconds": null,
                                "reconnect_url": url, "connected_at": connected_at, "recovery_url": null}}
    })
    .to_string()
}

pub fn notification(
    message_id: &str,
    subscription: &Value,
    event: &Value,
    sent_at: Option<&str>,
) -> String {
    let at = sent_at.map_or_else(now_rfc3339, str::to_string);
    json!({
        "metadata": {"message_id": message_id, "message_type": "notification", "message_timestamp": at,
                     "subscription_type": subscription["type"], "subscription_version": subscription["version"]},
        "payload": {"subscription": subscription, "event": event}
    })
    .to_string()
}

pub fn revocation(message_id: &str, subscription: &Value) -> String {
    json!({
        "metadata": {"message_id": message_id, "message_type": "revocation", "message_timestamp": now_rfc3339(),
                     "subscription_type": subscription["type"], "subscription_version": subscription["version"]},
        "payload": {"subscription": subscription}
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use twitch_api::eventsub::{Event, EventsubWebsocketData};

    const PRIVMSG: &str = "@badge-info=subscriber/10;badges=moderator/1,subscriber/9;color=#7488FF;display-name=AidenWallis;emotes=932291:0-3;first-msg=0;flags=;id=68d3623c-0a07-4acb-bbe7-22e904737809;mod=1;reply-parent-display-name=Other;reply-parent-msg-body=hi;reply-parent-msg-id=abc;reply-parent-user-id=5;reply-parent-user-login=other;room-id=71092938;subscriber=1;tmi-sent-ts=1568505601238;turbo=0;user-id=87763385;user-type=mod :aidenwallis!aidenwallis@aidenwallis.tmi.twitch.tv PRIVMSG #xqcow :xqcT hello @other é";

    fn frame_for(event: &ChatEvent) -> String {
        let sub = subscription(
            "s1",
            event.kind,
            "1",
            "enabled",
            &json!({"broadcaster_user_id": event.broadcaster_id, "user_id": "1"}),
            &json!({"method": "websocket", "session_id": "x"}),
            &now_rfc3339(),
            0,
        );
        notification("m1", &sub, &event.event, event.sent_at.as_deref())
    }

    fn parses(frame: &str) {
        match Event::parse_websocket(frame) {
            Ok(EventsubWebsocketData::Notification { .. }) => {}
            other => panic!("{other:?}\n{frame}"),
        }
    }

    #[test]
    fn a_privmsg_becomes_a_chat_message_twitch_api_parses() {
        let event = from_irc_line(PRIVMSG).expect("converts");
        assert_eq!(event.kind, "channel.chat.message");
        assert_eq!(event.channel, "xqcow");
        let fragments = event.event["message"]["fragments"]
            .as_array()
            .expect("array");
        let joined: String = fragments
            .iter()
            .filter_map(|f| f["text"].as_str())
            .collect();
        assert_eq!(joined, "xqcT hello @other é");
        assert_eq!(fragments[0]["type"], "emote");
        assert_eq!(fragments[2]["type"], "mention");
        assert_eq!(event.event["reply"]["parent_message_id"], "abc");
        assert_eq!(event.event["badges"][1]["info"], "10");
        parses(&frame_for(&event));
    }

    /// Every chat line of the real recorded corpus converts, and twitch_api parses the result.
    #[test]
    fn every_corpus_chat_line_converts_and_parses() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/corpus/twitch-irc-real.txt"
        );
        let text = std::fs::read_to_string(path).expect("the shared corpus is readable");
        let kinds = [" PRIVMSG #", " USERNOTICE #", " CLEARCHAT #", " CLEARMSG #"];
        let mut converted = std::collections::BTreeMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            if !kinds.iter().any(|k| line.contains(k)) {
                continue;
            }
            let Some(event) = from_irc_line(line) else {
                // Only rituals have no EventSub counterpart.
                assert!(line.contains("msg-id=ritual"), "converts: {line}");
                continue;
            };
            parses(&frame_for(&event));
            *converted.entry(event.kind).or_insert(0) += 1;
        }
        for kind in [
            "channel.chat.message",
            "channel.chat.message_delete",
            "channel.chat.clear",
            "channel.chat.clear_user_messages",
            "channel.chat.notification",
        ] {
            assert!(
                converted.get(kind).is_some_and(|n| *n > 0),
                "no {kind} in {converted:?}"
            );
        }
    }

    #[test]
    fn session_frames_parse() {
        let at = now_rfc3339();
        for frame in [
            welcome("w", "sess", 10, &at),
            keepalive("k"),
            reconnect("r", "sess", "ws://127.0.0.1:1/ws?reconnect=x", &at),
        ] {
            Event::parse_websocket(&frame).unwrap_or_else(|e| panic!("{e}: {frame}"));
        }
        let sub = subscription(
            "s1",
            "channel.chat.message",
            "1",
            "authorization_revoked",
            &json!({"broadcaster_user_id": "1", "user_id": "2"}),
            &json!({"method": "websocket", "session_id": "x"}),
            &at,
            0,
        );
        match Event::parse_websocket(&revocation("v", &sub)) {
            Ok(EventsubWebsocketData::Revocation { .. }) => {}
            other => panic!("{other:?}"),
        }
    }
}
