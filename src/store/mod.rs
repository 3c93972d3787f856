//! The state store: what survives crashes and restarts, and how it gets there.
//!
//! - [`StateStore`]: the seam. Two real backends implement it: [`scylla`] (ScyllaDB or
//!   Cassandra over CQL, for dedicated deployments) and [`embedded`] (redb, one file on the
//!   box, or memory only: the default when no CQL contact point is configured).
//! - [`migrations`]: the versioned schema of both backends (`firehose migrate`).
//! - [`writer`]: the write-behind writer. Channel actors hand it their changes through a
//!   bounded queue; it coalesces them (sums deltas, last write wins for fields) and flushes
//!   absolute values in few, partition-shaped writes. When the database is slow or down the
//!   changes stay coalesced in memory up to a bound, then the queue fills and the actors wait:
//!   backpressure, never a silent drop.
//! - [`model`]: the rows both backends store; [`journal`]: what one handled event changed,
//!   as store changes (the one function a channel actor calls).
//! - [`metrics`]: the `store_*` metrics, read from the writer's status at scrape time.
//!
//! Exactly once: the writer never sends a delta to the database. It reads a key's stored
//! value once (its *base*), adds the pending deltas and writes the absolute result, so a
//! retried or repeated write stores the same value again. `docs/ARCHITECTURE.md` says why.

pub mod cql_tls;
pub mod embedded;
pub mod journal;
pub mod keys;
pub mod metrics;
pub mod migrations;
pub mod model;
pub mod scylla;
pub mod writer;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

pub use journal::Journal;
pub use metrics::StoreCollector;
pub use model::{
    ChannelWrite, ForgottenRows, LeaseOutcome, ModerationEntry, RuleRow, StoredChannel, UserRow,
    WarningRow,
};
pub use writer::{Change, RulesEdit, StoreHandle, StoreStatus, WriterConfig};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or did not answer in time; worth retrying.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The database answered with an error for this request.
    #[error("store request failed: {0}")]
    Request(String),
    /// The stored data or schema is not what this version expects.
    #[error("store schema: {0}")]
    Schema(String),
    /// The store configuration is unusable.
    #[error("store config: {0}")]
    Config(String),
}

/// Result of store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// Where channel state lives. Every method is idempotent: calling it again with the same
/// arguments leaves the same stored state (what the writer's retries rely on).
pub trait StateStore: Send + Sync + 'static {
    /// `"scylla"` or `"embedded"`.
    fn backend(&self) -> &'static str;

    /// Applies the migrations not yet applied; returns the versions applied now.
    fn migrate(&self) -> BoxFuture<'_, StoreResult<Vec<u32>>>;

    /// The highest migration applied (0 for an empty database).
    fn schema_version(&self) -> BoxFuture<'_, StoreResult<u32>>;

    /// Everything stored for `channel` that a channel actor starts from.
    fn load_channel<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, StoreResult<StoredChannel>>;

    /// The stored stats of the given users of `channel` (users with no row are left out).
    fn load_users<'a>(
        &'a self,
        channel: &'a str,
        user_ids: &'a [String],
    ) -> BoxFuture<'a, StoreResult<Vec<UserRow>>>;

    /// Writes absolute values; returns the number of rows written (or deleted).
    fn write<'a>(&'a self, write: &'a ChannelWrite) -> BoxFuture<'a, StoreResult<u64>>;

    /// The newest moderation log entries of `channel`, newest first, at most `limit`.
    fn moderation_log<'a>(
        &'a self,
        channel: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, StoreResult<Vec<ModerationEntry>>>;

    /// Takes or renews the lease on `channel` for `owner` for `ttl`.
    fn acquire_lease<'a>(
        &'a self,
        channel: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<LeaseOutcome>>;

    /// Gives the lease up if `owner` holds it.
    fn release_lease<'a>(
        &'a self,
        channel: &'a str,
        owner: &'a str,
    ) -> BoxFuture<'a, StoreResult<()>>;

    /// One platform record (`scope` groups records of one kind, e.g. `twitch_user_ids`).
    fn get_state<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<String>>>;

    /// Writes (or replaces) one platform record.
    fn put_state<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, StoreResult<()>>;

    /// Removes one platform record (nothing when it is absent).
    fn delete_state<'a>(&'a self, scope: &'a str, key: &'a str) -> BoxFuture<'a, StoreResult<()>>;

    /// Every record of `scope`, ordered by key.
    fn list_state<'a>(
        &'a self,
        scope: &'a str,
    ) -> BoxFuture<'a, StoreResult<Vec<(String, String)>>>;

    /// Deletes everything kept about `user_id` in the channels of `platform` (`twitch`,
    /// `discord`): their stats rows, live warnings and moderation log entries about them.
    /// Channel-wide rows (counters, rules) stay. Idempotent: a second call removes nothing.
    fn forget_user<'a>(
        &'a self,
        platform: &'a str,
        user_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<ForgottenRows>>;
}

/// Opens the store the configuration names (without migrating it).
pub async fn open(config: &crate::config::StoreConfig) -> StoreResult<Arc<dyn StateStore>> {
    if config.uses_scylla() {
        let store = scylla::ScyllaStore::connect(config).await?;
        Ok(Arc::new(store))
    } else {
        let store = embedded::EmbeddedStore::open(config)?;
        Ok(Arc::new(store))
    }
}

/// The bucket of a user's stats row: spreads one channel's users over
/// [`model::USER_BUCKETS`] partitions so the biggest channels do not make huge partitions.
pub fn user_bucket(user_id: &str) -> i32 {
    // FNV-1a: stable across processes and versions (the bucket is part of the key).
    let mut hash: u32 = 0x811c_9dc5;
    for byte in user_id.as_bytes() {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    (hash % model::USER_BUCKETS) as i32
}

/// The moderation log's partition day for a time in ms since the epoch.
pub fn log_day(at_ms: u64) -> i32 {
    i32::try_from(at_ms / 86_400_000).unwrap_or(i32::MAX)
}
