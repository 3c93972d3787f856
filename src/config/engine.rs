//! `[engine]`: where the per-channel rules files are and how often timers tick. The rules
//! themselves are loaded and validated by their callers (start-up, `check-config`), not here:
//! configuration knows no module above it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{positive, ConfigError};
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

impl EngineConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        positive("engine.tick_interval_ms", self.tick_interval_ms)
    }
}
