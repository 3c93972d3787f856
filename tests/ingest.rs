//! The Twitch ingest edge against hostile or broken input, over loopback with the simulator:
//! lines a correct server never sends (too long, invalid UTF-8, never ending) are skipped and
//! counted while the connection carries on; messages from the bot itself and from listed bots
//! are ignored before admission and counted.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use firehose::cli::Server;
use firehose::engine::Engine;
use firehose_sim::SimHandle;

/// The line limit the tests configure (the default is 16 KiB).
const MAX_LINE: usize = 1_024;

/// Sends a normal message and waits until the channel handled it: proof that everything
/// written before it on the same connection was read (the connection is one ordered stream).
async fn handled_after(sim: &SimHandle, tap: &RecordingTap, channel: &str, text: &str) {
    let id = sim
        .send_privmsg(channel, "viewer", text)
        .await
        .expect("the channel is joined");
    wait_until(
        &format!("the message after the bad input ({text}) is handled"),
        Duration::from_secs(10),
        || tap.ids(channel).contains(&id),
    )
    .await;
}

fn assert_same_connection(service: &Server, sim: &SimHandle, what: &str) {
    assert_eq!(
        service.core().metrics.twitch_reconnects.get(),
        0,
        "{what}: the service reconnected"
    );
    assert_eq!(sim.stats().connections, 1, "{what}: a second connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lines_are_skipped_and_counted_and_the_connection_stays() {
    let sim = sim(1, |_| {}).await;
    let channels = sim_channels(1);
    let channel = &channels[0];
    let tap = Arc::new(RecordingTap::default());
    let mut config = config_for(sim.local_addr(), &channels);
    config.twitch.max_line_bytes = MAX_LINE;
    let service = service(config, options_with(Engine, Some(Arc::clone(&tap)))).await;
    let metrics = Arc::clone(&service.core().metrics);
    handled_after(&sim, &tap, channel, "before anything bad").await;
    assert_same_connection(&service, &sim, "at start");

    // 1. One over-long line, well formed otherwise.
    let malformed = metrics.irc_lines_malformed.get();
    let long = format!(
        "@id=too-long-1;user-id=1 :viewer!viewer@viewer.tmi.twitch.tv PRIVMSG #{channel} :{}",
        "a".repeat(MAX_LINE * 2)
    );
    assert_eq!(sim.inject_raw(&long).await, 1);
    handled_after(&sim, &tap, channel, "after the long line").await;
    assert_eq!(
        metrics.irc_lines_malformed.get(),
        malformed + 1,
        "the over-long line is counted once"
    );
    assert_same_connection(&service, &sim, "over-long line");

    // 2. A line that is not UTF-8.
    let malformed = metrics.irc_lines_malformed.get();
    let mut bad = format!(
        "@id=bad-utf8-1;user-id=1 :viewer!viewer@viewer.tmi.twitch.tv PRIVMSG #{channel} :"
    )
    .into_bytes();
    bad.extend_from_slice(b"\xff\xfe\xc3 broken\r\n");
    assert_eq!(sim.inject_bytes(&bad).await, 1);
    handled_after(&sim, &tap, channel, "after the invalid UTF-8").await;
    assert_eq!(
        metrics.irc_lines_malformed.get(),
        malformed + 1,
        "the invalid UTF-8 line is counted"
    );
    assert!(
        !tap.ids(channel).iter().any(|id| id == "bad-utf8-1"),
        "the invalid line is not handled"
    );
    assert_same_connection(&service, &sim, "invalid UTF-8");

    // 3. A line that does not end within the limit: its bytes arrive in several writes, far
    // past the limit, before its end comes.
    let malformed = metrics.irc_lines_malformed.get();
    for _ in 0..8 {
        assert_eq!(sim.inject_bytes(&[b'x'; MAX_LINE]).await, 1);
    }
    assert_eq!(sim.inject_bytes(b"\r\n").await, 1);
    handled_after(&sim, &tap, channel, "after the endless line").await;
    assert_eq!(
        metrics.irc_lines_malformed.get(),
        malformed + 1,
        "the endless line is counted once, however many bytes it had"
    );
    assert_same_connection(&service, &sim, "endless line");

    // 4. A server that repeats the bad line does not make a reconnect loop either.
    for _ in 0..5 {
        sim.inject_raw(&long).await;
    }
    handled_after(&sim, &tap, channel, "after five long lines").await;
    assert_same_connection(&service, &sim, "repeated long lines");
    assert!(service.wait_ready(Duration::from_secs(5)).await.is_ok());
    service.shutdown().await;
    sim.shutdown().await;
}
