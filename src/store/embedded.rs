//! The embedded backend: redb, one file on the box (or memory only), for single-box runs, the
//! demo and tests. The default when no CQL contact point is configured.
//!
//! Same rows as the CQL schema, in redb tables with string keys whose parts are joined and
//! escaped by [`super::keys`] (so a channel's rows are one key range, whatever characters a
//! name holds). A key or row that does not decode fails the read with an error: it is never
//! skipped or read as something else. Expiry (warnings, the moderation log, user stats under
//! `store.user_stats_ttl_s`) is an `expires_ms` stored with the row: reads skip expired rows,
//! and a write also sweeps a bounded slice ([`SWEEP_ROWS`] rows per table) of the user stats
//! and moderation log tables for expired rows, at most once per [`SWEEP_EVERY`], resuming
//! where the last sweep stopped, so expired rows leave the file without any write ever
//! scanning a whole table (a sweep per write cost a fifth of the service's CPU at 11,000
//! msgs/s, when a thousand channels each wrote once a second). redb is
//! blocking, so every call runs on tokio's blocking pool.

use std::ops::Bound;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::keys::{self, BadKey};
use super::migrations;
use super::model::{on_platform, ChannelWrite, LeaseOutcome, ModerationEntry, StoredChannel};
use super::model::{ForgottenRows, RuleRow, UserRow, WarningRow};
use super::{StateStore, StoreError, StoreResult};
use crate::config::StoreConfig;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const CONFIG: TableDefinition<&str, &str> = TableDefinition::new("channel_config");
const COUNTERS: TableDefinition<&str, i64> = TableDefinition::new("channel_counters");
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("user_stats");
const WARNINGS: TableDefinition<&str, i64> = TableDefinition::new("warnings");
const MODLOG: TableDefinition<&str, &[u8]> = TableDefinition::new("moderation_log");
const LEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("channel_leases");
/// Platform records, keyed `scope\x1fkey`.
const PLATFORM: TableDefinition<&str, &str> = TableDefinition::new("platform_state");

const SCHEMA_VERSION: &str = "schema_version";

/// Rows of each swept table (user stats, moderation log) one sweep looks at for expired ones.
pub const SWEEP_ROWS: usize = 256;
/// Writes sweep at most this often: 256 rows of each table a second keep up with any expiry
/// rate these TTLs (days) make, a whole table of a million rows every hour or so.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// A redb database holding channel state.
pub struct EmbeddedStore {
    db: Arc<Database>,
    /// Where the next expiry sweep of each table starts.
    sweep: Arc<Mutex<SweepCursors>>,
    /// Calls on the blocking pool at once (see [`MAX_BLOCKING_CALLS`]).
    calls: Arc<tokio::sync::Semaphore>,
}

/// Most calls of the embedded store running on tokio's blocking pool at once. A thousand
/// channels starting together each load their state; unbounded, that grew the pool to over a
/// hundred threads, each with its own stack and allocator pages (about 60 KiB of resident
/// memory per channel in the `steady` bench). redb has one writer at a time anyway.
pub const MAX_BLOCKING_CALLS: usize = 4;

/// The key after which the next sweep of a table starts (`None`: from the first key).
#[derive(Debug, Default)]
struct SweepCursors {
    users: Option<String>,
    log: Option<String>,
    /// When a write last swept.
    last_write_sweep: Option<std::time::Instant>,
}

impl SweepCursors {
    /// Whether a write should sweep now (at most once per [`SWEEP_EVERY`]); notes it if so.
    fn write_sweep_due(&mut self) -> bool {
        let now = std::time::Instant::now();
        let due = self
            .last_write_sweep
            .is_none_or(|last| now.duration_since(last) >= SWEEP_EVERY);
        if due {
            self.last_write_sweep = Some(now);
        }
        due
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the file named by `store.embedded_path`, or a memory-only database.
    pub fn open(config: &StoreConfig) -> StoreResult<EmbeddedStore> {
        let db = if config.embedded_path.is_empty() {
            Database::builder()
                .create_with_backend(redb::backends::InMemoryBackend::new())
                .map_err(|e| StoreError::Config(format!("embedded store in memory: {e}")))?
        } else {
            let path = std::path::Path::new(&config.embedded_path);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Config(format!("store.embedded_path {}: {e}", dir.display()))
                })?;
            }
            Database::create(path).map_err(|e| {
                StoreError::Config(format!("store.embedded_path {}: {e}", path.display()))
            })?
        };
        Ok(EmbeddedStore {
            db: Arc::new(db),
            sweep: Arc::new(Mutex::new(SweepCursors::default())),
            calls: Arc::new(tokio::sync::Semaphore::new(MAX_BLOCKING_CALLS)),
        })
    }

    /// Sweeps up to `rows` rows of the user stats and moderation log tables for expired ones
    /// (what every write does with [`SWEEP_ROWS`]); returns how many it deleted.
    pub fn sweep_expired(&self, rows: usize) -> BoxFuture<'static, StoreResult<u64>> {
        let cursors = Arc::clone(&self.sweep);
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            let removed = sweep_tables(&txn, &cursors, rows, now_ms())?;
            txn.commit()?;
            Ok(removed)
        })
    }

    /// Runs `f` on the blocking pool with the database.
    fn blocking<T, F>(&self, f: F) -> BoxFuture<'static, StoreResult<T>>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, redb::Error> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        let calls = Arc::clone(&self.calls);
        Box::pin(async move {
            let permit = calls
                .acquire_owned()
                .await
                .map_err(|e| StoreError::Unavailable(format!("embedded store closed: {e}")))?;
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                f(&db)
            })
            .await
            .map_err(|e| StoreError::Unavailable(format!("embedded store task: {e}")))?
            .map_err(|e| StoreError::Request(format!("embedded store: {e}")))
        })
    }
}

/// The key of `parts` (see [`keys`]).
fn key(parts: &[&str]) -> String {
    keys::join(parts)
}

/// The key range of everything of `channel`.
fn under(channel: &str) -> (String, String) {
    keys::under(&[channel])
}

fn corrupt(e: BadKey) -> redb::Error {
    redb::Error::Corrupted(e.to_string())
}

fn now_ms() -> i64 {
    i64::try_from(crate::engine::millis(std::time::SystemTime::now())).unwrap_or(i64::MAX)
}

fn json_err(e: serde_json::Error) -> redb::Error {
    redb::Error::Corrupted(format!("stored JSON: {e}"))
}

#[derive(Serialize, Deserialize)]
struct StoredUser {
    login: String,
    messages: i64,
    last_seen_ms: i64,
    warnings: i64,
    /// When the row expires (ms since the epoch); 0 (and rows written before retention
    /// existed) = never.
    #[serde(default)]
    expires_ms: i64,
}

impl StoredUser {
    fn live(&self, now: i64) -> bool {
        self.expires_ms == 0 || self.expires_ms > now
    }
}

/// Deletes the expired rows among the next `rows` rows of `table` after `cursor`, and moves the
/// cursor on (back to the start at the end of the table).
fn sweep_table(
    table: &mut redb::Table<&str, &[u8]>,
    cursor: &mut Option<String>,
    rows: usize,
    expired: impl Fn(&[u8]) -> bool,
) -> Result<u64, redb::Error> {
    let start = match cursor.as_deref() {
        Some(after) => Bound::Excluded(after),
        None => Bound::Unbounded,
    };
    let mut seen = 0;
    let mut last = None;
    let mut doomed = Vec::new();
    for item in table.range::<&str>((start, Bound::Unbounded))? {
        let (k, v) = item?;
        seen += 1;
        // A row that does not decode is not swept: reading it fails loudly instead.
        if expired(v.value()) {
            doomed.push(k.value().to_string());
        }
        last = Some(k.value().to_string());
        if seen >= rows {
            break;
        }
    }
    *cursor = if seen >= rows { last } else { None };
    for key in &doomed {
        table.remove(key.as_str())?;
    }
    Ok(doomed.len() as u64)
}

/// One bounded sweep of the user stats and moderation log tables.
fn sweep_tables(
    txn: &redb::WriteTransaction,
    cursors: &Mutex<SweepCursors>,
    rows: usize,
    now: i64,
) -> Result<u64, redb::Error> {
    let mut cursors = cursors
        .lock()
        .map_err(|_| redb::Error::Corrupted("sweep cursor lock poisoned".into()))?;
    let cursors = &mut *cursors;
    let mut users = txn.open_table(USERS)?;
    let mut removed = sweep_table(&mut users, &mut cursors.users, rows, |v| {
        serde_json::from_slice::<Expiry>(v).is_ok_and(|e| e.expires_ms != 0 && e.expires_ms <= now)
    })?;
    let mut log = txn.open_table(MODLOG)?;
    removed += sweep_table(&mut log, &mut cursors.log, rows, |v| {
        serde_json::from_slice::<LogExpiry>(v).is_ok_and(|e| e.expires_ms <= now)
    })?;
    Ok(removed)
}

/// Only the expiry of a stored user row (the rest is skipped, not decoded into strings;
/// missing: written before user stats expired, so never).
#[derive(Deserialize)]
struct Expiry {
    #[serde(default)]
    expires_ms: i64,
}

/// Only the expiry of a stored log entry, which always has one (a row without it is not swept:
/// reading it fails loudly instead).
#[derive(Deserialize)]
struct LogExpiry {
    expires_ms: i64,
}

#[derive(Serialize, Deserialize)]
struct StoredLogEntry {
    entry: ModerationEntry,
    expires_ms: i64,
}

#[derive(Serialize, Deserialize)]
struct StoredLease {
    owner: String,
    expires_ms: i64,
}

impl StateStore for EmbeddedStore {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    fn migrate(&self) -> BoxFuture<'_, StoreResult<Vec<u32>>> {
        let latest = migrations::latest();
        let fut = self.blocking(move |db| {
            let txn = db.begin_write()?;
            let current = {
                let meta = txn.open_table(META)?;
                let current = meta.get(SCHEMA_VERSION)?.map(|v| v.value()).unwrap_or(0);
                current
            };
            if current >= u64::from(latest) {
                txn.abort()?;
                return Ok((current, Vec::new()));
            }
            if current < 1 {
                // Version 1: the tables. Opening a table in a write transaction creates it.
                txn.open_table(CONFIG)?;
                txn.open_table(COUNTERS)?;
                txn.open_table(USERS)?;
                txn.open_table(WARNINGS)?;
                txn.open_table(MODLOG)?;
                txn.open_table(LEASES)?;
            }
            if current == 1 {
                // Version 2: escaped keys. A new file has nothing to re-encode.
                reencode_legacy_keys(&txn)?;
            }
            if current < 3 {
                // Version 3: platform records.
                txn.open_table(PLATFORM)?;
            }
            txn.open_table(META)?
                .insert(SCHEMA_VERSION, u64::from(latest))?;
            txn.commit()?;
            let applied: Vec<u32> = ((current as u32 + 1)..=latest).collect();
            Ok((current, applied))
        });
        Box::pin(async move {
            let (current, applied) = fut.await?;
            if current > u64::from(latest) {
                return Err(newer_schema(current));
            }
            Ok(applied)
        })
    }

    fn schema_version(&self) -> BoxFuture<'_, StoreResult<u32>> {
        let fut = self.blocking(|db| {
            let txn = db.begin_read()?;
            let version = match txn.open_table(META) {
                Ok(meta) => meta.get(SCHEMA_VERSION)?.map(|v| v.value()).unwrap_or(0),
                Err(redb::TableError::TableDoesNotExist(_)) => 0,
                Err(e) => return Err(e.into()),
            };
            Ok(version)
        });
        Box::pin(async move { Ok(u32::try_from(fut.await?).unwrap_or(u32::MAX)) })
    }

    fn load_channel<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, StoreResult<StoredChannel>> {
        let channel = channel.to_string();
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let (from, to) = under(&channel);
            let mut stored = StoredChannel::default();
            for item in txn.open_table(CONFIG)?.range(from.as_str()..to.as_str())? {
                let (k, v) = item?;
                let [_, kind, name] = keys::split_n::<3>(k.value()).map_err(corrupt)?;
                stored.rules.push(RuleRow {
                    kind,
                    name,
                    body: v.value().to_string(),
                });
            }
            stored.rules.sort();
            for item in txn
                .open_table(COUNTERS)?
                .range(from.as_str()..to.as_str())?
            {
                let (k, v) = item?;
                let [_, name] = keys::split_n::<2>(k.value()).map_err(corrupt)?;
                stored.counters.insert(name, v.value());
            }
            let now = now_ms();
            for item in txn
                .open_table(WARNINGS)?
                .range(from.as_str()..to.as_str())?
            {
                let (k, v) = item?;
                let [_, filter, user_id] = keys::split_n::<3>(k.value()).map_err(corrupt)?;
                if v.value() > now {
                    stored.warnings.push(WarningRow {
                        filter,
                        user_id,
                        expires_ms: v.value(),
                    });
                }
            }
            stored.warnings.sort();
            Ok(stored)
        })
    }

    fn load_users<'a>(
        &'a self,
        channel: &'a str,
        user_ids: &'a [String],
    ) -> BoxFuture<'a, StoreResult<Vec<UserRow>>> {
        let channel = channel.to_string();
        let user_ids = user_ids.to_vec();
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(USERS)?;
            let now = now_ms();
            let mut rows = Vec::new();
            for user_id in user_ids {
                if let Some(v) = table.get(key(&[&channel, &user_id]).as_str())? {
                    let user: StoredUser = serde_json::from_slice(v.value()).map_err(json_err)?;
                    if !user.live(now) {
                        continue;
                    }
                    rows.push(UserRow {
                        user_id,
                        login: user.login,
                        messages: user.messages,
                        last_seen_ms: user.last_seen_ms,
                        warnings: user.warnings,
                    });
                }
            }
            Ok(rows)
        })
    }

    fn write<'a>(&'a self, write: &'a ChannelWrite) -> BoxFuture<'a, StoreResult<u64>> {
        let write = write.clone();
        let cursors = Arc::clone(&self.sweep);
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            let c = write.channel.as_str();
            let now = now_ms();
            let user_expires = match write.user_ttl_s {
                0 => 0,
                ttl => now.saturating_add(i64::from(ttl) * 1000),
            };
            {
                let mut counters = txn.open_table(COUNTERS)?;
                for (name, value) in &write.counters {
                    counters.insert(key(&[c, name]).as_str(), *value)?;
                }
                for name in &write.counters_delete {
                    counters.remove(key(&[c, name]).as_str())?;
                }
                let mut users = txn.open_table(USERS)?;
                for u in &write.users {
                    let stored = StoredUser {
                        login: u.login.clone(),
                        messages: u.messages,
                        last_seen_ms: u.last_seen_ms,
                        warnings: u.warnings,
                        expires_ms: user_expires,
                    };
                    let bytes = serde_json::to_vec(&stored).map_err(json_err)?;
                    users.insert(key(&[c, &u.user_id]).as_str(), bytes.as_slice())?;
                }
                let mut warnings = txn.open_table(WARNINGS)?;
                let (from, to) = under(c);
                warnings.retain_in(from.as_str()..to.as_str(), |_, expires| expires > now)?;
                for w in &write.warnings {
                    warnings.insert(key(&[c, &w.filter, &w.user_id]).as_str(), w.expires_ms)?;
                }
                let mut config = txn.open_table(CONFIG)?;
                for (kind, name) in &write.rules_delete {
                    config.remove(key(&[c, kind, name]).as_str())?;
                }
                for r in &write.rules_upsert {
                    config.insert(key(&[c, &r.kind, &r.name]).as_str(), r.body.as_str())?;
                }
                let mut log = txn.open_table(MODLOG)?;
                for entry in &write.moderation {
                    let stored = StoredLogEntry {
                        entry: entry.clone(),
                        expires_ms: entry
                            .at_ms
                            .saturating_add(i64::from(write.moderation_ttl_s) * 1000),
                    };
                    let bytes = serde_json::to_vec(&stored).map_err(json_err)?;
                    let at = format!("{:020}", entry.at_ms.max(0));
                    log.insert(key(&[c, &at, &entry.id]).as_str(), bytes.as_slice())?;
                }
            }
            let due = cursors.lock().is_ok_and(|mut c| c.write_sweep_due());
            if due {
                sweep_tables(&txn, &cursors, SWEEP_ROWS, now)?;
            }
            txn.commit()?;
            Ok(write.rows())
        })
    }

    fn moderation_log<'a>(
        &'a self,
        channel: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, StoreResult<Vec<ModerationEntry>>> {
        let channel = channel.to_string();
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let (from, to) = under(&channel);
            let now = now_ms();
            let mut entries = Vec::new();
            for item in txn
                .open_table(MODLOG)?
                .range(from.as_str()..to.as_str())?
                .rev()
            {
                if entries.len() >= limit {
                    break;
                }
                let (_, v) = item?;
                let stored: StoredLogEntry = serde_json::from_slice(v.value()).map_err(json_err)?;
                if stored.expires_ms > now {
                    entries.push(stored.entry);
                }
            }
            Ok(entries)
        })
    }

    fn acquire_lease<'a>(
        &'a self,
        channel: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<LeaseOutcome>> {
        let (channel, owner) = (channel.to_string(), owner.to_string());
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            let now = now_ms();
            let outcome = {
                let mut leases = txn.open_table(LEASES)?;
                let current: Option<StoredLease> = match leases.get(channel.as_str())? {
                    Some(v) => Some(serde_json::from_slice(v.value()).map_err(json_err)?),
                    None => None,
                };
                match current {
                    Some(lease) if lease.expires_ms > now && lease.owner != owner => {
                        LeaseOutcome::HeldBy(lease.owner)
                    }
                    _ => {
                        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
                        let lease = StoredLease {
                            owner: owner.clone(),
                            expires_ms: now.saturating_add(ttl_ms),
                        };
                        let bytes = serde_json::to_vec(&lease).map_err(json_err)?;
                        leases.insert(channel.as_str(), bytes.as_slice())?;
                        LeaseOutcome::Held
                    }
                }
            };
            txn.commit()?;
            Ok(outcome)
        })
    }

    fn release_lease<'a>(
        &'a self,
        channel: &'a str,
        owner: &'a str,
    ) -> BoxFuture<'a, StoreResult<()>> {
        let (channel, owner) = (channel.to_string(), owner.to_string());
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            {
                let mut leases = txn.open_table(LEASES)?;
                let mine = match leases.get(channel.as_str())? {
                    Some(v) => serde_json::from_slice::<StoredLease>(v.value())
                        .map(|l| l.owner == owner)
                        .unwrap_or(false),
                    None => false,
                };
                if mine {
                    leases.remove(channel.as_str())?;
                }
            }
            txn.commit()?;
            Ok(())
        })
    }

    fn get_state<'a>(
        &'a self,
        scope: &'a str,
        key_name: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<String>>> {
        let k = key(&[scope, key_name]);
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let value = txn
                .open_table(PLATFORM)?
                .get(k.as_str())?
                .map(|v| v.value().to_string());
            Ok(value)
        })
    }

    fn put_state<'a>(
        &'a self,
        scope: &'a str,
        key_name: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, StoreResult<()>> {
        let (k, value) = (key(&[scope, key_name]), value.to_string());
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            txn.open_table(PLATFORM)?
                .insert(k.as_str(), value.as_str())?;
            txn.commit()?;
            Ok(())
        })
    }

    fn delete_state<'a>(
        &'a self,
        scope: &'a str,
        key_name: &'a str,
    ) -> BoxFuture<'a, StoreResult<()>> {
        let k = key(&[scope, key_name]);
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            txn.open_table(PLATFORM)?.remove(k.as_str())?;
            txn.commit()?;
            Ok(())
        })
    }

    fn list_state<'a>(
        &'a self,
        scope: &'a str,
    ) -> BoxFuture<'a, StoreResult<Vec<(String, String)>>> {
        let scope = scope.to_string();
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let (from, to) = under(&scope);
            let mut out = Vec::new();
            for item in txn
                .open_table(PLATFORM)?
                .range(from.as_str()..to.as_str())?
            {
                let (k, v) = item?;
                let mut parts = keys::split(k.value()).map_err(corrupt)?;
                let name = parts.pop().unwrap_or_default();
                out.push((name, v.value().to_string()));
            }
            Ok(out)
        })
    }

    fn forget_user<'a>(
        &'a self,
        platform: &'a str,
        user_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<ForgottenRows>> {
        let (platform, user_id) = (platform.to_string(), user_id.to_string());
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            let forgotten = forget_in(&txn, &platform, &user_id)?;
            txn.commit()?;
            Ok(forgotten)
        })
    }
}

/// Deletes `user_id`'s rows in every channel of `platform`, in one transaction.
fn forget_in(
    txn: &redb::WriteTransaction,
    platform: &str,
    user_id: &str,
) -> Result<ForgottenRows, redb::Error> {
    let mut forgotten = ForgottenRows::default();
    // Every channel of the platform is named `platform:...`, a part that needs no escape, so
    // their keys are the range from `platform:` to `platform;` (`;` follows `:`).
    let (from, to) = (format!("{platform}:"), format!("{platform};"));
    // User stats: one key per channel at most; skip from channel to channel.
    let mut users = txn.open_table(USERS)?;
    let mut cursor = from.clone();
    loop {
        let next = users
            .range(cursor.as_str()..to.as_str())?
            .next()
            .transpose()?
            .map(|(k, _)| k.value().to_string());
        let Some(found) = next else { break };
        let channel = keys::split(&found)
            .map_err(corrupt)?
            .into_iter()
            .next()
            .unwrap_or_default();
        if on_platform(&channel, platform)
            && users.remove(key(&[&channel, user_id]).as_str())?.is_some()
        {
            forgotten.user_stats += 1;
            forgotten.channels.insert(channel.clone());
        }
        cursor = under(&channel).1;
    }
    let mut warnings = txn.open_table(WARNINGS)?;
    let mut doomed = Vec::new();
    for item in warnings.range(from.as_str()..to.as_str())? {
        let (k, _) = item?;
        let [channel, _, user] = keys::split_n::<3>(k.value()).map_err(corrupt)?;
        if user == user_id && on_platform(&channel, platform) {
            doomed.push(k.value().to_string());
            forgotten.channels.insert(channel);
        }
    }
    for k in &doomed {
        warnings.remove(k.as_str())?;
    }
    forgotten.warnings = doomed.len() as u64;
    let mut log = txn.open_table(MODLOG)?;
    let mut doomed = Vec::new();
    for item in log.range(from.as_str()..to.as_str())? {
        let (k, v) = item?;
        let stored: StoredLogEntry = serde_json::from_slice(v.value()).map_err(json_err)?;
        if stored.entry.user_id == user_id {
            let channel = keys::split(k.value())
                .map_err(corrupt)?
                .into_iter()
                .next()
                .unwrap_or_default();
            if on_platform(&channel, platform) {
                doomed.push(k.value().to_string());
                forgotten.channels.insert(channel);
            }
        }
    }
    for k in &doomed {
        log.remove(k.as_str())?;
    }
    forgotten.moderation_log = doomed.len() as u64;
    Ok(forgotten)
}

/// Migration 2: keys of version 1 joined their parts with the separator unescaped, so a name
/// holding it could not be read back. Each key is split the way its table's fixed parts allow
/// (channel names never held the separator, kinds and times neither; the last part takes the
/// rest) and written again escaped. Rules rows whose name holds a control character could only
/// have been made through that hole and can never validate again: they are dropped, and said.
fn reencode_legacy_keys(txn: &redb::WriteTransaction) -> Result<(), redb::Error> {
    fn head_rest(key: &str, fixed: usize) -> Vec<String> {
        key.splitn(fixed + 1, keys::SEP)
            .map(str::to_string)
            .collect()
    }
    let config = |k: &str| {
        let parts = head_rest(k, 2);
        let bad_name = parts.get(2).is_some_and(|n| n.contains(char::is_control));
        if bad_name {
            tracing::warn!(key = ?k, "embedded store migration 2: dropping a rules row whose name holds a control character (it cannot validate)");
            return None;
        }
        Some(parts)
    };
    rekey(txn, CONFIG, config)?;
    rekey(txn, COUNTERS, |k| Some(head_rest(k, 1)))?;
    rekey(txn, USERS, |k| Some(head_rest(k, 1)))?;
    // The version-1 reader took the user id as the last part and the filter as the middle.
    rekey(txn, WARNINGS, |k| {
        let mut parts = head_rest(k, 1);
        let rest = parts.pop().unwrap_or_default();
        let (filter, user) = rest.rsplit_once(keys::SEP).unwrap_or(("", rest.as_str()));
        parts.push(filter.to_string());
        parts.push(user.to_string());
        Some(parts)
    })?;
    rekey(txn, MODLOG, |k| Some(head_rest(k, 2)))?;
    rekey(txn, LEASES, |k| Some(vec![k.to_string()]))?;
    Ok(())
}

/// Rewrites every key of `table` as `legacy` splits it (`None`: the row goes).
fn rekey<V: redb::Value + 'static>(
    txn: &redb::WriteTransaction,
    table: TableDefinition<&str, V>,
    legacy: impl Fn(&str) -> Option<Vec<String>>,
) -> Result<(), redb::Error> {
    let mut table = txn.open_table(table)?;
    let mut moves: Vec<(String, Option<String>, Vec<u8>)> = Vec::new();
    for item in table.iter()? {
        let (k, v) = item?;
        let old = k.value().to_string();
        let new = legacy(&old).map(|parts| {
            let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
            keys::join(&parts)
        });
        if new.as_deref() != Some(old.as_str()) {
            let bytes = V::as_bytes(&v.value()).as_ref().to_vec();
            moves.push((old, new, bytes));
        }
    }
    for (old, new, bytes) in moves {
        table.remove(old.as_str())?;
        if let Some(new) = new {
            table.insert(new.as_str(), V::from_bytes(&bytes))?;
        }
    }
    Ok(())
}

/// The database was migrated by a newer firehose.
pub(super) fn newer_schema(found: u64) -> StoreError {
    StoreError::Schema(format!(
        "the database has schema version {found}, newer than this build's {}; upgrade firehose",
        migrations::latest()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableTableMetadata;

    fn memory() -> EmbeddedStore {
        EmbeddedStore::open(&StoreConfig::default()).expect("in memory")
    }

    #[tokio::test]
    async fn names_holding_the_separator_or_the_escape_read_back_exactly() {
        let store = memory();
        store.migrate().await.expect("migrate");
        let mut write = ChannelWrite::new("twitch:chan", 60);
        let names = ["!b\u{1f}c", "!e\u{1e}1", "!plain"];
        write.rules_upsert = names
            .iter()
            .map(|n| RuleRow {
                kind: "command".into(),
                name: n.to_string(),
                body: "{}".into(),
            })
            .collect();
        write.counters = vec![("uses:!b\u{1f}c".into(), 3)];
        write.warnings = vec![WarningRow {
            filter: "f\u{1f}x".into(),
            user_id: "u\u{1e}".into(),
            expires_ms: i64::MAX,
        }];
        store.write(&write).await.expect("write");
        let stored = store.load_channel("twitch:chan").await.expect("load");
        let mut read: Vec<&str> = stored.rules.iter().map(|r| r.name.as_str()).collect();
        read.sort();
        let mut want = names.to_vec();
        want.sort();
        assert_eq!(read, want);
        assert_eq!(stored.counters["uses:!b\u{1f}c"], 3);
        assert_eq!(stored.warnings, write.warnings);
    }

    /// Expired user stats and log rows leave the file a bounded slice per sweep (a write runs
    /// one at most once per `SWEEP_EVERY`), resuming where the last one stopped, and live rows
    /// stay.
    #[tokio::test]
    async fn expired_rows_leave_the_file_in_bounded_sweeps() {
        let store = memory();
        store.migrate().await.expect("migrate");
        let (expired_users, live_users, expired_log) = (600, 10, 300);
        {
            let txn = store.db.begin_write().expect("txn");
            {
                let mut users = txn.open_table(USERS).expect("users");
                for i in 0..expired_users + live_users {
                    let user = StoredUser {
                        login: format!("u{i}"),
                        messages: 1,
                        last_seen_ms: 1,
                        warnings: 0,
                        // Interleaved: every 61st row lives (one never expires).
                        expires_ms: if i % 61 == 0 { 0 } else { 1 },
                    };
                    let bytes = serde_json::to_vec(&user).expect("json");
                    let k = key(&[&format!("twitch:c{}", i % 7), &format!("{i:05}")]);
                    users.insert(k.as_str(), bytes.as_slice()).expect("insert");
                }
                let mut log = txn.open_table(MODLOG).expect("log");
                for i in 0..expired_log {
                    let entry = StoredLogEntry {
                        entry: ModerationEntry {
                            id: format!("e{i}"),
                            at_ms: 1,
                            action: "delete".into(),
                            user_id: "u".into(),
                            rule: "caps".into(),
                            reason: String::new(),
                            duration_s: 0,
                        },
                        expires_ms: 2,
                    };
                    let bytes = serde_json::to_vec(&entry).expect("json");
                    let k = key(&["twitch:c0", &format!("{i:020}"), &format!("e{i}")]);
                    log.insert(k.as_str(), bytes.as_slice()).expect("insert");
                }
            }
            txn.commit().expect("commit");
        }
        let live = (0..expired_users + live_users)
            .filter(|i| i % 61 == 0)
            .count();
        let rows = |table| {
            let txn = store.db.begin_read().expect("read");
            match table {
                "users" => txn.open_table(USERS).expect("users").len().expect("len"),
                _ => txn.open_table(MODLOG).expect("log").len().expect("len"),
            }
        };
        let all_expired = (expired_users + live_users - live + expired_log) as u64;
        let mut removed = 0;
        let mut sweeps = 0;
        while removed < all_expired {
            let now = store.sweep_expired(SWEEP_ROWS).await.expect("sweep");
            assert!(now <= 2 * SWEEP_ROWS as u64, "bounded: {now}");
            removed += now;
            sweeps += 1;
            assert!(
                sweeps <= 10,
                "the sweeps make progress ({removed} of {all_expired})"
            );
        }
        assert!(sweeps >= 3, "more than one slice was needed: {sweeps}");
        assert_eq!(rows("users"), live as u64);
        assert_eq!(rows("log"), 0);
        // A write sweeps too (nothing left to remove), and live rows are still read.
        assert_eq!(store.sweep_expired(SWEEP_ROWS).await.expect("sweep"), 0);
        let read = store
            .load_users("twitch:c0", &["00000".to_string()])
            .await
            .expect("users");
        assert_eq!(read.len(), 1);
    }

    #[test]
    fn writes_sweep_at_most_once_per_interval() {
        let mut cursors = SweepCursors::default();
        assert!(cursors.write_sweep_due(), "the first write sweeps");
        assert!(
            !cursors.write_sweep_due(),
            "the next one, at once, does not"
        );
        cursors.last_write_sweep = Some(std::time::Instant::now() - SWEEP_EVERY);
        assert!(cursors.write_sweep_due(), "one an interval later does");
    }

    #[tokio::test]
    async fn a_key_that_does_not_decode_fails_the_load() {
        let store = memory();
        store.migrate().await.expect("migrate");
        {
            let txn = store.db.begin_write().expect("txn");
            txn.open_table(CONFIG)
                .expect("table")
                .insert("twitch:chan\u{1f}command\u{1f}!x\u{1e}z", "{}")
                .expect("insert");
            txn.commit().expect("commit");
        }
        let error = store
            .load_channel("twitch:chan")
            .await
            .expect_err("corrupt key");
        assert!(error.to_string().contains("not a valid key"), "{error}");
    }

    #[tokio::test]
    async fn version_one_files_are_re_encoded_by_migration_two() {
        let dir = tempfile::tempdir().expect("dir");
        let config = StoreConfig {
            embedded_path: dir.path().join("state.redb").display().to_string(),
            ..StoreConfig::default()
        };
        // A file as version 1 wrote it: parts joined by a bare U+001F.
        {
            let store = EmbeddedStore::open(&config).expect("open");
            let txn = store.db.begin_write().expect("txn");
            {
                txn.open_table(META)
                    .expect("meta")
                    .insert(SCHEMA_VERSION, 1)
                    .expect("version");
                let mut rules = txn.open_table(CONFIG).expect("config");
                let body = r#"{"name":"!hug","response":"hugs"}"#;
                rules
                    .insert("twitch:chan\u{1f}command\u{1f}!hug", body)
                    .expect("rule");
                // The hole of version 1: a name with the separator made every rule unreadable.
                rules
                    .insert("twitch:chan\u{1f}command\u{1f}!b\u{1f}c", "{}")
                    .expect("bad rule");
                let settings = r#"{"regulars":[],"nuke":{"window_s":120,"default_scrollback_s":60,"default_action":{"timeout":60},"exempt":"vip"}}"#;
                rules
                    .insert("twitch:chan\u{1f}settings\u{1f}channel", settings)
                    .expect("settings");
                let mut counters = txn.open_table(COUNTERS).expect("counters");
                counters
                    .insert("twitch:chan\u{1f}uses:!b\u{1f}c", 4)
                    .expect("counter");
                counters
                    .insert("twitch:chan\u{1f}messages", 9)
                    .expect("counter");
                txn.open_table(WARNINGS)
                    .expect("warnings")
                    .insert("twitch:chan\u{1f}caps\u{1f}u1", i64::MAX)
                    .expect("warning");
                // As version 1 wrote a user: no expiry field (it never expires).
                let user = serde_json::to_vec(&serde_json::json!({
                    "login": "alice", "messages": 9, "last_seen_ms": 1, "warnings": 0
                }))
                .expect("json");
                txn.open_table(USERS)
                    .expect("users")
                    .insert("twitch:chan\u{1f}u\u{1e}1", user.as_slice())
                    .expect("user");
                txn.open_table(MODLOG).expect("log");
                txn.open_table(LEASES).expect("leases");
            }
            txn.commit().expect("commit");
        }
        let store = EmbeddedStore::open(&config).expect("reopen");
        let applied = store.migrate().await.expect("migrate");
        assert_eq!(applied, (2..=migrations::latest()).collect::<Vec<u32>>());
        let stored = store.load_channel("twitch:chan").await.expect("load");
        let rules = stored.channel_rules().expect("valid").expect("some");
        assert_eq!(rules.commands.len(), 1, "the bad row went, the rest stayed");
        assert_eq!(rules.commands[0].name, "!hug");
        assert_eq!(stored.counters["uses:!b\u{1f}c"], 4);
        assert_eq!(stored.counters["messages"], 9);
        assert_eq!(stored.warnings.len(), 1);
        assert_eq!(stored.warnings[0].user_id, "u1");
        // A legacy key holding the escape character now means what it meant then.
        let users = store
            .load_users("twitch:chan", &["u\u{1e}1".to_string()])
            .await
            .expect("users");
        assert_eq!(users[0].login, "alice");
        // Migrating again does nothing.
        assert!(store.migrate().await.expect("again").is_empty());
    }
}
