//! Cross-channel memory: an account banned for a filter hit in one channel is marked for the
//! service's other channels that ask for it (`[defence] cross_channel`).
//!
//! [`CrossChannelSink`] sits in front of the platform dispatch: every action passes through
//! unchanged, and a ban whose rule is a filter (not `nuke`, the raid defence or this very
//! memory, so marks never echo between channels) is also handed, as an
//! [`EventKind::UserFlagged`], to each subscribed channel of the same platform through the
//! router, like a chat event: admission applies and anything shed is counted there. The
//! engine of each such channel then bans the account at once or times it out on its first
//! message there, with the source channel and the reason in the moderation log. Counted in
//! `firehose_cross_channel_marks_total` (bans shared) and
//! `firehose_cross_channel_deliveries_total` (events handed to joined channels; admission's
//! own counters say which were shed).

use std::sync::Arc;
use std::time::Instant;

use super::admission::Router;
use super::rules_book::RulesBook;
use super::ActionSink;
use crate::engine::defence::{CROSS_RULE, RULE as DEFENCE_RULE};
use crate::engine::{Action, ChatEvent, EventKind};
use crate::obs::Metrics;

/// Rules whose bans are not shared: they are not one filter hit on one account.
const NOT_SHARED: [&str; 3] = ["nuke", DEFENCE_RULE, CROSS_RULE];

/// The sink in front of the platform dispatch that shares filter bans.
pub struct CrossChannelSink {
    inner: Arc<dyn ActionSink>,
    router: Arc<Router>,
    rules: Arc<RulesBook>,
    metrics: Arc<Metrics>,
}

impl CrossChannelSink {
    pub fn new(
        inner: Arc<dyn ActionSink>,
        router: Arc<Router>,
        rules: Arc<RulesBook>,
        metrics: Arc<Metrics>,
    ) -> CrossChannelSink {
        CrossChannelSink {
            inner,
            router,
            rules,
            metrics,
        }
    }

    fn share(&self, event: &ChatEvent, user_id: &str, reason: &str, rule: &str) {
        let subscribers = self.rules.cross_channel_subscribers(event.platform);
        if subscribers.is_empty() {
            return;
        }
        let login = event
            .message()
            .filter(|m| m.user.id == user_id)
            .map(|m| m.user.login.clone())
            .unwrap_or_default();
        self.metrics.cross_channel_marks.inc();
        let reason = format!("{rule}: {}", reason.chars().take(200).collect::<String>());
        let now = Instant::now();
        for key in subscribers.iter().filter(|k| k.name != event.channel) {
            let flagged = ChatEvent {
                platform: event.platform,
                channel: Arc::clone(&key.name),
                kind: EventKind::UserFlagged {
                    user_id: user_id.to_string(),
                    login: login.clone(),
                    source: event.channel.to_string(),
                    reason: reason.clone(),
                },
            };
            if !matches!(
                self.router.route(flagged, now),
                super::admission::Routed::Unrouted
            ) {
                self.metrics.cross_channel_deliveries.inc();
            }
        }
    }
}

impl ActionSink for CrossChannelSink {
    fn submit(&self, event: &ChatEvent, action: Action, received_at: Option<Instant>) {
        if let Action::Ban {
            user_id,
            reason,
            rule,
        } = &action
        {
            if !NOT_SHARED.contains(&rule.as_str()) {
                self.share(event, user_id, reason, rule);
            }
        }
        self.inner.submit(event, action, received_at);
    }
}
