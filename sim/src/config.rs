//! Configuration of the simulator: what traffic to generate and which Twitch limits to enforce.
//!
//! [`SimConfig`] says where to listen, which channels exist and how much chat to produce;
//! [`SendLimits`] holds the Twitch send limits the sim applies to the bot's own PRIVMSGs.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Everything the simulator needs to start.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to listen; `127.0.0.1:0` picks an ephemeral port.
    pub listen: SocketAddr,
    /// Channel logins (without `#`), biggest first: the i-th gets Zipf weight `1/(i+1)^s`.
    pub channels: Vec<String>,
    /// Generated PRIVMSGs per second over all joined channels; 0 means no generated traffic.
    pub rate: f64,
    /// Stop generating once this many PRIVMSGs were sent in total.
    pub max_messages: Option<u64>,
    /// Exponent `s` of the channel weights `1/rank^s`.
    pub zipf_exponent: f64,
    /// Share of generated PRIVMSGs that are `!ping`.
    pub ping_fraction: f64,
    /// Share of generated PRIVMSGs that are `!echo <text>`.
    pub echo_fraction: f64,
    /// Share of generated lines that are USERNOTICE/CLEARCHAT/CLEARMSG (clamped to 0..=0.9).
    pub event_fraction: f64,
    /// File of raw IRC lines whose PRIVMSG texts (and emotes) are reused as content.
    pub corpus: Option<PathBuf>,
    /// Keep the per-channel ordered list of sent PRIVMSG ids (see `record_cap`).
    pub record_sent: bool,
    /// Most PRIVMSG ids kept over all channels when `record_sent` (later ones are counted, not kept).
    pub record_cap: usize,
    /// Twitch send limits applied to the bot's PRIVMSGs.
    pub limits: SendLimits,
    /// How often the server PINGs each client.
    pub server_ping_interval: Duration,
    /// Most simultaneous client connections; further ones are closed at once.
    pub max_connections: usize,
    /// Lines queued per connection before writers wait (backpressure).
    pub outbound_queue: usize,
    /// Most channels the sim knows (configured plus created by JOIN).
    pub max_channels: usize,
    /// A declared content mix (`firehose bench`); `None`: the content pool plus the `!ping` /
    /// `!echo` shares above. Replaceable at run time with `SimHandle::set_mix`.
    pub mix: Option<super::mix::ContentMix>,
    /// Channel weights replacing the Zipf weights (same order as `channels`; missing ones 0).
    pub channel_weights: Option<Vec<f64>>,
    /// Chatter population of each channel (same order as `channels`; default 5,000), drawn
    /// Zipf-distributed (rank r speaks with weight `1/(r+1)`).
    pub channel_chatters: Option<Vec<usize>>,
    /// The bot's login on the simulated Twitch APIs (its user id is derived from it, as in the
    /// chat simulator's GLOBALUSERSTATE).
    pub bot_login: String,
    /// Helix points per token per minute on the simulated API (Twitch: 800).
    pub api_points_per_minute: u32,
    /// EventSub WebSocket server: its keepalive when the client asks for none (s), and faults.
    pub eventsub: super::eventsub::EventSubSimConfig,
}

impl SimConfig {
    /// `n` channels named `sim0000`, `sim0001`, ... with all other settings at their defaults.
    pub fn with_channels(n: usize) -> Self {
        Self {
            channels: (0..n).map(|i| format!("sim{i:04}")).collect(),
            ..Self::default()
        }
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            channels: Vec::new(),
            rate: 0.0,
            max_messages: None,
            zipf_exponent: 1.0,
            ping_fraction: 0.01,
            echo_fraction: 0.005,
            event_fraction: 0.01,
            corpus: None,
            record_sent: false,
            record_cap: 1_000_000,
            limits: SendLimits::default(),
            server_ping_interval: Duration::from_secs(60),
            max_connections: 4096,
            outbound_queue: 4096,
            max_channels: 100_000,
            mix: None,
            channel_weights: None,
            channel_chatters: None,
            bot_login: "firehosedemo".to_string(),
            api_points_per_minute: 800,
            eventsub: super::eventsub::EventSubSimConfig::default(),
        }
    }
}

/// Twitch's limits on what one account may send, as the sim enforces them.
#[derive(Debug, Clone)]
pub struct SendLimits {
    /// Sliding window of the account limits.
    pub window: Duration,
    /// Messages per window when the bot is not mod in the target channel.
    pub account_limit: u32,
    /// Messages per window where the bot is mod, broadcaster or VIP.
    pub account_limit_mod: u32,
    /// Verified bot: 7,500 per window, overriding the two limits above.
    pub verified: bool,
    /// Minimum gap between two messages in one channel where the bot is not mod.
    pub per_channel_interval: Duration,
    /// A message identical to the previous one in that channel within this window is dropped
    /// (mods exempt).
    pub duplicate_window: Duration,
    /// The bot is moderator in every channel.
    pub bot_is_mod: bool,
    /// Longest message in characters.
    pub max_len: usize,
    /// JOINs allowed per `join_window`; excess JOINs are counted as violations and ignored.
    pub join_limit: u32,
    /// Sliding window of the JOIN limit.
    pub join_window: Duration,
}

/// Messages per window for a verified bot.
pub const VERIFIED_ACCOUNT_LIMIT: u32 = 7_500;

impl SendLimits {
    /// Limits that never drop anything (for pure throughput runs).
    pub fn unlimited() -> Self {
        Self {
            account_limit: u32::MAX,
            account_limit_mod: u32::MAX,
            per_channel_interval: Duration::ZERO,
            duplicate_window: Duration::ZERO,
            max_len: usize::MAX,
            join_limit: u32::MAX,
            ..Self::default()
        }
    }

    /// The account limit that applies to a message in a channel where `is_mod` holds.
    pub fn account_limit_for(&self, is_mod: bool) -> u32 {
        if self.verified {
            VERIFIED_ACCOUNT_LIMIT
        } else if is_mod {
            self.account_limit_mod
        } else {
            self.account_limit
        }
    }
}

impl Default for SendLimits {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(30),
            account_limit: 20,
            account_limit_mod: 100,
            verified: false,
            per_channel_interval: Duration::from_secs(1),
            duplicate_window: Duration::from_secs(30),
            bot_is_mod: false,
            max_len: 500,
            join_limit: 20,
            join_window: Duration::from_secs(10),
        }
    }
}
