//! `[twitch.eventsub]`: reading chat through EventSub (`twitch.ingest = "eventsub"`), and the
//! webhook endpoint (`POST /eventsub`, on whenever a webhook secret is set).
//!
//! Transports (Twitch's three): `conduit` (app token; `shards` WebSocket sessions attached to
//! one conduit: the scalable one), `websocket` (a user token; at most 3 connections of 300
//! subscriptions each, Twitch's limits) and `webhook` (app token; Twitch POSTs to
//! `webhook_callback`, signed with the webhook secret from `FIREHOSE_EVENTSUB_WEBHOOK_SECRET`
//! or `webhook_secret_file`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::auth::is_http_url;
use super::{invalid, positive, ConfigError};

/// How EventSub notifications reach the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EventSubTransport {
    /// A conduit with WebSocket shards (app access token).
    #[default]
    Conduit,
    /// Plain WebSocket sessions (the bot's user access token).
    Websocket,
    /// Twitch POSTs to this service's `/eventsub` (app access token).
    Webhook,
}

impl EventSubTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            EventSubTransport::Conduit => "conduit",
            EventSubTransport::Websocket => "websocket",
            EventSubTransport::Webhook => "webhook",
        }
    }

    /// Conduit and webhook subscriptions are made with the app access token.
    pub fn needs_app_token(self) -> bool {
        !matches!(self, EventSubTransport::Websocket)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventSubConfig {
    pub transport: EventSubTransport,
    /// EventSub WebSocket server (Twitch's, or any EventSub-compatible test server).
    pub websocket_url: String,
    /// Conduit transport: WebSocket shards (sessions) this process opens, 1..=20000.
    pub shards: u32,
    /// Conduit transport: use this conduit; empty = reuse the client's first conduit or
    /// create one.
    pub conduit_id: String,
    /// Asked of the server (`keepalive_timeout_seconds`, 10..=600): silence longer than the
    /// welcome's value means the connection is dead and is replaced.
    pub keepalive_timeout_s: u64,
    /// Opening a WebSocket (TCP, TLS and handshake) gives up after this long.
    pub connect_timeout_ms: u64,
    /// Reconnect backoff: first delay, doubled per failure up to the maximum, with jitter.
    pub reconnect_backoff_ms: u64,
    pub reconnect_backoff_max_ms: u64,
    /// Largest WebSocket message accepted; a larger one is counted and the connection replaced.
    pub max_frame_bytes: usize,
    /// Message ids remembered to drop Twitch's repeated deliveries (oldest forgotten first).
    pub dedup_capacity: usize,
    /// Subscription requests in flight at once (they also take points from the token's
    /// Helix budget, `helix.points_per_minute`).
    pub subscribe_concurrency: usize,
    /// A failed subscription is retried after this, doubled per failure up to the maximum.
    pub retry_backoff_ms: u64,
    pub retry_backoff_max_ms: u64,
    /// Plain WebSocket transport: connections and enabled subscriptions per connection
    /// (Twitch: 3 and 300); past them a channel is refused with a clear error.
    pub websocket_max_connections: usize,
    pub websocket_max_subscriptions: usize,
    /// Webhook transport: this service's `POST /eventsub` as Twitch reaches it (https, port
    /// 443 on real Twitch).
    pub webhook_callback: String,
    /// File holding the webhook secret (`FIREHOSE_EVENTSUB_WEBHOOK_SECRET` wins); 10 to 100
    /// characters. With a secret set, `POST /eventsub` is served whatever the ingest mode.
    pub webhook_secret_file: Option<PathBuf>,
    /// Webhook notifications accepted but not yet handled, at most; past it the endpoint
    /// answers 503 (counted) and Twitch delivers again later.
    pub webhook_queue_capacity: usize,
    /// Largest webhook body accepted (413 beyond, counted).
    pub webhook_max_body_bytes: usize,
    /// A webhook message older than this is refused as a replay (Twitch: 10 minutes).
    pub webhook_max_age_s: u64,
}

impl Default for EventSubConfig {
    fn default() -> Self {
        Self {
            transport: EventSubTransport::Conduit,
            websocket_url: "wss://eventsub.wss.twitch.tv/ws".into(),
            shards: 1,
            conduit_id: String::new(),
            keepalive_timeout_s: 10,
            connect_timeout_ms: 10_000,
            reconnect_backoff_ms: 250,
            reconnect_backoff_max_ms: 30_000,
            max_frame_bytes: 1024 * 1024,
            dedup_capacity: 100_000,
            subscribe_concurrency: 4,
            retry_backoff_ms: 1_000,
            retry_backoff_max_ms: 300_000,
            websocket_max_connections: 3,
            websocket_max_subscriptions: 300,
            webhook_callback: String::new(),
            webhook_secret_file: None,
            webhook_queue_capacity: 10_000,
            webhook_max_body_bytes: 256 * 1024,
            webhook_max_age_s: 600,
        }
    }
}

impl EventSubConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let ws = &self.websocket_url;
        if !(ws.starts_with("wss://") || ws.starts_with("ws://")) || ws.len() <= "wss://".len() {
            return Err(invalid(
                "twitch.eventsub.websocket_url",
                "must be a ws:// or wss:// URL",
            ));
        }
        if !(1..=20_000).contains(&self.shards) {
            return Err(invalid(
                "twitch.eventsub.shards",
                "must be 1..=20000 (Twitch's most shards per conduit)",
            ));
        }
        if !(10..=600).contains(&self.keepalive_timeout_s) {
            return Err(invalid(
                "twitch.eventsub.keepalive_timeout_s",
                "must be 10..=600 (Twitch's range)",
            ));
        }
        positive(
            "twitch.eventsub.connect_timeout_ms",
            self.connect_timeout_ms,
        )?;
        positive(
            "twitch.eventsub.reconnect_backoff_ms",
            self.reconnect_backoff_ms,
        )?;
        if self.reconnect_backoff_max_ms < self.reconnect_backoff_ms {
            return Err(invalid(
                "twitch.eventsub.reconnect_backoff_max_ms",
                "must be at least twitch.eventsub.reconnect_backoff_ms",
            ));
        }
        if self.max_frame_bytes < 16 * 1024 {
            return Err(invalid(
                "twitch.eventsub.max_frame_bytes",
                "must be at least 16384",
            ));
        }
        positive("twitch.eventsub.dedup_capacity", self.dedup_capacity as u64)?;
        if !(1..=64).contains(&self.subscribe_concurrency) {
            return Err(invalid(
                "twitch.eventsub.subscribe_concurrency",
                "must be 1..=64",
            ));
        }
        positive("twitch.eventsub.retry_backoff_ms", self.retry_backoff_ms)?;
        if self.retry_backoff_max_ms < self.retry_backoff_ms {
            return Err(invalid(
                "twitch.eventsub.retry_backoff_max_ms",
                "must be at least twitch.eventsub.retry_backoff_ms",
            ));
        }
        positive(
            "twitch.eventsub.websocket_max_connections",
            self.websocket_max_connections as u64,
        )?;
        positive(
            "twitch.eventsub.websocket_max_subscriptions",
            self.websocket_max_subscriptions as u64,
        )?;
        if !self.webhook_callback.is_empty() && !is_http_url(&self.webhook_callback) {
            return Err(invalid(
                "twitch.eventsub.webhook_callback",
                "must be an http(s) URL (this service's /eventsub) or empty",
            ));
        }
        positive(
            "twitch.eventsub.webhook_queue_capacity",
            self.webhook_queue_capacity as u64,
        )?;
        if self.webhook_max_body_bytes < 4_096 {
            return Err(invalid(
                "twitch.eventsub.webhook_max_body_bytes",
                "must be at least 4096",
            ));
        }
        positive("twitch.eventsub.webhook_max_age_s", self.webhook_max_age_s)?;
        Ok(())
    }
}
