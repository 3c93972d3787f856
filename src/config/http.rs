//! `[http]`: where the health, metrics and admin endpoints listen (one address, or the admin
//! API and metrics on an address of their own), the connection limits, and the admin token file.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{invalid, ConfigError};

/// Longest `http.header_read_timeout_ms` accepted: a request head that has not arrived in 30 s
/// is not coming.
pub const MAX_HEADER_READ_TIMEOUT_MS: u64 = 30_000;
/// Longest `http.body_read_timeout_ms` accepted (the bodies this API takes are at most a few
/// MiB).
pub const MAX_BODY_READ_TIMEOUT_MS: u64 = 60_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the endpoints: all of them, or without `admin_listen` set, only the public
    /// ones (`/healthz`, `/readyz`, `/oauth/callback`, `/eventsub`).
    pub listen: SocketAddr,
    /// Optional address of its own for the admin API (`/v1/...`) and `/metrics` (with
    /// `/healthz` and `/readyz` too); they are then no longer served on `listen`.
    pub admin_listen: Option<SocketAddr>,
    /// A connection whose request head (request line and headers) has not fully arrived this
    /// long after the server started reading it is closed (idle keep-alive connections too).
    pub header_read_timeout_ms: u64,
    /// A request whose body has not fully arrived this long after its head did is answered
    /// 408 and its connection closed (counted: `firehose_http_body_timeouts_total`).
    pub body_read_timeout_ms: u64,
    /// Connections open at once per listening address; one more is closed at once and counted
    /// (`firehose_http_connections_refused_total`).
    pub max_connections: u32,
    /// File holding the admin bearer token (used when FIREHOSE_ADMIN_TOKEN is not set).
    pub admin_token_file: Option<PathBuf>,
    /// `/metrics` has per-channel series for at most this many channels, the busiest by
    /// messages received (besides `metrics_channels`); the others are summed under
    /// `channel="_other"`. 0: sums only.
    pub metrics_top_channels: usize,
    /// Channels (Twitch logins, Discord channel ids) that always have series of their own.
    pub metrics_channels: Vec<String>,
}

/// Most `http.metrics_top_channels` (a scrape of more series than this is no longer cheap).
pub const MAX_METRICS_TOP_CHANNELS: usize = 10_000;
/// Most names in `http.metrics_channels`.
pub const MAX_METRICS_CHANNELS: usize = 1_000;

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: None,
            header_read_timeout_ms: MAX_HEADER_READ_TIMEOUT_MS,
            body_read_timeout_ms: 30_000,
            max_connections: 1_024,
            admin_token_file: None,
            metrics_top_channels: 100,
            metrics_channels: Vec::new(),
        }
    }
}

impl HttpConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_HEADER_READ_TIMEOUT_MS).contains(&self.header_read_timeout_ms) {
            return Err(invalid(
                "http.header_read_timeout_ms",
                format!("must be 1 to {MAX_HEADER_READ_TIMEOUT_MS}"),
            ));
        }
        if !(1..=MAX_BODY_READ_TIMEOUT_MS).contains(&self.body_read_timeout_ms) {
            return Err(invalid(
                "http.body_read_timeout_ms",
                format!("must be 1 to {MAX_BODY_READ_TIMEOUT_MS}"),
            ));
        }
        if self.max_connections == 0 {
            return Err(invalid("http.max_connections", "must be at least 1"));
        }
        if self.metrics_top_channels > MAX_METRICS_TOP_CHANNELS {
            return Err(invalid(
                "http.metrics_top_channels",
                format!("must be at most {MAX_METRICS_TOP_CHANNELS}"),
            ));
        }
        if self.metrics_channels.len() > MAX_METRICS_CHANNELS {
            return Err(invalid(
                "http.metrics_channels",
                format!("at most {MAX_METRICS_CHANNELS} names"),
            ));
        }
        if let Some(admin) = self.admin_listen {
            // Port 0 asks for any free port: two such binds never collide.
            if admin == self.listen && admin.port() != 0 {
                return Err(invalid(
                    "http.admin_listen",
                    "must differ from http.listen (leave it out to serve everything on http.listen)",
                ));
            }
        }
        Ok(())
    }
}
