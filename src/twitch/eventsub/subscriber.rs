//! Keeps every served channel subscribed: the wanted state (channel x type, pointing at the
//! transport's target) against what Helix has, reconciled by one task.
//!
//! A channel wanted (`want`) gets its user id (through the directory, 100 logins a call),
//! then one Create Subscription per type: the five chat types (the channel is *ready* once
//! they are enabled) and `stream.online`, `stream.offline`, `channel.raid` (a failure there
//! leaves it *degraded*). Requests go `subscribe_concurrency` at a time and each takes a point
//! from the token's Helix budget, so creation is paced within Helix's limits. A failure is
//! retried with exponential backoff (`retry_backoff_ms` .. `retry_backoff_max_ms`) and shown
//! per channel; a 403 (no `channel:bot`, not a moderator) is also retried at once when a
//! broadcaster's grant arrives. 409 means it exists already (enabled). A revocation marks the
//! entry revoked (final for `authorization_revoked`, `user_removed`, `moderator_removed`,
//! `chat_user_banned`, `version_removed`; retried for the rest). A new session on a plain
//! WebSocket slot (its old subscriptions died with it) sets its channels' entries back to
//! pending. A channel no longer wanted has its subscriptions deleted.
//!
//! Plain WebSocket: channels are placed on slots (connections) of at most
//! `websocket_max_subscriptions / 8` channels, at most `websocket_max_connections` slots
//! (Twitch's 300 and 3); a channel beyond is refused with the reason in `/v1/channels`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::metrics::EventSubMetrics;
use crate::config::EventSubTransport;
use crate::twitch::auth::Auth;
use crate::twitch::helix::call::{HelixCaller, HelixError};
use crate::twitch::helix::eventsub::{
    create_subscription, delete_subscription, subscription_body, Target, CHANNEL_TYPES, CHAT_TYPES,
};

/// Every type a channel is subscribed to.
pub fn all_types() -> impl Iterator<Item = &'static str> {
    CHAT_TYPES.iter().chain(CHANNEL_TYPES.iter()).copied()
}

/// How a channel's error starts while its user id is unknown.
const LOOKUP: &str = "looking up the user id";

/// Revocation statuses after which Twitch will not deliver again until something changes.
const FINAL_REVOCATIONS: &[&str] = &[
    "authorization_revoked",
    "user_removed",
    "moderator_removed",
    "chat_user_banned",
    "version_removed",
];

/// One subscription's state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "state", content = "detail")]
pub enum SubState {
    Pending,
    Creating,
    /// Webhook: created, waiting for Twitch's verification request.
    Verifying,
    Enabled,
    Failed(String),
    Revoked(String),
    /// Not possible with this transport (limits): the reason.
    Refused(String),
}

/// One subscription attempt as it comes back: the channel, the subscription type, and the
/// subscription's id and status, or the Helix error.
type Attempt = (String, &'static str, Result<(String, String), HelixError>);

#[derive(Debug, Clone)]
struct Entry {
    state: SubState,
    id: Option<String>,
    retry_at: Option<Instant>,
    failures: u32,
}

impl Entry {
    fn new() -> Entry {
        Entry {
            state: SubState::Pending,
            id: None,
            retry_at: None,
            failures: 0,
        }
    }
}

#[derive(Debug)]
struct Channel {
    user_id: Option<String>,
    slot: Option<usize>,
    wanted: bool,
    entries: BTreeMap<&'static str, Entry>,
    error: Option<String>,
}

/// A transport slot: a conduit (one), a plain WebSocket connection, or the webhook.
#[derive(Debug, Default, Clone)]
struct Slot {
    target: Option<Target>,
    generation: u64,
}

#[derive(Debug, Default)]
struct State {
    channels: BTreeMap<String, Channel>,
    slots: Vec<Slot>,
    /// Ids of unwanted channels' subscriptions left to delete.
    deletions: Vec<String>,
    /// Channels whose ids Helix did not know (shown, retried with the next resolve).
    resolve_failed_at: Option<Instant>,
    /// Webhook subscriptions verified before their creation's answer was read (Twitch sends
    /// the challenge at once), at most `EARLY_VERIFIED` ids.
    early_verified: std::collections::VecDeque<String>,
}

/// Verifications remembered ahead of their creation's answer.
const EARLY_VERIFIED: usize = 1_024;

/// A channel's subscriptions, for `/v1/channels`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ChannelSubscriptions {
    /// `subscribed` (every chat type enabled), `subscribing` or `failing`.
    pub state: &'static str,
    pub types: BTreeMap<&'static str, SubState>,
    pub error: Option<String>,
}

pub struct Subscriber {
    state: Mutex<State>,
    wake: Notify,
    caller: Arc<HelixCaller>,
    auth: Arc<Auth>,
    transport: EventSubTransport,
    concurrency: usize,
    backoff: Duration,
    backoff_max: Duration,
    per_slot: usize,
    max_slots: usize,
    metrics: EventSubMetrics,
    /// How many plain WebSocket slots have channels (their connections are opened lazily).
    pub slots_needed: watch::Sender<usize>,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber").finish_non_exhaustive()
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl Subscriber {
    pub fn new(
        config: &crate::config::EventSubConfig,
        caller: Arc<HelixCaller>,
        auth: Arc<Auth>,
        metrics: EventSubMetrics,
    ) -> Subscriber {
        let types = all_types().count();
        let (slots, per_slot, max_slots) = match config.transport {
            EventSubTransport::Websocket => (
                vec![Slot::default(); config.websocket_max_connections],
                (config.websocket_max_subscriptions / types).max(1),
                config.websocket_max_connections,
            ),
            _ => (vec![Slot::default()], usize::MAX, 1),
        };
        Subscriber {
            state: Mutex::new(State {
                slots,
                ..State::default()
            }),
            wake: Notify::new(),
            caller,
            auth,
            transport: config.transport,
            concurrency: config.subscribe_concurrency.max(1),
            backoff: Duration::from_millis(config.retry_backoff_ms),
            backoff_max: Duration::from_millis(config.retry_backoff_max_ms),
            per_slot,
            max_slots,
            metrics,
            slots_needed: watch::Sender::new(0),
        }
    }

    /// Wants `login` subscribed (idempotent).
    pub fn want(&self, login: &str) {
        {
            let mut state = lock(&self.state);
            if let Some(channel) = state.channels.get_mut(login) {
                if channel.wanted {
                    return;
                }
                channel.wanted = true;
            } else {
                let mut channel = Channel {
                    user_id: self.auth.directory.id(login),
                    slot: None,
                    wanted: true,
                    entries: all_types().map(|t| (t, Entry::new())).collect(),
                    error: None,
                };
                channel.slot = self.place(&state);
                if channel.slot.is_none() {
                    let why = format!(
                        "websocket transport full: Twitch allows {} connections of {} subscriptions ({} per channel); use transport = \"conduit\" for more channels",
                        self.max_slots,
                        self.per_slot * all_types().count(),
                        all_types().count()
                    );
                    for entry in channel.entries.values_mut() {
                        entry.state = SubState::Refused(why.clone());
                    }
                    channel.error = Some(why);
                }
                state.channels.insert(login.to_string(), channel);
                self.publish_slots(&state);
            }
        }
        self.wake.notify_one();
    }

    /// The slot with room for one more channel (None: the transport is full).
    fn place(&self, state: &State) -> Option<usize> {
        (0..state.slots.len()).find(|slot| {
            state
                .channels
                .values()
                .filter(|c| c.wanted && c.slot == Some(*slot))
                .count()
                < self.per_slot
        })
    }

    fn publish_slots(&self, state: &State) {
        let needed = state
            .channels
            .values()
            .filter(|c| c.wanted)
            .filter_map(|c| c.slot)
            .max()
            .map_or(0, |s| s + 1);
        self.slots_needed.send_if_modified(|n| {
            let grow = needed > *n;
            if grow {
                *n = needed;
            }
            grow
        });
    }

    /// No longer wants `login`: its subscriptions are deleted.
    pub fn unwant(&self, login: &str) {
        {
            let mut state = lock(&self.state);
            let Some(channel) = state.channels.remove(login) else {
                return;
            };
            let ids: Vec<String> = channel.entries.into_values().filter_map(|e| e.id).collect();
            state.deletions.extend(ids);
        }
        self.wake.notify_one();
    }

    /// The slot's target changed (a conduit is ready, a WebSocket session was welcomed or
    /// lost). A new generation on a plain WebSocket slot means its subscriptions died.
    pub fn set_target(&self, slot: usize, target: Option<Target>, generation: u64) {
        {
            let mut state = lock(&self.state);
            let Some(current) = state.slots.get_mut(slot) else {
                return;
            };
            let renewed = current.generation != generation;
            current.target = target;
            current.generation = generation;
            if renewed && self.transport == EventSubTransport::Websocket {
                for channel in state.channels.values_mut().filter(|c| c.slot == Some(slot)) {
                    for entry in channel.entries.values_mut() {
                        if !matches!(entry.state, SubState::Refused(_)) {
                            *entry = Entry::new();
                        }
                    }
                }
            }
        }
        self.wake.notify_one();
    }

    /// Twitch revoked a subscription.
    pub fn revoked(&self, kind: &str, channel_id: &str, status: &str) {
        let mut state = lock(&self.state);
        let retry_at = Instant::now() + self.backoff;
        for channel in state
            .channels
            .values_mut()
            .filter(|c| c.user_id.as_deref() == Some(channel_id))
        {
            let Some(entry) = channel
                .entries
                .iter_mut()
                .find(|(t, _)| **t == kind)
                .map(|(_, e)| e)
            else {
                continue;
            };
            entry.id = None;
            if FINAL_REVOCATIONS.contains(&status) {
                entry.state = SubState::Revoked(status.to_string());
                entry.retry_at = None;
            } else {
                entry.state = SubState::Failed(format!("revoked: {status}"));
                entry.retry_at = Some(retry_at);
            }
            channel.error = Some(format!("{kind} revoked by Twitch: {status}"));
        }
        drop(state);
        self.wake.notify_one();
    }

    /// A webhook subscription answered Twitch's verification: enabled.
    pub fn verified(&self, subscription_id: &str) -> bool {
        let mut state = lock(&self.state);
        for channel in state.channels.values_mut() {
            for entry in channel.entries.values_mut() {
                if entry.id.as_deref() == Some(subscription_id) {
                    entry.state = SubState::Enabled;
                    return true;
                }
            }
        }
        if state.early_verified.len() >= EARLY_VERIFIED {
            state.early_verified.pop_front();
        }
        state.early_verified.push_back(subscription_id.to_string());
        false
    }

    /// Failed entries are tried again now (a grant arrived, a token came back).
    pub fn retry_failed(&self) {
        {
            let mut state = lock(&self.state);
            for channel in state.channels.values_mut() {
                for entry in channel.entries.values_mut() {
                    if matches!(entry.state, SubState::Failed(_) | SubState::Revoked(_)) {
                        entry.state = SubState::Pending;
                        entry.retry_at = None;
                    }
                }
            }
        }
        self.wake.notify_one();
    }

    /// A channel's subscriptions (None when it is not wanted).
    pub fn view(&self, login: &str) -> Option<ChannelSubscriptions> {
        let state = lock(&self.state);
        let channel = state.channels.get(login)?;
        let types: BTreeMap<&'static str, SubState> = channel
            .entries
            .iter()
            .map(|(t, e)| (*t, e.state.clone()))
            .collect();
        let chat_enabled = CHAT_TYPES
            .iter()
            .all(|t| types.get(t) == Some(&SubState::Enabled));
        let failing = types.values().any(|s| {
            matches!(
                s,
                SubState::Failed(_) | SubState::Revoked(_) | SubState::Refused(_)
            )
        });
        let state_name = if chat_enabled {
            "subscribed"
        } else if failing || channel.error.is_some() {
            "failing"
        } else {
            "subscribing"
        };
        Some(ChannelSubscriptions {
            state: state_name,
            types,
            error: channel.error.clone(),
        })
    }

    /// (not ready, degraded) reasons: channels whose chat types are not all enabled; channels
    /// whose stream or raid subscriptions fail.
    pub fn readiness(&self) -> (Vec<String>, Vec<String>) {
        let state = lock(&self.state);
        let mut not_ready = Vec::new();
        let mut degraded = Vec::new();
        for (login, channel) in state.channels.iter().filter(|(_, c)| c.wanted) {
            let chat_missing: Vec<&str> = CHAT_TYPES
                .iter()
                .filter(|t| channel.entries.get(*t).map(|e| &e.state) != Some(&SubState::Enabled))
                .copied()
                .collect();
            if !chat_missing.is_empty() {
                let why = channel
                    .entries
                    .values()
                    .find_map(|e| match &e.state {
                        SubState::Failed(w) | SubState::Revoked(w) | SubState::Refused(w) => {
                            Some(w.clone())
                        }
                        _ => None,
                    })
                    .or_else(|| channel.error.clone())
                    .unwrap_or_else(|| "subscribing".to_string());
                not_ready.push(format!("{login} ({why})"));
            }
            let other_failing = CHANNEL_TYPES.iter().any(|t| {
                matches!(
                    channel.entries.get(t).map(|e| &e.state),
                    Some(SubState::Failed(_) | SubState::Revoked(_) | SubState::Refused(_))
                )
            });
            if other_failing {
                degraded.push(login.clone());
            }
        }
        (not_ready, degraded)
    }

    /// Runs the reconciliation until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut in_flight: JoinSet<Attempt> = JoinSet::new();
        let mut grants = self.auth.onboarding.changes();
        loop {
            if stop.is_cancelled() {
                return;
            }
            self.resolve_ids().await;
            self.delete_parted().await;
            let next_retry = self.start_due(&mut in_flight);
            let sleep_until =
                next_retry.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = grants.changed() => self.retry_failed(),
                _ = tokio::time::sleep_until(sleep_until.into()) => {}
                Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                    if let Ok((login, kind, result)) = done {
                        self.settle(&login, kind, result);
                    }
                }
            }
        }
    }

    /// Looks up the ids of wanted channels that have none yet.
    async fn resolve_ids(&self) {
        let missing: Vec<String> = {
            let state = lock(&self.state);
            if state
                .resolve_failed_at
                .is_some_and(|at| at.elapsed() < self.backoff)
            {
                return;
            }
            state
                .channels
                .iter()
                .filter(|(_, c)| c.wanted && c.user_id.is_none())
                .map(|(l, _)| l.clone())
                .collect()
        };
        if missing.is_empty() && self.auth.bot_user_id().is_some() {
            return;
        }
        let result = self.auth.resolve(&missing).await;
        let mut state = lock(&self.state);
        state.resolve_failed_at = None;
        for login in &missing {
            let id = self.auth.directory.id(login);
            if let Some(channel) = state.channels.get_mut(login) {
                match (&id, &result) {
                    (Some(id), _) => {
                        channel.user_id = Some(id.clone());
                        if channel
                            .error
                            .as_deref()
                            .is_some_and(|e| e.starts_with(LOOKUP))
                        {
                            channel.error = None;
                        }
                    }
                    (None, Ok(())) => {
                        channel.error =
                            Some(format!("{LOOKUP}: Twitch knows no user with this login"))
                    }
                    (None, Err(e)) => channel.error = Some(format!("{LOOKUP}: {e}")),
                }
            }
        }
        if result.is_err() || !missing.iter().all(|l| self.auth.directory.id(l).is_some()) {
            state.resolve_failed_at = Some(Instant::now());
        }
    }

    async fn delete_parted(&self) {
        let ids: Vec<String> = std::mem::take(&mut lock(&self.state).deletions);
        for id in ids {
            if let Err(e) = delete_subscription(&self.caller, &id).await {
                self.metrics.subscription_request("delete_failed");
                tracing::debug!(error = %e, "deleting a parted channel's subscription failed");
            } else {
                self.metrics.subscription_request("deleted");
            }
        }
    }

    /// Starts the due creations (up to the concurrency); when to look again for retries.
    fn start_due(self: &Arc<Self>, in_flight: &mut JoinSet<Attempt>) -> Option<Instant> {
        let now = Instant::now();
        let bot = self.auth.bot_user_id();
        let mut next: Option<Instant> = None;
        let mut state = lock(&self.state);
        let slots = state.slots.clone();
        // Work waiting for an id or a transport is looked at again soon (ids resolve, tokens
        // and sessions arrive on their own time).
        let soon = now + self.backoff.min(Duration::from_secs(1));
        // Every channel's chat types first (they make it ready), then the stream and raid types.
        for chat_pass in [true, false] {
            for (login, channel) in state.channels.iter_mut().filter(|(_, c)| c.wanted) {
                let waiting = channel
                    .entries
                    .values()
                    .any(|e| matches!(e.state, SubState::Pending | SubState::Failed(_)));
                let (Some(user_id), Some(bot)) = (channel.user_id.clone(), bot.clone()) else {
                    if waiting {
                        next = Some(next.map_or(soon, |n| n.min(soon)));
                    }
                    continue;
                };
                let Some(target) = channel
                    .slot
                    .and_then(|s| slots.get(s))
                    .and_then(|s| s.target.clone())
                else {
                    if waiting {
                        next = Some(next.map_or(soon, |n| n.min(soon)));
                    }
                    continue;
                };
                for (kind, entry) in channel.entries.iter_mut() {
                    if CHAT_TYPES.contains(kind) != chat_pass {
                        continue;
                    }
                    let due = match &entry.state {
                        SubState::Pending => true,
                        SubState::Failed(_) => entry.retry_at.is_none_or(|at| at <= now),
                        _ => false,
                    };
                    if !due {
                        if let (SubState::Failed(_), Some(at)) = (&entry.state, entry.retry_at) {
                            next = Some(next.map_or(at, |n| n.min(at)));
                        }
                        continue;
                    }
                    if in_flight.len() >= self.concurrency {
                        // The rest starts when a request in flight finishes.
                        return next;
                    }
                    let Some(body) = subscription_body(kind, &user_id, &bot, &target) else {
                        entry.state = SubState::Refused(format!("unknown type {kind}"));
                        continue;
                    };
                    entry.state = SubState::Creating;
                    let caller = Arc::clone(&self.caller);
                    let (login, kind) = (login.clone(), *kind);
                    in_flight.spawn(async move {
                        let result = create_subscription(&caller, &body)
                            .await
                            .map(|c| (c.id, c.status));
                        (login, kind, result)
                    });
                }
            }
        }
        next
    }

    /// Records the outcome of one creation.
    fn settle(
        &self,
        login: &str,
        kind: &'static str,
        result: Result<(String, String), HelixError>,
    ) {
        let mut state = lock(&self.state);
        let Some(channel) = state.channels.get_mut(login) else {
            // Parted meanwhile: delete what was just created.
            if let Ok((id, _)) = result {
                state.deletions.push(id);
                drop(state);
                self.wake.notify_one();
            }
            return;
        };
        let Some(entry) = channel.entries.get_mut(kind) else {
            return;
        };
        if entry.state != SubState::Creating {
            // The slot's session changed while this was in flight: it is pending again.
            return;
        }
        match result {
            Ok((id, status)) => {
                self.metrics.subscription_request("created");
                let verified = match state.early_verified.iter().position(|v| *v == id) {
                    Some(at) => {
                        state.early_verified.remove(at);
                        true
                    }
                    None => false,
                };
                let Some(entry) = state
                    .channels
                    .get_mut(login)
                    .and_then(|c| c.entries.get_mut(kind))
                else {
                    return;
                };
                entry.id = Some(id);
                entry.failures = 0;
                entry.state = if status == "webhook_callback_verification_pending" && !verified {
                    SubState::Verifying
                } else {
                    SubState::Enabled
                };
                let Some(channel) = state.channels.get_mut(login) else {
                    return;
                };
                if CHAT_TYPES.contains(&kind)
                    && channel
                        .entries
                        .iter()
                        .all(|(t, e)| !CHAT_TYPES.contains(t) || e.state == SubState::Enabled)
                {
                    channel.error = None;
                }
            }
            Err(HelixError::Status { status: 409, .. }) => {
                self.metrics.subscription_request("exists");
                entry.state = SubState::Enabled;
                entry.failures = 0;
            }
            Err(e) => {
                let outcome = match e.status() {
                    Some(status) => format!("refused_{status}"),
                    None => e.label().to_string(),
                };
                self.metrics.subscription_request(&outcome);
                entry.failures = entry.failures.saturating_add(1);
                let delay = self
                    .backoff
                    .saturating_mul(1u32 << entry.failures.saturating_sub(1).min(16))
                    .min(self.backoff_max);
                entry.retry_at = Some(Instant::now() + delay);
                let why = match e.status() {
                    Some(403) => format!("{e} (the broadcaster has not authorised channel:bot and the bot is not a moderator: GET /v1/channels/{login}/authorize)"),
                    _ => e.to_string(),
                };
                tracing::debug!(channel = login, kind, error = %why, "EventSub subscription failed; retrying later");
                channel.error = Some(format!("{kind}: {why}"));
                entry.state = SubState::Failed(why);
            }
        }
    }
}
