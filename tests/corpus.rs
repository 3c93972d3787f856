//! Every real recorded Twitch line (../shared/corpus/twitch-irc-real.txt), fed through the
//! simulator's connection, reaches the service's router without crashing anything.

mod common;

use std::time::Duration;

use common::*;
use firehose::app::ServiceOptions;

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/corpus/twitch-irc-real.txt"
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_real_line_reaches_the_router() {
    let text = std::fs::read_to_string(CORPUS).expect("the shared corpus is readable");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert!(lines.len() > 50, "corpus has {} lines", lines.len());
    // Join the channels the chat lines name, so their events reach channel actors.
    let mut corpus_channels: Vec<String> = lines
        .iter()
        .filter_map(|l| l.split(" #").nth(1))
        .map(|rest| rest.split([' ', ',']).next().unwrap_or("").to_string())
        .filter(|c| firehose::config::is_login(c))
        .collect();
    corpus_channels.sort();
    corpus_channels.dedup();
    let sim = sim(1, |_| {}).await;
    let mut config = config_for(sim.local_addr(), &corpus_channels);
    config.twitch.reconnect_backoff_ms = 10;
    let service = service(config, ServiceOptions::default()).await;
    let metrics = &service.core().metrics;
    let chat_kinds = [" PRIVMSG #", " USERNOTICE #", " CLEARCHAT #", " CLEARMSG #"];
    let mut chat_lines = 0u64;
    for line in &lines {
        let before = metrics.irc_lines_received.get();
        let reconnects = metrics.twitch_reconnects.get();
        assert_eq!(sim.inject_raw(line).await, 1, "one client got: {line}");
        wait_until(
            &format!("the service read: {line}"),
            Duration::from_secs(5),
            || metrics.irc_lines_received.get() > before,
        )
        .await;
        if chat_kinds.iter().any(|k| line.contains(k)) {
            chat_lines += 1;
        }
        // RECONNECT and a login failure end the session; wait for the next one.
        if line.ends_with(" RECONNECT") || line.contains("Login authentication failed") {
            wait_until("reconnected", Duration::from_secs(10), || {
                metrics.twitch_reconnects.get() > reconnects
            })
            .await;
            service
                .wait_ready(Duration::from_secs(10))
                .await
                .expect("ready after reconnect");
        }
    }
    assert_eq!(
        metrics.irc_lines_malformed.get(),
        0,
        "real Twitch lines must all parse"
    );
    let routed: u64 = service
        .core()
        .registry
        .all()
        .iter()
        .map(|c| {
            c.counters
                .received
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    // The corpus's GLOBALUSERSTATE (RANDERS) tells the service who it is logged in as, so that
    // account's later lines are the bot's own and are ignored (counted) before routing.
    let own = metrics
        .ignored(
            firehose::engine::Platform::Twitch,
            firehose::obs::IgnoreReason::Own,
        )
        .get();
    assert_eq!(
        routed + metrics.events_unrouted.get() + own,
        chat_lines,
        "every chat line became a routed event or an ignored own message"
    );
    wait_until(
        "every routed event was handled",
        Duration::from_secs(5),
        || {
            service.core().registry.all().iter().all(|c| {
                c.counters
                    .processed
                    .load(std::sync::atomic::Ordering::Relaxed)
                    == c.counters
                        .received
                        .load(std::sync::atomic::Ordering::Relaxed)
            })
        },
    )
    .await;
    assert!(
        service.wait_ready(Duration::from_secs(10)).await.is_ok(),
        "still serving"
    );
    // Malformed input is counted, not fatal.
    let before = metrics.irc_lines_malformed.get();
    sim.inject_raw("@bad-tags-without-a-command").await;
    sim.inject_raw(":tmi.twitch.tv PRIVMSG").await;
    wait_until(
        "malformed lines are counted",
        Duration::from_secs(5),
        || metrics.irc_lines_malformed.get() >= before + 2,
    )
    .await;
    service
        .wait_ready(Duration::from_secs(5))
        .await
        .expect("still ready after malformed input");
    service.shutdown().await;
    sim.shutdown().await;
}
