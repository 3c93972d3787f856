//! `[helix]` configuration: where the Helix API is, the token's budget, retries and bounds.
//!
//! Every field has a default (real Twitch values); [`HelixConfig::validate`] checks ranges and
//! names the key at fault (`helix.<key>`). The OAuth token itself is a secret and is not part
//! of this struct: the configuration reads it (env `FIREHOSE_HELIX_TOKEN`, else `token_file`)
//! into `Secrets`, and start-up hands it to the Helix moderator.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HelixConfig {
    /// API root, e.g. `https://api.twitch.tv/helix` (tests point it at the fake).
    pub base_url: String,
    /// The application's client id, sent as `Client-Id`.
    pub client_id: String,
    /// File holding the bot's OAuth user token (`FIREHOSE_HELIX_TOKEN` wins).
    pub token_file: Option<PathBuf>,
    /// Helix points per budget window for this token; each moderation call costs 1.
    pub points_per_minute: u32,
    /// Length of the budget window (60 000 on Twitch; smaller in tests).
    pub budget_window_ms: u64,
    /// Timeout of one HTTP call.
    pub request_timeout_ms: u64,
    /// Retries after the first attempt on 429, 5xx and transport errors.
    pub max_retries: u32,
    /// First retry delay; doubled per retry, with jitter.
    pub retry_backoff_ms: u64,
    /// Pending actions; beyond it new ones are dropped and counted.
    pub queue_capacity: usize,
    /// Calls in flight at once, so one slow call does not stall the rest.
    pub max_in_flight: usize,
    /// Append every log entry to this file as a JSON line (as well as the in-memory log).
    pub moderation_log: Option<PathBuf>,
    /// In-memory moderation log entries kept (oldest dropped first).
    pub log_capacity: usize,
    /// How often stream status (live or not, since when) is polled from `GET /streams`.
    pub stream_poll_interval_ms: u64,
    /// An action that waited this long since its chat message arrived is dropped (counted,
    /// logged) instead of being sent late.
    pub max_action_age_ms: u64,
}

impl Default for HelixConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.twitch.tv/helix".into(),
            client_id: String::new(),
            token_file: None,
            points_per_minute: 800,
            budget_window_ms: 60_000,
            request_timeout_ms: 5_000,
            max_retries: 4,
            retry_backoff_ms: 200,
            queue_capacity: 10_000,
            max_in_flight: 8,
            moderation_log: None,
            log_capacity: 10_000,
            stream_poll_interval_ms: 60_000,
            max_action_age_ms: 60_000,
        }
    }
}

fn invalid(key: &str, reason: &str) -> ConfigError {
    super::invalid(&format!("helix.{key}"), reason)
}

fn in_range(key: &str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(invalid(key, &format!("must be {min}..={max}, got {value}")))
    }
}

impl HelixConfig {
    /// Checks ranges; the error names the key (`helix.<key>`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let base = self.base_url.trim_end_matches('/');
        let scheme_ok = base.starts_with("https://") || base.starts_with("http://");
        if !scheme_ok || base.len() <= "https://".len() {
            return Err(invalid("base_url", "must be an http(s) URL"));
        }
        if self.client_id.trim().is_empty() {
            return Err(invalid("client_id", "must not be empty"));
        }
        if self.stream_poll_interval_ms < 1_000 {
            return Err(invalid("stream_poll_interval_ms", "must be at least 1000"));
        }
        in_range(
            "points_per_minute",
            self.points_per_minute.into(),
            1,
            100_000,
        )?;
        in_range("budget_window_ms", self.budget_window_ms, 1, 3_600_000)?;
        in_range("request_timeout_ms", self.request_timeout_ms, 1, 600_000)?;
        in_range("max_retries", self.max_retries.into(), 0, 20)?;
        in_range("retry_backoff_ms", self.retry_backoff_ms, 1, 60_000)?;
        in_range("queue_capacity", self.queue_capacity as u64, 1, 1_000_000)?;
        in_range("max_in_flight", self.max_in_flight as u64, 1, 256)?;
        in_range("max_action_age_ms", self.max_action_age_ms, 1, 3_600_000)?;
        in_range("log_capacity", self.log_capacity as u64, 1, 1_000_000)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> HelixConfig {
        HelixConfig {
            client_id: "abc".into(),
            ..HelixConfig::default()
        }
    }

    #[test]
    fn defaults_with_a_client_id_are_valid() {
        assert!(valid().validate().is_ok());
    }

    #[test]
    fn errors_name_the_key() {
        let cases: Vec<(HelixConfig, &str)> = vec![
            (HelixConfig::default(), "helix.client_id:"),
            (
                HelixConfig {
                    base_url: "ftp://x".into(),
                    ..valid()
                },
                "helix.base_url:",
            ),
            (
                HelixConfig {
                    points_per_minute: 0,
                    ..valid()
                },
                "helix.points_per_minute:",
            ),
            (
                HelixConfig {
                    queue_capacity: 0,
                    ..valid()
                },
                "helix.queue_capacity:",
            ),
            (
                HelixConfig {
                    max_in_flight: 0,
                    ..valid()
                },
                "helix.max_in_flight:",
            ),
        ];
        for (config, key) in cases {
            match config.validate() {
                Err(ConfigError::Invalid { key: named, .. }) => {
                    assert_eq!(format!("{named}:"), key, "wrong key named")
                }
                other => panic!("{other:?} should name {key}"),
            }
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<HelixConfig>("client_id = 'a'\npoints = 3\n");
        assert!(err.is_err());
        let ok: Result<HelixConfig, _> = toml::from_str("client_id = 'a'\nmax_retries = 2\n");
        assert_eq!(ok.map(|c| c.max_retries).ok(), Some(2));
    }
}
