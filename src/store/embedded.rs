//! The embedded backend: redb, one file on the box (or memory only), for single-box runs, the
//! demo and tests. The default when no CQL contact point is configured.
//!
//! Same rows as the CQL schema, in redb tables with string keys whose parts are joined by
//! `\x1f` (so a channel's rows are one key range). Expiry (warnings, the moderation log) is an
//! `expires_ms` stored with the row: reads skip expired rows and writes purge them. redb is
//! blocking, so every call runs on tokio's blocking pool.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::migrations;
use super::model::{ChannelWrite, LeaseOutcome, ModerationEntry, StoredChannel, UserRow};
use super::model::{RuleRow, WarningRow};
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

const SEP: char = '\u{1f}';
const SCHEMA_VERSION: &str = "schema_version";

/// A redb database holding channel state.
pub struct EmbeddedStore {
    db: Arc<Database>,
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
        Ok(EmbeddedStore { db: Arc::new(db) })
    }

    /// Runs `f` on the blocking pool with the database.
    fn blocking<T, F>(&self, f: F) -> BoxFuture<'static, StoreResult<T>>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, redb::Error> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || f(&db))
                .await
                .map_err(|e| StoreError::Unavailable(format!("embedded store task: {e}")))?
                .map_err(|e| StoreError::Request(format!("embedded store: {e}")))
        })
    }
}

/// `a\x1fb\x1f...`
fn key(parts: &[&str]) -> String {
    let mut key = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            key.push(SEP);
        }
        key.push_str(part);
    }
    key
}

/// The key range of everything under `prefix` (a key followed by the separator).
fn under(prefix: &str) -> (String, String) {
    (format!("{prefix}{SEP}"), format!("{prefix}\u{20}"))
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
            // Version 1: the tables. Opening a table in a write transaction creates it.
            txn.open_table(CONFIG)?;
            txn.open_table(COUNTERS)?;
            txn.open_table(USERS)?;
            txn.open_table(WARNINGS)?;
            txn.open_table(MODLOG)?;
            txn.open_table(LEASES)?;
            // Version 2: platform records.
            txn.open_table(PLATFORM)?;
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
                let mut parts = k.value().rsplitn(3, SEP);
                let name = parts.next().unwrap_or_default().to_string();
                let kind = parts.next().unwrap_or_default().to_string();
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
                let name = k.value()[from.len()..].to_string();
                stored.counters.insert(name, v.value());
            }
            let now = now_ms();
            for item in txn
                .open_table(WARNINGS)?
                .range(from.as_str()..to.as_str())?
            {
                let (k, v) = item?;
                let mut parts = k.value().rsplitn(3, SEP);
                let user_id = parts.next().unwrap_or_default().to_string();
                let filter = parts.next().unwrap_or_default().to_string();
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
            let mut rows = Vec::new();
            for user_id in user_ids {
                if let Some(v) = table.get(key(&[&channel, &user_id]).as_str())? {
                    let user: StoredUser = serde_json::from_slice(v.value()).map_err(json_err)?;
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
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            let c = write.channel.as_str();
            {
                let mut counters = txn.open_table(COUNTERS)?;
                for (name, value) in &write.counters {
                    counters.insert(key(&[c, name]).as_str(), *value)?;
                }
                let mut users = txn.open_table(USERS)?;
                for u in &write.users {
                    let stored = StoredUser {
                        login: u.login.clone(),
                        messages: u.messages,
                        last_seen_ms: u.last_seen_ms,
                        warnings: u.warnings,
                    };
                    let bytes = serde_json::to_vec(&stored).map_err(json_err)?;
                    users.insert(key(&[c, &u.user_id]).as_str(), bytes.as_slice())?;
                }
                let now = now_ms();
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
                if !write.moderation.is_empty() {
                    log.retain_in(from.as_str()..to.as_str(), |_, v| {
                        serde_json::from_slice::<StoredLogEntry>(v)
                            .map(|e| e.expires_ms > now)
                            .unwrap_or(false)
                    })?;
                }
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
                out.push((k.value()[from.len()..].to_string(), v.value().to_string()));
            }
            Ok(out)
        })
    }
}

/// The database was migrated by a newer firehose.
pub(super) fn newer_schema(found: u64) -> StoreError {
    StoreError::Schema(format!(
        "the database has schema version {found}, newer than this build's {}; upgrade firehose",
        migrations::latest()
    ))
}
