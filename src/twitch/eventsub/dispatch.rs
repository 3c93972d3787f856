//! Where every EventSub message goes, whatever brought it (a WebSocket session, a conduit shard,
//! the webhook endpoint): parsed with `twitch_api`, de-duplicated by message id, converted
//! (`convert`) and handed to the same router as IRC's chat (`channel::admission`), so
//! admission, shedding and counting are identical on both ingests. Stream status goes to the
//! channel's `StreamStatus`; revocations go to the subscriber. The bot's own messages (EventSub
//! shows them, IRC does not) teach its moderator status and are dropped (counted in
//! `eventsub_own_messages_total` and `messages_ignored_total{reason="own"}`); a channel this
//! service does not serve is counted and dropped. Nothing here waits.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::mpsc;
use twitch_api::eventsub::{Event, EventsubWebsocketData};

use super::convert::{convert, rfc3339_ms, Converted};
use super::dedup::Dedup;
use super::metrics::EventSubMetrics;
use crate::channel::ignore::is_account;
use crate::channel::{ChannelKey, ChannelRegistry, Router};
use crate::engine::{EventKind, Role};
use crate::twitch::auth::Auth;
use crate::twitch::status::TwitchStatus;

/// A subscription Twitch revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    pub kind: String,
    /// The channel's user id (its condition's broadcaster, or the raided channel).
    pub channel_id: String,
    pub status: String,
}

/// What a WebSocket frame was, for its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Welcome {
        session_id: String,
        keepalive_s: Option<u64>,
    },
    Keepalive,
    Notification,
    Reconnect {
        url: String,
    },
    Revocation,
    /// Counted (`eventsub_malformed_total`), the connection carries on.
    Malformed,
}

pub struct Dispatcher {
    pub(super) router: Arc<Router>,
    pub(super) registry: Arc<ChannelRegistry>,
    pub(super) status: Arc<TwitchStatus>,
    pub(super) auth: Arc<Auth>,
    pub(super) dedup: Mutex<Dedup>,
    pub(super) metrics: EventSubMetrics,
    pub(super) revoked: mpsc::Sender<Revoked>,
}

impl Dispatcher {
    /// Handles one WebSocket text frame.
    pub fn frame(&self, text: &str, received_at: Instant) -> Frame {
        let data = match Event::parse_websocket(text) {
            Ok(data) => data,
            Err(e) => {
                let reason = match e {
                    twitch_api::eventsub::PayloadParseError::UnimplementedEvent { .. } => {
                        "unknown_type"
                    }
                    _ => "json",
                };
                self.metrics.malformed(reason);
                tracing::debug!(error = %e, "EventSub frame not usable");
                return Frame::Malformed;
            }
        };
        match data {
            EventsubWebsocketData::Welcome { payload, .. } => Frame::Welcome {
                session_id: payload.session.id.to_string(),
                keepalive_s: payload
                    .session
                    .keepalive_timeout_seconds
                    .and_then(|k| u64::try_from(k).ok()),
            },
            EventsubWebsocketData::Keepalive { .. } => Frame::Keepalive,
            EventsubWebsocketData::Reconnect { payload, .. } => match payload.session.reconnect_url
            {
                Some(url) => Frame::Reconnect {
                    url: url.to_string(),
                },
                None => {
                    self.metrics.malformed("reconnect_without_url");
                    Frame::Malformed
                }
            },
            EventsubWebsocketData::Notification { metadata, payload } => {
                let sent = rfc3339_ms(metadata.message_timestamp.as_str()).unwrap_or_default();
                self.notification(&metadata.message_id, sent, &payload, received_at);
                Frame::Notification
            }
            EventsubWebsocketData::Revocation { metadata, payload } => {
                self.revocation(&metadata.message_id, &payload);
                Frame::Revocation
            }
            _ => {
                self.metrics.malformed("unknown_message_type");
                Frame::Malformed
            }
        }
    }

    /// Whether `message_id` is new (and remembers it).
    pub fn first_time(&self, message_id: &str) -> bool {
        match self.dedup.lock() {
            Ok(mut dedup) => dedup.first_time(message_id),
            Err(poisoned) => poisoned.into_inner().first_time(message_id),
        }
    }

    /// Whether `message_id` was seen already (without remembering it).
    pub fn seen(&self, message_id: &str) -> bool {
        match self.dedup.lock() {
            Ok(dedup) => dedup.contains(message_id),
            Err(poisoned) => poisoned.into_inner().contains(message_id),
        }
    }

    /// One notification (already parsed), de-duplicated by its message id.
    pub fn notification(
        &self,
        message_id: &str,
        sent_at_ms: u64,
        event: &Event,
        received_at: Instant,
    ) {
        if !self.first_time(message_id) {
            self.metrics.duplicates.inc();
            return;
        }
        self.handle(event, sent_at_ms, received_at);
    }

    /// A notification already de-duplicated (the webhook checks ids at the door).
    pub fn handle(&self, event: &Event, sent_at_ms: u64, received_at: Instant) {
        match convert(event, sent_at_ms) {
            Converted::Chat { event, chatter_id } => {
                let channel = event.channel.to_string();
                if self.registry.get(&ChannelKey::twitch(&channel)).is_none() {
                    self.metrics.unserved.inc();
                    return;
                }
                let by_id = chatter_id.is_some() && chatter_id == self.auth.bot_user_id();
                let by_login = event
                    .message()
                    .is_some_and(|m| is_account(&m.user, self.auth.bot_login(), None));
                if by_id || by_login {
                    if let EventKind::Message(m) = &event.kind {
                        // The bot's own badges say whether it moderates here (higher limits).
                        self.status
                            .set_moderator(&channel, m.user.role >= Role::Moderator);
                    }
                    self.metrics.own_messages.inc();
                    self.router.own_message(event.platform);
                    return;
                }
                self.metrics.notification(chat_type(&event.kind));
                let _ = self.router.route(event, received_at);
            }
            Converted::Stream {
                channel,
                started_at_ms,
            } => match self.registry.get(&ChannelKey::twitch(&channel)) {
                Some(shared) => {
                    let kind = if started_at_ms.is_some() {
                        "stream.online"
                    } else {
                        "stream.offline"
                    };
                    self.metrics.notification(kind);
                    crate::channel::stream::stream_changed(&shared, started_at_ms);
                }
                None => {
                    self.metrics.unserved.inc();
                }
            },
            Converted::Raid {
                channel,
                from,
                viewers,
            } => {
                self.metrics.notification("channel.raid");
                tracing::info!(%channel, %from, viewers, "raid");
            }
            Converted::Ignored => self.metrics.malformed("unhandled_type"),
        }
    }

    /// A revocation: counted, logged, handed to the subscriber.
    pub fn revocation(&self, message_id: &str, event: &Event) {
        if !self.first_time(message_id) {
            self.metrics.duplicates.inc();
            return;
        }
        let Ok(subscription) = event.subscription() else {
            self.metrics.malformed("revocation");
            return;
        };
        let status = serde_json::to_value(&subscription.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "unknown".to_string());
        let condition = &subscription.condition;
        let channel_id = condition
            .get("broadcaster_user_id")
            .or_else(|| condition.get("to_broadcaster_user_id"))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let kind = subscription.type_.to_str().to_string();
        self.metrics.revocation(&status);
        tracing::warn!(%kind, channel = ?self.auth.directory.login(&channel_id), %status, "Twitch revoked an EventSub subscription");
        let revoked = Revoked {
            kind,
            channel_id,
            status,
        };
        if self.revoked.try_send(revoked).is_err() {
            self.metrics.malformed("revocation_queue_full");
        }
    }
}

/// The subscription type a converted chat event came from.
fn chat_type(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::Message(_) => "channel.chat.message",
        EventKind::MessageDeleted { .. } => "channel.chat.message_delete",
        EventKind::ChatCleared { user_id: None, .. } => "channel.chat.clear",
        EventKind::ChatCleared { .. } => "channel.chat.clear_user_messages",
        EventKind::UserNotice { .. } => "channel.chat.notification",
        _ => "other",
    }
}
