//! A channel's stream status (live since when, or offline), as the Helix stream watcher last
//! reported it. It outlives actors, so a restarted actor knows it at once.

use std::sync::atomic::{AtomicU64, Ordering};

use super::actor::ChannelMsg;
use super::registry::ChannelShared;

#[derive(Debug, Default)]
pub struct StreamStatus {
    /// When the stream went live (unix ms); 0 while offline or unknown.
    live_since_ms: AtomicU64,
}

impl StreamStatus {
    /// Live since (unix ms), if the stream is live.
    pub fn live_since(&self) -> Option<u64> {
        Some(self.live_since_ms.load(Ordering::Acquire)).filter(|ms| *ms > 0)
    }

    fn set(&self, since: Option<u64>) {
        self.live_since_ms
            .store(since.unwrap_or(0), Ordering::Release);
    }
}

/// Records a change of the channel's stream status and tells its actor, if it changed.
pub fn stream_changed(channel: &ChannelShared, since: Option<u64>) {
    if channel.stream.live_since() == since {
        return;
    }
    channel.stream.set(since);
    channel.mailbox.send(ChannelMsg::StreamStatus(since));
}
