//! Replies first: where the bot is not a moderator Twitch lets it post one message a second in
//! a channel, so a keyword or timer flood queues up; a user's command arriving behind it is
//! answered next, not after everything queued (`twitch::outbound`).

mod common;

use std::time::Duration;

use common::*;
use firehose::app::ServiceOptions;

const RULES: &str = r#"
[[keywords]]
name = "greeting"
regex = "hello"
response = "automatic hello"
# Every hello answered (no default cooldown): the flood this test needs.
global_cooldown_s = 0
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_is_answered_before_the_automatic_messages_queued_ahead_of_it() {
    let sim = sim(1, |c| c.limits.bot_is_mod = false).await;
    let channels = sim_channels(1);
    let channel = &channels[0];
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join(format!("{channel}.toml")), RULES).expect("rules");
    let mut config = config_for(sim.local_addr(), &channels);
    config.engine.rules_dir = dir.path().display().to_string();
    // Not a verified bot and not a moderator: one message a second in the channel.
    config.twitch.verified_bot = false;
    let service = service(config, ServiceOptions::default()).await;
    let automatic = || {
        sim.received()
            .iter()
            .filter(|m| m.channel == *channel && m.text.starts_with("automatic hello"))
            .count()
    };
    for n in 0..8 {
        sim.send_privmsg(channel, "viewer", &format!("hello there {n}"))
            .await
            .expect("sent");
    }
    wait_until(
        "the first automatic answer",
        Duration::from_secs(10),
        || automatic() >= 1,
    )
    .await;
    let id = ping(&sim, channel, "asker").await;
    wait_until("the command's answer", Duration::from_secs(20), || {
        sim.received()
            .iter()
            .any(|m| m.reply_parent.as_deref() == Some(id.as_str()))
    })
    .await;
    let received = sim.received();
    let at = received
        .iter()
        .position(|m| m.reply_parent.as_deref() == Some(id.as_str()))
        .expect("the reply");
    let before = received[..at]
        .iter()
        .filter(|m| m.text.starts_with("automatic hello"))
        .count();
    assert!(
        before <= 3,
        "the reply waited behind {before} automatic messages (8 were queued)"
    );
    wait_until(
        "the automatic messages still go out",
        Duration::from_secs(20),
        || automatic() == 8,
    )
    .await;
    drop(service);
}
