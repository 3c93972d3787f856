//! The ticker: sends a timer tick every `engine.tick_interval_ms` to the channels whose rules
//! have timers, never more than one pending per channel (see [`super::mailbox::Mailbox::tick`]).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::registry::ChannelRegistry;

/// Runs until `stop` is cancelled.
pub async fn run_ticker(registry: Arc<ChannelRegistry>, every: Duration, stop: CancellationToken) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = interval.tick() => {
                registry.for_each(|channel| channel.mailbox.tick());
            }
        }
    }
}
