//! `[supervisor]`: restart backoff and intensity of the channel actors, and the shutdown
//! drain deadline.

use serde::{Deserialize, Serialize};

use super::{invalid, positive, ConfigError};
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
    /// A joined channel gets its actor on its first message rather than at the join (channels
    /// whose rules have timers start at once): an idle channel costs its admission gate and
    /// counters, not an actor, its engine state and its queues.
    pub lazy_start: bool,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        Self {
            restart_backoff_ms: 50,
            restart_backoff_max_ms: 5_000,
            max_restarts: 5,
            restart_window_ms: 60_000,
            drain_timeout_ms: 5_000,
            lazy_start: true,
        }
    }
}

impl SupervisorConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let sv = self;
        positive("supervisor.restart_backoff_ms", sv.restart_backoff_ms)?;
        if sv.restart_backoff_max_ms < sv.restart_backoff_ms {
            return Err(invalid(
                "supervisor.restart_backoff_max_ms",
                "must be at least supervisor.restart_backoff_ms",
            ));
        }
        positive("supervisor.restart_window_ms", sv.restart_window_ms)?;
        positive("supervisor.drain_timeout_ms", sv.drain_timeout_ms)?;
        Ok(())
    }
}
