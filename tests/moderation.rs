//! Moderation end to end: a spam message in simulated chat leads to the matching Helix call
//! at a fake Helix on loopback (which checks every request), and to a moderation log entry.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use firehose::app::ServiceOptions;
use firehose::config::Secret;
use firehose_sim::helix::{FakeHelix, FAKE_CLIENT_ID, FAKE_TOKEN};

const RULES: &str = r#"
[[filters]]
name = "no-scam"
kind = "banned_phrases"
action = { timeout = 600 }
message = "$(user), no scams."
phrases = [{ pattern = "free bitcoin" }, { pattern = "buy*followers", kind = "wildcard", action = "ban" }]

[[filters]]
name = "links"
kind = "links"
action = "delete"
allow_domains = ["twitch.tv"]
"#;

fn chat_line(channel: &str, id: &str, user: &str, user_id: &str, text: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!(
        "@badge-info=;badges=;color=;display-name={user};emotes=;first-msg=0;flags=;id={id};mod=0;room-id=1;subscriber=0;tmi-sent-ts={now};turbo=0;user-id={user_id};user-type= :{user}!{user}@{user}.tmi.twitch.tv PRIVMSG #{channel} :{text}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spam_in_chat_becomes_the_matching_helix_calls() {
    let helix = FakeHelix::start();
    let sim = sim(1, |_| {}).await;
    let channels = sim_channels(1);
    let channel = &channels[0];
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join(format!("{channel}.toml")), RULES).expect("rules");
    let log_path = dir.path().join("moderation.jsonl");
    let mut config = config_for(sim.local_addr(), &channels);
    config.engine.rules_dir = dir.path().display().to_string();
    config.helix.base_url = helix.base_url();
    config.helix.client_id = FAKE_CLIENT_ID.to_string();
    config.helix.moderation_log = Some(log_path.clone());
    config.secrets.helix_token = Some(Secret::new(FAKE_TOKEN));
    let service = service(config, ServiceOptions::default()).await;
    let status = service.core().twitch.status();
    wait_until(
        "the channel's and the bot's ids are known",
        Duration::from_secs(5),
        || status.room_id(channel).is_some() && status.bot_user_id().is_some(),
    )
    .await;
    let room_id = status.room_id(channel).expect("room id");
    let bot_id = status.bot_user_id().expect("bot id");

    sim.inject_raw(&chat_line(
        channel,
        "m-1",
        "scammer",
        "4242",
        "get FREE bitcoin here",
    ))
    .await;
    sim.inject_raw(&chat_line(
        channel,
        "m-2",
        "seller",
        "5151",
        "buy cheap followers now",
    ))
    .await;
    sim.inject_raw(&chat_line(
        channel,
        "m-3",
        "linker",
        "6161",
        "look at example.com/x",
    ))
    .await;
    sim.inject_raw(&chat_line(
        channel,
        "m-4",
        "friend",
        "7171",
        "see twitch.tv/somebody",
    ))
    .await;
    wait_until("three Helix calls arrived", Duration::from_secs(10), || {
        helix.requests().len() >= 3
    })
    .await;
    let requests = helix.requests();
    assert!(
        helix.rejected().is_empty(),
        "the fake refused: {:?}",
        helix.rejected()
    );
    for request in &requests {
        assert_eq!(request.query.get("broadcaster_id"), Some(&room_id));
        assert_eq!(request.query.get("moderator_id"), Some(&bot_id));
        assert_eq!(request.client_id.as_deref(), Some(FAKE_CLIENT_ID));
        assert_eq!(
            request.authorization.as_deref(),
            Some(format!("Bearer {FAKE_TOKEN}").as_str())
        );
        assert!((200..300).contains(&request.status), "{request:?}");
    }
    let timeout = requests
        .iter()
        .find(|r| {
            r.body
                .as_ref()
                .is_some_and(|b| b["data"]["user_id"] == "4242")
        })
        .expect("a call for the scammer");
    assert_eq!(timeout.method, "POST");
    assert!(timeout.path.ends_with("/moderation/bans"));
    assert_eq!(
        timeout.body.as_ref().map(|b| b["data"]["duration"].clone()),
        Some(serde_json::json!(600))
    );
    let ban = requests
        .iter()
        .find(|r| {
            r.body
                .as_ref()
                .is_some_and(|b| b["data"]["user_id"] == "5151")
        })
        .expect("a call for the seller");
    assert!(
        ban.body
            .as_ref()
            .is_some_and(|b| b["data"].get("duration").is_none()),
        "a ban has no duration"
    );
    let delete = requests
        .iter()
        .find(|r| r.method == "DELETE")
        .expect("a delete");
    assert!(delete.path.ends_with("/moderation/chat"));
    assert_eq!(
        delete.query.get("message_id").map(String::as_str),
        Some("m-3")
    );
    assert_eq!(
        requests.len(),
        3,
        "the allowed link was left alone: {requests:?}"
    );
    wait_until(
        "the filter's message was posted",
        Duration::from_secs(5),
        || sim.received().iter().any(|m| m.text.contains("no scams")),
    )
    .await;

    let moderation = service.core().moderation.clone().expect("helix configured");
    wait_until(
        "the moderation log has all three",
        Duration::from_secs(5),
        || moderation.log().len() >= 3,
    )
    .await;
    let log = moderation.log();
    assert!(log.iter().all(|e| e.outcome == "ok"), "{log:?}");
    assert!(log
        .iter()
        .any(|e| e.action == "timeout" && e.rule == "no-scam" && e.duration_s == Some(600)));
    service.shutdown().await;
    let file = std::fs::read_to_string(&log_path).expect("moderation log file");
    assert_eq!(file.lines().count(), 3, "{file}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderation_from_the_last_messages_still_goes_out_at_shutdown() {
    let helix = FakeHelix::start();
    helix.set_delay(Duration::from_millis(50));
    let sim = sim(1, |_| {}).await;
    let channels = sim_channels(1);
    let channel = &channels[0];
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join(format!("{channel}.toml")), RULES).expect("rules");
    let mut config = config_for(sim.local_addr(), &channels);
    config.engine.rules_dir = dir.path().display().to_string();
    config.helix.base_url = helix.base_url();
    config.helix.client_id = FAKE_CLIENT_ID.to_string();
    config.helix.max_in_flight = 1;
    config.secrets.helix_token = Some(Secret::new(FAKE_TOKEN));
    let service = service(config, ServiceOptions::default()).await;
    let status = service.core().twitch.status();
    wait_until("ids known", Duration::from_secs(5), || {
        status.room_id(channel).is_some() && status.bot_user_id().is_some()
    })
    .await;
    for i in 0..5 {
        let user_id = format!("{}", 4000 + i);
        let line = chat_line(
            channel,
            &format!("s-{i}"),
            "scammer",
            &user_id,
            "free bitcoin",
        );
        sim.inject_raw(&line).await;
    }
    wait_until(
        "the five spam messages were handled",
        Duration::from_secs(5),
        || common::processed(&service, channel) == 5,
    )
    .await;
    let moderation = service.core().moderation.clone().expect("helix");
    service.shutdown().await;
    let log = moderation.log();
    assert_eq!(log.len(), 5, "{log:?}");
    assert!(log.iter().all(|e| e.outcome == "ok"), "{log:?}");
    assert_eq!(helix.requests().len(), 5);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_helix_moderation_is_counted_not_lost() {
    let sim = sim(1, |_| {}).await;
    let channels = sim_channels(1);
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join(format!("{}.toml", channels[0])), RULES).expect("rules");
    let mut config = config_for(sim.local_addr(), &channels);
    config.engine.rules_dir = dir.path().display().to_string();
    let service = service(config, ServiceOptions::default()).await;
    sim.inject_raw(&chat_line(
        &channels[0],
        "m-1",
        "scammer",
        "4242",
        "free bitcoin",
    ))
    .await;
    let metrics = &service.core().metrics;
    wait_until(
        "the timeout is counted as not configured",
        Duration::from_secs(5),
        || {
            metric_value(
                &metrics.render(),
                "firehose_moderation_not_configured_total{action=\"timeout\"}",
            ) == 1.0
        },
    )
    .await;
    service.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_status_from_helix_drives_uptime_and_online_only_timers() {
    let helix = FakeHelix::start();
    let sim = sim(1, |_| {}).await;
    let channels = sim_channels(1);
    let channel = &channels[0];
    let dir = tempfile::tempdir().expect("dir");
    let rules = r#"
[[commands]]
name = "!uptime"
response = "Live for $(uptime)."
global_cooldown_s = 0

[[timers]]
name = "live-only"
message = "We are live, say hi"
interval_s = 1
online_only = true
"#;
    std::fs::write(dir.path().join(format!("{channel}.toml")), rules).expect("rules");
    let two_hours_ago = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
        - 2 * 3_600_000
        - 5 * 60_000;
    // Helix reports whole seconds.
    let two_hours_ago = two_hours_ago / 1000 * 1000;
    helix.set_live(channel, Some(two_hours_ago));
    let mut config = config_for(sim.local_addr(), &channels);
    config.engine.rules_dir = dir.path().display().to_string();
    config.engine.tick_interval_ms = 100;
    config.helix.base_url = helix.base_url();
    config.helix.client_id = FAKE_CLIENT_ID.to_string();
    config.helix.stream_poll_interval_ms = 1_000;
    config.secrets.helix_token = Some(Secret::new(FAKE_TOKEN));
    let service = service(config, ServiceOptions::default()).await;
    let shared = common::channel(&service, channel);
    wait_until(
        "the stream is known to be live",
        Duration::from_secs(5),
        || shared.stream.live_since() == Some(two_hours_ago),
    )
    .await;
    sim.send_privmsg(channel, "viewer", "!uptime")
        .await
        .expect("joined");
    wait_until(
        "uptime answers from Helix's started_at",
        Duration::from_secs(5),
        || sim.received().iter().any(|m| m.text == "Live for 2h 05m."),
    )
    .await;
    wait_until(
        "the online-only timer fires while live",
        Duration::from_secs(5),
        || {
            sim.received()
                .iter()
                .any(|m| m.text.contains("We are live"))
        },
    )
    .await;
    helix.set_live(channel, None);
    wait_until(
        "the stream is known to be offline",
        Duration::from_secs(5),
        || shared.stream.live_since().is_none(),
    )
    .await;
    sim.send_privmsg(channel, "viewer", "!uptime")
        .await
        .expect("joined");
    wait_until("uptime says offline", Duration::from_secs(5), || {
        sim.received()
            .iter()
            .any(|m| m.text.starts_with("Live for offline"))
    })
    .await;
    assert!(helix.rejected().is_empty(), "{:?}", helix.rejected());
    service.shutdown().await;
    sim.shutdown().await;
}
