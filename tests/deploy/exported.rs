//! The metric names firehose exports, taken from the service's own code, not from a list.
//!
//! [`registry_names`] builds the metrics registry with start-up's own metrics step (core metrics,
//! the store's and channels' collectors, Helix, stream status and Discord metrics), puts one sample in every
//! labelled family (prometheus-client leaves a family with no samples out of the text), encodes
//! it and reads the names back: a counter `x` is exported as `x_total`, a histogram as
//! `x_bucket`, `x_sum` and `x_count`, a gauge as `x`. [`scrape_names`] reads the same from a
//! running service's `/metrics`, so the test can check the registry built here still covers
//! what the service really exports.

use std::collections::{BTreeMap, BTreeSet};

use firehose::channel::ChannelRegistry;
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

/// The registry exactly as the service's start-up builds it (`app::start::metrics`, the
/// metrics step), with every optional component configured (Helix, its stream watcher,
/// Discord) and one sample in each labelled family.
pub async fn registry_names() -> Exposition {
    let mut config = firehose::config::Config::default();
    config.store.embedded_path = String::new();
    config.helix.client_id = "x".to_string();
    config.secrets.helix_token = Some(firehose::config::Secret::new("x"));
    config.discord.enabled = true;
    // Twitch as it is today: EventSub ingest, Helix chat, managed tokens, a webhook secret.
    config.twitch.ingest = firehose::config::Ingest::Eventsub;
    config.twitch.send_via = firehose::config::SendVia::Helix;
    config.secrets.client_secret = Some(firehose::config::Secret::new("x"));
    config.secrets.webhook_secret = Some(firehose::config::Secret::new("0123456789"));
    let store = firehose::app::open_store(&config.store)
        .await
        .expect("the in-memory store opens");
    let (store, _task) = StoreHandle::start(store, WriterConfig::from_config(&config.store));
    let registered = firehose::app::start::metrics(&config, &ChannelRegistry::new(), &store);
    let metrics = registered.metrics;
    let helix = registered.helix.expect("Helix is configured");
    let discord = registered.discord.expect("Discord is configured");
    let auth = registered.auth.expect("token management is configured");
    let chat = registered.chat.expect("Helix chat is configured");
    let eventsub = registered.eventsub.expect("EventSub is configured");
    assert!(
        registered.streams.is_some(),
        "the stream watcher's families"
    );
    // One sample per labelled family, through the same calls the service makes.
    metrics.notice("x");
    metrics.outbound_dropped("x");
    metrics
        .moderation_not_configured
        .get_or_create(&one("action"))
        .inc();
    metrics.shadow_actions.get_or_create(&one("rule")).inc();
    // messages_ignored has its samples from the start (every platform and reason).
    let _ = metrics.http_listener("x");
    helix.finished("x", "x");
    helix.dropped("x");
    discord.ignored("x");
    discord.session("x");
    discord.finished("x", "x");
    discord.dropped("x");
    discord.rate_limited(false);
    auth.renewal("x", "x");
    auth.validation("x", "x");
    auth.problem("x", "x");
    auth.set_valid("x", true);
    auth.authorization("x", "x");
    let token = |token: &str| firehose::twitch::helix::chat::TokenLabel {
        token: token.to_string(),
    };
    let reason = |reason: &str| firehose::twitch::helix::chat::ReasonLabel {
        reason: reason.to_string(),
    };
    chat.sent.get_or_create(&token("x")).inc();
    chat.dropped.get_or_create(&reason("x")).inc();
    chat.failed.get_or_create(&reason("x")).inc();
    eventsub.notification("x");
    eventsub.malformed("x");
    eventsub.reconnect("x");
    eventsub.subscription_request("x");
    eventsub.revocation("x");
    eventsub.webhook("x");
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
