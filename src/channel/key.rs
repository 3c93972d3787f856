//! The channel key: which platform, and the channel's name there (Twitch login, Discord
//! channel id). Its display form (`twitch:login`) is also the channel's name in the store.

use std::sync::Arc;

use crate::engine::Platform;

/// Identifies a channel: platform plus its key there (Twitch login, Discord channel id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelKey {
    pub platform: Platform,
    pub name: Arc<str>,
}

impl ChannelKey {
    pub fn twitch(login: &str) -> Self {
        ChannelKey {
            platform: Platform::Twitch,
            name: Arc::from(login),
        }
    }

    /// A Discord channel, keyed by its channel id.
    pub fn discord(channel_id: &str) -> Self {
        ChannelKey {
            platform: Platform::Discord,
            name: Arc::from(channel_id),
        }
    }
}

impl std::fmt::Display for ChannelKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.platform.as_str(), self.name)
    }
}
