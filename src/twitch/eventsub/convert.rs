//! EventSub events (as `twitch_api` parses them) -> the engine's platform-neutral
//! [`ChatEvent`]s, the same ones IRC lines become (`twitch::convert`), so rules behave the same
//! on both ingests: badges -> role (one function for both), reply parent, emote fragments ->
//! emote spans in characters (like IRC's `emotes` tag), deletes and clears, notices with IRC's
//! `msg-id` names. `docs/TWITCH.md` has the table and the two known differences (no
//! `first-msg` flag: `user_intro` stands in; no timeout duration in `clear_user_messages`).

use std::sync::Arc;

use twitch_api::eventsub::channel::chat::{
    ChannelChatClearUserMessagesV1Payload, ChannelChatClearV1Payload,
    ChannelChatMessageDeleteV1Payload, ChannelChatMessageV1Payload,
    ChannelChatNotificationV1Payload, Fragment,
};
use twitch_api::eventsub::{Event, Message};

use crate::engine::{ChatEvent, ChatMessage, ChatUser, EmoteSpan, EventKind, Platform};
use crate::twitch::convert::role_of;

/// What one notification means for the service.
// `Chat` is what nearly every notification is: boxing it would add an allocation per message
// to spare the rare small variants some bytes.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Converted {
    /// A chat event for the router; `chatter_id` is the author's user id (to drop the bot's own).
    Chat {
        event: ChatEvent,
        chatter_id: Option<String>,
    },
    /// The stream went live (since `started_at_ms`) or offline.
    Stream {
        channel: String,
        started_at_ms: Option<u64>,
    },
    /// Someone raided the channel (counted and logged; its chat notice arrives as
    /// `channel.chat.notification`).
    Raid {
        channel: String,
        from: String,
        viewers: i64,
    },
    /// A type the service does not act on.
    Ignored,
}

/// The notification's event, if `event` is one (revocations and verifications are not).
pub fn convert(event: &Event, sent_at_ms: u64) -> Converted {
    match event {
        Event::ChannelChatMessageV1(p) => match &p.message {
            Message::Notification(m) => chat_message(m, sent_at_ms),
            _ => Converted::Ignored,
        },
        Event::ChannelChatMessageDeleteV1(p) => match &p.message {
            Message::Notification(m) => message_delete(m),
            _ => Converted::Ignored,
        },
        Event::ChannelChatClearV1(p) => match &p.message {
            Message::Notification(m) => clear(m),
            _ => Converted::Ignored,
        },
        Event::ChannelChatClearUserMessagesV1(p) => match &p.message {
            Message::Notification(m) => clear_user(m),
            _ => Converted::Ignored,
        },
        Event::ChannelChatNotificationV1(p) => match &p.message {
            Message::Notification(m) => notification(m),
            _ => Converted::Ignored,
        },
        Event::StreamOnlineV1(p) => match &p.message {
            Message::Notification(m) => Converted::Stream {
                channel: m.broadcaster_user_login.to_string(),
                started_at_ms: Some(rfc3339_ms(m.started_at.as_str()).unwrap_or(sent_at_ms)),
            },
            _ => Converted::Ignored,
        },
        Event::StreamOfflineV1(p) => match &p.message {
            Message::Notification(m) => Converted::Stream {
                channel: m.broadcaster_user_login.to_string(),
                started_at_ms: None,
            },
            _ => Converted::Ignored,
        },
        Event::ChannelRaidV1(p) => match &p.message {
            Message::Notification(m) => Converted::Raid {
                channel: m.to_broadcaster_user_login.to_string(),
                from: m.from_broadcaster_user_login.to_string(),
                viewers: m.viewers,
            },
            _ => Converted::Ignored,
        },
        _ => Converted::Ignored,
    }
}

fn twitch_event(channel: &str, kind: EventKind) -> ChatEvent {
    ChatEvent {
        platform: Platform::Twitch,
        channel: Arc::from(channel),
        kind,
    }
}

/// Milliseconds since the epoch of an RFC 3339 timestamp.
pub fn rfc3339_ms(text: &str) -> Option<u64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis().max(0) as u64)
}

/// Emote fragments as character ranges of the whole text (IRC's `emotes` tag counts
/// characters too).
fn emote_spans(fragments: &[Fragment]) -> Vec<EmoteSpan> {
    let mut spans = Vec::new();
    let mut at = 0;
    for fragment in fragments {
        let len = fragment.text().chars().count();
        if let Fragment::Emote { emote, .. } = fragment {
            spans.push(EmoteSpan {
                id: emote.id.to_string(),
                start: at,
                end: at + len,
            });
        }
        at += len;
    }
    spans
}

fn chat_message(m: &ChannelChatMessageV1Payload, sent_at_ms: u64) -> Converted {
    use twitch_api::eventsub::channel::chat::message::MessageType;
    let message = ChatMessage {
        id: m.message_id.to_string(),
        user: ChatUser {
            id: m.chatter_user_id.to_string(),
            login: m.chatter_user_login.to_string(),
            display_name: m.chatter_user_name.to_string(),
            role: role_of(m.badges.iter().map(|b| b.set_id.as_str())),
        },
        text: m.message.text.clone(),
        emotes: emote_spans(&m.message.fragments),
        sent_at_ms,
        first_message: matches!(m.message_type, MessageType::UserIntro),
        reply_to: m.reply.as_ref().map(|r| r.parent_message_id.to_string()),
        mentions: Vec::new(),
    };
    Converted::Chat {
        event: twitch_event(
            m.broadcaster_user_login.as_str(),
            EventKind::Message(message),
        ),
        chatter_id: Some(m.chatter_user_id.to_string()),
    }
}

fn message_delete(m: &ChannelChatMessageDeleteV1Payload) -> Converted {
    Converted::Chat {
        event: twitch_event(
            m.broadcaster_user_login.as_str(),
            EventKind::MessageDeleted {
                message_id: m.message_id.to_string(),
            },
        ),
        chatter_id: None,
    }
}

fn clear(m: &ChannelChatClearV1Payload) -> Converted {
    Converted::Chat {
        event: twitch_event(
            m.broadcaster_user_login.as_str(),
            EventKind::ChatCleared {
                user_id: None,
                duration_s: None,
            },
        ),
        chatter_id: None,
    }
}

fn clear_user(m: &ChannelChatClearUserMessagesV1Payload) -> Converted {
    Converted::Chat {
        event: twitch_event(
            m.broadcaster_user_login.as_str(),
            EventKind::ChatCleared {
                user_id: Some(m.target_user_id.to_string()),
                duration_s: None,
            },
        ),
        chatter_id: None,
    }
}

/// EventSub's `notice_type` as IRC's `msg-id`.
pub fn irc_notice_kind(notice_type: &str) -> &str {
    match notice_type {
        "sub_gift" => "subgift",
        "community_sub_gift" => "submysterygift",
        "gift_paid_upgrade" => "giftpaidupgrade",
        "prime_paid_upgrade" => "primepaidupgrade",
        "pay_it_forward" => "standardpayforward",
        "bits_badge_tier" => "bitsbadgetier",
        "charity_donation" => "charitydonation",
        "watch_streak" => "viewermilestone",
        other if other.starts_with("shared_chat_") => "sharedchatnotice",
        other => other,
    }
}

fn notification(m: &ChannelChatNotificationV1Payload) -> Converted {
    use twitch_api::eventsub::channel::chat::notification::Chatter;
    let notice_type = serde_json::to_value(&m.notification)
        .ok()
        .and_then(|v| v.get("notice_type")?.as_str().map(str::to_string))
        .unwrap_or_default();
    let badges = || role_of(m.badges.iter().map(|b| b.set_id.as_str()));
    let (user, chatter_id) = match &m.chatter {
        Chatter::Chatter {
            chatter_user_id,
            chatter_user_name,
            chatter_user_login,
            ..
        } => (
            ChatUser {
                id: chatter_user_id.to_string(),
                login: chatter_user_login.to_string(),
                display_name: chatter_user_name.to_string(),
                role: badges(),
            },
            Some(chatter_user_id.to_string()),
        ),
        _ => (
            ChatUser {
                id: String::new(),
                login: "ananonymousgifter".to_string(),
                display_name: "An anonymous gifter".to_string(),
                role: badges(),
            },
            None,
        ),
    };
    let text = (!m.message.text.is_empty()).then(|| m.message.text.clone());
    Converted::Chat {
        event: twitch_event(
            m.broadcaster_user_login.as_str(),
            EventKind::UserNotice {
                kind: irc_notice_kind(&notice_type).to_string(),
                user,
                text,
            },
        ),
        chatter_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Role;

    const FRAME: &str = r##"{"metadata":{"message_id":"m1","message_type":"notification","message_timestamp":"2023-11-06T18:11:47.492253549Z","subscription_type":"channel.chat.message","subscription_version":"1"},
    "payload":{"subscription":{"id":"s","status":"enabled","type":"channel.chat.message","version":"1","condition":{"broadcaster_user_id":"1971641","user_id":"2914196"},"transport":{"method":"websocket","session_id":"x"},"created_at":"2023-11-06T18:11:47.492253549Z","cost":0},
    "event":{"broadcaster_user_id":"1971641","broadcaster_user_login":"streamer","broadcaster_user_name":"streamer","chatter_user_id":"4145994","chatter_user_login":"viewer32","chatter_user_name":"Viewer32","message_id":"cc106a89","message":{"text":"Kappa héllo Kappa","fragments":[{"type":"emote","text":"Kappa","cheermote":null,"mention":null,"emote":{"id":"25","emote_set_id":"0","owner_id":"0","format":["static"]}},{"type":"text","text":" héllo ","cheermote":null,"emote":null,"mention":null},{"type":"emote","text":"Kappa","cheermote":null,"mention":null,"emote":{"id":"25","emote_set_id":"0","owner_id":"0","format":["static"]}}]},
    "color":"#00FF7F","badges":[{"set_id":"moderator","id":"1","info":""},{"set_id":"subscriber","id":"12","info":"16"}],"message_type":"user_intro","cheer":null,
    "reply":{"parent_message_id":"p1","parent_message_body":"hi","parent_user_id":"1","parent_user_name":"A","parent_user_login":"a","thread_message_id":"p1","thread_user_id":"1","thread_user_name":"A","thread_user_login":"a"},
    "channel_points_custom_reward_id":null,"source_broadcaster_user_id":null,"source_broadcaster_user_login":null,"source_broadcaster_user_name":null,"source_message_id":null,"source_badges":null}}}"##;

    #[test]
    fn a_chat_message_converts_like_an_irc_privmsg() {
        let Ok(twitch_api::eventsub::EventsubWebsocketData::Notification { payload, .. }) =
            Event::parse_websocket(FRAME)
        else {
            panic!("parses");
        };
        let Converted::Chat { event, chatter_id } = convert(&payload, 7) else {
            panic!("a chat event");
        };
        assert_eq!(chatter_id.as_deref(), Some("4145994"));
        assert_eq!(&*event.channel, "streamer");
        let m = event.message().expect("a message");
        assert_eq!(m.user.role, Role::Moderator);
        assert_eq!(m.user.login, "viewer32");
        assert_eq!(m.reply_to.as_deref(), Some("p1"));
        assert!(m.first_message);
        assert_eq!(m.sent_at_ms, 7);
        assert_eq!(
            m.emotes,
            vec![
                EmoteSpan {
                    id: "25".into(),
                    start: 0,
                    end: 5
                },
                EmoteSpan {
                    id: "25".into(),
                    start: 12,
                    end: 17
                },
            ]
        );
    }

    #[test]
    fn notice_types_get_irc_names() {
        assert_eq!(irc_notice_kind("sub_gift"), "subgift");
        assert_eq!(irc_notice_kind("community_sub_gift"), "submysterygift");
        assert_eq!(irc_notice_kind("resub"), "resub");
        assert_eq!(irc_notice_kind("shared_chat_raid"), "sharedchatnotice");
    }
}
