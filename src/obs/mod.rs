//! Observability: the service's internal metrics, in Prometheus text at `GET /metrics`.
//!
//! [`registry`] makes the one Prometheus registry of a service (every name prefixed
//! `firehose_`); each floor above registers its own families and collectors into it (the
//! store's `store_*`, the channels' per-channel collector, Helix's and Discord's families).
//! Process-wide counters live in [`Metrics`] (prometheus-client atomics), built last over that
//! registry, which it then renders. Per-channel figures are not duplicated into metric
//! families: the channel layer's collector reads the registry's own atomics at scrape time, so
//! the hot path increments one counter per event, not two. Every metric is named for what it
//! counts; every dropped message has a counter and a reason.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::engine::Platform;

/// Label sets of the metric families (`[("reason", "queue_full")]`).
pub type Labels = Vec<(&'static str, String)>;

/// A service's Prometheus registry: every metric registered into it is named `firehose_...`.
pub fn registry() -> Registry {
    Registry::with_prefix("firehose")
}

/// Process-wide metrics. Cheap to clone handles out of (each metric is an `Arc` inside).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// IRC lines read from the chat connection (the malformed ones included).
    pub irc_lines_received: Counter,
    /// Lines that failed to parse (or were too long) and were skipped.
    pub irc_lines_malformed: Counter,
    /// Chat events for a channel that is not joined (dropped, nothing to deliver to).
    pub events_unrouted: Counter,
    /// Filter bans shared with other channels (`[defence] cross_channel`).
    pub cross_channel_marks: Counter,
    /// Shared bans handed to a channel (one per subscribed channel and ban).
    pub cross_channel_deliveries: Counter,
    /// Chat messages that never reached the engine because of their author, by platform and
    /// reason (`own`: the bot's own account; `ignore_list`: `engine.ignore_users`).
    pub messages_ignored: Family<Labels, Counter>,
    /// HTTP connections, by listener (`main`, `admin`): refused over `http.max_connections`,
    /// closed for a request head not read within `http.header_read_timeout_ms`, open now.
    pub http_connections_refused: Family<Labels, Counter>,
    pub http_header_timeouts: Family<Labels, Counter>,
    pub http_body_timeouts: Family<Labels, Counter>,
    pub http_connections_open: Family<Labels, Gauge>,
    pub twitch_connections: Counter,
    pub twitch_reconnects: Counter,
    pub twitch_joins_sent: Counter,
    pub twitch_joins_confirmed: Counter,
    pub twitch_connected: Gauge,
    pub twitch_notices: Family<Labels, Counter>,
    /// Chat messages written to the connection.
    pub outbound_sent: Counter,
    /// Outbound messages not sent, by reason.
    pub outbound_dropped: Family<Labels, Counter>,
    pub outbound_truncated: Counter,
    /// Repeats made unique so Twitch's 30-second duplicate rule does not drop them.
    pub outbound_deduplicated: Counter,
    pub outbound_queued: Gauge,
    /// Moderation actions with no moderation backend configured (counted, not executed).
    pub moderation_not_configured: Family<Labels, Counter>,
    /// Actions that rules in shadow mode would have taken, by rule.
    pub shadow_actions: Family<Labels, Counter>,
    /// Seconds from a message's arrival to its reply being written to the connection.
    pub reply_latency: Histogram,
    /// The same in microseconds, for summaries (demo, bench).
    pub reply_latency_us: Mutex<hdrhistogram::Histogram<u64>>,
    /// Web console logins, by method (`token`, `twitch`) and outcome.
    pub console_logins: Family<Labels, Counter>,
    /// Web console changes refused for a missing or wrong CSRF token or a foreign origin.
    pub console_csrf_refused: Counter,
    /// Sessions alive now.
    pub console_sessions: Gauge,
    /// Rule edits not written to the audit log (the edit itself stands).
    pub audit_write_failures: Counter,
    /// Channels accepted by bulk joins whose actor has not started yet.
    pub channels_join_pending: Gauge,
    /// Bulk join and part entries, by op (`join`, `part`) and outcome.
    pub channels_bulk: Family<Labels, Counter>,
}

impl Metrics {
    /// Builds the process-wide metrics into `registry` (made by [`registry`], with the other
    /// components' metrics already registered) and keeps it for [`Metrics::render`].
    pub fn new(mut registry: Registry) -> Arc<Metrics> {
        let m = Metrics {
            irc_lines_received: Counter::default(),
            irc_lines_malformed: Counter::default(),
            events_unrouted: Counter::default(),
            cross_channel_marks: Counter::default(),
            cross_channel_deliveries: Counter::default(),
            messages_ignored: Family::default(),
            http_connections_refused: Family::default(),
            http_header_timeouts: Family::default(),
            http_body_timeouts: Family::default(),
            http_connections_open: Family::default(),
            twitch_connections: Counter::default(),
            twitch_reconnects: Counter::default(),
            twitch_joins_sent: Counter::default(),
            twitch_joins_confirmed: Counter::default(),
            twitch_connected: Gauge::default(),
            twitch_notices: Family::default(),
            outbound_sent: Counter::default(),
            outbound_dropped: Family::default(),
            outbound_truncated: Counter::default(),
            outbound_deduplicated: Counter::default(),
            outbound_queued: Gauge::default(),
            moderation_not_configured: Family::default(),
            shadow_actions: Family::default(),
            reply_latency: Histogram::new(exponential_buckets(0.000_1, 2.0, 18)),
            reply_latency_us: Mutex::new(new_latency_histogram()),
            console_logins: Family::default(),
            console_csrf_refused: Counter::default(),
            console_sessions: Gauge::default(),
            audit_write_failures: Counter::default(),
            channels_join_pending: Gauge::default(),
            channels_bulk: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "irc_lines_received",
            "IRC lines read from the chat connection",
            m.irc_lines_received.clone(),
        );
        registry.register(
            "irc_lines_malformed",
            "IRC lines skipped because they failed to parse or were too long",
            m.irc_lines_malformed.clone(),
        );
        registry.register(
            "events_unrouted",
            "Chat events for channels that are not joined",
            m.events_unrouted.clone(),
        );
        registry.register(
            "cross_channel_marks",
            "Filter bans shared with the channels whose rules set [defence] cross_channel",
            m.cross_channel_marks.clone(),
        );
        registry.register(
            "cross_channel_deliveries",
            "Shared bans handed to a channel (one per subscribed channel and ban)",
            m.cross_channel_deliveries.clone(),
        );
        registry.register(
            "messages_ignored",
            "Chat messages not handled because of their author (the bot itself, engine.ignore_users), by platform and reason",
            m.messages_ignored.clone(),
        );
        registry.register(
            "http_connections_refused",
            "HTTP connections closed at once because http.max_connections were open, by listener",
            m.http_connections_refused.clone(),
        );
        registry.register(
            "http_header_timeouts",
            "HTTP connections closed because a request head did not arrive within http.header_read_timeout_ms, by listener",
            m.http_header_timeouts.clone(),
        );
        registry.register(
            "http_body_timeouts",
            "HTTP request bodies a handler was reading that had not fully arrived within http.body_read_timeout_ms of their head (answered 408), by listener",
            m.http_body_timeouts.clone(),
        );
        registry.register(
            "http_connections_open",
            "HTTP connections open now, by listener",
            m.http_connections_open.clone(),
        );
        registry.register(
            "twitch_connections",
            "Chat connections established",
            m.twitch_connections.clone(),
        );
        registry.register(
            "twitch_reconnects",
            "Chat reconnections after a connection ended",
            m.twitch_reconnects.clone(),
        );
        registry.register(
            "twitch_joins_sent",
            "JOIN commands sent (paced)",
            m.twitch_joins_sent.clone(),
        );
        registry.register(
            "twitch_joins_confirmed",
            "JOINs confirmed by the server",
            m.twitch_joins_confirmed.clone(),
        );
        registry.register(
            "twitch_connected",
            "1 while the chat connection is logged in",
            m.twitch_connected.clone(),
        );
        registry.register(
            "twitch_notices",
            "NOTICE messages from the server, by msg-id",
            m.twitch_notices.clone(),
        );
        registry.register(
            "outbound_sent",
            "Chat messages written to the connection",
            m.outbound_sent.clone(),
        );
        registry.register(
            "outbound_dropped",
            "Chat messages not sent, by reason",
            m.outbound_dropped.clone(),
        );
        registry.register(
            "outbound_truncated",
            "Chat messages cut to the length limit",
            m.outbound_truncated.clone(),
        );
        registry.register(
            "outbound_deduplicated",
            "Repeated chat messages made unique for the duplicate rule",
            m.outbound_deduplicated.clone(),
        );
        registry.register(
            "outbound_queued",
            "Chat messages waiting to be sent",
            m.outbound_queued.clone(),
        );
        registry.register(
            "moderation_not_configured",
            "Moderation actions dropped because no moderation backend is configured",
            m.moderation_not_configured.clone(),
        );
        registry.register(
            "shadow_actions",
            "Actions rules in shadow mode would have taken (not carried out), by rule",
            m.shadow_actions.clone(),
        );
        registry.register(
            "reply_latency_seconds",
            "Time from a chat message's arrival to its reply being written",
            m.reply_latency.clone(),
        );
        registry.register(
            "console_logins",
            "Web console logins, by method (token, twitch) and outcome",
            m.console_logins.clone(),
        );
        registry.register(
            "console_csrf_refused",
            "Web console changes refused for a missing or wrong CSRF token or a foreign origin",
            m.console_csrf_refused.clone(),
        );
        registry.register(
            "console_sessions",
            "Web console sessions alive now",
            m.console_sessions.clone(),
        );
        registry.register(
            "audit_write_failures",
            "Rule edits that could not be written to the audit log (the edit itself stands)",
            m.audit_write_failures.clone(),
        );
        registry.register(
            "channels_join_pending",
            "Channels accepted by a bulk join whose actor has not started yet",
            m.channels_join_pending.clone(),
        );
        registry.register(
            "channels_bulk",
            "Bulk join and part entries, by op (join, part) and outcome (accepted, already, invalid, failed, not_started)",
            m.channels_bulk.clone(),
        );
        // Every platform and reason from the start, so a dashboard sees zeros, not gaps.
        for platform in [Platform::Twitch, Platform::Discord] {
            for reason in IgnoreReason::ALL {
                m.ignored(platform, reason);
            }
        }
        Arc::new(Metrics { registry, ..m })
    }

    /// The counter of messages of `platform` ignored for `reason`.
    pub fn ignored(&self, platform: Platform, reason: IgnoreReason) -> Counter {
        self.messages_ignored
            .get_or_create(&vec![
                ("platform", platform.as_str().to_string()),
                ("reason", reason.as_str().to_string()),
            ])
            .clone()
    }

    /// The metrics of one HTTP listener (`main`, `admin`), created with zeros.
    pub fn http_listener(&self, listener: &'static str) -> HttpListenerMetrics {
        let labels = vec![("listener", listener.to_string())];
        HttpListenerMetrics {
            refused: self.http_connections_refused.get_or_create(&labels).clone(),
            header_timeouts: self.http_header_timeouts.get_or_create(&labels).clone(),
            body_timeouts: self.http_body_timeouts.get_or_create(&labels).clone(),
            open: self.http_connections_open.get_or_create(&labels).clone(),
        }
    }

    /// One web console login attempt of `method` ended with `outcome`.
    pub fn console_login(&self, method: &'static str, outcome: &'static str) {
        self.console_logins
            .get_or_create(&vec![
                ("method", method.to_string()),
                ("outcome", outcome.to_string()),
            ])
            .inc();
    }

    /// `n` bulk entries of `op` ended with `outcome`.
    pub fn bulk(&self, op: &'static str, outcome: &'static str, n: usize) {
        self.channels_bulk
            .get_or_create(&vec![
                ("op", op.to_string()),
                ("outcome", outcome.to_string()),
            ])
            .inc_by(n as u64);
    }

    /// A rule edit that the audit log did not get.
    pub fn audit_write_failed(&self) {
        self.audit_write_failures.inc();
    }

    /// Prometheus text exposition of everything.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.push_str("# encoding failed\n");
        }
        out
    }

    pub fn observe_reply_latency(&self, latency: Duration) {
        self.reply_latency.observe(latency.as_secs_f64());
        if let Ok(mut h) = self.reply_latency_us.lock() {
            h.saturating_record(latency.as_micros() as u64);
        }
    }

    pub fn outbound_dropped(&self, reason: &'static str) {
        self.outbound_dropped
            .get_or_create(&vec![("reason", reason.to_string())])
            .inc();
    }

    pub fn notice(&self, msg_id: &str) {
        self.twitch_notices
            .get_or_create(&vec![("msg_id", msg_id.to_string())])
            .inc();
    }
}

/// Why a chat message was ignored before the engine saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IgnoreReason {
    /// Written by the bot's own account (another connection of it, another instance, or its
    /// own reply coming back through EventSub).
    Own,
    /// Written by an account listed in `engine.ignore_users`.
    IgnoreList,
    /// Written by another bot the platform marks as one (Discord: a bot account or a webhook,
    /// with `discord.ignore_bots`).
    Bot,
}

impl IgnoreReason {
    pub const ALL: [IgnoreReason; 3] = [
        IgnoreReason::Own,
        IgnoreReason::IgnoreList,
        IgnoreReason::Bot,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IgnoreReason::Own => "own",
            IgnoreReason::IgnoreList => "ignore_list",
            IgnoreReason::Bot => "bot",
        }
    }
}

/// One HTTP listener's counters (handles into [`Metrics`]' families).
#[derive(Debug, Clone)]
pub struct HttpListenerMetrics {
    pub refused: Counter,
    pub header_timeouts: Counter,
    pub body_timeouts: Counter,
    pub open: Gauge,
}

/// A latency histogram in microseconds, 1 µs to 1 hour, 3 significant digits.
pub fn new_latency_histogram() -> hdrhistogram::Histogram<u64> {
    // Constant, valid bounds: this cannot fail.
    #[allow(clippy::expect_used)]
    hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}
