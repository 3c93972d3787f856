//! The raid defence end to end: a wave of spam from first-time chatters in simulated chat makes
//! the service turn Shield Mode on and then followers-only through the checking fake Helix
//! (`PUT /moderation/shield_mode`, `PATCH /chat/settings`), tells chat, writes each decision to
//! the moderation log, and a moderator's `!raidoff` turns both off again.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use firehose::app::ServiceOptions;
use firehose::config::Secret;
use firehose_sim::helix::{FakeHelix, FAKE_CLIENT_ID, FAKE_TOKEN};

const RULES: &str = r#"
[[filters]]
name = "slurs"
kind = "banned_phrases"
action = "delete"
phrases = [{ pattern = "hateword" }]

[defence]
enabled = true
window_s = 10
max_moderation_actions = 3
steps = ["shield_mode", { followers_only = 5 }]
escalate_after_s = 1
calm_s = 600
"#;

fn line(channel: &str, id: &str, user: &str, user_id: &str, moderator: bool, text: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let (badges, m, first) = if moderator {
        ("moderator/1", 1, 0)
    } else {
        ("", 0, 1)
    };
    format!(
        "@badge-info=;badges={badges};color=;display-name={user};emotes=;first-msg={first};flags=;id={id};mod={m};room-id=1;subscriber=0;tmi-sent-ts={now};turbo=0;user-id={user_id};user-type= :{user}!{user}@{user}.tmi.twitch.tv PRIVMSG #{channel} :{text}"
    )
}

/// A service on `rules.len()` simulated channels (channel `i` with `rules[i]`, none when
/// empty) with the checking fake Helix and a moderation log file, once every channel's and
/// the bot's ids are known.
struct Setup {
    helix: FakeHelix,
    sim: firehose_sim::SimHandle,
    channels: Vec<String>,
    log_path: std::path::PathBuf,
    service: firehose::cli::Server,
    _dir: tempfile::TempDir,
}

/// Chat messages the service has handled so far.
fn handled(setup: &Setup) -> u64 {
    let metrics = setup.service.core().metrics.render();
    metric_value(&metrics, "firehose_messages_processed_total").max(0.0) as u64
}

impl Setup {
    async fn start(rules: &[&str], tweak: impl FnOnce(&mut firehose::config::Config)) -> Setup {
        let helix = FakeHelix::start();
        let sim = sim(rules.len(), |_| {}).await;
        let channels = sim_channels(rules.len());
        let dir = tempfile::tempdir().expect("dir");
        for (channel, text) in channels.iter().zip(rules) {
            if !text.is_empty() {
                std::fs::write(dir.path().join(format!("{channel}.toml")), text).expect("rules");
            }
        }
        let log_path = dir.path().join("moderation.jsonl");
        let mut config = config_for(sim.local_addr(), &channels);
        config.engine.rules_dir = dir.path().display().to_string();
        config.helix.base_url = helix.base_url();
        config.helix.client_id = FAKE_CLIENT_ID.to_string();
        config.helix.moderation_log = Some(log_path.clone());
        config.secrets.helix_token = Some(Secret::new(FAKE_TOKEN));
        tweak(&mut config);
        let service = service(config, ServiceOptions::default()).await;
        let status = service.core().twitch.status();
        wait_until(
            "every channel's id is known",
            Duration::from_secs(5),
            || {
                channels.iter().all(|c| status.room_id(c).is_some())
                    && status.bot_user_id().is_some()
            },
        )
        .await;
        Setup {
            helix,
            sim,
            channels,
            log_path,
            service,
            _dir: dir,
        }
    }

    /// Raid accounts `ids` (first-time chatters) post a slur each in channel `i`.
    async fn raid(&self, i: usize, ids: std::ops::Range<usize>) {
        for n in ids {
            let (id, user) = (format!("r{n}"), format!("raider{n}"));
            let text = format!("hateword number {n}");
            let user_id = format!("90{n}");
            let raw = line(&self.channels[i], &id, &user, &user_id, false, &text);
            self.sim.inject_raw(&raw).await;
        }
    }

    fn room(&self, i: usize) -> String {
        self.service
            .core()
            .twitch
            .status()
            .room_id(&self.channels[i])
            .expect("room id")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raid_turns_shield_mode_and_followers_only_on_and_raidoff_turns_them_off() {
    let setup = Setup::start(&[RULES], |_| {}).await;
    let Setup {
        helix,
        sim,
        channels,
        log_path,
        ..
    } = &setup;
    let channel = &channels[0];
    let room_id = setup.room(0);

    setup.raid(0, 0..4).await;
    wait_until("Shield Mode is on", Duration::from_secs(10), || {
        helix.shield_mode(&room_id)
    })
    .await;
    wait_until("chat is told", Duration::from_secs(10), || {
        sim.received()
            .iter()
            .any(|m| m.channel == *channel && m.text.contains("Raid defence: Shield Mode on"))
    })
    .await;
    // The raid goes on past escalate_after_s (1 s): the next step, followers-only for 5 min.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut i = 4;
    while helix.chat_settings(&room_id).get("follower_mode") != Some(&serde_json::json!(true)) {
        assert!(
            std::time::Instant::now() < deadline,
            "followers-only never came"
        );
        setup.raid(0, i..i + 1).await;
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        helix.chat_settings(&room_id).get("follower_mode_duration"),
        Some(&serde_json::json!(5))
    );
    // A viewer's !raidoff does nothing; a moderator's ends it.
    sim.inject_raw(&line(channel, "v1", "viewer", "555", false, "!raidoff"))
        .await;
    // Raid lines 0..i, then the viewer's: all handled before looking.
    let sent = u64::try_from(i + 1).unwrap_or(u64::MAX);
    wait_until(
        "the viewer's !raidoff is handled",
        Duration::from_secs(10),
        || handled(&setup) >= sent,
    )
    .await;
    assert!(helix.shield_mode(&room_id), "a viewer cannot end it");
    sim.inject_raw(&line(channel, "m1", "moddy", "777", true, "!raidoff"))
        .await;
    wait_until("both are off again", Duration::from_secs(10), || {
        !helix.shield_mode(&room_id)
            && helix.chat_settings(&room_id).get("follower_mode") == Some(&serde_json::json!(false))
    })
    .await;
    assert!(
        helix.rejected().is_empty(),
        "the fake refused: {:?}",
        helix.rejected()
    );
    wait_until(
        "the reply to the moderator",
        Duration::from_secs(10),
        || {
            sim.received().iter().any(|m| {
                m.reply_parent.as_deref() == Some("m1") && m.text.contains("Raid defence off")
            })
        },
    )
    .await;
    assert!(
        !sim.received()
            .iter()
            .any(|m| m.reply_parent.as_deref() == Some("v1")),
        "a viewer is not answered"
    );
    // Every decision is in the moderation log with its outcome.
    wait_until(
        "four chat-mode calls logged",
        Duration::from_secs(10),
        || {
            let text = std::fs::read_to_string(log_path).unwrap_or_default();
            text.lines()
                .filter(|l| l.contains("\"rule\":\"defence\"") && l.contains("\"outcome\":\"ok\""))
                .count()
                >= 4
        },
    )
    .await;
    let log = std::fs::read_to_string(log_path).expect("log");
    assert!(
        log.contains("\"action\":\"shield_mode\"") && log.contains("\"action\":\"chat_settings\"")
    );
    drop(setup);
}

/// Cross-channel memory: a filter ban in one channel bans the account at once in a channel
/// that says `cross_channel = "ban"` and times out its first message in one that says
/// `{ timeout = 60 }`, with the source channel in the reason; a channel that asks nothing
/// does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_ban_in_one_channel_reaches_the_channels_that_ask_for_it() {
    let source = "[[filters]]\nname = \"slurs\"\nkind = \"banned_phrases\"\naction = \"ban\"\nphrases = [{ pattern = \"hateword\" }]\n";
    let setup = Setup::start(
        &[
            source,
            "[defence]\ncross_channel = \"ban\"\n",
            "[defence]\ncross_channel = { timeout = 60 }\n",
            "",
        ],
        |_| {},
    )
    .await;
    let Setup {
        helix,
        sim,
        channels,
        service,
        ..
    } = &setup;
    let room = |i: usize| setup.room(i);
    let bans_in = |i: usize| {
        helix
            .requests()
            .into_iter()
            .filter(|r| {
                r.path.ends_with("/moderation/bans")
                    && r.query.get("broadcaster_id") == Some(&room(i))
            })
            .collect::<Vec<_>>()
    };

    sim.inject_raw(&line(
        &channels[0],
        "s1",
        "raider",
        "4242",
        false,
        "hateword",
    ))
    .await;
    wait_until(
        "banned in the source and, at once, in the ban channel",
        Duration::from_secs(10),
        || !bans_in(0).is_empty() && !bans_in(1).is_empty(),
    )
    .await;
    let shared = &bans_in(1)[0];
    let body = shared.body.as_ref().expect("body");
    assert_eq!(body["data"]["user_id"], "4242");
    assert!(body["data"].get("duration").is_none(), "a ban: {body}");
    let reason = body["data"]["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains(&format!("#{}", channels[0])) && reason.contains("slurs"),
        "{reason}"
    );
    assert!(
        bans_in(2).is_empty(),
        "the timeout channel waits for a first message"
    );

    sim.inject_raw(&line(
        &channels[2],
        "c1",
        "raider",
        "4242",
        false,
        "hello there",
    ))
    .await;
    sim.inject_raw(&line(
        &channels[3],
        "d1",
        "raider",
        "4242",
        false,
        "hello there",
    ))
    .await;
    wait_until(
        "the first message in the timeout channel is timed out",
        Duration::from_secs(10),
        || {
            bans_in(2)
                .iter()
                .any(|r| r.body.as_ref().is_some_and(|b| b["data"]["duration"] == 60))
        },
    )
    .await;
    assert!(
        bans_in(3).is_empty(),
        "a channel that asks nothing does nothing"
    );
    assert!(helix.rejected().is_empty(), "{:?}", helix.rejected());
    let metrics = service.core().metrics.render();
    assert_eq!(
        metric_value(&metrics, "firehose_cross_channel_marks_total"),
        1.0
    );
    assert_eq!(
        metric_value(&metrics, "firehose_cross_channel_deliveries_total"),
        2.0
    );
    drop(setup);
}

/// The revert after calm runs on the channel's tick, which a channel without timers gets
/// because its defence is on: Shield Mode goes off again by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shield_mode_goes_off_by_itself_after_calm_in_a_channel_without_timers() {
    let rules = RULES.replace("calm_s = 600", "calm_s = 2");
    let setup = Setup::start(&[&rules], |c| c.engine.tick_interval_ms = 100).await;
    let Setup {
        helix,
        sim,
        channels,
        ..
    } = &setup;
    let channel = &channels[0];
    let room_id = setup.room(0);
    setup.raid(0, 0..4).await;
    wait_until("Shield Mode is on", Duration::from_secs(10), || {
        helix.shield_mode(&room_id)
    })
    .await;
    wait_until(
        "Shield Mode is off after 2 s of calm",
        Duration::from_secs(15),
        || {
            !helix.shield_mode(&room_id)
                && helix
                    .requests()
                    .iter()
                    .filter(|r| r.method == "PUT" && r.path.ends_with("/moderation/shield_mode"))
                    .count()
                    == 2
        },
    )
    .await;
    assert!(sim
        .received()
        .iter()
        .any(|m| m.channel == *channel && m.text.contains("Raid defence ended")));
    drop(setup);
}

/// Planning with the budget: at 20 points a minute a burst of slurs queues minutes of
/// deletes; the Helix worker tells the channel within about a second, the defence
/// (whose only threshold here is `max_backlog_s`) engages Shield Mode, and that call goes
/// ahead of every waiting delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moderation_backlog_behind_the_budget_engages_shield_mode() {
    let rules = RULES
        .replace("max_moderation_actions = 3", "max_moderation_actions = 0\nmax_first_time_share = 0.0\nraid_filter_hits = 0\nmax_backlog_s = 3")
        .replace("escalate_after_s = 1", "escalate_after_s = 600");
    let setup = Setup::start(&[&rules], |c| c.helix.points_per_minute = 20).await;
    setup.helix.set_ratelimit(20, Duration::from_secs(60));
    let room_id = setup.room(0);
    // 20 points at once, then one every 3 s: 40 deletes need a minute more. Shield Mode
    // (a read, then the change) waits for two points only.
    setup.raid(0, 0..40).await;
    wait_until("Shield Mode is on", Duration::from_secs(20), || {
        setup.helix.shield_mode(&room_id)
    })
    .await;
    let requests = setup.helix.requests();
    let deletes_before = requests
        .iter()
        .take_while(|r| !r.path.ends_with("/moderation/shield_mode"))
        .filter(|r| r.path.ends_with("/moderation/chat"))
        .count();
    assert!(
        deletes_before <= 21,
        "Shield Mode waited behind {deletes_before} deletes, more than the first burst"
    );
    let metrics = setup.service.core().metrics.render();
    assert!(metric_value(&metrics, "firehose_helix_backlog_reports_total") >= 1.0);
    assert!(
        setup
            .sim
            .received()
            .iter()
            .any(|m| m.text.contains("Shield Mode on")
                && m.text.contains("moderation calls waiting")),
        "chat is told why: {:?}",
        setup.sim.received()
    );
    assert!(
        setup.helix.rejected().is_empty(),
        "{:?}",
        setup.helix.rejected()
    );
    drop(setup);
}

/// A token without `moderator:manage:shield_mode`: Helix answers 401 "Missing scope"; the
/// step is reported back, skipped, and followers-only engaged at once (not after
/// `escalate_after_s`), and the token is not taken for a bad one: deletes go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_shield_mode_is_skipped_for_the_next_step_at_once() {
    let rules = RULES.replace("escalate_after_s = 1", "escalate_after_s = 600");
    let setup = Setup::start(&[&rules], |_| {}).await;
    setup.helix.without_scope("moderator:manage:shield_mode");
    let room_id = setup.room(0);
    setup.raid(0, 0..4).await;
    wait_until("followers-only is on", Duration::from_secs(15), || {
        setup.helix.chat_settings(&room_id).get("follower_mode") == Some(&serde_json::json!(true))
    })
    .await;
    assert!(!setup.helix.shield_mode(&room_id));
    let refused = setup
        .helix
        .requests()
        .iter()
        .filter(|r| {
            r.method == "PUT" && r.path.ends_with("/moderation/shield_mode") && r.status == 401
        })
        .count();
    assert_eq!(refused, 1, "one refused call, not retried as a bad token");
    setup.raid(0, 100..102).await;
    wait_until("deletes still go through", Duration::from_secs(10), || {
        setup
            .helix
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/moderation/chat") && r.status == 204)
            .count()
            >= 6
    })
    .await;
    drop(setup);
}

/// The moderators had Shield Mode on and slow mode at 3 s before the raid: the defence leaves
/// Shield Mode alone (no PUT at all), raises slow mode to 30 s, and `!raidoff` puts slow mode
/// back to 3 s and leaves Shield Mode on, rather than turning both off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_revert_restores_the_modes_the_moderators_had_set() {
    let rules = RULES.replace(
        "steps = [\"shield_mode\", { followers_only = 5 }]",
        "steps = [\"shield_mode\", { slow = 30 }]",
    );
    let setup = Setup::start(&[&rules], |_| {}).await;
    let room_id = setup.room(0);
    setup.helix.set_modes(
        &room_id,
        true,
        serde_json::json!({"slow_mode": true, "slow_mode_wait_time": 3}),
    );
    let slow = |setup: &Setup| {
        setup
            .helix
            .chat_settings(&room_id)
            .get("slow_mode_wait_time")
            .cloned()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut i = 0;
    while slow(&setup) != Some(serde_json::json!(30)) {
        assert!(std::time::Instant::now() < deadline, "slow 30 s never came");
        setup.raid(0, i..i + 4).await;
        i += 4;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let channel = setup.channels[0].clone();
    setup
        .sim
        .inject_raw(&line(&channel, "m1", "moddy", "777", true, "!raidoff"))
        .await;
    wait_until("slow mode is back at 3 s", Duration::from_secs(10), || {
        slow(&setup) == Some(serde_json::json!(3))
            && setup.helix.chat_settings(&room_id).get("slow_mode")
                == Some(&serde_json::json!(true))
    })
    .await;
    assert!(setup.helix.shield_mode(&room_id), "Shield Mode stays on");
    let puts = setup
        .helix
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path.ends_with("/moderation/shield_mode"))
        .count();
    assert_eq!(puts, 0, "Shield Mode was on already: never touched");
    wait_until("both outcomes logged", Duration::from_secs(10), || {
        let log = std::fs::read_to_string(&setup.log_path).unwrap_or_default();
        log.lines()
            .filter(|l| {
                l.contains("\"action\":\"shield_mode\"") && l.contains("\"outcome\":\"kept:")
            })
            .count()
            == 2
    })
    .await;
    assert!(
        setup.helix.rejected().is_empty(),
        "{:?}",
        setup.helix.rejected()
    );
    drop(setup);
}
