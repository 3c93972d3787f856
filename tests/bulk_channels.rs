//! Joining and parting many channels at once: `POST`/`DELETE /v1/channels` with a list,
//! answered at once (accepted / already / invalid), the work done in the background with its
//! progress in metrics and `/v1/channels`; and the refusals (no token, too many, a bad body).

mod common;

use std::time::Duration;

use common::*;
use firehose::app::ServiceOptions;
use firehose::channel::ChannelKey;

const DEADLINE: Duration = Duration::from_secs(60);

/// A bulk join (`POST`) or part (`DELETE`) of `channels` as the admin: its 202 answer.
async fn bulk(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    channels: &[String],
) -> serde_json::Value {
    let r = http
        .request(method, url)
        .json(&serde_json::json!({ "channels": channels }))
        .send_as_admin()
        .await;
    assert_eq!(r.status(), 202);
    r.json().await.expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_channels_are_joined_and_parted_through_one_request_each() {
    let sim = sim(300, |_| {}).await;
    let channels = sim_channels(300);
    let config = config_for(sim.local_addr(), &[]);
    let service = service(config, ServiceOptions::default()).await;
    let url = format!("http://{}/v1/channels", service.http_addr());
    let http = reqwest::Client::new();

    let mut entries: Vec<String> = channels.clone();
    entries.push(channels[0].to_uppercase());
    entries.push("not a login".into());
    entries.push("<script>".into());
    let answer = bulk(&http, reqwest::Method::POST, &url, &entries).await;
    assert_eq!(answer["accepted"], 300);
    assert_eq!(answer["already"], 0);
    assert_eq!(
        answer["invalid"],
        serde_json::json!(["not a login", "<script>"])
    );
    let status = service.core().twitch.status();
    wait_until("every channel has an actor and is joined", DEADLINE, || {
        channels.iter().all(|c| {
            service
                .core()
                .registry
                .get(&ChannelKey::twitch(c))
                .is_some()
                && status.is_joined(c)
        })
    })
    .await;
    let metrics = reqwest::get(format!("http://{}/metrics", service.http_addr()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert_eq!(
        metric_value(&metrics, "firehose_channels_join_pending"),
        0.0
    );
    assert_eq!(
        metric_value(
            &metrics,
            "firehose_channels_bulk_total{op=\"join\",outcome=\"accepted\"}"
        ),
        300.0
    );
    let id = ping(&sim, &channels[299], "viewer").await;
    wait_until("the last channel answers", Duration::from_secs(10), || {
        sim.received()
            .iter()
            .any(|m| m.reply_parent.as_deref() == Some(id.as_str()))
    })
    .await;

    // The same list again: all already there.
    let again = bulk(&http, reqwest::Method::POST, &url, &channels).await;
    assert_eq!(
        (again["accepted"].as_u64(), again["already"].as_u64()),
        (Some(0), Some(300))
    );

    // Part a third of them.
    let gone = channels[..100].to_vec();
    let parted = bulk(&http, reqwest::Method::DELETE, &url, &gone).await;
    assert_eq!(parted["accepted"], 100);
    wait_until("the parted channels are gone", DEADLINE, || {
        gone.iter().all(|c| {
            service
                .core()
                .registry
                .get(&ChannelKey::twitch(c))
                .is_none()
        })
    })
    .await;
    assert!(channels[100..].iter().all(|c| service
        .core()
        .registry
        .get(&ChannelKey::twitch(c))
        .is_some()));
    let again = bulk(&http, reqwest::Method::DELETE, &url, &gone).await;
    assert_eq!(
        (again["accepted"].as_u64(), again["already"].as_u64()),
        (Some(0), Some(100))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_requests_are_refused_whole_without_the_token_or_beyond_their_bounds() {
    let sim = sim(1, |_| {}).await;
    let config = config_for(sim.local_addr(), &[]);
    let service = service(config, ServiceOptions::default()).await;
    let url = format!("http://{}/v1/channels", service.http_addr());
    let http = reqwest::Client::new();
    let body = serde_json::json!({"channels": ["somechannel"]});
    let r = http.post(&url).json(&body).send().await.expect("sent");
    assert_eq!(r.status(), 401, "no token");
    let r = http.delete(&url).json(&body).send().await.expect("sent");
    assert_eq!(r.status(), 401, "no token");
    let too_many: Vec<String> = (0..100_001).map(|n| format!("c{n}")).collect();
    let r = http
        .post(&url)
        .json(&serde_json::json!({"channels": too_many}))
        .send_as_admin()
        .await;
    assert_eq!(r.status(), 400);
    for bad in [
        "[]",
        "{\"channels\": \"x\"}",
        "{\"channels\": [], \"more\": 1}",
        "not json",
    ] {
        let r = http
            .post(&url)
            .header("content-type", "application/json")
            .body(bad)
            .send_as_admin()
            .await;
        assert_eq!(r.status(), 400, "{bad}");
        let error: serde_json::Value = r.json().await.expect("json");
        assert!(
            error["error"]
                .as_str()
                .is_some_and(|e| e.contains("channels")),
            "{bad}: {error}"
        );
    }
    assert!(service
        .core()
        .registry
        .get(&ChannelKey::twitch("somechannel"))
        .is_none());
}
