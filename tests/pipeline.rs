//! End to end over loopback: simulator -> Twitch client -> router -> channel actors -> engine
//! -> outbound -> simulator. Exactly-once and order, replies, poison, reconnects, restart
//! intensity and join pacing. (Slow-channel isolation is in `isolation.rs`, its own binary, so
//! it does not compete for the 2 CI cores with the throughput test here.)

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use firehose::app::ServiceOptions;
use firehose::channel::{ChannelStatus, ShedReason};
use firehose::engine::Engine;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_channels_every_message_once_and_in_order_and_pings_answered() {
    let total = 12_000u64;
    let sim = sim(50, |c| {
        c.max_messages = Some(total);
        c.ping_fraction = 0.02;
    })
    .await;
    let channels = sim_channels(50);
    let tap = Arc::new(RecordingTap::default());
    let service = service(
        config_for(sim.local_addr(), &channels),
        options_with(Engine, Some(Arc::clone(&tap))),
    )
    .await;
    sim.set_rate(4_000.0);
    wait_until(
        "the simulator sent every message",
        Duration::from_secs(30),
        || sim.stats().privmsgs_sent >= total,
    )
    .await;
    let stats = sim.stats();
    wait_until("every message was handled", Duration::from_secs(30), || {
        channels.iter().map(|c| processed(&service, c)).sum::<u64>() >= stats.privmsgs_sent
    })
    .await;
    for channel in &channels {
        let sent = sim.sent_ids(channel);
        let handled = tap.ids(channel);
        assert_eq!(
            handled, sent,
            "channel {channel}: handled ids differ from sent ids (order or duplicates)"
        );
        assert_eq!(
            shed(&service, channel),
            0,
            "channel {channel} shed messages"
        );
    }
    let sent_total: usize = channels.iter().map(|c| sim.sent_ids(c).len()).sum();
    assert_eq!(sent_total as u64, stats.privmsgs_sent);
    assert!(
        stats.pings_sent > 50,
        "the mix contained !pings ({})",
        stats.pings_sent
    );
    wait_until("every !ping was answered", Duration::from_secs(20), || {
        sim.stats().replies_matched >= stats.pings_sent
    })
    .await;
    let after = sim.stats();
    assert_eq!(after.ratelimited, 0, "no reply broke Twitch's limits");
    assert_eq!(sim.reply_latencies().len(), after.replies_matched);
    let report = service.shutdown().await;
    assert_eq!(report.shed, 0);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poison_message_restarts_its_actor_and_nothing_else_is_lost() {
    let sim = sim(3, |_| {}).await;
    let channels = sim_channels(3);
    let tap = Arc::new(RecordingTap::default());
    let service = service(
        config_for(sim.local_addr(), &channels),
        options_with(FaultyEngine::default(), Some(Arc::clone(&tap))),
    )
    .await;
    let victim = &channels[0];
    let mut expected = Vec::new();
    let mut poison_id = None;
    // Messages before, the poison, and messages right behind it (likely still in the mailbox
    // when the actor dies: they must be handed to the restarted actor, in order).
    for i in 0..200 {
        for channel in &channels {
            let text = if channel == victim && i == 100 {
                "POISON pill".to_string()
            } else {
                format!("hello {i}")
            };
            let id = sim
                .send_privmsg(channel, "viewer", &text)
                .await
                .expect("joined");
            if channel == victim && i == 100 {
                poison_id = Some(id);
            } else if channel == victim {
                expected.push(id);
            }
        }
    }
    let poison_id = poison_id.expect("sent");
    wait_until(
        "the victim handled everything but the poison",
        Duration::from_secs(20),
        || tap.ids(victim).len() >= expected.len(),
    )
    .await;
    assert_eq!(
        tap.ids(victim),
        expected,
        "victim lost or reordered messages around the poison"
    );
    assert!(!tap.ids(victim).contains(&poison_id));
    let victim_channel = channel(&service, victim);
    assert_eq!(
        victim_channel
            .counters
            .restarts
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(victim_channel.counters.shed(ShedReason::Poisoned), 1);
    assert_eq!(
        victim_channel.counters.shed_total(),
        1,
        "only the poison is shed"
    );
    assert!(victim_channel
        .last_error()
        .is_some_and(|e| e.contains("poison")));
    wait_until(
        "the victim is running again",
        Duration::from_secs(5),
        || victim_channel.status() == ChannelStatus::Running,
    )
    .await;
    // Later messages are handled by the restarted actor.
    let later = sim
        .send_privmsg(victim, "viewer", "after the restart")
        .await
        .expect("joined");
    wait_until("a later message is handled", Duration::from_secs(5), || {
        tap.ids(victim).contains(&later)
    })
    .await;
    for other in &channels[1..] {
        wait_until(
            "neighbours handled everything",
            Duration::from_secs(10),
            || tap.ids(other).len() == 200,
        )
        .await;
        assert_eq!(
            tap.ids(other),
            sim.sent_ids(other),
            "{other} lost or reordered messages"
        );
        assert_eq!(
            channel(&service, other)
                .counters
                .restarts
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }
    assert_eq!(
        received(&service, victim),
        processed(&service, victim) + shed(&service, victim)
    );
    service.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconnect_rejoins_and_later_messages_arrive() {
    let sim = sim(5, |_| {}).await;
    let channels = sim_channels(5);
    let tap = Arc::new(RecordingTap::default());
    let service = service(
        config_for(sim.local_addr(), &channels),
        options_with(Engine, Some(Arc::clone(&tap))),
    )
    .await;
    let joins_before = sim.stats().joins;
    sim.send_reconnect().await;
    wait_until("the client reconnected", Duration::from_secs(10), || {
        service.core().metrics.twitch_reconnects.get() >= 1 && sim.stats().connections >= 2
    })
    .await;
    wait_until(
        "every channel was joined again",
        Duration::from_secs(10),
        || sim.stats().joins >= joins_before + channels.len() as u64,
    )
    .await;
    service
        .wait_ready(Duration::from_secs(10))
        .await
        .expect("ready again");
    for channel in &channels {
        let id = sim
            .send_privmsg(channel, "viewer", "after reconnect")
            .await
            .expect("rejoined");
        wait_until(
            "a message after the reconnect is handled",
            Duration::from_secs(5),
            || tap.ids(channel).contains(&id),
        )
        .await;
    }
    service.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_channel_that_keeps_failing_is_marked_failed_and_others_carry_on() {
    let sim = sim(2, |_| {}).await;
    let channels = sim_channels(2);
    let (doomed, healthy) = (channels[0].clone(), channels[1].clone());
    let mut config = config_for(sim.local_addr(), &channels);
    config.supervisor.max_restarts = 3;
    let engine = FaultyEngine {
        doomed: vec![doomed.clone()],
        ..FaultyEngine::default()
    };
    let tap = Arc::new(RecordingTap::default());
    let service = service(config, options_with(engine, Some(Arc::clone(&tap)))).await;
    let doomed_channel = channel(&service, &doomed);
    for i in 0..20 {
        sim.send_privmsg(&doomed, "viewer", &format!("m{i}"))
            .await
            .expect("joined");
        if doomed_channel.status() == ChannelStatus::Failed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    wait_until(
        "the doomed channel is marked failed",
        Duration::from_secs(10),
        || doomed_channel.status() == ChannelStatus::Failed,
    )
    .await;
    assert_eq!(
        doomed_channel
            .counters
            .restarts
            .load(std::sync::atomic::Ordering::Relaxed),
        4
    );
    let readiness = service.core().readiness();
    assert!(!readiness.ready);
    assert!(
        readiness.reasons.iter().any(|r| r.contains(&doomed)),
        "{:?}",
        readiness.reasons
    );
    let metrics = service.core().metrics.render();
    assert!(
        metrics.contains(&format!(
            "firehose_channel_failed{{platform=\"twitch\",channel=\"{doomed}\"}} 1"
        )),
        "{metrics}"
    );
    // Messages for a failed channel are shed and counted, never silently lost.
    sim.send_privmsg(&doomed, "viewer", "into the void")
        .await
        .expect("joined");
    wait_until(
        "the failed channel counts what it sheds",
        Duration::from_secs(5),
        || doomed_channel.counters.shed(ShedReason::ChannelFailed) >= 1,
    )
    .await;
    // Poison lines sent before the channel failed may still be arriving (and are shed): the
    // counters are read one after the other, so wait for them to settle into the identity.
    wait_until(
        "every message of the failed channel counted once",
        Duration::from_secs(5),
        || received(&service, &doomed) == processed(&service, &doomed) + shed(&service, &doomed),
    )
    .await;
    let id = sim
        .send_privmsg(&healthy, "viewer", "still here")
        .await
        .expect("joined");
    wait_until(
        "the healthy channel carries on",
        Duration::from_secs(5),
        || tap.ids(&healthy).contains(&id),
    )
    .await;
    service.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_are_paced_within_the_configured_limit() {
    let n = 12;
    let sim = sim(n, |_| {}).await;
    let channels = sim_channels(n);
    let mut config = config_for(sim.local_addr(), &channels);
    config.twitch.join.limit = 5;
    config.twitch.join.window_ms = 1_000;
    let service = service(config, ServiceOptions::default()).await;
    let times = sim.join_times();
    assert_eq!(times.len(), n, "every channel joined once");
    let window = Duration::from_millis(1_000);
    for (i, (_, start)) in times.iter().enumerate() {
        let in_window = times[i..]
            .iter()
            .filter(|(_, t)| t.duration_since(*start) < window - Duration::from_millis(50))
            .count();
        assert!(
            in_window <= 5,
            "{in_window} JOINs within one window starting at join {i}"
        );
    }
    assert_eq!(sim.stats().join_violations, 0);
    service.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_respect_the_non_moderator_limits_and_the_duplicate_rule() {
    let sim = sim(2, |c| {
        c.limits.verified = false;
        c.limits.bot_is_mod = false;
        c.limits.window = Duration::from_millis(1_500);
        c.limits.account_limit = 4;
        c.limits.per_channel_interval = Duration::from_millis(100);
    })
    .await;
    let channels = sim_channels(2);
    let mut config = config_for(sim.local_addr(), &channels);
    config.twitch.verified_bot = false;
    config.twitch.send.window_ms = 1_500;
    config.twitch.send.account_limit = 4;
    config.twitch.send.per_channel_interval_ms = 100;
    // `!echo` is for moderators with a cooldown by default; these channels let every viewer
    // echo at any rate, so that the outbound limits are what this test exercises.
    let dir = tempfile::tempdir().expect("dir");
    for channel in &channels {
        std::fs::write(
            dir.path().join(format!("{channel}.toml")),
            "[builtins.echo]\nlevel = \"everyone\"\nglobal_cooldown_s = 0\nuser_cooldown_s = 0\n",
        )
        .expect("write rules");
    }
    config.engine.rules_dir = dir.path().display().to_string();
    let service = service(config, ServiceOptions::default()).await;
    // Eight identical replies-worth of commands in one channel, two in the other.
    for _ in 0..8 {
        sim.send_privmsg(&channels[0], "viewer", "!echo same text")
            .await
            .expect("joined");
    }
    for _ in 0..2 {
        sim.send_privmsg(&channels[1], "viewer", "!echo other")
            .await
            .expect("joined");
    }
    wait_until(
        "all ten replies were accepted",
        Duration::from_secs(20),
        || sim.stats().bot_accepted >= 10,
    )
    .await;
    let stats = sim.stats();
    assert_eq!(stats.ratelimited, 0, "firehose never sent over the limit");
    assert_eq!(stats.duplicates, 0, "repeats were made unique");
    assert!(service.core().metrics.outbound_deduplicated.get() >= 7);
    service.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_turns_readiness_off_and_drains_every_mailbox() {
    let sim = sim(2, |_| {}).await;
    let channels = sim_channels(2);
    let engine = FaultyEngine {
        slow: vec![channels[0].clone()],
        slow_per_message: Duration::from_millis(2),
        ..FaultyEngine::default()
    };
    let tap = Arc::new(RecordingTap::default());
    let service = service(
        config_for(sim.local_addr(), &channels),
        options_with(engine, Some(Arc::clone(&tap))),
    )
    .await;
    for i in 0..300 {
        sim.send_privmsg(&channels[0], "viewer", &format!("m{i}"))
            .await
            .expect("joined");
    }
    let sent = sim.sent_ids(&channels[0]).len() as u64;
    wait_until("everything was admitted", Duration::from_secs(10), || {
        received(&service, &channels[0]) == sent
    })
    .await;
    let core = Arc::clone(service.core());
    let backlog = channel(&service, &channels[0]).in_flight();
    let shutdown = tokio::spawn(service.shutdown());
    wait_until(
        "readiness turns off as shutdown starts",
        Duration::from_secs(5),
        || {
            core.readiness()
                .reasons
                .iter()
                .any(|r| r.contains("shutting down"))
        },
    )
    .await;
    let report = shutdown.await.expect("shutdown task");
    assert!(backlog > 0, "the test needs a backlog to drain");
    assert_eq!(report.drain.channels, 2);
    assert_eq!(
        report.drain.drained, 2,
        "both mailboxes drained within the deadline"
    );
    assert_eq!(report.shed, 0);
    assert_eq!(
        tap.ids(&channels[0]),
        sim.sent_ids(&channels[0]),
        "the backlog was handled in order"
    );
    sim.shutdown().await;
}
