//! One client connection: the Twitch IRC server side of a single TCP stream.
//!
//! A connection is two tasks. The session (this module's [`serve`]) reads lines with the
//! forgiving [`ClientLineCodec`], parses them with twitch-irc's `IRCMessage::parse` and answers
//! (CAP, PASS/NICK login, JOIN/PART, PING/PONG, the bot's PRIVMSGs under Twitch's send limits),
//! and PINGs the client periodically. The writer drains the bounded outbound queue into the
//! socket, batching lines per write; when the queue is full, whoever sends waits.

use super::codec::{ClientLine, ClientLineCodec};
use super::limits::{AccountLimiter, Verdict};
use super::lines;
use super::state::{bump, lock, ClientEntry, JoinRefusal, Outbound, Shared, Wire, ACCOUNTS_CAP};

use futures::StreamExt;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use twitch_irc::message::IRCMessage;

/// Longest client line accepted (bytes); Twitch's own limit is far lower.
const MAX_CLIENT_LINE: usize = 8 * 1024;
/// Bytes gathered from the queue before one socket write.
const WRITE_BATCH: usize = 64 * 1024;
/// Most channels one connection may be joined to.
const MAX_JOINED_PER_CONNECTION: usize = 100_000;

/// Serves one accepted client until it disconnects, is closed, or the sim shuts down.
pub async fn serve(shared: Arc<Shared>, stream: TcpStream) {
    let id = shared
        .next_client_id
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let _ = stream.set_nodelay(true);
    let (read_half, write_half) = stream.into_split();
    let (outbound, queue) = mpsc::channel(shared.config.outbound_queue.max(1));
    let close = shared.shutdown.child_token();
    lock(&shared.clients).insert(
        id,
        ClientEntry {
            outbound: outbound.clone(),
            close: close.clone(),
        },
    );
    let writer = tokio::spawn(write_queued_lines(write_half, queue, close.clone()));

    let mut session = Session::new(shared.clone(), id, outbound, close.clone());
    let mut input = FramedRead::new(read_half, ClientLineCodec::new(MAX_CLIENT_LINE));
    let period = shared
        .config
        .server_ping_interval
        .max(std::time::Duration::from_millis(1));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            _ = close.cancelled() => break,
            _ = ping.tick() => session.send(lines::server_ping()).await,
            next = input.next() => match next {
                Some(Ok(ClientLine::Text(text))) => session.handle_line(&text).await,
                Some(Ok(ClientLine::Malformed(why))) => session.count_malformed(why, ""),
                Some(Err(error)) => {
                    tracing::debug!(client = id, %error, "read failed");
                    break;
                }
                None => break,
            },
        }
        if session.quit {
            break;
        }
    }
    session.leave_all_channels();
    lock(&shared.clients).remove(&id);
    // Let the writer flush what is queued (e.g. a RECONNECT) unless we are being closed.
    drop(session);
    if tokio::time::timeout(std::time::Duration::from_millis(200), writer)
        .await
        .is_err()
    {
        close.cancel();
    }
    close.cancel();
    shared
        .counters
        .active_connections
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
}

/// Writes queued lines (CRLF-terminated) until the queue closes or `close` fires.
async fn write_queued_lines(
    mut socket: OwnedWriteHalf,
    mut queue: mpsc::Receiver<Wire>,
    close: CancellationToken,
) {
    let mut batch: Vec<u8> = Vec::with_capacity(WRITE_BATCH);
    loop {
        let first = tokio::select! {
            _ = close.cancelled() => break,
            line = queue.recv() => line,
        };
        let Some(first) = first else { break };
        append_line(&mut batch, &first);
        while batch.len() < WRITE_BATCH {
            match queue.try_recv() {
                Ok(line) => append_line(&mut batch, &line),
                Err(_) => break,
            }
        }
        let written = tokio::select! {
            _ = close.cancelled() => break,
            result = socket.write_all(&batch) => result,
        };
        batch.clear();
        if written.is_err() {
            break;
        }
    }
    let _ = socket.shutdown().await;
}

fn append_line(batch: &mut Vec<u8>, item: &Wire) {
    match item {
        Wire::Line(line) => {
            batch.extend_from_slice(line.as_bytes());
            batch.extend_from_slice(b"\r\n");
        }
        Wire::Raw(bytes) => batch.extend_from_slice(bytes),
    }
}

/// Capabilities the client requested.
#[derive(Debug, Default)]
struct Caps {
    tags: bool,
    commands: bool,
    membership: bool,
}

/// Protocol state of one connection.
struct Session {
    shared: Arc<Shared>,
    id: u64,
    outbound: Outbound,
    close: CancellationToken,
    login: Option<String>,
    caps: Caps,
    joined: HashSet<String>,
    quit: bool,
}

impl Session {
    fn new(shared: Arc<Shared>, id: u64, outbound: Outbound, close: CancellationToken) -> Self {
        Self {
            shared,
            id,
            outbound,
            close,
            login: None,
            caps: Caps::default(),
            joined: HashSet::new(),
            quit: false,
        }
    }

    fn login(&self) -> &str {
        self.login.as_deref().unwrap_or("*")
    }

    /// Queues one line for the client, waiting while its queue is full.
    async fn send(&self, line: String) {
        tokio::select! {
            _ = self.close.cancelled() => {}
            _ = self.outbound.send(Wire::Line(line)) => {}
        }
    }

    fn count_malformed(&self, why: &str, line: &str) {
        bump(&self.shared.counters.malformed_lines);
        tracing::debug!(client = self.id, why, line, "malformed client line");
    }

    async fn handle_line(&mut self, text: &str) {
        if text.trim().is_empty() {
            return;
        }
        let message = match IRCMessage::parse(text) {
            Ok(message) => message,
            Err(error) => return self.count_malformed(&error.to_string(), text),
        };
        match message.command.as_str() {
            "CAP" => self.handle_cap(&message).await,
            "PASS" => {}
            "NICK" => self.handle_nick(&message).await,
            "JOIN" => self.handle_join(&message).await,
            "PART" => self.handle_part(&message).await,
            "PING" => {
                let argument = message.params.first().map_or(lines::SERVER, String::as_str);
                self.send(lines::pong(argument)).await;
            }
            "PONG" => bump(&self.shared.counters.pongs_received),
            "PRIVMSG" => self.handle_privmsg(&message).await,
            "QUIT" => self.quit = true,
            other => {
                let reply = lines::unknown_command(self.login(), other);
                self.send(reply).await;
            }
        }
    }

    async fn handle_cap(&mut self, message: &IRCMessage) {
        let sub = message.params.first().map(|s| s.to_ascii_uppercase());
        match sub.as_deref() {
            Some("REQ") => {
                let requested = message.params.get(1).cloned().unwrap_or_default();
                for cap in requested.split_whitespace() {
                    match cap {
                        "twitch.tv/tags" => self.caps.tags = true,
                        "twitch.tv/commands" => self.caps.commands = true,
                        "twitch.tv/membership" => self.caps.membership = true,
                        _ => {}
                    }
                }
                self.send(lines::cap_ack(&requested)).await;
            }
            Some("LS") => self.send(lines::cap_ls()).await,
            _ => {}
        }
    }

    async fn handle_nick(&mut self, message: &IRCMessage) {
        let Some(nick) = message.params.first() else {
            return self.count_malformed("NICK without a name", "NICK");
        };
        let login = nick.to_lowercase();
        for line in lines::welcome(&login) {
            self.send(line).await;
        }
        if self.caps.commands && self.caps.tags {
            let user_id = super::content::Chatter::for_login(&login).user_id;
            self.send(lines::global_userstate(&login, &user_id)).await;
        }
        self.login = Some(login);
    }

    fn bot_is_mod_in(&self, channel: &str) -> bool {
        self.shared.config.limits.bot_is_mod || self.login.as_deref() == Some(channel)
    }

    /// Runs `f` on this account's limiter (created on first use; the map is capped).
    fn with_account<R>(&self, f: impl FnOnce(&mut AccountLimiter) -> R) -> R {
        let mut accounts = lock(&self.shared.accounts);
        let login = self.login();
        if accounts.len() >= ACCOUNTS_CAP && !accounts.contains_key(login) {
            accounts.clear();
        }
        f(accounts.entry(login.to_string()).or_default())
    }

    async fn handle_join(&mut self, message: &IRCMessage) {
        let Some(list) = message.params.first() else {
            return self.count_malformed("JOIN without channels", "JOIN");
        };
        for channel in list.split(',').filter_map(channel_name) {
            let now = Instant::now();
            let limits = &self.shared.config.limits;
            if !self.with_account(|account| account.allow_join(limits, now)) {
                bump(&self.shared.counters.join_violations);
                tracing::debug!(
                    client = self.id,
                    channel,
                    "JOIN over the rate limit ignored"
                );
                continue;
            }
            self.join_one(&channel, now).await;
        }
    }

    async fn join_one(&mut self, channel: &str, now: Instant) {
        if self.joined.len() >= MAX_JOINED_PER_CONNECTION && !self.joined.contains(channel) {
            bump(&self.shared.counters.join_violations);
            return;
        }
        let (id, outbound) = (self.id, self.outbound.clone());
        let joined = self
            .shared
            .change_membership(|table| table.join(channel, id, &outbound));
        let room_id = match joined {
            Ok(room_id) => room_id,
            Err(JoinRefusal::TableFull) => {
                let text = "This channel does not exist or has been suspended.";
                let line = lines::notice("msg_channel_suspended", channel, text);
                return self.send(line).await;
            }
        };
        self.joined.insert(channel.to_string());
        bump(&self.shared.counters.joins);
        lock(&self.shared.recorder).record_join(channel, now);
        let login = self.login().to_string();
        self.send(lines::join_echo(&login, channel)).await;
        if self.caps.membership {
            for line in lines::names(&login, channel) {
                self.send(line).await;
            }
        }
        if self.caps.tags && self.caps.commands {
            let is_mod = self.bot_is_mod_in(channel);
            self.send(lines::userstate(&login, channel, is_mod)).await;
            self.send(lines::roomstate(channel, &room_id.to_string()))
                .await;
        }
    }

    async fn handle_part(&mut self, message: &IRCMessage) {
        let Some(list) = message.params.first() else {
            return self.count_malformed("PART without channels", "PART");
        };
        for channel in list.split(',').filter_map(channel_name) {
            let id = self.id;
            let was_joined = self
                .shared
                .change_membership(|table| table.part(&channel, id));
            if was_joined {
                self.joined.remove(&channel);
                bump(&self.shared.counters.parts);
                let line = lines::part_echo(self.login(), &channel);
                self.send(line).await;
            }
        }
    }

    /// A PRIVMSG from the bot: judge it under the send limits, record it, answer like Twitch.
    async fn handle_privmsg(&mut self, message: &IRCMessage) {
        let (Some(target), Some(text)) = (message.params.first(), message.params.get(1)) else {
            return self.count_malformed("PRIVMSG without target or text", "PRIVMSG");
        };
        let Some(channel) = channel_name(target) else {
            return self.count_malformed("PRIVMSG to a non-channel", target);
        };
        let arrived = Instant::now();
        let counters = &self.shared.counters;
        bump(&counters.bot_messages);
        let is_mod = self.bot_is_mod_in(&channel);
        let verdict = self.judge(&channel, text, is_mod, arrived);
        let reply_parent = message.tags.0.get("reply-parent-msg-id").cloned();
        self.record_bot_message(&channel, text, reply_parent, verdict, arrived);
        match verdict {
            Verdict::Accepted => {
                bump(&counters.bot_accepted);
                let line = lines::userstate(self.login(), &channel, is_mod);
                self.send(line).await;
            }
            Verdict::RateLimited => {
                bump(&counters.ratelimited);
                let line = lines::notice("msg_ratelimit", &channel, lines::RATELIMIT_TEXT);
                self.send(line).await;
            }
            Verdict::Duplicate => {
                bump(&counters.duplicates);
                let line = lines::notice("msg_duplicate", &channel, lines::DUPLICATE_TEXT);
                self.send(line).await;
            }
            Verdict::TooLong => bump(&counters.too_long),
        }
    }

    fn judge(&self, channel: &str, text: &str, is_mod: bool, now: Instant) -> Verdict {
        super::state::judge(&self.shared, self.login(), channel, text, is_mod, now)
    }

    fn record_bot_message(
        &self,
        channel: &str,
        text: &str,
        reply_parent: Option<String>,
        verdict: Verdict,
        at: Instant,
    ) {
        super::state::record_bot_message(
            &self.shared,
            channel,
            text,
            reply_parent,
            verdict,
            None,
            at,
        );
    }

    fn leave_all_channels(&mut self) {
        if self.joined.is_empty() {
            return;
        }
        let id = self.id;
        self.shared.change_membership(|table| table.part_all(id));
        self.joined.clear();
    }
}

/// `#Chan` -> `chan`; `None` for an empty or non-channel target.
fn channel_name(target: &str) -> Option<String> {
    let name = target.trim().strip_prefix('#')?;
    if name.is_empty() || name.contains([' ', ',', '\0']) {
        return None;
    }
    Some(name.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::channel_name;

    #[test]
    fn channel_names_are_normalised() {
        assert_eq!(channel_name("#Sim0001").as_deref(), Some("sim0001"));
        assert_eq!(channel_name("sim0001"), None);
        assert_eq!(channel_name("#"), None);
    }
}
