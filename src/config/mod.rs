//! Service configuration: TOML file, `FIREHOSE_*` environment overrides, secrets from env or file.
//!
//! Loading goes in three steps, each with errors that name the key at fault:
//! 1. parse the TOML file into [`Config`] (unknown keys are refused, so a typo cannot hide);
//! 2. apply environment overrides: every key has one, `FIREHOSE_` + its path in capitals joined
//!    by `_` (e.g. `twitch.server` -> `FIREHOSE_TWITCH_SERVER`, `admission.capacity` ->
//!    `FIREHOSE_ADMISSION_CAPACITY`; lists are comma-separated);
//! 3. [`Config::validate`] checks ranges and combinations.
//!
//! Secrets (the Twitch OAuth token, the admin token, the CQL password, ...) never live in the
//! TOML file: they come from `FIREHOSE_TWITCH_TOKEN` / `FIREHOSE_ADMIN_TOKEN` /
//! `FIREHOSE_SCYLLA_PASSWORD` or from the files named by `twitch.token_file` /
//! `http.admin_token_file` / `store.scylla_password_file`, and are held in [`Secret`], whose
//! `Debug` prints `***`.
//!
//! This is the ground floor of the crate (see the layout map in `lib.rs`): every section's
//! type lives here, one file per section ([`twitch`], [`admission`], [`supervisor`], [`http`],
//! [`engine`], [`store`], [`helix`], [`discord`]), and nothing here imports another module of
//! the crate. Checks that need one (loading the rules directory) are done by their callers.

pub mod admission;
pub mod auth;
pub mod console;
pub mod discord;
pub mod engine;
mod env;
pub mod eventsub;
pub mod helix;
pub mod http;
mod secret;
pub mod store;
pub mod supervisor;
pub mod twitch;

pub use admission::{AdmissionConfig, OverflowPolicy};
pub use auth::AuthConfig;
pub use console::ConsoleConfig;
pub use discord::{DiscordChannel, DiscordConfig, GrantedRole};
pub use engine::EngineConfig;
pub use eventsub::{EventSubConfig, EventSubTransport};
pub use helix::HelixConfig;
pub use http::HttpConfig;
pub use secret::Secret;
pub use store::StoreConfig;
pub use supervisor::SupervisorConfig;
pub use twitch::{Ingest, JoinLimits, SendLimits, SendVia, TwitchConfig};

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
    pub helix: HelixConfig,
    /// Where channel state lives: ScyllaDB/Cassandra when `store.scylla_uri` is set, else an
    /// embedded database.
    pub store: StoreConfig,
    /// Discord guild channels through serenity; off unless `discord.enabled`.
    pub discord: DiscordConfig,
    /// The web console at `/ui`.
    pub console: ConsoleConfig,
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
    /// The Twitch application's client secret (app access tokens, refreshing user tokens).
    pub client_secret: Option<Secret>,
    /// The bot account's first refresh token (the store keeps the newest one).
    pub refresh_token: Option<Secret>,
    /// The EventSub webhook secret (10 to 100 characters); with it `POST /eventsub` is served.
    pub webhook_secret: Option<Secret>,
    /// The password of `store.scylla_username` (also handed to `store.scylla_password`).
    pub scylla_password: Option<Secret>,
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
        env::apply(&mut table, env)?;
        let mut config: Config =
            Config::deserialize(toml::Value::Table(table)).map_err(|e| ConfigError::Parse {
                origin: origin.to_string(),
                message: e.to_string(),
            })?;
        config.secrets = Secrets::load(&config, env)?;
        config.store.scylla_password = config.secrets.scylla_password.clone();
        config.validate()?;
        config.store.check_login()?;
        if config.helix_enabled()
            && config.secrets.helix_token.is_none()
            && config.secrets.refresh_token.is_none()
            && config.twitch.ingest == Ingest::Irc
            && config.twitch.send_via == SendVia::Irc
        {
            return Err(invalid(
                "helix.token_file",
                "helix.client_id is set but there is no token: set FIREHOSE_HELIX_TOKEN or helix.token_file",
            ));
        }
        config.check_twitch_paths()?;
        if !config.console.twitch_redirect_url.is_empty()
            && (config.helix.client_id.is_empty() || config.secrets.client_secret.is_none())
        {
            return Err(invalid(
                "console.twitch_redirect_url",
                "logging in with Twitch needs helix.client_id and the client secret (FIREHOSE_TWITCH_CLIENT_SECRET)",
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

    /// Checks ranges and combinations that serde cannot, section by section.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.twitch.validate()?;
        self.admission.validate()?;
        self.supervisor.validate()?;
        self.http.validate()?;
        self.engine.validate()?;
        self.store.validate()?;
        if self.helix_enabled() {
            self.helix.validate()?;
        }
        self.discord.validate()?;
        self.console.validate()?;
        Ok(())
    }

    /// Checks that what `twitch.ingest`, `twitch.send_via` and `twitch.eventsub.transport`
    /// need is configured (client id, secrets), naming what is missing.
    fn check_twitch_paths(&self) -> Result<(), ConfigError> {
        let t = &self.twitch;
        let s = &self.secrets;
        if let Some(secret) = &s.webhook_secret {
            let len = secret.expose().chars().count();
            if !(10..=100).contains(&len) {
                return Err(invalid(
                    "twitch.eventsub.webhook_secret_file",
                    format!("the webhook secret must be 10 to 100 characters (Twitch's rule), it has {len}"),
                ));
            }
        }
        if s.webhook_secret.is_some() && self.helix.client_id.is_empty() {
            return Err(invalid(
                "helix.client_id",
                "a webhook secret is set: the webhook endpoint serves an application's subscriptions, set its client id",
            ));
        }
        let eventsub = t.ingest == Ingest::Eventsub;
        if (eventsub || t.send_via == SendVia::Helix) && self.helix.client_id.is_empty() {
            return Err(invalid(
                "helix.client_id",
                "twitch.ingest = \"eventsub\" and twitch.send_via = \"helix\" call Helix: set the application's client id",
            ));
        }
        if eventsub && t.eventsub.transport.needs_app_token() && s.client_secret.is_none() {
            return Err(invalid(
                "twitch.auth.client_secret_file",
                format!(
                    "the {} transport subscribes with an app access token: set FIREHOSE_TWITCH_CLIENT_SECRET or twitch.auth.client_secret_file (or use transport = \"websocket\" with a user token)",
                    t.eventsub.transport.as_str()
                ),
            ));
        }
        if eventsub && t.eventsub.transport == EventSubTransport::Webhook {
            if s.webhook_secret.is_none() {
                return Err(invalid(
                    "twitch.eventsub.webhook_secret_file",
                    "the webhook transport needs a secret: set FIREHOSE_EVENTSUB_WEBHOOK_SECRET or twitch.eventsub.webhook_secret_file",
                ));
            }
            if t.eventsub.webhook_callback.is_empty() {
                return Err(invalid(
                    "twitch.eventsub.webhook_callback",
                    "the webhook transport needs this service's public /eventsub URL",
                ));
            }
        }
        let user_token = s.refresh_token.is_some() || self.user_token().is_some();
        let needs_user = (eventsub && t.eventsub.transport == EventSubTransport::Websocket)
            || (t.send_via == SendVia::Helix && s.client_secret.is_none());
        if needs_user && !user_token {
            return Err(invalid(
                "twitch.auth.refresh_token_file",
                "this mode needs the bot's user token: set FIREHOSE_TWITCH_REFRESH_TOKEN (with a client secret) or FIREHOSE_HELIX_TOKEN",
            ));
        }
        if s.refresh_token.is_some() && s.client_secret.is_none() {
            return Err(invalid(
                "twitch.auth.client_secret_file",
                "a refresh token is only usable with the application's client secret",
            ));
        }
        Ok(())
    }

    /// A static user access token given by the operator (used when no refresh token is set):
    /// `FIREHOSE_HELIX_TOKEN`, else the IRC token when it is not anonymous.
    pub fn user_token(&self) -> Option<&Secret> {
        self.secrets
            .helix_token
            .as_ref()
            .or(self.secrets.twitch_token.as_ref())
    }

    /// Whether the service renews its own tokens (a client secret is configured).
    pub fn manages_tokens(&self) -> bool {
        self.secrets.client_secret.is_some() && !self.helix.client_id.is_empty()
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
    /// The same secrets set, each replaced by a placeholder (to compare what is shown).
    #[doc(hidden)]
    pub fn masked(&self) -> Secrets {
        let mask = |s: &Option<Secret>| s.as_ref().map(|_| Secret::new("placeholder"));
        Secrets {
            twitch_token: mask(&self.twitch_token),
            admin_token: mask(&self.admin_token),
            helix_token: mask(&self.helix_token),
            discord_token: mask(&self.discord_token),
            client_secret: mask(&self.client_secret),
            refresh_token: mask(&self.refresh_token),
            webhook_secret: mask(&self.webhook_secret),
            scylla_password: mask(&self.scylla_password),
        }
    }

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
            client_secret: secret::from_env_or_file(
                env,
                "FIREHOSE_TWITCH_CLIENT_SECRET",
                "twitch.auth.client_secret_file",
                config.twitch.auth.client_secret_file.as_deref(),
            )?,
            refresh_token: secret::from_env_or_file(
                env,
                "FIREHOSE_TWITCH_REFRESH_TOKEN",
                "twitch.auth.refresh_token_file",
                config.twitch.auth.refresh_token_file.as_deref(),
            )?,
            webhook_secret: secret::from_env_or_file(
                env,
                "FIREHOSE_EVENTSUB_WEBHOOK_SECRET",
                "twitch.eventsub.webhook_secret_file",
                config.twitch.eventsub.webhook_secret_file.as_deref(),
            )?,
            scylla_password: secret::from_env_or_file(
                env,
                "FIREHOSE_SCYLLA_PASSWORD",
                "store.scylla_password_file",
                config.store.scylla_password_file.as_deref(),
            )?,
        })
    }
}

/// Property code shared by the `config` fuzz target and the suite's smoke test over its seeds
/// (`fuzz/seeds/config/`).
#[doc(hidden)]
pub mod fuzzing {
    use super::Config;

    /// The line that separates a fuzz input's TOML from its environment (`NAME=value` lines).
    pub const ENV_SEPARATOR: &str = "\n%%\n";

    /// A config file plus environment overrides: loading never panics (errors are values), and
    /// an accepted config serialises to TOML that reads back into a config that validates and
    /// serialises the same.
    pub fn check(data: &[u8]) {
        let text = String::from_utf8_lossy(data);
        let (file, env) = text.split_once(ENV_SEPARATOR).unwrap_or((&text, ""));
        let env: Vec<(String, String)> = env
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let Ok(config) = Config::from_toml_with_env(file, "fuzz input", &env) else {
            return;
        };
        let written = toml::to_string(&config).expect("an accepted config serialises");
        let again: Config = toml::from_str(&written)
            .unwrap_or_else(|e| panic!("an accepted config reads back: {e}\n{written}"));
        again
            .validate()
            .unwrap_or_else(|e| panic!("an accepted config validates again: {e}\n{written}"));
        let rewritten = toml::to_string(&again).expect("serialises again");
        assert_eq!(rewritten, written, "serialising is stable");
        // A debug dump shows which secrets are set, never what they are.
        assert_eq!(
            format!("{:?}", config.secrets),
            format!("{:?}", config.secrets.masked()),
            "secrets in Debug"
        );
    }
}

/// Durations as the components want them.
impl Config {
    pub fn ms(value: u64) -> Duration {
        Duration::from_millis(value)
    }
}

#[cfg(test)]
mod tests;
