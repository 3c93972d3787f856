//! The CQL backend: ScyllaDB (or Apache Cassandra, same protocol) through the `scylla` driver.
//!
//! Writes are prepared statements marked idempotent (they write absolute values, so the
//! driver and the writer may retry them), grouped into unlogged batches only within one
//! partition (a channel's counters; one user-stats bucket; one moderation-log day), at most
//! [`BATCH_ROWS`] rows each. Rules items are written one by one (their bodies can be large).
//! Every request has the configured timeout, and every write a client-side monotonic
//! timestamp (so a late, timed-out write never overwrites its own retry). Leases use
//! lightweight transactions. User stats and moderation log rows carry their retention as a
//! TTL (`store.user_stats_ttl_s`, `store.moderation_log_ttl_s`), renewed by every write.
//!
//! Connecting: `store.scylla_username` with its password (a [`crate::config::Secret`], never
//! printed), TLS through rustls when `store.scylla_tls` is on (see [`super::cql_tls`]). A
//! refused login or a failed handshake is a configuration error naming its keys.
//!
//! Deleting one user's data ([`StateStore::forget_user`]) reads which partitions exist
//! (`SELECT DISTINCT`, paged) and deletes the user's rows in those of the platform's channels:
//! one user-stats bucket per channel (the user's bucket is known), the warnings and log entries
//! about the user found with per-partition filtering.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::address_translator::AddressTranslator;
use scylla::policies::timestamp_generator::MonotonicTimestampGenerator;
use scylla::response::query_result::QueryResult;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlValue, Row};
use tokio::sync::OnceCell;

use super::migrations::{self, MIGRATIONS};
use super::model::{on_platform, ForgottenRows, UserRow, WarningRow};
use super::model::{ChannelWrite, LeaseOutcome, ModerationEntry, RuleRow, StoredChannel};
use super::{log_day, user_bucket, StateStore, StoreError, StoreResult};
use crate::config::StoreConfig;

/// Most rows in one unlogged batch (well under Cassandra's batch size warning for our rows).
pub const BATCH_ROWS: usize = 50;
/// Requests in flight at once for one write.
const CONCURRENCY: usize = 8;
/// Days of moderation log read back at most when listing it.
const LOG_DAYS_BACK: i32 = 31;

/// A CQL session and the keyspace's prepared statements (prepared once, after migration).
pub struct ScyllaStore {
    session: Session,
    keyspace: String,
    replication: String,
    timeout: Duration,
    prepared: OnceCell<Prepared>,
    /// The platform-state statements (migration 2), prepared on first use.
    platform: OnceCell<PlatformStatements>,
    /// The statements that delete one user's data, prepared on first use.
    forget: OnceCell<ForgetStatements>,
}

struct ForgetStatements {
    user_partitions: PreparedStatement,
    user_row: PreparedStatement,
    user_delete: PreparedStatement,
    warning_partitions: PreparedStatement,
    warning_filters: PreparedStatement,
    warning_delete: PreparedStatement,
    log_partitions: PreparedStatement,
    log_entries: PreparedStatement,
    log_delete: PreparedStatement,
}

struct PlatformStatements {
    get: PreparedStatement,
    put: PreparedStatement,
    delete: PreparedStatement,
    list: PreparedStatement,
}

struct Prepared {
    counter: PreparedStatement,
    counter_delete: PreparedStatement,
    user: PreparedStatement,
    warning: PreparedStatement,
    rule_upsert: PreparedStatement,
    rule_delete: PreparedStatement,
    log: PreparedStatement,
    select_rules: PreparedStatement,
    select_counters: PreparedStatement,
    select_warnings: PreparedStatement,
    select_users: PreparedStatement,
    select_log: PreparedStatement,
    lease_insert: PreparedStatement,
    lease_renew: PreparedStatement,
    /// Takes a row whose owner cell expired (renewals rewrite every cell, so only a row
    /// written by an older version can be in that state).
    lease_orphan: PreparedStatement,
    lease_release: PreparedStatement,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("{what}: {e}"))
}

/// A failed connect, said in the operator's terms: a refused login and a failed TLS handshake
/// are configuration errors naming their keys (retrying cannot fix them), anything else is the
/// database being unreachable.
fn connect_error(config: &StoreConfig, error: &str) -> StoreError {
    let lower = error.to_ascii_lowercase();
    let auth = [
        "authentication",
        "password",
        "credentials",
        "bad credentials",
    ]
    .iter()
    .any(|w| lower.contains(w));
    let tls = [
        "certificate",
        "tls",
        "handshake",
        "unknownissuer",
        "peer sent no certificates",
    ]
    .iter()
    .any(|w| lower.contains(w));
    // The driver's texts never hold the password (it sends it, it does not print it); this is
    // the one place that could, so it is checked.
    let error = match &config.scylla_password {
        Some(p) if !p.expose().is_empty() => error.replace(p.expose(), "***"),
        _ => error.to_string(),
    };
    if auth {
        let login = if config.scylla_username.is_empty() {
            "no login configured (store.scylla_username)".to_string()
        } else {
            format!(
                "login as {:?} (store.scylla_username, FIREHOSE_SCYLLA_PASSWORD / store.scylla_password_file)",
                config.scylla_username
            )
        };
        StoreError::Config(format!("CQL authentication failed, {login}: {error}"))
    } else if tls && config.scylla_tls {
        StoreError::Config(format!(
            "CQL TLS handshake failed (store.scylla_ca_file, store.scylla_tls_server_name, store.scylla_client_cert_file): {error}"
        ))
    } else {
        unavailable("connecting to store.scylla_uri", error)
    }
}

impl ScyllaStore {
    /// Connects to `store.scylla_uri`.
    pub async fn connect(config: &StoreConfig) -> StoreResult<ScyllaStore> {
        Self::connect_with(config, None).await
    }

    /// Connects, rewriting node addresses through `translator` (tests put a fault-injecting
    /// proxy between the driver and the node this way).
    pub async fn connect_with(
        config: &StoreConfig,
        translator: Option<HashMap>,
    ) -> StoreResult<ScyllaStore> {
        let timeout = Duration::from_millis(config.request_timeout_ms);
        let profile = ExecutionProfile::builder()
            .request_timeout(Some(timeout))
            .build();
        // Client-side, monotonic write timestamps: a write that timed out for us but reaches
        // the node later than its retry carries the older timestamp and loses to the retry,
        // instead of overwriting a newer absolute value with an older one.
        let mut builder = SessionBuilder::new()
            .known_nodes(config.contact_points())
            .timestamp_generator(Arc::new(MonotonicTimestampGenerator::new()))
            .connection_timeout(timeout)
            .default_execution_profile_handle(profile.into_handle());
        if let Some(map) = translator {
            builder = builder.address_translator(Arc::new(map) as Arc<dyn AddressTranslator>);
        }
        let user = config.scylla_username.as_str();
        if !user.is_empty() {
            let Some(password) = config.scylla_password.as_ref() else {
                return Err(StoreError::Config(
                    "store.scylla_username is set but there is no password: set FIREHOSE_SCYLLA_PASSWORD or store.scylla_password_file".into(),
                ));
            };
            if !config.scylla_tls {
                tracing::warn!(
                    user,
                    "the CQL password goes to the nodes unencrypted: set store.scylla_tls"
                );
            }
            builder = builder.user(user, password.expose());
        }
        if config.scylla_tls {
            builder = builder.tls_context(Some(super::cql_tls::client_config(config)?));
        }
        let session = tokio::time::timeout(timeout * 5, builder.build())
            .await
            .map_err(|_| unavailable("connecting to store.scylla_uri", "timed out"))?
            .map_err(|e| connect_error(config, &e.to_string()))?;
        Ok(ScyllaStore {
            session,
            keyspace: config.keyspace.clone(),
            replication: config.replication.clone(),
            timeout,
            prepared: OnceCell::new(),
            platform: OnceCell::new(),
            forget: OnceCell::new(),
        })
    }

    fn cql(&self, text: &str) -> String {
        text.replace("{ks}", &self.keyspace)
    }

    /// Runs a DDL or one-off statement (unprepared), with the timeout.
    async fn run(&self, text: &str) -> StoreResult<QueryResult> {
        let cql = self.cql(text);
        tokio::time::timeout(
            self.timeout * 5,
            self.session.query_unpaged(cql.as_str(), ()),
        )
        .await
        .map_err(|_| unavailable(&cql, "timed out"))?
        .map_err(|e| unavailable(&cql, e))
    }

    async fn prepare(&self, text: &str, idempotent: bool) -> StoreResult<PreparedStatement> {
        let cql = self.cql(text);
        let mut statement = self
            .session
            .prepare(cql.as_str())
            .await
            .map_err(|e| unavailable(&cql, e))?;
        statement.set_is_idempotent(idempotent);
        statement.set_request_timeout(Some(self.timeout));
        Ok(statement)
    }

    async fn platform(&self) -> StoreResult<&PlatformStatements> {
        self.platform
            .get_or_try_init(|| async {
                Ok(PlatformStatements {
                    get: self
                        .prepare(
                            "SELECT value FROM {ks}.platform_state WHERE scope = ? AND key = ?",
                            true,
                        )
                        .await?,
                    put: self
                        .prepare(
                            "INSERT INTO {ks}.platform_state (scope, key, value, updated_ms) VALUES (?, ?, ?, ?)",
                            true,
                        )
                        .await?,
                    delete: self
                        .prepare(
                            "DELETE FROM {ks}.platform_state WHERE scope = ? AND key = ?",
                            true,
                        )
                        .await?,
                    list: self
                        .prepare(
                            "SELECT key, value FROM {ks}.platform_state WHERE scope = ?",
                            true,
                        )
                        .await?,
                })
            })
            .await
    }

    async fn forget_statements(&self) -> StoreResult<&ForgetStatements> {
        self.forget
            .get_or_try_init(|| async {
                Ok(ForgetStatements {
                    user_partitions: self
                        .prepare("SELECT DISTINCT channel, bucket FROM {ks}.user_stats", true)
                        .await?,
                    user_row: self
                        .prepare(
                            "SELECT user_id FROM {ks}.user_stats WHERE channel = ? AND bucket = ? AND user_id = ?",
                            true,
                        )
                        .await?,
                    user_delete: self
                        .prepare(
                            "DELETE FROM {ks}.user_stats WHERE channel = ? AND bucket = ? AND user_id = ?",
                            true,
                        )
                        .await?,
                    warning_partitions: self
                        .prepare("SELECT DISTINCT channel FROM {ks}.warnings", true)
                        .await?,
                    warning_filters: self
                        .prepare(
                            "SELECT filter FROM {ks}.warnings WHERE channel = ? AND user_id = ? ALLOW FILTERING",
                            true,
                        )
                        .await?,
                    warning_delete: self
                        .prepare(
                            "DELETE FROM {ks}.warnings WHERE channel = ? AND filter = ? AND user_id = ?",
                            true,
                        )
                        .await?,
                    log_partitions: self
                        .prepare("SELECT DISTINCT channel, day FROM {ks}.moderation_log", true)
                        .await?,
                    log_entries: self
                        .prepare(
                            "SELECT at_ms, id FROM {ks}.moderation_log WHERE channel = ? AND day = ? AND user_id = ? ALLOW FILTERING",
                            true,
                        )
                        .await?,
                    log_delete: self
                        .prepare(
                            "DELETE FROM {ks}.moderation_log WHERE channel = ? AND day = ? AND at_ms = ? AND id = ?",
                            true,
                        )
                        .await?,
                })
            })
            .await
    }

    /// Every row of a paged read (each page within the timeout).
    async fn scan<R>(
        &self,
        statement: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> StoreResult<Vec<R>>
    where
        R: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm>,
    {
        let what = statement.get_statement();
        let pager = tokio::time::timeout(
            self.timeout * 2,
            self.session.execute_iter(statement.clone(), values),
        )
        .await
        .map_err(|_| unavailable(what, "timed out"))?
        .map_err(|e| unavailable(what, e))?;
        let mut stream = pager
            .rows_stream::<R>()
            .map_err(|e| StoreError::Request(format!("{what}: {e}")))?;
        let mut out = Vec::new();
        loop {
            let next = tokio::time::timeout(self.timeout * 2, stream.next())
                .await
                .map_err(|_| unavailable(what, "timed out"))?;
            match next {
                Some(row) => out.push(row.map_err(|e| unavailable(what, e))?),
                None => return Ok(out),
            }
        }
    }

    async fn prepared(&self) -> StoreResult<&Prepared> {
        self.prepared
            .get_or_try_init(|| async {
                Ok(Prepared {
                    counter: self
                        .prepare(
                            "INSERT INTO {ks}.channel_counters (channel, name, value) VALUES (?, ?, ?)",
                            true,
                        )
                        .await?,
                    counter_delete: self
                        .prepare(
                            "DELETE FROM {ks}.channel_counters WHERE channel = ? AND name = ?",
                            true,
                        )
                        .await?,
                    user: self
                        .prepare(
                            "INSERT INTO {ks}.user_stats (channel, bucket, user_id, login, messages, last_seen_ms, warnings) VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ?",
                            true,
                        )
                        .await?,
                    warning: self
                        .prepare(
                            "INSERT INTO {ks}.warnings (channel, filter, user_id, expires_ms) VALUES (?, ?, ?, ?) USING TTL ?",
                            true,
                        )
                        .await?,
                    rule_upsert: self
                        .prepare(
                            "INSERT INTO {ks}.channel_config (channel, kind, name, body) VALUES (?, ?, ?, ?)",
                            true,
                        )
                        .await?,
                    rule_delete: self
                        .prepare(
                            "DELETE FROM {ks}.channel_config WHERE channel = ? AND kind = ? AND name = ?",
                            true,
                        )
                        .await?,
                    log: self
                        .prepare(
                            "INSERT INTO {ks}.moderation_log (channel, day, at_ms, id, action, user_id, rule, reason, duration_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?",
                            true,
                        )
                        .await?,
                    select_rules: self
                        .prepare("SELECT kind, name, body FROM {ks}.channel_config WHERE channel = ?", true)
                        .await?,
                    select_counters: self
                        .prepare("SELECT name, value FROM {ks}.channel_counters WHERE channel = ?", true)
                        .await?,
                    select_warnings: self
                        .prepare(
                            "SELECT filter, user_id, expires_ms FROM {ks}.warnings WHERE channel = ?",
                            true,
                        )
                        .await?,
                    select_users: self
                        .prepare(
                            "SELECT user_id, login, messages, last_seen_ms, warnings FROM {ks}.user_stats WHERE channel = ? AND bucket = ? AND user_id IN ?",
                            true,
                        )
                        .await?,
                    select_log: self
                        .prepare(
                            "SELECT id, at_ms, action, user_id, rule, reason, duration_s FROM {ks}.moderation_log WHERE channel = ? AND day = ? LIMIT ?",
                            true,
                        )
                        .await?,
                    lease_insert: self
                        .prepare(
                            "INSERT INTO {ks}.channel_leases (channel, owner, expires_ms) VALUES (?, ?, ?) IF NOT EXISTS USING TTL ?",
                            false,
                        )
                        .await?,
                    lease_renew: self
                        .prepare(
                            "UPDATE {ks}.channel_leases USING TTL ? SET owner = ?, expires_ms = ? WHERE channel = ? IF owner = ?",
                            false,
                        )
                        .await?,
                    lease_orphan: self
                        .prepare(
                            "UPDATE {ks}.channel_leases USING TTL ? SET owner = ?, expires_ms = ? WHERE channel = ? IF owner = null",
                            false,
                        )
                        .await?,
                    lease_release: self
                        .prepare("DELETE FROM {ks}.channel_leases WHERE channel = ? IF owner = ?", false)
                        .await?,
                })
            })
            .await
    }

    async fn execute(
        &self,
        statement: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> StoreResult<QueryResult> {
        let what = statement.get_statement();
        tokio::time::timeout(
            self.timeout * 2,
            self.session.execute_unpaged(statement, values),
        )
        .await
        .map_err(|_| unavailable(what, "timed out"))?
        .map_err(|e| unavailable(what, e))
    }

    /// Writes `rows` of one partition with `statement` in unlogged batches.
    async fn batched<V>(&self, statement: &PreparedStatement, rows: Vec<V>) -> StoreResult<()>
    where
        V: scylla::serialize::row::SerializeRow + Send + Sync,
    {
        let mut rows = rows;
        while !rows.is_empty() {
            let rest = rows.split_off(rows.len().min(BATCH_ROWS));
            let chunk = std::mem::replace(&mut rows, rest);
            let mut batch = Batch::new(BatchType::Unlogged);
            for _ in 0..chunk.len() {
                batch.append_statement(statement.clone());
            }
            batch.set_is_idempotent(true);
            batch.set_request_timeout(Some(self.timeout));
            tokio::time::timeout(self.timeout * 2, self.session.batch(&batch, &chunk))
                .await
                .map_err(|_| unavailable("batch", "timed out"))?
                .map_err(|e| unavailable(statement.get_statement(), e))?;
        }
        Ok(())
    }
}

/// A `user_stats` row as selected: user id, login, messages, last seen, warnings.
type UserSelect = (
    String,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);
/// A `user_stats` insert: channel, bucket, user id, login, messages, last seen, warnings, TTL.
type UserInsert<'a> = (&'a str, i32, &'a str, &'a str, i64, i64, i64, i32);

/// An address map, as [`ScyllaStore::connect_with`] takes it.
pub type HashMap = std::collections::HashMap<SocketAddr, SocketAddr>;

fn rows<'a, R>(result: QueryResult, what: &str) -> StoreResult<Vec<R>>
where
    R: for<'f> scylla::deserialize::row::DeserializeRow<'f, 'f>,
{
    let rows = result
        .into_rows_result()
        .map_err(|e| StoreError::Request(format!("{what}: {e}")))?;
    rows.rows::<R>()
        .map_err(|e| StoreError::Request(format!("{what}: {e}")))?
        .collect::<Result<Vec<R>, _>>()
        .map_err(|e| StoreError::Request(format!("{what}: {e}")))
}

/// Whether an LWT result applied, and the `owner` column it shows when not.
fn lwt_outcome(result: QueryResult) -> StoreResult<(bool, Option<String>)> {
    let rows = result
        .into_rows_result()
        .map_err(|e| StoreError::Request(format!("lease: {e}")))?;
    let owner_index = rows.column_specs().iter().position(|c| c.name() == "owner");
    let row: Option<Row> = rows
        .maybe_first_row::<Row>()
        .map_err(|e| StoreError::Request(format!("lease: {e}")))?;
    let Some(row) = row else {
        return Err(StoreError::Request("lease: no [applied] row".into()));
    };
    let applied = matches!(row.columns.first(), Some(Some(CqlValue::Boolean(true))));
    let owner = owner_index
        .and_then(|i| row.columns.get(i).cloned().flatten())
        .and_then(CqlValue::into_string);
    Ok((applied, owner))
}

fn now_ms() -> i64 {
    i64::try_from(crate::engine::millis(std::time::SystemTime::now())).unwrap_or(i64::MAX)
}

impl StateStore for ScyllaStore {
    fn backend(&self) -> &'static str {
        "scylla"
    }

    fn migrate(&self) -> BoxFuture<'_, StoreResult<Vec<u32>>> {
        Box::pin(async move {
            self.run(&format!(
                "CREATE KEYSPACE IF NOT EXISTS {{ks}} WITH replication = {}",
                self.replication
            ))
            .await?;
            self.run(
                "CREATE TABLE IF NOT EXISTS {ks}.schema_migrations (
                    version int PRIMARY KEY, description text, applied_at_ms bigint)",
            )
            .await?;
            let current = self.schema_version().await?;
            if current > migrations::latest() {
                return Err(super::embedded::newer_schema(current.into()));
            }
            let mut applied = Vec::new();
            for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
                for statement in migration.cql {
                    self.run(statement).await?;
                }
                let record = format!(
                    "INSERT INTO {{ks}}.schema_migrations (version, description, applied_at_ms) VALUES ({}, '{}', {})",
                    migration.version,
                    migration.description.replace('\'', "''"),
                    now_ms()
                );
                self.run(&record).await?;
                applied.push(migration.version);
            }
            if !applied.is_empty() {
                self.session
                    .await_schema_agreement()
                    .await
                    .map_err(|e| unavailable("schema agreement", e))?;
            }
            Ok(applied)
        })
    }

    fn schema_version(&self) -> BoxFuture<'_, StoreResult<u32>> {
        Box::pin(async move {
            let result = match self.run("SELECT version FROM {ks}.schema_migrations").await {
                Ok(result) => result,
                // No keyspace or table yet: nothing applied.
                Err(StoreError::Unavailable(e))
                    if e.contains("does not exist") || e.contains("unconfigured table") =>
                {
                    return Ok(0)
                }
                Err(e) => return Err(e),
            };
            let versions: Vec<(i32,)> = rows(result, "schema_migrations")?;
            Ok(versions
                .into_iter()
                .map(|(v,)| u32::try_from(v).unwrap_or(0))
                .max()
                .unwrap_or(0))
        })
    }

    fn load_channel<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, StoreResult<StoredChannel>> {
        Box::pin(async move {
            let p = self.prepared().await?;
            let (rules, counters, warnings) = futures::try_join!(
                self.execute(&p.select_rules, (channel,)),
                self.execute(&p.select_counters, (channel,)),
                self.execute(&p.select_warnings, (channel,)),
            )?;
            let mut stored = StoredChannel::default();
            for (kind, name, body) in rows::<(String, String, String)>(rules, "channel_config")? {
                stored.rules.push(RuleRow { kind, name, body });
            }
            stored.rules.sort();
            let counters: Vec<(String, i64)> = rows(counters, "channel_counters")?;
            stored.counters = counters.into_iter().collect::<BTreeMap<_, _>>();
            let now = now_ms();
            for (filter, user_id, expires_ms) in
                rows::<(String, String, i64)>(warnings, "warnings")?
            {
                if expires_ms > now {
                    stored.warnings.push(WarningRow {
                        filter,
                        user_id,
                        expires_ms,
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
        Box::pin(async move {
            let p = self.prepared().await?;
            let mut by_bucket: BTreeMap<i32, Vec<String>> = BTreeMap::new();
            for id in user_ids {
                by_bucket
                    .entry(user_bucket(id))
                    .or_default()
                    .push(id.clone());
            }
            let queries = by_bucket.into_iter().flat_map(|(bucket, ids)| {
                ids.chunks(100)
                    .map(|chunk| (bucket, chunk.to_vec()))
                    .collect::<Vec<_>>()
            });
            let results: Vec<Vec<UserRow>> = futures::stream::iter(queries)
                .map(|(bucket, ids)| async move {
                    let result = self
                        .execute(&p.select_users, (channel, bucket, ids))
                        .await?;
                    let found: Vec<UserSelect> = rows(result, "user_stats")?;
                    Ok::<_, StoreError>(
                        found
                            .into_iter()
                            .map(
                                |(user_id, login, messages, last_seen_ms, warnings)| UserRow {
                                    user_id,
                                    login: login.unwrap_or_default(),
                                    messages: messages.unwrap_or(0),
                                    last_seen_ms: last_seen_ms.unwrap_or(0),
                                    warnings: warnings.unwrap_or(0),
                                },
                            )
                            .collect(),
                    )
                })
                .buffer_unordered(CONCURRENCY)
                .try_collect()
                .await?;
            Ok(results.into_iter().flatten().collect())
        })
    }

    fn write<'a>(&'a self, write: &'a ChannelWrite) -> BoxFuture<'a, StoreResult<u64>> {
        Box::pin(async move {
            let p = self.prepared().await?;
            let c = write.channel.as_str();
            let now = now_ms();
            let mut jobs: Vec<BoxFuture<'_, StoreResult<()>>> = Vec::new();
            if !write.counters.is_empty() {
                let values: Vec<(&str, &str, i64)> = write
                    .counters
                    .iter()
                    .map(|(n, v)| (c, n.as_str(), *v))
                    .collect();
                jobs.push(Box::pin(self.batched(&p.counter, values)));
            }
            if !write.counters_delete.is_empty() {
                let values: Vec<(&str, &str)> = write
                    .counters_delete
                    .iter()
                    .map(|n| (c, n.as_str()))
                    .collect();
                jobs.push(Box::pin(self.batched(&p.counter_delete, values)));
            }
            let mut buckets: BTreeMap<i32, Vec<UserInsert<'_>>> = BTreeMap::new();
            // TTL 0 is "no TTL" in CQL.
            let user_ttl = i32::try_from(write.user_ttl_s).unwrap_or(i32::MAX);
            for u in &write.users {
                let bucket = user_bucket(&u.user_id);
                buckets.entry(bucket).or_default().push((
                    c,
                    bucket,
                    u.user_id.as_str(),
                    u.login.as_str(),
                    u.messages,
                    u.last_seen_ms,
                    u.warnings,
                    user_ttl,
                ));
            }
            for (_, values) in buckets {
                jobs.push(Box::pin(self.batched(&p.user, values)));
            }
            let warnings: Vec<(&str, &str, &str, i64, i32)> = write
                .warnings
                .iter()
                .filter(|w| w.expires_ms > now)
                .map(|w| {
                    let ttl = ((w.expires_ms - now) / 1000 + 1).clamp(1, i64::from(i32::MAX));
                    (
                        c,
                        w.filter.as_str(),
                        w.user_id.as_str(),
                        w.expires_ms,
                        ttl as i32,
                    )
                })
                .collect();
            if !warnings.is_empty() {
                jobs.push(Box::pin(self.batched(&p.warning, warnings)));
            }
            let mut days: BTreeMap<i32, Vec<_>> = BTreeMap::new();
            let ttl = i32::try_from(write.moderation_ttl_s).unwrap_or(i32::MAX);
            for e in &write.moderation {
                let day = log_day(u64::try_from(e.at_ms).unwrap_or(0));
                days.entry(day).or_default().push((
                    c,
                    day,
                    e.at_ms,
                    e.id.as_str(),
                    e.action.as_str(),
                    e.user_id.as_str(),
                    e.rule.as_str(),
                    e.reason.as_str(),
                    e.duration_s,
                    ttl,
                ));
            }
            for (_, values) in days {
                jobs.push(Box::pin(self.batched(&p.log, values)));
            }
            for (kind, name) in &write.rules_delete {
                jobs.push(Box::pin(async move {
                    self.execute(&p.rule_delete, (c, kind.as_str(), name.as_str()))
                        .await
                        .map(drop)
                }));
            }
            for r in &write.rules_upsert {
                jobs.push(Box::pin(async move {
                    self.execute(
                        &p.rule_upsert,
                        (c, r.kind.as_str(), r.name.as_str(), r.body.as_str()),
                    )
                    .await
                    .map(drop)
                }));
            }
            futures::stream::iter(jobs)
                .buffer_unordered(CONCURRENCY)
                .try_collect::<Vec<()>>()
                .await?;
            Ok(write.rows())
        })
    }

    fn moderation_log<'a>(
        &'a self,
        channel: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, StoreResult<Vec<ModerationEntry>>> {
        Box::pin(async move {
            let p = self.prepared().await?;
            let today = log_day(crate::engine::millis(std::time::SystemTime::now()));
            let mut entries = Vec::new();
            for day in (today - LOG_DAYS_BACK..=today).rev() {
                if entries.len() >= limit {
                    break;
                }
                let want = i32::try_from(limit - entries.len()).unwrap_or(i32::MAX);
                let result = self.execute(&p.select_log, (channel, day, want)).await?;
                type LogRow = (String, i64, String, String, String, String, i64);
                for (id, at_ms, action, user_id, rule, reason, duration_s) in
                    rows::<LogRow>(result, "moderation_log")?
                {
                    entries.push(ModerationEntry {
                        id,
                        at_ms,
                        action,
                        user_id,
                        rule,
                        reason,
                        duration_s,
                    });
                }
            }
            entries.truncate(limit);
            Ok(entries)
        })
    }

    fn acquire_lease<'a>(
        &'a self,
        channel: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<LeaseOutcome>> {
        Box::pin(async move {
            let p = self.prepared().await?;
            let ttl_s = i32::try_from(ttl.as_secs().max(1)).unwrap_or(i32::MAX);
            let expires = now_ms().saturating_add(i64::from(ttl_s) * 1000);
            let inserted = self
                .execute(&p.lease_insert, (channel, owner, expires, ttl_s))
                .await?;
            let (applied, holder) = lwt_outcome(inserted)?;
            if applied {
                return Ok(LeaseOutcome::Held);
            }
            let renew = match holder {
                Some(holder) if holder == owner => &p.lease_renew,
                None => &p.lease_orphan,
                Some(holder) => return Ok(LeaseOutcome::HeldBy(holder)),
            };
            // Every cell is rewritten with the new TTL (owner too), so the lease lives on.
            let values = (ttl_s, owner, expires, channel, owner);
            let renewed = if std::ptr::eq(renew, &p.lease_orphan) {
                self.execute(renew, (ttl_s, owner, expires, channel))
                    .await?
            } else {
                self.execute(renew, values).await?
            };
            match lwt_outcome(renewed)? {
                (true, _) => Ok(LeaseOutcome::Held),
                (false, holder) => Ok(LeaseOutcome::HeldBy(holder.unwrap_or_default())),
            }
        })
    }

    fn release_lease<'a>(
        &'a self,
        channel: &'a str,
        owner: &'a str,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let p = self.prepared().await?;
            self.execute(&p.lease_release, (channel, owner)).await?;
            Ok(())
        })
    }

    fn get_state<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<String>>> {
        Box::pin(async move {
            let p = self.platform().await?;
            let found = self.execute(&p.get, (scope, key)).await?;
            let values: Vec<(String,)> = rows(found, "platform_state")?;
            Ok(values.into_iter().next().map(|(v,)| v))
        })
    }

    fn put_state<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let p = self.platform().await?;
            self.execute(&p.put, (scope, key, value, now_ms())).await?;
            Ok(())
        })
    }

    fn delete_state<'a>(&'a self, scope: &'a str, key: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let p = self.platform().await?;
            self.execute(&p.delete, (scope, key)).await?;
            Ok(())
        })
    }

    fn list_state<'a>(
        &'a self,
        scope: &'a str,
    ) -> BoxFuture<'a, StoreResult<Vec<(String, String)>>> {
        Box::pin(async move {
            let p = self.platform().await?;
            let found = self.execute(&p.list, (scope,)).await?;
            rows(found, "platform_state")
        })
    }

    fn forget_user<'a>(
        &'a self,
        platform: &'a str,
        user_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<ForgottenRows>> {
        Box::pin(async move {
            let f = self.forget_statements().await?;
            let mut forgotten = ForgottenRows::default();
            // User stats: the user's row can only be in its bucket of each channel.
            let bucket = user_bucket(user_id);
            let partitions: Vec<(String, i32)> = self.scan(&f.user_partitions, ()).await?;
            let channels: Vec<String> = partitions
                .into_iter()
                .filter(|(c, b)| *b == bucket && on_platform(c, platform))
                .map(|(c, _)| c)
                .collect();
            let removed: Vec<Option<String>> = futures::stream::iter(channels)
                .map(|channel| async move {
                    let found = self
                        .execute(&f.user_row, (channel.as_str(), bucket, user_id))
                        .await?;
                    if rows::<(String,)>(found, "user_stats")?.is_empty() {
                        return Ok::<_, StoreError>(None);
                    }
                    self.execute(&f.user_delete, (channel.as_str(), bucket, user_id))
                        .await?;
                    Ok(Some(channel))
                })
                .buffer_unordered(CONCURRENCY)
                .try_collect()
                .await?;
            for channel in removed.into_iter().flatten() {
                forgotten.user_stats += 1;
                forgotten.channels.insert(channel);
            }
            // Warnings: a partition per channel, the user's rows found by filtering in it.
            let partitions: Vec<(String,)> = self.scan(&f.warning_partitions, ()).await?;
            let channels = partitions
                .into_iter()
                .map(|(c,)| c)
                .filter(|c| on_platform(c, platform));
            let removed: Vec<(String, u64)> = futures::stream::iter(channels)
                .map(|channel| async move {
                    let filters: Vec<(String,)> = self
                        .scan(&f.warning_filters, (channel.as_str(), user_id))
                        .await?;
                    for (filter,) in &filters {
                        self.execute(
                            &f.warning_delete,
                            (channel.as_str(), filter.as_str(), user_id),
                        )
                        .await?;
                    }
                    Ok::<_, StoreError>((channel, filters.len() as u64))
                })
                .buffer_unordered(CONCURRENCY)
                .try_collect()
                .await?;
            for (channel, n) in removed.into_iter().filter(|(_, n)| *n > 0) {
                forgotten.warnings += n;
                forgotten.channels.insert(channel);
            }
            // The moderation log: a partition per channel and day.
            let partitions: Vec<(String, i32)> = self.scan(&f.log_partitions, ()).await?;
            let partitions = partitions
                .into_iter()
                .filter(|(c, _)| on_platform(c, platform));
            let removed: Vec<(String, u64)> = futures::stream::iter(partitions)
                .map(|(channel, day)| async move {
                    let entries: Vec<(i64, String)> = self
                        .scan(&f.log_entries, (channel.as_str(), day, user_id))
                        .await?;
                    for (at_ms, id) in &entries {
                        self.execute(&f.log_delete, (channel.as_str(), day, *at_ms, id.as_str()))
                            .await?;
                    }
                    Ok::<_, StoreError>((channel, entries.len() as u64))
                })
                .buffer_unordered(CONCURRENCY)
                .try_collect()
                .await?;
            for (channel, n) in removed.into_iter().filter(|(_, n)| *n > 0) {
                forgotten.moderation_log += n;
                forgotten.channels.insert(channel);
            }
            Ok(forgotten)
        })
    }
}
