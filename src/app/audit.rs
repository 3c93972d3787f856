//! The audit log of rule edits: who changed which rule of a channel, when, and what it was
//! before and after. Every edit made through the admin API or the web console is recorded
//! (chat edits such as `!addcom` are in the channel's own chat).
//!
//! Entries live in the state store's platform records (scope `rule_audit:<platform>:<channel>`,
//! one partition per channel; key: the time, zero-padded, and a random suffix, so keys sort by
//! time), at most `console.audit_entries_per_channel` per channel: recording one more removes
//! the oldest. Store calls have a deadline; an entry that cannot be written is counted in
//! `firehose_audit_write_failures_total` and logged, and the edit itself stands.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Core;
use crate::channel::ChannelKey;

const STORE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest `who` kept (a Twitch login is 25 characters; `admin` is shorter).
const MAX_WHO_CHARS: usize = 64;
/// Largest `before` or `after` kept as it is (JSON bytes); a larger one (a filter with
/// thousands of phrases) is kept as its size and SHA-256, so that reading a channel's log
/// stays cheap.
pub const MAX_ITEM_BYTES: usize = 8 * 1024;

/// One rule edit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Unix time in milliseconds.
    pub at_ms: u64,
    /// `admin` (the admin token, API or console) or `twitch:<login>` (a console user).
    pub who: String,
    /// `api` or `console`.
    pub via: String,
    /// `commands`, `keywords`, `timers`, `filters` or `nuke`.
    pub kind: String,
    /// The item's name (`nuke` for the nuke settings).
    pub name: String,
    /// The item before (None: it did not exist).
    pub before: Option<Value>,
    /// The item after (None: deleted).
    pub after: Option<Value>,
}

/// The store scope of a channel's audit log.
pub fn audit_scope(key: &ChannelKey) -> String {
    format!("rule_audit:{}:{}", key.platform.as_str(), key.name)
}

/// Now, in milliseconds since the epoch (an entry's `at_ms`).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn entry_key(at_ms: u64) -> String {
    let suffix: [u8; 4] = rand::random();
    format!("{at_ms:013}-{}", hex::encode(suffix))
}

impl Core {
    /// Records one edit of `key`'s rules (never fails the edit: a failure is counted).
    pub async fn record_audit(&self, key: &ChannelKey, mut entry: AuditEntry) {
        entry.who = entry.who.chars().take(MAX_WHO_CHARS).collect();
        entry.before = entry.before.map(bounded);
        entry.after = entry.after.map(bounded);
        // A copy in the service's log too: the store's log is bounded per channel, the
        // service's log is where a long history (and a flood of edits) stays visible.
        tracing::info!(
            channel = %key.name,
            platform = key.platform.as_str(),
            who = %entry.who,
            via = %entry.via,
            kind = %entry.kind,
            name = %entry.name.escape_debug(),
            created = entry.before.is_none(),
            deleted = entry.after.is_none(),
            "rule edited"
        );
        let scope = audit_scope(key);
        let result = async {
            let value = serde_json::to_string(&entry).map_err(|e| e.to_string())?;
            let store = self.store.store();
            let record_key = entry_key(entry.at_ms);
            timed(store.put_state(&scope, &record_key, &value)).await?;
            let kept = timed(store.list_state(&scope)).await?;
            let limit = self.config.console.audit_entries_per_channel;
            for (old, _) in kept.iter().take(kept.len().saturating_sub(limit)) {
                timed(store.delete_state(&scope, old)).await?;
            }
            Ok::<(), String>(())
        }
        .await;
        if let Err(error) = result {
            self.metrics.audit_write_failed();
            tracing::warn!(channel = %key.name, %error, "rule edit not written to the audit log");
        }
    }

    /// `key`'s audit log, newest first, at most `limit` entries.
    pub async fn audit_log(
        &self,
        key: &ChannelKey,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, String> {
        let rows = timed(self.store.store().list_state(&audit_scope(key))).await?;
        Ok(rows
            .iter()
            .rev()
            .filter_map(|(_, value)| serde_json::from_str(value).ok())
            .take(limit)
            .collect())
    }
}

/// `item` as it is, or its size and digest when it is over [`MAX_ITEM_BYTES`].
fn bounded(item: Value) -> Value {
    let text = item.to_string();
    if text.len() <= MAX_ITEM_BYTES {
        return item;
    }
    use sha2::Digest;
    serde_json::json!({
        "too_large_to_keep": true,
        "bytes": text.len(),
        "sha256": hex::encode(sha2::Sha256::digest(text.as_bytes())),
    })
}

async fn timed<T>(
    call: impl std::future::Future<Output = crate::store::StoreResult<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(STORE_TIMEOUT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the state store did not answer in time".into()),
    }
}
