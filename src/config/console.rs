//! `[console]`: the web console at `/ui` (`http::console`): who may log in, how long a
//! session lasts, how many live at once, and the audit log's bound.

use serde::{Deserialize, Serialize};

use super::auth::is_http_url;
use super::{invalid, positive, ConfigError};

/// Longest session life (a week): a stolen cookie is not good for longer.
pub const MAX_SESSION_TTL_MS: u64 = 7 * 24 * 3_600_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Serve `/ui` (with the admin token configured, or a Twitch login redirect).
    pub enabled: bool,
    /// This service's `/ui/login/twitch/callback` as registered with the Twitch application;
    /// empty = no "log in with Twitch" (streamers and moderators), admin token only.
    pub twitch_redirect_url: String,
    /// An operator's session ends this long after its login.
    pub session_ttl_ms: u64,
    /// A streamer's or moderator's session (Twitch login) ends this long after its login: the
    /// channels Twitch said they moderate are read at login, so a moderator removed on Twitch
    /// keeps access at most this long.
    pub twitch_session_ttl_ms: u64,
    /// Sessions alive at once; a new login beyond it ends the oldest session.
    pub max_sessions: usize,
    /// Mark the cookies `Secure` (set when the console is reached over HTTPS, e.g. behind a
    /// TLS-terminating proxy; an `https://` `twitch_redirect_url` implies it).
    pub secure_cookies: bool,
    /// Rule edits kept per channel in the audit log; the oldest go first.
    pub audit_entries_per_channel: usize,
    /// Largest chat input the "try it" box replays (pasted or from a file).
    pub try_max_bytes: usize,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            twitch_redirect_url: String::new(),
            session_ttl_ms: 8 * 3_600_000,
            twitch_session_ttl_ms: 3_600_000,
            max_sessions: 10_000,
            secure_cookies: false,
            audit_entries_per_channel: 500,
            try_max_bytes: 1024 * 1024,
        }
    }
}

impl ConsoleConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !self.twitch_redirect_url.is_empty() && !is_http_url(&self.twitch_redirect_url) {
            return Err(invalid(
                "console.twitch_redirect_url",
                "must be an http(s) URL (this service's /ui/login/twitch/callback) or empty",
            ));
        }
        if !(1..=MAX_SESSION_TTL_MS).contains(&self.session_ttl_ms) {
            return Err(invalid(
                "console.session_ttl_ms",
                format!("must be 1 to {MAX_SESSION_TTL_MS} (a week)"),
            ));
        }
        if !(1..=MAX_SESSION_TTL_MS).contains(&self.twitch_session_ttl_ms) {
            return Err(invalid(
                "console.twitch_session_ttl_ms",
                format!("must be 1 to {MAX_SESSION_TTL_MS} (a week)"),
            ));
        }
        positive("console.max_sessions", self.max_sessions as u64)?;
        if !(1..=100_000).contains(&self.audit_entries_per_channel) {
            return Err(invalid(
                "console.audit_entries_per_channel",
                "must be 1 to 100000",
            ));
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.try_max_bytes) {
            return Err(invalid("console.try_max_bytes", "must be 1 KiB to 16 MiB"));
        }
        Ok(())
    }
}
