//! The versioned schema. Each migration has a version, a description and the CQL it runs;
//! the embedded backend keeps the same versions (its tables are created by code, see
//! [`super::embedded`]). Applied versions are recorded in `schema_migrations`, so
//! `firehose migrate` (or the start-up migration) applies only what is missing, in order.
//!
//! Never edit a released migration: add a new one.

/// One schema change.
#[derive(Debug)]
pub struct Migration {
    pub version: u32,
    pub description: &'static str,
    /// CQL statements; `{ks}` is replaced by the keyspace (none for a change of the embedded
    /// backend only).
    pub cql: &'static [&'static str],
}

/// Every migration, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
    version: 1,
    description: "channel config, counters, user stats, warnings, moderation log, leases",
    cql: &[
        // A channel's rules, one row per command/keyword/timer/filter plus `settings`.
        "CREATE TABLE IF NOT EXISTS {ks}.channel_config (
                channel text, kind text, name text, body text,
                PRIMARY KEY ((channel), kind, name))",
        // Absolute values written by the only owner of the channel (see ARCHITECTURE.md):
        // `messages`, `count:<name>`, `uses:<command>`. Not CQL counters: those are not
        // idempotent, and a retried write must not count twice.
        "CREATE TABLE IF NOT EXISTS {ks}.channel_counters (
                channel text, name text, value bigint,
                PRIMARY KEY ((channel), name))",
        // Per-user per-channel stats, spread over 16 buckets per channel.
        "CREATE TABLE IF NOT EXISTS {ks}.user_stats (
                channel text, bucket int, user_id text, login text,
                messages bigint, last_seen_ms bigint, warnings bigint,
                PRIMARY KEY ((channel, bucket), user_id))",
        // Live filter warnings; each row's TTL is the warning's remaining life.
        "CREATE TABLE IF NOT EXISTS {ks}.warnings (
                channel text, filter text, user_id text, expires_ms bigint,
                PRIMARY KEY ((channel), filter, user_id))",
        // Moderation log, one partition per channel and day, newest first; every row has a
        // TTL (store.moderation_log_ttl_s), the table default is a safety net.
        "CREATE TABLE IF NOT EXISTS {ks}.moderation_log (
                channel text, day int, at_ms bigint, id text,
                action text, user_id text, rule text, reason text, duration_s bigint,
                PRIMARY KEY ((channel, day), at_ms, id))
                WITH CLUSTERING ORDER BY (at_ms DESC, id DESC)
                AND default_time_to_live = 7776000",
        // Which instance runs a channel (lightweight transactions, rows with a TTL).
        "CREATE TABLE IF NOT EXISTS {ks}.channel_leases (
                channel text PRIMARY KEY, owner text, expires_ms bigint)",
    ],
},
    Migration {
        version: 2,
        description: "embedded store: key parts escaped, so a name may hold any character (CQL: nothing to do)",
        cql: &[],
    },
    Migration {
        version: 3,
        description: "platform state: the newest Twitch refresh token, login -> user id, channel authorisations",
        cql: &[
            // Small per-platform records, one partition per scope (`twitch_tokens`,
            // `twitch_user_ids`, `twitch_grants`): written rarely, read at start-up.
            "CREATE TABLE IF NOT EXISTS {ks}.platform_state (
                scope text, key text, value text, updated_ms bigint,
                PRIMARY KEY ((scope), key))",
        ],
    },
];

/// The newest schema version this build knows.
pub fn latest() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_increasing_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "{}", m.description);
            assert!(!m.description.is_empty());
        }
        assert_eq!(latest(), MIGRATIONS.len() as u32);
    }
}
