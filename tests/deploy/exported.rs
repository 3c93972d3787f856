//! The metric names firehose exports, taken from the service's own code, not from a list.
//!
//! [`registry_names`] builds the metrics registry the way `Service::start` does (core metrics,
//! the store's collector, Helix, stream status and Discord metrics), puts one sample in every
//! labelled family (prometheus-client leaves a family with no samples out of the text), encodes
//! it and reads the names back: a counter `x` is exported as `x_total`, a histogram as
//! `x_bucket`, `x_sum` and `x_count`, a gauge as `x`. [`scrape_names`] reads the same from a
//! running service's `/metrics`, so the test can check the registry built here still covers
//! what the service really exports.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use firehose::actors::ChannelRegistry;
use firehose::discord::DiscordMetrics;
use firehose::helix::streams::StreamMetrics;
use firehose::helix::HelixMetrics;
use firehose::obs::store::StoreCollector;
use firehose::obs::Metrics;
use firehose::store::{StoreHandle, WriterConfig};

/// Families from `# TYPE` lines (name -> type) and every sample name.
#[derive(Debug, Default)]
pub struct Exposition {
    pub families: BTreeMap<String, String>,
    pub samples: BTreeSet<String>,
    /// `le` values of each histogram's buckets.
    pub buckets: BTreeMap<String, BTreeSet<String>>,
}

impl Exposition {
    pub fn parse(text: &str) -> Exposition {
        let mut e = Exposition::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    e.families.insert(name.to_string(), kind.to_string());
                }
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let name = &line[..name_end];
            e.samples.insert(name.to_string());
            if let Some(base) = name.strip_suffix("_bucket") {
                if let Some(le) = line
                    .split("le=\"")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                {
                    e.buckets
                        .entry(base.to_string())
                        .or_default()
                        .insert(le.to_string());
                }
            }
        }
        e
    }

    /// The sample names each family is exported as, by its type.
    pub fn names(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for (family, kind) in &self.families {
            for n in sample_names(family, kind) {
                names.insert(n);
            }
        }
        names
    }
}

/// The sample names of a family of type `kind` (Prometheus/OpenMetrics text conventions).
pub fn sample_names(family: &str, kind: &str) -> Vec<String> {
    match kind {
        "counter" => vec![format!("{family}_total")],
        "histogram" => ["_bucket", "_sum", "_count"]
            .iter()
            .map(|s| format!("{family}{s}"))
            .collect(),
        "gauge" | "unknown" => vec![family.to_string()],
        other => panic!("metric {family} has a type this check does not know: {other}"),
    }
}

fn one(label: &'static str) -> Vec<(&'static str, String)> {
    vec![(label, "x".to_string())]
}

/// The registry as `Service::start` builds it, with every optional component registered
/// (Helix, its stream watcher, Discord) and one sample in each labelled family.
pub async fn registry_names() -> Exposition {
    let mut config = firehose::config::Config::default();
    config.store.embedded_path = String::new();
    let store = firehose::store::open(&config.store)
        .await
        .expect("the in-memory store opens");
    let (store, _task) = StoreHandle::start(store, WriterConfig::from_config(&config.store));
    let mut helix = None;
    let mut streams = None;
    let mut discord = None;
    let metrics = Metrics::new(ChannelRegistry::new(), |registry| {
        registry.register_collector(Box::new(StoreCollector {
            status: Arc::clone(&store.status),
        }));
        helix = Some(HelixMetrics::register(registry));
        streams = Some(StreamMetrics::register(registry));
        discord = Some(DiscordMetrics::register(registry));
    });
    let (helix, _streams, discord) = (
        helix.expect("registered"),
        streams.expect("registered"),
        discord.expect("registered"),
    );
    // One sample per labelled family, through the same calls the service makes.
    metrics.notice("x");
    metrics.outbound_dropped("x");
    metrics
        .moderation_not_configured
        .get_or_create(&one("action"))
        .inc();
    metrics.shadow_actions.get_or_create(&one("rule")).inc();
    helix.finished("x", "x");
    helix.dropped("x");
    discord.ignored("x");
    discord.session("x");
    discord.finished("x", "x");
    discord.dropped("x");
    discord.rate_limited(false);
    Exposition::parse(&metrics.render())
}

/// What a running service exports at `url` (its `/metrics`).
pub async fn scrape_names(url: &str) -> Exposition {
    let text = reqwest::get(url)
        .await
        .expect("the metrics endpoint answers")
        .text()
        .await
        .expect("a text body");
    Exposition::parse(&text)
}
