//! The platform dispatcher: one [`ActionSink`] in front of each platform's outbound side.
//!
//! Channel actors do not know their platform's transport; they submit every action here, and
//! it goes to the sink of the platform the event came from. An action for a platform that is
//! not running is counted (`outbound_dropped{reason="platform_not_configured"}`).

use std::sync::Arc;
use std::time::Instant;

use super::ActionSink;
use crate::engine::{Action, ChatEvent, Platform};
use crate::obs::Metrics;

pub struct PlatformDispatch {
    pub twitch: Arc<dyn ActionSink>,
    pub discord: Option<Arc<dyn ActionSink>>,
    pub metrics: Arc<Metrics>,
}

impl ActionSink for PlatformDispatch {
    fn submit(&self, event: &ChatEvent, action: Action, received_at: Option<Instant>) {
        let sink = match event.platform {
            Platform::Twitch => Some(&self.twitch),
            Platform::Discord => self.discord.as_ref(),
        };
        match sink {
            Some(sink) => sink.submit(event, action, received_at),
            None => self.metrics.outbound_dropped("platform_not_configured"),
        }
    }
}
