//! Reading chat through EventSub and answering through the Helix Chat API, against the
//! simulator's EventSub (WebSocket server, conduits, subscriptions) and Helix: every transport,
//! session life (keepalive loss, session_reconnect, every close code), duplicates, revocations,
//! malformed and oversized frames.

mod common;

/// Every EventSub subscription type the service makes for a channel: each the simulator knows.
use firehose_sim::eventsub::KNOWN_TYPES as KINDS;
use std::time::Duration;

use common::*;
use firehose::app::ServiceOptions;
use firehose::config::EventSubTransport;

const DEADLINE: Duration = Duration::from_secs(20);

/// Waits until every subscription of every channel exists (every type the simulator knows,
/// [`KINDS`]: the service subscribes to each). Readiness waits for the chat
/// subscriptions only; the others (stream.online, ...) may still be on their way.
async fn all_subscribed(sim: &firehose_sim::SimHandle, channels: &[String]) {
    let es = sim.eventsub();
    wait_until(
        "every subscription of every channel exists",
        DEADLINE,
        || {
            channels
                .iter()
                .all(|channel| KINDS.iter().all(|kind| es.subscribed(kind, channel) >= 1))
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conduit_shards_carry_chat_and_helix_carries_the_replies() {
    let sim = sim(3, |_| {}).await;
    let channels = sim_channels(3);
    let mut config = eventsub_config(&sim, &channels, EventSubTransport::Conduit);
    config.twitch.eventsub.shards = 2;
    let service = service(config, ServiceOptions::default()).await;
    let es = sim.eventsub();
    assert_eq!(es.conduits().len(), 1, "one conduit");
    assert_eq!(es.conduits()[0].1, 2, "with two shards");
    all_subscribed(&sim, &channels).await;
    for channel in &channels {
        for kind in KINDS.iter().copied() {
            assert_eq!(es.subscribed(kind, channel), 1, "{kind} for {channel}");
        }
    }
    let mut ids = Vec::new();
    for channel in &channels {
        for user in ["alice", "bob"] {
            ids.push(ping(&sim, channel, user).await);
        }
    }
    wait_until("every !ping answered once", DEADLINE, || {
        ids.iter().all(|id| sim.replies_to(id) == 1)
    })
    .await;
    // No broadcaster authorised channel:bot here: the bot's user token sends.
    let chat = sim.api().chat_stats();
    assert_eq!(
        (chat.sent_with_user_token, chat.sent_with_app_token),
        (ids.len() as u64, 0)
    );
    // Each reply comes back as a notification after Helix accepted it: wait for all of them.
    wait_until(
        "the bot's own replies came back through EventSub and were dropped",
        DEADLINE,
        || {
            let text = service.core().metrics.render();
            metric_value(&text, "firehose_eventsub_own_messages_total") == ids.len() as f64
        },
    )
    .await;
    let text = service.core().metrics.render();
    assert_eq!(
        metric_value(&text, "firehose_irc_lines_received_total"),
        0.0,
        "no IRC at all"
    );
    service.shutdown().await;
    sim.shutdown().await;
}

/// Waits until `/readyz` would answer 200.
async fn ready(service: &firehose::cli::Server) {
    if let Err(r) = service.wait_ready(DEADLINE).await {
        panic!("not ready again: {:?}", r.reasons);
    }
}

fn reconnects(service: &firehose::cli::Server, reason: &str) -> f64 {
    metric_value(
        &service.core().metrics.render(),
        &format!("firehose_eventsub_reconnects_total{{reason=\"{reason}\"}}"),
    )
}

fn requests(service: &firehose::cli::Server, outcome: &str) -> f64 {
    metric_value(
        &service.core().metrics.render(),
        &format!("firehose_eventsub_subscription_requests_total{{outcome=\"{outcome}\"}}"),
    )
}

/// Sends one `!ping` per channel and waits until each is answered exactly once.
async fn pings_answered(sim: &firehose_sim::SimHandle, channels: &[String], user: &str) {
    let mut ids = Vec::new();
    for channel in channels {
        ids.push(ping(sim, channel, user).await);
    }
    wait_until(&format!("{user}'s pings answered once"), DEADLINE, || {
        ids.iter().all(|id| sim.replies_to(id) == 1)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_websocket_transport_uses_the_user_token_and_enforces_twitchs_limits() {
    // Small limits on both sides (the service's defaults are Twitch's 3 x 300): 2 channels
    // of 8 subscriptions per connection, 2 connections.
    let sim = sim(6, |c| {
        c.eventsub.websocket_max_connections = 2;
        c.eventsub.websocket_max_subscriptions = 16;
        c.eventsub.websocket_max_total_cost = 10;
    })
    .await;
    let channels = sim_channels(6);
    let mut config = eventsub_config(&sim, &channels[..4], EventSubTransport::Websocket);
    config.twitch.eventsub.websocket_max_connections = 2;
    config.twitch.eventsub.websocket_max_subscriptions = 16;
    let service = service(config, ServiceOptions::default()).await;
    let es = sim.eventsub();
    assert_eq!(es.sessions().len(), 2, "two connections for four channels");
    assert!(es
        .subscriptions()
        .iter()
        .all(|(_, _, method)| method == "websocket"));
    pings_answered(&sim, &channels[..4], "alice").await;
    // A fifth channel does not fit: refused with a reason naming the limit, shown per channel
    // and in /readyz; the others are untouched.
    service.core().join(&channels[4]).await.expect("joins");
    let url = format!("http://{}/v1/channels", service.http_addr());
    let list: serde_json::Value = reqwest::get(&url)
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let fifth = list
        .as_array()
        .and_then(|a| a.iter().find(|c| c["channel"] == channels[4].as_str()))
        .cloned()
        .expect("listed");
    assert_eq!(fifth["eventsub"]["state"], "failing", "{fifth}");
    let why = fifth["eventsub"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(why.contains("websocket transport full"), "{why}");
    let readiness = service.core().readiness();
    assert!(
        readiness
            .reasons
            .iter()
            .any(|r| r.contains(&channels[4]) && r.contains("websocket transport full")),
        "{:?}",
        readiness.reasons
    );
    // Stream and raid subscriptions cost 1 each with a user token (max_total_cost 10): the
    // fourth channel's went past it, which leaves it degraded, not down.
    assert!(
        readiness.degraded.iter().any(|d| d.contains("stream/raid")),
        "{:?}",
        readiness.degraded
    );
    assert!(requests(&service, "refused_429") >= 1.0);
    service.core().part(&channels[4]).await.expect("parts");
    ready(&service).await;
    service.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_loss_reconnects_and_subscribes_again() {
    let sim = sim(2, |_| {}).await;
    let channels = sim_channels(2);
    let config = eventsub_config(&sim, &channels, EventSubTransport::Websocket);
    let service = service(config, ServiceOptions::default()).await;
    let es = sim.eventsub();
    let before = es.sessions();
    let created = requests(&service, "created");
    es.silence_sessions();
    wait_until(
        "a new session replaced the silent one",
        Duration::from_secs(30),
        || {
            let now = es.sessions();
            now.iter().any(|s| !before.contains(s))
        },
    )
    .await;
    assert_eq!(reconnects(&service, "keepalive"), 1.0);
    ready(&service).await;
    // Its subscriptions died with the old connection: all made again on the new session
    // (readiness needs only the chat ones; the others may still be on their way).
    wait_until("every subscription made again", DEADLINE, || {
        requests(&service, "created") >= created + 16.0
    })
    .await;
    pings_answered(&sim, &channels, "after").await;
    service.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_reconnect_loses_nothing_and_repeats_nothing() {
    for transport in [EventSubTransport::Conduit, EventSubTransport::Websocket] {
        let sim = sim(2, |_| {}).await;
        let channels = sim_channels(2);
        let config = eventsub_config(&sim, &channels, transport);
        let service = service(config, ServiceOptions::default()).await;
        all_subscribed(&sim, &channels).await;
        // The simulator has them all; the service counts each once its answer is read.
        let all = (KINDS.len() * channels.len()) as f64;
        wait_until("the service counted every subscription", DEADLINE, || {
            requests(&service, "created") >= all
        })
        .await;
        let es = sim.eventsub();
        let sessions = es.sessions();
        let created = requests(&service, "created");
        // Chat keeps coming while the server moves the session.
        let mut ids = Vec::new();
        for round in 0..40 {
            if round == 10 {
                es.send_reconnect(true);
            }
            for channel in &channels {
                ids.push(ping(&sim, channel, &format!("user{round}")).await);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        wait_until("the reconnect completed", DEADLINE, || {
            es.stats().reconnects_completed == sessions.len() as u64
        })
        .await;
        let until = std::time::Instant::now() + DEADLINE;
        while !ids.iter().all(|id| sim.replies_to(id) >= 1) {
            if std::time::Instant::now() > until {
                let missing: Vec<usize> = ids
                    .iter()
                    .enumerate()
                    .filter(|(_, id)| sim.replies_to(id) == 0)
                    .map(|(i, _)| i)
                    .collect();
                panic!(
                    "{transport:?}: unanswered pings {missing:?} of {}; sim {:?}; metrics {}",
                    ids.len(),
                    es.stats(),
                    service
                        .core()
                        .metrics
                        .render()
                        .lines()
                        .filter(|l| l.contains("eventsub")
                            || l.contains("helix_chat")
                            || l.contains("processed")
                            || l.contains("outbound"))
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for id in &ids {
            assert_eq!(sim.replies_to(id), 1, "{transport:?}: {id} answered once");
        }
        // The old connections close a moment after the new ones took over (the simulator lists
        // a session until its socket's close is handled): wait for that, then compare.
        wait_until("the old connections closed", DEADLINE, || {
            es.sessions().len() == sessions.len()
        })
        .await;
        assert!(
            es.sessions().iter().all(|s| sessions.contains(s)),
            "{transport:?}: the same sessions"
        );
        assert_eq!(
            requests(&service, "created"),
            created,
            "{transport:?}: subscriptions carried over, none made again"
        );
        assert_eq!(
            reconnects(&service, "session_reconnect"),
            sessions.len() as f64
        );
        ready(&service).await;
        service.shutdown().await;
        sim.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_delivery_is_handled_once() {
    let sim = sim(1, |_| {}).await;
    let channels = sim_channels(1);
    let config = eventsub_config(&sim, &channels, EventSubTransport::Conduit);
    let service = service(config, ServiceOptions::default()).await;
    let es = sim.eventsub();
    es.duplicate_next(5);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(ping(&sim, &channels[0], &format!("dup{i}")).await);
    }
    wait_until("the pings answered", DEADLINE, || {
        ids.iter().all(|id| sim.replies_to(id) >= 1)
    })
    .await;
    assert_eq!(es.stats().duplicates_sent, 5);
    wait_until("the repeats counted", DEADLINE, || {
        metric_value(
            &service.core().metrics.render(),
            "firehose_eventsub_duplicates_total",
        ) == 5.0
    })
    .await;
    for id in &ids {
        assert_eq!(sim.replies_to(id), 1, "{id} answered once");
    }
    assert_eq!(
        processed(&service, &channels[0]),
        5,
        "each message handled once"
    );
    service.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_close_code_is_survived_on_both_websocket_transports() {
    for transport in [EventSubTransport::Conduit, EventSubTransport::Websocket] {
        let sim = sim(2, |_| {}).await;
        let channels = sim_channels(2);
        let config = eventsub_config(&sim, &channels, transport);
        let service = service(config, ServiceOptions::default()).await;
        let es = sim.eventsub();
        for code in 4000..=4007u16 {
            let before = es.sessions();
            es.close_all(code);
            wait_until(
                &format!("{transport:?}: a new session after {code}"),
                DEADLINE,
                || {
                    let now = es.sessions();
                    !now.is_empty() && now.iter().all(|s| !before.contains(s))
                },
            )
            .await;
            ready(&service).await;
            assert_eq!(
                reconnects(&service, &format!("close_{code}")),
                1.0,
                "{transport:?} {code}"
            );
            pings_answered(&sim, &channels, &format!("after{code}")).await;
        }
        // A reconnect URL the server no longer knows: the new connection is closed with 4007,
        // and the service starts afresh on the configured URL (the old session goes too).
        let before = es.sessions();
        es.send_reconnect(false);
        wait_until(
            &format!("{transport:?}: afresh after an invalid reconnect"),
            DEADLINE,
            || {
                // one 4007 from the loop above, one for the invalid reconnect
                es.stats().closes.get(&4007).copied().unwrap_or(0) >= 2
                    && es.sessions().iter().all(|s| !before.contains(s))
                    && !es.sessions().is_empty()
            },
        )
        .await;
        ready(&service).await;
        pings_answered(&sim, &channels, "after-invalid").await;
        let text = service.core().metrics.render();
        assert!(
            metric_value(
                &text,
                "firehose_eventsub_reconnects_total{reason=\"reconnect_failed\"}"
            ) >= 1.0
        );
        service.shutdown().await;
        sim.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_subscription_is_shown_and_a_recoverable_one_comes_back() {
    let sim = sim(2, |_| {}).await;
    let channels = sim_channels(2);
    let config = eventsub_config(&sim, &channels, EventSubTransport::Conduit);
    let service = service(config, ServiceOptions::default()).await;
    let es = sim.eventsub();
    // Final: the broadcaster took the authorisation back.
    assert_eq!(
        es.revoke(
            &channels[0],
            Some("channel.chat.message"),
            "authorization_revoked"
        ),
        1
    );
    wait_until("the revocation is shown", DEADLINE, || {
        !service.core().readiness().ready
    })
    .await;
    let reasons = service.core().readiness().reasons;
    assert!(
        reasons
            .iter()
            .any(|r| r.contains(&channels[0]) && r.contains("authorization_revoked")),
        "{reasons:?}"
    );
    let text = service.core().metrics.render();
    assert_eq!(
        metric_value(
            &text,
            "firehose_eventsub_revocations_total{reason=\"authorization_revoked\"}"
        ),
        1.0
    );
    assert_eq!(
        es.subscribed("channel.chat.message", &channels[0]),
        0,
        "not made again"
    );
    // Recoverable (Twitch's delivery to a transport failed): subscribed again by itself.
    assert_eq!(
        es.revoke(
            &channels[1],
            Some("channel.chat.message"),
            "notification_failures_exceeded"
        ),
        1
    );
    wait_until("subscribed again", DEADLINE, || {
        es.subscribed("channel.chat.message", &channels[1]) == 1
    })
    .await;
    pings_answered(&sim, &channels[1..], "still").await;
    // Re-joining the revoked channel (after the broadcaster authorised again) recovers it.
    service.core().part(&channels[0]).await.expect("part");
    service.core().join(&channels[0]).await.expect("join");
    ready(&service).await;
    pings_answered(&sim, &channels, "rejoined").await;
    service.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_frames_are_counted_and_survived() {
    let sim = sim(1, |_| {}).await;
    let channels = sim_channels(1);
    let mut config = eventsub_config(&sim, &channels, EventSubTransport::Conduit);
    config.twitch.eventsub.max_frame_bytes = 16 * 1024;
    let service = service(config, ServiceOptions::default()).await;
    let es = sim.eventsub();
    let session = es.sessions();
    for frame in [
        "{not json",
        "[]",
        r#"{"metadata":{"message_id":"x","message_type":"notification","message_timestamp":"2026-01-01T00:00:00Z","subscription_type":"channel.follow","subscription_version":"9"},"payload":{}}"#,
        r#"{"metadata":{"message_id":"y","message_type":"session_welcome","message_timestamp":"nope"}}"#,
    ] {
        es.inject_frame(frame);
    }
    wait_until("malformed frames counted", DEADLINE, || {
        metric_value(
            &service.core().metrics.render(),
            "firehose_eventsub_malformed_total",
        ) >= 4.0
    })
    .await;
    assert_eq!(es.sessions(), session, "the connection survived");
    pings_answered(&sim, &channels, "after-malformed").await;
    // A frame past max_frame_bytes: counted, the connection replaced cleanly.
    es.inject_frame(&format!("{{\"pad\":\"{}\"}}", "x".repeat(64 * 1024)));
    wait_until("a new session after the huge frame", DEADLINE, || {
        let now = es.sessions();
        !now.is_empty() && now != session
    })
    .await;
    let text = service.core().metrics.render();
    assert_eq!(
        metric_value(
            &text,
            "firehose_eventsub_malformed_total{reason=\"too_large\"}"
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &text,
            "firehose_eventsub_reconnects_total{reason=\"too_large\"}"
        ),
        1.0
    );
    ready(&service).await;
    pings_answered(&sim, &channels, "after-huge").await;
    service.shutdown().await;
    sim.shutdown().await;
}
