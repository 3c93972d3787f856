//! Criterion bench of the engine on a realistic big channel: 50 commands, 10 filters,
//! 200 banned phrases (plain, wildcard, regex), 20 keywords, 2 timers, fed the PRIVMSGs of the
//! recorded xqcow chat one by one. Reports time per message (and the cost of compiling rules).
//!
//! Run briefly: `cargo bench --bench engine -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, Criterion};
use firehose::engine::compiled::Compiled;
use firehose::engine::{handle, ChannelRules, ChannelState, ChatEvent};
use firehose::twitch::convert::to_chat_event;
use twitch_irc::message::{IRCMessage, ServerMessage};

#[path = "common/rules.rs"]
mod rules;
use rules::rules_toml;

const CORPUS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/corpus/xqcow-chat-2019.txt"
));

/// A corpus line as the service would see it (the same conversion as `twitch::convert`).
fn to_event(line: &str) -> Option<ChatEvent> {
    let irc = IRCMessage::parse(line).ok()?;
    let event = to_chat_event(&ServerMessage::try_from(irc).ok()?)?;
    event.message().is_some().then_some(event)
}

fn engine(c: &mut Criterion) {
    let rules: ChannelRules = toml::from_str(&rules_toml()).expect("bench rules parse");
    let events: Vec<ChatEvent> = CORPUS.lines().filter_map(to_event).collect();
    let mut state = ChannelState::with_rules("xqcow", rules.clone(), 1).expect("bench rules valid");
    let start = UNIX_EPOCH + Duration::from_secs(1_568_505_600);
    let mut i = 0usize;
    c.bench_function(
        "engine/corpus message (50 cmds, 10 filters, 200 phrases, 20 kw)",
        |b| {
            b.iter(|| {
                let event = &events[i % events.len()];
                let now: SystemTime = start + Duration::from_millis(i as u64 * 100);
                i += 1;
                black_box(handle(&mut state, black_box(event), now))
            })
        },
    );
    c.bench_function("engine/compile rules", |b| {
        b.iter(|| black_box(Compiled::build(black_box(&rules)).map(|_| ()).is_ok()))
    });
}

criterion_group!(benches, engine);
criterion_main!(benches);
