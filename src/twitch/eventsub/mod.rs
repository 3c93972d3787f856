//! Reading chat through EventSub (`twitch.ingest = "eventsub"`), Twitch's documented path for
//! chat bots, over any of its three transports, and the webhook endpoint's intake.
//!
//! - [`ws`]: one WebSocket connection (welcome, keepalive, `session_reconnect`, close codes).
//! - [`subscriber`]: every served channel subscribed (paced, retried, shown per channel).
//! - [`dispatch`]: frames and bodies -> de-duplicated -> converted -> the router.
//! - [`convert`]: EventSub events -> the engine's `ChatEvent`s (the same as IRC's).
//! - [`dedup`]: the bounded message-id window. [`webhook`]: `POST /eventsub`'s checks.
//! - [`metrics`][]: `eventsub_*`.
//!
//! Transports, as [`EventSub::start`] sets them up:
//! - **conduit** (app token): reuse `eventsub.conduit_id`, or the application's first conduit
//!   (resized to `eventsub.shards`), or create one; open one WebSocket per shard and attach
//!   each new session to its shard (`PATCH /eventsub/conduits/shards`) within the welcome's
//!   keepalive time; subscriptions name the conduit and survive a shard's reconnect (only the
//!   shard is re-attached).
//! - **websocket** (user token): up to 3 connections of 300 subscriptions, opened as channels
//!   need them; a lost connection's subscriptions are made again on its new session.
//! - **webhook** (app token): subscriptions name `eventsub.webhook_callback`; Twitch POSTs to
//!   this service's `/eventsub`, verified by [`webhook::WebhookIntake`].
//!
//! With a webhook secret set, the intake runs whatever the ingest mode (webhooks for some
//! channels beside IRC for others).

pub mod convert;
pub mod dedup;
pub mod dispatch;
pub mod metrics;
pub mod subscriber;
pub mod webhook;
pub mod ws;

pub use metrics::EventSubMetrics;
pub use subscriber::{ChannelSubscriptions, SubState};
pub use webhook::{WebhookAnswer, WebhookHeaders, WebhookIntake};

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::channel::{ChannelRegistry, Router};
use crate::config::{Config, EventSubTransport, Ingest};
use crate::twitch::auth::Auth;
use crate::twitch::helix::call::{HelixCaller, HelixError};
use crate::twitch::helix::eventsub::{
    attach_shard, conduits, create_conduit, resize_conduit, Target,
};
use crate::twitch::status::TwitchStatus;
use dedup::Dedup;
use dispatch::Dispatcher;
use subscriber::Subscriber;
use ws::{SessionState, SocketSpec};

/// Revocations waiting for the subscriber, at most.
const REVOCATIONS: usize = 1_024;

/// What EventSub needs from the rest of the service.
pub struct EventSubParts {
    pub config: Config,
    pub router: Arc<Router>,
    pub registry: Arc<ChannelRegistry>,
    pub status: Arc<TwitchStatus>,
    pub auth: Arc<Auth>,
    pub metrics: EventSubMetrics,
    pub stop: CancellationToken,
}

/// The transport's own state, for readiness.
#[derive(Debug, Default)]
struct TransportState {
    /// The conduit's id once set up, or why it is not.
    conduit: Option<String>,
    conduit_error: Option<String>,
    /// Per shard (conduit) or slot (websocket): the session attached/connected now.
    attached: Vec<Option<String>>,
    wanted_slots: usize,
}

/// The running EventSub side.
pub struct EventSub {
    pub subscriber: Option<Arc<Subscriber>>,
    pub webhook: Option<Arc<WebhookIntake>>,
    pub dispatch: Arc<Dispatcher>,
    transport: Option<EventSubTransport>,
    state: Arc<Mutex<TransportState>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for EventSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSub")
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

fn lock(state: &Mutex<TransportState>) -> std::sync::MutexGuard<'_, TransportState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl EventSub {
    /// Starts the transport (when `twitch.ingest = "eventsub"`) and the webhook intake (when a
    /// webhook secret is set). Must run in a runtime.
    pub fn start(parts: EventSubParts) -> anyhow::Result<EventSub> {
        let config = &parts.config;
        let es = &config.twitch.eventsub;
        let (revoked_tx, mut revoked_rx) = mpsc::channel(REVOCATIONS);
        let dispatch = Arc::new(Dispatcher {
            router: Arc::clone(&parts.router),
            registry: Arc::clone(&parts.registry),
            status: Arc::clone(&parts.status),
            auth: Arc::clone(&parts.auth),
            dedup: Mutex::new(Dedup::new(es.dedup_capacity)),
            metrics: parts.metrics.clone(),
            revoked: revoked_tx,
        });
        let state = Arc::new(Mutex::new(TransportState::default()));
        let mut tasks = Vec::new();
        let ingest = config.twitch.ingest == Ingest::Eventsub;
        let subscriber = if ingest {
            let bearer = match es.transport {
                EventSubTransport::Websocket => parts.auth.user_bearer(),
                _ => parts.auth.app_bearer(),
            };
            let Some(bearer) = bearer else {
                anyhow::bail!(
                    "the {} transport needs {} token, and none is configured",
                    es.transport.as_str(),
                    if es.transport.needs_app_token() {
                        "an app"
                    } else {
                        "the bot's user"
                    }
                );
            };
            let caller = Arc::new(HelixCaller::new(&config.helix, bearer, parts.stop.clone())?);
            let subscriber = Arc::new(Subscriber::new(
                es,
                Arc::clone(&caller),
                Arc::clone(&parts.auth),
                parts.metrics.clone(),
            ));
            tasks.push(tokio::spawn(
                Arc::clone(&subscriber).run(parts.stop.clone()),
            ));
            match es.transport {
                EventSubTransport::Conduit => {
                    lock(&state).attached = vec![None; es.shards as usize];
                    lock(&state).wanted_slots = es.shards as usize;
                    tasks.push(tokio::spawn(run_conduit(
                        config.clone(),
                        caller,
                        Arc::clone(&subscriber),
                        Arc::clone(&dispatch),
                        Arc::clone(&state),
                        parts.stop.clone(),
                    )));
                }
                EventSubTransport::Websocket => {
                    lock(&state).attached = vec![None; es.websocket_max_connections];
                    tasks.push(tokio::spawn(run_websockets(
                        es.clone(),
                        Arc::clone(&subscriber),
                        Arc::clone(&dispatch),
                        Arc::clone(&state),
                        parts.stop.clone(),
                    )));
                }
                EventSubTransport::Webhook => {
                    let secret = config
                        .secrets
                        .webhook_secret
                        .as_ref()
                        .map(|s| s.expose().to_string())
                        .unwrap_or_default();
                    subscriber.set_target(
                        0,
                        Some(Target::Webhook {
                            callback: es.webhook_callback.clone(),
                            secret,
                        }),
                        1,
                    );
                }
            }
            Some(subscriber)
        } else {
            None
        };
        let forward = subscriber.clone();
        let stop = parts.stop.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let revoked = tokio::select! {
                    _ = stop.cancelled() => return,
                    revoked = revoked_rx.recv() => revoked,
                };
                let Some(r) = revoked else { return };
                if let Some(subscriber) = &forward {
                    subscriber.revoked(&r.kind, &r.channel_id, &r.status);
                }
            }
        }));
        let webhook = match &config.secrets.webhook_secret {
            Some(secret) => {
                let (intake, task) = WebhookIntake::start(
                    secret.clone(),
                    es,
                    Arc::clone(&dispatch),
                    subscriber.clone(),
                    parts.metrics.clone(),
                    parts.stop.clone(),
                );
                tasks.push(task);
                Some(intake)
            }
            None => None,
        };
        Ok(EventSub {
            subscriber,
            webhook,
            dispatch,
            transport: ingest.then_some(es.transport),
            state,
            tasks: Mutex::new(tasks),
        })
    }

    /// Waits (up to `deadline`) for every task to end once the stop token fired.
    pub async fn stopped(&self, deadline: Duration) {
        let tasks: Vec<JoinHandle<()>> = match self.tasks.lock() {
            Ok(mut tasks) => tasks.drain(..).collect(),
            Err(poisoned) => poisoned.into_inner().drain(..).collect(),
        };
        let _ = tokio::time::timeout(deadline, futures::future::join_all(tasks)).await;
    }

    /// Subscribes the channel (when EventSub is the ingest).
    pub fn join(&self, login: &str) {
        if let Some(subscriber) = &self.subscriber {
            subscriber.want(login);
        }
    }

    /// Deletes the channel's subscriptions.
    pub fn part(&self, login: &str) {
        if let Some(subscriber) = &self.subscriber {
            subscriber.unwant(login);
        }
    }

    pub fn channel(&self, login: &str) -> Option<ChannelSubscriptions> {
        self.subscriber.as_ref()?.view(login)
    }

    /// (not ready, degraded) reasons.
    pub fn readiness(&self) -> (Vec<String>, Vec<String>) {
        let mut reasons = Vec::new();
        let mut degraded = Vec::new();
        let Some(subscriber) = &self.subscriber else {
            return (reasons, degraded);
        };
        {
            let state = lock(&self.state);
            match self.transport {
                Some(EventSubTransport::Conduit) => {
                    if state.conduit.is_none() {
                        let why = state
                            .conduit_error
                            .clone()
                            .unwrap_or_else(|| "setting up".into());
                        reasons.push(format!("eventsub: conduit not ready ({why})"));
                    }
                    let attached = state.attached.iter().filter(|s| s.is_some()).count();
                    if attached < state.attached.len() {
                        reasons.push(format!(
                            "eventsub: {attached} of {} conduit shard(s) attached",
                            state.attached.len()
                        ));
                    }
                }
                Some(EventSubTransport::Websocket) => {
                    let needed = *subscriber.slots_needed.borrow();
                    let connected = state
                        .attached
                        .iter()
                        .take(needed)
                        .filter(|s| s.is_some())
                        .count();
                    if connected < needed {
                        reasons.push(format!(
                            "eventsub: {connected} of {needed} websocket connection(s) up"
                        ));
                    }
                }
                _ => {}
            }
        }
        let (channels, failing) = subscriber.readiness();
        if !channels.is_empty() {
            let shown: Vec<String> = channels.iter().take(10).cloned().collect();
            reasons.push(format!(
                "eventsub: {} channel(s) not subscribed: {}",
                channels.len(),
                shown.join(", ")
            ));
        }
        if !failing.is_empty() {
            let shown: Vec<String> = failing.iter().take(10).cloned().collect();
            degraded.push(format!(
                "eventsub: stream/raid subscriptions failing for {}",
                shown.join(", ")
            ));
        }
        (reasons, degraded)
    }
}

/// Where and how one connection connects.
fn socket_spec(es: &crate::config::EventSubConfig, label: String) -> SocketSpec {
    SocketSpec {
        url: es.websocket_url.clone(),
        keepalive_s: es.keepalive_timeout_s,
        connect_timeout: Duration::from_millis(es.connect_timeout_ms),
        max_frame: es.max_frame_bytes,
        backoff: Duration::from_millis(es.reconnect_backoff_ms),
        backoff_max: Duration::from_millis(es.reconnect_backoff_max_ms),
        label,
    }
}

/// Sets the conduit up, then runs its shards and keeps each attached.
#[allow(clippy::too_many_arguments)]
async fn run_conduit(
    config: Config,
    caller: Arc<HelixCaller>,
    subscriber: Arc<Subscriber>,
    dispatch: Arc<Dispatcher>,
    state: Arc<Mutex<TransportState>>,
    stop: CancellationToken,
) {
    let es = &config.twitch.eventsub;
    let shards = es.shards as usize;
    let mut failures = 0u32;
    let conduit = loop {
        match ensure_conduit(&caller, &es.conduit_id, shards).await {
            Ok(id) => break id,
            Err(why) => {
                failures = failures.saturating_add(1);
                lock(&state).conduit_error = Some(why.to_string());
                let delay = Duration::from_millis(es.retry_backoff_ms)
                    .saturating_mul(1 << failures.min(10))
                    .min(Duration::from_millis(es.retry_backoff_max_ms));
                tracing::warn!(error = %why, ?delay, "EventSub conduit not set up yet; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    };
    tracing::info!(conduit = %conduit, shards, "EventSub conduit ready");
    {
        let mut s = lock(&state);
        s.conduit = Some(conduit.clone());
        s.conduit_error = None;
    }
    subscriber.set_target(0, Some(Target::Conduit(conduit.clone())), 1);
    let mut tasks = Vec::new();
    for shard in 0..shards {
        let (tx, rx) = watch::channel(SessionState::default());
        tasks.push(tokio::spawn(ws::run(
            socket_spec(es, format!("shard {shard}")),
            Arc::clone(&dispatch),
            tx,
            stop.clone(),
        )));
        tasks.push(tokio::spawn(attach_shard_loop(
            Arc::clone(&caller),
            conduit.clone(),
            shard,
            rx,
            Arc::clone(&state),
            stop.clone(),
        )));
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// Why the conduit could not be set up (shown in the channel status, retried with backoff).
#[derive(Debug, thiserror::Error)]
enum ConduitError {
    #[error("listing conduits: {0}")]
    Listing(HelixError),
    #[error("conduit {0} (twitch.eventsub.conduit_id) does not exist")]
    Missing(String),
    #[error("resizing conduit {id}: {source}")]
    Resizing { id: String, source: HelixError },
    #[error("creating a conduit: {0}")]
    Creating(HelixError),
}

/// The configured conduit, else the application's first (resized), else a new one.
async fn ensure_conduit(
    caller: &HelixCaller,
    configured: &str,
    shards: usize,
) -> Result<String, ConduitError> {
    let existing = conduits(caller).await.map_err(ConduitError::Listing)?;
    let chosen = if configured.is_empty() {
        existing.first().cloned()
    } else {
        match existing.iter().find(|c| c.id == configured) {
            Some(c) => Some(c.clone()),
            None => return Err(ConduitError::Missing(configured.to_string())),
        }
    };
    match chosen {
        Some(c) if c.shard_count == shards => Ok(c.id),
        Some(c) => resize_conduit(caller, &c.id, shards)
            .await
            .map(|c| c.id)
            .map_err(|source| ConduitError::Resizing { id: c.id, source }),
        None => create_conduit(caller, shards)
            .await
            .map(|c| c.id)
            .map_err(ConduitError::Creating),
    }
}

/// Attaches every new session of a shard's connection (within the welcome's keepalive time,
/// or Twitch closes it with 4003 and the next session tries again).
async fn attach_shard_loop(
    caller: Arc<HelixCaller>,
    conduit: String,
    shard: usize,
    mut sessions: watch::Receiver<SessionState>,
    state: Arc<Mutex<TransportState>>,
    stop: CancellationToken,
) {
    let mut attached: Option<String> = None;
    loop {
        let current = sessions.borrow_and_update().id.clone();
        if current.is_none() {
            attached = None;
            set_attached(&state, shard, None);
        }
        if let Some(session) = current.filter(|s| attached.as_ref() != Some(s)) {
            let mut tries = 0;
            loop {
                match attach_shard(&caller, &conduit, shard, &session).await {
                    Ok(()) => {
                        tracing::info!(shard, session = %session, "conduit shard attached");
                        attached = Some(session.clone());
                        set_attached(&state, shard, Some(session.clone()));
                        break;
                    }
                    Err(e) if tries < 3 && sessions.borrow().id.as_ref() == Some(&session) => {
                        tries += 1;
                        tracing::warn!(shard, error = %e, "attaching a conduit shard failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500 * tries)).await;
                    }
                    Err(e) => {
                        tracing::warn!(shard, error = %e, "attaching a conduit shard failed; the next session tries again");
                        break;
                    }
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = sessions.changed() => if changed.is_err() { return },
        }
    }
}

fn set_attached(state: &Mutex<TransportState>, slot: usize, session: Option<String>) {
    let mut s = lock(state);
    if let Some(entry) = s.attached.get_mut(slot) {
        *entry = session;
    }
}

/// Plain WebSocket transport: opens connections as the subscriber places channels on them,
/// and points each slot's subscriptions at its current session.
async fn run_websockets(
    es: crate::config::EventSubConfig,
    subscriber: Arc<Subscriber>,
    dispatch: Arc<Dispatcher>,
    state: Arc<Mutex<TransportState>>,
    stop: CancellationToken,
) {
    let mut needed = subscriber.slots_needed.subscribe();
    let mut started = 0usize;
    let mut tasks = Vec::new();
    loop {
        let want = *needed.borrow_and_update();
        while started < want {
            let slot = started;
            let (tx, mut rx) = watch::channel(SessionState::default());
            tasks.push(tokio::spawn(ws::run(
                socket_spec(&es, format!("websocket {slot}")),
                Arc::clone(&dispatch),
                tx,
                stop.clone(),
            )));
            let (subscriber, state, stop) =
                (Arc::clone(&subscriber), Arc::clone(&state), stop.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let session = rx.borrow_and_update().clone();
                    set_attached(&state, slot, session.id.clone());
                    subscriber.set_target(
                        slot,
                        session.id.map(Target::Websocket),
                        session.generation,
                    );
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        changed = rx.changed() => if changed.is_err() { return },
                    }
                }
            }));
            started += 1;
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            changed = needed.changed() => if changed.is_err() { break },
        }
    }
    for task in tasks {
        let _ = task.await;
    }
}
