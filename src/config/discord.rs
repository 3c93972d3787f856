//! `[discord]` configuration: whether Discord runs, its shards, which channels get actors, how
//! guild roles map to the engine's levels, the outbound bounds, and the test seams.
//!
//! The bot token is a secret and not part of this struct: the service reads it from
//! `FIREHOSE_DISCORD_TOKEN`, else `token_file`, like the Twitch and Helix tokens.
//!
//! Test seam: serenity's `HttpBuilder::proxy` only applies with its ratelimiter disabled, and
//! the ratelimiter must stay on in production. So instead of changing the REST URL we keep
//! `https://discord.com` and let `rest_address` make `discord.com` resolve to another address
//! (a fake) whose certificate chains to `root_ca_file`. The ratelimiter runs unchanged.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Discord's own ceiling for a message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 2_000;

/// The level a Discord guild role grants, named like the engine's roles (`subscriber`, `vip`,
/// `moderator`, `broadcaster`; `everyone` grants nothing). The Discord side turns it into the
/// engine's `Role` (configuration knows nothing above it).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum GrantedRole {
    #[default]
    Everyone,
    Subscriber,
    Vip,
    Moderator,
    Broadcaster,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscordConfig {
    /// Connect to Discord and run the mapped channels.
    pub enabled: bool,
    /// File holding the bot token (`FIREHOSE_DISCORD_TOKEN` wins).
    pub token_file: Option<PathBuf>,
    /// Gateway shards this process runs (all of them: shards 0..shards).
    pub shards: u32,
    /// `host:port` that `discord.com` resolves to; empty = normal DNS. Tests point it at the fake.
    pub rest_address: String,
    /// Extra trusted root certificate (PEM) for the REST connection, for a fake's test CA.
    pub root_ca_file: Option<PathBuf>,
    /// Gateway URL; empty = ask `GET /gateway`, as serenity does.
    pub gateway_url: String,
    /// Timeout of one REST action (including serenity's rate-limit waits).
    pub request_timeout_ms: u64,
    /// Actions waiting to be sent; beyond it new ones are dropped and counted.
    pub queue_capacity: usize,
    /// REST actions in flight at once.
    pub max_in_flight: usize,
    /// Longest message in characters (Discord: 2,000); longer replies are cut and counted.
    pub max_message_chars: usize,
    /// A queued action older than this when its turn comes is dropped (counted), not sent late.
    pub max_age_ms: u64,
    /// Channels that get an actor: Discord channel id -> its name and guild.
    pub channels: BTreeMap<String, DiscordChannel>,
    /// Per guild: role id -> the engine role it grants (`subscriber`, `vip`, `moderator`,
    /// `broadcaster`). A member gets the highest of their mapped roles; unmapped = `everyone`.
    pub guild_roles: BTreeMap<String, BTreeMap<String, GrantedRole>>,
    /// Ignore messages from bot accounts and webhooks (other bots' output is not chat input:
    /// answering it can loop two bots). Counted in
    /// `firehose_messages_ignored_total{platform="discord",reason="bot"}`.
    pub ignore_bots: bool,
}

/// One mapped Discord channel.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DiscordChannel {
    /// A human name for logs and `/v1/channels` (the channel's key is its id).
    pub name: String,
    /// The guild (server) the channel belongs to.
    pub guild: String,
}

impl Default for DiscordConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            token_file: None,
            shards: 1,
            rest_address: String::new(),
            root_ca_file: None,
            gateway_url: String::new(),
            request_timeout_ms: 10_000,
            queue_capacity: 4_096,
            max_in_flight: 4,
            max_message_chars: MAX_MESSAGE_CHARS,
            max_age_ms: 15_000,
            channels: BTreeMap::new(),
            guild_roles: BTreeMap::new(),
            ignore_bots: true,
        }
    }
}

/// A Discord snowflake: 1 to 20 decimal digits, not zero.
pub fn is_snowflake(s: &str) -> bool {
    (1..=20).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_digit())
        && s.parse::<u64>().is_ok_and(|n| n > 0)
}

fn invalid(key: &str, reason: &str) -> ConfigError {
    super::invalid(&format!("discord.{key}"), reason)
}

impl DiscordConfig {
    /// Checks ranges and ids; errors name the key (`discord.<key>`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.shards == 0 || self.shards > 1_024 {
            return Err(invalid("shards", "must be 1..=1024"));
        }
        if !self.rest_address.is_empty()
            && self.rest_address.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(invalid("rest_address", "must be empty or ip:port"));
        }
        let url = &self.gateway_url;
        if !(url.is_empty() || url.starts_with("ws://") || url.starts_with("wss://")) {
            return Err(invalid(
                "gateway_url",
                "must be empty or a ws:// or wss:// URL",
            ));
        }
        for (key, value) in [
            ("request_timeout_ms", self.request_timeout_ms),
            ("queue_capacity", self.queue_capacity as u64),
            ("max_in_flight", self.max_in_flight as u64),
            ("max_age_ms", self.max_age_ms),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        if self.max_message_chars == 0 || self.max_message_chars > MAX_MESSAGE_CHARS {
            return Err(invalid(
                "max_message_chars",
                "must be 1..=2000 (Discord's own limit)",
            ));
        }
        self.validate_ids()
    }

    fn validate_ids(&self) -> Result<(), ConfigError> {
        for (id, channel) in &self.channels {
            if !is_snowflake(id) {
                return Err(invalid(
                    &format!("channels.{id}"),
                    "a channel id is a Discord snowflake (digits)",
                ));
            }
            if !is_snowflake(&channel.guild) {
                return Err(invalid(
                    &format!("channels.{id}.guild"),
                    "a guild id is a Discord snowflake (digits)",
                ));
            }
        }
        for (guild, roles) in &self.guild_roles {
            if !is_snowflake(guild) {
                return Err(invalid(
                    &format!("guild_roles.{guild}"),
                    "a guild id is a Discord snowflake (digits)",
                ));
            }
            if let Some(bad) = roles.keys().find(|r| !is_snowflake(r)) {
                return Err(invalid(
                    &format!("guild_roles.{guild}.{bad}"),
                    "a role id is a Discord snowflake (digits)",
                ));
            }
        }
        Ok(())
    }

    /// The guild of a mapped channel.
    pub fn guild_of(&self, channel_id: &str) -> Option<&str> {
        self.channels.get(channel_id).map(|c| c.guild.as_str())
    }

    /// The highest level any of `roles` grants in `guild`.
    pub fn role_of<'a>(
        &self,
        guild: &str,
        roles: impl IntoIterator<Item = &'a str>,
    ) -> GrantedRole {
        let Some(map) = self.guild_roles.get(guild) else {
            return GrantedRole::Everyone;
        };
        roles
            .into_iter()
            .filter_map(|r| map.get(r).copied())
            .max()
            .unwrap_or(GrantedRole::Everyone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_and_named() {
        let mut config = DiscordConfig::default();
        config.channels.insert(
            "12a".into(),
            DiscordChannel {
                name: "general".into(),
                guild: "1".into(),
            },
        );
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("discord.channels.12a"), "{err}");
        config.channels.clear();
        config.guild_roles.insert(
            "5".into(),
            BTreeMap::from([("x".into(), GrantedRole::Moderator)]),
        );
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("discord.guild_roles.5.x"), "{err}");
    }

    #[test]
    fn the_highest_mapped_role_wins() {
        let mut config = DiscordConfig::default();
        config.guild_roles.insert(
            "10".into(),
            BTreeMap::from([
                ("1".into(), GrantedRole::Subscriber),
                ("2".into(), GrantedRole::Moderator),
            ]),
        );
        assert_eq!(
            config.role_of("10", ["1", "2", "3"]),
            GrantedRole::Moderator
        );
        assert_eq!(config.role_of("10", ["1"]), GrantedRole::Subscriber);
        assert_eq!(config.role_of("10", ["3"]), GrantedRole::Everyone);
        assert_eq!(config.role_of("11", ["2"]), GrantedRole::Everyone);
    }
}
