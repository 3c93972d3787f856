//! Outbound chat: the engine's Say/Reply actions, sent within Twitch's rules.
//!
//! Actors hand actions to [`TwitchOutbound::submit`], which never blocks: it queues into a
//! bounded channel (full = dropped and counted). One scheduler task keeps a bounded queue per
//! channel and sends, round-robin over channels, only what Twitch would accept:
//! - account limit: at most N messages in any rolling window (20 / 30 s; 100 where the bot is
//!   moderator or broadcaster; 7,500 for verified bots), checked exactly like Twitch does, as a
//!   sliding log of send times, with a small safety margin for clock and network skew;
//! - 1 message per second per channel where the bot is not a moderator;
//! - 500 characters (longer text is cut, counted);
//! - no identical repeat within 30 s where the bot is not a moderator: a repeat is made unique
//!   with an invisible suffix instead of being dropped by Twitch (counted);
//! - a message that waited longer than `max_age_ms` is dropped (counted), never sent late;
//! - replies first: what answers a user's command (a message starting with `!`, the prefix
//!   every command name has) goes before the channel's automatic output (timers, keywords)
//!   already waiting, in order among replies; a reply that finds the channel's queue full
//!   takes the place of its newest automatic message (counted as `displaced_by_reply`).
//!
//! The scheduler decides *when* a message goes, whatever carries it: a PRIVMSG on the IRC
//! connection, or (`twitch.send_via = "helix"`) a `POST /helix/chat/messages` handed to
//! `twitch::helix::chat` with the channel's and the bot's ids, and the app token where the
//! broadcaster authorised `channel:bot` (else the bot's user token).
//!
//! Moderation actions (delete, timeout, ban, unban) go through Helix, not IRC (`crate::twitch::helix`),
//! with the channel's id from ROOMSTATE (or the directory of `twitch::auth`) and the bot's from
//! GLOBALUSERSTATE (or its validated token); without a Helix configuration they are counted in
//! `firehose_moderation_not_configured_total`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use twitch_irc::message::{AsRawIRC, IRCMessage, IRCTags};

use super::auth::Auth;
use super::status::TwitchStatus;
use crate::channel::ActionSink;
use crate::config::SendLimits;
use crate::engine::{Action, ChatEvent, Platform};
use crate::obs::Metrics;
use crate::twitch::helix::chat::{ChatSend, HelixChat};
use crate::twitch::helix::{HelixModerator, ModerationRequest};
use crate::util::window::SlidingWindow;

/// Added to the rate-limit window and the per-channel gap so our count never disagrees with
/// Twitch's, which sees each message a moment after we send it.
const WINDOW_SAFETY_MARGIN: Duration = Duration::from_millis(250);
const GAP_SAFETY_MARGIN: Duration = Duration::from_millis(50);
/// Appended to a repeated message so it is not a duplicate (a Unicode tag character).
const DEDUP_SUFFIX: &str = " \u{E0000}";

/// One chat line waiting to be sent.
#[derive(Debug)]
struct Pending {
    channel: Arc<str>,
    text: String,
    reply_to: Option<String>,
    received_at: Option<Instant>,
    queued_at: Instant,
    /// Answers a user's command: sent before the channel's automatic output.
    reply: bool,
}

/// The sink channel actors submit to.
#[derive(Clone)]
pub struct TwitchOutbound {
    queue: mpsc::Sender<Pending>,
    metrics: Arc<Metrics>,
    status: Arc<TwitchStatus>,
    /// Helix moderation, when configured.
    moderation: Option<HelixModerator>,
    /// Tokens and ids, when the Helix side is configured.
    auth: Option<Arc<Auth>>,
}

impl std::fmt::Debug for TwitchOutbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwitchOutbound")
            .field("moderation", &self.moderation.is_some())
            .finish()
    }
}

/// Limits as the scheduler applies them.
#[derive(Debug, Clone)]
pub struct OutboundLimits {
    pub send: SendLimits,
    pub verified: bool,
    /// Anonymous (`justinfan`) logins cannot send; their replies are dropped and counted.
    pub anonymous: bool,
}

impl TwitchOutbound {
    /// Starts the scheduler. `drain` ends it: it then sends what the limits allow until `deadline`.
    /// With `chat`, messages go through Helix (`auth` gives the ids and grants), else on IRC.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        limits: OutboundLimits,
        status: Arc<TwitchStatus>,
        metrics: Arc<Metrics>,
        moderation: Option<HelixModerator>,
        auth: Option<Arc<Auth>>,
        chat: Option<HelixChat>,
        drain: CancellationToken,
        drain_deadline: Duration,
    ) -> (TwitchOutbound, JoinHandle<()>) {
        let (queue, rx) = mpsc::channel(limits.send.queue_capacity);
        let helix = match (chat, &auth) {
            (Some(chat), Some(auth)) => Some((chat, Arc::clone(auth))),
            _ => None,
        };
        let scheduler = Scheduler::new(limits, Arc::clone(&status), Arc::clone(&metrics), helix);
        let task = tokio::spawn(scheduler.run(rx, drain, drain_deadline));
        let outbound = TwitchOutbound {
            queue,
            metrics,
            status,
            moderation,
            auth,
        };
        (outbound, task)
    }
}

impl ActionSink for TwitchOutbound {
    fn submit(&self, event: &ChatEvent, action: Action, received_at: Option<Instant>) {
        if event.platform != Platform::Twitch {
            return;
        }
        let (text, reply_to) = match action {
            Action::Say { text } => (text, None),
            Action::Reply { parent_id, text } => (text, Some(parent_id)),
            Action::Delete { .. }
            | Action::Timeout { .. }
            | Action::Ban { .. }
            | Action::Unban { .. }
            | Action::ChatMode { .. } => return self.moderate(&event.channel, action, received_at),
            Action::Shadow { rule, would } => return self.shadow(&event.channel, &rule, &would),
            Action::Withheld { rule, .. } => {
                // A text from chat input the channel's content filters forbid: never sent.
                self.metrics.outbound_dropped("withheld");
                tracing::debug!(channel = %event.channel, rule, "chat-derived text withheld");
                return;
            }
        };
        let reply = event
            .message()
            .is_some_and(|m| crate::engine::invokes_command(&m.text));
        let pending = Pending {
            channel: Arc::clone(&event.channel),
            text,
            reply_to,
            received_at,
            queued_at: Instant::now(),
            reply,
        };
        match self.queue.try_send(pending) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.metrics.outbound_dropped("queue_full"),
            Err(mpsc::error::TrySendError::Closed(_)) => self.metrics.outbound_dropped("shutdown"),
        }
    }
}

impl TwitchOutbound {
    /// A rule in shadow mode: counted and logged, never carried out.
    fn shadow(&self, channel: &str, rule: &str, would: &Action) {
        self.metrics
            .shadow_actions
            .get_or_create(&vec![("rule", rule.to_string())])
            .inc();
        tracing::info!(channel, rule, would = ?would, "shadow rule matched (not acted on)");
    }

    /// Hands a moderation action to Helix with the channel's and the bot's user ids.
    fn moderate(&self, channel: &str, action: Action, received_at: Option<Instant>) {
        let name = moderation_name(&action);
        let Some(helix) = &self.moderation else {
            return self.not_configured(name);
        };
        let auth = self.auth.as_deref();
        let broadcaster_id = self
            .status
            .room_id(channel)
            .or_else(|| auth.and_then(|a| a.directory.id(channel)));
        let moderator_id = self
            .status
            .bot_user_id()
            .or_else(|| auth.and_then(Auth::bot_user_id));
        let (Some(broadcaster_id), Some(moderator_id)) = (broadcaster_id, moderator_id) else {
            self.metrics.outbound_dropped("moderation_ids_unknown");
            tracing::warn!(
                channel,
                action = name,
                "moderation action dropped: channel or bot user id not known yet"
            );
            return;
        };
        let request = ModerationRequest {
            channel_login: channel.to_string(),
            broadcaster_id,
            moderator_id,
            action,
            received_at,
        };
        // A refusal (queue full, shutting down) is counted and logged by the moderator.
        let _ = helix.submit(request);
    }

    fn not_configured(&self, action: &str) {
        self.metrics
            .moderation_not_configured
            .get_or_create(&vec![("action", action.to_string())])
            .inc();
    }
}

/// Per-channel send state.
#[derive(Debug, Default)]
struct ChannelQueue {
    waiting: VecDeque<Pending>,
    last_sent_at: Option<Instant>,
    last_text: String,
}

struct Scheduler {
    limits: OutboundLimits,
    status: Arc<TwitchStatus>,
    metrics: Arc<Metrics>,
    /// Sending through Helix (the chat worker and the ids) instead of IRC.
    helix: Option<(HelixChat, Arc<Auth>)>,
    channels: HashMap<Arc<str>, ChannelQueue>,
    /// Channels with waiting messages, in round-robin order.
    turn: VecDeque<Arc<str>>,
    /// Send times within the current window.
    sent: SlidingWindow,
    queued: usize,
    last_prune: Instant,
}

impl Scheduler {
    fn new(
        limits: OutboundLimits,
        status: Arc<TwitchStatus>,
        metrics: Arc<Metrics>,
        helix: Option<(HelixChat, Arc<Auth>)>,
    ) -> Scheduler {
        let window = Duration::from_millis(limits.send.window_ms) + WINDOW_SAFETY_MARGIN;
        Scheduler {
            helix,
            sent: SlidingWindow::new(window),
            limits,
            status,
            metrics,
            channels: HashMap::new(),
            turn: VecDeque::new(),
            queued: 0,
            last_prune: Instant::now(),
        }
    }

    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Pending>,
        drain: CancellationToken,
        drain_deadline: Duration,
    ) {
        let mut draining_until: Option<tokio::time::Instant> = None;
        loop {
            let wake = self.send_ready(Instant::now());
            if let Some(until) = draining_until {
                if self.queued == 0 || tokio::time::Instant::now() >= until {
                    break;
                }
            }
            let sleep_until = wake
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            let sleep_until = match draining_until {
                Some(until) => sleep_until.min(until),
                None => sleep_until,
            };
            tokio::select! {
                item = rx.recv() => match item {
                    Some(item) => {
                        self.enqueue(item);
                        while let Ok(item) = rx.try_recv() {
                            self.enqueue(item);
                        }
                    }
                    None if draining_until.is_none() => {
                        draining_until = Some(tokio::time::Instant::now() + drain_deadline);
                    }
                    None => tokio::time::sleep_until(sleep_until).await,
                },
                _ = drain.cancelled(), if draining_until.is_none() => {
                    rx.close();
                    while let Ok(item) = rx.try_recv() {
                        self.enqueue(item);
                    }
                    draining_until = Some(tokio::time::Instant::now() + drain_deadline);
                }
                _ = tokio::time::sleep_until(sleep_until) => {}
            }
        }
        for _ in 0..self.queued {
            self.metrics.outbound_dropped("shutdown");
        }
    }

    fn enqueue(&mut self, item: Pending) {
        if self.limits.anonymous {
            self.metrics.outbound_dropped("anonymous_login");
            return;
        }
        if self.queued >= self.limits.send.queue_capacity {
            self.metrics.outbound_dropped("queue_full");
            return;
        }
        let capacity = self.limits.send.channel_queue_capacity;
        let channel = Arc::clone(&item.channel);
        let queue = self.channels.entry(Arc::clone(&channel)).or_default();
        let was_empty = queue.waiting.is_empty();
        if queue.waiting.len() >= capacity {
            let newest_automatic = queue.waiting.iter().rposition(|p| !p.reply);
            match newest_automatic {
                Some(at) if item.reply => {
                    queue.waiting.remove(at);
                    self.queued -= 1;
                    self.metrics.outbound_dropped("displaced_by_reply");
                }
                _ => {
                    self.metrics.outbound_dropped("channel_queue_full");
                    return;
                }
            }
        }
        if was_empty {
            self.turn.push_back(channel);
        }
        if item.reply {
            // After the replies already waiting, before the first automatic message.
            let at = queue
                .waiting
                .iter()
                .position(|p| !p.reply)
                .unwrap_or(queue.waiting.len());
            queue.waiting.insert(at, item);
        } else {
            queue.waiting.push_back(item);
        }
        self.queued += 1;
        self.metrics.outbound_queued.set(self.queued as i64);
    }

    /// Sends everything the limits allow now; returns when to look again, if anything waits.
    fn send_ready(&mut self, now: Instant) -> Option<Instant> {
        let wire = match &self.helix {
            Some((chat, auth)) => Wire::Helix(chat.clone(), Arc::clone(auth)),
            None => match self.status.wire() {
                Some(wire) => Wire::Irc(wire),
                None => {
                    self.expire_all(now);
                    return (self.queued > 0).then(|| now + Duration::from_millis(100));
                }
            },
        };
        let mut next_wake: Option<Instant> = None;
        let rounds = self.turn.len();
        for _ in 0..rounds {
            let Some(channel) = self.turn.pop_front() else {
                break;
            };
            let moderator = self.status.is_moderator(&channel);
            match self.try_send_one(&channel, moderator, now, &wire) {
                Attempt::Sent | Attempt::Expired => {}
                Attempt::WaitUntil(at) => next_wake = Some(next_wake.map_or(at, |w| w.min(at))),
            }
            let has_more = self
                .channels
                .get(&channel)
                .is_some_and(|q| !q.waiting.is_empty());
            if has_more {
                self.turn.push_back(channel);
            }
        }
        self.forget_idle_channels(now);
        self.metrics.outbound_queued.set(self.queued as i64);
        if self.queued > 0 && next_wake.is_none() {
            next_wake = Some(now);
        }
        next_wake
    }

    /// Drops the send history of channels that have nothing waiting and whose last message is
    /// older than both the duplicate window and the per-channel gap, so memory stays bounded by
    /// the channels active in the last 30 s.
    fn forget_idle_channels(&mut self, now: Instant) {
        if now.duration_since(self.last_prune) < Duration::from_secs(1) {
            return;
        }
        self.last_prune = now;
        let keep_for = Duration::from_millis(
            self.limits
                .send
                .duplicate_window_ms
                .max(self.limits.send.per_channel_interval_ms),
        ) + GAP_SAFETY_MARGIN;
        self.channels.retain(|_, q| {
            !q.waiting.is_empty()
                || q.last_sent_at
                    .is_some_and(|t| now.duration_since(t) < keep_for)
        });
    }

    fn account_limit(&self, moderator: bool) -> usize {
        let s = &self.limits.send;
        let limit = if self.limits.verified {
            s.verified_limit
        } else if moderator {
            s.account_limit_mod
        } else {
            s.account_limit
        };
        limit as usize
    }

    fn try_send_one(
        &mut self,
        channel: &Arc<str>,
        moderator: bool,
        now: Instant,
        wire: &Wire,
    ) -> Attempt {
        let max_age = Duration::from_millis(self.limits.send.max_age_ms);
        let limit = self.account_limit(moderator);
        let Some(queue) = self.channels.get_mut(channel) else {
            return Attempt::Expired;
        };
        let Some(head) = queue.waiting.front() else {
            return Attempt::Expired;
        };
        if now.duration_since(head.queued_at) > max_age {
            queue.waiting.pop_front();
            self.queued -= 1;
            self.metrics.outbound_dropped("expired");
            return Attempt::Expired;
        }
        let frees_at = self.sent.next_free(now, limit);
        if frees_at > now {
            return Attempt::WaitUntil(frees_at);
        }
        if !moderator && !self.limits.verified {
            let gap =
                Duration::from_millis(self.limits.send.per_channel_interval_ms) + GAP_SAFETY_MARGIN;
            if let Some(last) = queue.last_sent_at {
                if now.duration_since(last) < gap {
                    return Attempt::WaitUntil(last + gap);
                }
            }
        }
        let permit = match wire {
            Wire::Irc(wire) => match wire.try_reserve() {
                Ok(permit) => Permit::Irc(permit),
                Err(_) => return Attempt::WaitUntil(now + Duration::from_millis(5)),
            },
            Wire::Helix(chat, auth) => {
                let ids = (
                    auth.directory
                        .id(channel)
                        .or_else(|| self.status.room_id(channel)),
                    auth.bot_user_id(),
                );
                let (Some(broadcaster_id), Some(sender_id)) = ids else {
                    queue.waiting.pop_front();
                    self.queued -= 1;
                    self.metrics.outbound_dropped("helix_ids_unknown");
                    return Attempt::Expired;
                };
                match chat.try_reserve() {
                    Some(permit) => {
                        let granted = auth.onboarding.has_channel_bot(&broadcaster_id);
                        let use_app_token = auth.app.is_some() && (granted || auth.user.is_none());
                        Permit::Helix(permit, broadcaster_id, sender_id, use_app_token)
                    }
                    None => return Attempt::WaitUntil(now + Duration::from_millis(5)),
                }
            }
        };
        let Some(item) = queue.waiting.pop_front() else {
            return Attempt::Expired;
        };
        self.queued -= 1;
        let mut text = limit_length(
            &neutralise_commands(&item.text),
            self.limits.send.max_message_chars,
        );
        if text.len() < item.text.len() {
            self.metrics.outbound_truncated.inc();
        }
        let duplicate_window = Duration::from_millis(self.limits.send.duplicate_window_ms);
        let recent = queue
            .last_sent_at
            .is_some_and(|t| now.duration_since(t) < duplicate_window);
        if !moderator && recent && strip_dedup(&queue.last_text) == text {
            if queue.last_text == text {
                text = limit_length(
                    &format!("{text}{DEDUP_SUFFIX}"),
                    self.limits.send.max_message_chars,
                );
            }
            self.metrics.outbound_deduplicated.inc();
        }
        queue.last_sent_at = Some(now);
        queue.last_text = text.clone();
        self.sent.record(now);
        match permit {
            Permit::Irc(permit) => {
                permit.send(privmsg_line(channel, &text, item.reply_to.as_deref()));
                self.metrics.outbound_sent.inc();
                if let Some(received_at) = item.received_at {
                    self.metrics
                        .observe_reply_latency(now.saturating_duration_since(received_at));
                }
            }
            // Counted as sent (and its latency observed) when Twitch says it was delivered.
            Permit::Helix(permit, broadcaster_id, sender_id, use_app_token) => {
                permit.send(ChatSend {
                    channel: Arc::clone(channel),
                    broadcaster_id,
                    sender_id,
                    text: text.replace(['\r', '\n'], " "),
                    reply_to: item.reply_to,
                    use_app_token,
                    received_at: item.received_at,
                });
            }
        }
        Attempt::Sent
    }

    fn expire_all(&mut self, now: Instant) {
        let max_age = Duration::from_millis(self.limits.send.max_age_ms);
        for queue in self.channels.values_mut() {
            while queue
                .waiting
                .front()
                .is_some_and(|p| now.duration_since(p.queued_at) > max_age)
            {
                queue.waiting.pop_front();
                self.queued -= 1;
                self.metrics.outbound_dropped("expired");
            }
        }
    }
}

/// What a message is written to.
enum Wire {
    Irc(mpsc::Sender<String>),
    Helix(HelixChat, Arc<Auth>),
}

/// A reserved place on the wire.
enum Permit<'a> {
    Irc(mpsc::Permit<'a, String>),
    Helix(
        crate::twitch::helix::chat::ChatPermit<'a>,
        String,
        String,
        bool,
    ),
}

enum Attempt {
    Sent,
    Expired,
    WaitUntil(Instant),
}

fn moderation_name(action: &Action) -> &'static str {
    match action {
        Action::Delete { .. } => "delete",
        Action::Timeout { .. } => "timeout",
        Action::Ban { .. } => "ban",
        Action::Unban { .. } => "unban",
        Action::ChatMode { .. } => "chat_mode",
        _ => "other",
    }
}

/// The PRIVMSG line for a message, threaded as a reply when `reply_to` is set. Text starting
/// with `/` or `.` would run as a chat command, so it is prefixed to stay plain text.
pub fn privmsg_line(channel: &str, text: &str, reply_to: Option<&str>) -> String {
    let text = neutralise_commands(text);
    let mut tags = IRCTags::new();
    if let Some(parent) = reply_to {
        tags.0
            .insert("reply-parent-msg-id".to_string(), parent.to_string());
    }
    let params = vec![format!("#{channel}"), text.replace(['\r', '\n'], " ")];
    IRCMessage::new(tags, None, "PRIVMSG".to_string(), params).as_raw_irc()
}

/// Text starting with `/` or `.` (after any leading whitespace) would run as a chat command:
/// prefix it with a zero-width space to keep it plain text. Idempotent, so applying it before
/// the length limit and again when formatting is safe. This is the last line for Twitch's own
/// parser (which does not trim U+200B) and covers text the owner wrote too; that chat input
/// never leads a text with `!`, `/` or `.`, even for bots that trim invisible characters, is
/// the engine's guarantee (`engine::outgoing`).
pub fn neutralise_commands(text: &str) -> std::borrow::Cow<'_, str> {
    if text.trim_start().starts_with(['/', '.']) {
        std::borrow::Cow::Owned(format!("\u{200B}{text}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Cuts text to at most `max` characters, on a character boundary, marking the cut with `…`.
pub fn limit_length(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn strip_dedup(text: &str) -> &str {
    text.strip_suffix(DEDUP_SUFFIX).unwrap_or(text)
}

/// Property code shared by the `outbound` fuzz target and the suite's smoke test over its
/// seeds (`fuzz/seeds/outbound/`).
#[doc(hidden)]
pub mod fuzzing {
    use twitch_irc::message::IRCMessage;

    use super::{limit_length, neutralise_commands, privmsg_line};

    /// The limit the fuzz input is formatted with: Twitch's 500 characters.
    const MAX_CHARS: usize = 500;

    /// Any text (and a reply parent id, after the first NUL) formatted as the scheduler formats
    /// it: the PRIVMSG is one line (no CR/LF), parses back to the same channel and parent, its
    /// text is at most 500 characters and never starts with a Twitch command prefix (`/`, `.`).
    pub fn check(data: &[u8]) {
        let input = String::from_utf8_lossy(data);
        let (text, parent) = match input.split_once('\0') {
            Some((text, parent)) => (text, Some(parent)),
            None => (&*input, None),
        };
        let limited = limit_length(&neutralise_commands(text), MAX_CHARS);
        assert!(limited.chars().count() <= MAX_CHARS);
        let line = privmsg_line("chan", &limited, parent);
        assert!(
            !line.contains(['\r', '\n']),
            "a PRIVMSG holds CR/LF: {line:?}"
        );
        let parsed = IRCMessage::parse(&line).expect("our own PRIVMSG parses");
        assert_eq!(parsed.command, "PRIVMSG");
        assert_eq!(parsed.params.first().map(String::as_str), Some("#chan"));
        let sent = parsed.params.get(1).map(String::as_str).unwrap_or("");
        assert!(
            sent.chars().count() <= MAX_CHARS,
            "{} characters sent",
            sent.chars().count()
        );
        let start = sent.trim_start();
        assert!(
            !start.starts_with(['/', '.']),
            "a command prefix goes out: {sent:?}"
        );
        if let Some(parent) = parent.filter(|p| !p.is_empty()) {
            let tag = parsed.tags.0.get("reply-parent-msg-id").map(String::as_str);
            assert_eq!(tag, Some(parent), "the reply parent survives");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scheduler(channel_capacity: usize) -> Scheduler {
        let send = SendLimits {
            channel_queue_capacity: channel_capacity,
            ..SendLimits::default()
        };
        let limits = OutboundLimits {
            send,
            verified: false,
            anonymous: false,
        };
        let metrics = Metrics::new(crate::obs::registry());
        Scheduler::new(limits, Arc::new(TwitchStatus::new(&[])), metrics, None)
    }

    fn pending(text: &str, reply: bool) -> Pending {
        Pending {
            channel: Arc::from("chan"),
            text: text.into(),
            reply_to: None,
            received_at: None,
            queued_at: Instant::now(),
            reply,
        }
    }

    fn waiting(s: &Scheduler) -> Vec<String> {
        s.channels
            .get("chan")
            .map(|q| q.waiting.iter().map(|p| p.text.clone()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn replies_go_before_automatic_output_and_in_order_among_themselves() {
        let mut s = scheduler(64);
        for text in ["timer 1", "keyword 1", "timer 2"] {
            s.enqueue(pending(text, false));
        }
        s.enqueue(pending("reply 1", true));
        s.enqueue(pending("reply 2", true));
        s.enqueue(pending("timer 3", false));
        assert_eq!(
            waiting(&s),
            [
                "reply 1",
                "reply 2",
                "timer 1",
                "keyword 1",
                "timer 2",
                "timer 3"
            ]
        );
        assert_eq!(s.queued, 6);
        assert_eq!(s.turn.len(), 1, "the channel takes its turn once");
    }

    #[test]
    fn a_reply_takes_the_place_of_the_newest_automatic_message_in_a_full_queue() {
        let mut s = scheduler(3);
        for text in ["auto 1", "auto 2", "auto 3"] {
            s.enqueue(pending(text, false));
        }
        s.enqueue(pending("auto 4", false));
        assert_eq!(waiting(&s), ["auto 1", "auto 2", "auto 3"], "full: dropped");
        s.enqueue(pending("reply", true));
        assert_eq!(waiting(&s), ["reply", "auto 1", "auto 2"]);
        s.enqueue(pending("reply 2", true));
        s.enqueue(pending("reply 3", true));
        assert_eq!(waiting(&s), ["reply", "reply 2", "reply 3"]);
        s.enqueue(pending("reply 4", true));
        assert_eq!(
            waiting(&s),
            ["reply", "reply 2", "reply 3"],
            "replies are never displaced"
        );
        assert_eq!(s.queued, 3);
        let text = s.metrics.render();
        assert!(
            text.contains("firehose_outbound_dropped_total{reason=\"displaced_by_reply\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("firehose_outbound_dropped_total{reason=\"channel_queue_full\"} 2"),
            "{text}"
        );
    }

    #[test]
    fn a_command_is_a_message_whose_first_word_is_a_bang_and_a_name() {
        for text in ["!ping", "  !so someone", "!x"] {
            assert!(crate::engine::invokes_command(text), "{text}");
        }
        for text in ["", "!", "hi !ping", "ping", "! ping"] {
            assert!(!crate::engine::invokes_command(text), "{text}");
        }
    }

    #[test]
    fn reply_lines_carry_the_parent_tag_and_escape_nothing_else() {
        assert_eq!(
            privmsg_line("chan", "pong", Some("abc-1")),
            "@reply-parent-msg-id=abc-1 PRIVMSG #chan pong"
        );
        let parsed = IRCMessage::parse(&privmsg_line("c", ":) hi", Some("a;b c"))).expect("parses");
        assert_eq!(parsed.params, vec!["#c".to_string(), ":) hi".to_string()]);
        assert_eq!(
            parsed.tags.0.get("reply-parent-msg-id").map(String::as_str),
            Some("a;b c")
        );
        assert_eq!(
            privmsg_line("chan", "hi there", None),
            "PRIVMSG #chan :hi there"
        );
    }

    #[test]
    fn command_like_text_is_neutralised_and_newlines_removed() {
        let line = privmsg_line("chan", "/ban someone", None);
        assert!(line.ends_with(":\u{200B}/ban someone"), "{line}");
        assert_eq!(privmsg_line("c", "a\r\nb", None), "PRIVMSG #c :a  b");
        let spaced = privmsg_line("chan", "  .timeout x 1", None);
        assert!(spaced.ends_with(":\u{200B}  .timeout x 1"), "{spaced}");
    }

    #[test]
    fn a_neutralised_command_still_fits_the_limit() {
        let text = limit_length(&neutralise_commands(&"/".repeat(600)), 500);
        assert_eq!(text.chars().count(), 500);
        let line = privmsg_line("c", &text, None);
        let parsed = IRCMessage::parse(&line).expect("parses");
        assert_eq!(
            parsed.params[1].chars().count(),
            500,
            "formatting must not add a second prefix"
        );
    }

    #[test]
    fn length_is_limited_on_char_boundaries() {
        assert_eq!(limit_length("abc", 3), "abc");
        assert_eq!(limit_length("abcd", 3), "ab…");
        let long = "é".repeat(600);
        let cut = limit_length(&long, 500);
        assert_eq!(cut.chars().count(), 500);
    }
}
