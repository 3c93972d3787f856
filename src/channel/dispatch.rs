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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<Platform>>);

    impl ActionSink for Recorder {
        fn submit(&self, event: &ChatEvent, _action: Action, _received_at: Option<Instant>) {
            if let Ok(mut seen) = self.0.lock() {
                seen.push(event.platform);
            }
        }
    }

    fn event(platform: Platform) -> ChatEvent {
        ChatEvent {
            platform,
            channel: Arc::from("c"),
            kind: crate::engine::EventKind::Tick,
        }
    }

    #[test]
    fn each_action_goes_to_its_platform_and_an_unconfigured_one_is_counted() {
        let twitch = Arc::new(Recorder::default());
        let discord = Arc::new(Recorder::default());
        let metrics = Metrics::new(crate::obs::registry());
        let say = || Action::Say { text: "x".into() };
        let both = PlatformDispatch {
            twitch: Arc::clone(&twitch) as Arc<dyn ActionSink>,
            discord: Some(Arc::clone(&discord) as Arc<dyn ActionSink>),
            metrics: Arc::clone(&metrics),
        };
        both.submit(&event(Platform::Discord), say(), None);
        both.submit(&event(Platform::Twitch), say(), None);
        assert_eq!(*twitch.0.lock().expect("lock"), [Platform::Twitch]);
        assert_eq!(*discord.0.lock().expect("lock"), [Platform::Discord]);
        let twitch_only = PlatformDispatch {
            discord: None,
            ..both
        };
        twitch_only.submit(&event(Platform::Discord), say(), None);
        assert!(metrics
            .render()
            .contains("firehose_outbound_dropped_total{reason=\"platform_not_configured\"} 1"));
    }
}
