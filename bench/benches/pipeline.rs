//! Criterion micro-benches of the pipeline's pieces, over the 4,000 real lines of
//! `../shared/corpus/xqcow-chat-2019.txt`:
//!
//! - `route/parse+route`: twitch-irc parse + Twitch typing + our conversion + `Router::route`
//!   into a joined channel (registry lookup, counters, admission permit, mailbox send to a
//!   minimal actor that finishes each delivery at once);
//! - `template/render`: rendering a command response with five variables;
//! - `filters/check`: the filter set of a big channel (10 filters, 200 banned phrases: plain,
//!   wildcard, regex) on each corpus message, folded as the engine folds it;
//! - `coalescer/submit_and_flush_10k_messages`: the state store's write-behind writer taking
//!   10,000 messages' changes and flushing them to the embedded store in memory.
//!
//! Engine handling as a whole is `bench/benches/engine.rs`; ingest without routing `bench/benches/ingest.rs`.
//!
//! Run: `cargo bench --bench pipeline -- --warm-up-time 1 --measurement-time 4`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use firehose::channel::admission::Router;
use firehose::channel::{ChannelKey, ChannelMsg, ChannelRegistry, ChannelShared};
use firehose::config::AdmissionConfig;
use firehose::engine::filters;
use firehose::engine::rng::XorShift;
use firehose::engine::template::{Counters, RenderContext, Template};
use firehose::engine::{fold, ChannelRules, ChannelState, ChatEvent, Incoming, Level};
use firehose::obs::Metrics;
use firehose::twitch::convert::to_chat_event;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use twitch_irc::message::{IRCMessage, ServerMessage};

#[path = "common/rules.rs"]
mod rules;
use rules::rules_toml;

const CORPUS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/corpus/xqcow-chat-2019.txt"
));

/// A channel actor stand-in that finishes every delivery at once (what routing hands over to).
struct Sink;

impl Actor for Sink {
    type Msg = ChannelMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(
        &self,
        _me: ActorRef<Self::Msg>,
        _args: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _me: ActorRef<Self::Msg>,
        message: Self::Msg,
        _state: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        if let ChannelMsg::Deliver(mut delivery) = message {
            let _ = delivery.begin();
            delivery.finish();
        }
        Ok(())
    }
}

fn route(c: &mut Criterion) {
    let lines: Vec<&str> = CORPUS.lines().filter(|l| !l.is_empty()).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let registry = ChannelRegistry::new();
    let metrics = Metrics::new(firehose::obs::registry());
    let admission = AdmissionConfig {
        capacity: 1_000_000,
        ..AdmissionConfig::default()
    };
    let router = Router::new(Arc::clone(&registry), metrics, admission);
    let shared = ChannelShared::new(ChannelKey::twitch("xqcow"), 1_000_000);
    let (sink, _task) = runtime
        .block_on(Actor::spawn(None, Sink, ()))
        .expect("sink actor");
    shared.mailbox.set_actor(Some(sink));
    registry.insert(shared);
    let mut group = c.benchmark_group("route");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("parse+route per corpus pass", |b| {
        b.iter(|| {
            let mut routed = 0usize;
            for line in &lines {
                let Ok(irc) = IRCMessage::parse(line) else {
                    continue;
                };
                let Ok(message) = ServerMessage::try_from(irc) else {
                    continue;
                };
                if let Some(event) = to_chat_event(&message) {
                    black_box(router.route(event, Instant::now()));
                    routed += 1;
                }
            }
            routed
        })
    });
    group.finish();
}

fn template(c: &mut Criterion) {
    let template = Template::parse(
        "$(user) hugs $(touser)! Hug number $(count), rolled $(random 1 6), live for $(uptime)",
    )
    .expect("template parses");
    let args = ["@someone"];
    let ctx = RenderContext {
        user: "Viewer",
        channel: "xqcow",
        args: &args,
        count: 41,
        now_ms: 1_568_505_600_000,
        stream_started_ms: Some(1_568_500_000_000),
    };
    let mut counters = Counters::default();
    let mut rng = XorShift::seeded("bench");
    c.bench_function("template/render (5 variables)", |b| {
        b.iter(|| black_box(template.render(black_box(&ctx), &mut counters, &mut rng)))
    });
}

fn filter_set(c: &mut Criterion) {
    // The big channel's filters alone (the same rules `bench/benches/engine.rs` runs whole).
    let all: ChannelRules = toml::from_str(&rules_toml()).expect("bench rules parse");
    let rules = ChannelRules {
        filters: all.filters,
        ..ChannelRules::default()
    };
    let mut state = ChannelState::with_rules("xqcow", rules, 1).expect("filter rules valid");
    let events: Vec<ChatEvent> = CORPUS
        .lines()
        .filter_map(|l| {
            let irc = IRCMessage::parse(l).ok()?;
            to_chat_event(&ServerMessage::try_from(irc).ok()?)
        })
        .filter(|e| e.message().is_some())
        .collect();
    let prepared: Vec<(usize, String)> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| Some((i, fold::fold(&e.message()?.text))))
        .collect();
    let mut i = 0usize;
    c.bench_function("filters/check (10 filters, 200 phrases) per message", |b| {
        b.iter(|| {
            let (index, folded) = &prepared[i % prepared.len()];
            i += 1;
            let Some(message) = events[*index].message() else {
                return 0;
            };
            let incoming = Incoming {
                message,
                folded,
                level: Level::Everyone,
                now_ms: 1_568_505_600_000 + i as u64 * 100,
            };
            black_box(filters::check(&mut state, incoming)).len()
        })
    });
}

/// The write-behind coalescer: one chat message's change (channel message count and the
/// author's stats) handed to the writer, 10,000 messages from 500 chatters per iteration, then
/// one flush to the embedded store in memory. Reports the cost per message, coalescing and
/// flushing included.
fn coalescer(c: &mut Criterion) {
    use firehose::store::writer::{message_change, StoreHandle, WriterConfig};
    const MESSAGES: usize = 10_000;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let config = firehose::config::StoreConfig::default();
    let (handle, logins) = runtime.block_on(async {
        let store = firehose::store::open(&config)
            .await
            .expect("embedded store");
        store.migrate().await.expect("migrate");
        let mut writer = WriterConfig::from_config(&config);
        writer.flush_interval = std::time::Duration::from_secs(3600);
        writer.user_flush_interval = writer.flush_interval;
        writer.flush_max_keys = 1_000_000;
        writer.max_pending_keys = 1_000_000;
        let (handle, _task) = StoreHandle::start(store, writer);
        let logins: Vec<String> = (0..500).map(|i| format!("chatter{i}")).collect();
        (handle, logins)
    });
    let channel: std::sync::Arc<str> = std::sync::Arc::from("twitch:bench");
    let mut group = c.benchmark_group("coalescer");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    group.sample_size(20);
    group.bench_function("submit_and_flush_10k_messages", |b| {
        b.iter(|| {
            runtime.block_on(async {
                for i in 0..MESSAGES {
                    let login = &logins[(i * 7919) % logins.len()];
                    handle
                        .submit(&channel, vec![message_change(login, login, i as i64)])
                        .await;
                }
                handle.flush().await.expect("flush");
            })
        })
    });
    group.finish();
}

criterion_group!(benches, route, template, filter_set, coalescer);
criterion_main!(benches);
