//! Outbound: the engine's actions for Discord channels, carried out through serenity's HTTP
//! client (whose ratelimiter handles Discord's per-route and global limits, and 429s).
//!
//! [`DiscordOutbound::submit`] never blocks: it queues into a bounded channel (full = dropped
//! and counted). A worker takes jobs in order and runs up to `max_in_flight` REST calls at
//! once, each under `request_timeout_ms` (which includes any rate-limit wait). A job older than
//! `max_age_ms` when its turn comes is dropped and counted, never sent late.
//!
//! | action | Discord call |
//! |---|---|
//! | say | `POST /channels/{c}/messages` |
//! | reply | the same with a `message_reference` to the parent |
//! | delete | `DELETE /channels/{c}/messages/{m}` |
//! | timeout | `PATCH /guilds/{g}/members/{u}` with `communication_disabled_until` (and the message deleted) |
//! | ban / unban | `PUT` / `DELETE /guilds/{g}/bans/{u}` (a ban also deletes the message) |
//!
//! Posted messages allow no mentions, so chat text echoed by a command cannot ping
//! `@everyone`. With more than one call in flight, two replies in one channel may land in
//! either order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serenity::all::{
    ChannelId, CreateAllowedMentions, CreateMessage, EditMember, GuildId, Http, MessageId,
    Timestamp, UserId,
};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::metrics::DiscordMetrics;
use crate::channel::ActionSink;
use crate::config::DiscordConfig;
use crate::engine::{Action, ChatEvent, Platform};
use crate::obs::Metrics;

/// Discord's ceiling for an audit-log reason, in characters.
const MAX_REASON_CHARS: usize = 512;
/// Discord's ceiling for a member timeout (28 days), in seconds.
pub const MAX_TIMEOUT_S: u64 = 28 * 24 * 3_600;

/// One action waiting to be carried out.
#[derive(Debug)]
struct Job {
    channel: Arc<str>,
    action: Action,
    queued_at: Instant,
}

/// The sink channel actors of Discord channels submit to.
#[derive(Clone)]
pub struct DiscordOutbound {
    queue: mpsc::Sender<Job>,
    metrics: DiscordMetrics,
    service_metrics: Arc<Metrics>,
}

impl std::fmt::Debug for DiscordOutbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DiscordOutbound")
    }
}

/// Why an action failed, as the `outcome` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Discord answered 429 and serenity did not retry it (no `Retry-After`).
    RateLimited,
    /// A 4xx: missing permission, unknown message or member...
    Refused,
    /// A 5xx or a transport error.
    Failed,
    Timeout,
    /// The channel is not mapped or an id is not a snowflake.
    Invalid,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::RateLimited => "rate_limited",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
            Outcome::Timeout => "timeout",
            Outcome::Invalid => "invalid",
        }
    }
}

impl DiscordOutbound {
    /// Starts the worker on `http` (serenity's client, ratelimiter included). `drain` ends it:
    /// it then carries out what is queued until `drain_deadline`.
    pub fn start(
        http: Arc<Http>,
        config: Arc<DiscordConfig>,
        metrics: DiscordMetrics,
        service_metrics: Arc<Metrics>,
        drain: CancellationToken,
        drain_deadline: Duration,
    ) -> (DiscordOutbound, JoinHandle<()>) {
        let (queue, rx) = mpsc::channel(config.queue_capacity);
        let worker = Worker {
            http,
            config,
            metrics: metrics.clone(),
        };
        let task = tokio::spawn(worker.run(rx, drain, drain_deadline));
        let outbound = DiscordOutbound {
            queue,
            metrics,
            service_metrics,
        };
        (outbound, task)
    }

    fn shadow(&self, channel: &str, rule: &str, would: &Action) {
        self.service_metrics
            .shadow_actions
            .get_or_create(&vec![("rule", rule.to_string())])
            .inc();
        tracing::info!(channel, rule, would = ?would, "shadow rule matched (not acted on)");
    }
}

impl ActionSink for DiscordOutbound {
    fn submit(&self, event: &ChatEvent, action: Action, _received_at: Option<Instant>) {
        if event.platform != Platform::Discord {
            return;
        }
        if let Action::Shadow { rule, would } = &action {
            return self.shadow(&event.channel, rule, would);
        }
        if let Action::Withheld { rule, .. } = &action {
            // A text from chat input the channel's content filters forbid: never sent.
            self.metrics.dropped("withheld");
            tracing::debug!(channel = %event.channel, rule, "chat-derived text withheld");
            return;
        }
        if let Action::ChatMode { change, rule } = &action {
            // Shield Mode and Twitch's chat modes have no Discord counterpart here.
            self.metrics.dropped("unsupported");
            tracing::info!(channel = %event.channel, rule, change = %change.describe(), "chat-mode change not carried out on Discord");
            return;
        }
        if let Some(delete) = delete_with(event, &action) {
            self.enqueue(&event.channel, delete);
        }
        self.enqueue(&event.channel, action);
    }
}

/// A timeout or ban on Twitch also hides the user's messages; Discord keeps them. So a timeout
/// or ban of the author of the message that caused it also deletes that message.
fn delete_with(event: &ChatEvent, action: &Action) -> Option<Action> {
    let message = event.message()?;
    let (user_id, rule) = match action {
        Action::Timeout { user_id, rule, .. } | Action::Ban { user_id, rule, .. } => {
            (user_id, rule)
        }
        _ => return None,
    };
    (message.user.id == *user_id).then(|| Action::Delete {
        message_id: message.id.clone(),
        user_id: user_id.clone(),
        rule: rule.clone(),
    })
}

impl DiscordOutbound {
    fn enqueue(&self, channel: &Arc<str>, action: Action) {
        let job = Job {
            channel: Arc::clone(channel),
            action,
            queued_at: Instant::now(),
        };
        match self.queue.try_send(job) {
            Ok(()) => {
                self.metrics.queue_depth.inc();
            }
            Err(mpsc::error::TrySendError::Full(_)) => self.metrics.dropped("queue_full"),
            Err(mpsc::error::TrySendError::Closed(_)) => self.metrics.dropped("shutdown"),
        };
    }
}

struct Worker {
    http: Arc<Http>,
    config: Arc<DiscordConfig>,
    metrics: DiscordMetrics,
}

impl Worker {
    async fn run(
        self,
        mut rx: mpsc::Receiver<Job>,
        drain: CancellationToken,
        drain_deadline: Duration,
    ) {
        let worker = Arc::new(self);
        let slots = Arc::new(Semaphore::new(worker.config.max_in_flight));
        let mut calls = JoinSet::new();
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let job = tokio::select! {
                job = rx.recv() => job,
                _ = drain.cancelled(), if deadline.is_none() => {
                    rx.close();
                    deadline = Some(tokio::time::Instant::now() + drain_deadline);
                    continue;
                }
                Some(_) = calls.join_next(), if !calls.is_empty() => continue,
            };
            let Some(job) = job else { break };
            let slot = match deadline {
                Some(until) => {
                    tokio::time::timeout_at(until, Arc::clone(&slots).acquire_owned()).await
                }
                None => Ok(Arc::clone(&slots).acquire_owned().await),
            };
            let Ok(Ok(slot)) = slot else {
                worker.metrics.queue_depth.dec();
                worker.metrics.dropped("shutdown");
                continue;
            };
            let worker = Arc::clone(&worker);
            calls.spawn(async move {
                worker.carry_out(job).await;
                drop(slot);
            });
        }
        let until = deadline.unwrap_or_else(tokio::time::Instant::now);
        while tokio::time::timeout_at(until, calls.join_next())
            .await
            .is_ok_and(|next| next.is_some())
        {}
        calls.abort_all();
    }

    async fn carry_out(&self, job: Job) {
        let name = action_name(&job.action);
        if job.queued_at.elapsed() > Duration::from_millis(self.config.max_age_ms) {
            self.metrics.queue_depth.dec();
            return self.metrics.dropped("expired");
        }
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        let outcome = match tokio::time::timeout(timeout, self.call(&job)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Timeout,
        };
        self.metrics.queue_depth.dec();
        self.metrics.finished(name, outcome.as_str());
        if outcome != Outcome::Ok {
            tracing::warn!(channel = %job.channel, action = name, outcome = outcome.as_str(), "Discord action failed");
        }
    }

    async fn call(&self, job: &Job) -> Outcome {
        let Some(channel) = snowflake(&job.channel).map(ChannelId::new) else {
            return Outcome::Invalid;
        };
        let Some(guild) = self
            .config
            .guild_of(&job.channel)
            .and_then(snowflake)
            .map(GuildId::new)
        else {
            return Outcome::Invalid;
        };
        let http = &*self.http;
        let result = match &job.action {
            Action::Say { text } => channel
                .send_message(http, self.message(text))
                .await
                .map(drop),
            Action::Reply { parent_id, text } => {
                let Some(parent) = snowflake(parent_id).map(MessageId::new) else {
                    return Outcome::Invalid;
                };
                let message = self.message(text).reference_message((channel, parent));
                channel.send_message(http, message).await.map(drop)
            }
            Action::Delete {
                message_id, rule, ..
            } => {
                let Some(message) = snowflake(message_id).map(MessageId::new) else {
                    return Outcome::Invalid;
                };
                let reason = audit_reason(rule, "");
                http.delete_message(channel, message, Some(&reason)).await
            }
            Action::Timeout {
                user_id,
                duration_s,
                reason,
                rule,
            } => {
                let Some(user) = snowflake(user_id).map(UserId::new) else {
                    return Outcome::Invalid;
                };
                let Some(until) = timeout_until(*duration_s) else {
                    return Outcome::Invalid;
                };
                let reason = audit_reason(rule, reason);
                let edit = EditMember::new()
                    .disable_communication_until_datetime(until)
                    .audit_log_reason(&reason);
                guild.edit_member(http, user, edit).await.map(drop)
            }
            Action::Ban {
                user_id,
                reason,
                rule,
            } => {
                let Some(user) = snowflake(user_id).map(UserId::new) else {
                    return Outcome::Invalid;
                };
                let reason = audit_reason(rule, reason);
                http.ban_user(guild, user, 0, Some(&reason)).await
            }
            Action::Unban { user_id, rule } => {
                let Some(user) = snowflake(user_id).map(UserId::new) else {
                    return Outcome::Invalid;
                };
                let reason = audit_reason(rule, "");
                http.remove_ban(guild, user, Some(&reason)).await
            }
            Action::Shadow { .. } | Action::Withheld { .. } => return Outcome::Ok,
            Action::ChatMode { .. } => return Outcome::Invalid,
        };
        match result {
            Ok(()) => Outcome::Ok,
            Err(error) => {
                // serenity's errors name the route and Discord's answer, never the token.
                tracing::warn!(channel = %job.channel, %error, "Discord call failed");
                classify(&error)
            }
        }
    }

    /// A message with the text cut to the limit and no mentions allowed.
    fn message(&self, text: &str) -> CreateMessage {
        let limit = self.config.max_message_chars;
        let text = if text.chars().count() > limit {
            self.metrics.truncated.inc();
            text.chars().take(limit).collect()
        } else {
            text.to_string()
        };
        CreateMessage::new()
            .content(text)
            .allowed_mentions(CreateAllowedMentions::new())
    }
}

fn action_name(action: &Action) -> &'static str {
    match action {
        Action::Say { .. } => "say",
        Action::Reply { .. } => "reply",
        Action::Delete { .. } => "delete",
        Action::Timeout { .. } => "timeout",
        Action::Ban { .. } => "ban",
        Action::Unban { .. } => "unban",
        Action::Shadow { .. } => "shadow",
        Action::Withheld { .. } => "withheld",
        Action::ChatMode { .. } => "chat_mode",
    }
}

fn snowflake(id: &str) -> Option<u64> {
    id.parse::<u64>().ok().filter(|n| *n > 0)
}

/// The end of a timeout of `duration_s` seconds from now, within Discord's 28-day ceiling.
fn timeout_until(duration_s: u64) -> Option<Timestamp> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    let until = now.saturating_add(duration_s.clamp(1, MAX_TIMEOUT_S));
    Timestamp::from_unix_timestamp(i64::try_from(until).ok()?).ok()
}

/// `firehose: <rule>[: <reason>]`, cut to Discord's limit.
fn audit_reason(rule: &str, reason: &str) -> String {
    let text = if reason.is_empty() {
        format!("firehose: {rule}")
    } else {
        format!("firehose: {rule}: {reason}")
    };
    text.chars().take(MAX_REASON_CHARS).collect()
}

/// The outcome of a failed call.
pub fn classify(error: &serenity::Error) -> Outcome {
    use serenity::http::HttpError;
    match error {
        serenity::Error::Http(HttpError::UnsuccessfulRequest(response)) => {
            match response.status_code.as_u16() {
                429 => Outcome::RateLimited,
                400..=499 => Outcome::Refused,
                _ => Outcome::Failed,
            }
        }
        _ => Outcome::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{ChatMessage, ChatUser, EventKind};

    fn event(user_id: &str) -> ChatEvent {
        ChatEvent {
            platform: Platform::Discord,
            channel: Arc::from("200"),
            kind: EventKind::Message(ChatMessage {
                id: "300".into(),
                user: ChatUser {
                    id: user_id.into(),
                    ..ChatUser::default()
                },
                ..ChatMessage::default()
            }),
        }
    }

    fn timeout(user_id: &str) -> Action {
        Action::Timeout {
            user_id: user_id.into(),
            duration_s: 60,
            reason: "r".into(),
            rule: "caps".into(),
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_a_timeout_deletes_the_authors_message() {
        let (queue, mut rx) = mpsc::channel(2);
        let metrics = DiscordMetrics::default();
        let outbound = DiscordOutbound {
            queue,
            metrics: metrics.clone(),
            service_metrics: Metrics::new(crate::obs::registry()),
        };
        outbound.submit(&event("7"), timeout("7"), None);
        let first = rx.try_recv().expect("queued");
        assert_eq!(
            first.action,
            Action::Delete {
                message_id: "300".into(),
                user_id: "7".into(),
                rule: "caps".into()
            }
        );
        assert_eq!(rx.try_recv().expect("queued").action, timeout("7"));
        // A timeout of someone else (e.g. a nuke) deletes nothing here.
        outbound.submit(&event("7"), timeout("8"), None);
        assert_eq!(rx.try_recv().expect("queued").action, timeout("8"));
        assert!(rx.try_recv().is_err());
        let say = || Action::Say { text: "x".into() };
        for _ in 0..3 {
            outbound.submit(&event("7"), say(), None);
        }
        let full = vec![("reason", "queue_full".to_string())];
        assert_eq!(metrics.dropped.get_or_create(&full).get(), 1);
        assert_eq!(metrics.queue_depth.get(), 5);
        // Twitch events are not this sink's business.
        let twitch = ChatEvent {
            platform: Platform::Twitch,
            ..event("7")
        };
        outbound.submit(&twitch, say(), None);
        assert_eq!(metrics.dropped.get_or_create(&full).get(), 1);
        drop(rx);
        outbound.submit(&event("7"), say(), None);
        let shutdown = vec![("reason", "shutdown".to_string())];
        assert_eq!(metrics.dropped.get_or_create(&shutdown).get(), 1);
    }

    #[test]
    fn audit_reasons_name_the_rule_and_are_bounded() {
        assert_eq!(audit_reason("caps", ""), "firehose: caps");
        assert_eq!(
            audit_reason("links", "no links"),
            "firehose: links: no links"
        );
        assert_eq!(
            audit_reason("x", &"é".repeat(600)).chars().count(),
            MAX_REASON_CHARS
        );
    }

    #[test]
    fn timeouts_are_capped_at_28_days() {
        let now = Timestamp::now().unix_timestamp();
        let until = timeout_until(10 * MAX_TIMEOUT_S)
            .expect("a time")
            .unix_timestamp();
        assert!(
            (until - now - MAX_TIMEOUT_S as i64).abs() <= 2,
            "{until} {now}"
        );
        let soon = timeout_until(0).expect("a time").unix_timestamp();
        assert!(soon > now - 1 && soon <= now + 2);
    }
}
