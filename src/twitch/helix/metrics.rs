//! Helix metrics, registered into the service's registry (names get the registry's prefix).
//!
//! `helix_requests_total{action,outcome}` counts finished actions (`ok` / `failed`),
//! `helix_retries_total` repeated attempts, `helix_dropped_total{reason}` actions never sent,
//! `helix_queue_depth` pending actions, `helix_request_seconds` the time of each HTTP attempt,
//! `moderation_latency_seconds` the time from the chat message's arrival to its action done at
//! Helix (successful actions; same buckets as `reply_latency_seconds`, for the SLO),
//! `helix_backlog_reports_total` the times a channel was told its waiting calls are behind the
//! budget and `helix_backlog_max_ms` the longest drain time of any channel's line at the last
//! check.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// Cheap to clone: every metric is an `Arc` inside.
#[derive(Debug, Clone)]
pub struct HelixMetrics {
    pub requests: Family<Labels, Counter>,
    pub retries: Counter,
    pub dropped: Family<Labels, Counter>,
    pub queue_depth: Gauge,
    pub request_seconds: Histogram,
    /// From the chat message's arrival to its moderation action succeeding at Helix.
    pub moderation_latency: Histogram,
    /// Log entries that could not be written to the JSON-lines file.
    pub log_file_errors: Counter,
    pub backlog_reports: Counter,
    pub backlog_max_ms: Gauge,
}

impl HelixMetrics {
    pub fn register(registry: &mut Registry) -> HelixMetrics {
        let m = HelixMetrics {
            requests: Family::default(),
            retries: Counter::default(),
            dropped: Family::default(),
            queue_depth: Gauge::default(),
            request_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            moderation_latency: Histogram::new(exponential_buckets(0.000_1, 2.0, 18)),
            log_file_errors: Counter::default(),
            backlog_reports: Counter::default(),
            backlog_max_ms: Gauge::default(),
        };
        registry.register(
            "helix_requests",
            "Helix moderation actions finished, by action and outcome (ok, failed)",
            m.requests.clone(),
        );
        registry.register(
            "helix_retries",
            "Helix calls repeated after a 429, a 5xx or a transport error",
            m.retries.clone(),
        );
        registry.register(
            "helix_dropped",
            "Moderation actions never sent to Helix, by reason",
            m.dropped.clone(),
        );
        registry.register(
            "helix_queue_depth",
            "Moderation actions waiting to be sent to Helix",
            m.queue_depth.clone(),
        );
        registry.register(
            "helix_request_seconds",
            "Duration of one Helix HTTP call",
            m.request_seconds.clone(),
        );
        registry.register(
            "moderation_latency_seconds",
            "Time from a chat message's arrival to its moderation action succeeding at Helix",
            m.moderation_latency.clone(),
        );
        registry.register(
            "helix_log_file_errors",
            "Moderation log entries not written to the JSON-lines file",
            m.log_file_errors.clone(),
        );
        registry.register(
            "helix_backlog_reports",
            "Times a channel was told its waiting moderation calls need longer than the report threshold to go out at the token's budget",
            m.backlog_reports.clone(),
        );
        registry.register(
            "helix_backlog_max_ms",
            "Longest time any channel's waiting moderation calls need to go out at the token's budget, at the last check (ms)",
            m.backlog_max_ms.clone(),
        );
        m
    }

    pub fn finished(&self, action: &'static str, outcome: &'static str) {
        self.requests
            .get_or_create(&vec![
                ("action", action.to_string()),
                ("outcome", outcome.to_string()),
            ])
            .inc();
    }

    pub fn dropped(&self, reason: &'static str) {
        self.dropped
            .get_or_create(&vec![("reason", reason.to_string())])
            .inc();
    }

    pub fn observe_call(&self, took: Duration) {
        self.request_seconds.observe(took.as_secs_f64());
    }
}
