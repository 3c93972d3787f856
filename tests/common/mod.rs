//! Shared helpers for the integration tests: a simulator, a service pointed at it over
//! loopback, a tap that records what each channel handled, an engine with injectable faults,
//! and waiting on conditions with deadlines (never sleep-and-hope).

#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use firehose::app::ServiceOptions;
use firehose::channel::{ChannelKey, ChannelShared, ProcessedTap};
use firehose::cli::Server;
use firehose::config::{Config, Secret};
use firehose::engine::{self, Action, ChannelState, ChatEvent, ChatHandler, EventKind};
use firehose_sim::{SimConfig, SimHandle, Simulator};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// Polls `condition` every 10 ms until it holds; panics with `what` after `deadline`.
pub async fn wait_until(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    while !condition() {
        assert!(
            Instant::now() < until,
            "timed out after {deadline:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Like [`wait_until`] with an async condition.
pub async fn wait_until_async<F, Fut>(what: &str, deadline: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let until = Instant::now() + deadline;
    while !condition().await {
        assert!(
            Instant::now() < until,
            "timed out after {deadline:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A simulator with `n` channels and no generated traffic yet.
pub async fn sim(n: usize, tweak: impl FnOnce(&mut SimConfig)) -> SimHandle {
    let mut config = SimConfig::with_channels(n);
    config.rate = 0.0;
    config.record_sent = true;
    config.limits.verified = true;
    config.limits.bot_is_mod = true;
    config.limits.join_limit = 10_000;
    tweak(&mut config);
    Simulator::start(config).await.expect("simulator starts")
}

/// A service configuration pointed at the simulator on loopback.
pub fn config_for(sim_addr: SocketAddr, channels: &[String]) -> Config {
    let mut config = Config::default();
    config.twitch.server = sim_addr.to_string();
    config.twitch.tls = false;
    config.twitch.login = "firehosedemo".into();
    config.twitch.channels = channels.to_vec();
    config.twitch.verified_bot = true;
    config.http.listen = "127.0.0.1:0".parse().expect("addr");
    config.twitch.join.limit = 10_000;
    config.twitch.reconnect_backoff_ms = 20;
    config.twitch.reconnect_backoff_max_ms = 200;
    config.supervisor.restart_backoff_ms = 10;
    config.supervisor.restart_backoff_max_ms = 100;
    config.secrets.admin_token = Some(Secret::new(ADMIN_TOKEN));
    config
}

pub fn sim_channels(n: usize) -> Vec<String> {
    SimConfig::with_channels(n).channels
}

/// Starts a service and waits until it is ready.
pub async fn service(config: Config, options: ServiceOptions) -> Server {
    config.validate().expect("test config is valid");
    let service = Server::start(config, options)
        .await
        .expect("service starts");
    if let Err(readiness) = service.wait_ready(Duration::from_secs(20)).await {
        let channels = service
            .core()
            .eventsub
            .as_ref()
            .map(|e| {
                service
                    .core()
                    .config
                    .twitch
                    .channels
                    .iter()
                    .map(|c| format!("{c}: {:?}", e.channel(c)))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        panic!("service not ready: {:?} {channels:?}", readiness.reasons);
    }
    service
}

pub fn channel(service: &Server, login: &str) -> Arc<ChannelShared> {
    service
        .core()
        .registry
        .get(&ChannelKey::twitch(login))
        .unwrap_or_else(|| panic!("channel {login} is registered"))
}

pub fn processed(service: &Server, login: &str) -> u64 {
    channel(service, login)
        .counters
        .processed
        .load(Ordering::Relaxed)
}

pub fn received(service: &Server, login: &str) -> u64 {
    channel(service, login)
        .counters
        .received
        .load(Ordering::Relaxed)
}

pub fn shed(service: &Server, login: &str) -> u64 {
    channel(service, login).counters.shed_total()
}

/// Records the ids of the chat messages each channel handled, in order.
#[derive(Default)]
pub struct RecordingTap {
    pub handled: Mutex<HashMap<String, Vec<String>>>,
}

impl ProcessedTap for RecordingTap {
    fn processed(&self, event: &ChatEvent, _seq: u64) {
        if let Some(message) = event.message() {
            if let Ok(mut handled) = self.handled.lock() {
                handled
                    .entry(event.channel.to_string())
                    .or_default()
                    .push(message.id.clone());
            }
        }
    }
}

impl RecordingTap {
    pub fn ids(&self, channel: &str) -> Vec<String> {
        self.handled
            .lock()
            .map(|h| h.get(channel).cloned().unwrap_or_default())
            .unwrap_or_default()
    }
}

/// The real engine plus injectable faults: it panics on messages containing `POISON`, panics
/// on every message in channels listed in `doomed`, and spends `slow_per_message` of CPU on
/// every message in channels listed in `slow`.
#[derive(Default)]
pub struct FaultyEngine {
    pub slow: Vec<String>,
    pub slow_per_message: Duration,
    pub doomed: Vec<String>,
}

impl ChatHandler for FaultyEngine {
    fn handle(&self, state: &mut ChannelState, event: &ChatEvent, now: SystemTime) -> Vec<Action> {
        if let EventKind::Message(m) = &event.kind {
            if m.text.contains("POISON") {
                panic!("poison message {}", m.id);
            }
        }
        if self.doomed.iter().any(|c| **c == *event.channel) {
            panic!("channel {} is doomed", event.channel);
        }
        if self.slow.iter().any(|c| **c == *event.channel) {
            std::thread::sleep(self.slow_per_message);
        }
        engine::handle(state, event, now)
    }
}

pub fn options_with(handler: impl ChatHandler, tap: Option<Arc<RecordingTap>>) -> ServiceOptions {
    ServiceOptions {
        handler: Arc::new(handler),
        tap: tap.map(|t| t as Arc<dyn ProcessedTap>),
        store: None,
    }
}

pub fn metric_value(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Sends a request with the admin bearer token; panics only if the request cannot be sent.
pub trait SendAsAdmin {
    fn send_as_admin(self) -> impl Future<Output = reqwest::Response>;
}

impl SendAsAdmin for reqwest::RequestBuilder {
    async fn send_as_admin(self) -> reqwest::Response {
        self.bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("the admin request is sent")
    }
}

/// The CQL database the tests use: `FIREHOSE_SCYLLA_URI` (set by `scripts/test.sh`, which
/// starts a Cassandra node, or by whoever points the suite at their own ScyllaDB). Tests that
/// need it fail without it, never skip.
pub fn scylla_uri() -> String {
    match std::env::var("FIREHOSE_SCYLLA_URI") {
        Ok(uri) if !uri.trim().is_empty() => uri,
        _ => panic!(
            "FIREHOSE_SCYLLA_URI is not set: run the suite with ./scripts/test.sh (it starts a \
             Cassandra node) or point FIREHOSE_SCYLLA_URI at a ScyllaDB/Cassandra"
        ),
    }
}

/// A store config on the test database with a keyspace of its own (parallel-safe).
pub fn scylla_store_config(test: &str) -> firehose::config::StoreConfig {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut keyspace = format!("fh_t_{}_{}_{}", test, std::process::id(), n);
    keyspace.truncate(48);
    firehose::config::StoreConfig {
        scylla_uri: scylla_uri(),
        keyspace,
        request_timeout_ms: 5_000,
        ..Default::default()
    }
}

/// An embedded store config: a file in `dir`.
pub fn embedded_store_config(dir: &std::path::Path) -> firehose::config::StoreConfig {
    firehose::config::StoreConfig {
        embedded_path: dir.join("state.redb").display().to_string(),
        ..Default::default()
    }
}

/// A PRIVMSG from a moderator (badges, `mod=1`) to inject with `SimHandle::inject_raw`.
pub fn moderator_line(channel: &str, text: &str) -> String {
    let now = engine::millis(SystemTime::now());
    format!(
        "@badge-info=;badges=moderator/1;color=;display-name=Modder;emotes=;first-msg=0;flags=;id=mod-{now};mod=1;room-id=1;subscriber=0;tmi-sent-ts={now};turbo=0;user-id=999;user-type=mod :modder!modder@modder.tmi.twitch.tv PRIVMSG #{channel} :{text}"
    )
}

/// Whether the bot said something containing `needle` in `channel`.
pub fn said(sim: &SimHandle, channel: &str, needle: &str) -> bool {
    sim.received()
        .iter()
        .any(|m| m.channel == channel && m.text.contains(needle))
}

/// A service configuration reading chat through the simulator's EventSub (`transport`) and
/// sending through its Helix Chat API, with tokens renewed through its OAuth service.
pub fn eventsub_config(
    sim: &SimHandle,
    channels: &[String],
    transport: firehose::config::EventSubTransport,
) -> Config {
    use firehose_sim::api::{BOT_SCOPES, CLIENT_ID, CLIENT_SECRET};
    let mut config = config_for(sim.local_addr(), channels);
    config.twitch.ingest = firehose::config::Ingest::Eventsub;
    config.twitch.send_via = firehose::config::SendVia::Helix;
    config.helix.base_url = sim.api().helix_url();
    config.helix.client_id = CLIENT_ID.to_string();
    config.twitch.auth.oauth_url = sim.api().oauth_url();
    config.twitch.auth.retry_backoff_ms = 50;
    config.twitch.auth.retry_backoff_max_ms = 1_000;
    config.secrets.client_secret = Some(Secret::new(CLIENT_SECRET));
    config.secrets.refresh_token = Some(Secret::new(
        sim.api()
            .issue_refresh_token(&config.twitch.login, BOT_SCOPES),
    ));
    let es = &mut config.twitch.eventsub;
    es.transport = transport;
    es.websocket_url = sim.eventsub().websocket_url();
    es.retry_backoff_ms = 50;
    es.retry_backoff_max_ms = 1_000;
    es.reconnect_backoff_ms = 20;
    es.reconnect_backoff_max_ms = 500;
    es.connect_timeout_ms = 5_000;
    config
}

/// Sends `!ping` from `user` in `channel` (to IRC clients and EventSub alike) and returns its id.
pub async fn ping(sim: &SimHandle, channel: &str, user: &str) -> String {
    sim.send_privmsg(channel, user, "!ping")
        .await
        .unwrap_or_else(|| panic!("{channel} has a member to get the !ping"))
}

/// A loopback port free right now (for a service whose own URL must be known before it
/// starts: webhook callbacks, OAuth redirects).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub const WEBHOOK_SECRET: &str = "firehose-webhook-secret-0123";
