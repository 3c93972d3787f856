//! `eventsub_*` metrics: what arrived (by type), what was dropped and why (duplicates, the
//! bot's own messages, channels not served, malformed or oversized frames), the sessions and
//! their ends (by close code or reason), subscription requests and revocations, the webhook
//! endpoint's answers and its hand-off queue.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    pub r#type: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Debug, Clone, Default)]
pub struct EventSubMetrics {
    /// Notifications handed on (to the router or the stream status), by subscription type.
    pub notifications: Family<TypeLabel, Counter>,
    /// Notifications seen before (same message id): dropped.
    pub duplicates: Counter,
    /// The bot's own chat messages (EventSub shows them; IRC does not): dropped.
    pub own_messages: Counter,
    /// Notifications for channels this service does not serve: acknowledged, dropped.
    pub unserved: Counter,
    /// Frames or bodies that could not be used, by reason (json, too_large, unknown_type, ...).
    pub malformed: Family<ReasonLabel, Counter>,
    /// WebSocket sessions with a welcome now.
    pub sessions_connected: Gauge,
    /// Sessions replaced, by why (keepalive, close_<code>, session_reconnect, lost, ...).
    pub reconnects: Family<ReasonLabel, Counter>,
    /// Create Subscription calls by outcome (created, exists, refused_<status>, failed, ...).
    pub subscription_requests: Family<OutcomeLabel, Counter>,
    /// Subscriptions revoked by Twitch, by status.
    pub revocations: Family<ReasonLabel, Counter>,
    /// Answers of `POST /eventsub` by outcome.
    pub webhook_requests: Family<OutcomeLabel, Counter>,
    /// Webhook notifications accepted and waiting to be handled.
    pub webhook_queue_depth: Gauge,
    /// Chat lines read on the IRC connection while chat comes from EventSub (not routed).
    pub irc_chat_not_routed: Counter,
}

impl EventSubMetrics {
    pub fn register(registry: &mut Registry) -> EventSubMetrics {
        let m = EventSubMetrics::default();
        registry.register(
            "eventsub_notifications",
            "EventSub notifications handled, by subscription type",
            m.notifications.clone(),
        );
        registry.register(
            "eventsub_duplicates",
            "EventSub notifications delivered again by Twitch (same message id) and dropped",
            m.duplicates.clone(),
        );
        registry.register(
            "eventsub_own_messages",
            "The bot's own chat messages seen through EventSub and dropped",
            m.own_messages.clone(),
        );
        registry.register(
            "eventsub_unserved",
            "EventSub notifications for channels this service does not serve (acknowledged, dropped)",
            m.unserved.clone(),
        );
        registry.register(
            "eventsub_malformed",
            "EventSub frames or webhook bodies that could not be used, by reason",
            m.malformed.clone(),
        );
        registry.register(
            "eventsub_sessions_connected",
            "EventSub WebSocket sessions connected (welcomed) now",
            m.sessions_connected.clone(),
        );
        registry.register(
            "eventsub_reconnects",
            "EventSub WebSocket sessions replaced, by reason",
            m.reconnects.clone(),
        );
        registry.register(
            "eventsub_subscription_requests",
            "Create EventSub Subscription calls by outcome",
            m.subscription_requests.clone(),
        );
        registry.register(
            "eventsub_revocations",
            "EventSub subscriptions revoked by Twitch, by status",
            m.revocations.clone(),
        );
        registry.register(
            "eventsub_webhook_requests",
            "POST /eventsub answers by outcome",
            m.webhook_requests.clone(),
        );
        registry.register(
            "eventsub_webhook_queue_depth",
            "Webhook notifications accepted and waiting to be handled",
            m.webhook_queue_depth.clone(),
        );
        registry.register(
            "eventsub_irc_chat_not_routed",
            "Chat lines read on the IRC connection while twitch.ingest = eventsub (not routed)",
            m.irc_chat_not_routed.clone(),
        );
        m
    }

    pub fn notification(&self, kind: &str) {
        self.notifications
            .get_or_create(&TypeLabel {
                r#type: kind.to_string(),
            })
            .inc();
    }

    pub fn malformed(&self, reason: &str) {
        self.malformed
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    pub fn reconnect(&self, reason: &str) {
        self.reconnects
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    pub fn subscription_request(&self, outcome: &str) {
        self.subscription_requests
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn revocation(&self, status: &str) {
        self.revocations
            .get_or_create(&ReasonLabel {
                reason: status.to_string(),
            })
            .inc();
    }

    pub fn webhook(&self, outcome: &str) {
        self.webhook_requests
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_string(),
            })
            .inc();
    }
}
