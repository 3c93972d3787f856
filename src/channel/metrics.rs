//! The per-channel metrics collector: reads each channel's own atomics (received, processed,
//! shed by reason, restarts, engine state dropped by reason, in flight, failed) from the
//! registry at scrape time, so the hot path increments one counter per event and no
//! per-channel metric family is kept.
//!
//! Cardinality is bounded: only the channels the operator lists (`http.metrics_channels`) and
//! up to `http.metrics_top_channels` busy ones get series of their own; the rest are summed
//! per platform under `channel="_other"` (`channels_summed{platform}` says how many). The busy
//! set is sticky: a channel in it keeps its series until it is parted, and a free place goes
//! to the busiest channel outside it that has received anything (ties by name), so the set of
//! series does not churn from scrape to scrape. A channel moving into the set takes its counts
//! out of `_other`, which Prometheus reads as a counter reset of `_other` (its `rate()` spikes
//! once); that happens only when a place frees. A scrape reads atomics and takes only the
//! registry's shard read locks, which the hot path's lookups share; `/v1/channels` keeps every
//! channel's detail.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use super::admission::ShedReason;
use super::key::ChannelKey;
use super::lifecycle::ChannelStatus;
use super::registry::{busiest_first, ChannelRegistry, ChannelShared};
use crate::engine::{Drops, Platform};
use crate::obs::Labels;

/// The `channel` label of the summed series.
pub const OTHER: &str = "_other";
const PLATFORMS: [Platform; 2] = [Platform::Twitch, Platform::Discord];

/// Which channels get series of their own.
#[derive(Debug, Clone, Default)]
pub struct SeriesPolicy {
    /// The busiest channels (by messages received) with series of their own.
    pub top: usize,
    /// Channel names that always have their own.
    pub listed: HashSet<String>,
}

/// Reads per-channel counters from the registry at scrape time.
#[derive(Debug)]
pub struct ChannelCollector {
    channels: Arc<ChannelRegistry>,
    policy: SeriesPolicy,
    /// The busy channels with series of their own (at most `policy.top`), kept between scrapes.
    busy: Mutex<HashSet<ChannelKey>>,
}

impl ChannelCollector {
    pub fn new(channels: Arc<ChannelRegistry>, policy: SeriesPolicy) -> ChannelCollector {
        ChannelCollector {
            channels,
            policy,
            busy: Mutex::new(HashSet::new()),
        }
    }

    /// The channels with series of their own, and the others.
    fn split(&self) -> Split {
        let Ok(mut busy) = self.busy.lock() else {
            return Split {
                own: Vec::new(),
                others: self.channels.all(),
            };
        };
        let mut own = Vec::new();
        let mut rest = Vec::new();
        let mut kept = HashSet::with_capacity(busy.len());
        for channel in self.channels.all() {
            if self.policy.listed.contains(channel.key.name.as_ref()) {
                own.push(channel);
            } else if busy.contains(&channel.key) {
                kept.insert(channel.key.clone());
                own.push(channel);
            } else {
                rest.push(channel);
            }
        }
        // Parted channels leave the set; free places go to the busiest of the rest.
        let free = self.policy.top.saturating_sub(kept.len()).min(rest.len());
        let busiest_first = |a: &Arc<ChannelShared>, b: &Arc<ChannelShared>| busiest_first(a, b);
        if free > 0 {
            if free < rest.len() {
                rest.select_nth_unstable_by(free - 1, busiest_first);
            }
            rest[..free].sort_unstable_by(busiest_first);
        }
        let joining = rest
            .iter()
            .take(free)
            .take_while(|c| c.counters.received.load(Ordering::Relaxed) > 0)
            .count();
        let others = rest.split_off(joining);
        for channel in &rest {
            kept.insert(channel.key.clone());
        }
        own.extend(rest);
        *busy = kept;
        Split { own, others }
    }
}

struct Split {
    own: Vec<Arc<ChannelShared>>,
    others: Vec<Arc<ChannelShared>>,
}

fn platform_index(platform: Platform) -> usize {
    match platform {
        Platform::Twitch => 0,
        Platform::Discord => 1,
    }
}

fn labels(c: &ChannelShared) -> Labels {
    vec![
        ("platform", c.key.platform.as_str().to_string()),
        ("channel", c.key.name.to_string()),
    ]
}

fn other_labels(platform: Platform) -> Labels {
    vec![
        ("platform", platform.as_str().to_string()),
        ("channel", OTHER.to_string()),
    ]
}

/// A family's extra label: its name and values (`reason`, ...), or none.
type Extra = Option<(&'static str, &'static [&'static str])>;

fn with_extra(mut labels: Labels, extra: Extra, i: usize) -> Labels {
    if let Some((name, values)) = extra {
        labels.push((name, values[i].to_string()));
    }
    labels
}

fn width(extra: Extra) -> usize {
    extra.map_or(1, |(_, values)| values.len())
}

/// Encodes a family: a row per own channel (per extra value), then the per-platform sums.
fn family(
    encoder: &mut DescriptorEncoder,
    (name, help, kind): (&str, &str, MetricType),
    split: &Split,
    extra: Extra,
    value: impl Fn(&ChannelShared, usize) -> i64,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    let mut encode = |labels: &Labels, v: i64| -> Result<(), std::fmt::Error> {
        let encoder = family.encode_family(labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(v.max(0) as u64).encode(encoder),
            _ => ConstGauge::new(v).encode(encoder),
        }
    };
    let n = width(extra);
    for channel in &split.own {
        for i in 0..n {
            encode(&with_extra(labels(channel), extra, i), value(channel, i))?;
        }
    }
    let mut sums = vec![[0i64; 2]; n];
    let mut present = [false; 2];
    for channel in &split.others {
        let p = platform_index(channel.key.platform);
        present[p] = true;
        for (i, sum) in sums.iter_mut().enumerate() {
            sum[p] = sum[p].saturating_add(value(channel, i));
        }
    }
    for platform in PLATFORMS {
        let p = platform_index(platform);
        if !present[p] {
            continue;
        }
        for (i, sum) in sums.iter().enumerate() {
            encode(&with_extra(other_labels(platform), extra, i), sum[p])?;
        }
    }
    Ok(())
}

fn count(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

const SHED: &[&str] = &ShedReason::NAMES;

impl Collector for ChannelCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let split = self.split();
        let counter = MetricType::Counter;
        let gauge = MetricType::Gauge;
        family(
            &mut encoder,
            (
                "messages_received",
                "Chat messages routed to a channel",
                counter,
            ),
            &split,
            None,
            |c, _| count(c.counters.received.load(Ordering::Relaxed)),
        )?;
        family(
            &mut encoder,
            (
                "messages_processed",
                "Chat messages a channel's handler finished",
                counter,
            ),
            &split,
            None,
            |c, _| count(c.counters.processed.load(Ordering::Relaxed)),
        )?;
        family(
            &mut encoder,
            (
                "messages_shed",
                "Chat messages dropped instead of handled, by reason",
                counter,
            ),
            &split,
            Some(("reason", SHED)),
            |c, i| count(c.counters.shed(ShedReason::ALL[i])),
        )?;
        family(
            &mut encoder,
            (
                "actor_restarts",
                "Channel actor failures followed by a restart or by marking the channel failed",
                counter,
            ),
            &split,
            None,
            |c, _| count(c.counters.restarts.load(Ordering::Relaxed)),
        )?;
        family(
            &mut encoder,
            (
                "engine_state_dropped",
                "Entries a channel's bounded engine state dropped or refused, by reason",
                counter,
            ),
            &split,
            Some(("reason", &Drops::REASONS)),
            |c, i| count(c.counters.engine_dropped(i)),
        )?;
        family(
            &mut encoder,
            (
                "messages_in_flight",
                "Chat messages admitted to a channel and not yet finished",
                gauge,
            ),
            &split,
            None,
            |c, _| count(c.in_flight()),
        )?;
        family(
            &mut encoder,
            (
                "channel_failed",
                "1 when a channel is marked failed (restart intensity exceeded); summed under _other",
                gauge,
            ),
            &split,
            None,
            |c, _| i64::from(c.status() == ChannelStatus::Failed),
        )?;
        let mut summed = encoder.encode_descriptor(
            "channels_summed",
            "Joined channels without series of their own, summed under channel=\"_other\"",
            None,
            gauge,
        )?;
        for platform in PLATFORMS {
            let n = split
                .others
                .iter()
                .filter(|c| c.key.platform == platform)
                .count();
            let labels: Labels = vec![("platform", platform.as_str().to_string())];
            ConstGauge::new(count(n as u64)).encode(summed.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::ChannelKey;
    use prometheus_client::registry::Registry;

    fn registry_of(channels: &[(&str, u64)]) -> Arc<ChannelRegistry> {
        let registry = ChannelRegistry::new();
        for (name, received) in channels {
            let shared = ChannelShared::new(
                ChannelKey {
                    platform: Platform::Twitch,
                    name: Arc::from(*name),
                },
                8,
            );
            shared.counters.received.store(*received, Ordering::Relaxed);
            registry.insert(shared);
        }
        registry
    }

    fn scrape(channels: Arc<ChannelRegistry>, policy: SeriesPolicy) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(ChannelCollector::new(channels, policy)));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap_or_default();
        text
    }

    fn received(text: &str, channel: &str) -> Option<u64> {
        let needle =
            format!("messages_received_total{{platform=\"twitch\",channel=\"{channel}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(needle.as_str()))
            .and_then(|v| v.trim().parse().ok())
    }

    #[test]
    fn only_the_busiest_and_the_listed_have_series_the_rest_is_summed() {
        let channels = registry_of(&[
            ("big", 900),
            ("mid", 500),
            ("small", 10),
            ("tiny", 1),
            ("watched", 0),
        ]);
        let policy = SeriesPolicy {
            top: 2,
            listed: HashSet::from(["watched".to_string()]),
        };
        let text = scrape(channels, policy);
        assert_eq!(received(&text, "big"), Some(900));
        assert_eq!(received(&text, "mid"), Some(500));
        assert_eq!(received(&text, "watched"), Some(0), "listed ones always");
        assert_eq!(received(&text, "small"), None);
        assert_eq!(received(&text, OTHER), Some(11), "small + tiny");
        assert!(
            text.contains("channels_summed{platform=\"twitch\"} 2"),
            "{text}"
        );
        // Every family follows the same split: no series of `small` anywhere.
        assert!(!text.contains("channel=\"small\""), "{text}");
        assert!(text.contains(
            "messages_shed_total{platform=\"twitch\",channel=\"_other\",reason=\"full\"} 0"
        ));
    }

    #[test]
    fn every_shed_reason_has_its_name_at_its_index() {
        for (i, reason) in ShedReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i);
            assert_eq!(reason.as_str(), SHED[i]);
        }
        let distinct: HashSet<&str> = SHED.iter().copied().collect();
        assert_eq!(distinct.len(), SHED.len());
    }

    #[test]
    fn the_busy_set_is_sticky_and_idle_channels_get_no_series() {
        let channels = registry_of(&[("a", 50), ("b", 40), ("c", 0)]);
        let collector = ChannelCollector::new(
            Arc::clone(&channels),
            SeriesPolicy {
                top: 2,
                listed: HashSet::new(),
            },
        );
        let own = |collector: &ChannelCollector| {
            let mut names: Vec<String> = collector
                .split()
                .own
                .iter()
                .map(|c| c.key.name.to_string())
                .collect();
            names.sort();
            names
        };
        assert_eq!(own(&collector), ["a", "b"]);
        // c becomes the busiest: a and b keep their places (no churn).
        if let Some(c) = channels
            .all()
            .into_iter()
            .find(|c| c.key.name.as_ref() == "c")
        {
            c.counters.received.store(1_000, Ordering::Relaxed);
        }
        assert_eq!(own(&collector), ["a", "b"]);
        // A place frees when a channel leaves: then c takes it.
        let b = ChannelKey {
            platform: Platform::Twitch,
            name: Arc::from("b"),
        };
        channels.remove(&b);
        assert_eq!(own(&collector), ["a", "c"]);
        // With room to spare, a channel that received nothing gets no series.
        let idle = registry_of(&[("x", 0), ("y", 3)]);
        let collector = ChannelCollector::new(
            idle,
            SeriesPolicy {
                top: 5,
                listed: HashSet::new(),
            },
        );
        assert_eq!(own(&collector), ["y"]);
    }

    #[test]
    fn the_series_stay_bounded_however_many_channels_join() {
        let names: Vec<String> = (0..5_000).map(|i| format!("c{i}")).collect();
        let list: Vec<(&str, u64)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i as u64))
            .collect();
        let text = scrape(
            registry_of(&list),
            SeriesPolicy {
                top: 100,
                listed: HashSet::new(),
            },
        );
        let own: HashSet<&str> = text
            .lines()
            .filter(|l| l.starts_with("messages_received_total{"))
            .filter_map(|l| l.split("channel=\"").nth(1)?.split('"').next())
            .collect();
        assert_eq!(own.len(), 101, "100 busiest and _other");
        assert!(own.contains("c4999") && !own.contains("c0"));
        let sum: u64 = (0..4_900u64).sum();
        assert_eq!(received(&text, OTHER), Some(sum));
        // top = 0: sums only.
        let text = scrape(registry_of(&list[..10]), SeriesPolicy::default());
        assert_eq!(received(&text, OTHER), Some(45));
        assert_eq!(received(&text, "c9"), None);
    }
}
