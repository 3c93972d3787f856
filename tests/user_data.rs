//! Users' data through the running service: `DELETE /v1/users/{platform}/{user_id}` removes
//! one person's stats, warnings and moderation log entries from the store (embedded file and CQL
//! database alike) and their warnings and cooldowns from the running channel, answers with what
//! went, and leaves everyone else's data alone; malformed requests get clear 400s.

mod common;

use std::time::Duration;

use firehose::app::ServiceOptions;
use firehose::cli::Server;
use firehose::config::StoreConfig;
use firehose_sim::content::Chatter;
use firehose_sim::SimHandle;

use common::*;

const RULES: &str = r#"
[[commands]]
name = "!hug"
response = "hugs for $(user)"
user_cooldown_s = 600
global_cooldown_s = 0

[[filters]]
name = "caps"
kind = "caps"
min_length = 10
max_share = 0.7
action = { timeout = 30 }
warning_first = true
warning_action = "delete"
warning_expiry_s = 600
silent = true
"#;

const SHOUT: &str = "THIS IS ALL CAPS SHOUTING";

async fn say(sim: &SimHandle, channel: &str, user: &str, text: &str) {
    sim.send_privmsg(channel, user, text).await.expect("joined");
}

/// Hugs the bot gave `login` (its display name in the answer).
fn hugs_for(sim: &SimHandle, channel: &str, login: &str) -> usize {
    let name = Chatter::for_login(login).display_name;
    sim.received()
        .iter()
        .filter(|m| m.channel == channel && m.text == format!("hugs for {name}"))
        .count()
}

async fn start(
    sim: &SimHandle,
    channel: &str,
    dir: &std::path::Path,
    store: StoreConfig,
) -> Server {
    std::fs::write(dir.join(format!("{channel}.toml")), RULES).expect("rules");
    let mut config = config_for(sim.local_addr(), &[channel.to_string()]);
    config.engine.rules_dir = dir.display().to_string();
    config.store = store;
    config.store.flush_interval_ms = 100;
    service(config, ServiceOptions::default()).await
}

async fn flush(http: &reqwest::Client, service: &Server) {
    let url = format!("http://{}/v1/store/flush", service.http_addr());
    let flushed = http.post(&url).send_as_admin().await;
    assert_eq!(flushed.status(), 200);
}

/// (action, user id) of the channel's moderation log, sorted (entries of the same millisecond
/// have no order).
async fn log(service: &Server, channel: &str) -> Vec<(String, String)> {
    let entries = service
        .core()
        .store
        .store()
        .moderation_log(&format!("twitch:{channel}"), 100)
        .await
        .expect("log");
    let mut entries: Vec<_> = entries.into_iter().map(|e| (e.action, e.user_id)).collect();
    entries.sort();
    entries
}

fn sorted(mut entries: Vec<(&str, &str)>) -> Vec<(String, String)> {
    entries.sort();
    entries
        .into_iter()
        .map(|(a, u)| (a.to_string(), u.to_string()))
        .collect()
}

async fn a_users_data_is_deleted_everywhere_and_only_theirs(store: StoreConfig) {
    let sim = sim(1, |_| {}).await;
    let channel = sim_channels(1).remove(0);
    let dir = tempfile::tempdir().expect("dir");
    let service = start(&sim, &channel, dir.path(), store).await;
    let http = reqwest::Client::new();
    let (shouter, bystander) = (
        Chatter::for_login("shouter").user_id,
        Chatter::for_login("bystander").user_id,
    );
    // Both: a hug (a per-user cooldown), a first shout (a warning, a log entry), chat stats.
    for user in ["shouter", "bystander"] {
        say(&sim, &channel, user, "!hug").await;
        say(&sim, &channel, user, SHOUT).await;
    }
    wait_until("four handled", Duration::from_secs(10), || {
        processed(&service, &channel) == 4
    })
    .await;
    wait_until("two hugs", Duration::from_secs(10), || {
        hugs_for(&sim, &channel, "shouter") == 1 && hugs_for(&sim, &channel, "bystander") == 1
    })
    .await;
    flush(&http, &service).await;
    let id = format!("twitch:{channel}");
    let store = service.core().store.store().clone();
    let both = vec![shouter.clone(), bystander.clone()];
    assert_eq!(store.load_users(&id, &both).await.expect("users").len(), 2);
    assert_eq!(
        store.load_channel(&id).await.expect("load").warnings.len(),
        2
    );
    assert_eq!(
        log(&service, &channel).await,
        sorted(vec![("delete", &shouter), ("delete", &bystander)])
    );

    let url = format!("http://{}/v1/users/twitch/{shouter}", service.http_addr());
    let answer = http.delete(&url).send_as_admin().await;
    assert_eq!(answer.status(), 200);
    let report: serde_json::Value = answer.json().await.expect("json");
    assert_eq!(report["platform"], "twitch", "{report}");
    assert_eq!(report["user_id"], shouter.as_str(), "{report}");
    assert_eq!(report["stored"]["user_stats"], 1, "{report}");
    assert_eq!(report["stored"]["warnings"], 1, "{report}");
    assert_eq!(report["stored"]["moderation_log"], 1, "{report}");
    assert_eq!(report["in_memory"]["warnings"], 1, "{report}");
    assert_eq!(report["in_memory"]["cooldowns"], 1, "{report}");
    assert_eq!(report["in_memory"]["scrollback"], 1, "{report}");
    assert_eq!(report["channels"], serde_json::json!([id]), "{report}");
    assert_eq!(
        report["channels_unreachable"],
        serde_json::json!([]),
        "{report}"
    );

    // The store holds the bystander's data only.
    let users = store.load_users(&id, &both).await.expect("users");
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].user_id, bystander);
    let warnings = store.load_channel(&id).await.expect("load").warnings;
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].user_id, bystander);
    assert_eq!(
        log(&service, &channel).await,
        sorted(vec![("delete", &bystander)])
    );

    // The running channel forgot the shouter too: a new shout is a first offence again (a
    // warning, not a timeout) and the hug's cooldown is gone; the bystander's stay.
    for user in ["shouter", "bystander"] {
        say(&sim, &channel, user, SHOUT).await;
        say(&sim, &channel, user, "!hug").await;
    }
    wait_until("eight handled", Duration::from_secs(10), || {
        processed(&service, &channel) == 8
    })
    .await;
    wait_until(
        "the shouter is hugged again",
        Duration::from_secs(10),
        || hugs_for(&sim, &channel, "shouter") == 2,
    )
    .await;
    assert_eq!(
        hugs_for(&sim, &channel, "bystander"),
        1,
        "still cooling down"
    );
    flush(&http, &service).await;
    assert_eq!(
        log(&service, &channel).await,
        sorted(vec![
            ("delete", &bystander),
            ("delete", &shouter),
            ("timeout", &bystander),
        ])
    );
    let users = store.load_users(&id, &both).await.expect("users");
    let shouter_row = users
        .iter()
        .find(|u| u.user_id == shouter)
        .expect("a new row");
    assert_eq!(shouter_row.messages, 2, "counted from the delete on");
    let bystander_row = users.iter().find(|u| u.user_id == bystander).expect("kept");
    assert_eq!(bystander_row.messages, 4);

    // Asking again removes only what came since (the new row, warning and log entry).
    let again: serde_json::Value = http
        .delete(&url)
        .send_as_admin()
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(again["stored"]["user_stats"], 1, "{again}");
    assert_eq!(again["stored"]["moderation_log"], 1, "{again}");
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_user_embedded() {
    let dir = tempfile::tempdir().expect("dir");
    a_users_data_is_deleted_everywhere_and_only_theirs(embedded_store_config(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_user_scylla() {
    a_users_data_is_deleted_everywhere_and_only_theirs(scylla_store_config("user_data")).await;
}

#[tokio::test]
async fn malformed_delete_requests_get_clear_errors() {
    let sim = sim(1, |_| {}).await;
    let channel = sim_channels(1).remove(0);
    let dir = tempfile::tempdir().expect("dir");
    let service = start(&sim, &channel, dir.path(), StoreConfig::default()).await;
    let http = reqwest::Client::new();
    let base = format!("http://{}/v1/users", service.http_addr());
    let long = "9".repeat(65);
    let cases = [
        ("youtube/123", "unknown platform"),
        ("Twitch/123", "unknown platform"),
        ("twitch/12%0A3", "control characters"),
        ("twitch/12%1F3", "control characters"),
        ("twitch/12%203", "white space"),
        (&format!("twitch/{long}") as &str, "longer than 64"),
    ];
    for (path, needle) in cases {
        let answer = http.delete(format!("{base}/{path}")).send_as_admin().await;
        assert_eq!(answer.status(), 400, "{path}");
        let body: serde_json::Value = answer.json().await.expect("json");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(needle), "{path}: {error}");
    }
    let no_token = http
        .delete(format!("{base}/twitch/123"))
        .send()
        .await
        .expect("sent");
    assert_eq!(no_token.status(), 401);
    // A well-formed request for someone the service never saw: 200, nothing removed.
    let nobody: serde_json::Value = http
        .delete(format!("{base}/discord/123456789012345678"))
        .send_as_admin()
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(nobody["platform"], "discord");
    assert_eq!(nobody["stored"]["user_stats"], 0, "{nobody}");
    assert_eq!(nobody["channels"], serde_json::json!([]), "{nobody}");
    service.shutdown().await;
}
