//! Sending chat through Helix: `POST /helix/chat/messages` (`twitch.send_via = "helix"`).
//!
//! The send scheduler (`twitch::outbound`) decides *when* a message goes, as for IRC; it then
//! hands the message here through a bounded queue ([`HelixChat::try_reserve`]: a full queue
//! makes the scheduler wait, like a full IRC wire queue). A worker sends up to
//! `helix.max_in_flight` at once, one at a time per channel (so a channel's messages keep their
//! order), with the app access token where the message asks for it (the broadcaster authorised
//! `channel:bot`: the Chat Bot badge) or the bot's user token. The body is `twitch_api`'s
//! `SendChatMessageBody`, the answer its `SendChatMessageResponse`.
//!
//! Outcomes, all counted: `is_sent = true` (reply latency observed then); `is_sent = false`
//! (`helix_chat_dropped_total{reason = drop_reason.code}`, never sent again: Twitch decided);
//! a 401 renews the token and tries once more, a 429 waits for the bucket's reset (up to three
//! times: the message was not taken); other failures (4xx, 5xx, transport) are counted by kind
//! and not retried, since a 5xx or a timeout may have delivered it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use reqwest::Method;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::bearer::Bearer;
use super::call::{HelixCaller, HelixError};
use crate::config::HelixConfig;
use crate::obs::Metrics;

/// One message the scheduler decided to send now.
#[derive(Debug, Clone)]
pub struct ChatSend {
    pub channel: Arc<str>,
    pub broadcaster_id: String,
    pub sender_id: String,
    pub text: String,
    pub reply_to: Option<String>,
    /// Send with the app access token (the broadcaster authorised `channel:bot`).
    pub use_app_token: bool,
    /// When the chat message that caused it arrived (reply latency).
    pub received_at: Option<Instant>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabel {
    pub token: String,
}

/// `helix_chat_*` metrics.
#[derive(Debug, Clone, Default)]
pub struct ChatMetrics {
    /// Messages Twitch delivered, by token kind (`app`: with the Chat Bot badge).
    pub sent: Family<TokenLabel, Counter>,
    /// `is_sent = false`, by Twitch's `drop_reason.code`.
    pub dropped: Family<ReasonLabel, Counter>,
    /// Calls that failed (`unauthorized`, `refused`, `server_error`, `transport`, ...).
    pub failed: Family<ReasonLabel, Counter>,
}

impl ChatMetrics {
    pub fn register(registry: &mut Registry) -> ChatMetrics {
        let m = ChatMetrics::default();
        registry.register(
            "helix_chat_sent",
            "Chat messages Twitch delivered through POST /helix/chat/messages, by token (app = Chat Bot badge)",
            m.sent.clone(),
        );
        registry.register(
            "helix_chat_dropped",
            "Chat messages Twitch did not deliver (is_sent = false), by drop_reason.code; never resent",
            m.dropped.clone(),
        );
        registry.register(
            "helix_chat_failed",
            "Chat messages whose Helix call failed, by kind of failure; not retried",
            m.failed.clone(),
        );
        m
    }

    fn dropped(&self, reason: &str) {
        self.dropped
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    fn failed(&self, reason: &str) {
        self.failed
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }
}

/// The handle the send scheduler uses. Cheap to clone.
#[derive(Clone, Debug)]
pub struct HelixChat {
    tx: mpsc::Sender<ChatSend>,
}

/// A reserved place in the queue: sending into it never fails.
pub type ChatPermit<'a> = mpsc::Permit<'a, ChatSend>;

impl HelixChat {
    /// Starts the worker. `app` and `user` are the two tokens (either may be missing: a
    /// message asking for a missing one is counted as failed, `no_token`). The task ends
    /// after `stop` once the messages in flight are answered.
    pub fn start(
        config: &HelixConfig,
        app: Option<Arc<dyn Bearer>>,
        user: Option<Arc<dyn Bearer>>,
        metrics: ChatMetrics,
        service: Arc<Metrics>,
        stop: CancellationToken,
    ) -> (HelixChat, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(config.queue_capacity.clamp(1, 4_096));
        // `stop` ends the intake; calls already decided still go out (each is bounded by
        // `helix.request_timeout_ms`, and shutdown waits for this task only so long).
        let calls = CancellationToken::new();
        let caller = |bearer: Option<Arc<dyn Bearer>>| {
            bearer.and_then(|b| {
                HelixCaller::new(config, b, calls.clone())
                    .ok()
                    .map(Arc::new)
            })
        };
        let worker = Worker {
            app: caller(app),
            user: caller(user),
            metrics,
            service,
            max_in_flight: config.max_in_flight.max(1),
        };
        let task = tokio::spawn(worker.run(rx, stop));
        (HelixChat { tx }, task)
    }

    /// A place in the queue, if there is one now.
    pub fn try_reserve(&self) -> Option<ChatPermit<'_>> {
        self.tx.try_reserve().ok()
    }
}

#[derive(Deserialize)]
struct SendAnswer {
    data: Vec<twitch_api::helix::chat::SendChatMessageResponse>,
}

struct Worker {
    app: Option<Arc<HelixCaller>>,
    user: Option<Arc<HelixCaller>>,
    metrics: ChatMetrics,
    service: Arc<Metrics>,
    max_in_flight: usize,
}

impl Worker {
    async fn run(self, mut rx: mpsc::Receiver<ChatSend>, stop: CancellationToken) {
        let mut in_flight: JoinSet<()> = JoinSet::new();
        let mut busy: HashMap<tokio::task::Id, Arc<str>> = HashMap::new();
        let mut waiting: VecDeque<ChatSend> = VecDeque::new();
        let mut closed = false;
        loop {
            // Start what may start: one message in flight per channel, in order.
            let mut i = 0;
            while in_flight.len() < self.max_in_flight && i < waiting.len() {
                if busy.values().any(|c| *c == waiting[i].channel) {
                    i += 1;
                    continue;
                }
                if let Some(job) = waiting.remove(i) {
                    let channel = Arc::clone(&job.channel);
                    let handle = in_flight.spawn(self.send(job));
                    busy.insert(handle.id(), channel);
                }
            }
            if closed && waiting.is_empty() && in_flight.is_empty() {
                return;
            }
            tokio::select! {
                Some(done) = in_flight.join_next_with_id(), if !in_flight.is_empty() => {
                    // A task that panicked frees its channel too.
                    let id = match done {
                        Ok((id, ())) => id,
                        Err(e) => e.id(),
                    };
                    busy.remove(&id);
                }
                job = rx.recv(), if !closed && waiting.len() < 4 * self.max_in_flight => match job {
                    Some(job) => waiting.push_back(job),
                    None => closed = true,
                },
                _ = stop.cancelled(), if !closed => {
                    rx.close();
                    closed = true;
                }
            }
        }
    }

    fn send(&self, job: ChatSend) -> impl std::future::Future<Output = ()> + Send + 'static {
        let caller = if job.use_app_token {
            self.app.clone()
        } else {
            self.user.clone()
        };
        let token = if job.use_app_token { "app" } else { "user" };
        let metrics = self.metrics.clone();
        let service = Arc::clone(&self.service);
        async move {
            let channel = Arc::clone(&job.channel);
            let Some(caller) = caller else {
                metrics.failed("no_token");
                return;
            };
            let mut body = twitch_api::helix::chat::SendChatMessageBody::new(
                job.broadcaster_id.as_str(),
                job.sender_id.as_str(),
                job.text.as_str(),
            );
            if let Some(parent) = &job.reply_to {
                body = body.reply_parent_message_id(parent.as_str());
            }
            let body = match serde_json::to_value(&body) {
                Ok(body) => body,
                Err(_) => {
                    metrics.failed("body");
                    return;
                }
            };
            let answer: Result<Option<SendAnswer>, HelixError> = caller
                .call(Method::POST, "/chat/messages", &[], Some(&body))
                .await;
            match answer.map(|a| a.and_then(|a| a.data.into_iter().next())) {
                Ok(Some(result)) if result.is_sent => {
                    metrics
                        .sent
                        .get_or_create(&TokenLabel {
                            token: token.to_string(),
                        })
                        .inc();
                    service.outbound_sent.inc();
                    if let Some(at) = job.received_at {
                        service.observe_reply_latency(at.elapsed());
                    }
                }
                Ok(Some(result)) => {
                    let reason = result
                        .drop_reason
                        .map(|r| r.code.to_string())
                        .unwrap_or_else(|| "unknown".to_string());
                    tracing::debug!(channel = %channel, %reason, "Twitch did not deliver a chat message");
                    metrics.dropped(&reason);
                }
                Ok(None) => metrics.failed("body"),
                Err(e) => {
                    tracing::warn!(channel = %channel, error = %e, "sending a chat message through Helix failed");
                    metrics.failed(e.label());
                }
            }
        }
    }
}

/// Nothing waits longer than this for a slot before the scheduler looks again.
pub const RESERVE_RETRY: Duration = Duration::from_millis(5);
