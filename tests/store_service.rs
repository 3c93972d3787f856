//! The state store inside the service: counters, command uses, chat-edited commands and
//! warnings survive a process restart (embedded file and CQL database alike), a channel
//! actor that crashes gets back what the writer still held, and the store's metrics show.

mod common;

use std::time::Duration;

use firehose::app::ServiceOptions;
use firehose::cli::Server;
use firehose::config::StoreConfig;
use firehose_sim::SimHandle;

use common::*;

const RULES: &str = r#"
[[commands]]
name = "!death"
response = "deaths: $(count.increment deaths)"
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

async fn say(sim: &SimHandle, channel: &str, user: &str, text: &str) {
    sim.send_privmsg(channel, user, text).await.expect("joined");
}

async fn start(
    sim: &SimHandle,
    channel: &str,
    rules_dir: &std::path::Path,
    store: &StoreConfig,
) -> Server {
    let mut config = config_for(sim.local_addr(), &[channel.to_string()]);
    config.engine.rules_dir = rules_dir.display().to_string();
    config.store = store.clone();
    config.store.flush_interval_ms = 100;
    service(config, ServiceOptions::default()).await
}

/// Two runs of the service on one store; the second starts where the first stopped.
async fn state_survives_a_restart(store: StoreConfig) {
    let sim = sim(1, |_| {}).await;
    let channel = sim_channels(1).remove(0);
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join(format!("{channel}.toml")), RULES).expect("rules");

    let first = start(&sim, &channel, dir.path(), &store).await;
    say(&sim, &channel, "viewer", "!death").await;
    say(&sim, &channel, "viewer", "!death").await;
    wait_until("two deaths", Duration::from_secs(10), || {
        said(&sim, &channel, "deaths: 2")
    })
    .await;
    // A first offence: a warning (delete), remembered for 10 minutes.
    say(&sim, &channel, "shouter", "THIS IS ALL CAPS SHOUTING").await;
    assert_eq!(
        sim.inject_raw(&moderator_line(
            &channel,
            "!addcom !hello Hello there, $(user)!"
        ))
        .await,
        1
    );
    wait_until("all four handled", Duration::from_secs(10), || {
        processed(&first, &channel) == 4
    })
    .await;
    let first_processed = processed(&first, &channel);
    let report = first.shutdown().await;
    assert_eq!(report.store_unwritten, 0, "SIGTERM writes everything");

    let second = start(&sim, &channel, dir.path(), &store).await;
    say(&sim, &channel, "viewer", "!death").await;
    wait_until("the count went on", Duration::from_secs(10), || {
        said(&sim, &channel, "deaths: 3")
    })
    .await;
    say(&sim, &channel, "viewer", "!hello").await;
    wait_until(
        "the chat-added command came back",
        Duration::from_secs(10),
        || said(&sim, &channel, "Hello there,"),
    )
    .await;
    // A second offence within the warning's life: the full action this time.
    say(&sim, &channel, "shouter", "STILL SHOUTING IN ALL CAPS").await;
    let store_handle = second.core().store.clone();
    let id = format!("twitch:{channel}");
    wait_until_async(
        "the timeout is in the moderation log",
        Duration::from_secs(10),
        || {
            let store_handle = store_handle.clone();
            let id = id.clone();
            async move {
                let _ = store_handle.flush().await;
                let log = store_handle
                    .store()
                    .moderation_log(&id, 10)
                    .await
                    .expect("log");
                log.iter()
                    .any(|e| e.action == "timeout" && e.rule == "caps")
                    && log.iter().any(|e| e.action == "delete" && e.rule == "caps")
            }
        },
    )
    .await;
    wait_until("all handled", Duration::from_secs(10), || {
        processed(&second, &channel) == 3
    })
    .await;
    let metrics = reqwest::get(format!("http://{}/metrics", second.http_addr()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metric_value(&metrics, "firehose_store_rows_written_total") > 0.0);
    let total = first_processed + processed(&second, &channel);
    let report = second.shutdown().await;
    assert_eq!(report.store_unwritten, 0);

    let stored = store_handle.store().load_channel(&id).await.expect("load");
    assert_eq!(
        stored.counters["messages"], total as i64,
        "every message counted once"
    );
    assert_eq!(stored.counters["count:deaths"], 3);
    assert_eq!(stored.counters["uses:!death"], 3);
    assert!(stored.warnings.iter().any(|w| w.filter == "caps"));
    let rules = stored.channel_rules().expect("valid").expect("stored");
    assert!(rules.commands.iter().any(|c| c.name == "!hello"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_a_restart_embedded() {
    let dir = tempfile::tempdir().expect("dir");
    state_survives_a_restart(embedded_store_config(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_a_restart_scylla() {
    state_survives_a_restart(scylla_store_config("restart")).await;
}

/// A poison message kills the actor before the writer flushed anything: the restarted actor
/// starts from the writer's pending changes, so the count goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_actor_gets_back_what_the_writer_held() {
    let sim = sim(1, |_| {}).await;
    let channel = sim_channels(1).remove(0);
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join(format!("{channel}.toml")), RULES).expect("rules");
    let mut config = config_for(sim.local_addr(), std::slice::from_ref(&channel));
    config.engine.rules_dir = dir.path().display().to_string();
    // Nothing reaches the database in this test.
    config.store.flush_interval_ms = 3_600_000;
    config.store.user_stats_flush_interval_ms = 3_600_000;
    let service = service(config, options_with(FaultyEngine::default(), None)).await;
    say(&sim, &channel, "viewer", "!death").await;
    say(&sim, &channel, "viewer", "!death").await;
    wait_until("two deaths", Duration::from_secs(10), || {
        said(&sim, &channel, "deaths: 2")
    })
    .await;
    say(&sim, &channel, "viewer", "POISON").await;
    wait_until("the actor restarted", Duration::from_secs(10), || {
        common::channel(&service, &channel)
            .counters
            .restarts
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    })
    .await;
    say(&sim, &channel, "viewer", "!death").await;
    wait_until(
        "the count went on after the restart",
        Duration::from_secs(10),
        || said(&sim, &channel, "deaths: 3"),
    )
    .await;
    let stored = service
        .core()
        .store
        .store()
        .load_channel(&format!("twitch:{channel}"))
        .await
        .expect("load");
    assert!(
        stored.counters.is_empty(),
        "it came from the writer, not the database"
    );
    service.shutdown().await;
}

/// A channel that has not chatted since the service started is idle (no actor), and its
/// rules edited at run time are in the store, not in the rules book: an admin reading or
/// editing them gets what the channel runs (the read starts the actor, which loads them),
/// never the rules file's version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_reads_and_edits_of_an_idle_channel_see_its_stored_rules() {
    let sim = sim(1, |_| {}).await;
    let channel = sim_channels(1).remove(0);
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join(format!("{channel}.toml")), RULES).expect("rules");
    let state = tempfile::tempdir().expect("state dir");
    let store = embedded_store_config(state.path());
    let http = reqwest::Client::new();
    let item = |service: &Server, name: &str| {
        format!(
            "http://{}/v1/channels/{channel}/commands/{name}",
            service.http_addr()
        )
    };

    let first = start(&sim, &channel, dir.path(), &store).await;
    let put = http
        .put(item(&first, "!hello"))
        .json(&serde_json::json!({"response": "hi there"}))
        .send_as_admin()
        .await;
    assert_eq!(put.status(), 201, "{:?}", put.text().await);
    first.shutdown().await;

    let second = start(&sim, &channel, dir.path(), &store).await;
    let shared = common::channel(&second, &channel);
    assert_eq!(shared.status(), firehose::channel::ChannelStatus::Idle);
    let got = http.get(item(&second, "!hello")).send_as_admin().await;
    assert_eq!(got.status(), 200, "the stored command is shown");
    let got: serde_json::Value = got.json().await.expect("json");
    assert_eq!(got["response"], "hi there");
    assert_eq!(shared.status(), firehose::channel::ChannelStatus::Running);
    // An edit on the second run keeps the stored command it did not touch.
    let put = http
        .put(item(&second, "!bye"))
        .json(&serde_json::json!({"response": "bye"}))
        .send_as_admin()
        .await;
    assert_eq!(put.status(), 201);
    let rules: serde_json::Value = http
        .get(format!(
            "http://{}/v1/channels/{channel}/rules",
            second.http_addr()
        ))
        .send_as_admin()
        .await
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = rules["commands"]
        .as_array()
        .expect("commands")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for name in ["!death", "!hello", "!bye"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    second.shutdown().await;
    sim.shutdown().await;
}
