//! The Twitch chat client: keeps one connection up and feeds the router.
//!
//! Built on twitch-irc's parser and message types (`IRCMessage::parse`,
//! `ServerMessage::try_from`) with our own connection loop instead of its `TwitchIRCClient`:
//! the client's internal channel is unbounded and its server address is a process-wide static,
//! while we need a bounded path (TCP itself pushes back when we fall behind) and a configurable
//! address per service instance (tests run many services in one process). See
//! `docs/ARCHITECTURE.md` and `BENCHMARKS.md` for the measurements.
//!
//! One session = connect, CAP/PASS/NICK, wait for 001, (re)join through the pacer, then read
//! lines until the server closes, sends RECONNECT, stops answering keepalive PINGs, or intake
//! stops. Between sessions: exponential backoff with jitter.
//!
//! The bot's own messages (Twitch shows an account's messages to its other connections) are
//! never routed: they are counted (`messages_ignored_total{reason="own"}`) and dropped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rand::Rng;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use twitch_irc::message::{IRCMessage, ServerMessage};

use super::connection::connect;
use super::convert::to_chat_event;
use super::joins::{run_join_pacer, JoinCmd};
use super::lines::{Line, LineCodec};
use super::status::TwitchStatus;
use crate::channel::admission::Router;
use crate::channel::ignore::is_account;
use crate::config::TwitchConfig;
use crate::obs::Metrics;
use crate::twitch::helix::Bearer;

/// How the IRC side runs next to the configured ingest.
#[derive(Debug, Clone, Default)]
pub struct IrcRole {
    /// Connect at all (false when chat is read through EventSub and sent through Helix).
    pub connect: bool,
    /// Chat is read through EventSub: chat lines read here are counted in this counter and
    /// not routed (the connection is kept for sending, moderator status and room ids).
    pub not_routed: Option<prometheus_client::metrics::counter::Counter>,
}

/// Lines waiting to be written on one connection.
const WIRE_CAPACITY: usize = 1_024;
/// Longest a single socket write may take before the connection is considered dead.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handle to the running Twitch side.
#[derive(Clone, Debug)]
pub struct TwitchClient {
    status: Arc<TwitchStatus>,
    joins: mpsc::Sender<JoinCmd>,
}

/// Cancellation points of the Twitch side, in shutdown order.
#[derive(Clone, Debug, Default)]
pub struct TwitchStops {
    /// Stop reading chat (intake); the connection stays open for outgoing replies.
    pub intake: CancellationToken,
    /// Close the connection.
    pub close: CancellationToken,
}

impl TwitchClient {
    /// Starts the connection loop and the join pacer, and asks to join `config.channels`.
    /// The login token is read from `token` at every (re)connect, so a renewed one is used
    /// from the next connection on (an established connection is not dropped for it). With
    /// `role.connect` false nothing connects: the handle only tracks the wanted channels.
    pub fn start(
        config: TwitchConfig,
        token: Option<Arc<dyn Bearer>>,
        router: Arc<Router>,
        metrics: Arc<Metrics>,
        stops: TwitchStops,
        role: IrcRole,
    ) -> (TwitchClient, JoinHandle<()>) {
        let status = Arc::new(TwitchStatus::new(&config.moderator_channels));
        let (joins, join_rx) = mpsc::channel(4_096);
        tokio::spawn(run_join_pacer(
            config.join.clone(),
            Arc::clone(&status),
            Arc::clone(&metrics),
            join_rx,
            stops.close.clone(),
        ));
        let session = Session {
            config,
            token,
            router,
            metrics,
            status: Arc::clone(&status),
            joins: joins.clone(),
            stops,
            not_routed: role.not_routed,
        };
        if !role.connect {
            let task = tokio::spawn(async move {
                session.stops.close.cancelled().await;
            });
            return (TwitchClient { status, joins }, task);
        }
        let task = tokio::spawn(session.run_forever());
        (TwitchClient { status, joins }, task)
    }

    pub fn status(&self) -> &Arc<TwitchStatus> {
        &self.status
    }

    /// Wants the channel joined (paced); survives reconnects.
    pub async fn join(&self, channel: &str) {
        self.status.want(channel);
        let _ = self.joins.send(JoinCmd::Join(channel.to_string())).await;
    }

    /// Parts the channel and stops rejoining it.
    pub async fn part(&self, channel: &str) {
        self.status.unwant(channel);
        let _ = self.joins.send(JoinCmd::Part(channel.to_string())).await;
    }
}

/// Why a session ended.
#[derive(Debug)]
enum SessionEnd {
    /// Intake stopped (shutdown): do not reconnect.
    Stopped,
    /// The server asked us to reconnect.
    Reconnect,
    /// The connection closed or failed.
    Lost(String),
}

struct Session {
    config: TwitchConfig,
    token: Option<Arc<dyn Bearer>>,
    router: Arc<Router>,
    metrics: Arc<Metrics>,
    status: Arc<TwitchStatus>,
    joins: mpsc::Sender<JoinCmd>,
    stops: TwitchStops,
    not_routed: Option<prometheus_client::metrics::counter::Counter>,
}

impl Session {
    async fn run_forever(self) {
        let mut failures: u32 = 0;
        let mut first = true;
        loop {
            if self.stops.intake.is_cancelled() {
                return;
            }
            if !first {
                self.metrics.twitch_reconnects.inc();
            }
            first = false;
            let started = Instant::now();
            let end = self.run_once().await;
            self.status.set_connected(None);
            self.metrics.twitch_connected.set(0);
            match end {
                SessionEnd::Stopped => return,
                SessionEnd::Reconnect => {
                    tracing::info!("server asked to reconnect");
                    failures = 0;
                    continue;
                }
                SessionEnd::Lost(reason) => {
                    // A session that lived a while resets the backoff.
                    if started.elapsed() > Duration::from_secs(30) {
                        failures = 0;
                    }
                    failures = failures.saturating_add(1);
                    let delay = self.backoff(failures);
                    tracing::warn!(%reason, ?delay, "chat connection lost; reconnecting");
                    tokio::select! {
                        _ = self.stops.intake.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        let base = self.config.reconnect_backoff_ms;
        let capped = base
            .saturating_mul(1u64 << failures.saturating_sub(1).min(20))
            .min(self.config.reconnect_backoff_max_ms);
        let jitter = rand::rng().random_range(0..=capped / 4);
        Duration::from_millis(capped - capped / 8 + jitter)
    }

    async fn run_once(&self) -> SessionEnd {
        let connect_timeout = Duration::from_millis(self.config.connect_timeout_ms);
        let stream = tokio::select! {
            _ = self.stops.intake.cancelled() => return SessionEnd::Stopped,
            s = connect(&self.config.server, self.config.tls, connect_timeout) => s,
        };
        let stream = match stream {
            Ok(s) => s,
            Err(e) => return SessionEnd::Lost(format!("connect to {}: {e}", self.config.server)),
        };
        self.metrics.twitch_connections.inc();
        let (reader, writer) = tokio::io::split(stream);
        let (wire, wire_rx) = mpsc::channel::<String>(WIRE_CAPACITY);
        let broken = CancellationToken::new();
        let writer_task = tokio::spawn(write_lines(
            writer,
            wire_rx,
            broken.clone(),
            self.stops.close.clone(),
        ));
        for line in self.login_lines() {
            let _ = wire.try_send(line);
        }
        let end = self.read_lines(reader, wire.clone(), &broken).await;
        if matches!(end, SessionEnd::Stopped) {
            // Keep the connection for outgoing replies until the service closes it.
            tokio::select! {
                _ = self.stops.close.cancelled() => {}
                _ = broken.cancelled() => {}
            }
        }
        self.status.set_connected(None);
        drop(wire);
        broken.cancel();
        let _ = writer_task.await;
        end
    }

    fn login_lines(&self) -> Vec<String> {
        let mut lines = vec!["CAP REQ :twitch.tv/tags twitch.tv/commands".to_string()];
        if let Some(token) = self.token.as_ref().and_then(|t| t.token()) {
            let token = token.expose();
            let pass = if token.starts_with("oauth:") {
                token.to_string()
            } else {
                format!("oauth:{token}")
            };
            lines.push(format!("PASS {pass}"));
        }
        lines.push(format!("NICK {}", self.config.login));
        lines
    }

    async fn read_lines(
        &self,
        reader: impl tokio::io::AsyncRead + Unpin,
        wire: mpsc::Sender<String>,
        broken: &CancellationToken,
    ) -> SessionEnd {
        let mut lines = FramedRead::new(reader, LineCodec::new(self.config.max_line_bytes));
        let interval = Duration::from_millis(self.config.keepalive_interval_ms);
        let pong_timeout = Duration::from_millis(self.config.keepalive_timeout_ms);
        let mut awaiting_pong = false;
        loop {
            let wait = if awaiting_pong {
                pong_timeout
            } else {
                interval
            };
            let next = tokio::select! {
                biased;
                _ = self.stops.intake.cancelled() => return SessionEnd::Stopped,
                _ = broken.cancelled() => return SessionEnd::Lost("write failed".into()),
                next = tokio::time::timeout(wait, lines.next()) => next,
            };
            let line = match next {
                Err(_) if awaiting_pong => {
                    return SessionEnd::Lost("keepalive: no answer to PING".into())
                }
                Err(_) => {
                    awaiting_pong = true;
                    let _ = wire.try_send("PING :firehose".to_string());
                    continue;
                }
                Ok(None) => return SessionEnd::Lost("server closed the connection".into()),
                Ok(Some(Err(e))) => return SessionEnd::Lost(format!("read: {e}")),
                Ok(Some(Ok(line))) => line,
            };
            // Any line, even a skipped one, shows the server is alive.
            awaiting_pong = false;
            self.metrics.irc_lines_received.inc();
            let line = match line {
                Line::Text(line) => line,
                Line::Skipped(reason) => {
                    self.metrics.irc_lines_malformed.inc();
                    tracing::debug!(reason = reason.as_str(), "IRC line skipped");
                    continue;
                }
            };
            if let Some(end) = self.handle_line(&line, &wire).await {
                return end;
            }
        }
    }

    /// Handles one line; returns Some when the session must end.
    async fn handle_line(&self, line: &str, wire: &mpsc::Sender<String>) -> Option<SessionEnd> {
        let received_at = Instant::now();
        let irc = match IRCMessage::parse(line) {
            Ok(irc) => irc,
            Err(e) => {
                self.metrics.irc_lines_malformed.inc();
                tracing::debug!(error = %e, "malformed IRC line skipped");
                return None;
            }
        };
        if irc.command == "001" {
            self.on_logged_in(wire).await;
            return None;
        }
        let message = match crate::twitch::convert::server_message(irc) {
            Ok(m) => m,
            Err(e) => {
                self.metrics.irc_lines_malformed.inc();
                tracing::debug!(error = %e, "IRC line with invalid Twitch fields skipped");
                return None;
            }
        };
        if let Some(event) = to_chat_event(&message) {
            match &self.not_routed {
                Some(counter) => {
                    counter.inc();
                }
                None if self.is_own(&event) => {
                    // Another connection of the bot's account (a second instance, a rolling
                    // deploy): Twitch shows it its messages; answering them would loop.
                    self.router.own_message(event.platform);
                }
                None => {
                    self.router.route(event, received_at);
                }
            }
            return None;
        }
        self.handle_control(message, wire)
    }

    /// Whether the event is a chat message of the bot's own account (by login, or by the user
    /// id GLOBALUSERSTATE gave).
    fn is_own(&self, event: &crate::engine::ChatEvent) -> bool {
        event.message().is_some_and(|m| {
            is_account(&m.user, &self.config.login, None) || self.status.is_bot_user_id(&m.user.id)
        })
    }

    async fn on_logged_in(&self, wire: &mpsc::Sender<String>) {
        self.status.set_connected(Some(wire.clone()));
        self.metrics.twitch_connected.set(1);
        tracing::info!(server = %self.config.server, login = %self.config.login, "logged in to chat");
        let _ = self.joins.send(JoinCmd::Connected).await;
    }

    fn handle_control(
        &self,
        message: ServerMessage,
        wire: &mpsc::Sender<String>,
    ) -> Option<SessionEnd> {
        match message {
            ServerMessage::Ping(ping) => {
                let argument = ping.source.params.first().cloned().unwrap_or_default();
                let _ = wire.try_send(format!("PONG :{argument}"));
            }
            ServerMessage::Reconnect(_) => return Some(SessionEnd::Reconnect),
            ServerMessage::Join(join) if join.user_login == self.config.login => {
                self.status.set_joined(&join.channel_login, true);
                self.metrics.twitch_joins_confirmed.inc();
            }
            ServerMessage::Part(part) if part.user_login == self.config.login => {
                self.status.set_joined(&part.channel_login, false);
                if self.status.wants(&part.channel_login) {
                    // Parted and joined again in quick succession: join once more.
                    let _ = self
                        .joins
                        .try_send(JoinCmd::Join(part.channel_login.clone()));
                }
            }
            ServerMessage::RoomState(room) => {
                self.status
                    .set_room_id(&room.channel_login, &room.channel_id);
            }
            ServerMessage::GlobalUserState(me) => self.status.set_bot_user_id(&me.user_id),
            ServerMessage::UserState(state) => {
                // Twitch's higher limits are for moderators and the broadcaster, not VIPs.
                let moderator =
                    super::convert::role(&state.badges) >= crate::engine::Role::Moderator;
                self.status.set_moderator(&state.channel_login, moderator);
            }
            ServerMessage::Notice(notice) => {
                let id = notice.message_id.as_deref().unwrap_or("none");
                self.metrics.notice(id);
                tracing::info!(channel = ?notice.channel_login, msg_id = id, text = %notice.message_text, "server notice");
                if notice.message_text.contains("Login authentication failed")
                    || notice.message_text.contains("Improperly formatted auth")
                {
                    // A managed token renews itself before the next attempt.
                    if let Some(bearer) = &self.token {
                        if let Some(token) = bearer.token() {
                            bearer.rejected(&token);
                        }
                    }
                    return Some(SessionEnd::Lost(format!(
                        "login refused: {}",
                        notice.message_text
                    )));
                }
            }
            _ => {}
        }
        None
    }
}

/// Writes queued lines to the socket, flushing when the queue runs dry. On `close` it first
/// writes what is still queued.
async fn write_lines(
    writer: impl tokio::io::AsyncWrite + Unpin,
    mut lines: mpsc::Receiver<String>,
    broken: CancellationToken,
    close: CancellationToken,
) {
    let mut writer = BufWriter::new(writer);
    loop {
        // Queued lines go out before a graceful close (the last replies of a shutdown); a broken
        // connection stops at once.
        let line = tokio::select! {
            biased;
            _ = broken.cancelled() => None,
            line = lines.recv() => line,
            _ = close.cancelled() => None,
        };
        let Some(line) = line else { break };
        let write = async {
            writer.write_all(line.as_bytes()).await?;
            writer.write_all(b"\r\n").await?;
            if lines.is_empty() {
                writer.flush().await?;
            }
            Ok::<(), std::io::Error>(())
        };
        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "chat connection write failed");
                broken.cancel();
                break;
            }
            Err(_) => {
                tracing::warn!("chat connection write timed out");
                broken.cancel();
                break;
            }
        }
    }
    let _ = tokio::time::timeout(WRITE_TIMEOUT, writer.shutdown()).await;
}
