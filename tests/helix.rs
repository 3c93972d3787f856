//! Helix moderation against the checking fake: exact requests, retries, final errors, the
//! queue bound, the points budget, concurrency and the moderation log (memory and file).

use std::time::{Duration, Instant};

use firehose::config::{HelixConfig, Secret};
use firehose::engine::Action;
use firehose::twitch::helix::{HelixModerator, ModerationLogEntry, ModerationRequest, Refused};
use firehose_sim::helix::{FakeHelix, RecordedRequest, FAKE_CLIENT_ID, FAKE_TOKEN};
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio_util::sync::CancellationToken;

struct Setup {
    fake: FakeHelix,
    moderator: HelixModerator,
    handle: tokio::task::JoinHandle<()>,
    registry: Registry,
    shutdown: CancellationToken,
}

fn config(fake: &FakeHelix) -> HelixConfig {
    HelixConfig {
        base_url: fake.base_url(),
        client_id: FAKE_CLIENT_ID.into(),
        retry_backoff_ms: 10,
        request_timeout_ms: 2_000,
        ..HelixConfig::default()
    }
}

fn start_with(fake: FakeHelix, config: HelixConfig, token: &str) -> Setup {
    if let Err(e) = config.validate() {
        panic!("the test config is valid: {e}");
    }
    let mut registry = Registry::with_prefix("firehose");
    let shutdown = CancellationToken::new();
    let (moderator, handle) =
        HelixModerator::start(config, Secret::new(token), &mut registry, shutdown.clone());
    Setup {
        fake,
        moderator,
        handle,
        registry,
        shutdown,
    }
}

fn start(tweak: impl FnOnce(&mut HelixConfig)) -> Setup {
    let fake = FakeHelix::start();
    let mut config = config(&fake);
    tweak(&mut config);
    start_with(fake, config, &format!("oauth:{FAKE_TOKEN}"))
}

fn request(action: Action) -> ModerationRequest {
    ModerationRequest {
        channel_login: "bigchannel".into(),
        broadcaster_id: "1001".into(),
        moderator_id: "2002".into(),
        action,
        received_at: Some(Instant::now()),
    }
}

fn ban(user: &str) -> Action {
    Action::Ban {
        user_id: user.into(),
        reason: "hate".into(),
        rule: "blocklist".into(),
    }
}

fn delete(id: &str) -> Action {
    Action::Delete {
        message_id: id.into(),
        user_id: format!("author-of-{id}"),
        rule: "links".into(),
    }
}

/// Polls `condition` until it holds; fails the test after `within`.
async fn wait_for(within: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn wait_log(setup: &Setup, n: usize) -> Vec<ModerationLogEntry> {
    wait_for(Duration::from_secs(10), &format!("{n} log entries"), || {
        setup.moderator.log().len() >= n
    })
    .await;
    setup.moderator.log()
}

/// The value of the metric line starting with `series` (e.g. `firehose_helix_retries_total`).
fn metric(registry: &Registry, series: &str) -> f64 {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

fn query(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn assert_request(
    got: &RecordedRequest,
    method: &str,
    path: &str,
    q: &[(&str, &str)],
    body: Option<serde_json::Value>,
) {
    assert_eq!(got.method, method);
    assert_eq!(got.path, path);
    assert_eq!(got.query, query(q));
    assert_eq!(got.body, body);
    assert_eq!(got.client_id.as_deref(), Some(FAKE_CLIENT_ID));
    let bearer = format!("Bearer {FAKE_TOKEN}");
    assert_eq!(got.authorization.as_deref(), Some(bearer.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_ban_unban_and_delete_send_exactly_what_helix_expects() {
    let s = start(|_| {});
    let actions = [
        Action::Timeout {
            user_id: "7".into(),
            duration_s: 600,
            reason: "caps spam".into(),
            rule: "caps".into(),
        },
        ban("8"),
        Action::Unban {
            user_id: "8".into(),
            rule: "nukeundo".into(),
        },
        delete("b1c5-42"),
    ];
    for (i, action) in actions.into_iter().enumerate() {
        s.moderator.submit(request(action)).unwrap();
        wait_log(&s, i + 1).await;
    }
    let got = s.fake.requests();
    assert_eq!(s.fake.rejected(), Vec::<String>::new());
    assert_eq!(got.len(), 4);
    let ids = [("broadcaster_id", "1001"), ("moderator_id", "2002")];
    let body = json!({"data": {"user_id": "7", "duration": 600, "reason": "caps spam"}});
    assert_request(&got[0], "POST", "/helix/moderation/bans", &ids, Some(body));
    let body = json!({"data": {"user_id": "8", "reason": "hate"}});
    assert_request(&got[1], "POST", "/helix/moderation/bans", &ids, Some(body));
    let unban = [ids[0], ids[1], ("user_id", "8")];
    assert_request(&got[2], "DELETE", "/helix/moderation/bans", &unban, None);
    let del = [ids[0], ids[1], ("message_id", "b1c5-42")];
    assert_request(&got[3], "DELETE", "/helix/moderation/chat", &del, None);
    assert_eq!(
        got.iter().map(|r| r.status).collect::<Vec<_>>(),
        [200, 200, 204, 204]
    );

    let log = s.moderator.log();
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["timeout", "ban", "unban", "delete"]);
    assert!(log.iter().all(|e| e.outcome == "ok" && e.attempts == 1));
    assert!(log
        .iter()
        .all(|e| e.channel == "bigchannel" && e.latency_ms.is_some()));
    assert_eq!(log[0].duration_s, Some(600));
    assert_eq!(log[0].rule, "caps");
    assert_eq!(log[3].message_id.as_deref(), Some("b1c5-42"));
    for action in ["timeout", "ban", "unban", "delete"] {
        let series = format!("firehose_helix_requests_total{{action=\"{action}\",outcome=\"ok\"}}");
        assert_eq!(metric(&s.registry, &series), 1.0, "{series}");
    }
    assert_eq!(
        metric(&s.registry, "firehose_helix_request_seconds_count"),
        4.0
    );
    assert_eq!(metric(&s.registry, "firehose_helix_queue_depth"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_retried_after_the_reset_and_then_succeeds() {
    let s = start(|_| {});
    s.fake.fail_next(1, 429);
    s.moderator.submit(request(ban("9"))).unwrap();
    let log = wait_log(&s, 1).await;
    assert_eq!(log[0].outcome, "ok");
    assert_eq!(log[0].attempts, 2);
    let statuses: Vec<u16> = s.fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 200]);
    assert_eq!(metric(&s.registry, "firehose_helix_retries_total"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_beyond_max_retries_end_as_failed() {
    let s = start(|c| c.max_retries = 2);
    s.fake.fail_next(10, 500);
    s.moderator.submit(request(delete("m1"))).unwrap();
    let log = wait_log(&s, 1).await;
    assert!(
        log[0].outcome.starts_with("failed: server error (500)"),
        "{}",
        log[0].outcome
    );
    assert!(
        log[0].outcome.contains("gave up after 3 attempts"),
        "{}",
        log[0].outcome
    );
    assert_eq!(log[0].attempts, 3);
    assert_eq!(s.fake.requests().len(), 3);
    assert_eq!(metric(&s.registry, "firehose_helix_retries_total"), 2.0);
    let failed = "firehose_helix_requests_total{action=\"delete\",outcome=\"failed\"}";
    assert_eq!(metric(&s.registry, failed), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_token_is_not_retried() {
    let fake = FakeHelix::start();
    let config = config(&fake);
    let s = start_with(fake, config, "oauth:expiredtoken");
    s.moderator.submit(request(ban("10"))).unwrap();
    let log = wait_log(&s, 1).await;
    assert!(
        log[0].outcome.starts_with("failed: token invalid"),
        "{}",
        log[0].outcome
    );
    assert_eq!(log[0].attempts, 1);
    assert_eq!(s.fake.rejected().len(), 1, "{:?}", s.fake.rejected());
    assert!(s.fake.rejected()[0].contains("Authorization"));
    assert!(!s.fake.rejected()[0].contains("expiredtoken"));
    assert_eq!(metric(&s.registry, "firehose_helix_retries_total"), 0.0);
}

/// current_thread: the worker cannot take a job while the loop below submits.
#[tokio::test(flavor = "current_thread")]
async fn a_full_queue_drops_and_counts() {
    let s = start(|c| {
        c.queue_capacity = 2;
        c.max_in_flight = 1;
    });
    let results: Vec<Result<(), Refused>> = (0..10)
        .map(|i| s.moderator.submit(request(delete(&format!("q{i}")))))
        .collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 2);
    assert!(results[2..].iter().all(|r| *r == Err(Refused::QueueFull)));
    assert_eq!(metric(&s.registry, "firehose_helix_queue_depth"), 2.0);
    let dropped = "firehose_helix_dropped_total{reason=\"queue_full\"}";
    assert_eq!(metric(&s.registry, dropped), 8.0);
    let log = wait_log(&s, 10).await;
    let drops = log
        .iter()
        .filter(|e| e.outcome == "dropped: queue full" && e.attempts == 0);
    assert_eq!(drops.count(), 8);
    assert_eq!(log.iter().filter(|e| e.outcome == "ok").count(), 2);
    assert_eq!(s.fake.requests().len(), 2);
    let unsupported = s
        .moderator
        .submit(request(Action::Say { text: "hi".into() }));
    assert_eq!(unsupported, Err(Refused::Unsupported("say")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_points_budget_is_respected() {
    let window = Duration::from_millis(1_000);
    let s = start(|c| {
        c.points_per_minute = 5;
        c.budget_window_ms = window.as_millis() as u64;
    });
    for i in 0..8 {
        s.moderator
            .submit(request(delete(&format!("b{i}"))))
            .unwrap();
    }
    let log = wait_log(&s, 8).await;
    assert!(log.iter().all(|e| e.outcome == "ok"));
    let at: Vec<Instant> = s.fake.requests().iter().map(|r| r.at).collect();
    assert_eq!(at.len(), 8);
    // Helix's bucket: 5 at once, then one point every 200 ms. Arrival jitter at the fake is
    // far below the 50 ms margin.
    let refill = window / 5;
    let margin = Duration::from_millis(50);
    for (i, first) in at.iter().enumerate() {
        for (j, last) in at.iter().enumerate().skip(i) {
            let calls = (j - i + 1) as u32;
            if calls > 5 {
                let least = refill * (calls - 5);
                assert!(
                    last.duration_since(*first) + margin >= least,
                    "{calls} calls within {:?}: more than the bucket holds",
                    last.duration_since(*first)
                );
            }
        }
    }
    assert!(at[7].duration_since(at[0]) + margin >= refill * 3);
    assert!(
        s.fake.requests().iter().all(|r| r.status != 429),
        "never past Helix's bucket"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratelimit_remaining_zero_pauses_until_the_reset() {
    let s = start(|_| {});
    s.fake.set_ratelimit(2, Duration::from_millis(1_500));
    // Calls already in flight cannot see the headers of each other's answers, so the first
    // two finish before the third is submitted: the second answer says Remaining: 0.
    for i in 0..2 {
        s.moderator
            .submit(request(delete(&format!("r{i}"))))
            .unwrap();
    }
    wait_log(&s, 2).await;
    s.moderator.submit(request(delete("r2"))).unwrap();
    let log = wait_log(&s, 3).await;
    assert!(
        log.iter().all(|e| e.outcome == "ok" && e.attempts == 1),
        "{log:?}"
    );
    let got = s.fake.requests();
    assert!(got.iter().all(|r| r.status == 204), "the fake answered 429");
    assert_eq!(metric(&s.registry, "firehose_helix_retries_total"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_calls_run_concurrently() {
    let s = start(|c| c.max_in_flight = 8);
    s.fake.set_delay(Duration::from_millis(400));
    for i in 0..8 {
        s.moderator
            .submit(request(delete(&format!("c{i}"))))
            .unwrap();
    }
    let log = wait_log(&s, 8).await;
    assert!(log.iter().all(|e| e.outcome == "ok"));
    // Overlap, not speed: every call reached the fake before the first one was answered
    // (one at a time, each would arrive only after the previous 400 ms answer).
    let arrivals: Vec<Instant> = s.fake.requests().iter().map(|r| r.at).collect();
    let first = *arrivals.iter().min().unwrap();
    let last = *arrivals.iter().max().unwrap();
    assert!(
        last < first + Duration::from_millis(400),
        "calls did not overlap"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_in_one_channel_does_not_hold_up_another() {
    let s = start(|c| c.max_in_flight = 1);
    s.fake.set_delay(Duration::from_millis(20));
    // A nuke queues 30 deletes in one channel; then one ban arrives for another channel.
    for i in 0..30 {
        s.moderator
            .submit(request(delete(&format!("n{i}"))))
            .unwrap();
    }
    let mut other = request(ban("777"));
    other.channel_login = "smallchannel".into();
    other.broadcaster_id = "3003".into();
    s.moderator.submit(other).unwrap();
    let log = wait_log(&s, 31).await;
    let position = log
        .iter()
        .position(|e| e.channel == "smallchannel")
        .expect("the other channel's ban was carried out");
    // Round-robin over channels: it goes right after the flood's first call or two, not 31st.
    assert!(
        position <= 2,
        "the other channel's ban came {}th",
        position + 1
    );
    assert!(log.iter().all(|e| e.outcome == "ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_records_every_outcome_in_memory_and_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("moderation.jsonl");
    let s = start(|c| c.moderation_log = Some(path.clone()));
    s.moderator.submit(request(ban("11"))).unwrap();
    wait_log(&s, 1).await;
    s.moderator.submit(request(ban("11"))).unwrap();
    s.moderator.submit(request(delete("d1"))).unwrap();
    wait_log(&s, 3).await;
    s.moderator.submit(request(delete("d1"))).unwrap();
    let memory = wait_log(&s, 4).await;
    s.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), s.handle)
        .await
        .unwrap()
        .unwrap();

    assert_eq!(memory[0].outcome, "ok");
    let again = memory
        .iter()
        .find(|e| e.action == "ban" && e.outcome != "ok")
        .unwrap();
    assert!(
        again.outcome.starts_with("failed: already banned (400)"),
        "{}",
        again.outcome
    );
    assert_eq!(again.attempts, 1);
    let deleted_twice = memory.last().unwrap();
    assert!(deleted_twice
        .outcome
        .starts_with("failed: message not deleted (404)"));
    assert_eq!(deleted_twice.attempts, 1);

    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    for (line, entry) in lines.iter().zip(&memory) {
        assert_eq!(line, &serde_json::to_value(entry).unwrap());
    }
    assert_eq!(lines[0]["action"], "ban");
    assert_eq!(lines[0]["user_id"], "11");
    assert_eq!(lines[0]["rule"], "blocklist");

    let after = s.moderator.submit(request(ban("12")));
    assert_eq!(after, Err(Refused::Closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_logs_queued_actions_as_dropped() {
    let s = start(|c| c.max_in_flight = 1);
    s.fake.set_delay(Duration::from_millis(300));
    for i in 0..4 {
        s.moderator
            .submit(request(delete(&format!("s{i}"))))
            .unwrap();
    }
    wait_for(Duration::from_secs(5), "the first call", || {
        !s.fake.requests().is_empty()
    })
    .await;
    s.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), s.handle)
        .await
        .unwrap()
        .unwrap();
    let log = s.moderator.log();
    assert_eq!(log.len(), 4, "{log:?}");
    assert_eq!(log.iter().filter(|e| e.outcome == "ok").count(), 1);
    let dropped = log.iter().filter(|e| e.outcome == "dropped: shutdown");
    assert_eq!(dropped.count(), 3);
    let series = "firehose_helix_dropped_total{reason=\"shutdown\"}";
    assert_eq!(metric(&s.registry, series), 3.0);
    assert_eq!(metric(&s.registry, "firehose_helix_queue_depth"), 0.0);
}

/// The fake's checks are what make the exact-request test mean something: they must refuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_refuses_malformed_requests() {
    let fake = FakeHelix::start();
    let http = reqwest::Client::new();
    let base = fake.base_url();
    let bans = format!("{base}/moderation/bans?broadcaster_id=1&moderator_id=2");
    let send = |req: reqwest::RequestBuilder| async move {
        req.header("Client-Id", FAKE_CLIENT_ID)
            .bearer_auth(FAKE_TOKEN)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let flat = json!({"user_id": "5"});
    assert_eq!(send(http.post(&bans).json(&flat)).await, 400);
    let zero = json!({"data": {"user_id": "5", "duration": 0}});
    assert_eq!(send(http.post(&bans).json(&zero)).await, 400);
    let chat = format!("{base}/moderation/chat?broadcaster_id=1&moderator_id=2");
    assert_eq!(send(http.delete(&chat)).await, 400);
    let no_auth = http.post(&bans).json(&json!({"data": {"user_id": "5"}}));
    assert_eq!(no_auth.send().await.unwrap().status().as_u16(), 401);
    assert_eq!(fake.rejected().len(), 4, "{:?}", fake.rejected());
    assert!(fake.requests().is_empty());
    let good = json!({"data": {"user_id": "5", "duration": 60}});
    assert_eq!(send(http.post(&bans).json(&good)).await, 200);
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_ban_that_went_through_is_not_reported_as_failed() {
    let s = start(|c| c.request_timeout_ms = 150);
    // The fake bans at once but answers late: the client times out and retries.
    s.fake.set_delay(Duration::from_millis(400));
    s.moderator.submit(request(ban("20"))).unwrap();
    wait_for(Duration::from_secs(5), "the first call", || {
        !s.fake.requests().is_empty()
    })
    .await;
    s.fake.set_delay(Duration::ZERO);
    let log = wait_log(&s, 1).await;
    assert_eq!(log[0].outcome, "ok");
    assert_eq!(log[0].attempts, 2);
    let statuses: Vec<u16> = s.fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 400]);
    assert_eq!(metric(&s.registry, "firehose_helix_retries_total"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_errors_are_retried_then_fail() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let fake = FakeHelix::start();
    let mut config = config(&fake);
    config.base_url = format!("http://{addr}/helix");
    config.max_retries = 2;
    let s = start_with(fake, config, FAKE_TOKEN);
    s.moderator.submit(request(delete("t1"))).unwrap();
    let log = wait_log(&s, 1).await;
    assert!(
        log[0].outcome.starts_with("failed: connect error"),
        "{}",
        log[0].outcome
    );
    assert_eq!(log[0].attempts, 3);
    assert_eq!(metric(&s.registry, "firehose_helix_retries_total"), 2.0);
}
