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

const CORPUS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/corpus/xqcow-chat-2019.txt"
));

/// A corpus line as the service would see it (the same conversion as `twitch::convert`).
fn to_event(line: &str) -> Option<ChatEvent> {
    let irc = IRCMessage::parse(line).ok()?;
    let event = to_chat_event(&ServerMessage::try_from(irc).ok()?)?;
    event.message().is_some().then_some(event)
}

fn rules_toml() -> String {
    let mut out = String::from("regulars = [\"reggie\", \"tom\"]\n");
    for i in 0..50 {
        out += &format!(
            "[[commands]]\nname = \"!cmd{i}\"\naliases = [\"!c{i}\"]\nresponse = \"$(user) used cmd{i} $(count) times, hi $(touser) $(random 1 6)\"\nglobal_cooldown_s = 5\n"
        );
    }
    for i in 0..20 {
        out += &format!(
            "[[keywords]]\nname = \"kw{i}\"\ngroups = [[\"topic{i}\", \"what\"], [\"kw{i}\"]]\nresponse = \"about topic {i}\"\nglobal_cooldown_s = 30\n"
        );
    }
    out += "[[timers]]\nname = \"t1\"\nmessage = \"follow!\"\ninterval_s = 600\nmin_lines = 50\n";
    out += "[[timers]]\nname = \"t2\"\nmessage = \"prime!\"\ninterval_s = 900\nmin_lines = 50\n";
    out += "[[filters]]\nname = \"banned\"\nkind = \"banned_phrases\"\naction = { timeout = 600 }\nwarning_first = true\nmessage = \"$(user) no\"\nphrases = [\n";
    for i in 0..150 {
        out += &format!("  {{ pattern = \"badword{i}\" }},\n");
    }
    for i in 0..30 {
        out += &format!("  {{ pattern = \"scam*{i}*link\", kind = \"wildcard\" }},\n");
    }
    for i in 0..20 {
        out += &format!("  {{ pattern = \"\\\\bspam{i}[a-z]+\\\\b\", kind = \"regex\" }},\n");
    }
    out += "]\n";
    out += r#"
[[filters]]
name = "links"
kind = "links"
allow_domains = ["twitch.tv", "youtube.com"]
action = { timeout = 10 }
warning_first = true
[[filters]]
name = "caps"
kind = "caps"
min_length = 15
max_share = 0.75
action = "delete"
[[filters]]
name = "symbols"
kind = "symbols"
min_length = 12
max_share = 0.6
[[filters]]
name = "emotes"
kind = "emotes"
max_count = 12
[[filters]]
name = "repetition"
kind = "repetition"
max_word_repeats = 6
max_char_run = 20
action = { timeout = 30 }
[[filters]]
name = "length"
kind = "length"
max_length = 350
[[filters]]
name = "zalgo"
kind = "zalgo"
max_count = 8
[[filters]]
name = "caps-trial"
kind = "caps"
min_length = 8
max_share = 0.6
shadow = true
[[filters]]
name = "repetition-trial"
kind = "repetition"
max_word_repeats = 3
shadow = true
"#;
    out
}

fn engine(c: &mut Criterion) {
    let rules: ChannelRules = toml::from_str(&rules_toml()).expect("bench rules parse");
    let events: Vec<ChatEvent> = CORPUS.lines().filter_map(to_event).collect();
    let mut state = ChannelState::with_rules("xqcow", rules.clone()).expect("bench rules valid");
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
