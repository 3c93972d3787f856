//! The channel registry: one [`ChannelShared`] per joined channel, shared by the router, the
//! channel's actor, its supervisor and the HTTP endpoints.
//!
//! `ChannelShared` is the channel's public face: its admission gate (a semaphore with one permit
//! per message allowed in flight), its lifecycle state, its counters (atomics: the hot path never
//! takes a lock) and the current actor reference. It outlives any one actor, so a restarted
//! actor picks up where the failed one stopped.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use dashmap::DashMap;
use ractor::ActorRef;
use tokio::sync::{mpsc, Semaphore};

use super::actor::ChannelMsg;
use super::delivery::Delivery;
use crate::engine::Platform;

/// Longest `last_error` kept per channel.
pub const MAX_ERROR_CHARS: usize = 200;

/// Identifies a channel: platform plus its key there (Twitch login, Discord channel id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelKey {
    pub platform: Platform,
    pub name: Arc<str>,
}

impl ChannelKey {
    pub fn twitch(login: &str) -> Self {
        ChannelKey {
            platform: Platform::Twitch,
            name: Arc::from(login),
        }
    }

    /// A Discord channel, keyed by its channel id.
    pub fn discord(channel_id: &str) -> Self {
        ChannelKey {
            platform: Platform::Discord,
            name: Arc::from(channel_id),
        }
    }
}

impl std::fmt::Display for ChannelKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.platform.as_str(), self.name)
    }
}

/// Lifecycle of a channel, as `/v1/channels` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum ChannelStatus {
    /// Its actor is being spawned for the first time.
    Starting = 0,
    /// Its actor is up and handling messages.
    Running = 1,
    /// Its actor failed and is waiting out its backoff before a restart.
    Restarting = 2,
    /// It failed more often than the restart intensity allows; messages are shed.
    Failed = 3,
    /// It is being parted; messages are shed.
    Parting = 4,
}

impl ChannelStatus {
    fn from_u8(v: u8) -> ChannelStatus {
        match v {
            0 => ChannelStatus::Starting,
            1 => ChannelStatus::Running,
            2 => ChannelStatus::Restarting,
            3 => ChannelStatus::Failed,
            _ => ChannelStatus::Parting,
        }
    }
}

/// Why a message was not handled. Every shed message is counted under one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShedReason {
    /// The channel had `capacity` messages in flight (policy `shed`).
    Full,
    /// Waited `block_timeout_ms` without getting a slot (policy `block`).
    Deadline,
    /// The channel's waiting line was full (policy `block`).
    WaitFull,
    /// The message made the channel's handler panic or fail; it is not retried.
    Poisoned,
    /// The channel is marked failed.
    ChannelFailed,
    /// The channel was parted or the service shut down before the message was handled.
    Parted,
}

impl ShedReason {
    pub const ALL: [ShedReason; 6] = [
        ShedReason::Full,
        ShedReason::Deadline,
        ShedReason::WaitFull,
        ShedReason::Poisoned,
        ShedReason::ChannelFailed,
        ShedReason::Parted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ShedReason::Full => "full",
            ShedReason::Deadline => "deadline",
            ShedReason::WaitFull => "wait_full",
            ShedReason::Poisoned => "poisoned",
            ShedReason::ChannelFailed => "channel_failed",
            ShedReason::Parted => "parted",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Per-channel counters. Monotonic, read by `/v1/channels` and `/metrics`.
#[derive(Debug, Default)]
pub struct ChannelCounters {
    /// Messages routed to this channel.
    pub received: AtomicU64,
    /// Messages its handler finished.
    pub processed: AtomicU64,
    shed: [AtomicU64; 6],
    /// Actor failures (each followed by a restart unless the channel was marked failed).
    pub restarts: AtomicU64,
}

impl ChannelCounters {
    pub fn add_shed(&self, reason: ShedReason) {
        self.shed[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn shed(&self, reason: ShedReason) -> u64 {
        self.shed[reason.index()].load(Ordering::Relaxed)
    }

    pub fn shed_total(&self) -> u64 {
        self.shed.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// Everything about one channel that outlives its actor.
#[derive(Debug)]
pub struct ChannelShared {
    pub key: ChannelKey,
    /// One permit per message allowed in flight.
    pub gate: Arc<Semaphore>,
    pub capacity: u32,
    pub counters: ChannelCounters,
    status: AtomicU8,
    /// Sequence number given to the next delivery; orders redelivered messages.
    next_seq: AtomicU64,
    actor: RwLock<Option<ActorRef<ChannelMsg>>>,
    last_error: Mutex<Option<String>>,
    /// Deliveries whose actor died before handling them, by sequence number. Each holds a
    /// permit, so there are never more than `capacity`.
    orphans: Mutex<BTreeMap<u64, Delivery>>,
    orphan_count: AtomicUsize,
    /// `block` policy: the channel's bounded waiting line (see `router`).
    pub(crate) waiting_line: Mutex<Option<mpsc::Sender<super::admission::Waiting>>>,
    /// Messages in the waiting line or being delivered from it. While it is above zero, new
    /// messages queue behind them, so order holds.
    pub(crate) waiting: AtomicUsize,
    /// The channel's rules have timers: the ticker sends it ticks.
    pub wants_ticks: AtomicBool,
    /// A tick is in the mailbox; no second one is sent until it is handled.
    pub tick_pending: AtomicBool,
    /// When the stream went live (unix ms); 0 while offline or unknown. Outlives actors, so a
    /// restarted actor knows at once.
    live_since_ms: AtomicU64,
}

impl ChannelShared {
    pub fn new(key: ChannelKey, capacity: u32) -> Arc<Self> {
        Arc::new(ChannelShared {
            key,
            gate: Arc::new(Semaphore::new(capacity as usize)),
            capacity,
            counters: ChannelCounters::default(),
            status: AtomicU8::new(ChannelStatus::Starting as u8),
            next_seq: AtomicU64::new(0),
            actor: RwLock::new(None),
            last_error: Mutex::new(None),
            orphans: Mutex::new(BTreeMap::new()),
            orphan_count: AtomicUsize::new(0),
            waiting_line: Mutex::new(None),
            waiting: AtomicUsize::new(0),
            wants_ticks: AtomicBool::new(false),
            tick_pending: AtomicBool::new(false),
            live_since_ms: AtomicU64::new(0),
        })
    }

    pub fn status(&self) -> ChannelStatus {
        ChannelStatus::from_u8(self.status.load(Ordering::Acquire))
    }

    pub fn set_status(&self, status: ChannelStatus) {
        self.status.store(status as u8, Ordering::Release);
    }

    /// Messages admitted and not yet finished (mailbox, handler, or waiting for a restart).
    pub fn in_flight(&self) -> u64 {
        (self.capacity as u64).saturating_sub(self.gate.available_permits() as u64)
    }

    /// Sends a timer tick unless one is already pending or the channel has no timers.
    pub fn tick(&self) {
        if !self.wants_ticks.load(Ordering::Relaxed)
            || self.tick_pending.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let sent = self
            .actor()
            .is_some_and(|a| a.send_message(ChannelMsg::Tick).is_ok());
        if !sent {
            self.tick_pending.store(false, Ordering::Release);
        }
    }

    /// Live since (unix ms), if the stream is live.
    pub fn live_since(&self) -> Option<u64> {
        Some(self.live_since_ms.load(Ordering::Acquire)).filter(|ms| *ms > 0)
    }

    /// Records a stream status change and tells the actor.
    pub fn set_live_since(&self, since: Option<u64>) {
        self.live_since_ms
            .store(since.unwrap_or(0), Ordering::Release);
        if let Some(actor) = self.actor() {
            let _ = actor.send_message(ChannelMsg::StreamStatus(since));
        }
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    pub fn actor(&self) -> Option<ActorRef<ChannelMsg>> {
        self.actor.read().ok().and_then(|a| a.clone())
    }

    pub fn set_actor(&self, actor: Option<ActorRef<ChannelMsg>>) {
        if let Ok(mut slot) = self.actor.write() {
            *slot = actor;
        }
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// Records the latest failure, cut to its first line and `MAX_ERROR_CHARS` characters: a
    /// panic message can quote chat, and `/v1/channels` shows it.
    pub fn set_last_error(&self, error: String) {
        let first_line = error.lines().next().unwrap_or_default();
        let mut cut: String = first_line.chars().take(MAX_ERROR_CHARS).collect();
        if cut.len() < error.len() {
            cut.push('…');
        }
        if let Ok(mut slot) = self.last_error.lock() {
            *slot = Some(cut);
        }
    }

    /// Clears `last_error` if it starts with `prefix` (a condition that has passed).
    pub fn clear_last_error_prefix(&self, prefix: &str) {
        if let Ok(mut slot) = self.last_error.lock() {
            if slot.as_deref().is_some_and(|e| e.starts_with(prefix)) {
                *slot = None;
            }
        }
    }

    /// Whether messages should still be kept for a (re)started actor.
    pub fn accepts_orphans(&self) -> bool {
        matches!(
            self.status(),
            ChannelStatus::Starting | ChannelStatus::Running | ChannelStatus::Restarting
        )
    }

    /// Keeps a delivery whose actor died before handling it, for the next actor. Hands it back
    /// when the channel stopped taking orphans (failed or parting) meanwhile: the status is
    /// checked under the same lock `take_orphans_before` uses after setting it, so no orphan can
    /// slip in after the last sweep.
    pub(crate) fn keep_orphan(&self, seq: u64, delivery: Delivery) -> Option<Delivery> {
        let Ok(mut orphans) = self.orphans.lock() else {
            return Some(delivery);
        };
        if !self.accepts_orphans() {
            return Some(delivery);
        }
        orphans.insert(seq, delivery);
        self.orphan_count.store(orphans.len(), Ordering::Release);
        None
    }

    /// Takes every kept delivery, always under the lock (no fast path), so a sweep after a
    /// status change cannot miss an orphan being kept at that moment.
    pub(crate) fn take_all_orphans(&self) -> Vec<Delivery> {
        let Ok(mut orphans) = self.orphans.lock() else {
            return Vec::new();
        };
        let all = std::mem::take(&mut *orphans);
        self.orphan_count.store(0, Ordering::Release);
        drop(orphans);
        all.into_values().collect()
    }

    /// Takes the kept deliveries older than `before` (all with `u64::MAX`), oldest first.
    pub(crate) fn take_orphans_before(&self, before: u64) -> Vec<Delivery> {
        if self.orphan_count.load(Ordering::Acquire) == 0 {
            return Vec::new();
        }
        let Ok(mut orphans) = self.orphans.lock() else {
            return Vec::new();
        };
        let newer = orphans.split_off(&before);
        let older = std::mem::replace(&mut *orphans, newer);
        self.orphan_count.store(orphans.len(), Ordering::Release);
        drop(orphans);
        older.into_values().collect()
    }
}

/// The set of channels, keyed by [`ChannelKey`].
///
/// Rule for the `DashMap`: never hold one of its references across an `.await` or while
/// touching the map again; clone the `Arc` out and drop the reference.
#[derive(Debug, Default)]
pub struct ChannelRegistry {
    channels: DashMap<ChannelKey, Arc<ChannelShared>>,
}

impl ChannelRegistry {
    pub fn new() -> Arc<Self> {
        Arc::new(ChannelRegistry::default())
    }

    pub fn get(&self, key: &ChannelKey) -> Option<Arc<ChannelShared>> {
        self.channels
            .get(key)
            .map(|entry| Arc::clone(entry.value()))
    }

    pub fn insert(&self, shared: Arc<ChannelShared>) {
        self.channels.insert(shared.key.clone(), shared);
    }

    pub fn remove(&self, key: &ChannelKey) -> Option<Arc<ChannelShared>> {
        self.channels.remove(key).map(|(_, shared)| shared)
    }

    /// A snapshot of all channels, sorted by key.
    pub fn all(&self) -> Vec<Arc<ChannelShared>> {
        let mut all: Vec<_> = self
            .channels
            .iter()
            .map(|e| Arc::clone(e.value()))
            .collect();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        all
    }

    /// Calls `f` on every channel, in no particular order, without collecting them.
    /// `f` must not touch the registry itself.
    pub fn for_each(&self, mut f: impl FnMut(&Arc<ChannelShared>)) {
        for entry in self.channels.iter() {
            f(entry.value());
        }
    }

    pub fn len(&self) -> usize {
        self.channels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_error_is_one_bounded_line() {
        let channel = ChannelShared::new(ChannelKey::twitch("c"), 1);
        channel.set_last_error(format!("{}\nsecond line", "é".repeat(1_000)));
        let shown = channel.last_error().expect("set");
        assert_eq!(shown.chars().count(), MAX_ERROR_CHARS + 1);
        assert!(shown.ends_with('…') && !shown.contains('\n'));
        channel.set_last_error("short".into());
        assert_eq!(channel.last_error().as_deref(), Some("short"));
    }
}
