//! Discord metrics, registered into the service's registry (names get the `firehose_` prefix).
//!
//! Ingest: `discord_messages_received_total` (MESSAGE_CREATE decoded),
//! `discord_messages_ignored_total{reason}` (not routed: the bot's own, a DM, an unmapped
//! channel), `discord_payloads_malformed_total` (dispatches serenity could not decode into
//! their type; it hands them on as `Unknown`), `discord_shards_connected`, and gateway
//! sessions `discord_gateway_sessions_total{kind="ready"|"resumed"}`.
//!
//! Outbound: `discord_requests_total{action,outcome}`, `discord_dropped_total{reason}`,
//! `discord_queue_depth`, and `discord_rate_limited_total{global}`: every time serenity's
//! ratelimiter reported a rate limit through its callback (a 429 it waits out and retries, or
//! a pre-emptive wait on a bucket it knows is empty; the callback does not say which).
//! A 429 that reaches our code as an error (no `Retry-After`) counts as outcome `rate_limited`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// Cheap to clone: every metric is an `Arc` inside.
#[derive(Debug, Clone, Default)]
pub struct DiscordMetrics {
    pub messages_received: Counter,
    pub messages_ignored: Family<Labels, Counter>,
    pub payloads_malformed: Counter,
    pub shards_connected: Gauge,
    pub gateway_sessions: Family<Labels, Counter>,
    pub requests: Family<Labels, Counter>,
    pub dropped: Family<Labels, Counter>,
    pub queue_depth: Gauge,
    pub rate_limited: Family<Labels, Counter>,
    pub truncated: Counter,
}

impl DiscordMetrics {
    pub fn register(registry: &mut Registry) -> DiscordMetrics {
        let m = DiscordMetrics::default();
        let counters: [(&str, &str, Counter); 2] = [
            (
                "discord_messages_received",
                "Discord MESSAGE_CREATE events decoded",
                m.messages_received.clone(),
            ),
            (
                "discord_payloads_malformed",
                "Discord gateway dispatches that could not be decoded (skipped; the shard carries on)",
                m.payloads_malformed.clone(),
            ),
        ];
        for (name, help, metric) in counters {
            registry.register(name, help, metric);
        }
        registry.register(
            "discord_truncated",
            "Discord messages cut to the length limit",
            m.truncated.clone(),
        );
        let families: [(&str, &str, Family<Labels, Counter>); 5] = [
            (
                "discord_messages_ignored",
                "Discord messages not routed to a channel, by reason",
                m.messages_ignored.clone(),
            ),
            (
                "discord_gateway_sessions",
                "Discord gateway sessions established, by kind (ready, resumed)",
                m.gateway_sessions.clone(),
            ),
            (
                "discord_requests",
                "Discord REST actions finished, by action and outcome",
                m.requests.clone(),
            ),
            (
                "discord_dropped",
                "Discord actions never sent, by reason",
                m.dropped.clone(),
            ),
            (
                "discord_rate_limited",
                "Rate limits reported by serenity's ratelimiter (429s it retried, pre-emptive waits), by global",
                m.rate_limited.clone(),
            ),
        ];
        for (name, help, metric) in families {
            registry.register(name, help, metric);
        }
        registry.register(
            "discord_shards_connected",
            "Discord gateway shards currently connected",
            m.shards_connected.clone(),
        );
        registry.register(
            "discord_queue_depth",
            "Discord actions waiting to be sent or in flight",
            m.queue_depth.clone(),
        );
        m
    }

    pub fn ignored(&self, reason: &'static str) {
        inc(&self.messages_ignored, vec![("reason", reason.to_string())]);
    }

    pub fn session(&self, kind: &'static str) {
        inc(&self.gateway_sessions, vec![("kind", kind.to_string())]);
    }

    pub fn finished(&self, action: &'static str, outcome: &'static str) {
        inc(
            &self.requests,
            vec![
                ("action", action.to_string()),
                ("outcome", outcome.to_string()),
            ],
        );
    }

    pub fn dropped(&self, reason: &'static str) {
        inc(&self.dropped, vec![("reason", reason.to_string())]);
    }

    pub fn rate_limited(&self, global: bool) {
        inc(&self.rate_limited, vec![("global", global.to_string())]);
    }
}

fn inc(family: &Family<Labels, Counter>, labels: Labels) {
    family.get_or_create(&labels).inc();
}
