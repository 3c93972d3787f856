//! The per-channel metrics collector: reads each channel's own atomics (received, processed,
//! shed by reason, restarts, engine state dropped by reason, in flight, failed) from the
//! registry at scrape time, so the hot
//! path increments one counter per event and no per-channel metric family is kept.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use super::admission::ShedReason;
use super::lifecycle::ChannelStatus;
use super::registry::{ChannelRegistry, ChannelShared};
use crate::engine::Drops;
use crate::obs::Labels;

/// Reads per-channel counters from the registry at scrape time.
#[derive(Debug)]
pub struct ChannelCollector {
    channels: Arc<ChannelRegistry>,
}

impl ChannelCollector {
    pub fn new(channels: Arc<ChannelRegistry>) -> ChannelCollector {
        ChannelCollector { channels }
    }
}

impl Collector for ChannelCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let channels = self.channels.all();
        let labels = |c: &ChannelShared| {
            vec![
                ("platform", c.key.platform.as_str().to_string()),
                ("channel", c.key.name.to_string()),
            ]
        };
        counter_family(
            &mut encoder,
            "messages_received",
            "Chat messages routed to a channel",
            &channels,
            |c| {
                vec![(
                    labels(c),
                    c.counters
                        .received
                        .load(std::sync::atomic::Ordering::Relaxed),
                )]
            },
        )?;
        counter_family(
            &mut encoder,
            "messages_processed",
            "Chat messages a channel's handler finished",
            &channels,
            |c| {
                vec![(
                    labels(c),
                    c.counters
                        .processed
                        .load(std::sync::atomic::Ordering::Relaxed),
                )]
            },
        )?;
        counter_family(
            &mut encoder,
            "messages_shed",
            "Chat messages dropped instead of handled, by reason",
            &channels,
            |c| {
                ShedReason::ALL
                    .iter()
                    .map(|r| {
                        let mut l = labels(c);
                        l.push(("reason", r.as_str().to_string()));
                        (l, c.counters.shed(*r))
                    })
                    .collect()
            },
        )?;
        counter_family(
            &mut encoder,
            "actor_restarts",
            "Channel actor failures followed by a restart or by marking the channel failed",
            &channels,
            |c| {
                vec![(
                    labels(c),
                    c.counters
                        .restarts
                        .load(std::sync::atomic::Ordering::Relaxed),
                )]
            },
        )?;
        counter_family(
            &mut encoder,
            "engine_state_dropped",
            "Entries a channel's bounded engine state dropped or refused, by reason",
            &channels,
            |c| {
                Drops::REASONS
                    .iter()
                    .enumerate()
                    .map(|(i, reason)| {
                        let mut l = labels(c);
                        l.push(("reason", reason.to_string()));
                        (l, c.counters.engine_dropped(i))
                    })
                    .collect()
            },
        )?;
        gauge_family(
            &mut encoder,
            "messages_in_flight",
            "Chat messages admitted to a channel and not yet finished",
            &channels,
            |c| (labels(c), c.in_flight() as i64),
        )?;
        gauge_family(
            &mut encoder,
            "channel_failed",
            "1 when a channel is marked failed (restart intensity exceeded)",
            &channels,
            |c| (labels(c), i64::from(c.status() == ChannelStatus::Failed)),
        )?;
        Ok(())
    }
}

fn counter_family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    channels: &[Arc<ChannelShared>],
    values: impl Fn(&ChannelShared) -> Vec<(Labels, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for channel in channels {
        for (labels, value) in values(channel) {
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

fn gauge_family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    channels: &[Arc<ChannelShared>],
    value: impl Fn(&ChannelShared) -> (Labels, i64),
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for channel in channels {
        let (labels, value) = value(channel);
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}
