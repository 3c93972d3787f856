//! The same recorded chat gives the same engine events and the same engine actions whether it
//! arrives over IRC or over EventSub: every chat line of the shared corpus (and a thousand
//! lines of a top channel's recording) is fed to one service as the IRC line itself and to
//! another as the EventSub notification the simulator makes of it; both run the example rules
//! with a recording engine whose clock is the message's own time. Known difference, not
//! compared: EventSub has no `first-msg` flag (`docs/TWITCH.md`).

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use firehose::app::ServiceOptions;
use firehose::config::EventSubTransport;
use firehose::engine::{self, Action, ChannelState, ChatEvent, ChatHandler, EventKind};

const REAL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/corpus/twitch-irc-real.txt"
);
const XQCOW: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/corpus/xqcow-chat-2019.txt"
);
const CHAT: [&str; 4] = [" PRIVMSG #", " USERNOTICE #", " CLEARCHAT #", " CLEARMSG #"];

/// The engine, on the message's own clock, recording what it saw and did, per channel.
#[derive(Default)]
struct Recorder {
    seen: Mutex<BTreeMap<String, Vec<String>>>,
    clock: Mutex<BTreeMap<String, u64>>,
}

impl ChatHandler for Recorder {
    fn handle(&self, state: &mut ChannelState, event: &ChatEvent, _now: SystemTime) -> Vec<Action> {
        // Timer ticks come on the service's own clock, not the chat's: left out here.
        if event.kind == EventKind::Tick {
            return Vec::new();
        }
        let channel = event.channel.to_string();
        let at = {
            let mut clock = self.clock.lock().expect("clock");
            let at = clock.entry(channel.clone()).or_insert(0);
            if let Some(m) = event.message() {
                *at = m.sent_at_ms;
            }
            *at
        };
        let actions = engine::handle(state, event, UNIX_EPOCH + Duration::from_millis(at));
        let seen = match &event.kind {
            EventKind::Message(m) => format!(
                "message {} by {}/{}/{} {:?} role={:?} emotes={:?} reply={:?} at={}",
                m.id,
                m.user.id,
                m.user.login,
                m.user.display_name,
                m.text,
                m.user.role,
                m.emotes,
                m.reply_to,
                m.sent_at_ms
            ),
            EventKind::ChatCleared { user_id, .. } => format!("cleared {user_id:?}"),
            EventKind::MessageDeleted { message_id } => format!("deleted {message_id}"),
            EventKind::UserNotice { kind, user, text } => {
                format!("notice {kind} by {} {text:?}", user.login)
            }
            other => format!("{other:?}"),
        };
        let mut log = self.seen.lock().expect("log");
        let entry = log.entry(channel).or_default();
        entry.push(seen);
        entry.push(format!("  -> {actions:?}"));
        actions
    }
}

fn lines() -> Vec<String> {
    let real = std::fs::read_to_string(REAL).expect("the shared corpus");
    let xqcow = std::fs::read_to_string(XQCOW).expect("the xqcow recording");
    // A ritual notice (IRC's new-chatter ritual) has no EventSub counterpart (EventSub shows
    // the intro as a `user_intro` chat message): left out on both sides.
    let chat = |l: &&str| {
        !l.starts_with('#') && CHAT.iter().any(|k| l.contains(k)) && !l.contains("msg-id=ritual")
    };
    real.lines()
        .filter(chat)
        .chain(xqcow.lines().filter(chat).take(1_000))
        .map(str::to_string)
        .collect()
}

fn channel_of(line: &str) -> String {
    line.split(" #")
        .nth(1)
        .and_then(|rest| rest.split([' ', ',']).next())
        .unwrap_or_default()
        .to_string()
}

fn rules_dir(channels: &[String]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/channels/example.toml");
    for channel in channels {
        std::fs::copy(example, dir.path().join(format!("{channel}.toml"))).expect("rules");
    }
    dir
}

fn total_processed(service: &firehose::cli::Server) -> u64 {
    service
        .core()
        .registry
        .all()
        .iter()
        .map(|c| {
            c.counters
                .processed
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_corpus_gives_the_same_engine_events_and_actions_over_irc_and_eventsub() {
    let lines = lines();
    let mut channels: Vec<String> = lines.iter().map(|l| channel_of(l)).collect();
    channels.sort();
    channels.dedup();
    assert!(
        lines.len() > 1_000 && channels.len() > 5,
        "{} lines, {} channels",
        lines.len(),
        channels.len()
    );
    let sim = sim(0, |c| c.channels = channels.clone()).await;
    let rules = rules_dir(&channels);
    let mut irc_config = config_for(sim.local_addr(), &channels);
    irc_config.engine.rules_dir = rules.path().display().to_string();
    irc_config.engine.tick_interval_ms = 3_600_000;
    // The corpus is injected as fast as the simulator writes: room for all of it in admission,
    // so shedding (counted, and tested elsewhere) never makes the two sides differ.
    irc_config.admission.capacity = 4_096;
    let mut es_config = eventsub_config(&sim, &channels, EventSubTransport::Conduit);
    es_config.engine = irc_config.engine.clone();
    es_config.admission.capacity = irc_config.admission.capacity;
    let irc_engine = Arc::new(Recorder::default());
    let es_engine = Arc::new(Recorder::default());
    let options = |engine: &Arc<Recorder>| ServiceOptions {
        handler: Arc::clone(engine) as Arc<dyn ChatHandler>,
        ..ServiceOptions::default()
    };
    let irc = service(irc_config, options(&irc_engine)).await;
    let es = service(es_config, options(&es_engine)).await;
    let eventsub = sim.eventsub();
    // Ready is not "every subscription made and every shard attached" (subscriptions are paced):
    // an event injected before its subscription exists is delivered to no one.
    let chat_kinds = [
        "channel.chat.message",
        "channel.chat.message_delete",
        "channel.chat.clear",
        "channel.chat.clear_user_messages",
        "channel.chat.notification",
    ];
    wait_until(
        "every channel subscribed and every shard attached",
        Duration::from_secs(30),
        || {
            let shards_live = eventsub
                .conduits()
                .iter()
                .all(|(_, shards, live)| shards == live && *shards > 0);
            shards_live
                && channels.iter().all(|channel| {
                    chat_kinds
                        .iter()
                        .all(|kind| eventsub.subscribed(kind, channel) == 1)
                })
        },
    )
    .await;
    for line in &lines {
        assert_eq!(sim.inject_raw(line).await, 1, "the IRC client got {line}");
        assert!(
            eventsub.inject_irc(line).await,
            "EventSub made an event of {line}"
        );
    }
    let expected = lines.len() as u64;
    let until = std::time::Instant::now() + Duration::from_secs(60);
    while total_processed(&irc) != expected || total_processed(&es) != expected {
        assert!(
            std::time::Instant::now() < until,
            "both handled every line: {expected} lines, IRC processed {}, EventSub processed {}; {}; {}",
            total_processed(&irc),
            total_processed(&es),
            diagnose(&irc),
            diagnose(&es),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let irc_seen = irc_engine.seen.lock().expect("log").clone();
    let es_seen = es_engine.seen.lock().expect("log").clone();
    assert_eq!(
        irc_seen.keys().collect::<Vec<_>>(),
        es_seen.keys().collect::<Vec<_>>()
    );
    let mut actions = 0;
    for (channel, irc_log) in &irc_seen {
        let es_log = &es_seen[channel];
        assert_eq!(
            irc_log.len(),
            es_log.len(),
            "{channel}: as many events\nIRC: {irc_log:#?}\nEventSub: {es_log:#?}"
        );
        for (i, (a, b)) in irc_log.iter().zip(es_log).enumerate() {
            assert_eq!(a, b, "{channel}, entry {i}: IRC and EventSub differ");
            if a.starts_with("  -> ") && a != "  -> []" {
                actions += 1;
            }
        }
    }
    // The example rules are tuned to act on about 2 % of real chat (BENCHMARKS.md): these lines
    // give a handful of actions, each compared above.
    assert!(
        actions >= 3,
        "the rules acted on the corpus ({actions} times)"
    );
    irc.shutdown().await;
    es.shutdown().await;
    sim.shutdown().await;
}

fn diagnose(service: &firehose::cli::Server) -> String {
    let text = service.core().metrics.render();
    text.lines()
        .filter(|l| {
            !l.starts_with('#')
                && (l.contains("ignored")
                    || l.contains("shed")
                    || l.contains("unrouted")
                    || l.contains("dropped")
                    || l.contains("dedup"))
                && !l.ends_with(" 0")
        })
        .collect::<Vec<_>>()
        .join(" | ")
}
