//! `[twitch]`: the chat connection (server, login, channels, keepalive, reconnects),
//! Twitch's JOIN and PRIVMSG limits with the bounded send queue, where chat is read from
//! (`ingest`: IRC or EventSub) and sent through (`send_via`: IRC or the Helix Chat API), and
//! the `[twitch.auth]` and `[twitch.eventsub]` sub-sections.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::auth::AuthConfig;
use super::eventsub::EventSubConfig;
use super::{invalid, is_login, positive, ConfigError};

/// Where chat is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Ingest {
    /// The IRC connection (`twitch.server`).
    #[default]
    Irc,
    /// EventSub (`[twitch.eventsub]`): Twitch's documented path for chat bots.
    Eventsub,
}

/// What the bot's chat messages are sent through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SendVia {
    /// PRIVMSG on the IRC connection.
    #[default]
    Irc,
    /// Helix `POST /chat/messages` (the app token where the broadcaster authorised
    /// `channel:bot`, which shows the Chat Bot badge; else the bot's user token).
    Helix,
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
    /// Where chat is read from: `irc` (default) or `eventsub`.
    pub ingest: Ingest,
    /// What replies are sent through: `irc` (default) or `helix`.
    pub send_via: SendVia,
    pub auth: AuthConfig,
    pub eventsub: EventSubConfig,
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
            ingest: Ingest::Irc,
            send_via: SendVia::Irc,
            auth: AuthConfig::default(),
            eventsub: EventSubConfig::default(),
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

impl TwitchConfig {
    /// Whether the IRC connection is needed at all (to read chat, or to send it).
    pub fn uses_irc(&self) -> bool {
        self.ingest == Ingest::Irc || self.send_via == SendVia::Irc
    }

    /// Checks ranges and logins; errors name the key (`twitch.send.window_ms`).
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let t = self;
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
        self.auth.validate()?;
        self.eventsub.validate()?;
        Ok(())
    }
}
