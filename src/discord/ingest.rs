//! Ingest: serenity's event handlers, from gateway events to the router.
//!
//! [`Ingest`] receives decoded events from serenity's shard runners. A guild message in a
//! mapped channel is converted ([`super::convert`]) and routed exactly like a Twitch message:
//! `Router::route` is synchronous and never waits, so admission control and the overflow
//! policy apply unchanged (the router drops `engine.ignore_users`' messages). The bot's own
//! messages (also in `messages_ignored_total{reason="own"}`), other bots' and webhooks' (with
//! `discord.ignore_bots`, the default; `reason="bot"`), DMs and unmapped channels are
//! counted and dropped. READY / RESUMED / shard stage changes keep the connection state that
//! readiness and `/v1/channels` read; serenity's rate-limit callback (delivered as
//! `EventHandler::ratelimit`) is counted.
//!
//! [`MalformedCounter`] is a raw handler: serenity turns a dispatch it cannot decode into
//! `Event::Unknown` (logging it only at debug level) and carries on; we count those.
//!
//! Ordering: serenity dispatches each event in its own task, so two messages of one channel
//! arriving back to back may (rarely) reach the router in swapped order.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serenity::all::{
    ConnectionStage, Context, Event, EventHandler, Message, RatelimitInfo, RawEventHandler, Ready,
    ResumedEvent, ShardStageUpdateEvent,
};

use super::convert::to_chat_event;
use super::metrics::DiscordMetrics;
use crate::channel::admission::Router;
use crate::config::DiscordConfig;

/// What the service knows about the gateway connection.
#[derive(Debug, Default)]
pub struct GatewayStatus {
    /// Shards this process runs.
    pub shards: u32,
    connected: Mutex<BTreeSet<u32>>,
    /// The bot's own user id (from READY); 0 until known.
    bot_user_id: AtomicU64,
}

impl GatewayStatus {
    pub fn new(shards: u32) -> Arc<Self> {
        Arc::new(GatewayStatus {
            shards,
            ..GatewayStatus::default()
        })
    }

    /// Shards currently connected.
    pub fn connected_shards(&self) -> u32 {
        self.connected.lock().map(|c| c.len() as u32).unwrap_or(0)
    }

    /// Every shard is connected.
    pub fn is_connected(&self) -> bool {
        self.connected_shards() >= self.shards
    }

    pub fn bot_user_id(&self) -> Option<u64> {
        Some(self.bot_user_id.load(Ordering::Acquire)).filter(|id| *id > 0)
    }

    fn set_shard(&self, shard: u32, connected: bool) -> u32 {
        let Ok(mut set) = self.connected.lock() else {
            return 0;
        };
        if connected {
            set.insert(shard);
        } else {
            set.remove(&shard);
        }
        set.len() as u32
    }
}

/// serenity's event handler: routes guild messages, tracks the connection.
pub struct Ingest {
    pub router: Arc<Router>,
    pub config: Arc<DiscordConfig>,
    pub metrics: DiscordMetrics,
    pub status: Arc<GatewayStatus>,
}

impl Ingest {
    /// Converts and routes one message. Never waits.
    pub fn on_message(&self, message: &Message) {
        self.metrics.messages_received.inc();
        if self.status.bot_user_id() == Some(message.author.id.get()) {
            self.router.own_message(crate::engine::Platform::Discord);
            return self.metrics.ignored("own_message");
        }
        if self.config.ignore_bots && (message.author.bot || message.webhook_id.is_some()) {
            self.router.bot_message(crate::engine::Platform::Discord);
            return self.metrics.ignored("bot");
        }
        match to_chat_event(message, &self.config) {
            Ok(event) => {
                self.router.route(event, Instant::now());
            }
            Err(skip) => self.metrics.ignored(skip.as_str()),
        }
    }

    fn shard_connected(&self, shard: u32, connected: bool) {
        let now = self.status.set_shard(shard, connected);
        self.metrics.shards_connected.set(i64::from(now));
    }
}

#[serenity::async_trait]
impl EventHandler for Ingest {
    async fn message(&self, _ctx: Context, message: Message) {
        self.on_message(&message);
    }

    async fn ready(&self, _ctx: Context, ready: Ready) {
        self.status
            .bot_user_id
            .store(ready.user.id.get(), Ordering::Release);
        let shard = ready.shard.map(|s| s.id.0).unwrap_or(0);
        self.metrics.session("ready");
        self.shard_connected(shard, true);
        tracing::info!(shard, guilds = ready.guilds.len(), "Discord shard ready");
    }

    async fn resume(&self, ctx: Context, _event: ResumedEvent) {
        self.metrics.session("resumed");
        self.shard_connected(ctx.shard_id.0, true);
        tracing::info!(shard = ctx.shard_id.0, "Discord shard resumed");
    }

    async fn shard_stage_update(&self, _ctx: Context, event: ShardStageUpdateEvent) {
        let connected = event.new == ConnectionStage::Connected;
        self.shard_connected(event.shard_id.0, connected);
        if !connected && event.old == ConnectionStage::Connected {
            tracing::warn!(shard = event.shard_id.0, stage = ?event.new, "Discord shard disconnected");
        }
    }

    async fn ratelimit(&self, data: RatelimitInfo) {
        self.metrics.rate_limited(data.global);
        tracing::debug!(path = %data.path, timeout = ?data.timeout, global = data.global, "Discord rate limit");
    }
}

/// Counts dispatches serenity could not decode (it passes them on as `Event::Unknown`).
pub struct MalformedCounter {
    pub metrics: DiscordMetrics,
}

#[serenity::async_trait]
impl RawEventHandler for MalformedCounter {
    async fn raw_event(&self, _ctx: Context, event: Event) {
        if let Event::Unknown(unknown) = event {
            self.metrics.payloads_malformed.inc();
            tracing::debug!(kind = %unknown.kind, "Discord dispatch not decoded; skipped");
        }
    }
}
