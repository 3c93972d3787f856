//! Sending through the Helix Chat API (`twitch.send_via = "helix"`) with IRC as the ingest:
//! replies threaded with `reply_parent_message_id`, a message Twitch does not deliver counted
//! by its drop reason and never sent again, the scheduler's limits still deciding when.

mod common;

use std::time::Duration;

use common::*;
use firehose::app::ServiceOptions;
use firehose::config::{EventSubTransport, Ingest};

const DEADLINE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drops_are_counted_by_reason_and_never_resent() {
    let sim = sim(2, |_| {}).await;
    let channels = sim_channels(2);
    let mut config = eventsub_config(&sim, &channels, EventSubTransport::Conduit);
    config.twitch.ingest = Ingest::Irc;
    let service = service(config, ServiceOptions::default()).await;
    // A normal reply: threaded, sent once, through Helix.
    let id = ping(&sim, &channels[0], "viewer").await;
    wait_until("answered", DEADLINE, || sim.replies_to(&id) == 1).await;
    let reply = sim
        .received()
        .into_iter()
        .find(|m| m.reply_parent.as_deref() == Some(id.as_str()))
        .expect("the reply");
    assert!(reply.accepted && reply.text.contains("pong"), "{reply:?}");
    assert!(
        service.core().metrics.irc_lines_received.get() > 0,
        "chat came over IRC"
    );
    // The second channel drops everything (followers-only, say).
    sim.api()
        .set_chat_drop(&channels[1], Some("msg_followersonly"));
    let requests = sim.api().chat_stats().requests;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(ping(&sim, &channels[1], &format!("follower{i}")).await);
    }
    wait_until("the drops counted", DEADLINE, || {
        metric_value(
            &service.core().metrics.render(),
            "firehose_helix_chat_dropped_total{reason=\"msg_followersonly\"}",
        ) == 3.0
    })
    .await;
    let chat = sim.api().chat_stats();
    assert_eq!(
        chat.requests - requests,
        3,
        "one call per message: nothing resent"
    );
    assert_eq!(chat.dropped.get("msg_followersonly"), Some(&3));
    assert!(ids.iter().all(|id| sim.replies_to(id) == 0));
    // The channel recovers: sends go through again.
    sim.api().set_chat_drop(&channels[1], None);
    let id = ping(&sim, &channels[1], "later").await;
    wait_until("answered again", DEADLINE, || sim.replies_to(&id) == 1).await;
    service.shutdown().await;
    sim.shutdown().await;
}
