//! Criterion bench of one `/metrics` scrape of the channel collector with 100,000 joined
//! channels: with per-channel series for the 100 busiest (the default) and, for comparison,
//! for all of them (what every scrape cost before the bound).
//!
//! Run briefly: `cargo bench -p firehose-bench --bench scrape -- --warm-up-time 1 --measurement-time 5`.

use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use firehose::channel::metrics::{ChannelCollector, SeriesPolicy};
use firehose::channel::registry::ChannelShared;
use firehose::channel::{ChannelKey, ChannelRegistry};
use firehose::engine::Platform;
use prometheus_client::registry::Registry;

const CHANNELS: usize = 100_000;

fn registry_with(top: usize) -> Registry {
    let channels = ChannelRegistry::new();
    for i in 0..CHANNELS {
        let shared = ChannelShared::new(
            ChannelKey {
                platform: Platform::Twitch,
                name: Arc::from(format!("channel{i:06}").as_str()),
            },
            512,
        );
        // Zipf-like traffic: channel i has received about 1e6 / (i + 1) messages.
        let received = 1_000_000 / (i as u64 + 1);
        shared.counters.received.store(received, Ordering::Relaxed);
        shared.counters.processed.store(received, Ordering::Relaxed);
        channels.insert(shared);
    }
    let mut registry = Registry::with_prefix("firehose");
    let policy = SeriesPolicy {
        top,
        listed: Default::default(),
    };
    registry.register_collector(Box::new(ChannelCollector::new(channels, policy)));
    registry
}

fn scrape(c: &mut Criterion) {
    let mut group = c.benchmark_group("scrape");
    group.sample_size(10);
    for (name, top) in [
        ("100k channels, top 100", 100),
        ("100k channels, all", CHANNELS),
    ] {
        let registry = registry_with(top);
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut out = String::with_capacity(1 << 20);
                let encoded = prometheus_client::encoding::text::encode(&mut out, &registry);
                black_box((encoded.is_ok(), out.len()))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, scrape);
criterion_main!(benches);
