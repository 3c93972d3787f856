//! The state store's metrics, read from the writer's [`StoreStatus`] at scrape time.
//!
//! `store_rows_written_total / messages_processed_total` is the coalescing ratio: database
//! rows written per chat message.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use super::StoreStatus;

/// Exposes a [`StoreStatus`] as Prometheus metrics.
#[derive(Debug)]
pub struct StoreCollector {
    pub status: Arc<StoreStatus>,
}

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.status;
        let backend = vec![("backend", s.backend.to_string())];
        let counters: [(&str, &str, u64); 8] = [
            (
                "store_changes_received",
                "State changes channel actors handed the store writer",
                s.changes_received.load(Ordering::Relaxed),
            ),
            (
                "store_rows_written",
                "Rows written to the state store (absolute values; retries included)",
                s.rows_written.load(Ordering::Relaxed),
            ),
            (
                "store_flushes_ok",
                "Store flushes that wrote everything they held",
                s.flushes_ok.load(Ordering::Relaxed),
            ),
            (
                "store_flushes_failed",
                "Store flushes that failed (their changes were kept and retried)",
                s.flushes_failed.load(Ordering::Relaxed),
            ),
            (
                "store_submit_waits",
                "Times a channel actor waited for room in the store writer's queue (backpressure)",
                s.submit_waits.load(Ordering::Relaxed),
            ),
            (
                "store_changes_refused",
                "State changes refused because the store writer had stopped",
                s.changes_refused.load(Ordering::Relaxed),
            ),
            (
                "store_load_failures",
                "Channel state loads that failed or timed out (the channel ran, then retried)",
                s.load_failures.load(Ordering::Relaxed),
            ),
            (
                "store_changes_forgotten",
                "Pending changes about a user dropped because that user's data was deleted",
                s.changes_forgotten.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(value).encode(family.encode_family(&backend)?)?;
        }
        let flush_p99_us = s
            .flush_latency_us
            .lock()
            .map(|h| h.value_at_quantile(0.99))
            .unwrap_or(0);
        let gauges: [(&str, &str, i64); 4] = [
            (
                "store_pending_keys",
                "Dirty keys held in memory, not yet in the database",
                s.pending_keys.load(Ordering::Relaxed) as i64,
            ),
            (
                "store_lag_ms",
                "Age of the oldest change not yet in the database, milliseconds",
                s.lag_ms.load(Ordering::Relaxed) as i64,
            ),
            (
                "store_failing",
                "1 while the last store flush failed",
                i64::from(s.failing.load(Ordering::Relaxed)),
            ),
            (
                "store_flush_p99_us",
                "99th percentile of store flush durations since start, microseconds",
                flush_p99_us as i64,
            ),
        ];
        for (name, help, value) in gauges {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(value).encode(family.encode_family(&backend)?)?;
        }
        Ok(())
    }
}
