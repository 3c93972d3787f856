//! A fake Discord for tests and the demo: REST (over TLS, see [`tls`]) and a gateway, both on
//! 127.0.0.1, speaking enough of Discord's v10 API for serenity 0.12.
//!
//! - [`rest`]: `GET /api/v10/gateway` (+ `/gateway/bot`) answer with the fake's `ws://` gateway;
//!   message posts, deletes, member edits (timeouts) and bans are recorded; posts can be made
//!   to answer 429.
//! - [`gateway`]: Hello, Identify/Resume, heartbeat ACKs, READY; dispatches MESSAGE_CREATE to
//!   the shard owning the guild; sends raw (malformed) frames; drops connections on demand.
//! - [`payloads`]: the JSON it sends.
//! - [`guild`]: paced chat traffic in a simulated guild (the demo's Discord side).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use firehose_sim::discord::{FakeDiscord, FakeDiscordConfig};
//! let fake = FakeDiscord::start(FakeDiscordConfig::new("token", vec![1])).await?;
//! // A client resolves `discord.com` to this address and trusts this CA:
//! let (address, ca_file) = (fake.rest_addr(), fake.write_test_ca(&std::env::temp_dir())?);
//! # let _ = (address, ca_file);
//! # Ok(()) }
//! ```

pub mod gateway;
pub mod guild;
pub mod payloads;
pub mod rest;
pub mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use gateway::Push;
pub use payloads::MessageSpec;

/// Most REST calls kept in the record (oldest dropped first).
const MAX_RECORDED: usize = 100_000;

#[derive(Debug, Clone)]
pub struct FakeDiscordConfig {
    /// The bot token the fake accepts (without `Bot `).
    pub token: String,
    /// Shards the fake tells `/gateway/bot` callers to use.
    pub shards: u64,
    /// Heartbeat interval announced in Hello.
    pub heartbeat_interval_ms: u64,
    /// Guilds listed in READY.
    pub guilds: Vec<u64>,
    /// What `GET /gateway` answers instead of the fake's own gateway (to test an override).
    pub advertised_gateway: Option<String>,
}

impl FakeDiscordConfig {
    pub fn new(token: &str, guilds: Vec<u64>) -> Self {
        FakeDiscordConfig {
            token: token.to_string(),
            shards: 1,
            heartbeat_interval_ms: 1_000,
            guilds,
            advertised_gateway: None,
        }
    }
}

/// One REST call the fake carried out.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub body: Value,
    /// The decoded `X-Audit-Log-Reason`, if sent.
    pub reason: Option<String>,
}

struct Session {
    shard: u64,
    session_id: String,
    push: mpsc::Sender<Push>,
}

/// State shared by the REST and gateway tasks and the test's handle.
pub struct FakeState {
    pub config: FakeDiscordConfig,
    gateway_addr: SocketAddr,
    next_id: AtomicU64,
    recorded: Mutex<Vec<Recorded>>,
    sessions: Mutex<HashMap<u64, Session>>,
    /// Session id -> shard, kept after a connection ends so it can be resumed.
    known_sessions: Mutex<HashMap<String, u64>>,
    pub(crate) posts_to_refuse: AtomicU32,
    pub answered_429: AtomicU64,
    pub unauthorized: AtomicU64,
    pub gateway_asks: AtomicU64,
    pub connections: AtomicU64,
    pub identifies: AtomicU64,
    pub resumes: AtomicU64,
    pub heartbeats: AtomicU64,
    pub refused_logins: AtomicU64,
    pub last_intents: AtomicU64,
}

impl FakeState {
    pub fn gateway_url(&self) -> String {
        format!("ws://{}", self.gateway_addr)
    }

    /// A fresh snowflake-sized id.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn record(&self, call: Recorded) {
        if let Ok(mut recorded) = self.recorded.lock() {
            if recorded.len() >= MAX_RECORDED {
                recorded.remove(0);
            }
            recorded.push(call);
        }
    }

    fn add_session(&self, shard: u64, session_id: &str, push: mpsc::Sender<Push>) -> u64 {
        let id = self.next_id();
        if let Ok(mut known) = self.known_sessions.lock() {
            known.insert(session_id.to_string(), shard);
        }
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.insert(
                id,
                Session {
                    shard,
                    session_id: session_id.to_string(),
                    push,
                },
            );
        }
        id
    }

    fn remove_session(&self, id: u64) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.remove(&id);
        }
    }

    fn shard_of_session(&self, session_id: &str) -> Option<u64> {
        self.known_sessions.lock().ok()?.get(session_id).copied()
    }

    /// Dispatches MESSAGE_CREATE to the shard owning the guild (see [`FakeDiscord::send_message`]).
    pub fn send_message(&self, mut spec: MessageSpec) -> Option<u64> {
        if spec.id == 0 {
            spec.id = self.next_id();
        }
        let shard = payloads::shard_of(spec.guild_id, self.live_total_shards());
        let data = payloads::message(&spec);
        let taken = self.push(Some(shard), || Push::Dispatch {
            kind: "MESSAGE_CREATE".into(),
            data: data.clone(),
        });
        (taken > 0).then_some(spec.id)
    }

    /// Shards in use: the configured count, or more if clients identified with more.
    fn live_total_shards(&self) -> u64 {
        self.sessions
            .lock()
            .map(|s| s.values().map(|s| s.shard + 1).max().unwrap_or(1))
            .unwrap_or(1)
            .max(self.config.shards)
    }

    /// Pushes to every live session of `shard` (all shards with None); how many took it.
    fn push(&self, shard: Option<u64>, make: impl Fn() -> Push) -> usize {
        let Ok(sessions) = self.sessions.lock() else {
            return 0;
        };
        sessions
            .values()
            .filter(|s| shard.is_none_or(|wanted| s.shard == wanted))
            .filter(|s| s.push.try_send(make()).is_ok())
            .count()
    }
}

/// A running fake Discord.
pub struct FakeDiscord {
    state: Arc<FakeState>,
    rest_addr: SocketAddr,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl FakeDiscord {
    /// Binds REST (TLS) and the gateway on 127.0.0.1 ports of the system's choosing.
    pub async fn start(config: FakeDiscordConfig) -> std::io::Result<FakeDiscord> {
        let rest = TcpListener::bind("127.0.0.1:0").await?;
        let gateway = TcpListener::bind("127.0.0.1:0").await?;
        let state = Arc::new(FakeState {
            config,
            gateway_addr: gateway.local_addr()?,
            next_id: AtomicU64::new(1_100_000_000_000_000_000),
            recorded: Mutex::new(Vec::new()),
            sessions: Mutex::new(HashMap::new()),
            known_sessions: Mutex::new(HashMap::new()),
            posts_to_refuse: AtomicU32::new(0),
            answered_429: AtomicU64::new(0),
            unauthorized: AtomicU64::new(0),
            gateway_asks: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            identifies: AtomicU64::new(0),
            resumes: AtomicU64::new(0),
            heartbeats: AtomicU64::new(0),
            refused_logins: AtomicU64::new(0),
            last_intents: AtomicU64::new(0),
        });
        let rest_addr = rest.local_addr()?;
        let stop = CancellationToken::new();
        let listener = tls::TlsListener {
            tcp: rest,
            acceptor: tls::acceptor()?,
        };
        let app = rest::routes(Arc::clone(&state));
        let rest_stop = stop.clone();
        let rest_task = tokio::spawn(async move {
            let server =
                axum::serve(listener, app).with_graceful_shutdown(rest_stop.cancelled_owned());
            if let Err(error) = server.await {
                tracing::warn!(%error, "fake Discord REST stopped");
            }
        });
        let gateway_task = tokio::spawn(gateway::serve(gateway, Arc::clone(&state), stop.clone()));
        Ok(FakeDiscord {
            state,
            rest_addr,
            stop,
            tasks: vec![rest_task, gateway_task],
        })
    }

    pub fn state(&self) -> &Arc<FakeState> {
        &self.state
    }

    pub fn rest_addr(&self) -> SocketAddr {
        self.rest_addr
    }

    pub fn gateway_url(&self) -> String {
        self.state.gateway_url()
    }

    /// Writes the test CA that signed the fake's `discord.com` certificate into `dir` and
    /// returns its path. A client that resolves `discord.com` to [`FakeDiscord::rest_addr`] and
    /// trusts this CA talks to the fake with its real REST URL (serenity's ratelimiter on).
    pub fn write_test_ca(&self, dir: &Path) -> std::io::Result<PathBuf> {
        let ca = dir.join(format!("fake-discord-ca-{}.pem", self.rest_addr.port()));
        std::fs::write(&ca, tls::TEST_CA_PEM)?;
        Ok(ca)
    }

    /// Dispatches MESSAGE_CREATE to the shard owning the guild; the message id, or None when
    /// no session of that shard is connected.
    pub fn send_message(&self, spec: MessageSpec) -> Option<u64> {
        self.state.send_message(spec)
    }

    /// Sends a raw text frame (malformed on purpose, say) to every live session.
    pub fn send_raw(&self, text: &str) -> usize {
        self.state.push(None, || Push::Raw(text.to_string()))
    }

    /// Sends a dispatch of any kind with any body to every live session.
    pub fn send_dispatch(&self, kind: &str, data: Value) -> usize {
        self.state.push(None, || Push::Dispatch {
            kind: kind.to_string(),
            data: data.clone(),
        })
    }

    /// Drops every gateway connection abruptly (no close frame); returns how many.
    pub fn drop_connections(&self) -> usize {
        self.state.push(None, || Push::Drop)
    }

    /// The next `n` message posts are answered 429 with `Retry-After: 0.05`.
    pub fn refuse_next_posts(&self, n: u32) {
        self.state.posts_to_refuse.store(n, Ordering::Release);
    }

    /// Gateway sessions connected now.
    pub fn live_sessions(&self) -> usize {
        self.state.sessions.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// Session ids of the live sessions.
    pub fn live_session_ids(&self) -> Vec<String> {
        self.state
            .sessions
            .lock()
            .map(|s| s.values().map(|s| s.session_id.clone()).collect())
            .unwrap_or_default()
    }

    /// Every recorded REST call so far.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.state
            .recorded
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Recorded calls with this method whose path contains `part`.
    pub fn calls(&self, method: &str, part: &str) -> Vec<Recorded> {
        self.recorded()
            .into_iter()
            .filter(|r| r.method == method && r.path.contains(part))
            .collect()
    }

    pub async fn shutdown(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
        }
    }
}
