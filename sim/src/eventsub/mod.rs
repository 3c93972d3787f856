//! The simulated EventSub: a WebSocket server ([`ws`]), the subscription and conduit endpoints
//! of Helix ([`api`]), signed webhook delivery ([`webhook`]) and the JSON Twitch sends
//! ([`payloads`]), all on 127.0.0.1.
//!
//! Chat reaches EventSub from the chat simulator itself: a *bridge* joins (in the simulator's
//! channel table) every channel that has a chat subscription, as one more member beside the
//! IRC clients, so the generator's lines (generated, corpus, `!ping`s) reach IRC clients and
//! EventSub subscribers alike; the bridge turns each line into its EventSub event and delivers
//! it to every enabled subscription of that type and channel, over its transport: a WebSocket
//! session, a conduit (round-robin over its shards, trying one other shard when the first is
//! gone, as Twitch does) or a webhook. A full session queue makes the bridge wait (like TCP), so
//! the generator's backpressure accounting holds for EventSub too.
//!
//! Faults on demand, through [`EventSubSim`]: close sessions with any code (4000-4007), send
//! `session_reconnect` (to a good or an invalid URL), silence sessions (keepalive loss),
//! deliver the next notifications twice, revoke subscriptions, inject raw frames. The natural
//! faults happen too: a client that sends a message gets 4001, one that does not answer pings
//! 4002, an unused connection 4003, a reconnect not taken within the grace time 4004.

pub mod api;
pub mod payloads;
pub mod webhook;
pub mod ws;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::api::ApiInner;
use crate::content::Chatter;
use crate::state::{lock, Shared, Wire};

/// The bridge's member id in the channel table (no IRC client gets this id).
pub const BRIDGE_CLIENT_ID: u64 = u64::MAX;
/// Lines queued for the bridge before the generator waits.
const BRIDGE_QUEUE: usize = 8_192;

/// The chat subscription types the bridge feeds.
pub const CHAT_TYPES: &[&str] = &[
    "channel.chat.message",
    "channel.chat.message_delete",
    "channel.chat.clear",
    "channel.chat.clear_user_messages",
    "channel.chat.notification",
];

/// Every type the simulator knows, with its version.
pub const KNOWN_TYPES: &[&str] = &[
    "channel.chat.message",
    "channel.chat.message_delete",
    "channel.chat.clear",
    "channel.chat.clear_user_messages",
    "channel.chat.notification",
    "stream.online",
    "stream.offline",
    "channel.raid",
];

/// Limits and timings of the simulated EventSub (Twitch's values by default).
#[derive(Debug, Clone)]
pub struct EventSubSimConfig {
    /// `keepalive_timeout_seconds` when the client asks for none.
    pub default_keepalive_s: u64,
    /// Time to connect to a `reconnect_url` before the old connection is closed with 4004.
    pub reconnect_grace: Duration,
    /// WebSocket pings; a ping unanswered for this long closes with 4002.
    pub ping_interval: Duration,
    pub websocket_max_connections: usize,
    pub websocket_max_subscriptions: usize,
    pub websocket_max_total_cost: u32,
    pub max_conduits: usize,
    pub max_shards: usize,
    /// Delivery attempts of one webhook notification.
    pub webhook_attempts: u32,
    /// Notifications that failed every attempt before the subscription is revoked
    /// (`notification_failures_exceeded`).
    pub webhook_failures_before_revoke: u32,
    pub webhook_timeout: Duration,
    /// Frames queued per WebSocket connection before the bridge waits.
    pub session_queue: usize,
}

impl Default for EventSubSimConfig {
    fn default() -> Self {
        EventSubSimConfig {
            default_keepalive_s: 10,
            reconnect_grace: Duration::from_secs(30),
            ping_interval: Duration::from_secs(30),
            websocket_max_connections: 3,
            websocket_max_subscriptions: 300,
            websocket_max_total_cost: 10,
            max_conduits: 5,
            max_shards: 20_000,
            webhook_attempts: 3,
            webhook_failures_before_revoke: 3,
            webhook_timeout: Duration::from_secs(2),
            session_queue: 4_096,
        }
    }
}

/// What the simulated EventSub has done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventSubStats {
    pub connections: u64,
    pub welcomes: u64,
    pub notifications_sent: u64,
    /// Notifications sent a second time on purpose (same message id).
    pub duplicates_sent: u64,
    /// Notifications with no live transport (no session, no shard, silenced).
    pub dropped: u64,
    /// Close frames sent, by code.
    pub closes: BTreeMap<u16, u64>,
    /// Frames a client sent (each closes its connection with 4001).
    pub inbound_frames: u64,
    pub reconnects_requested: u64,
    pub reconnects_completed: u64,
    pub subscriptions_created: u64,
    pub subscriptions_deleted: u64,
    /// Create Subscription refusals, by status.
    pub subscription_refusals: BTreeMap<u16, u64>,
    pub shard_updates: u64,
    pub revocations: u64,
    pub webhook_posts: u64,
    pub webhook_failures: u64,
    pub webhook_verifications: u64,
}

/// One frame for a connection.
#[derive(Debug, Clone)]
pub enum Out {
    Text(String),
    Close(u16, String),
}

#[derive(Debug)]
pub struct Session {
    pub id: String,
    /// Serial of the connection serving it now (a reconnect moves the session).
    pub conn: u64,
    pub tx: mpsc::Sender<Out>,
    pub close: CancellationToken,
    pub keepalive_s: u64,
    pub connected_at: String,
    pub welcomed_at: Instant,
    /// The user whose token made its subscriptions (plain WebSocket).
    pub owner: Option<String>,
    /// A subscription or a conduit shard uses it (else 4003 after the keepalive time).
    pub used: bool,
    pub conduit_shard: Option<(String, usize)>,
    pub subscriptions: usize,
    pub cost: u32,
    pub pending_reconnect: Option<String>,
    /// Sends nothing (keepalive loss).
    pub silenced: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardTransport {
    Websocket(String),
}

#[derive(Debug, Clone)]
pub struct Conduit {
    pub id: String,
    pub shards: Vec<Option<ShardTransport>>,
    rr: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubTransport {
    Websocket(String),
    Conduit(String),
    Webhook { callback: String, secret: String },
}

#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: String,
    pub kind: String,
    pub version: String,
    pub condition: Value,
    /// The channel it is about (broadcaster, or the raided channel).
    pub key: String,
    pub transport: SubTransport,
    pub status: String,
    pub created_at: String,
    pub cost: u32,
    /// The user token's user that made it (None: an app token).
    pub owner: Option<String>,
    /// Webhook notifications that failed every attempt, in a row.
    pub failures: u32,
}

impl Subscription {
    pub fn transport_json(&self, es: &EventSubState) -> Value {
        match &self.transport {
            SubTransport::Websocket(session) => {
                let connected = es
                    .sessions
                    .get(session)
                    .map(|s| s.connected_at.clone())
                    .unwrap_or_default();
                json!({"method": "websocket", "session_id": session, "connected_at": connected})
            }
            SubTransport::Conduit(id) => json!({"method": "conduit", "conduit_id": id}),
            SubTransport::Webhook { callback, .. } => {
                json!({"method": "webhook", "callback": callback})
            }
        }
    }

    pub fn to_json(&self, es: &EventSubState) -> Value {
        payloads::subscription(
            &self.id,
            &self.kind,
            &self.version,
            &self.status,
            &self.condition,
            &self.transport_json(es),
            &self.created_at,
            self.cost,
        )
    }
}

/// Everything the simulated EventSub knows.
#[derive(Debug, Default)]
pub struct EventSubState {
    pub sessions: HashMap<String, Session>,
    pub conduits: Vec<Conduit>,
    pub subscriptions: HashMap<String, Subscription>,
    /// Channel (user id) -> its subscriptions' ids.
    pub by_channel: HashMap<String, Vec<String>>,
    pub duplicate_next: u64,
    pub stats: EventSubStats,
    next: u64,
}

impl EventSubState {
    pub fn new_id(&mut self) -> String {
        self.next += 1;
        let noise: u64 = rand::random();
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            noise >> 32,
            self.next & 0xffff,
            (noise >> 8) & 0xfff,
            noise & 0xfff,
            self.next
        )
    }

    pub fn add_subscription(&mut self, sub: Subscription) {
        self.by_channel
            .entry(sub.key.clone())
            .or_default()
            .push(sub.id.clone());
        self.subscriptions.insert(sub.id.clone(), sub);
        self.stats.subscriptions_created += 1;
    }

    /// Removes a subscription; returns it.
    pub fn remove_subscription(&mut self, id: &str) -> Option<Subscription> {
        let sub = self.subscriptions.remove(id)?;
        if let Some(ids) = self.by_channel.get_mut(&sub.key) {
            ids.retain(|i| i != id);
            if ids.is_empty() {
                self.by_channel.remove(&sub.key);
            }
        }
        if let SubTransport::Websocket(session) = &sub.transport {
            if let Some(session) = self.sessions.get_mut(session) {
                session.subscriptions = session.subscriptions.saturating_sub(1);
                session.cost = session.cost.saturating_sub(sub.cost);
            }
        }
        self.stats.subscriptions_deleted += 1;
        Some(sub)
    }

    /// Whether any chat subscription is left for the channel.
    pub fn has_chat_subscription(&self, channel_id: &str) -> bool {
        self.by_channel.get(channel_id).is_some_and(|ids| {
            ids.iter().any(|id| {
                self.subscriptions
                    .get(id)
                    .is_some_and(|s| CHAT_TYPES.contains(&s.kind.as_str()))
            })
        })
    }

    /// A session's connection is gone for good: its plain subscriptions die with it, its
    /// conduit shard is disabled.
    pub fn session_lost(&mut self, session_id: &str) -> Vec<String> {
        let Some(session) = self.sessions.remove(session_id) else {
            return Vec::new();
        };
        if let Some((conduit, shard)) = &session.conduit_shard {
            if let Some(c) = self.conduits.iter_mut().find(|c| &c.id == conduit) {
                if c.shards.get(*shard).and_then(|s| s.as_ref())
                    == Some(&ShardTransport::Websocket(session.id.clone()))
                {
                    c.shards[*shard] = None;
                }
            }
        }
        let dead: Vec<String> = self
            .subscriptions
            .values()
            .filter(|s| s.transport == SubTransport::Websocket(session.id.clone()))
            .map(|s| s.id.clone())
            .collect();
        let mut channels = Vec::new();
        for id in dead {
            if let Some(sub) = self.remove_subscription(&id) {
                channels.push(sub.key);
            }
        }
        channels
    }
}

/// A delivery decided under the lock, carried out after it.
enum Delivery {
    Socket(mpsc::Sender<Out>, String),
    Webhook(webhook::Job),
}

/// The shared handle of the simulated EventSub (inside the API server's state).
#[derive(Clone)]
pub struct EventSubShared {
    pub(crate) inner: Arc<EventSubInner>,
}

pub struct EventSubInner {
    pub config: EventSubSimConfig,
    pub state: Mutex<EventSubState>,
    pub sim: Arc<Shared>,
    bridge: mpsc::Sender<Wire>,
    pub ws_addr: OnceLock<SocketAddr>,
    pub webhooks: webhook::Webhooks,
    conn_serial: std::sync::atomic::AtomicU64,
}

impl EventSubShared {
    pub(crate) fn new(sim: Arc<Shared>) -> (EventSubShared, mpsc::Receiver<Wire>) {
        let (bridge, rx) = mpsc::channel(BRIDGE_QUEUE);
        let shared = EventSubShared {
            inner: Arc::new(EventSubInner {
                config: sim.config.eventsub.clone(),
                state: Mutex::new(EventSubState::default()),
                webhooks: webhook::Webhooks::new(sim.shutdown.clone()),
                sim,
                bridge,
                ws_addr: OnceLock::new(),
                conn_serial: std::sync::atomic::AtomicU64::new(1),
            }),
        };
        (shared, rx)
    }

    pub(crate) fn next_conn(&self) -> u64 {
        self.inner
            .conn_serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// The bridge joins the channel in the simulator's table (idempotent).
    pub(crate) fn bridge_join(&self, channel: &str) {
        let tx = self.inner.bridge.clone();
        let _ = self
            .inner
            .sim
            .change_membership(|t| t.join(channel, BRIDGE_CLIENT_ID, &tx));
    }

    /// The bridge leaves the channel (its last chat subscription is gone).
    pub(crate) fn bridge_part(&self, channel: &str) {
        self.inner
            .sim
            .change_membership(|t| t.part(channel, BRIDGE_CLIENT_ID));
    }

    /// Runs the bridge until the simulator shuts down.
    pub(crate) async fn run_bridge(self, mut lines: mpsc::Receiver<Wire>) {
        let stop = self.inner.sim.shutdown.clone();
        loop {
            let line = tokio::select! {
                _ = stop.cancelled() => return,
                line = lines.recv() => line,
            };
            let Some(wire) = line else { return };
            // Raw bytes are an IRC-only test injection: EventSub has no such event.
            let Wire::Line(line) = wire else { continue };
            if let Some(event) = payloads::from_irc_line(&line) {
                self.deliver(event).await;
            }
        }
    }

    /// Delivers one event to every enabled subscription of its type and channel.
    pub async fn deliver(&self, event: payloads::ChatEvent) {
        let deliveries = self.plan(&event);
        for delivery in deliveries {
            match delivery {
                Delivery::Socket(tx, frame) => {
                    if tx.send(Out::Text(frame)).await.is_err() {
                        lock(&self.inner.state).stats.dropped += 1;
                    }
                }
                Delivery::Webhook(job) => self.inner.webhooks.push(self.clone(), job),
            }
        }
    }

    fn plan(&self, event: &payloads::ChatEvent) -> Vec<Delivery> {
        let mut es = lock(&self.inner.state);
        let ids: Vec<String> = es
            .by_channel
            .get(&event.broadcaster_id)
            .cloned()
            .unwrap_or_default();
        let mut out = Vec::new();
        for id in ids {
            let Some(sub) = es.subscriptions.get(&id) else {
                continue;
            };
            if sub.kind != event.kind || sub.status != "enabled" {
                continue;
            }
            let sub = sub.clone();
            let message_id = es.new_id();
            let frame = payloads::notification(
                &message_id,
                &sub.to_json(&es),
                &event.event,
                event.sent_at.as_deref(),
            );
            let times = if es.duplicate_next > 0 {
                es.duplicate_next -= 1;
                es.stats.duplicates_sent += 1;
                2
            } else {
                1
            };
            for _ in 0..times {
                match self.route(&mut es, &sub, &message_id, &frame, "notification") {
                    Some(delivery) => {
                        es.stats.notifications_sent += 1;
                        out.push(delivery);
                    }
                    None => es.stats.dropped += 1,
                }
            }
        }
        out
    }

    /// Where one frame for `sub` goes now (None: no live transport).
    fn route(
        &self,
        es: &mut EventSubState,
        sub: &Subscription,
        message_id: &str,
        frame: &str,
        message_type: &'static str,
    ) -> Option<Delivery> {
        match &sub.transport {
            SubTransport::Websocket(session) => {
                let s = es.sessions.get(session).filter(|s| !s.silenced)?;
                Some(Delivery::Socket(s.tx.clone(), frame.to_string()))
            }
            SubTransport::Conduit(conduit) => {
                let c = es.conduits.iter_mut().find(|c| &c.id == conduit)?;
                let n = c.shards.len();
                // Round-robin; a shard without a live session is skipped once (Twitch tries
                // one other shard), then the notification is dropped.
                let mut tried = 0;
                while tried < 2 && n > 0 {
                    let index = c.rr % n;
                    c.rr = c.rr.wrapping_add(1);
                    let Some(ShardTransport::Websocket(session)) = c.shards[index].clone() else {
                        tried += 1;
                        continue;
                    };
                    match es.sessions.get(&session).filter(|s| !s.silenced) {
                        Some(s) => return Some(Delivery::Socket(s.tx.clone(), frame.to_string())),
                        None => tried += 1,
                    }
                }
                None
            }
            SubTransport::Webhook { callback, secret } => Some(Delivery::Webhook(webhook::Job {
                subscription_id: sub.id.clone(),
                kind: sub.kind.clone(),
                version: sub.version.clone(),
                callback: callback.clone(),
                secret: secret.clone(),
                message_id: message_id.to_string(),
                message_type,
                body: webhook_body(frame),
            })),
        }
    }

    /// The bot's own message as its channel's `channel.chat.message` (Twitch shows it there).
    pub(crate) fn bot_message(
        &self,
        api: &ApiInner,
        channel: &str,
        message_id: &str,
        text: &str,
        app_token: bool,
    ) {
        let Some(room) = lock(&api.sim.channels).room_id(channel) else {
            return;
        };
        let bot = api.sim.config.bot_login.clone();
        let chatter = Chatter::for_login(&bot);
        let mut badges = Vec::new();
        if bot == channel {
            badges.push(json!({"set_id": "broadcaster", "id": "1", "info": ""}));
        } else if api.sim.config.limits.bot_is_mod {
            badges.push(json!({"set_id": "moderator", "id": "1", "info": ""}));
        }
        if app_token {
            badges.push(json!({"set_id": "bot-badge", "id": "1", "info": ""}));
        }
        let event = json!({
            "broadcaster_user_id": room.to_string(), "broadcaster_user_login": channel, "broadcaster_user_name": channel,
            "chatter_user_id": chatter.user_id, "chatter_user_login": bot, "chatter_user_name": chatter.display_name,
            "message_id": message_id,
            "message": {"text": text, "fragments": payloads::fragments(text, &[])},
            "message_type": "text", "badges": badges, "cheer": null, "color": chatter.color, "reply": null,
            "channel_points_custom_reward_id": null, "channel_points_animation_id": null,
            "source_broadcaster_user_id": null, "source_broadcaster_user_login": null,
            "source_broadcaster_user_name": null, "source_message_id": null, "source_badges": null,
            "is_source_only": null
        });
        let shared = self.clone();
        let event = payloads::ChatEvent {
            kind: "channel.chat.message",
            broadcaster_id: room.to_string(),
            channel: channel.to_string(),
            event,
            sent_at: None,
        };
        tokio::spawn(async move { shared.deliver(event).await });
    }

    /// Sends a revocation for `sub` (already removed) over its transport.
    pub(crate) fn send_revocation(&self, sub: &Subscription) {
        let delivery = {
            let mut es = lock(&self.inner.state);
            es.stats.revocations += 1;
            let message_id = es.new_id();
            let frame = payloads::revocation(&message_id, &sub.to_json(&es));
            self.route(&mut es, sub, &message_id, &frame, "revocation")
        };
        match delivery {
            Some(Delivery::Socket(tx, frame)) => {
                let _ = tx.try_send(Out::Text(frame));
            }
            Some(Delivery::Webhook(job)) => self.inner.webhooks.push(self.clone(), job),
            None => {}
        }
    }

    /// After subscriptions are removed: the bridge leaves channels without chat subscriptions.
    pub(crate) fn after_removal(&self, channel_ids: &[String]) {
        for id in channel_ids {
            let left = lock(&self.inner.state).has_chat_subscription(id);
            if left {
                continue;
            }
            let login = id
                .parse::<u64>()
                .ok()
                .and_then(|room| lock(&self.inner.sim.channels).login_of(room));
            if let Some(login) = login {
                self.bridge_part(&login);
            }
        }
    }

    /// A session's connection ended for good (its subscriptions are gone).
    pub(crate) fn after_session_lost(&self, channel_ids: &[String]) {
        self.after_removal(channel_ids);
    }
}

/// A webhook body is the notification frame's payload (`subscription` + `event`, or +
/// `challenge`), without the WebSocket metadata.
fn webhook_body(frame: &str) -> String {
    serde_json::from_str::<Value>(frame)
        .ok()
        .and_then(|v| v.get("payload").cloned())
        .map(|p| p.to_string())
        .unwrap_or_default()
}

/// Control and inspection of the simulated EventSub (through [`crate::SimHandle::eventsub`]).
#[derive(Clone)]
pub struct EventSubSim {
    pub(crate) shared: EventSubShared,
    pub(crate) api: Arc<ApiInner>,
}

impl EventSubSim {
    /// `ws://127.0.0.1:PORT/ws` (the service's `twitch.eventsub.websocket_url`).
    pub fn websocket_url(&self) -> String {
        match self.shared.inner.ws_addr.get() {
            Some(addr) => format!("ws://{addr}/ws"),
            None => String::new(),
        }
    }

    pub fn stats(&self) -> EventSubStats {
        lock(&self.shared.inner.state).stats.clone()
    }

    /// Ids of the WebSocket sessions connected now.
    pub fn sessions(&self) -> Vec<String> {
        lock(&self.shared.inner.state)
            .sessions
            .keys()
            .cloned()
            .collect()
    }

    /// Enabled subscriptions as (type, channel login, transport method), sorted.
    pub fn subscriptions(&self) -> Vec<(String, String, String)> {
        let rows: Vec<(String, String, SubTransport)> = {
            let es = lock(&self.shared.inner.state);
            es.subscriptions
                .values()
                .filter(|s| s.status == "enabled")
                .map(|s| (s.kind.clone(), s.key.clone(), s.transport.clone()))
                .collect()
        };
        let mut out: Vec<(String, String, String)> = rows
            .into_iter()
            .map(|(kind, key, transport)| {
                let login = crate::api::login_of(&self.api, &key).unwrap_or(key);
                let method = match transport {
                    SubTransport::Websocket(_) => "websocket",
                    SubTransport::Conduit(_) => "conduit",
                    SubTransport::Webhook { .. } => "webhook",
                };
                (kind, login, method.to_string())
            })
            .collect();
        out.sort();
        out
    }

    /// Enabled subscriptions of `kind` for `channel`.
    pub fn subscribed(&self, kind: &str, channel: &str) -> usize {
        self.subscriptions()
            .iter()
            .filter(|(k, c, _)| k == kind && c == channel)
            .count()
    }

    /// Conduits as (id, shards, shards with a live session).
    pub fn conduits(&self) -> Vec<(String, usize, usize)> {
        let es = lock(&self.shared.inner.state);
        es.conduits
            .iter()
            .map(|c| {
                let live = c
                    .shards
                    .iter()
                    .filter(|s| matches!(s, Some(ShardTransport::Websocket(id)) if es.sessions.contains_key(id)))
                    .count();
                (c.id.clone(), c.shards.len(), live)
            })
            .collect()
    }

    /// Closes every connected session with `code` (and a reason naming it).
    pub fn close_all(&self, code: u16) {
        let sessions: Vec<(mpsc::Sender<Out>, String)> = {
            let es = lock(&self.shared.inner.state);
            es.sessions
                .values()
                .map(|s| (s.tx.clone(), s.id.clone()))
                .collect()
        };
        for (tx, _) in sessions {
            let _ = tx.try_send(Out::Close(code, close_reason(code).to_string()));
        }
    }

    /// Sends `session_reconnect` to every session; with `valid = false` the URL is one the
    /// server does not know (the client's connection to it is closed with 4007).
    pub fn send_reconnect(&self, valid: bool) {
        let Some(addr) = self.shared.inner.ws_addr.get().copied() else {
            return;
        };
        let mut frames = Vec::new();
        {
            let mut es = lock(&self.shared.inner.state);
            let ids: Vec<String> = es.sessions.keys().cloned().collect();
            for id in ids {
                let token = es.new_id();
                let message_id = es.new_id();
                es.stats.reconnects_requested += 1;
                let Some(session) = es.sessions.get_mut(&id) else {
                    continue;
                };
                let url_token = if valid {
                    session.pending_reconnect = Some(token.clone());
                    token
                } else {
                    format!("stale-{token}")
                };
                let url = format!("ws://{addr}/ws?reconnect={url_token}");
                let frame = payloads::reconnect(&message_id, &id, &url, &session.connected_at);
                frames.push((session.tx.clone(), frame, id.clone(), session.conn));
            }
        }
        let grace = self.shared.inner.config.reconnect_grace;
        for (tx, frame, id, conn) in frames {
            let _ = tx.try_send(Out::Text(frame));
            if valid {
                let shared = self.shared.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(grace).await;
                    let tx = {
                        let es = lock(&shared.inner.state);
                        es.sessions
                            .get(&id)
                            .filter(|s| s.conn == conn && s.pending_reconnect.is_some())
                            .map(|s| s.tx.clone())
                    };
                    if let Some(tx) = tx {
                        let _ = tx.try_send(Out::Close(4004, close_reason(4004).into()));
                    }
                });
            }
        }
    }

    /// The sessions connected now stop sending anything (keepalive loss); new ones are normal.
    pub fn silence_sessions(&self) {
        let mut es = lock(&self.shared.inner.state);
        for session in es.sessions.values_mut() {
            session.silenced = true;
        }
    }

    /// The next `n` notifications are each delivered twice (same message id).
    pub fn duplicate_next(&self, n: u64) {
        lock(&self.shared.inner.state).duplicate_next += n;
    }

    /// Sends `text` as a raw frame to every session (malformed or huge frames).
    pub fn inject_frame(&self, text: &str) {
        let txs: Vec<mpsc::Sender<Out>> = lock(&self.shared.inner.state)
            .sessions
            .values()
            .map(|s| s.tx.clone())
            .collect();
        for tx in txs {
            let _ = tx.try_send(Out::Text(text.to_string()));
        }
    }

    /// Converts one IRC line (as the chat simulator would send it) to its EventSub event and
    /// delivers it, without sending it to IRC clients (`SimHandle::inject_raw` does that).
    /// False when the line is no chat event.
    pub async fn inject_irc(&self, line: &str) -> bool {
        match payloads::from_irc_line(line) {
            Some(mut event) => {
                // A recorded line carries its channel's real room id; here the channel has the
                // simulated Twitch's id (the one subscriptions name).
                let id = crate::api::user_id(&self.api, &event.channel);
                event.event["broadcaster_user_id"] = serde_json::Value::String(id.clone());
                event.broadcaster_id = id;
                self.shared.deliver(event).await;
                true
            }
            None => false,
        }
    }

    /// `stream.online` (with `started_at`) or `stream.offline` for `channel`.
    pub async fn set_live(&self, channel: &str, started_at: Option<&str>) {
        let id = crate::api::user_id(&self.api, channel);
        let mut event = json!({
            "broadcaster_user_id": id, "broadcaster_user_login": channel, "broadcaster_user_name": channel
        });
        let kind = match started_at {
            Some(at) => {
                event["id"] = json!("9001");
                event["type"] = json!("live");
                event["started_at"] = json!(at);
                "stream.online"
            }
            None => "stream.offline",
        };
        self.shared
            .deliver(payloads::ChatEvent {
                kind,
                broadcaster_id: id,
                channel: channel.to_string(),
                event,
                sent_at: None,
            })
            .await;
    }

    /// `channel.raid` from `from` to `to`.
    pub async fn raid(&self, from: &str, to: &str, viewers: i64) {
        let from_id = crate::api::user_id(&self.api, from);
        let to_id = crate::api::user_id(&self.api, to);
        let event = json!({
            "from_broadcaster_user_id": from_id, "from_broadcaster_user_login": from, "from_broadcaster_user_name": from,
            "to_broadcaster_user_id": to_id, "to_broadcaster_user_login": to, "to_broadcaster_user_name": to,
            "viewers": viewers
        });
        self.shared
            .deliver(payloads::ChatEvent {
                kind: "channel.raid",
                broadcaster_id: to_id,
                channel: to.to_string(),
                event,
                sent_at: None,
            })
            .await;
    }

    /// Revokes the subscriptions of `kind` (all kinds when None) for `channel` with `status`
    /// (`authorization_revoked`, `user_removed`, ...); returns how many.
    pub fn revoke(&self, channel: &str, kind: Option<&str>, status: &str) -> usize {
        let id = crate::api::user_id(&self.api, channel);
        let removed: Vec<Subscription> = {
            let es = lock(&self.shared.inner.state);
            let ids: Vec<String> = es
                .by_channel
                .get(&id)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|sid| {
                    es.subscriptions
                        .get(sid)
                        .is_some_and(|s| kind.is_none_or(|k| s.kind == k))
                })
                .collect();
            ids.iter()
                .filter_map(|sid| {
                    let mut sub = es.subscriptions.get(sid)?.clone();
                    sub.status = status.to_string();
                    Some(sub)
                })
                .collect()
        };
        // Revocations go out over the transport before the subscription disappears.
        for sub in &removed {
            self.shared.send_revocation(sub);
        }
        {
            let mut es = lock(&self.shared.inner.state);
            for sub in &removed {
                es.remove_subscription(&sub.id);
            }
        }
        self.shared.after_removal(&[id]);
        removed.len()
    }
}

/// The reason text Twitch sends with each close code.
pub fn close_reason(code: u16) -> &'static str {
    match code {
        4000 => "internal server error",
        4001 => "sent inbound traffic",
        4002 => "failed ping pong",
        4003 => "connection unused",
        4004 => "reconnect grace time expired",
        4005 => "network timeout",
        4006 => "network error",
        4007 => "invalid reconnect",
        _ => "closed",
    }
}
