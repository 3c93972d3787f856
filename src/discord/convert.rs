//! Discord message -> the engine's platform-neutral [`ChatEvent`].
//!
//! A guild message becomes the same `EventKind::Message` a Twitch PRIVMSG becomes: the author
//! (id, username, display name, and a role from the guild's role map in config), the message
//! id (replies and deletions refer to it), the text, the mentioned user ids, the reply parent
//! and the send time. User mentions in the text (`<@123>`, `<@!123>`) read `@username`, as on
//! Twitch, so commands and filters see the same text on both platforms.
//!
//! The event's channel is the Discord channel id (the [`crate::channel::ChannelKey`] name).

use std::sync::Arc;

use serenity::model::channel::Message;

use crate::config::{DiscordConfig, GrantedRole};
use crate::engine::{ChatEvent, ChatMessage, ChatUser, EventKind, Platform, Role};

/// Why a Discord message was not turned into a chat event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Not in a guild (a DM).
    NotInGuild,
    /// A channel the config does not map.
    Unmapped,
}

impl Skip {
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::NotInGuild => "not_in_guild",
            Skip::Unmapped => "unmapped_channel",
        }
    }
}

/// Converts a guild message in a mapped channel.
pub fn to_chat_event(message: &Message, config: &DiscordConfig) -> Result<ChatEvent, Skip> {
    let guild = message.guild_id.ok_or(Skip::NotInGuild)?.to_string();
    let channel = message.channel_id.to_string();
    if !config.channels.contains_key(&channel) {
        return Err(Skip::Unmapped);
    }
    let chat = ChatMessage {
        id: message.id.to_string(),
        user: author(message, config, &guild),
        text: text_with_mentions(message),
        emotes: Vec::new(),
        sent_at_ms: message.timestamp.unix_timestamp().max(0) as u64 * 1_000,
        first_message: false,
        reply_to: message
            .message_reference
            .as_ref()
            .and_then(|r| r.message_id)
            .map(|id| id.to_string()),
        mentions: message.mentions.iter().map(|u| u.id.to_string()).collect(),
    };
    Ok(ChatEvent {
        platform: Platform::Discord,
        channel: Arc::from(channel),
        kind: EventKind::Message(chat),
    })
}

fn author(message: &Message, config: &DiscordConfig, guild: &str) -> ChatUser {
    let roles: Vec<String> = message
        .member
        .as_ref()
        .map(|m| m.roles.iter().map(|r| r.to_string()).collect())
        .unwrap_or_default();
    let user = &message.author;
    ChatUser {
        id: user.id.to_string(),
        login: user.name.to_lowercase(),
        display_name: user
            .global_name
            .clone()
            .unwrap_or_else(|| user.name.clone()),
        role: engine_role(config.role_of(guild, roles.iter().map(String::as_str))),
    }
}

/// The engine role a configured guild role grants (the same names and order).
pub fn engine_role(granted: GrantedRole) -> Role {
    match granted {
        GrantedRole::Everyone => Role::Everyone,
        GrantedRole::Subscriber => Role::Subscriber,
        GrantedRole::Vip => Role::Vip,
        GrantedRole::Moderator => Role::Moderator,
        GrantedRole::Broadcaster => Role::Broadcaster,
    }
}

/// The content with `<@id>` / `<@!id>` of mentioned users written as `@username`.
fn text_with_mentions(message: &Message) -> String {
    let mut text = message.content.clone();
    for user in &message.mentions {
        let name = format!("@{}", user.name);
        for raw in [format!("<@{}>", user.id), format!("<@!{}>", user.id)] {
            if text.contains(&raw) {
                text = text.replace(&raw, &name);
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::DiscordChannel;

    fn config() -> DiscordConfig {
        let mut config = DiscordConfig::default();
        config.channels.insert(
            "200".into(),
            DiscordChannel {
                name: "general".into(),
                guild: "100".into(),
            },
        );
        config.guild_roles.insert(
            "100".into(),
            BTreeMap::from([("7".into(), GrantedRole::Moderator)]),
        );
        config
    }

    fn message(channel: &str, guild: Option<&str>, roles: &[&str], content: &str) -> Message {
        let mut value = firehose_sim::discord::payloads::message(
            &firehose_sim::discord::payloads::MessageSpec {
                id: 300,
                channel_id: channel.parse().expect("id"),
                guild_id: guild.map(|g| g.parse().expect("id")).unwrap_or(1),
                author_id: 400,
                author_name: "Ann".into(),
                roles: roles.iter().map(|r| r.parse().expect("id")).collect(),
                content: content.into(),
                mentions: vec![(500, "bob".into())],
                reply_to: Some(299),
            },
        );
        if guild.is_none() {
            if let Some(o) = value.as_object_mut() {
                o.remove("guild_id");
            }
        }
        serde_json::from_value(value).expect("a valid message")
    }

    #[test]
    fn a_guild_message_becomes_a_chat_event_with_the_mapped_role() {
        let event = to_chat_event(
            &message("200", Some("100"), &["7"], "hi <@500> and <@!500>"),
            &config(),
        )
        .expect("converted");
        assert_eq!(event.platform, Platform::Discord);
        assert_eq!(&*event.channel, "200");
        let m = event.message().expect("a message");
        assert_eq!(m.id, "300");
        assert_eq!(m.user.id, "400");
        assert_eq!(m.user.login, "ann");
        assert_eq!(m.user.role, Role::Moderator);
        assert_eq!(m.text, "hi @bob and @bob");
        assert_eq!(m.mentions, ["500"]);
        assert_eq!(m.reply_to.as_deref(), Some("299"));
        assert!(m.sent_at_ms > 1_600_000_000_000);
    }

    #[test]
    fn dms_and_unmapped_channels_are_skipped() {
        let config = config();
        assert_eq!(
            to_chat_event(&message("200", None, &[], "x"), &config),
            Err(Skip::NotInGuild)
        );
        assert_eq!(
            to_chat_event(&message("201", Some("100"), &[], "x"), &config),
            Err(Skip::Unmapped)
        );
        let unmapped_role =
            to_chat_event(&message("200", Some("100"), &["8"], "x"), &config).expect("converted");
        assert_eq!(
            unmapped_role.message().map(|m| m.user.role),
            Some(Role::Everyone)
        );
    }

    /// A configured role reads as the engine role of the same name, in the same order, so the
    /// highest mapped role is the highest engine role.
    #[test]
    fn granted_roles_are_the_engine_roles_of_the_same_name() {
        let all = [
            GrantedRole::Everyone,
            GrantedRole::Subscriber,
            GrantedRole::Vip,
            GrantedRole::Moderator,
            GrantedRole::Broadcaster,
        ];
        for pair in all.windows(2) {
            assert!(engine_role(pair[0]) < engine_role(pair[1]), "{pair:?}");
        }
        for granted in all {
            let name = serde_json::to_string(&granted).expect("serializes");
            let role: Role = serde_json::from_str(&name).expect("an engine role of that name");
            assert_eq!(role, engine_role(granted));
        }
    }
}
