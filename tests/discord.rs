//! Discord end to end: the service against the fake Discord (`firehose_sim::discord`) on
//! 127.0.0.1, with serenity's real gateway client and HTTP client.
//!
//! Seam: the fake's REST side speaks TLS with a test certificate for `discord.com`; the service
//! resolves `discord.com` to it (`discord.rest_address`) and trusts the test CA
//! (`discord.root_ca_file`). We chose this over `HttpBuilder::proxy` because serenity ignores the
//! proxy while its ratelimiter is on, and the ratelimiter stays on in production: here it runs
//! unchanged (the 429 test exercises it). The gateway URL comes from the fake's
//! `GET /api/v10/gateway` answer (`ws://127.0.0.1:<port>`), as in production.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use firehose::app::ServiceOptions;
use firehose::channel::ChannelKey;
use firehose::cli::Server;
use firehose::config::{Config, Secret};
use firehose::config::{DiscordChannel, GrantedRole};
use firehose_sim::discord::{FakeDiscord, FakeDiscordConfig, MessageSpec, Recorded};
use firehose_sim::SimHandle;

const TOKEN: &str = "fake-discord-bot-token";
const GUILD_A: u64 = 1_200_000_000_000_000_000;
const GUILD_B: u64 = 1_200_000_000_000_000_500;
const CHANNEL_A: u64 = 1_200_000_000_000_000_001;
const CHANNEL_B: u64 = 1_200_000_000_000_000_501;
const MOD_ROLE: u64 = 1_200_000_000_000_000_010;
const WAIT: Duration = Duration::from_secs(10);

const SPAM_RULES: &str = r#"
[[filters]]
name = "no-scam"
kind = "banned_phrases"
action = { timeout = 600 }
phrases = [{ pattern = "free bitcoin" }]
"#;

struct Setup {
    fake: FakeDiscord,
    sim: SimHandle,
    service: Server,
    _dir: tempfile::TempDir,
}

/// A fake Discord with the given guilds, a Twitch simulator with `twitch` channels, and a
/// service running both; `channels` are (channel, guild) pairs mapped in config.
async fn setup(channels: &[(u64, u64)], twitch: usize, rules: &[(u64, &str)]) -> Setup {
    setup_with(channels, twitch, rules, ServiceOptions::default()).await
}

async fn setup_with(
    channels: &[(u64, u64)],
    twitch: usize,
    rules: &[(u64, &str)],
    options: ServiceOptions,
) -> Setup {
    setup_tweaked(channels, twitch, rules, options, |_| {}).await
}

async fn setup_tweaked(
    channels: &[(u64, u64)],
    twitch: usize,
    rules: &[(u64, &str)],
    options: ServiceOptions,
    tweak: impl FnOnce(&mut Config),
) -> Setup {
    let guilds = channels.iter().map(|(_, g)| *g).collect();
    let fake = FakeDiscord::start(FakeDiscordConfig::new(TOKEN, guilds))
        .await
        .expect("fake Discord starts");
    let sim = sim(twitch, |_| {}).await;
    let dir = tempfile::tempdir().expect("dir");
    for (channel, text) in rules {
        std::fs::write(dir.path().join(format!("{channel}.toml")), text).expect("rules");
    }
    let mut config = config_for(sim.local_addr(), &sim_channels(twitch));
    config.engine.rules_dir = dir.path().display().to_string();
    discord_config(&mut config, &fake, channels, dir.path());
    tweak(&mut config);
    let service = service(config, options).await;
    Setup {
        fake,
        sim,
        service,
        _dir: dir,
    }
}

fn discord_config(
    config: &mut Config,
    fake: &FakeDiscord,
    channels: &[(u64, u64)],
    dir: &std::path::Path,
) {
    // `discord.com` resolves to the fake, whose test CA the service trusts.
    let ca_file = fake.write_test_ca(dir).expect("CA written");
    config.discord.enabled = true;
    config.discord.rest_address = fake.rest_addr().to_string();
    config.discord.root_ca_file = Some(ca_file);
    for (i, (channel, guild)) in channels.iter().enumerate() {
        config.discord.channels.insert(
            channel.to_string(),
            DiscordChannel {
                name: format!("room-{i}"),
                guild: guild.to_string(),
            },
        );
        config.discord.guild_roles.insert(
            guild.to_string(),
            BTreeMap::from([(MOD_ROLE.to_string(), GrantedRole::Moderator)]),
        );
    }
    config.discord.request_timeout_ms = 5_000;
    config.secrets.discord_token = Some(Secret::new(TOKEN));
}

fn say(channel: u64, guild: u64, author: u64, roles: Vec<u64>, text: &str) -> MessageSpec {
    MessageSpec {
        channel_id: channel,
        guild_id: guild,
        author_id: author,
        author_name: format!("user{}", author % 1_000),
        roles,
        content: text.into(),
        ..MessageSpec::default()
    }
}

fn posts(fake: &FakeDiscord, channel: u64) -> Vec<Recorded> {
    fake.calls("POST", &format!("/api/v10/channels/{channel}/messages"))
}

fn replies_to(fake: &FakeDiscord, channel: u64, parent: u64) -> Vec<Recorded> {
    posts(fake, channel)
        .into_iter()
        .filter(|r| as_id(&r.body["message_reference"]["message_id"]) == Some(parent))
        .collect()
}

/// A snowflake sent as a JSON string.
fn as_id(value: &serde_json::Value) -> Option<u64> {
    value.as_str()?.parse().ok()
}

fn discord_processed(service: &Server, channel: u64) -> u64 {
    service
        .core()
        .registry
        .get(&ChannelKey::discord(&channel.to_string()))
        .map(|c| c.counters.processed.load(Ordering::Relaxed))
        .unwrap_or(0)
}

fn metric(service: &Server, prefix: &str) -> f64 {
    metric_value(&service.core().metrics.render(), prefix)
}

/// Sends `!ping` and waits for the threaded `pong` posted through REST.
async fn ping_answered(s: &Setup, channel: u64, guild: u64) {
    let id = s
        .fake
        .send_message(say(channel, guild, 42, vec![], "!ping"))
        .expect("a gateway session takes the message");
    wait_until("the !ping is answered through REST", WAIT, || {
        !replies_to(&s.fake, channel, id).is_empty()
    })
    .await;
    let reply = &replies_to(&s.fake, channel, id)[0];
    assert_eq!(reply.body["content"], "pong");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_in_a_discord_channel_is_answered_through_rest() {
    let s = setup(&[(CHANNEL_A, GUILD_A)], 1, &[]).await;
    let state = s.fake.state();
    assert_eq!(
        state.last_intents.load(Ordering::Relaxed),
        33_281,
        "GUILDS | GUILD_MESSAGES | MESSAGE_CONTENT"
    );
    assert_eq!(state.unauthorized.load(Ordering::Relaxed), 0);
    ping_answered(&s, CHANNEL_A, GUILD_A).await;
    let reply = &posts(&s.fake, CHANNEL_A)[0];
    assert_eq!(
        reply.body["allowed_mentions"]["parse"],
        serde_json::json!([]),
        "posted text may not ping anyone: {:?}",
        reply.body
    );
    assert_eq!(discord_processed(&s.service, CHANNEL_A), 1);
    // The fake records the post before its answer reaches serenity; the outcome follows.
    wait_until("the reply is counted as ok", WAIT, || {
        metric(
            &s.service,
            "firehose_discord_requests_total{action=\"reply\",outcome=\"ok\"}",
        ) == 1.0
    })
    .await;
    // The bot's own message comes back through the gateway; it is not handled again.
    let own = MessageSpec {
        author_id: firehose_sim::discord::payloads::BOT_USER_ID,
        ..say(CHANNEL_A, GUILD_A, 0, vec![], "!ping")
    };
    s.fake.send_message(own).expect("sent");
    wait_until("the bot's own message is ignored", WAIT, || {
        metric(
            &s.service,
            "firehose_discord_messages_ignored_total{reason=\"own_message\"}",
        ) == 1.0
    })
    .await;
    assert_eq!(discord_processed(&s.service, CHANNEL_A), 1);
    s.service.shutdown().await;
    s.fake.shutdown().await;
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_itself_and_ignore_listed_users_get_no_answer_on_discord() {
    let s = setup_tweaked(
        &[(CHANNEL_A, GUILD_A)],
        1,
        &[],
        ServiceOptions::default(),
        // One bot by user id, one by user name (in another case than Discord's).
        |c| c.engine.ignore_users = vec!["4343".into(), "HelperBot".into()],
    )
    .await;
    let ignored = |reason: &str| {
        metric(
            &s.service,
            &format!("firehose_messages_ignored_total{{platform=\"discord\",reason=\"{reason}\"}}"),
        )
    };
    let by_id = s
        .fake
        .send_message(say(CHANNEL_A, GUILD_A, 4343, vec![], "!ping"))
        .expect("sent");
    let by_name = s
        .fake
        .send_message(MessageSpec {
            author_name: "helperbot".into(),
            ..say(CHANNEL_A, GUILD_A, 5151, vec![], "!ping")
        })
        .expect("sent");
    let own = s
        .fake
        .send_message(MessageSpec {
            author_id: firehose_sim::discord::payloads::BOT_USER_ID,
            ..say(CHANNEL_A, GUILD_A, 0, vec![], "!ping")
        })
        .expect("sent");
    wait_until("the three are counted as ignored", WAIT, || {
        ignored("ignore_list") == 2.0 && ignored("own") == 1.0
    })
    .await;
    ping_answered(&s, CHANNEL_A, GUILD_A).await;
    for id in [by_id, by_name, own] {
        assert!(
            replies_to(&s.fake, CHANNEL_A, id).is_empty(),
            "message {id} is from an ignored account"
        );
    }
    // Ignored by the list: handled by ignoring them (processed); the bot's own: not input.
    wait_until(
        "the listed users' and the viewer's messages are processed",
        WAIT,
        || discord_processed(&s.service, CHANNEL_A) == 3,
    )
    .await;
    s.service.shutdown().await;
    s.fake.shutdown().await;
    s.sim.shutdown().await;
}

/// A MESSAGE_CREATE of `spec` with the author marked a bot, or sent by a webhook; its id.
fn send_from_a_bot(fake: &FakeDiscord, spec: MessageSpec, webhook: bool) -> u64 {
    let id = fake.state().next_id();
    let mut data = firehose_sim::discord::payloads::message(&MessageSpec { id, ..spec });
    if webhook {
        data["webhook_id"] = "777000111".into();
    } else {
        data["author"]["bot"] = true.into();
    }
    assert_eq!(
        fake.send_dispatch("MESSAGE_CREATE", data),
        1,
        "one session takes it"
    );
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_bots_and_webhooks_get_no_answer_unless_the_operator_allows_them() {
    let s = setup(&[(CHANNEL_A, GUILD_A)], 1, &[]).await;
    let bot = send_from_a_bot(
        &s.fake,
        say(CHANNEL_A, GUILD_A, 6161, vec![], "!ping"),
        false,
    );
    let hook = send_from_a_bot(
        &s.fake,
        say(CHANNEL_A, GUILD_A, 6262, vec![], "!ping"),
        true,
    );
    wait_until("both are counted as ignored bots", WAIT, || {
        metric(
            &s.service,
            "firehose_messages_ignored_total{platform=\"discord\",reason=\"bot\"}",
        ) == 2.0
            && metric(
                &s.service,
                "firehose_discord_messages_ignored_total{reason=\"bot\"}",
            ) == 2.0
    })
    .await;
    // A person after them is answered, and by then the bots would have been too.
    ping_answered(&s, CHANNEL_A, GUILD_A).await;
    for id in [bot, hook] {
        assert!(
            replies_to(&s.fake, CHANNEL_A, id).is_empty(),
            "message {id} is another bot's"
        );
    }
    // Other bots' output is not chat input: only the person's message is handled.
    wait_until("the person's message is processed", WAIT, || {
        discord_processed(&s.service, CHANNEL_A) == 1
    })
    .await;
    s.service.shutdown().await;
    s.fake.shutdown().await;
    s.sim.shutdown().await;

    // `discord.ignore_bots = false`: a bot's command is answered like anyone's.
    let s = setup_tweaked(
        &[(CHANNEL_A, GUILD_A)],
        1,
        &[],
        ServiceOptions::default(),
        |c| c.discord.ignore_bots = false,
    )
    .await;
    let bot = send_from_a_bot(
        &s.fake,
        say(CHANNEL_A, GUILD_A, 6161, vec![], "!ping"),
        false,
    );
    wait_until("the bot's !ping is answered", WAIT, || {
        !replies_to(&s.fake, CHANNEL_A, bot).is_empty()
    })
    .await;
    s.service.shutdown().await;
    s.fake.shutdown().await;
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spam_is_deleted_and_the_member_timed_out_but_a_mapped_moderator_is_exempt() {
    let s = setup(&[(CHANNEL_A, GUILD_A)], 1, &[(CHANNEL_A, SPAM_RULES)]).await;
    let moderator = 7_001;
    let spammer = 7_002;
    s.fake
        .send_message(say(
            CHANNEL_A,
            GUILD_A,
            moderator,
            vec![MOD_ROLE],
            "free bitcoin, joking",
        ))
        .expect("sent");
    let spam = s
        .fake
        .send_message(say(
            CHANNEL_A,
            GUILD_A,
            spammer,
            vec![],
            "get FREE bitcoin here",
        ))
        .expect("sent");
    let delete_path = format!("/api/v10/channels/{CHANNEL_A}/messages/{spam}");
    let member_path = format!("/api/v10/guilds/{GUILD_A}/members/{spammer}");
    wait_until("the spam is deleted and its author timed out", WAIT, || {
        !s.fake.calls("DELETE", &delete_path).is_empty()
            && !s.fake.calls("PATCH", &member_path).is_empty()
    })
    .await;
    let timeout = &s.fake.calls("PATCH", &member_path)[0];
    let until = timeout.body["communication_disabled_until"]
        .as_str()
        .expect("a timeout end");
    let until = chrono::DateTime::parse_from_rfc3339(until).expect("RFC 3339");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let from_now = until.timestamp() - now;
    assert!(
        (590..=600).contains(&from_now),
        "timeout ends in {from_now} s"
    );
    assert!(
        timeout
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("no-scam")),
        "{timeout:?}"
    );
    wait_until("both messages handled and the queue empty", WAIT, || {
        discord_processed(&s.service, CHANNEL_A) == 2
            && metric(&s.service, "firehose_discord_queue_depth") == 0.0
    })
    .await;
    let moderated: Vec<_> = s
        .fake
        .recorded()
        .into_iter()
        .filter(|r| r.path.contains(&moderator.to_string()))
        .collect();
    assert!(
        moderated.is_empty(),
        "the moderator was acted on: {moderated:?}"
    );
    assert_eq!(s.fake.recorded().len(), 2, "{:?}", s.fake.recorded());
    s.service.shutdown().await;
    s.fake.shutdown().await;
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_after_a_gateway_drop_are_still_handled() {
    let s = setup(&[(CHANNEL_A, GUILD_A)], 1, &[]).await;
    ping_answered(&s, CHANNEL_A, GUILD_A).await;
    let state = s.fake.state();
    let sessions_before =
        state.identifies.load(Ordering::Relaxed) + state.resumes.load(Ordering::Relaxed);
    assert_eq!(s.fake.drop_connections(), 1);
    wait_until("the shard reconnects (resume or identify)", WAIT, || {
        let sessions =
            state.identifies.load(Ordering::Relaxed) + state.resumes.load(Ordering::Relaxed);
        sessions > sessions_before && s.fake.live_sessions() == 1
    })
    .await;
    ping_answered(&s, CHANNEL_A, GUILD_A).await;
    assert_eq!(discord_processed(&s.service, CHANNEL_A), 2);
    assert_eq!(state.connections.load(Ordering::Relaxed), 2);
    // serenity resumes the session (same session id, missed sequence) rather than starting over.
    assert_eq!(state.identifies.load(Ordering::Relaxed), 1);
    assert_eq!(state.resumes.load(Ordering::Relaxed), 1);
    wait_until("the resumed session is counted", WAIT, || {
        metric(
            &s.service,
            "firehose_discord_gateway_sessions_total{kind=\"resumed\"}",
        ) == 1.0
    })
    .await;
    wait_until("the service is ready again", WAIT, || {
        s.service.core().readiness().ready
    })
    .await;
    s.service.shutdown().await;
    s.fake.shutdown().await;
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_discord_and_two_twitch_channels_run_side_by_side() {
    let s = setup(&[(CHANNEL_A, GUILD_A), (CHANNEL_B, GUILD_B)], 2, &[]).await;
    let twitch = sim_channels(2);
    for channel in &twitch {
        s.sim
            .send_privmsg(channel, "viewer", "!ping")
            .await
            .expect("joined");
    }
    ping_answered(&s, CHANNEL_A, GUILD_A).await;
    ping_answered(&s, CHANNEL_B, GUILD_B).await;
    wait_until("both Twitch pings are answered", WAIT, || {
        let received = s.sim.received();
        twitch
            .iter()
            .all(|c| received.iter().any(|m| m.channel == *c && m.text == "pong"))
    })
    .await;
    let registry = &s.service.core().registry;
    let mut actors = Vec::new();
    for key in twitch
        .iter()
        .map(|c| ChannelKey::twitch(c))
        .chain([CHANNEL_A, CHANNEL_B].map(|c| ChannelKey::discord(&c.to_string())))
    {
        let channel = registry.get(&key).expect("registered");
        assert_eq!(
            channel.counters.processed.load(Ordering::Relaxed),
            1,
            "{key}"
        );
        actors.push(channel.mailbox.actor().expect("an actor").get_id());
    }
    actors.sort();
    actors.dedup();
    assert_eq!(actors.len(), 4, "each channel has its own actor");
    // No cross-talk: each Discord channel got exactly its own reply.
    assert_eq!(posts(&s.fake, CHANNEL_A).len(), 1);
    assert_eq!(posts(&s.fake, CHANNEL_B).len(), 1);

    let url = format!("http://{}/v1/channels", s.service.http_addr());
    let listed: Vec<serde_json::Value> = reqwest::get(&url)
        .await
        .expect("GET /v1/channels")
        .json()
        .await
        .expect("json");
    let platforms: Vec<&str> = listed
        .iter()
        .filter_map(|c| c["platform"].as_str())
        .collect();
    assert_eq!(
        platforms.iter().filter(|p| **p == "discord").count(),
        2,
        "{listed:?}"
    );
    assert_eq!(
        platforms.iter().filter(|p| **p == "twitch").count(),
        2,
        "{listed:?}"
    );
    let room = listed
        .iter()
        .find(|c| as_id(&c["channel"]) == Some(CHANNEL_A))
        .expect("listed");
    assert_eq!(room["name"], "room-0");
    assert_eq!(room["joined"], true);
    let metrics = s.service.core().metrics.render();
    let line = format!(
        "firehose_messages_processed_total{{platform=\"discord\",channel=\"{CHANNEL_B}\"}} 1"
    );
    assert!(metrics.contains(&line), "missing {line}");
    assert!(metrics.contains("firehose_messages_processed_total{platform=\"twitch\""));
    s.service.shutdown().await;
    s.fake.shutdown().await;
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_gateway_payloads_are_counted_and_the_shard_carries_on() {
    let s = setup(&[(CHANNEL_A, GUILD_A)], 1, &[]).await;
    assert_eq!(s.fake.send_raw("{this is not json"), 1);
    assert_eq!(
        s.fake
            .send_raw(r#"{"op": 0, "t": "MESSAGE_CREATE", "d": {"id": 5}}"#),
        1
    );
    assert_eq!(
        s.fake.send_dispatch(
            "MESSAGE_CREATE",
            serde_json::json!({"id": "1", "content": 7})
        ),
        1
    );
    assert_eq!(
        s.fake
            .send_dispatch("MESSAGE_CREATE", serde_json::json!([1, 2])),
        1
    );
    wait_until("the undecodable dispatches are counted", WAIT, || {
        metric(&s.service, "firehose_discord_payloads_malformed_total") >= 2.0
    })
    .await;
    ping_answered(&s, CHANNEL_A, GUILD_A).await;
    // The two MESSAGE_CREATEs with a JSON body serenity cannot decode are counted; the frame
    // that is not JSON and the one without a sequence number are dropped by serenity itself
    // (logged there, invisible to handlers).
    assert_eq!(
        metric(&s.service, "firehose_discord_payloads_malformed_total"),
        2.0
    );
    let state = s.fake.state();
    assert_eq!(
        state.connections.load(Ordering::Relaxed),
        1,
        "the shard never reconnected"
    );
    assert_eq!(state.identifies.load(Ordering::Relaxed), 1);
    assert_eq!(discord_processed(&s.service, CHANNEL_A), 1);
    s.service.shutdown().await;
    s.fake.shutdown().await;
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_waited_out_by_serenitys_ratelimiter_and_counted() {
    let s = setup(&[(CHANNEL_A, GUILD_A)], 1, &[]).await;
    s.fake.refuse_next_posts(2);
    ping_answered(&s, CHANNEL_A, GUILD_A).await;
    assert_eq!(s.fake.state().answered_429.load(Ordering::Relaxed), 2);
    wait_until("both 429s are counted", WAIT, || {
        metric(&s.service, "firehose_discord_rate_limited_total") == 2.0
    })
    .await;
    assert_eq!(
        posts(&s.fake, CHANNEL_A).len(),
        1,
        "sent once, after the waits"
    );
    s.service.shutdown().await;
    s.fake.shutdown().await;
    s.sim.shutdown().await;
}

/// Collects everything a tracing subscriber writes.
#[derive(Clone, Default)]
struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut all) = self.0.lock() {
            all.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// On one thread (current-thread runtime) a thread-local subscriber sees every task: ours,
/// serenity's, reqwest's. At TRACE level, nothing may print the bot token.
#[tokio::test]
async fn the_bot_token_is_never_logged() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let s = setup(&[(CHANNEL_A, GUILD_A)], 1, &[(CHANNEL_A, SPAM_RULES)]).await;
    ping_answered(&s, CHANNEL_A, GUILD_A).await;
    s.fake
        .send_message(say(CHANNEL_A, GUILD_A, 7_002, vec![], "free bitcoin"))
        .expect("sent");
    wait_until("the spammer is timed out", WAIT, || {
        !s.fake.calls("PATCH", "/members/7002").is_empty()
    })
    .await;
    s.service.shutdown().await;
    s.fake.shutdown().await;
    s.sim.shutdown().await;
    let logged = String::from_utf8_lossy(&capture.0.lock().expect("lock")).to_string();
    assert!(logged.contains("Discord shard ready"), "the capture works");
    assert!(
        logged.contains("serenity::gateway"),
        "serenity's own traces are captured"
    );
    assert!(!logged.contains(TOKEN), "the token was logged");
}

/// Two shards (serenity boots them 5 s apart, as Discord requires): each guild's messages come
/// through the shard that owns it, and readiness waits for both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guilds_on_two_shards_are_both_served() {
    let (guild_0, guild_1) = (40 << 22, (41 << 22) + 7);
    let (channel_0, channel_1) = (guild_0 + 1, guild_1 + 1);
    let mut fake_config = FakeDiscordConfig::new(TOKEN, vec![guild_0, guild_1]);
    fake_config.shards = 2;
    let fake = FakeDiscord::start(fake_config)
        .await
        .expect("fake Discord starts");
    let sim = sim(1, |_| {}).await;
    let dir = tempfile::tempdir().expect("dir");
    let mut config = config_for(sim.local_addr(), &sim_channels(1));
    discord_config(
        &mut config,
        &fake,
        &[(channel_0, guild_0), (channel_1, guild_1)],
        dir.path(),
    );
    config.discord.shards = 2;
    let service = service(config, ServiceOptions::default()).await;
    assert_eq!(fake.live_sessions(), 2);
    assert_eq!(metric(&service, "firehose_discord_shards_connected"), 2.0);
    let s = Setup {
        fake,
        sim,
        service,
        _dir: dir,
    };
    ping_answered(&s, channel_0, guild_0).await;
    ping_answered(&s, channel_1, guild_1).await;
    s.service.shutdown().await;
    s.fake.shutdown().await;
    s.sim.shutdown().await;
}

/// A Discord channel's actor is supervised like a Twitch one: a message that panics the engine
/// fails the actor, the supervisor restarts it, and later messages are handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_discord_channel_actor_is_restarted() {
    let options = options_with(FaultyEngine::default(), None);
    let s = setup_with(&[(CHANNEL_A, GUILD_A)], 1, &[], options).await;
    s.fake
        .send_message(say(CHANNEL_A, GUILD_A, 42, vec![], "POISON"))
        .expect("sent");
    let channel = s
        .service
        .core()
        .registry
        .get(&ChannelKey::discord(&CHANNEL_A.to_string()))
        .expect("registered");
    wait_until("the actor failed and was restarted", WAIT, || {
        channel.counters.restarts.load(Ordering::Relaxed) == 1
            && channel.status() == firehose::channel::ChannelStatus::Running
    })
    .await;
    ping_answered(&s, CHANNEL_A, GUILD_A).await;
    assert_eq!(
        channel
            .counters
            .shed(firehose::channel::ShedReason::Poisoned),
        1
    );
    assert!(channel.last_error().is_some_and(|e| e.contains("poison")));
    s.service.shutdown().await;
    s.fake.shutdown().await;
    s.sim.shutdown().await;
}

/// `discord.gateway_url` wins over what `GET /gateway` says: the fake advertises a dead
/// address, the service connects to the configured one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_gateway_url_overrides_the_advertised_one() {
    let mut fake_config = FakeDiscordConfig::new(TOKEN, vec![GUILD_A]);
    fake_config.advertised_gateway = Some("ws://127.0.0.1:9".into());
    let fake = FakeDiscord::start(fake_config)
        .await
        .expect("fake Discord starts");
    let sim = sim(1, |_| {}).await;
    let dir = tempfile::tempdir().expect("dir");
    let mut config = config_for(sim.local_addr(), &sim_channels(1));
    discord_config(&mut config, &fake, &[(CHANNEL_A, GUILD_A)], dir.path());
    config.discord.gateway_url = fake.gateway_url();
    let service = service(config, ServiceOptions::default()).await;
    assert_eq!(fake.state().gateway_asks.load(Ordering::Relaxed), 1);
    let s = Setup {
        fake,
        sim,
        service,
        _dir: dir,
    };
    ping_answered(&s, CHANNEL_A, GUILD_A).await;
    s.service.shutdown().await;
    s.fake.shutdown().await;
    s.sim.shutdown().await;
}
