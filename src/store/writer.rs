//! The write-behind writer: one task that owns every change not yet in the database.
//!
//! Channel actors send it [`Change`]s through a bounded queue ([`StoreHandle::submit`]). It
//! coalesces them per key: counters and user stats sum their deltas, fields (a user's login
//! and last-seen time, a warning, the channel's rules) keep the last write. Every
//! `flush_interval_ms`, or once `flush_max_keys` keys are dirty, it hands the dirty set to a
//! flush task and keeps taking changes into a fresh one.
//!
//! **Exactly once.** A flush never writes a delta. For each key it adds the pending delta to the
//! key's *base*, the value the database holds (read once, then kept from our own writes), and
//! writes the absolute result. A write that times out but did land, and is then retried,
//! writes the same value again. Only after a write succeeded does the base move. This relies
//! on one writer per channel (a channel-lease table is there for several instances).
//!
//! **Backpressure.** When the database is slow or down, failed flushes put their changes back
//! (deltas add up again) and retry with backoff. Dirty keys are capped at `max_pending_keys`:
//! at the cap the writer stops reading its queue, the queue fills, and `submit` waits; so the
//! channel actors wait, their admission gates fill, and the router sheds or blocks per its
//! policy, counted per channel. Nothing is dropped silently.
//!
//! **Recovery.** [`StoreHandle::load`] answers a starting channel actor with what the database
//! has plus what is still pending here, so an actor that crashed loses nothing. Loads and
//! flushes never overlap (a load would otherwise see a half-applied flush).
//!
//! **Retention.** User stats rows are written with `store.user_stats_ttl_s`; a cached base
//! older than that is dropped and read again (the row may have expired: its old counts must
//! not come back on the next write).
//!
//! **Deleting a user** ([`StoreHandle::forget_user`]): the user's pending changes are dropped,
//! the caller clears its in-memory copies, then (no flush in flight) what arrived meanwhile is
//! dropped too and the store deletes the user's rows while no flush or load runs. Until that
//! ends, every change about the user is dropped as it arrives (counted) and loads leave the
//! user's warnings out, so neither a flush racing the delete nor a restarting channel brings
//! the data back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::panic::AssertUnwindSafe;

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::model::{
    counter, decode_rules, on_platform, rules_diff, rules_to_rows, ChannelWrite, ForgottenRows,
    ModerationEntry, RowError, RuleKey, RuleRow, StoredChannel,
};
use super::model::{UserRow, WarningRow};
use super::{StateStore, StoreError, StoreResult};
use crate::config::StoreConfig;
use crate::engine::ChannelRules;

/// One change a channel actor hands the writer.
#[derive(Debug, Clone)]
pub enum Change {
    /// A channel counter (see [`counter`]) went up or down by `delta`.
    Counter { name: String, delta: i64 },
    /// A counter is gone (a removed command's `uses:<name>`): its row is deleted, and deltas
    /// after this change count from zero.
    CounterDeleted { name: String },
    /// A user wrote a message at `at_ms`: the channel's message count and the user's stats
    /// go up (one change per chat message, the common case).
    UserMessage {
        user_id: String,
        login: String,
        at_ms: i64,
    },
    /// A user was warned by a filter.
    UserWarned { user_id: String },
    /// A live filter warning (last write wins).
    Warning(WarningRow),
    /// The channel's rules were edited from `base` (the version the edit was made on) to
    /// `rules`. Stored item by item: the items the edit added, changed or removed are written,
    /// every other stored item stays, so an edit made on rules that were not loaded from the
    /// store (a channel that could not load its state yet, an idle channel's rules file)
    /// never deletes stored items it did not know. A channel with no stored rules at all gets
    /// `rules` whole.
    Rules {
        base: Arc<ChannelRules>,
        rules: Arc<ChannelRules>,
    },
    /// A moderation action for the log.
    Moderation(ModerationEntry),
}

/// A rules edit: the version it was made on and the new rules.
#[derive(Debug, Clone)]
pub struct RulesEdit {
    pub base: Arc<ChannelRules>,
    pub rules: Arc<ChannelRules>,
}

/// The writer's settings (from `[store]`).
#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub flush_interval: Duration,
    /// User stats (the bulk: one row per active chatter) are flushed this often, or with
    /// everything else once `flush_max_keys` keys are dirty.
    pub user_flush_interval: Duration,
    pub flush_max_keys: usize,
    pub max_pending_keys: usize,
    pub queue_capacity: usize,
    pub retry_backoff: Duration,
    pub retry_backoff_max: Duration,
    pub max_lag: Duration,
    pub moderation_ttl_s: u32,
    /// Lifetime of written user stats rows (0 = none).
    pub user_ttl_s: u32,
    pub max_cached_users: usize,
    /// Channels flushed at once.
    pub flush_concurrency: usize,
}

impl WriterConfig {
    pub fn from_config(c: &StoreConfig) -> WriterConfig {
        WriterConfig {
            flush_interval: Duration::from_millis(c.flush_interval_ms),
            user_flush_interval: Duration::from_millis(
                c.user_stats_flush_interval_ms.max(c.flush_interval_ms),
            ),
            flush_max_keys: c.flush_max_keys,
            max_pending_keys: c.max_pending_keys,
            queue_capacity: c.queue_capacity,
            retry_backoff: Duration::from_millis(c.retry_backoff_ms),
            retry_backoff_max: Duration::from_millis(c.retry_backoff_max_ms),
            max_lag: Duration::from_millis(c.max_lag_ms),
            moderation_ttl_s: c.moderation_log_ttl_s,
            user_ttl_s: c.user_stats_ttl_s,
            max_cached_users: c.max_cached_users,
            flush_concurrency: 16,
        }
    }
}

/// What the writer shows the rest of the service: metrics, `/readyz`.
#[derive(Debug)]
pub struct StoreStatus {
    pub backend: &'static str,
    /// Changes taken from channel actors.
    pub changes_received: AtomicU64,
    /// Rows written (or deleted) in the database.
    pub rows_written: AtomicU64,
    pub flushes_ok: AtomicU64,
    pub flushes_failed: AtomicU64,
    /// Times a channel actor had to wait for room in the writer's queue (backpressure).
    pub submit_waits: AtomicU64,
    /// Changes refused because the writer had stopped (counted, never silent).
    pub changes_refused: AtomicU64,
    /// Stored state loads that failed or timed out (the channel ran without, then retried).
    pub load_failures: AtomicU64,
    /// Changes about a user dropped because that user's data was being deleted.
    pub changes_forgotten: AtomicU64,
    /// Dirty keys held in memory (pending plus in flight).
    pub pending_keys: AtomicU64,
    /// Age of the oldest change not yet in the database, ms.
    pub lag_ms: AtomicU64,
    /// Whether the last flush failed.
    pub failing: AtomicBool,
    /// Whether the writer stopped taking changes because `max_pending_keys` was reached.
    pub full: AtomicBool,
    pub last_error: Mutex<Option<String>>,
    /// Flush durations, microseconds.
    pub flush_latency_us: Mutex<hdrhistogram::Histogram<u64>>,
    max_lag_ms: u64,
}

impl StoreStatus {
    fn new(backend: &'static str, max_lag: Duration) -> StoreStatus {
        StoreStatus {
            backend,
            changes_received: AtomicU64::new(0),
            rows_written: AtomicU64::new(0),
            flushes_ok: AtomicU64::new(0),
            flushes_failed: AtomicU64::new(0),
            submit_waits: AtomicU64::new(0),
            changes_refused: AtomicU64::new(0),
            load_failures: AtomicU64::new(0),
            changes_forgotten: AtomicU64::new(0),
            pending_keys: AtomicU64::new(0),
            lag_ms: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            full: AtomicBool::new(false),
            last_error: Mutex::new(None),
            flush_latency_us: Mutex::new(
                hdrhistogram::Histogram::new_with_bounds(1, 600_000_000, 3)
                    .unwrap_or_else(|_| hdrhistogram::Histogram::new(3).expect("3 sigfig")),
            ),
            max_lag_ms: u64::try_from(max_lag.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// Why the store is degraded, if it is (for `/readyz`): chat is still handled meanwhile.
    pub fn degraded_reason(&self) -> Option<String> {
        let lag = self.lag_ms.load(Ordering::Relaxed);
        let failing = self.failing.load(Ordering::Relaxed);
        if !failing && lag <= self.max_lag_ms && !self.full.load(Ordering::Relaxed) {
            return None;
        }
        let error = self
            .last_error
            .lock()
            .ok()
            .and_then(|e| e.clone())
            .unwrap_or_default();
        let error: String = error.chars().take(200).collect();
        Some(format!(
            "store ({}) behind: {} keys pending, oldest {} ms{}{}",
            self.backend,
            self.pending_keys.load(Ordering::Relaxed),
            lag,
            if failing { "; last flush failed: " } else { "" },
            if failing { error.as_str() } else { "" },
        ))
    }

    fn set_error(&self, error: Option<String>) {
        self.failing.store(error.is_some(), Ordering::Relaxed);
        if let Ok(mut last) = self.last_error.lock() {
            if error.is_some() {
                *last = error;
            }
        }
    }
}

/// A flush request not yet tied to a flush.
const UNASSIGNED: u64 = 0;

/// One handled event's changes for one channel.
struct ChangeBatch {
    channel: Arc<str>,
    changes: Vec<Change>,
}

enum Control {
    Load {
        channel: Arc<str>,
        reply: oneshot::Sender<StoreResult<StoredChannel>>,
    },
    /// Flush everything pending now; reply when nothing is pending or a flush failed.
    Flush {
        reply: oneshot::Sender<StoreResult<()>>,
    },
    /// Take everything queued, flush until nothing is pending or `deadline`, then stop.
    Shutdown {
        deadline: Instant,
        reply: oneshot::Sender<usize>,
    },
    /// Deleting a user's data, step 1: drop what is pending about them; from now until step 2
    /// ends, changes about them are dropped and loads leave their warnings out.
    ForgetBegin {
        user: ForgetKey,
        reply: oneshot::Sender<ForgottenRows>,
    },
    /// Step 2 (after the channel actors cleared theirs): once no flush is in flight, drop what
    /// came meanwhile and delete the user's rows in the store, no flush or load running.
    ForgetCommit {
        user: ForgetKey,
        reply: oneshot::Sender<StoreResult<ForgetReport>>,
    },
}

/// Whose data is deleted: a user id on one platform (`twitch`, `discord`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ForgetKey {
    platform: String,
    user_id: String,
}

/// What deleting a user's data removed from the writer and the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ForgetReport {
    /// Rows deleted in the store.
    pub stored: ForgottenRows,
    /// Changes dropped before they were written (per kind: user stats keys, warnings, log
    /// entries).
    pub pending: ForgottenRows,
}

/// Sends a begun deletion's second step if [`StoreHandle::forget_user`] is dropped before it
/// did (nobody waits for the answer then).
struct CommitOnDrop<'a> {
    control: &'a mpsc::Sender<Control>,
    user: Option<ForgetKey>,
}

impl Drop for CommitOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(user) = self.user.take() {
            let (reply, _) = oneshot::channel();
            if self
                .control
                .try_send(Control::ForgetCommit { user, reply })
                .is_err()
            {
                tracing::error!("a dropped user deletion could not be completed (writer stopped or its control queue full)");
            }
        }
    }
}

/// A store deletion running, and who waits for it.
struct RunningForget {
    user: ForgetKey,
    pending: ForgottenRows,
    reply: oneshot::Sender<StoreResult<ForgetReport>>,
    task: JoinHandle<StoreResult<ForgottenRows>>,
}

/// The channel actors' and the service's handle on the writer.
#[derive(Clone)]
pub struct StoreHandle {
    data: mpsc::Sender<ChangeBatch>,
    control: mpsc::Sender<Control>,
    store: Arc<dyn StateStore>,
    pub status: Arc<StoreStatus>,
}

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreHandle({})", self.status.backend)
    }
}

impl StoreHandle {
    /// Starts the writer task over `store`.
    pub fn start(
        store: Arc<dyn StateStore>,
        config: WriterConfig,
    ) -> (StoreHandle, JoinHandle<()>) {
        let (data_tx, data_rx) = mpsc::channel(config.queue_capacity.max(1));
        let (control_tx, control_rx) = mpsc::channel(1024);
        let status = Arc::new(StoreStatus::new(store.backend(), config.max_lag));
        let writer = Writer {
            store: Arc::clone(&store),
            status: Arc::clone(&status),
            pending: HashMap::new(),
            pending_keys: 0,
            pending_since: None,
            in_flight: None,
            loads: FuturesUnordered::new(),
            deferred_loads: Vec::new(),
            load_replies: HashMap::new(),
            flush_waiters: Vec::new(),
            flushes_started: 0,
            forgetting: HashMap::new(),
            forget_waiting: Vec::new(),
            forget_running: None,
            bases: HashMap::new(),
            user_bases: HashMap::new(),
            backoff: config.retry_backoff,
            next_attempt: Instant::now(),
            last_flush: Instant::now(),
            last_user_flush: Instant::now(),
            users_since: None,
            shutdown: None,
            config,
        };
        let task = tokio::spawn(writer.run(data_rx, control_rx));
        let handle = StoreHandle {
            data: data_tx,
            control: control_tx,
            store,
            status,
        };
        (handle, task)
    }

    /// The store behind the writer (for reads that need no pending overlay).
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    /// Hands one event's changes to the writer, waiting while its queue is full.
    pub async fn submit(&self, channel: &Arc<str>, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        let n = changes.len() as u64;
        let batch = ChangeBatch {
            channel: Arc::clone(channel),
            changes,
        };
        let result = match self.data.try_send(batch) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(batch)) => {
                self.status.submit_waits.fetch_add(1, Ordering::Relaxed);
                self.data.send(batch).await.map_err(|_| ())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
        };
        if result.is_err() {
            self.status.changes_refused.fetch_add(n, Ordering::Relaxed);
            tracing::error!(%channel, changes = n, "store writer stopped; changes not stored");
        }
    }

    /// The channel's stored state plus everything still pending in the writer.
    pub async fn load(&self, channel: &Arc<str>) -> StoreResult<StoredChannel> {
        let (reply, rx) = oneshot::channel();
        let request = Control::Load {
            channel: Arc::clone(channel),
            reply,
        };
        self.control
            .send(request)
            .await
            .map_err(|_| StoreError::Unavailable("store writer stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("store writer stopped".into()))?
    }

    /// Flushes everything pending now (tests, `replay`); fails if a flush fails.
    pub async fn flush(&self) -> StoreResult<()> {
        let (reply, rx) = oneshot::channel();
        self.control
            .send(Control::Flush { reply })
            .await
            .map_err(|_| StoreError::Unavailable("store writer stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("store writer stopped".into()))?
    }

    /// Deletes everything kept about `user_id` on `platform` (`twitch`, `discord`): what is
    /// pending here, what the store holds, and, through `in_memory` (run between the two
    /// steps, see the module doc), what the caller holds (the channel actors' caches). Returns
    /// `in_memory`'s result and the report, or why the store part failed.
    pub async fn forget_user<T>(
        &self,
        platform: &str,
        user_id: &str,
        in_memory: impl std::future::Future<Output = T>,
    ) -> (T, StoreResult<ForgetReport>) {
        let user = ForgetKey {
            platform: platform.to_string(),
            user_id: user_id.to_string(),
        };
        let stopped = || StoreError::Unavailable("store writer stopped".into());
        let (reply, begun) = oneshot::channel();
        let begin = Control::ForgetBegin {
            user: user.clone(),
            reply,
        };
        let began = match self.control.send(begin).await {
            Ok(()) => begun.await.map_err(|_| stopped()),
            Err(_) => Err(stopped()),
        };
        // Begun, the delete must happen even if this future is dropped half-way: otherwise the
        // writer would drop the user's changes for good.
        let mut guard = CommitOnDrop {
            control: &self.control,
            user: began.is_ok().then(|| user.clone()),
        };
        let held = in_memory.await;
        let mut before = match began {
            Ok(before) => before,
            Err(e) => return (held, Err(e)),
        };
        let (reply, committed) = oneshot::channel();
        guard.user = None;
        if self
            .control
            .send(Control::ForgetCommit { user, reply })
            .await
            .is_err()
        {
            return (held, Err(stopped()));
        }
        let report = match committed.await {
            Ok(Ok(mut report)) => {
                before.add(std::mem::take(&mut report.pending));
                report.pending = before;
                Ok(report)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(stopped()),
        };
        (held, report)
    }

    /// Flushes everything (retrying) until nothing is pending or `timeout` passes, then stops
    /// the writer. Returns the keys left unwritten (0 = everything is stored).
    pub async fn shutdown(&self, timeout: Duration) -> usize {
        let (reply, rx) = oneshot::channel();
        let request = Control::Shutdown {
            deadline: Instant::now() + timeout,
            reply,
        };
        if self.control.send(request).await.is_err() {
            return self.status.pending_keys.load(Ordering::Relaxed) as usize;
        }
        rx.await
            .unwrap_or_else(|_| self.status.pending_keys.load(Ordering::Relaxed) as usize)
    }
}

/// Changes of one user, coalesced.
#[derive(Debug, Clone, Default)]
struct UserDelta {
    login: String,
    last_seen_ms: i64,
    messages: i64,
    warnings: i64,
}

/// A counter's coalesced change: `delta` on top of the stored value, or on top of zero when
/// the counter was deleted (`reset`; a reset with no delta deletes the row).
#[derive(Debug, Clone, Copy, Default)]
struct CounterDelta {
    delta: i64,
    reset: bool,
}

/// Coalesced rules edits: item by item what the edits changed (`Some(body)`: store it,
/// `None`: delete it), and the newest rules whole (written whole when nothing is stored).
#[derive(Debug, Clone)]
struct RulesPending {
    items: BTreeMap<RuleKey, Option<String>>,
    latest: Arc<ChannelRules>,
}

impl RulesPending {
    /// `rows` with these edits on top (`rows` empty: nothing stored, so the newest whole).
    fn apply_to(&self, rows: &mut Vec<RuleRow>) -> Result<(), RowError> {
        if rows.is_empty() {
            *rows = rules_to_rows(&self.latest)?;
            return Ok(());
        }
        rows.retain(|r| !self.items.contains_key(&(r.kind.clone(), r.name.clone())));
        for ((kind, name), item) in &self.items {
            if let Some(body) = item {
                rows.push(RuleRow {
                    kind: kind.clone(),
                    name: name.clone(),
                    body: body.clone(),
                });
            }
        }
        rows.sort();
        Ok(())
    }
}

/// A channel's coalesced changes.
#[derive(Debug, Default, Clone)]
struct Pending {
    counters: HashMap<String, CounterDelta>,
    users: HashMap<String, UserDelta>,
    warnings: HashMap<(String, String), i64>,
    rules: Option<RulesPending>,
    moderation: Vec<ModerationEntry>,
}

impl Pending {
    /// Whether chat stats (per-user stats, the message count) are pending: they wait for
    /// their own interval.
    fn has_stats(&self) -> bool {
        !self.users.is_empty() || self.counters.contains_key(counter::MESSAGES)
    }

    fn keys(&self) -> usize {
        self.counters.len()
            + self.users.len()
            + self.warnings.len()
            + usize::from(self.rules.is_some())
            + self.moderation.len()
    }

    /// Adds one change; returns how many new keys it made dirty.
    fn apply(&mut self, change: Change) -> usize {
        let before = self.keys();
        match change {
            Change::Counter { name, delta } => {
                self.counters.entry(name).or_default().delta += delta
            }
            Change::CounterDeleted { name } => {
                let reset = CounterDelta {
                    delta: 0,
                    reset: true,
                };
                self.counters.insert(name, reset);
            }
            Change::UserMessage {
                user_id,
                login,
                at_ms,
            } => {
                match self.counters.get_mut(counter::MESSAGES) {
                    Some(count) => count.delta += 1,
                    None => {
                        let one = CounterDelta {
                            delta: 1,
                            reset: false,
                        };
                        self.counters.insert(counter::MESSAGES.to_string(), one);
                    }
                }
                let user = self.users.entry(user_id).or_default();
                user.messages += 1;
                user.login = login;
                user.last_seen_ms = user.last_seen_ms.max(at_ms);
            }
            Change::UserWarned { user_id } => {
                self.users.entry(user_id).or_default().warnings += 1;
            }
            Change::Warning(w) => {
                self.warnings.insert((w.filter, w.user_id), w.expires_ms);
            }
            Change::Rules { base, rules } => self.edit_rules(&base, rules),
            Change::Moderation(entry) => self.moderation.push(entry),
        }
        self.keys() - before
    }

    /// Folds one rules edit into the pending item changes.
    fn edit_rules(&mut self, base: &ChannelRules, rules: Arc<ChannelRules>) {
        let (upserts, removed) = match rules_diff(base, &rules) {
            Ok(diff) => diff,
            Err(e) => {
                // Rules are plain data and always serialize; should one not, say so loudly.
                tracing::error!(error = %e, "a rules edit could not be stored");
                return;
            }
        };
        let pending = self.rules.get_or_insert_with(|| RulesPending {
            items: BTreeMap::new(),
            latest: Arc::clone(&rules),
        });
        for row in upserts {
            pending.items.insert((row.kind, row.name), Some(row.body));
        }
        for key in removed {
            pending.items.insert(key, None);
        }
        pending.latest = rules;
    }

    /// Drops everything about `user_id`; returns what went (user stats keys, warnings, log
    /// entries).
    fn forget_user(&mut self, user_id: &str) -> ForgottenRows {
        let mut gone = ForgottenRows::default();
        if self.users.remove(user_id).is_some() {
            gone.user_stats = 1;
        }
        let warnings = self.warnings.len();
        self.warnings.retain(|(_, user), _| user != user_id);
        gone.warnings = (warnings - self.warnings.len()) as u64;
        let log = self.moderation.len();
        self.moderation.retain(|e| e.user_id != user_id);
        gone.moderation_log = (log - self.moderation.len()) as u64;
        gone
    }

    /// Puts back changes of a failed flush (`older`) under the ones made since (`self`):
    /// deltas add up, fields keep the newer value.
    fn merge_older(&mut self, older: Pending) {
        for (name, old) in older.counters {
            match self.counters.get_mut(&name) {
                // Deleted since: what came before the deletion is gone.
                Some(newer) if newer.reset => {}
                Some(newer) => {
                    newer.delta += old.delta;
                    newer.reset = old.reset;
                }
                None => {
                    self.counters.insert(name, old);
                }
            }
        }
        for (id, old) in older.users {
            let user = self.users.entry(id).or_default();
            user.messages += old.messages;
            user.warnings += old.warnings;
            if user.login.is_empty() {
                user.login = old.login;
            }
            user.last_seen_ms = user.last_seen_ms.max(old.last_seen_ms);
        }
        for (key, expires) in older.warnings {
            self.warnings.entry(key).or_insert(expires);
        }
        match (&mut self.rules, older.rules) {
            (None, older) => self.rules = older,
            (Some(newer), Some(older)) => {
                for (key, item) in older.items {
                    newer.items.entry(key).or_insert(item);
                }
            }
            (Some(_), None) => {}
        }
        let newer = std::mem::take(&mut self.moderation);
        self.moderation = older.moderation;
        self.moderation.extend(newer);
    }

    /// `stored` with these changes on top (what a restarting actor starts from).
    fn overlay(&self, stored: &mut StoredChannel) -> Result<(), RowError> {
        for (name, change) in &self.counters {
            if change.reset && change.delta == 0 {
                stored.counters.remove(name);
                continue;
            }
            let value = stored.counters.entry(name.clone()).or_insert(0);
            if change.reset {
                *value = 0;
            }
            *value += change.delta;
        }
        for ((filter, user_id), expires_ms) in &self.warnings {
            stored
                .warnings
                .retain(|w| !(w.filter == *filter && w.user_id == *user_id));
            stored.warnings.push(WarningRow {
                filter: filter.clone(),
                user_id: user_id.clone(),
                expires_ms: *expires_ms,
            });
        }
        stored.warnings.sort();
        if let Some(rules) = &self.rules {
            rules.apply_to(&mut stored.rules)?;
        }
        Ok(())
    }
}

/// What the database holds for a channel, as far as the writer needs it: counter values and
/// the rules items present (to delete the ones an edit removed).
#[derive(Debug, Clone, Default)]
struct ChannelBase {
    counters: BTreeMap<String, i64>,
    rule_keys: HashSet<(String, String)>,
}

impl ChannelBase {
    fn from_stored(stored: &StoredChannel) -> ChannelBase {
        ChannelBase {
            counters: stored.counters.clone(),
            rule_keys: stored
                .rules
                .iter()
                .map(|r| (r.kind.clone(), r.name.clone()))
                .collect(),
        }
    }
}

/// A channel's flush, done or failed.
struct ChannelFlushed {
    channel: Arc<str>,
    /// The base after the write (or the one read before a failed write, if any).
    base: Option<ChannelBase>,
    users: Vec<UserRow>,
    rows: u64,
    /// On failure: why (the writer puts the job's changes back).
    failed: Option<StoreError>,
}

struct InFlight {
    since: Instant,
    keys: usize,
    task: JoinHandle<Vec<ChannelFlushed>>,
    started: Instant,
    /// This flush's number (see `flushes_started`).
    number: u64,
    /// What each channel's job carries, and how far it got: put back if the job fails, or if
    /// the task dies.
    jobs: HashMap<Arc<str>, (Arc<Pending>, ProgressSlot)>,
}

/// What a finished flush task gave back.
struct FlushOutcome {
    results: Vec<ChannelFlushed>,
    started: Instant,
    since: Instant,
    number: u64,
    jobs: HashMap<Arc<str>, (Arc<Pending>, ProgressSlot)>,
    /// The task itself failed: what its jobs read is known from their progress only.
    task_error: Option<String>,
}

type LoadFuture = futures::future::BoxFuture<'static, (Arc<str>, StoreResult<StoredChannel>)>;

struct Writer {
    store: Arc<dyn StateStore>,
    config: WriterConfig,
    status: Arc<StoreStatus>,
    pending: HashMap<Arc<str>, Pending>,
    pending_keys: usize,
    /// When the oldest change in `pending` arrived.
    pending_since: Option<Instant>,
    in_flight: Option<InFlight>,
    loads: FuturesUnordered<LoadFuture>,
    /// Loads waiting for a flush to end, and their reply ports (by channel).
    deferred_loads: Vec<(Arc<str>, oneshot::Sender<StoreResult<StoredChannel>>)>,
    load_replies: HashMap<Arc<str>, Vec<oneshot::Sender<StoreResult<StoredChannel>>>>,
    /// Flush requests and the number of the flush that answers them (the first one started
    /// after the request).
    flush_waiters: Vec<(u64, oneshot::Sender<StoreResult<()>>)>,
    flushes_started: u64,
    /// Users whose data is being deleted: how many requests for each, and what was dropped
    /// about them as it arrived (for the answer).
    forgetting: HashMap<ForgetKey, (usize, ForgottenRows)>,
    /// Deletions waiting for the in-flight flush to end, oldest first.
    forget_waiting: Vec<(ForgetKey, oneshot::Sender<StoreResult<ForgetReport>>)>,
    forget_running: Option<RunningForget>,
    bases: HashMap<Arc<str>, ChannelBase>,
    /// Known stored rows of users, and when the flush that read or wrote them started (under a
    /// user stats TTL an older one may have expired in the store).
    user_bases: HashMap<(Arc<str>, String), (UserRow, Instant)>,
    backoff: Duration,
    next_attempt: Instant,
    last_flush: Instant,
    last_user_flush: Instant,
    /// When the oldest pending user-stats change arrived.
    users_since: Option<Instant>,
    shutdown: Option<(Instant, oneshot::Sender<usize>)>,
}

/// What a flush takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlushScope {
    /// Everything pending.
    All,
    /// Everything but the chat stats: per-user stats and each channel's message count wait for
    /// `user_flush_interval`.
    AllButUsers,
}

impl Writer {
    async fn run(
        mut self,
        mut data: mpsc::Receiver<ChangeBatch>,
        mut control: mpsc::Receiver<Control>,
    ) {
        let tick = self.config.flush_interval.min(Duration::from_millis(50));
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let accepting = self.accepting();
            self.status.full.store(!accepting, Ordering::Relaxed);
            tokio::select! {
                biased;
                Some(request) = control.recv() => self.on_control(request, &mut data),
                flushed = wait_flush(&mut self.in_flight) => self.on_flushed(flushed),
                (running, result) = wait_forget(&mut self.forget_running) => {
                    self.on_forgotten(running, result);
                }
                Some((channel, result)) = self.loads.next() => self.on_loaded(channel, result),
                Some(batch) = data.recv(), if accepting && self.shutdown.is_none() => {
                    self.merge(batch);
                }
                _ = ticker.tick() => {}
            }
            self.assign_flush_waiters(&mut data);
            self.maybe_start_forget(&mut data);
            self.maybe_flush();
            self.start_deferred_loads();
            self.answer_idle_flush_waiters(&data);
            self.publish();
            if self.finished_shutdown(&mut data) {
                return;
            }
        }
    }

    /// Gives flush requests the number of the flush that will answer them, once the changes
    /// queued before them are all taken in (until then they push flushes to make room).
    fn assign_flush_waiters(&mut self, data: &mut mpsc::Receiver<ChangeBatch>) {
        if !self.flush_waiters.iter().any(|(n, _)| *n == UNASSIGNED) {
            return;
        }
        self.drain_queue(data);
        if data.is_empty() {
            let next = self.flushes_started + 1;
            for (number, _) in &mut self.flush_waiters {
                if *number == UNASSIGNED {
                    *number = next;
                }
            }
        }
    }

    /// Whether there is room for more changes: pending and in-flight keys under the bound.
    fn accepting(&self) -> bool {
        let in_flight = self.in_flight.as_ref().map_or(0, |f| f.keys);
        self.pending_keys + in_flight < self.config.max_pending_keys
    }

    fn merge(&mut self, batch: ChangeBatch) {
        self.status
            .changes_received
            .fetch_add(batch.changes.len() as u64, Ordering::Relaxed);
        let channel = Arc::clone(&batch.channel);
        let pending = self.pending.entry(batch.channel).or_default();
        for change in batch.changes {
            if matches!(
                change,
                Change::UserMessage { .. } | Change::UserWarned { .. }
            ) {
                self.users_since.get_or_insert_with(Instant::now);
            }
            self.pending_keys += pending.apply(change);
        }
        self.pending_since.get_or_insert_with(Instant::now);
        if !self.forgetting.is_empty() {
            // Changes about a user being deleted go as they come (the request's answer counts
            // them among the pending ones).
            let users: Vec<ForgetKey> = self
                .forgetting
                .keys()
                .filter(|k| on_platform(&channel, &k.platform))
                .cloned()
                .collect();
            for user in users {
                let gone = self.scrub_channel(&user, &channel);
                if let Some((_, dropped)) = self.forgetting.get_mut(&user) {
                    dropped.add(gone);
                }
            }
        }
    }

    /// Drops what is pending about `user` in one channel (cheap: every batch merged while a
    /// delete runs goes through it); returns what went.
    fn scrub_channel(&mut self, user: &ForgetKey, channel: &Arc<str>) -> ForgottenRows {
        let Some(pending) = self.pending.get_mut(channel) else {
            return ForgottenRows::default();
        };
        let before = pending.keys();
        let mut gone = pending.forget_user(&user.user_id);
        let left = pending.keys();
        self.pending_keys -= before - left;
        if left == 0 {
            self.pending.remove(channel);
        }
        if self.pending_keys == 0 {
            self.pending_since = None;
            self.users_since = None;
        }
        if gone.total() > 0 {
            gone.channels.insert(channel.to_string());
        }
        self.status
            .changes_forgotten
            .fetch_add(gone.total(), Ordering::Relaxed);
        gone
    }

    /// Drops what is pending about `user` in every channel of the user's platform, and the
    /// user's cached bases; returns what went.
    fn scrub(&mut self, user: &ForgetKey) -> ForgottenRows {
        let mut gone = ForgottenRows::default();
        for (channel, pending) in self.pending.iter_mut() {
            if !on_platform(channel, &user.platform) {
                continue;
            }
            let before = pending.keys();
            let mut removed = pending.forget_user(&user.user_id);
            self.pending_keys -= before - pending.keys();
            if removed.total() > 0 {
                removed.channels.insert(channel.to_string());
                gone.add(removed);
            }
        }
        self.pending.retain(|_, p| p.keys() > 0);
        if self.pending_keys == 0 {
            self.pending_since = None;
        }
        if !self.pending.values().any(Pending::has_stats) {
            self.users_since = None;
        }
        self.user_bases.retain(|(channel, id), _| {
            !(id == &user.user_id && on_platform(channel, &user.platform))
        });
        self.status
            .changes_forgotten
            .fetch_add(gone.total(), Ordering::Relaxed);
        gone
    }

    /// Starts the oldest waiting deletion once no flush is in flight and no load runs.
    fn maybe_start_forget(&mut self, data: &mut mpsc::Receiver<ChangeBatch>) {
        if self.forget_running.is_some()
            || self.in_flight.is_some()
            || !self.loads.is_empty()
            || self.forget_waiting.is_empty()
        {
            return;
        }
        let (user, reply) = self.forget_waiting.remove(0);
        // What the channel actors sent before they cleared their caches is queued: take it
        // (and drop it) first.
        self.drain_queue(data);
        let mut pending = self.scrub(&user);
        if let Some((_, dropped)) = self.forgetting.get_mut(&user) {
            pending.add(std::mem::take(dropped));
        }
        let store = Arc::clone(&self.store);
        let (platform, user_id) = (user.platform.clone(), user.user_id.clone());
        let task = tokio::spawn(async move { store.forget_user(&platform, &user_id).await });
        self.forget_running = Some(RunningForget {
            user,
            pending,
            reply,
            task,
        });
    }

    /// A store deletion ended: the user's changes are taken again from now on.
    fn on_forgotten(&mut self, running: RunningForget, result: StoreResult<ForgottenRows>) {
        let RunningForget {
            user,
            pending,
            reply,
            ..
        } = running;
        if let Some((n, _)) = self.forgetting.get_mut(&user) {
            *n -= 1;
            if *n == 0 {
                self.forgetting.remove(&user);
            }
        }
        if let Err(e) = &result {
            tracing::warn!(platform = %user.platform, error = %e, "deleting a user's stored data failed");
        }
        let _ = reply.send(result.map(|stored| ForgetReport { stored, pending }));
    }

    /// Takes the batches already queued (they were sent before whatever asked for this), as
    /// long as there is room: at the bound they stay queued (a load then misses them in its
    /// view; the stored values stay exact, being written from the writer's bases).
    fn drain_queue(&mut self, data: &mut mpsc::Receiver<ChangeBatch>) {
        while self.accepting() {
            let Ok(batch) = data.try_recv() else {
                return;
            };
            self.merge(batch);
        }
    }

    fn on_control(&mut self, request: Control, data: &mut mpsc::Receiver<ChangeBatch>) {
        match request {
            Control::Load { channel, reply } => {
                // The requester's earlier changes are in the queue: take them first. The load
                // starts in this turn's step (`start_deferred_loads`), after a due flush.
                self.drain_queue(data);
                self.deferred_loads.push((channel, reply));
            }
            Control::Flush { reply } => {
                self.drain_queue(data);
                if self.pending_keys == 0 && self.in_flight.is_none() && data.is_empty() {
                    let _ = reply.send(Ok(()));
                } else {
                    // Answered by the first flush that starts once everything queued before
                    // the request is taken in (see `assign_flush_waiters`).
                    self.flush_waiters.push((UNASSIGNED, reply));
                    self.next_attempt = Instant::now();
                }
            }
            Control::ForgetBegin { user, reply } => {
                self.drain_queue(data);
                let gone = self.scrub(&user);
                self.forgetting.entry(user).or_default().0 += 1;
                let _ = reply.send(gone);
            }
            Control::ForgetCommit { user, reply } => {
                self.forget_waiting.push((user, reply));
            }
            Control::Shutdown { deadline, reply } => {
                // Closed first: a change sent from now on is refused and counted, never
                // accepted into a queue nobody reads.
                data.close();
                while let Ok(batch) = data.try_recv() {
                    self.merge(batch);
                }
                self.shutdown = Some((deadline, reply));
                self.next_attempt = Instant::now();
            }
        }
    }

    fn start_load(
        &mut self,
        channel: Arc<str>,
        reply: oneshot::Sender<StoreResult<StoredChannel>>,
    ) {
        let waiting = self.load_replies.entry(Arc::clone(&channel)).or_default();
        waiting.push(reply);
        if waiting.len() > 1 {
            return; // a load of this channel is already running
        }
        let store = Arc::clone(&self.store);
        self.loads.push(Box::pin(async move {
            let result = store.load_channel(&channel).await;
            (channel, result)
        }));
    }

    fn on_loaded(&mut self, channel: Arc<str>, result: StoreResult<StoredChannel>) {
        let result = result.and_then(|mut stored| {
            // A cached base is what we know to be stored; the database may also hold a write
            // that failed for us but landed, whose deltas are pending again: count them once.
            let base = self
                .bases
                .entry(Arc::clone(&channel))
                .or_insert_with(|| ChannelBase::from_stored(&stored));
            // Rules rows the database shows are there, whatever we believed.
            base.rule_keys.extend(
                stored
                    .rules
                    .iter()
                    .map(|r| (r.kind.clone(), r.name.clone())),
            );
            stored.counters = base.counters.clone();
            // A user being deleted: the rows may be read before the delete, never handed out.
            for user in self.forgetting.keys() {
                if on_platform(&channel, &user.platform) {
                    stored.warnings.retain(|w| w.user_id != user.user_id);
                }
            }
            if let Some(pending) = self.pending.get(&channel) {
                pending
                    .overlay(&mut stored)
                    .map_err(|e| StoreError::Schema(e.to_string()))?;
            }
            // Rules that do not even decode fail the load (never read as "no rules"); the
            // channel compiles the ones that do, which validates them.
            if !stored.rules.is_empty() {
                decode_rules(&stored.rules).map_err(|e| {
                    StoreError::Schema(format!("{channel}: stored rules unreadable: {e}"))
                })?;
            }
            Ok(stored)
        });
        if result.is_err() {
            self.status.load_failures.fetch_add(1, Ordering::Relaxed);
        }
        for reply in self.load_replies.remove(&channel).unwrap_or_default() {
            let copy = match &result {
                Ok(stored) => Ok(stored.clone()),
                Err(e) => Err(StoreError::Unavailable(e.to_string())),
            };
            let _ = reply.send(copy);
        }
    }

    /// Whether a flush is due, and of what.
    fn due(&self) -> Option<FlushScope> {
        if self.pending_keys == 0 || Instant::now() < self.next_attempt {
            return None;
        }
        let waiting = self
            .flush_waiters
            .iter()
            .any(|(number, _)| *number == UNASSIGNED || *number > self.flushes_started);
        let everything = self.shutdown.is_some()
            || waiting
            || self.pending_keys >= self.config.flush_max_keys
            || self.last_user_flush.elapsed() >= self.config.user_flush_interval;
        if everything {
            Some(FlushScope::All)
        } else if self.last_flush.elapsed() >= self.config.flush_interval {
            Some(FlushScope::AllButUsers)
        } else {
            None
        }
    }

    /// Takes what `scope` flushes out of `pending`; user stats left behind stay pending.
    fn take_pending(&mut self, scope: FlushScope) -> (HashMap<Arc<str>, Pending>, usize) {
        let taken = std::mem::take(&mut self.pending);
        if scope == FlushScope::All {
            self.users_since = None;
            self.last_user_flush = Instant::now();
            return (taken, std::mem::take(&mut self.pending_keys));
        }
        let mut flushing = HashMap::with_capacity(taken.len());
        let mut kept_keys = 0;
        for (channel, mut changes) in taken {
            let users = std::mem::take(&mut changes.users);
            // The channel's message count goes with its chatters' stats: it changes with
            // every message, so on the short interval it would be a row per channel per second.
            let messages = changes.counters.remove_entry(counter::MESSAGES);
            if !users.is_empty() || messages.is_some() {
                kept_keys += users.len() + usize::from(messages.is_some());
                let kept = Pending {
                    users,
                    counters: messages.into_iter().collect(),
                    ..Pending::default()
                };
                self.pending.insert(Arc::clone(&channel), kept);
            }
            if changes.keys() > 0 {
                flushing.insert(channel, changes);
            }
        }
        let taken_keys = self.pending_keys - kept_keys;
        self.pending_keys = kept_keys;
        (flushing, taken_keys)
    }

    fn maybe_flush(&mut self) {
        // A deletion waits for the flush in flight, then runs alone.
        if self.in_flight.is_some()
            || !self.loads.is_empty()
            || self.forget_running.is_some()
            || !self.forget_waiting.is_empty()
        {
            return;
        }
        let Some(scope) = self.due() else {
            return;
        };
        let (pending, keys) = self.take_pending(scope);
        self.last_flush = Instant::now();
        let since = match scope {
            FlushScope::All => self.pending_since.take(),
            // What stays pending is user stats: as old as the oldest of them.
            FlushScope::AllButUsers => std::mem::replace(&mut self.pending_since, self.users_since),
        }
        .unwrap_or_else(Instant::now);
        if pending.is_empty() {
            return;
        }
        self.flushes_started += 1;
        let number = self.flushes_started;
        let mut jobs = Vec::with_capacity(pending.len());
        let mut kept = HashMap::with_capacity(pending.len());
        for (channel, changes) in pending {
            let changes = Arc::new(changes);
            let progress = ProgressSlot::default();
            kept.insert(
                Arc::clone(&channel),
                (Arc::clone(&changes), Arc::clone(&progress)),
            );
            let base = self.bases.get(&channel).cloned();
            // Under a TTL, a base older than it may be a row that expired: read it again.
            let ttl = Duration::from_secs(u64::from(self.config.user_ttl_s));
            let users = changes
                .users
                .keys()
                .filter_map(|id| {
                    self.user_bases
                        .get(&(Arc::clone(&channel), id.clone()))
                        .filter(|(_, at)| ttl.is_zero() || at.elapsed() < ttl)
                        .map(|(row, _)| (id.clone(), row.clone()))
                })
                .collect();
            jobs.push(FlushJob {
                channel,
                changes,
                base,
                users,
                progress,
            });
        }
        let store = Arc::clone(&self.store);
        let config = self.config.clone();
        let task = tokio::spawn(async move {
            futures::stream::iter(jobs)
                .map(|job| {
                    let (channel, progress) = (Arc::clone(&job.channel), job.progress.clone());
                    // A panic (in a backend, say) fails this channel's job alone, and the bases
                    // it read before it died are still known (see `Progress`).
                    AssertUnwindSafe(flush_channel(
                        Arc::clone(&store),
                        job,
                        Ttls {
                            moderation_s: config.moderation_ttl_s,
                            user_s: config.user_ttl_s,
                        },
                    ))
                    .catch_unwind()
                    .map(move |done| {
                        done.unwrap_or_else(|panic| panicked(channel, &progress, &panic))
                    })
                })
                .buffer_unordered(config.flush_concurrency.max(1))
                .collect::<Vec<_>>()
                .await
        });
        self.in_flight = Some(InFlight {
            since,
            keys,
            task,
            started: Instant::now(),
            number,
            jobs: kept,
        });
    }

    fn on_flushed(&mut self, outcome: FlushOutcome) {
        let FlushOutcome {
            results,
            started,
            since,
            number,
            mut jobs,
            task_error,
        } = outcome;
        let mut failure = task_error.map(StoreError::Unavailable);
        let mut rows = 0;
        let reported: HashSet<Arc<str>> = results.iter().map(|r| Arc::clone(&r.channel)).collect();
        for result in results {
            rows += result.rows;
            if let Some(base) = result.base {
                self.bases.insert(Arc::clone(&result.channel), base);
            }
            for user in result.users {
                let key = (Arc::clone(&result.channel), user.user_id.clone());
                self.user_bases.insert(key, (user, started));
            }
            match result.failed {
                // Written: nothing to put back.
                None => {
                    jobs.remove(&result.channel);
                }
                Some(error) => failure = Some(error),
            }
        }
        // Whatever was not written (failed jobs, or all of them if the task died) goes back
        // under the newer changes. Re-writing a job that did land is harmless: its bases did
        // not move, so the same absolute values are written again. A job that gave no result
        // (its task died) leaves the bases it had read in its progress: they are kept too,
        // or a first-time key would be read again after its write landed and its deltas
        // added twice.
        for (channel, (_, progress)) in &jobs {
            if reported.contains(channel) {
                continue;
            }
            if let Some((base, users)) = progress_bases(progress) {
                self.bases.insert(Arc::clone(channel), base);
                for user in users {
                    let key = (Arc::clone(channel), user.user_id.clone());
                    self.user_bases.insert(key, (user, started));
                }
            }
        }
        for (channel, (changes, _)) in jobs {
            let changes = Arc::try_unwrap(changes).unwrap_or_else(|shared| (*shared).clone());
            let pending = self.pending.entry(channel).or_default();
            let before = pending.keys();
            pending.merge_older(changes);
            self.pending_keys += pending.keys() - before;
        }
        if self.user_bases.len() > self.config.max_cached_users {
            // Bases of users with changes still pending must stay: they may be the values from
            // before a write that landed without our knowing it.
            let pending = &self.pending;
            self.user_bases.retain(|(channel, user), _| {
                pending
                    .get(channel)
                    .is_some_and(|p| p.users.contains_key(user))
            });
        }
        self.status.rows_written.fetch_add(rows, Ordering::Relaxed);
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        if let Ok(mut h) = self.status.flush_latency_us.lock() {
            let _ = h.record(micros.max(1));
        }
        // Requests this flush answers: those made before it started.
        let (answered, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.flush_waiters)
            .into_iter()
            .filter(|(_, reply)| !reply.is_closed())
            .partition(|(wanted, _)| *wanted != UNASSIGNED && *wanted <= number);
        self.flush_waiters = later;
        match failure {
            None => {
                self.status.flushes_ok.fetch_add(1, Ordering::Relaxed);
                self.status.set_error(None);
                self.backoff = self.config.retry_backoff;
                for (_, waiter) in answered {
                    let _ = waiter.send(Ok(()));
                }
            }
            Some(error) => {
                // Changes put back are as old as the flush's oldest.
                self.pending_since = Some(self.pending_since.map_or(since, |s| s.min(since)));
                if self.pending.values().any(Pending::has_stats) {
                    self.users_since = Some(self.users_since.map_or(since, |s| s.min(since)));
                }
                self.status.flushes_failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, retry_in_ms = self.backoff.as_millis() as u64, "store flush failed; changes kept");
                self.status.set_error(Some(error.to_string()));
                self.next_attempt = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(self.config.retry_backoff_max);
                for (_, waiter) in answered {
                    let _ = waiter.send(Err(StoreError::Unavailable(error.to_string())));
                }
            }
        }
    }

    /// Starts the loads that wait, unless a flush is in flight or due. Loads and flushes never
    /// overlap (a load would see a half-applied flush); a due flush goes first so that a stream
    /// of loads cannot hold flushing off, and it is due only while it has something to write,
    /// so a load never waits behind a flush with nothing in it.
    fn start_deferred_loads(&mut self) {
        if self.deferred_loads.is_empty()
            || self.in_flight.is_some()
            || self.due().is_some()
            || self.forget_running.is_some()
            || !self.forget_waiting.is_empty()
        {
            return;
        }
        for (channel, reply) in std::mem::take(&mut self.deferred_loads) {
            self.start_load(channel, reply);
        }
    }

    /// Flush requests whose changes are all written by now: nothing pending, nothing in flight,
    /// nothing queued. (A request that came while the last flush was in flight waits for a
    /// later flush number, and none starts when nothing is left to write.)
    fn answer_idle_flush_waiters(&mut self, data: &mpsc::Receiver<ChangeBatch>) {
        if self.flush_waiters.is_empty()
            || self.pending_keys > 0
            || self.in_flight.is_some()
            || !data.is_empty()
            || self.flush_waiters.iter().any(|(n, _)| *n == UNASSIGNED)
        {
            return;
        }
        for (_, waiter) in std::mem::take(&mut self.flush_waiters) {
            let _ = waiter.send(Ok(()));
        }
    }

    fn publish(&self) {
        let in_flight = self.in_flight.as_ref();
        let keys = self.pending_keys + in_flight.map_or(0, |f| f.keys);
        self.status
            .pending_keys
            .store(keys as u64, Ordering::Relaxed);
        let oldest = match (self.pending_since, in_flight.map(|f| f.since)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let lag = oldest.map_or(0, |t| t.elapsed().as_millis() as u64);
        self.status.lag_ms.store(lag, Ordering::Relaxed);
    }

    /// Whether a requested shutdown is complete (replied); gives up at its deadline.
    fn finished_shutdown(&mut self, data: &mut mpsc::Receiver<ChangeBatch>) -> bool {
        let Some(deadline) = self.shutdown.as_ref().map(|(d, _)| *d) else {
            return false;
        };
        self.drain_queue(data);
        let idle = self.pending_keys == 0
            && self.in_flight.is_none()
            && self.forget_running.is_none()
            && self.forget_waiting.is_empty();
        if !idle && Instant::now() < deadline {
            return false;
        }
        let left = self.pending_keys + self.in_flight.as_ref().map_or(0, |f| f.keys);
        if left > 0 {
            tracing::error!(keys = left, "store writer stopped with changes not written");
        }
        if let Some((_, reply)) = self.shutdown.take() {
            let _ = reply.send(left);
        }
        true
    }
}

/// Waits for the in-flight flush (forever when there is none).
async fn wait_flush(in_flight: &mut Option<InFlight>) -> FlushOutcome {
    let Some(flight) = in_flight.as_mut() else {
        return futures::future::pending().await;
    };
    let (results, task_error) = match (&mut flight.task).await {
        Ok(results) => (results, None),
        Err(e) => {
            tracing::error!(error = %e, "store flush task failed; its changes are kept");
            (Vec::new(), Some(format!("flush task failed: {e}")))
        }
    };
    let flight = in_flight.take().expect("checked above");
    FlushOutcome {
        results,
        started: flight.started,
        since: flight.since,
        number: flight.number,
        jobs: flight.jobs,
        task_error,
    }
}

/// Waits for the running deletion (forever when there is none).
async fn wait_forget(
    running: &mut Option<RunningForget>,
) -> (RunningForget, StoreResult<ForgottenRows>) {
    let Some(forget) = running.as_mut() else {
        return futures::future::pending().await;
    };
    let result = match (&mut forget.task).await {
        Ok(result) => result,
        Err(e) => Err(StoreError::Unavailable(format!(
            "deleting a user's data: task failed: {e}"
        ))),
    };
    let forget = running.take().expect("checked above");
    (forget, result)
}

struct FlushJob {
    channel: Arc<str>,
    changes: Arc<Pending>,
    base: Option<ChannelBase>,
    /// Known stored rows of the users in `changes`.
    users: HashMap<String, UserRow>,
    progress: ProgressSlot,
}

/// How far one channel's flush got, kept outside its task: the bases it read and the rules
/// items it was about to write, recorded before its write. If the job dies (a panic in a
/// backend, the task aborted), the writer keeps these bases, exactly as for a write that
/// failed: the retry then writes base + all deltas, never the landed deltas twice.
#[derive(Debug, Default)]
struct Progress {
    base: Option<ChannelBase>,
    users: Vec<UserRow>,
}

type ProgressSlot = Arc<Mutex<Progress>>;

/// The bases a job recorded before it died, if it got that far.
fn progress_bases(progress: &ProgressSlot) -> Option<(ChannelBase, Vec<UserRow>)> {
    let progress = progress.lock().ok()?;
    let base = progress.base.clone()?;
    Some((base, progress.users.clone()))
}

/// A job that panicked: failed, with the bases it had read.
fn panicked(
    channel: Arc<str>,
    progress: &ProgressSlot,
    panic: &(dyn std::any::Any + Send),
) -> ChannelFlushed {
    let why = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string());
    tracing::error!(%channel, panic = %why, "store flush of a channel panicked; its changes are kept");
    let (base, users) = match progress_bases(progress) {
        Some((base, users)) => (Some(base), users),
        None => (None, Vec::new()),
    };
    let mut flushed = failed(
        channel,
        base,
        StoreError::Unavailable(format!("flush panicked: {why}")),
    );
    flushed.users = users;
    flushed
}

/// Flushes one channel: reads what it must (its base, unknown users), writes absolutes.
/// The lifetimes a flush writes rows with.
#[derive(Debug, Clone, Copy)]
struct Ttls {
    moderation_s: u32,
    user_s: u32,
}

async fn flush_channel(store: Arc<dyn StateStore>, job: FlushJob, ttls: Ttls) -> ChannelFlushed {
    let FlushJob {
        channel,
        changes,
        base,
        mut users,
        progress,
    } = job;
    let base = match base {
        Some(base) => base,
        None => match store.load_channel(&channel).await {
            Ok(stored) => ChannelBase::from_stored(&stored),
            Err(e) => return failed(channel, None, e),
        },
    };
    let unknown: Vec<String> = changes
        .users
        .keys()
        .filter(|id| !users.contains_key(*id))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        match store.load_users(&channel, &unknown).await {
            Ok(rows) => {
                users.extend(rows.into_iter().map(|r| (r.user_id.clone(), r)));
                // No row yet is a base too (zero): remembered like any other.
                for id in unknown {
                    users.entry(id.clone()).or_insert_with(|| UserRow {
                        user_id: id,
                        ..UserRow::default()
                    });
                }
            }
            Err(e) => return failed(channel, Some(base), e),
        }
    }
    let (write, new_base, new_users) = match compose(&channel, &changes, &base, &users, ttls) {
        Ok(composed) => composed,
        Err(e) => return failed(channel, Some(base), StoreError::Schema(e.to_string())),
    };
    if let Ok(mut progress) = progress.lock() {
        // As for a write that fails: rules rows it may write count as present.
        let mut recorded = base.clone();
        recorded.rule_keys.extend(
            write
                .rules_upsert
                .iter()
                .map(|r| (r.kind.clone(), r.name.clone())),
        );
        progress.base = Some(recorded);
        progress.users = users.values().cloned().collect();
    }
    match store.write(&write).await {
        Ok(rows) => ChannelFlushed {
            channel,
            base: Some(new_base),
            users: new_users,
            rows,
            failed: None,
        },
        Err(e) => {
            // The write may have landed in part. The values read before it stay the bases, so
            // the retry writes base + all deltas again instead of adding them to what landed.
            // Rules rows it may have written count as present, so that a later edit removing
            // one of them deletes it.
            let mut base = base;
            base.rule_keys.extend(
                write
                    .rules_upsert
                    .iter()
                    .map(|r| (r.kind.clone(), r.name.clone())),
            );
            let mut flushed = failed(channel, Some(base), e);
            flushed.users = users.into_values().collect();
            flushed
        }
    }
}

fn failed(channel: Arc<str>, base: Option<ChannelBase>, error: StoreError) -> ChannelFlushed {
    ChannelFlushed {
        channel,
        base,
        users: Vec::new(),
        rows: 0,
        failed: Some(error),
    }
}

/// The absolute rows for `changes` on top of `base` and `users`, and the base after them.
fn compose(
    channel: &str,
    changes: &Pending,
    base: &ChannelBase,
    users: &HashMap<String, UserRow>,
    ttls: Ttls,
) -> Result<(ChannelWrite, ChannelBase, Vec<UserRow>), RowError> {
    let mut write = ChannelWrite::new(channel, ttls.moderation_s);
    write.user_ttl_s = ttls.user_s;
    let mut new_base = base.clone();
    for (name, change) in &changes.counters {
        if change.reset && change.delta == 0 {
            write.counters_delete.push(name.clone());
            new_base.counters.remove(name);
            continue;
        }
        let from = if change.reset {
            0
        } else {
            base.counters.get(name).copied().unwrap_or(0)
        };
        let value = from.saturating_add(change.delta);
        write.counters.push((name.clone(), value));
        new_base.counters.insert(name.clone(), value);
    }
    write.counters.sort();
    write.counters_delete.sort();
    for (id, delta) in &changes.users {
        let stored = users.get(id);
        let login = if delta.login.is_empty() {
            stored.map(|u| u.login.clone()).unwrap_or_default()
        } else {
            delta.login.clone()
        };
        write.users.push(UserRow {
            user_id: id.clone(),
            login,
            messages: stored.map_or(0, |u| u.messages) + delta.messages,
            last_seen_ms: stored.map_or(0, |u| u.last_seen_ms).max(delta.last_seen_ms),
            warnings: stored.map_or(0, |u| u.warnings) + delta.warnings,
        });
    }
    write.users.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    for ((filter, user_id), expires_ms) in &changes.warnings {
        write.warnings.push(WarningRow {
            filter: filter.clone(),
            user_id: user_id.clone(),
            expires_ms: *expires_ms,
        });
    }
    write.warnings.sort();
    if let Some(rules) = &changes.rules {
        if base.rule_keys.is_empty() {
            // Nothing stored: the rules whole.
            write.rules_upsert = rules_to_rows(&rules.latest)?;
        } else {
            // Stored rules: exactly the items the edits changed, whatever else is stored.
            for ((kind, name), item) in &rules.items {
                match item {
                    Some(body) => write.rules_upsert.push(RuleRow {
                        kind: kind.clone(),
                        name: name.clone(),
                        body: body.clone(),
                    }),
                    None => write.rules_delete.push((kind.clone(), name.clone())),
                }
            }
        }
        for row in &write.rules_upsert {
            new_base
                .rule_keys
                .insert((row.kind.clone(), row.name.clone()));
        }
        for key in &write.rules_delete {
            new_base.rule_keys.remove(key);
        }
    }
    write.moderation = changes.moderation.clone();
    let new_users = write.users.clone();
    Ok((write, new_base, new_users))
}

/// The change of one handled chat message besides the engine's own: the channel's message
/// count and the author's stats.
pub fn message_change(user_id: &str, login: &str, at_ms: i64) -> Change {
    Change::UserMessage {
        user_id: user_id.to_string(),
        login: login.to_string(),
        at_ms,
    }
}
