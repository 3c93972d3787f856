//! The Helix EventSub calls: create and delete subscriptions, and manage conduits and their
//! shards. Bodies are `twitch_api`'s (`CreateEventSubSubscriptionBody` with each type's
//! condition struct, `Transport`), answers parsed into small structs of what the service uses.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};
use twitch_api::eventsub::channel::{
    ChannelChatClearUserMessagesV1, ChannelChatClearV1, ChannelChatMessageDeleteV1,
    ChannelChatMessageV1, ChannelChatNotificationV1, ChannelRaidV1,
};
use twitch_api::eventsub::stream::{StreamOfflineV1, StreamOnlineV1};
use twitch_api::eventsub::{EventSubscription, Transport};
use twitch_api::helix::eventsub::CreateEventSubSubscriptionBody;
use twitch_api::helix::HelixRequestBody;

use super::call::{HelixCaller, HelixError};

/// The chat types every served channel is subscribed to (a channel is ready once they are).
pub const CHAT_TYPES: [&str; 5] = [
    "channel.chat.message",
    "channel.chat.message_delete",
    "channel.chat.clear",
    "channel.chat.clear_user_messages",
    "channel.chat.notification",
];
/// The channel types subscribed besides (their failures leave the channel degraded, not down).
pub const CHANNEL_TYPES: [&str; 3] = ["stream.online", "stream.offline", "channel.raid"];

/// Where a subscription's notifications go.
#[derive(Clone, PartialEq, Eq)]
pub enum Target {
    Conduit(String),
    Websocket(String),
    Webhook { callback: String, secret: String },
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Conduit(id) => write!(f, "Conduit({id})"),
            Target::Websocket(session) => write!(f, "Websocket({session})"),
            // The secret never reaches a log line.
            Target::Webhook { callback, .. } => write!(f, "Webhook({callback})"),
        }
    }
}

impl Target {
    fn transport(&self) -> Transport {
        match self {
            Target::Conduit(id) => Transport::conduit(id),
            Target::Websocket(session) => Transport::websocket(session),
            Target::Webhook { callback, secret } => Transport::webhook(callback, secret.clone()),
        }
    }
}

fn body<E: EventSubscription>(subscription: E, target: &Target) -> Option<Value> {
    let body = CreateEventSubSubscriptionBody::new(subscription, target.transport());
    let bytes = body.try_to_body().ok()?;
    let mut value: Value = serde_json::from_slice(&bytes).ok()?;
    // A condition names only the fields that apply (`channel.raid` takes one of from/to
    // broadcaster); the crate writes the unset one as null.
    if let Some(condition) = value.get_mut("condition").and_then(Value::as_object_mut) {
        condition.retain(|_, v| !v.is_null());
    }
    Some(value)
}

/// The Create Subscription body for `kind` in the channel `broadcaster` read by `bot`.
pub fn subscription_body(
    kind: &str,
    broadcaster: &str,
    bot: &str,
    target: &Target,
) -> Option<Value> {
    match kind {
        "channel.chat.message" => body(ChannelChatMessageV1::new(broadcaster, bot), target),
        "channel.chat.message_delete" => {
            body(ChannelChatMessageDeleteV1::new(broadcaster, bot), target)
        }
        "channel.chat.clear" => body(ChannelChatClearV1::new(broadcaster, bot), target),
        "channel.chat.clear_user_messages" => body(
            ChannelChatClearUserMessagesV1::new(broadcaster, bot),
            target,
        ),
        "channel.chat.notification" => {
            body(ChannelChatNotificationV1::new(broadcaster, bot), target)
        }
        "stream.online" => body(StreamOnlineV1::broadcaster_user_id(broadcaster), target),
        "stream.offline" => body(StreamOfflineV1::broadcaster_user_id(broadcaster), target),
        "channel.raid" => body(ChannelRaidV1::to_broadcaster_user_id(broadcaster), target),
        _ => None,
    }
}

/// What Create Subscription answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub id: String,
    /// `enabled`, or `webhook_callback_verification_pending`.
    pub status: String,
}

#[derive(Deserialize)]
struct Data<T> {
    data: Vec<T>,
}

#[derive(Deserialize)]
struct SubscriptionRow {
    id: String,
    status: String,
}

/// `POST /eventsub/subscriptions`.
pub async fn create_subscription(
    caller: &HelixCaller,
    body: &Value,
) -> Result<Created, HelixError> {
    let answer: Option<Data<SubscriptionRow>> = caller
        .call(Method::POST, "/eventsub/subscriptions", &[], Some(body))
        .await?;
    let row = answer
        .and_then(|a| a.data.into_iter().next())
        .ok_or_else(|| HelixError::Body("no subscription in the answer".into()))?;
    Ok(Created {
        id: row.id,
        status: row.status,
    })
}

/// `DELETE /eventsub/subscriptions?id=`.
pub async fn delete_subscription(caller: &HelixCaller, id: &str) -> Result<(), HelixError> {
    let _: Option<Value> = caller
        .call(
            Method::DELETE,
            "/eventsub/subscriptions",
            &[("id", id.to_string())],
            None,
        )
        .await?;
    Ok(())
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Conduit {
    pub id: String,
    pub shard_count: usize,
}

/// `GET /eventsub/conduits`.
pub async fn conduits(caller: &HelixCaller) -> Result<Vec<Conduit>, HelixError> {
    let answer: Option<Data<Conduit>> = caller
        .call(Method::GET, "/eventsub/conduits", &[], None)
        .await?;
    Ok(answer.map(|a| a.data).unwrap_or_default())
}

/// `POST /eventsub/conduits {shard_count}`.
pub async fn create_conduit(caller: &HelixCaller, shards: usize) -> Result<Conduit, HelixError> {
    let answer: Option<Data<Conduit>> = caller
        .call(
            Method::POST,
            "/eventsub/conduits",
            &[],
            Some(&json!({ "shard_count": shards })),
        )
        .await?;
    answer
        .and_then(|a| a.data.into_iter().next())
        .ok_or_else(|| HelixError::Body("no conduit in the answer".into()))
}

/// `PATCH /eventsub/conduits {id, shard_count}`.
pub async fn resize_conduit(
    caller: &HelixCaller,
    id: &str,
    shards: usize,
) -> Result<Conduit, HelixError> {
    let answer: Option<Data<Conduit>> = caller
        .call(
            Method::PATCH,
            "/eventsub/conduits",
            &[],
            Some(&json!({ "id": id, "shard_count": shards })),
        )
        .await?;
    answer
        .and_then(|a| a.data.into_iter().next())
        .ok_or_else(|| HelixError::Body("no conduit in the answer".into()))
}

#[derive(Deserialize)]
struct ShardsAnswer {
    #[serde(default)]
    errors: Vec<ShardError>,
}

#[derive(Deserialize)]
struct ShardError {
    id: String,
    message: String,
}

/// `PATCH /eventsub/conduits/shards`: attaches the WebSocket `session` to `shard`.
pub async fn attach_shard(
    caller: &HelixCaller,
    conduit: &str,
    shard: usize,
    session: &str,
) -> Result<(), HelixError> {
    let body = json!({
        "conduit_id": conduit,
        "shards": [{"id": shard.to_string(), "transport": {"method": "websocket", "session_id": session}}]
    });
    let answer: Option<ShardsAnswer> = caller
        .call(Method::PATCH, "/eventsub/conduits/shards", &[], Some(&body))
        .await?;
    match answer.and_then(|a| a.errors.into_iter().find(|e| e.id == shard.to_string())) {
        Some(error) => Err(HelixError::Status {
            status: 400,
            message: error.message,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_carry_type_version_condition_and_transport() {
        let target = Target::Conduit("c1".into());
        let chat = subscription_body("channel.chat.message", "100", "200", &target);
        assert_eq!(
            chat,
            Some(json!({"type": "channel.chat.message", "version": "1",
                        "condition": {"broadcaster_user_id": "100", "user_id": "200"},
                        "transport": {"method": "conduit", "conduit_id": "c1"}}))
        );
        let raid = subscription_body("channel.raid", "100", "200", &Target::Websocket("s".into()));
        assert_eq!(
            raid.as_ref().map(|b| b["condition"].clone()),
            Some(json!({"to_broadcaster_user_id": "100"}))
        );
        let hook = Target::Webhook {
            callback: "https://bot.example/eventsub".into(),
            secret: "0123456789".into(),
        };
        let online = subscription_body("stream.online", "100", "200", &hook);
        assert_eq!(
            online.map(|b| b["transport"].clone()),
            Some(
                json!({"method": "webhook", "callback": "https://bot.example/eventsub", "secret": "0123456789"})
            )
        );
        assert!(subscription_body("channel.follow", "1", "2", &target).is_none());
    }
}
