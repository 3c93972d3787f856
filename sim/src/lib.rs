//! firehose-sim: the servers firehose is tested, demonstrated and benchmarked against, all on
//! 127.0.0.1 and all speaking the platforms' public protocols (it does not depend on the
//! service library, so any bot could be pointed at them):
//!
//! - this crate's root: a Twitch-IRC chat simulator, the server side of Twitch chat over plain
//!   TCP;
//! - [`helix`]: a checking fake of the Helix moderation and streams API;
//! - [`api`]: the simulated Twitch HTTP APIs beside the chat simulator (OAuth tokens with
//!   short lives, `GET /users`, `POST /chat/messages`, the EventSub endpoints), on their own
//!   port ([`SimHandle::api`]);
//! - [`eventsub`]: EventSub over WebSocket (welcome, keepalive, notifications, reconnect,
//!   every close code), conduits and signed webhooks, fed by the same chat as IRC
//!   ([`SimHandle::eventsub`]);
//! - [`discord`]: a fake Discord (REST over TLS and a gateway) for serenity.
//!
//! The simulator is the fire hose tests, the demo and benchmarks point the bot at. Clients log in as on
//! `irc.chat.twitch.tv` (CAP, PASS, NICK), JOIN channels and receive generated chat at a
//! configurable rate: real or built-in texts with correct emote ranges, Zipf-distributed
//! channels and chatters, `!ping`s whose replies are timed, and USERNOTICE / CLEARCHAT /
//! CLEARMSG events. The bot's own PRIVMSGs are judged under Twitch's send limits and recorded.
//!
//! - [`config`]: [`SimConfig`] and [`SendLimits`].
//! - [`connection`]: one client connection (session + writer).
//! - [`generator`]: the paced traffic generator (also serves [`SimHandle::send_privmsg`]).
//! - [`limits`]: the send-limit checker.
//! - [`content`], [`chatlines`], [`lines`]: what is said, by whom, and the wire lines.
//! - [`state`]: counters, channel table and recorder shared by all tasks.
//! - [`cli`]: [`run_standalone`] and [`SimArgs`], behind `firehose sim`.
//! - [`helix`], [`discord`]: the fakes of the other two platforms' APIs.
//! - [`police`]: what bans, timeouts and chat modes do to who may speak.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use firehose_sim::{SimConfig, Simulator};
//! let sim = Simulator::start(SimConfig { rate: 1_000.0, ..SimConfig::with_channels(100) }).await?;
//! println!("point the bot at {}", sim.local_addr());
//! sim.wait_joined(100, std::time::Duration::from_secs(10)).await;
//! println!("{:?}", sim.stats());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
// The fake servers answer refusals as ready axum `Response`s from small helpers (the
// idiomatic shape for handlers); boxing each one buys nothing in test tooling.
#![allow(clippy::result_large_err)]

pub mod api;
pub mod chatlines;
pub mod cli;
pub mod codec;
pub mod config;
pub mod connection;
pub mod content;
pub mod discord;
pub mod eventsub;
pub mod generator;
pub mod helix;
pub mod limits;
pub mod lines;
pub mod mix;
pub mod police;
pub mod raid;
pub mod state;
pub mod track;

pub use cli::{run_standalone, sim, SimArgs};
pub use config::{SendLimits, SimConfig};

use state::{lock, Shared};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Queued `send_privmsg` calls, at most.
const MANUAL_QUEUE: usize = 1_024;
/// Delay between RECONNECT and closing the connections.
const RECONNECT_GRACE: Duration = Duration::from_millis(100);

/// A PRIVMSG the bot sent, as the sim received it.
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    pub channel: String,
    pub text: String,
    /// The `reply-parent-msg-id` tag, if any.
    pub reply_parent: Option<String>,
    pub at: Instant,
    /// False when a limit dropped it.
    pub accepted: bool,
    /// `msg_ratelimit`, `msg_duplicate` or `too_long` when dropped.
    pub rejected_reason: Option<String>,
}

/// A snapshot of the simulator's counters.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SimStats {
    pub connections: u64,
    pub active_connections: u64,
    /// Connections closed at once because `max_connections` were open.
    pub refused_connections: u64,
    pub joins: u64,
    pub join_violations: u64,
    pub parts: u64,
    /// PRIVMSGs handed to a client's writer (once per message, however many clients got it).
    pub privmsgs_sent: u64,
    /// USERNOTICE/CLEARCHAT/CLEARMSG lines sent.
    pub events_sent: u64,
    /// `!ping` chat messages sent.
    pub pings_sent: u64,
    pub bot_messages: u64,
    pub bot_accepted: u64,
    pub ratelimited: u64,
    pub duplicates: u64,
    pub too_long: u64,
    pub replies_matched: u64,
    pub pongs_received: u64,
    /// Client lines that were not valid IRC, too long or not UTF-8.
    pub malformed_lines: u64,
    /// Time the generator spent waiting on full client queues (µs).
    pub backpressure_wait_us: u64,
    /// Generated messages skipped because the generator fell more than 1 s behind.
    pub generator_skipped: u64,
    /// Messages not sent because their author was banned or timed out.
    pub refused_sanctioned: u64,
    /// Legitimate messages not sent because a chat mode stopped their author.
    pub legit_silenced: u64,
    /// Spam not sent because a chat mode stopped its author.
    pub spam_blocked: u64,
    /// Bot messages pushed out of the `received()` ring.
    pub received_dropped: u64,
    /// Sent ids not recorded because `record_cap` was reached.
    pub sent_ids_dropped: u64,
    /// PRIVMSGs sent per channel (channels with none are left out).
    pub sent_per_channel: BTreeMap<String, u64>,
}

/// Entry point: starts a simulator.
pub struct Simulator;

impl Simulator {
    /// Binds `config.listen` and starts the accept loop and the generator.
    pub async fn start(config: SimConfig) -> std::io::Result<SimHandle> {
        let listener = TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config)?);
        let (requests_tx, requests_rx) = mpsc::channel(MANUAL_QUEUE);
        let generator = generator::Generator::new(shared.clone(), requests_rx)?;
        let (eventsub, bridge_rx) = eventsub::EventSubShared::new(shared.clone());
        let api = api::TwitchApi::start(shared.clone(), eventsub.clone()).await?;
        eventsub::ws::start(eventsub.clone()).await?;
        let tasks = vec![
            tokio::spawn(accept_clients(shared.clone(), listener)),
            tokio::spawn(generator.run()),
            tokio::spawn(eventsub.run_bridge(bridge_rx)),
        ];
        tracing::info!(%local_addr, api = %api.local_addr(), "chat simulator listening");
        Ok(SimHandle {
            shared,
            local_addr,
            requests: requests_tx,
            tasks: Arc::new(Mutex::new(tasks)),
            api,
        })
    }
}

/// Accepts connections until shutdown, refusing those over `max_connections`.
async fn accept_clients(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let counters = &shared.counters;
        if counters.active_connections.load(Ordering::Relaxed) as usize
            >= shared.config.max_connections
        {
            state::bump(&counters.refused_connections);
            continue;
        }
        state::bump(&counters.connections);
        state::bump(&counters.active_connections);
        tokio::spawn(connection::serve(shared.clone(), stream));
    }
}

/// Control and inspection of a running simulator. Cheap to clone.
#[derive(Clone)]
pub struct SimHandle {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    requests: mpsc::Sender<generator::ManualPrivmsg>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    api: api::TwitchApi,
}

impl SimHandle {
    /// The simulated Twitch HTTP APIs (OAuth, users, chat, EventSub endpoints).
    pub fn api(&self) -> &api::TwitchApi {
        &self.api
    }

    /// The simulated EventSub (WebSocket server, subscriptions, faults).
    pub fn eventsub(&self) -> eventsub::EventSubSim {
        eventsub::EventSubSim {
            shared: self.api.state().eventsub.clone(),
            api: self.api.state().clone(),
        }
    }

    /// Accepted bot replies to the message with this id (IRC and Helix alike).
    pub fn replies_to(&self, message_id: &str) -> u32 {
        lock(&self.shared.recorder)
            .replies_by_parent
            .get(message_id)
            .copied()
            .unwrap_or(0)
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn stats(&self) -> SimStats {
        self.shared.stats()
    }

    /// Changes the generated PRIVMSG rate (0 pauses).
    pub fn set_rate(&self, msgs_per_s: f64) {
        self.shared.set_rate(msgs_per_s);
    }

    /// The generated PRIVMSG rate now.
    pub fn rate(&self) -> f64 {
        self.shared.rate()
    }

    /// Waits until at least `n` distinct channels have a client joined; false on timeout.
    pub async fn wait_joined(&self, n: usize, deadline: Duration) -> bool {
        let mut joined = self.shared.joined.subscribe();
        tokio::time::timeout(deadline, joined.wait_for(|count| *count >= n))
            .await
            .is_ok_and(|result| result.is_ok())
    }

    /// Channels with a client joined now.
    pub fn joined_channels(&self) -> usize {
        *self.shared.joined.borrow()
    }

    /// Sends one PRIVMSG (full tags) from `user_login` to the clients joined to `channel`.
    /// Returns its id, or `None` if no client has joined the channel.
    pub async fn send_privmsg(
        &self,
        channel: &str,
        user_login: &str,
        text: &str,
    ) -> Option<String> {
        let (reply, answer) = oneshot::channel();
        let request = generator::ManualPrivmsg {
            channel: channel.to_string(),
            user_login: user_login.to_string(),
            text: text.to_string(),
            reply,
        };
        self.requests.send(request).await.ok()?;
        answer.await.ok().flatten()
    }

    /// Writes `line` as is (a trailing CR/LF is dropped) to every connected client; returns
    /// how many clients got it.
    pub async fn inject_raw(&self, line: &str) -> usize {
        let line = line.trim_end_matches(['\r', '\n']);
        let mut delivered = 0;
        for client in self.shared.client_entries() {
            tokio::select! {
                _ = client.close.cancelled() => {}
                sent = client.outbound.send(state::Wire::Line(line.to_string())) => delivered += usize::from(sent.is_ok()),
            }
        }
        delivered
    }

    /// Writes `bytes` exactly as given (no CR/LF added, not necessarily UTF-8) to every
    /// connected client, in order with everything else it is sent; returns how many got them.
    /// For what a correct server never sends: invalid UTF-8, a line that never ends.
    pub async fn inject_bytes(&self, bytes: &[u8]) -> usize {
        let mut delivered = 0;
        for client in self.shared.client_entries() {
            tokio::select! {
                _ = client.close.cancelled() => {}
                sent = client.outbound.send(state::Wire::Raw(bytes.to_vec())) => delivered += usize::from(sent.is_ok()),
            }
        }
        delivered
    }

    /// Sends `:tmi.twitch.tv RECONNECT` to every client, then closes those connections
    /// after ~100 ms.
    pub async fn send_reconnect(&self) {
        let clients = self.shared.client_entries();
        for client in &clients {
            tokio::select! {
                _ = client.close.cancelled() => {}
                _ = client.outbound.send(state::Wire::Line(lines::reconnect())) => {}
            }
        }
        tokio::time::sleep(RECONNECT_GRACE).await;
        for client in clients {
            client.close.cancel();
        }
    }

    /// Ordered ids of PRIVMSGs sent to `channel` (needs `record_sent`).
    pub fn sent_ids(&self, channel: &str) -> Vec<String> {
        let channel = channel.trim_start_matches('#').to_lowercase();
        lock(&self.shared.recorder)
            .sent_ids
            .get(&channel)
            .cloned()
            .unwrap_or_default()
    }

    /// The bot's PRIVMSGs (the most recent 100,000), oldest first.
    pub fn received(&self) -> Vec<ReceivedMessage> {
        lock(&self.shared.recorder)
            .received
            .iter()
            .cloned()
            .collect()
    }

    /// `!ping` -> reply latencies in microseconds.
    pub fn reply_latencies(&self) -> hdrhistogram::Histogram<u64> {
        lock(&self.shared.recorder).latencies.clone()
    }

    /// Every JOIN the sim accepted (the most recent 100,000), with its time.
    pub fn join_times(&self) -> Vec<(String, Instant)> {
        lock(&self.shared.recorder)
            .join_times
            .iter()
            .cloned()
            .collect()
    }

    /// Replaces the content mix of generated chat (`None`: the default content).
    pub fn set_mix(&self, mix: Option<mix::ContentMix>) {
        *lock(&self.shared.mix) = mix.map(Arc::new);
        self.shared.mix_version.fetch_add(1, Ordering::Release);
    }

    /// Sets a channel's share of generated traffic; false if the channel is unknown.
    pub fn set_channel_weight(&self, channel: &str, weight: f64) -> bool {
        let channel = channel.trim_start_matches('#').to_lowercase();
        self.shared
            .change_membership(|table| table.set_weight(&channel, weight))
    }

    /// Expected answers, matched latencies (whole run) and their counts.
    pub fn tracker(&self) -> track::TrackerSnapshot {
        lock(&self.shared.tracker).snapshot()
    }

    /// The (reply, moderation) latencies matched since the previous call, in µs.
    pub fn take_latency_interval(
        &self,
    ) -> (hdrhistogram::Histogram<u64>, hdrhistogram::Histogram<u64>) {
        lock(&self.shared.tracker).take_interval()
    }

    /// A moderation call for a simulated message arrived at `at` (the bench's Helix calls this).
    pub fn record_moderation(&self, call: &track::ModerationCall, at: Instant) -> Option<u64> {
        lock(&self.shared.tracker).moderation(call, at)
    }

    /// [`SimHandle::tracker`] with pending spam counted at its age now.
    pub fn tracker_now(&self) -> track::TrackerSnapshot {
        lock(&self.shared.tracker).snapshot_at(Instant::now())
    }

    /// Bans (`duration` none) or times out `user_id` in `room_id`: the simulator sends nothing
    /// more from them there until it ends, as Twitch refuses their messages.
    pub fn sanction(&self, room_id: u64, user_id: &str, duration: Option<std::time::Duration>) {
        lock(&self.shared.police).sanction(room_id, user_id, duration, Instant::now());
        self.shared.police_active.store(true, Ordering::Release);
    }

    /// Lifts a ban or timeout.
    pub fn unban(&self, room_id: u64, user_id: &str) {
        lock(&self.shared.police).unban(room_id, user_id);
    }

    /// Starts `plan` now (replacing a raid still running): its accounts arrive and spam
    /// beside the channel's normal chat.
    pub fn start_raid(&self, plan: raid::RaidPlan) {
        *lock(&self.shared.raid) = Some((plan, Instant::now()));
        self.shared.raid_version.fetch_add(1, Ordering::AcqRel);
    }

    /// Changes the chat modes of `room_id` (Shield Mode, followers-only, ...).
    pub fn set_chat_modes(&self, room_id: u64, change: impl FnOnce(&mut police::RoomModes)) {
        let mut police = lock(&self.shared.police);
        police.set_modes(room_id, change);
        self.shared
            .police_active
            .store(!police.is_idle(), Ordering::Release);
    }

    /// The chat modes of `room_id`.
    pub fn chat_modes(&self, room_id: u64) -> police::RoomModes {
        lock(&self.shared.police).modes(room_id)
    }

    /// Messages the sanctions and chat modes refused, by why.
    pub fn refused_by_police(&self) -> Vec<(&'static str, u64)> {
        lock(&self.shared.police).refused()
    }

    /// Stops listening and generating and closes every connection.
    pub async fn shutdown(&self) {
        self.shared.shutdown.cancel();
        let tasks: Vec<JoinHandle<()>> = lock(&self.tasks).drain(..).collect();
        for task in tasks {
            let _ = task.await;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while self
            .shared
            .counters
            .active_connections
            .load(Ordering::Relaxed)
            > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
