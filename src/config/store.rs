//! `[store]`: the state store (ScyllaDB/Cassandra over CQL, or the embedded redb file), how
//! the CQL driver authenticates and encrypts (username, TLS files; the password is a secret:
//! `FIREHOSE_SCYLLA_PASSWORD` or `scylla_password_file`, held in [`Secret`]), its write-behind
//! writer's intervals and bounds, and how long users' data is kept.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{invalid, positive, ConfigError, Secret};
/// The state store and its write-behind writer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// CQL contact points, `host:port` comma-separated. Empty = the embedded store.
    pub scylla_uri: String,
    /// Role (user) the CQL driver logs in as (PasswordAuthenticator). Empty = no login.
    pub scylla_username: String,
    /// File holding that role's password (`FIREHOSE_SCYLLA_PASSWORD` wins).
    pub scylla_password_file: Option<PathBuf>,
    /// Encrypt every CQL connection with TLS (1.2 or 1.3); the node's certificate must chain
    /// to `scylla_ca_file`, or to a public root when no CA file is given.
    pub scylla_tls: bool,
    /// PEM file of the CA certificate(s) the nodes' certificates chain to.
    pub scylla_ca_file: Option<PathBuf>,
    /// Name the nodes' certificates are checked against. Empty = the node's IP address (the
    /// driver connects by address, so the certificate must then name the IP).
    pub scylla_tls_server_name: String,
    /// Client certificate chain (PEM) for clusters that require one (mutual TLS), with its
    /// private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub scylla_client_cert_file: Option<PathBuf>,
    pub scylla_client_key_file: Option<PathBuf>,
    /// The password, filled from the secrets by `Config::load` (never serialized; `Debug`
    /// prints `***`).
    #[serde(skip)]
    pub scylla_password: Option<Secret>,
    /// Keyspace of the CQL store (created by the migrations if missing).
    pub keyspace: String,
    /// Replication of that keyspace when the migrations create it (a CQL map).
    pub replication: String,
    /// File of the embedded store. Empty = memory only (state ends with the process).
    pub embedded_path: String,
    /// Apply missing migrations at start-up (else `firehose migrate` must have run).
    pub migrate_on_start: bool,
    /// Flush coalesced changes at least this often.
    pub flush_interval_ms: u64,
    /// ...or as soon as this many keys are dirty.
    pub flush_max_keys: usize,
    /// Chat stats (per-user stats, one row per active chatter and the bulk of the rows, and
    /// each channel's message count) are flushed this often (or with everything else at
    /// `flush_max_keys`); at least `flush_interval_ms`.
    pub user_stats_flush_interval_ms: u64,
    /// Most dirty keys held in memory while the database is slow or down; beyond it the
    /// writer stops taking changes and the channel actors wait (backpressure).
    pub max_pending_keys: usize,
    /// Change batches (one per handled event) the writer's queue holds.
    pub queue_capacity: usize,
    /// Timeout of one database request.
    pub request_timeout_ms: u64,
    /// How long a starting channel actor waits for its stored state before it runs without
    /// (and loads it later).
    pub load_timeout_ms: u64,
    /// First retry delay after a failed flush (doubles up to `retry_backoff_max_ms`).
    pub retry_backoff_ms: u64,
    pub retry_backoff_max_ms: u64,
    /// `/readyz` reports the store degraded when the oldest unwritten change is older.
    pub max_lag_ms: u64,
    /// Retention of moderation log entries, seconds from when they were written.
    pub moderation_log_ttl_s: u32,
    /// Retention of a user's per-channel stats, seconds from the user's last activity in
    /// the channel (every write renews it). 0 = kept until deleted.
    pub user_stats_ttl_s: u32,
    /// Most user stats bases (stored values) the writer keeps cached.
    pub max_cached_users: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            scylla_uri: String::new(),
            scylla_username: String::new(),
            scylla_password_file: None,
            scylla_tls: false,
            scylla_ca_file: None,
            scylla_tls_server_name: String::new(),
            scylla_client_cert_file: None,
            scylla_client_key_file: None,
            scylla_password: None,
            keyspace: "firehose".to_string(),
            replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}".to_string(),
            embedded_path: String::new(),
            migrate_on_start: true,
            flush_interval_ms: 1_000,
            flush_max_keys: 200_000,
            user_stats_flush_interval_ms: 60_000,
            max_pending_keys: 500_000,
            queue_capacity: 8_192,
            request_timeout_ms: 2_000,
            load_timeout_ms: 3_000,
            retry_backoff_ms: 200,
            retry_backoff_max_ms: 5_000,
            max_lag_ms: 90_000,
            moderation_log_ttl_s: 30 * 86_400,
            user_stats_ttl_s: 365 * 86_400,
            max_cached_users: 200_000,
        }
    }
}

impl StoreConfig {
    /// Whether the CQL backend is configured.
    pub fn uses_scylla(&self) -> bool {
        !self.scylla_uri.trim().is_empty()
    }

    /// The contact points of `scylla_uri`.
    pub fn contact_points(&self) -> Vec<String> {
        self.scylla_uri
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for point in self.contact_points() {
            if point
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .is_none()
            {
                return Err(invalid(
                    "store.scylla_uri",
                    format!("{point:?} is not host:port"),
                ));
            }
        }
        self.validate_security()?;
        let ks = &self.keyspace;
        let ks_ok = (1..=48).contains(&ks.len())
            && ks
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && ks.as_bytes()[0].is_ascii_lowercase();
        if !ks_ok {
            return Err(invalid(
                "store.keyspace",
                "must be 1..=48 of a-z, 0-9, _ starting with a letter",
            ));
        }
        let r = self.replication.trim();
        if !(r.starts_with('{') && r.ends_with('}')) || r.contains(';') {
            return Err(invalid(
                "store.replication",
                "must be a CQL map such as {'class': 'SimpleStrategy', 'replication_factor': 1}",
            ));
        }
        positive("store.flush_interval_ms", self.flush_interval_ms)?;
        positive("store.flush_max_keys", self.flush_max_keys as u64)?;
        if self.user_stats_flush_interval_ms < self.flush_interval_ms {
            return Err(invalid(
                "store.user_stats_flush_interval_ms",
                "must be at least store.flush_interval_ms",
            ));
        }
        if self.max_pending_keys < self.flush_max_keys {
            return Err(invalid(
                "store.max_pending_keys",
                "must be at least store.flush_max_keys",
            ));
        }
        positive("store.queue_capacity", self.queue_capacity as u64)?;
        positive("store.request_timeout_ms", self.request_timeout_ms)?;
        positive("store.load_timeout_ms", self.load_timeout_ms)?;
        positive("store.retry_backoff_ms", self.retry_backoff_ms)?;
        if self.retry_backoff_max_ms < self.retry_backoff_ms {
            return Err(invalid(
                "store.retry_backoff_max_ms",
                "must be at least store.retry_backoff_ms",
            ));
        }
        positive("store.max_lag_ms", self.max_lag_ms)?;
        positive(
            "store.moderation_log_ttl_s",
            self.moderation_log_ttl_s.into(),
        )?;
        positive("store.max_cached_users", self.max_cached_users as u64)?;
        Ok(())
    }

    /// A username has a password and a password a username (checked when the secrets are
    /// loaded: the password is not part of the file, so a written-out config has none).
    pub(super) fn check_login(&self) -> Result<(), ConfigError> {
        let user = self.scylla_username.trim();
        match (user.is_empty(), self.scylla_password.is_some()) {
            (false, false) => {
                return Err(invalid(
                    "store.scylla_password_file",
                    "store.scylla_username is set but there is no password: set FIREHOSE_SCYLLA_PASSWORD or store.scylla_password_file",
                ))
            }
            (true, true) => {
                return Err(invalid(
                    "store.scylla_username",
                    "a CQL password is set (FIREHOSE_SCYLLA_PASSWORD or store.scylla_password_file) but no username",
                ))
            }
            _ => {}
        }
        Ok(())
    }

    /// Login and TLS settings: a plain username, files that exist, TLS on when its files are
    /// set, a client certificate with its key.
    fn validate_security(&self) -> Result<(), ConfigError> {
        let user = self.scylla_username.trim();
        if user != self.scylla_username || user.chars().any(char::is_control) || user.len() > 256 {
            return Err(invalid(
                "store.scylla_username",
                "must be at most 256 characters, without control characters or surrounding spaces",
            ));
        }
        let files = [
            ("store.scylla_ca_file", &self.scylla_ca_file),
            (
                "store.scylla_client_cert_file",
                &self.scylla_client_cert_file,
            ),
            ("store.scylla_client_key_file", &self.scylla_client_key_file),
        ];
        for (key, file) in files {
            let Some(path) = file else { continue };
            if !self.scylla_tls {
                return Err(invalid(key, "is set but store.scylla_tls is false"));
            }
            if !path.is_file() {
                return Err(invalid(
                    key,
                    format!("{} is not a readable file", path.display()),
                ));
            }
        }
        let name = &self.scylla_tls_server_name;
        if !name.is_empty() {
            if !self.scylla_tls {
                return Err(invalid(
                    "store.scylla_tls_server_name",
                    "is set but store.scylla_tls is false",
                ));
            }
            if tokio_rustls::rustls::pki_types::ServerName::try_from(name.as_str()).is_err() {
                return Err(invalid(
                    "store.scylla_tls_server_name",
                    format!("{name:?} is not a DNS name or IP address"),
                ));
            }
        }
        if self.scylla_client_cert_file.is_some() != self.scylla_client_key_file.is_some() {
            return Err(invalid(
                "store.scylla_client_key_file",
                "a client certificate needs its key and a key its certificate: set both or neither",
            ));
        }
        Ok(())
    }
}
