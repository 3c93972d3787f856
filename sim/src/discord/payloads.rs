//! JSON payloads the fake Discord sends: gateway frames (Hello, READY, RESUMED, MESSAGE_CREATE)
//! and REST bodies (a posted message, an edited member), shaped like Discord's v10 API with the
//! fields serenity 0.12 needs to decode them.

use serde_json::{json, Value};

/// Gateway opcodes the fake speaks.
pub mod op {
    pub const DISPATCH: u64 = 0;
    pub const HEARTBEAT: u64 = 1;
    pub const IDENTIFY: u64 = 2;
    pub const RESUME: u64 = 6;
    pub const HELLO: u64 = 10;
    pub const HEARTBEAT_ACK: u64 = 11;
}

/// The bot user the fake says it logged in as.
pub const BOT_USER_ID: u64 = 900_000_000_000_000_001;
pub const APPLICATION_ID: u64 = 900_000_000_000_000_002;
const TIMESTAMP: &str = "2026-01-01T12:00:00.000000+00:00";

/// A guild message to dispatch (or to answer a post with; `guild_id` 0 = none).
#[derive(Debug, Clone, Default)]
pub struct MessageSpec {
    pub id: u64,
    pub channel_id: u64,
    pub guild_id: u64,
    pub author_id: u64,
    pub author_name: String,
    /// Role ids of the author in the guild.
    pub roles: Vec<u64>,
    pub content: String,
    /// Mentioned users: (id, username).
    pub mentions: Vec<(u64, String)>,
    /// Id of the message this one replies to.
    pub reply_to: Option<u64>,
}

pub fn user(id: u64, name: &str) -> Value {
    json!({
        "id": id.to_string(),
        "username": name,
        "discriminator": "0",
        "global_name": null,
        "avatar": null,
        "bot": id == BOT_USER_ID,
    })
}

/// A MESSAGE_CREATE body (also a REST message object).
pub fn message(spec: &MessageSpec) -> Value {
    let mut value = json!({
        "id": spec.id.to_string(),
        "channel_id": spec.channel_id.to_string(),
        "guild_id": spec.guild_id.to_string(),
        "author": user(spec.author_id, &spec.author_name),
        "member": {
            "roles": spec.roles.iter().map(u64::to_string).collect::<Vec<_>>(),
            "joined_at": TIMESTAMP,
            "deaf": false,
            "mute": false,
            "flags": 0,
        },
        "content": spec.content,
        "timestamp": TIMESTAMP,
        "edited_timestamp": null,
        "tts": false,
        "mention_everyone": false,
        "mentions": spec.mentions.iter().map(|(id, name)| user(*id, name)).collect::<Vec<_>>(),
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": false,
        "type": 0,
    });
    let Some(object) = value.as_object_mut() else {
        return value;
    };
    if let Some(parent) = spec.reply_to {
        let mut reference = json!({
            "message_id": parent.to_string(),
            "channel_id": spec.channel_id.to_string(),
        });
        if spec.guild_id != 0 {
            reference["guild_id"] = json!(spec.guild_id.to_string());
        }
        object.insert("message_reference".into(), reference);
    }
    if spec.guild_id == 0 {
        // Not a guild message (or a REST answer): no guild, no member.
        object.remove("guild_id");
        object.remove("member");
    }
    value
}

/// A guild member (the answer to PATCH /guilds/{g}/members/{u}).
pub fn member(user_id: u64, until: Option<&str>) -> Value {
    json!({
        "user": user(user_id, "member"),
        "roles": [],
        "joined_at": TIMESTAMP,
        "deaf": false,
        "mute": false,
        "flags": 0,
        "communication_disabled_until": until,
    })
}

pub fn hello(heartbeat_interval_ms: u64) -> Value {
    json!({ "op": op::HELLO, "d": { "heartbeat_interval": heartbeat_interval_ms }, "s": null, "t": null })
}

pub fn heartbeat_ack() -> Value {
    json!({ "op": op::HEARTBEAT_ACK, "d": null, "s": null, "t": null })
}

pub fn dispatch(seq: u64, kind: &str, data: Value) -> Value {
    json!({ "op": op::DISPATCH, "s": seq, "t": kind, "d": data })
}

/// READY for shard `[shard, total]` with the given guilds (unavailable, as Discord sends them).
pub fn ready(session_id: &str, resume_url: &str, shard: [u64; 2], guilds: &[u64]) -> Value {
    json!({
        "v": 10,
        "user": user(BOT_USER_ID, "firehose-bot"),
        "guilds": guilds.iter().map(|g| json!({ "id": g.to_string(), "unavailable": true })).collect::<Vec<_>>(),
        "session_id": session_id,
        "resume_gateway_url": resume_url,
        "shard": shard,
        "application": { "id": APPLICATION_ID.to_string(), "flags": 0 },
    })
}

/// The shard a guild's events go to: `(guild_id >> 22) % shards`, as Discord routes them.
pub fn shard_of(guild_id: u64, shards: u64) -> u64 {
    (guild_id >> 22) % shards.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serenity_decodes_what_the_fake_sends() {
        let spec = MessageSpec {
            id: 5,
            channel_id: 6,
            guild_id: 7,
            author_id: 8,
            author_name: "ann".into(),
            content: "hi".into(),
            reply_to: Some(4),
            ..MessageSpec::default()
        };
        let message: serenity::all::Message =
            serde_json::from_value(message(&spec)).expect("a message");
        assert_eq!(message.content, "hi");
        let member: serenity::all::Member =
            serde_json::from_value(member(8, Some("2030-01-01T00:00:00Z"))).expect("a member");
        assert_eq!(member.user.id.get(), 8);
        let ready: serenity::all::Ready =
            serde_json::from_value(ready("s", "ws://x", [0, 1], &[7])).expect("ready");
        assert_eq!(ready.guilds.len(), 1);
    }
}
