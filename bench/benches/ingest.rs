//! Ingest cost per real chat line: twitch-irc's parser, Twitch message typing, and our
//! conversion to the engine's ChatEvent. Input: the 4,000 real lines of
//! ../shared/corpus/xqcow-chat-2019.txt. Run: `cargo bench --bench ingest`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use firehose::twitch::convert::to_chat_event;
use twitch_irc::message::{IRCMessage, ServerMessage};

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/corpus/xqcow-chat-2019.txt"
);

fn ingest(c: &mut Criterion) {
    let text = std::fs::read_to_string(CORPUS).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    if lines.is_empty() {
        eprintln!("corpus not found at {CORPUS}; nothing to measure");
        return;
    }
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("parse+type+convert per corpus pass", |b| {
        b.iter(|| {
            let mut events = 0usize;
            for line in &lines {
                let Ok(irc) = IRCMessage::parse(line) else {
                    continue;
                };
                let Ok(message) = ServerMessage::try_from(irc) else {
                    continue;
                };
                events += usize::from(to_chat_event(&message).is_some());
            }
            events
        })
    });
    group.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
