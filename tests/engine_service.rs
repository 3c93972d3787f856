//! The engine inside the service: rules from `engine.rules_dir`, answered commands, timers
//! driven by ticks, moderators' chat edits, and the admin API for rules.

mod common;

use std::time::Duration;

use common::*;
use firehose::app::ServiceOptions;
use firehose::channel::ChannelKey;

const RULES: &str = r#"
[[commands]]
name = "!discord"
response = "Join the Discord, $(user): https://discord.gg/example"

[[timers]]
name = "hydrate"
message = "Remember to drink water"
interval_s = 1
min_lines = 0
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_files_drive_commands_timers_and_chat_edits() {
    let sim = sim(2, |_| {}).await;
    let channels = sim_channels(2);
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join(format!("{}.toml", channels[0])), RULES).expect("write rules");
    let mut config = config_for(sim.local_addr(), &channels);
    config.engine.rules_dir = dir.path().display().to_string();
    config.engine.tick_interval_ms = 100;
    let service = service(config, ServiceOptions::default()).await;

    sim.send_privmsg(&channels[0], "viewer", "!discord")
        .await
        .expect("joined");
    wait_until(
        "the custom command is answered",
        Duration::from_secs(5),
        || said(&sim, &channels[0], "Join the Discord"),
    )
    .await;
    wait_until("the timer fires", Duration::from_secs(5), || {
        said(&sim, &channels[0], "Remember to drink water")
    })
    .await;
    // The other channel has no rules file: no custom command, no timer.
    sim.send_privmsg(&channels[1], "viewer", "!discord")
        .await
        .expect("joined");
    sim.send_privmsg(&channels[1], "viewer", "!ping")
        .await
        .expect("joined");
    wait_until(
        "the built-in still answers there",
        Duration::from_secs(5),
        || said(&sim, &channels[1], "pong"),
    )
    .await;
    assert!(!said(&sim, &channels[1], "Join the Discord"));
    assert!(!said(&sim, &channels[1], "drink water"));

    // A moderator adds a command from chat; it works, and the admin API sees it. An edit made
    // from the rules as they were before is refused as a conflict, not applied over it.
    let stale = service.core().rules.get(&ChannelKey::twitch(&channels[0]));
    assert_eq!(
        sim.inject_raw(&moderator_line(
            &channels[0],
            "!addcom !hello Hello there, $(user)!"
        ))
        .await,
        1
    );
    wait_until(
        "the rules book has the new command",
        Duration::from_secs(5),
        || {
            service
                .core()
                .rules
                .get(&ChannelKey::twitch(&channels[0]))
                .commands
                .iter()
                .any(|c| c.name == "!hello")
        },
    )
    .await;
    sim.send_privmsg(&channels[0], "viewer", "!hello")
        .await
        .expect("joined");
    wait_until(
        "the chat-added command answers",
        Duration::from_secs(5),
        || said(&sim, &channels[0], "Hello there,"),
    )
    .await;
    let url = format!(
        "http://{}/v1/channels/{}/commands/!hello",
        service.http_addr(),
        channels[0]
    );
    let item: serde_json::Value = reqwest::Client::new()
        .get(&url)
        .send_as_admin()
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(item["response"], "Hello there, $(user)!");
    let outcome = service
        .core()
        .set_rules(
            &ChannelKey::twitch(&channels[0]),
            stale,
            firehose::engine::ChannelRules::default(),
        )
        .await;
    assert!(
        matches!(
            outcome,
            Err(firehose::app::SetRulesError::Refused(
                firehose::channel::actor::RulesRefused::Conflict
            ))
        ),
        "{outcome:?}"
    );
    assert!(service
        .core()
        .rules
        .get(&ChannelKey::twitch(&channels[0]))
        .commands
        .iter()
        .any(|c| c.name == "!hello"));
    service.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_edits_rules_with_clear_errors() {
    let sim = sim(1, |_| {}).await;
    let channels = sim_channels(1);
    let channel = &channels[0];
    let service = service(
        config_for(sim.local_addr(), &channels),
        ServiceOptions::default(),
    )
    .await;
    let http = reqwest::Client::new();
    let base = format!("http://{}/v1/channels/{channel}", service.http_addr());

    let unauthorized = http
        .put(format!("{base}/commands/!so"))
        .json(&serde_json::json!({"response": "x"}))
        .send()
        .await
        .expect("put");
    assert_eq!(unauthorized.status(), 401);

    let created = http
        .put(format!("{base}/commands/!so"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"response": "Go follow $(touser)!"}))
        .send()
        .await
        .expect("put");
    assert_eq!(created.status(), 201);
    sim.send_privmsg(channel, "viewer", "!so @somebody")
        .await
        .expect("joined");
    wait_until(
        "the API-added command answers",
        Duration::from_secs(5),
        || said(&sim, channel, "Go follow somebody!"),
    )
    .await;

    let replaced = http
        .put(format!("{base}/commands/!so"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"name": "!so", "response": "Shout-out to $(touser)"}))
        .send()
        .await
        .expect("put");
    assert_eq!(replaced.status(), 200);

    let bad_template = http
        .put(format!("{base}/commands/!broken"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"response": "oops $(user"}))
        .send()
        .await
        .expect("put");
    assert_eq!(bad_template.status(), 400);
    let error = bad_template
        .json::<serde_json::Value>()
        .await
        .expect("json")["error"]
        .to_string();
    assert!(
        error.contains("!broken"),
        "the error names the command: {error}"
    );

    let unknown_field = http
        .put(format!("{base}/keywords/hi"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"respnse": "typo"}))
        .send()
        .await
        .expect("put");
    assert_eq!(unknown_field.status(), 400);
    assert!(unknown_field
        .text()
        .await
        .expect("text")
        .contains("respnse"));

    let not_json = http
        .put(format!("{base}/commands/!x"))
        .bearer_auth(ADMIN_TOKEN)
        .body("{nope")
        .send()
        .await
        .expect("put");
    assert_eq!(not_json.status(), 400);
    let mismatch = http
        .put(format!("{base}/commands/!x"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"name": "!y", "response": "r"}))
        .send()
        .await
        .expect("put");
    assert_eq!(mismatch.status(), 400);
    let unknown_kind = http.get(format!("{base}/widgets/x")).send_as_admin().await;
    assert_eq!(unknown_kind.status(), 404);

    let rules: serde_json::Value = http
        .get(format!("{base}/rules"))
        .send_as_admin()
        .await
        .json()
        .await
        .expect("json");
    let commands = rules["commands"].as_array().expect("commands");
    assert_eq!(commands.len(), 1, "only the valid command went in: {rules}");
    assert_eq!(commands[0]["response"], "Shout-out to $(touser)");

    let deleted = http
        .delete(format!("{base}/commands/!so"))
        .send_as_admin()
        .await;
    assert_eq!(deleted.status(), 200);
    let gone = http
        .get(format!("{base}/commands/!so"))
        .send_as_admin()
        .await;
    assert_eq!(gone.status(), 404);
    let again = http
        .delete(format!("{base}/commands/!so"))
        .send_as_admin()
        .await;
    assert_eq!(again.status(), 404);
    service.shutdown().await;
    sim.shutdown().await;
}

const HOSTILE_RULES: &str = r#"
[[commands]]
name = "!cat"
response = "$(1)$(2)"

[[filters]]
name = "banned"
kind = "banned_phrases"
phrases = [{ pattern = "badword" }]
"#;

/// Issue 10 item 1 end to end: a viewer's `!echo` gets nothing, a moderator's is posted without
/// its command lead, and chat pieces that join into a banned phrase are withheld and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_cannot_make_the_bot_post_a_command_or_a_banned_phrase() {
    let sim = sim(1, |_| {}).await;
    let channels = sim_channels(1);
    let channel = &channels[0];
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join(format!("{channel}.toml")), HOSTILE_RULES).expect("rules");
    let mut config = config_for(sim.local_addr(), &channels);
    config.engine.rules_dir = dir.path().display().to_string();
    let service = service(config, ServiceOptions::default()).await;

    // In one channel events are handled and sent in order: once the pong is out, the
    // viewer's echo before it has been handled.
    for text in ["!echo !addcom !pwn owned", "!ping"] {
        sim.send_privmsg(channel, "viewer", text)
            .await
            .expect("joined");
    }
    wait_until("the ping is answered", Duration::from_secs(5), || {
        said(&sim, channel, "pong")
    })
    .await;
    assert!(!said(&sim, channel, "addcom"), "a viewer's echo is ignored");

    sim.inject_raw(&moderator_line(channel, "!echo \u{200B}!addcom !pwn owned"))
        .await;
    wait_until(
        "the moderator's echo is posted",
        Duration::from_secs(5),
        || said(&sim, channel, "addcom !pwn owned"),
    )
    .await;
    for message in sim.received() {
        let lead = message
            .text
            .trim_start_matches(|c: char| c.is_whitespace() || c == '\u{200B}');
        assert!(!lead.starts_with(['!', '/', '.']), "{:?}", message.text);
    }

    let withheld = || {
        service
            .core()
            .metrics
            .outbound_dropped
            .get_or_create(&vec![("reason", "withheld".to_string())])
            .get()
    };
    sim.send_privmsg(channel, "viewer", "!cat ba dword")
        .await
        .expect("joined");
    wait_until(
        "the joined banned phrase is withheld",
        Duration::from_secs(5),
        || withheld() >= 1,
    )
    .await;
    assert!(!said(&sim, channel, "badword"));
    service.shutdown().await;
    sim.shutdown().await;
}

/// `supervisor.lazy_start` (the default): a channel without timers gets its actor on its first
/// message, and the messages that arrive while it starts are handled once and in order; a
/// channel whose rules have timers starts at the join (its timers tick without chat), and so
/// does an idle one an edit gives timers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_channels_start_on_their_first_message_and_channels_with_timers_at_once() {
    let sim = sim(3, |_| {}).await;
    let channels = sim_channels(3);
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join(format!("{}.toml", channels[0])), RULES).expect("write rules");
    let mut config = config_for(sim.local_addr(), &channels);
    config.engine.rules_dir = dir.path().display().to_string();
    config.engine.tick_interval_ms = 100;
    let tap = std::sync::Arc::new(RecordingTap::default());
    let service = service(
        config,
        options_with(firehose::engine::Engine, Some(std::sync::Arc::clone(&tap))),
    )
    .await;
    use firehose::channel::ChannelStatus;
    wait_until(
        "the timer fires in a channel nobody wrote in",
        Duration::from_secs(5),
        || said(&sim, &channels[0], "Remember to drink water"),
    )
    .await;
    for idle in &channels[1..] {
        let shared = channel(&service, idle);
        assert_eq!(shared.status(), ChannelStatus::Idle, "{idle}");
        assert!(shared.mailbox.actor().is_none(), "{idle} has no actor yet");
    }

    // A burst into an idle channel: the first message starts the actor, the rest wait for it.
    let mut sent = Vec::new();
    for n in 0..30 {
        let text = if n == 29 {
            "!ping".to_string()
        } else {
            format!("line {n}")
        };
        sent.push(
            sim.send_privmsg(&channels[1], "viewer", &text)
                .await
                .expect("joined"),
        );
    }
    wait_until("the burst was handled", Duration::from_secs(10), || {
        processed(&service, &channels[1]) == 30
    })
    .await;
    assert_eq!(tap.ids(&channels[1]), sent, "once each, in order");
    wait_until("the !ping is answered", Duration::from_secs(5), || {
        said(&sim, &channels[1], "pong")
    })
    .await;
    assert_eq!(
        channel(&service, &channels[1]).status(),
        ChannelStatus::Running
    );
    assert_eq!(shed(&service, &channels[1]), 0);
    assert_eq!(
        channel(&service, &channels[2]).status(),
        ChannelStatus::Idle
    );

    // An edit gives the idle channel a timer: it starts without a message.
    let key = ChannelKey::twitch(&channels[2]);
    let base = service.core().rules.get(&key);
    let with_timer: firehose::engine::ChannelRules = toml::from_str(RULES).expect("rules");
    service
        .core()
        .set_rules(&key, base, with_timer)
        .await
        .expect("edit applied");
    wait_until(
        "the edited idle channel's timer fires",
        Duration::from_secs(5),
        || said(&sim, &channels[2], "Remember to drink water"),
    )
    .await;
    assert_eq!(processed(&service, &channels[2]), 0, "no chat was needed");
    service.shutdown().await;
}
