//! `[engine]`: where the per-channel rules files are, how often timers tick, and whose
//! messages the bot ignores. The rules themselves are loaded and validated by their callers
//! (start-up, `check-config`), not here: configuration knows no module above it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{invalid, positive, ConfigError};

/// Most entries `engine.ignore_users` may hold.
pub const MAX_IGNORE_USERS: usize = 10_000;
/// Longest entry of `engine.ignore_users` (Discord user names: 32; Twitch logins: 25; ids: 20).
pub const MAX_IGNORE_USER_LEN: usize = 32;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Folder of per-channel rules files, `<channel>.toml` each (see `config/channels/`).
    /// Channels without a file run the built-in commands only. Empty = none.
    pub rules_dir: String,
    /// Milliseconds between timer ticks sent to channels that have timers.
    pub tick_interval_ms: u64,
    /// Other bots whose chat messages never reach the engine: Twitch logins (compared
    /// case-insensitively), Discord user names, or user ids of either platform. The bot's own
    /// account is always ignored and need not be listed.
    pub ignore_users: Vec<String>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            rules_dir: String::new(),
            tick_interval_ms: 1_000,
            ignore_users: Vec::new(),
        }
    }
}

impl EngineConfig {
    pub fn rules_dir(&self) -> Option<&Path> {
        (!self.rules_dir.is_empty()).then(|| Path::new(&self.rules_dir))
    }
}

impl EngineConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        positive("engine.tick_interval_ms", self.tick_interval_ms)?;
        if self.ignore_users.len() > MAX_IGNORE_USERS {
            return Err(invalid(
                "engine.ignore_users",
                format!("at most {MAX_IGNORE_USERS} entries"),
            ));
        }
        for user in &self.ignore_users {
            let valid = (1..=MAX_IGNORE_USER_LEN).contains(&user.len())
                && user
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
            if !valid {
                return Err(invalid(
                    "engine.ignore_users",
                    format!(
                        "`{}` is not a login, user name or user id (1 to {MAX_IGNORE_USER_LEN} of a-z, 0-9, _ and .)",
                        user.escape_debug()
                    ),
                ));
            }
        }
        Ok(())
    }
}
