//! The HTTP endpoints: health, readiness, metrics, channel list and the admin token.

mod common;

use std::time::Duration;

use common::*;
use firehose::app::ServiceOptions;
use firehose::cli::Server;

fn url(service: &Server, path: &str) -> String {
    format!("http://{}{}", service.http_addr(), path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_metrics_and_channel_list() {
    let sim = sim(3, |_| {}).await;
    let channels = sim_channels(3);
    let service = service(
        config_for(sim.local_addr(), &channels),
        ServiceOptions::default(),
    )
    .await;
    let http = reqwest::Client::new();

    let health = http
        .get(url(&service, "/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    let ready = http
        .get(url(&service, "/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(body["ready"], true);

    sim.send_privmsg(&channels[0], "viewer", "!ping")
        .await
        .expect("joined");
    wait_until("the reply arrived", Duration::from_secs(5), || {
        sim.stats().replies_matched >= 1
    })
    .await;

    let metrics = http
        .get(url(&service, "/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.expect("text");
    for name in [
        "firehose_messages_received_total{",
        "firehose_messages_processed_total{",
        "firehose_messages_shed_total{",
        "firehose_messages_in_flight{",
        "firehose_actor_restarts_total{",
        "firehose_reply_latency_seconds_bucket{",
        "firehose_twitch_connections_total",
        "firehose_irc_lines_received_total",
    ] {
        assert!(text.contains(name), "metrics lack {name}:\n{text}");
    }
    assert_eq!(
        metric_value(&text, "firehose_messages_processed_total{"),
        1.0
    );
    assert_eq!(
        metric_value(&text, "firehose_reply_latency_seconds_count"),
        1.0
    );
    assert_eq!(metric_value(&text, "firehose_twitch_connected"), 1.0);

    let list: serde_json::Value = http
        .get(url(&service, "/v1/channels"))
        .send()
        .await
        .expect("channels")
        .json()
        .await
        .expect("json");
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 3);
    let first = list
        .iter()
        .find(|c| c["channel"] == channels[0].as_str())
        .expect("listed");
    assert_eq!(first["state"], "running");
    assert_eq!(first["platform"], "twitch");
    assert_eq!(first["processed"], 1);
    assert_eq!(first["shed"], 0);
    assert_eq!(first["restarts"], 0);
    assert_eq!(first["joined"], true);
    assert!(first["last_error"].is_null());

    service.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_with_a_reason_while_disconnected() {
    // Nothing listens on this port: the service cannot connect.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    let service = Server::start(
        config_for(addr, &["nobody".to_string()]),
        ServiceOptions::default(),
    )
    .await
    .expect("starts even when chat is down");
    let response = reqwest::get(url(&service, "/readyz"))
        .await
        .expect("readyz");
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["ready"], false);
    let reasons = body["reasons"].to_string();
    assert!(reasons.contains("not connected"), "{reasons}");
    let health = reqwest::get(url(&service, "/healthz"))
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200, "alive even when not ready");
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_join_and_part_need_the_token() {
    let sim = sim(2, |_| {}).await;
    let channels = sim_channels(2);
    let service = service(
        config_for(sim.local_addr(), &channels[..1]),
        ServiceOptions::default(),
    )
    .await;
    let http = reqwest::Client::new();
    let target = &channels[1];
    let path = url(&service, &format!("/v1/channels/{target}"));

    let none = http.post(&path).send().await.expect("post");
    assert_eq!(none.status(), 401);
    // Flushing the state store is an admin action too.
    let flush = url(&service, "/v1/store/flush");
    assert_eq!(http.post(&flush).send().await.expect("post").status(), 401);
    let flushed = http.post(&flush).send_as_admin().await;
    assert_eq!(flushed.status(), 200);
    let wrong = http
        .post(&path)
        .bearer_auth("not-the-token")
        .send()
        .await
        .expect("post");
    assert_eq!(wrong.status(), 401);
    let almost = http
        .post(&path)
        .bearer_auth(&ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1])
        .send()
        .await
        .expect("post");
    assert_eq!(
        almost.status(),
        401,
        "a prefix of the token is not the token"
    );
    assert!(
        service.core().registry.len() == 1,
        "nothing joined without the token"
    );

    let joined = http.post(&path).send_as_admin().await;
    assert_eq!(joined.status(), 201);
    wait_until_async(
        "the new channel is joined on chat",
        Duration::from_secs(5),
        || async { service.core().twitch.status().is_joined(target) },
    )
    .await;
    let id = sim
        .send_privmsg(target, "viewer", "!ping")
        .await
        .expect("sim sees the join");
    wait_until("the new channel answers", Duration::from_secs(5), || {
        sim.received()
            .iter()
            .any(|m| m.reply_parent.as_deref() == Some(id.as_str()))
    })
    .await;
    let again = http.post(&path).send_as_admin().await;
    assert_eq!(again.status(), 200, "joining twice is not an error");

    let bad = http
        .post(url(&service, "/v1/channels/Not%20A%20Login"))
        .send_as_admin()
        .await;
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("not a channel login")),
        "{body}"
    );

    let no_token_delete = http.delete(&path).send().await.expect("delete");
    assert_eq!(no_token_delete.status(), 401);
    let parted = http.delete(&path).send_as_admin().await;
    assert_eq!(parted.status(), 200);
    assert!(service.core().registry.len() == 1);
    let gone = http.delete(&path).send_as_admin().await;
    assert_eq!(gone.status(), 404);
    wait_until("the sim saw the PART", Duration::from_secs(5), || {
        sim.stats().parts >= 1
    })
    .await;

    // Raw IRC can never be smuggled through the path (it is percent-decoded).
    let injected = http
        .delete(url(&service, "/v1/channels/x%0D%0APRIVMSG%20%23c%20%3Ahi"))
        .send_as_admin()
        .await;
    assert_eq!(injected.status(), 400);

    // Part and join again at once: the channel ends up joined.
    let joined = http.post(&path).send_as_admin().await;
    assert_eq!(joined.status(), 201);
    wait_until_async("joined again", Duration::from_secs(5), || async {
        service.core().twitch.status().is_joined(target)
    })
    .await;
    let parted = http.delete(&path).send_as_admin().await;
    assert_eq!(parted.status(), 200);
    let rejoined = http.post(&path).send_as_admin().await;
    assert_eq!(rejoined.status(), 201);
    wait_until_async(
        "joined after a quick part and join",
        Duration::from_secs(10),
        || async {
            service.core().twitch.status().is_joined(target) && service.core().readiness().ready
        },
    )
    .await;
    let id = sim
        .send_privmsg(target, "viewer", "!ping")
        .await
        .expect("the sim has us joined");
    wait_until(
        "answered after the quick re-join",
        Duration::from_secs(5),
        || {
            sim.received()
                .iter()
                .any(|m| m.reply_parent.as_deref() == Some(id.as_str()))
        },
    )
    .await;

    service.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_token_the_admin_api_refuses_everything() {
    let sim = sim(1, |_| {}).await;
    let channels = sim_channels(1);
    let mut config = config_for(sim.local_addr(), &channels);
    config.secrets.admin_token = None;
    let service = service(config, ServiceOptions::default()).await;
    let response = reqwest::Client::new()
        .post(url(&service, "/v1/channels/somebody"))
        .bearer_auth("")
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 401);
    service.shutdown().await;
    sim.shutdown().await;
}

/// `GET /v1/channels` a page at a time: sorted by name by default or busiest first, the total
/// in `X-Total-Count`, and a clear 400 for a bad page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_channel_list_is_paged_and_sorted() {
    let sim = sim(5, |_| {}).await;
    let channels = sim_channels(5);
    let service = service(
        config_for(sim.local_addr(), &channels),
        ServiceOptions::default(),
    )
    .await;
    // Traffic in the last channel only: it is the busiest.
    let busiest = &channels[4];
    sim.send_privmsg(busiest, "viewer", "hello there").await;
    let registry = service.core().registry.clone();
    wait_until("the message is counted", Duration::from_secs(10), || {
        registry.all().iter().any(|c| {
            c.counters
                .processed
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0
        })
    })
    .await;
    let http = reqwest::Client::new();
    let get = |query: &str| {
        http.get(url(&service, &format!("/v1/channels{query}")))
            .send()
    };
    let names = |list: &serde_json::Value| -> Vec<String> {
        list.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c["channel"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let page = get("?limit=2&offset=1").await.expect("page");
    assert_eq!(page.status(), 200);
    assert_eq!(
        page.headers()
            .get("x-total-count")
            .and_then(|v| v.to_str().ok()),
        Some("5")
    );
    let mut sorted = channels.clone();
    sorted.sort();
    let list: serde_json::Value = page.json().await.expect("json");
    assert_eq!(
        names(&list),
        sorted[1..3].to_vec(),
        "by name, second and third"
    );
    let top: serde_json::Value = get("?sort=received&limit=1")
        .await
        .expect("top")
        .json()
        .await
        .expect("json");
    assert_eq!(names(&top), std::slice::from_ref(busiest));
    let past: serde_json::Value = get("?offset=99")
        .await
        .expect("past")
        .json()
        .await
        .expect("json");
    assert_eq!(names(&past), Vec::<String>::new());
    for bad in [
        "?limit=0",
        "?limit=10001",
        "?limit=x",
        "?sort=evil",
        "?page=2",
    ] {
        let r = get(bad).await.expect("answered");
        assert_eq!(r.status(), 400, "{bad}");
        let body: serde_json::Value = r.json().await.expect("an error body");
        assert!(body["error"].is_string(), "{bad}: {body}");
    }
    service.shutdown().await;
    sim.shutdown().await;
}
