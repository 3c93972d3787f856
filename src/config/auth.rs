//! `[twitch.auth]`: OAuth tokens that renew themselves, and onboarding a channel.
//!
//! The application's client id is `helix.client_id`; its client secret, the bot account's
//! refresh token and every access token are secrets: they come from the environment
//! (`FIREHOSE_TWITCH_CLIENT_SECRET`, `FIREHOSE_TWITCH_REFRESH_TOKEN`) or from the files named
//! here, never from this section, and are held in `Secrets`. With a client secret the service
//! keeps an **app access token** (client credentials) and, with a refresh token too, the bot's
//! **user access token**, both renewed before they expire and after any 401, and validated at
//! start and every `validate_interval_ms` (Twitch requires hourly).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{invalid, positive, ConfigError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Root of Twitch's OAuth service (`/token`, `/validate`, `/authorize` under it); tests
    /// point it at the simulator.
    pub oauth_url: String,
    /// File holding the application's client secret (`FIREHOSE_TWITCH_CLIENT_SECRET` wins).
    pub client_secret_file: Option<PathBuf>,
    /// File holding the bot account's first refresh token (`FIREHOSE_TWITCH_REFRESH_TOKEN`
    /// wins). Once the service has refreshed, the newest refresh token lives in the state store
    /// and wins over this one.
    pub refresh_token_file: Option<PathBuf>,
    /// Where Twitch sends an authorising broadcaster back: this service's `/oauth/callback`
    /// as the world reaches it (it must be registered with the application). Empty: the
    /// authorisation links of `GET /v1/channels/{login}/authorize` are not offered.
    pub redirect_url: String,
    /// Validate every token this often (Twitch requires at start and hourly).
    pub validate_interval_ms: u64,
    /// Renew a token once less than this is left of its life (or a tenth of its life, if
    /// that is less).
    pub refresh_margin_ms: u64,
    /// Timeout of one call to the OAuth service.
    pub request_timeout_ms: u64,
    /// First delay after a failed renewal; doubled per failure up to the maximum.
    pub retry_backoff_ms: u64,
    pub retry_backoff_max_ms: u64,
    /// How long an authorisation link (its `state`) stays valid.
    pub authorize_ttl_ms: u64,
    /// Authorisation links waiting for their callback, at most (oldest forgotten first).
    pub max_pending_authorizations: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            oauth_url: "https://id.twitch.tv/oauth2".into(),
            client_secret_file: None,
            refresh_token_file: None,
            redirect_url: String::new(),
            validate_interval_ms: 3_600_000,
            refresh_margin_ms: 300_000,
            request_timeout_ms: 10_000,
            retry_backoff_ms: 1_000,
            retry_backoff_max_ms: 60_000,
            authorize_ttl_ms: 600_000,
            max_pending_authorizations: 1_000,
        }
    }
}

impl AuthConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !is_http_url(&self.oauth_url) {
            return Err(invalid("twitch.auth.oauth_url", "must be an http(s) URL"));
        }
        if !self.redirect_url.is_empty() && !is_http_url(&self.redirect_url) {
            return Err(invalid(
                "twitch.auth.redirect_url",
                "must be an http(s) URL (this service's /oauth/callback) or empty",
            ));
        }
        positive(
            "twitch.auth.validate_interval_ms",
            self.validate_interval_ms,
        )?;
        if self.validate_interval_ms > 3_600_000 {
            return Err(invalid(
                "twitch.auth.validate_interval_ms",
                "Twitch requires validating every hour: at most 3600000",
            ));
        }
        positive("twitch.auth.request_timeout_ms", self.request_timeout_ms)?;
        positive("twitch.auth.retry_backoff_ms", self.retry_backoff_ms)?;
        if self.retry_backoff_max_ms < self.retry_backoff_ms {
            return Err(invalid(
                "twitch.auth.retry_backoff_max_ms",
                "must be at least twitch.auth.retry_backoff_ms",
            ));
        }
        positive("twitch.auth.authorize_ttl_ms", self.authorize_ttl_ms)?;
        positive(
            "twitch.auth.max_pending_authorizations",
            self.max_pending_authorizations as u64,
        )?;
        Ok(())
    }
}

/// `http://` or `https://` followed by a host.
pub fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
}
