//! Service configuration: TOML file, `FIREHOSE_*` environment overrides, secrets from env or file.
//!
//! Loading goes in three steps, each with errors that name the key at fault:
//! 1. parse the TOML file into [`Config`] (unknown keys are refused, so a typo cannot hide);
//! 2. apply environment overrides: every key has one, `FIREHOSE_` + its path in capitals joined
//!    by `_` (e.g. `twitch.server` -> `FIREHOSE_TWITCH_SERVER`, `admission.capacity` ->
//!    `FIREHOSE_ADMISSION_CAPACITY`; lists are comma-separated);
//! 3. [`Config::validate`] checks ranges and combinations.
//!
//! Secrets (the Twitch OAuth token and the admin token) never live in the TOML file: they come
//! from `FIREHOSE_TWITCH_TOKEN` / `FIREHOSE_ADMIN_TOKEN` or from the files named by
//! `twitch.token_file` / `http.admin_token_file`, and are held in [`Secret`], whose `Debug`
//! prints `***`.

mod secret;

pub use secret::Secret;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The whole service configuration. Every field has a default; see `config/firehose.toml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub twitch: TwitchConfig,
    pub admission: AdmissionConfig,
    pub supervisor: SupervisorConfig,
    pub http: HttpConfig,
    pub engine: EngineConfig,
    /// Moderation through the Twitch Helix API; enabled when `helix.client_id` is set.
    pub helix: crate::helix::HelixConfig,
    /// Where channel state lives: ScyllaDB/Cassandra when `store.scylla_uri` is set, else an
    /// embedded database.
    pub store: StoreConfig,
    /// Discord guild channels through serenity; off unless `discord.enabled`.
    pub discord: crate::discord::DiscordConfig,
    /// Secrets, filled from env or files by [`Config::load`]; never (de)serialized.
    #[serde(skip)]
    pub secrets: Secrets,
}

#[derive(Debug, Clone, Default)]
pub struct Secrets {
    /// OAuth token for the Twitch login (`oauth:` prefix optional). None = anonymous.
    pub twitch_token: Option<Secret>,
    /// Bearer token for the admin endpoints. None = admin endpoints refuse every request.
    pub admin_token: Option<Secret>,
    /// User token for Helix moderation calls (the bot's, with moderator scopes).
    pub helix_token: Option<Secret>,
    /// The Discord bot token (without the `Bot ` prefix).
    pub discord_token: Option<Secret>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TwitchConfig {
    /// Chat server, `host:port`.
    pub server: String,
    /// TLS on (real Twitch, port 6697) or off (the simulator, port 6667).
    pub tls: bool,
    /// Bot login. `justinfanNNN` logs in anonymously (read-only).
    pub login: String,
    /// File holding the OAuth token (used when FIREHOSE_TWITCH_TOKEN is not set).
    pub token_file: Option<PathBuf>,
    /// Channels to join at start-up (logins, without '#').
    pub channels: Vec<String>,
    /// Channels where the bot is moderator or broadcaster (also learned from USERSTATE).
    pub moderator_channels: Vec<String>,
    /// The account is a verified bot (higher send and join limits).
    pub verified_bot: bool,
    pub connect_timeout_ms: u64,
    /// Send a PING when the server has been silent this long.
    pub keepalive_interval_ms: u64,
    /// Reconnect when nothing arrives this long after our PING.
    pub keepalive_timeout_ms: u64,
    /// Reconnect backoff: first delay, doubled up to the maximum, with jitter.
    pub reconnect_backoff_ms: u64,
    pub reconnect_backoff_max_ms: u64,
    /// Longest IRC line accepted; longer lines are counted as malformed and skipped.
    pub max_line_bytes: usize,
    pub join: JoinLimits,
    pub send: SendLimits,
}

impl Default for TwitchConfig {
    fn default() -> Self {
        Self {
            server: "irc.chat.twitch.tv:6697".into(),
            tls: true,
            login: "justinfan12345".into(),
            token_file: None,
            channels: Vec::new(),
            moderator_channels: Vec::new(),
            verified_bot: false,
            connect_timeout_ms: 10_000,
            keepalive_interval_ms: 60_000,
            keepalive_timeout_ms: 10_000,
            reconnect_backoff_ms: 250,
            reconnect_backoff_max_ms: 30_000,
            max_line_bytes: 16 * 1024,
            join: JoinLimits::default(),
            send: SendLimits::default(),
        }
    }
}

/// Twitch JOIN limits: `limit` JOINs per `window_ms` (20 / 10 s; verified bots 2,000 / 10 s).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JoinLimits {
    pub limit: u32,
    pub window_ms: u64,
}

impl Default for JoinLimits {
    fn default() -> Self {
        Self {
            limit: 20,
            window_ms: 10_000,
        }
    }
}

/// Twitch PRIVMSG limits and the bounded send queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SendLimits {
    /// Messages per window for the account, counted over all channels.
    pub account_limit: u32,
    /// The same where the bot is moderator or broadcaster of the target channel.
    pub account_limit_mod: u32,
    /// The limit for a verified bot (replaces both above when `twitch.verified_bot`).
    pub verified_limit: u32,
    pub window_ms: u64,
    /// Minimum gap between two messages in one channel where the bot is not a moderator.
    pub per_channel_interval_ms: u64,
    /// Identical consecutive messages within this window are dropped by Twitch (mods exempt).
    pub duplicate_window_ms: u64,
    /// Longest message, in characters; longer replies are cut.
    pub max_message_chars: usize,
    /// Messages waiting to be sent, over all channels; beyond it new ones are dropped and counted.
    pub queue_capacity: usize,
    /// Messages waiting in one channel.
    pub channel_queue_capacity: usize,
    /// A reply older than this when its turn comes is dropped (counted), not sent late.
    pub max_age_ms: u64,
}

impl Default for SendLimits {
    fn default() -> Self {
        Self {
            account_limit: 20,
            account_limit_mod: 100,
            verified_limit: 7_500,
            window_ms: 30_000,
            per_channel_interval_ms: 1_000,
            duplicate_window_ms: 30_000,
            max_message_chars: 500,
            queue_capacity: 4_096,
            channel_queue_capacity: 64,
            max_age_ms: 15_000,
        }
    }
}

/// What the router does when a channel already has `capacity` messages in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverflowPolicy {
    /// Drop the message at once; counted per channel with reason `full`.
    Shed,
    /// Park it in the channel's bounded waiting line for up to `block_timeout_ms`; dropped and
    /// counted (`deadline`, `wait_full`) when that runs out. Other channels are never held up.
    Block,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdmissionConfig {
    /// Messages in flight per channel (in its actor's mailbox or being handled).
    pub capacity: u32,
    pub overflow: OverflowPolicy,
    /// `block` only: longest wait for a slot.
    pub block_timeout_ms: u64,
    /// `block` only: messages that may wait per channel.
    pub wait_capacity: usize,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            capacity: 512,
            overflow: OverflowPolicy::Shed,
            block_timeout_ms: 250,
            wait_capacity: 1_024,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupervisorConfig {
    /// First restart delay; doubled on each restart within the window, up to the maximum.
    pub restart_backoff_ms: u64,
    pub restart_backoff_max_ms: u64,
    /// More than `max_restarts` failures within `restart_window_ms` marks the channel failed.
    pub max_restarts: u32,
    pub restart_window_ms: u64,
    /// On shutdown, how long mailboxes may take to drain.
    pub drain_timeout_ms: u64,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        Self {
            restart_backoff_ms: 50,
            restart_backoff_max_ms: 5_000,
            max_restarts: 5,
            restart_window_ms: 60_000,
            drain_timeout_ms: 5_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the health, metrics and admin endpoints.
    pub listen: SocketAddr,
    /// File holding the admin bearer token (used when FIREHOSE_ADMIN_TOKEN is not set).
    pub admin_token_file: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_token_file: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Folder of per-channel rules files, `<channel>.toml` each (see `config/channels/`).
    /// Channels without a file run the built-in commands only. Empty = none.
    pub rules_dir: String,
    /// Milliseconds between timer ticks sent to channels that have timers.
    pub tick_interval_ms: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            rules_dir: String::new(),
            tick_interval_ms: 1_000,
        }
    }
}

impl EngineConfig {
    pub fn rules_dir(&self) -> Option<&Path> {
        (!self.rules_dir.is_empty()).then(|| Path::new(&self.rules_dir))
    }
}

/// The state store and its write-behind writer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// CQL contact points, `host:port` comma-separated. Empty = the embedded store.
    pub scylla_uri: String,
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
    /// Per-user stats (one row per active chatter: the bulk of the rows) are flushed this
    /// often (or with everything else at `flush_max_keys`); at least `flush_interval_ms`.
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
    /// Lifetime of moderation log entries, seconds.
    pub moderation_log_ttl_s: u32,
    /// Most user stats bases (stored values) the writer keeps cached.
    pub max_cached_users: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            scylla_uri: String::new(),
            keyspace: "firehose".to_string(),
            replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}".to_string(),
            embedded_path: String::new(),
            migrate_on_start: true,
            flush_interval_ms: 1_000,
            flush_max_keys: 20_000,
            user_stats_flush_interval_ms: 10_000,
            max_pending_keys: 500_000,
            queue_capacity: 8_192,
            request_timeout_ms: 2_000,
            load_timeout_ms: 3_000,
            retry_backoff_ms: 200,
            retry_backoff_max_ms: 5_000,
            max_lag_ms: 30_000,
            moderation_log_ttl_s: 30 * 86_400,
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

    fn validate(&self) -> Result<(), ConfigError> {
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
}

/// A configuration problem, naming the key and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("invalid value for `{key}`: {reason}")]
    Invalid { key: String, reason: String },
    #[error("environment override {var} (key `{key}`): {reason}")]
    Env {
        var: String,
        key: String,
        reason: String,
    },
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        reason: reason.into(),
    }
}

impl Config {
    /// Loads a file, applies the process environment's overrides and secrets, and validates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::from_toml_with_env(&text, &path.display().to_string(), &env)
    }

    /// Parses TOML text, applies the given environment, loads secrets and validates.
    pub fn from_toml_with_env(
        text: &str,
        origin: &str,
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        env_overrides::apply(&mut table, env)?;
        let mut config: Config =
            Config::deserialize(toml::Value::Table(table)).map_err(|e| ConfigError::Parse {
                origin: origin.to_string(),
                message: e.to_string(),
            })?;
        config.secrets = Secrets::load(&config, env)?;
        config.validate()?;
        if config.helix_enabled() && config.secrets.helix_token.is_none() {
            return Err(invalid(
                "helix.token_file",
                "helix.client_id is set but there is no token: set FIREHOSE_HELIX_TOKEN or helix.token_file",
            ));
        }
        if config.discord.enabled && config.secrets.discord_token.is_none() {
            return Err(invalid(
                "discord.token_file",
                "discord.enabled is set but there is no token: set FIREHOSE_DISCORD_TOKEN or discord.token_file",
            ));
        }
        Ok(config)
    }

    /// Checks ranges and combinations that serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let t = &self.twitch;
        if t.server
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .is_none()
        {
            return Err(invalid(
                "twitch.server",
                format!("`{}` is not host:port", t.server),
            ));
        }
        if !is_login(&t.login) {
            return Err(invalid(
                "twitch.login",
                format!(
                    "`{}` is not a Twitch login (a-z, 0-9, _; 1-25 chars)",
                    t.login
                ),
            ));
        }
        for (i, channel) in t.channels.iter().enumerate() {
            if !is_login(channel) {
                return Err(invalid(
                    &format!("twitch.channels[{i}]"),
                    format!("`{channel}` is not a channel login (lowercase a-z, 0-9, _; no '#')"),
                ));
            }
        }
        positive("twitch.connect_timeout_ms", t.connect_timeout_ms)?;
        positive("twitch.keepalive_interval_ms", t.keepalive_interval_ms)?;
        positive("twitch.keepalive_timeout_ms", t.keepalive_timeout_ms)?;
        positive("twitch.reconnect_backoff_ms", t.reconnect_backoff_ms)?;
        if t.reconnect_backoff_max_ms < t.reconnect_backoff_ms {
            return Err(invalid(
                "twitch.reconnect_backoff_max_ms",
                "must be at least twitch.reconnect_backoff_ms",
            ));
        }
        if t.max_line_bytes < 512 {
            return Err(invalid("twitch.max_line_bytes", "must be at least 512"));
        }
        positive("twitch.join.limit", t.join.limit.into())?;
        positive("twitch.join.window_ms", t.join.window_ms)?;
        let s = &t.send;
        positive("twitch.send.account_limit", s.account_limit.into())?;
        if s.account_limit_mod < s.account_limit {
            return Err(invalid(
                "twitch.send.account_limit_mod",
                "must be at least twitch.send.account_limit",
            ));
        }
        positive("twitch.send.verified_limit", s.verified_limit.into())?;
        positive("twitch.send.window_ms", s.window_ms)?;
        if s.max_message_chars == 0 || s.max_message_chars > 500 {
            return Err(invalid(
                "twitch.send.max_message_chars",
                "must be 1..=500 (Twitch's own limit is 500)",
            ));
        }
        positive("twitch.send.queue_capacity", s.queue_capacity as u64)?;
        positive(
            "twitch.send.channel_queue_capacity",
            s.channel_queue_capacity as u64,
        )?;
        positive("twitch.send.max_age_ms", s.max_age_ms)?;
        let a = &self.admission;
        if a.capacity == 0 || a.capacity > 1_000_000 {
            return Err(invalid("admission.capacity", "must be 1..=1000000"));
        }
        if a.overflow == OverflowPolicy::Block {
            positive("admission.block_timeout_ms", a.block_timeout_ms)?;
            positive("admission.wait_capacity", a.wait_capacity as u64)?;
        }
        let sv = &self.supervisor;
        positive("supervisor.restart_backoff_ms", sv.restart_backoff_ms)?;
        if sv.restart_backoff_max_ms < sv.restart_backoff_ms {
            return Err(invalid(
                "supervisor.restart_backoff_max_ms",
                "must be at least supervisor.restart_backoff_ms",
            ));
        }
        positive("supervisor.restart_window_ms", sv.restart_window_ms)?;
        positive("supervisor.drain_timeout_ms", sv.drain_timeout_ms)?;
        positive("engine.tick_interval_ms", self.engine.tick_interval_ms)?;
        self.store.validate()?;
        if self.helix_enabled() {
            self.helix.validate().map_err(|message| {
                let (key, reason) = message
                    .split_once(": ")
                    .unwrap_or(("helix", message.as_str()));
                invalid(key, reason)
            })?;
        }
        self.discord.validate().map_err(|message| {
            let (key, reason) = message
                .split_once(": ")
                .unwrap_or(("discord", message.as_str()));
            invalid(key, reason)
        })?;
        if let Some(dir) = self.engine.rules_dir() {
            crate::actors::rules_book::RulesBook::load_dir(dir).map_err(|reason| {
                ConfigError::Invalid {
                    key: "engine.rules_dir".to_string(),
                    reason,
                }
            })?;
        }
        Ok(())
    }

    /// Whether moderation actions go to Helix (a client id is configured).
    pub fn helix_enabled(&self) -> bool {
        !self.helix.client_id.is_empty()
    }

    /// The account-wide send limit that applies to a channel.
    pub fn account_limit(&self, is_moderator: bool) -> u32 {
        let s = &self.twitch.send;
        if self.twitch.verified_bot {
            s.verified_limit
        } else if is_moderator {
            s.account_limit_mod
        } else {
            s.account_limit
        }
    }
}

fn positive(key: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        Err(invalid(key, "must be greater than 0"))
    } else {
        Ok(())
    }
}

/// A Twitch login: 1 to 25 of lowercase a-z, 0-9 and `_`.
pub fn is_login(s: &str) -> bool {
    (1..=25).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl Secrets {
    fn load(config: &Config, env: &[(String, String)]) -> Result<Secrets, ConfigError> {
        Ok(Secrets {
            twitch_token: secret::from_env_or_file(
                env,
                "FIREHOSE_TWITCH_TOKEN",
                "twitch.token_file",
                config.twitch.token_file.as_deref(),
            )?,
            admin_token: secret::from_env_or_file(
                env,
                "FIREHOSE_ADMIN_TOKEN",
                "http.admin_token_file",
                config.http.admin_token_file.as_deref(),
            )?,
            helix_token: secret::from_env_or_file(
                env,
                "FIREHOSE_HELIX_TOKEN",
                "helix.token_file",
                config.helix.token_file.as_deref(),
            )?,
            discord_token: secret::from_env_or_file(
                env,
                "FIREHOSE_DISCORD_TOKEN",
                "discord.token_file",
                config.discord.token_file.as_deref(),
            )?,
        })
    }
}

/// Durations as the components want them.
impl Config {
    pub fn ms(value: u64) -> Duration {
        Duration::from_millis(value)
    }
}

mod env_overrides {
    //! `FIREHOSE_*` overrides: every key of the defaults is overridable, typed like its default.

    use super::{Config, ConfigError};

    /// Variables that are not key overrides (secrets and other settings read elsewhere).
    const NOT_KEYS: &[&str] = &[
        "FIREHOSE_TWITCH_TOKEN",
        "FIREHOSE_ADMIN_TOKEN",
        "FIREHOSE_HELIX_TOKEN",
        "FIREHOSE_DISCORD_TOKEN",
        "FIREHOSE_LOG",
        // The test database of the storage work (scripts/test-db.sh), not a service key.
        "FIREHOSE_SCYLLA_URI",
    ];

    /// Optional keys (absent by default), overridable like the others.
    const OPTIONAL_KEYS: &[&[&str]] = &[
        &["twitch", "token_file"],
        &["http", "admin_token_file"],
        &["helix", "token_file"],
        &["helix", "moderation_log"],
        &["discord", "token_file"],
        &["discord", "root_ca_file"],
    ];

    pub(super) fn apply(
        table: &mut toml::Table,
        env: &[(String, String)],
    ) -> Result<(), ConfigError> {
        let defaults = match toml::Value::try_from(Config::default()) {
            Ok(toml::Value::Table(t)) => t,
            _ => return Ok(()),
        };
        let mut leaves = Vec::new();
        collect_leaves(&defaults, &mut Vec::new(), &mut leaves);
        // Keys whose default is "absent" do not serialize; they are file paths (strings).
        for path in OPTIONAL_KEYS {
            let path = path.iter().map(|p| p.to_string()).collect();
            leaves.push((path, toml::Value::String(String::new())));
        }
        for (var, raw) in env {
            if !var.starts_with("FIREHOSE_") || NOT_KEYS.contains(&var.as_str()) {
                continue;
            }
            let Some((path, default)) = leaves.iter().find(|(path, _)| env_name(path) == *var)
            else {
                // A misspelt override must not be silently ignored.
                return Err(ConfigError::Env {
                    var: var.clone(),
                    key: "(none)".to_string(),
                    reason: "no configuration key has this name; see config/firehose.toml"
                        .to_string(),
                });
            };
            let key = path.join(".");
            let value = parse_like(default, raw).map_err(|reason| ConfigError::Env {
                var: var.clone(),
                key: key.clone(),
                reason,
            })?;
            set_path(table, path, value);
        }
        Ok(())
    }

    fn collect_leaves(
        table: &toml::Table,
        prefix: &mut Vec<String>,
        out: &mut Vec<(Vec<String>, toml::Value)>,
    ) {
        for (key, value) in table {
            prefix.push(key.clone());
            match value {
                toml::Value::Table(inner) => collect_leaves(inner, prefix, out),
                leaf => out.push((prefix.clone(), leaf.clone())),
            }
            prefix.pop();
        }
    }

    /// Keys that default to None are absent from the serialized defaults; they are strings.
    fn env_name(path: &[String]) -> String {
        format!("FIREHOSE_{}", path.join("_").to_ascii_uppercase())
    }

    fn parse_like(default: &toml::Value, raw: &str) -> Result<toml::Value, String> {
        match default {
            toml::Value::Integer(_) => raw
                .trim()
                .parse::<i64>()
                .map(toml::Value::Integer)
                .map_err(|_| format!("`{raw}` is not an integer")),
            toml::Value::Boolean(_) => match raw.trim() {
                "true" | "1" => Ok(toml::Value::Boolean(true)),
                "false" | "0" => Ok(toml::Value::Boolean(false)),
                _ => Err(format!("`{raw}` is not true/false")),
            },
            toml::Value::Array(_) => Ok(toml::Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.to_string()))
                    .collect(),
            )),
            _ => Ok(toml::Value::String(raw.to_string())),
        }
    }

    fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
        let Some((last, parents)) = path.split_last() else {
            return;
        };
        let mut current = table;
        for key in parents {
            let entry = current
                .entry(key.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            let toml::Value::Table(inner) = entry else {
                return;
            };
            current = inner;
        }
        current.insert(last.clone(), value);
    }
}

#[cfg(test)]
mod tests;
