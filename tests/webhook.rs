//! The EventSub webhook transport and the `POST /eventsub` endpoint: subscriptions verified by
//! Twitch's challenge and fed by signed POSTs (the simulator's), and the door's checks against
//! forged requests: bad or missing signature, stale timestamp, replayed id, oversized body, a
//! channel not served, a body that does not parse.

mod common;

use std::time::Duration;

use common::*;
use firehose::app::ServiceOptions;
use firehose::config::{EventSubTransport, Secret};
use firehose::twitch::eventsub::webhook::sign;
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_subscriptions_are_verified_and_carry_chat() {
    let sim = sim(2, |_| {}).await;
    let channels = sim_channels(2);
    let port = free_port();
    let mut config = eventsub_config(&sim, &channels, EventSubTransport::Webhook);
    config.http.listen = format!("127.0.0.1:{port}").parse().expect("addr");
    config.twitch.eventsub.webhook_callback = format!("http://127.0.0.1:{port}/eventsub");
    config.secrets.webhook_secret = Some(Secret::new(WEBHOOK_SECRET));
    let service = service(config, ServiceOptions::default()).await;
    let es = sim.eventsub();
    // The simulator verifies each callback after answering its creation: wait for all 16.
    wait_until("every subscription verified", DEADLINE, || {
        es.stats().webhook_verifications == 16
    })
    .await;
    assert!(es.subscriptions().iter().all(|(_, _, m)| m == "webhook"));
    let mut ids = Vec::new();
    for channel in &channels {
        ids.push(ping(&sim, channel, "hooked").await);
    }
    wait_until("answered through webhooks", DEADLINE, || {
        ids.iter().all(|id| sim.replies_to(id) == 1)
    })
    .await;
    let text = service.core().metrics.render();
    assert!(
        metric_value(
            &text,
            "firehose_eventsub_webhook_requests_total{outcome=\"challenge\"}"
        ) >= 16.0
    );
    assert!(
        metric_value(
            &text,
            "firehose_eventsub_webhook_requests_total{outcome=\"accepted\"}"
        ) >= 2.0
    );
    service.shutdown().await;
    sim.shutdown().await;
}

/// A notification body (`subscription` + `event`) as Twitch sends it, for `line`'s event.
fn body_for(line: &str) -> (String, &'static str) {
    let event = firehose_sim::eventsub::payloads::from_irc_line(line).expect("a chat line");
    let subscription = firehose_sim::eventsub::payloads::subscription(
        "sub-1",
        event.kind,
        "1",
        "enabled",
        &json!({"broadcaster_user_id": event.broadcaster_id, "user_id": "1"}),
        &json!({"method": "webhook", "callback": "https://example.invalid/eventsub"}),
        "2026-01-01T00:00:00Z",
        0,
    );
    (
        json!({"subscription": subscription, "event": event.event}).to_string(),
        event.kind,
    )
}

fn privmsg(channel: &str, id: &str, text: &str) -> String {
    format!(
        "@badge-info=;badges=;color=;display-name=Hook;emotes=;first-msg=0;flags=;id={id};mod=0;room-id=100000;subscriber=0;tmi-sent-ts=1700000000000;turbo=0;user-id=4242;user-type= :hook!hook@hook.tmi.twitch.tv PRIVMSG #{channel} :{text}"
    )
}

fn now_rfc3339(offset: chrono::Duration) -> String {
    (chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now()) + offset)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

struct Post<'a> {
    id: &'a str,
    kind: &'a str,
    message_type: &'a str,
    timestamp: String,
    body: String,
    signature: Option<String>,
}

async fn post(service: &firehose::cli::Server, p: Post<'_>) -> (u16, String) {
    let url = format!("http://{}/eventsub", service.http_addr());
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("twitch-eventsub-message-id", p.id)
        .header("twitch-eventsub-message-retry", "0")
        .header("twitch-eventsub-message-type", p.message_type)
        .header("twitch-eventsub-message-timestamp", &p.timestamp)
        .header("twitch-eventsub-subscription-type", p.kind)
        .header("twitch-eventsub-subscription-version", "1")
        .body(p.body);
    if let Some(signature) = p.signature {
        request = request.header("twitch-eventsub-message-signature", signature);
    }
    let response = request.send().await.expect("sent");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

fn signed<'a>(
    id: &'a str,
    kind: &'a str,
    message_type: &'a str,
    timestamp: String,
    body: String,
) -> Post<'a> {
    let signature = Some(sign(WEBHOOK_SECRET, id, &timestamp, body.as_bytes()));
    Post {
        id,
        kind,
        message_type,
        timestamp,
        body,
        signature,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stale_replayed_and_oversized_webhooks_are_refused_and_counted() {
    // IRC ingest; the endpoint is on because a secret is set.
    let sim = sim(1, |_| {}).await;
    let channel = sim_channels(1).remove(0);
    let mut config = config_for(sim.local_addr(), std::slice::from_ref(&channel));
    config.helix.client_id = firehose_sim::api::CLIENT_ID.to_string();
    config.helix.base_url = sim.api().helix_url();
    config.twitch.auth.oauth_url = sim.api().oauth_url();
    config.secrets.webhook_secret = Some(Secret::new(WEBHOOK_SECRET));
    config.twitch.eventsub.webhook_max_body_bytes = 8 * 1024;
    let service = service(config, ServiceOptions::default()).await;
    let metrics = || service.core().metrics.render();
    let count = |outcome: &str| {
        metric_value(
            &metrics(),
            &format!("firehose_eventsub_webhook_requests_total{{outcome=\"{outcome}\"}}"),
        )
    };
    let (body, kind) = body_for(&privmsg(&channel, "hook-1", "hello from a webhook"));
    // Good: handed on, handled.
    let (status, _) = post(
        &service,
        signed(
            "m-1",
            kind,
            "notification",
            now_rfc3339(chrono::Duration::zero()),
            body.clone(),
        ),
    )
    .await;
    assert_eq!(status, 204);
    wait_until("the webhook message was handled", DEADLINE, || {
        processed(&service, &channel) == 1
    })
    .await;
    // Replayed id: 2xx, not handled again.
    let (status, _) = post(
        &service,
        signed(
            "m-1",
            kind,
            "notification",
            now_rfc3339(chrono::Duration::zero()),
            body.clone(),
        ),
    )
    .await;
    assert_eq!(status, 204);
    // Bad signature (another secret), missing signature: 403.
    let timestamp = now_rfc3339(chrono::Duration::zero());
    let forged = Post {
        id: "m-2",
        kind,
        message_type: "notification",
        signature: Some(sign(
            "not-the-secret-0123",
            "m-2",
            &timestamp,
            body.as_bytes(),
        )),
        timestamp,
        body: body.clone(),
    };
    assert_eq!(post(&service, forged).await.0, 403);
    let unsigned = Post {
        id: "m-3",
        kind,
        message_type: "notification",
        timestamp: now_rfc3339(chrono::Duration::zero()),
        body: body.clone(),
        signature: None,
    };
    assert_eq!(post(&service, unsigned).await.0, 403);
    // Tampered body under a good signature of the original.
    let timestamp = now_rfc3339(chrono::Duration::zero());
    let tampered = Post {
        id: "m-4",
        kind,
        message_type: "notification",
        signature: Some(sign(WEBHOOK_SECRET, "m-4", &timestamp, body.as_bytes())),
        timestamp,
        body: body.replace("hello", "HELLO"),
    };
    assert_eq!(post(&service, tampered).await.0, 403);
    // Stale: correctly signed, 11 minutes old (and from the future).
    let (status, _) = post(
        &service,
        signed(
            "m-5",
            kind,
            "notification",
            now_rfc3339(chrono::Duration::minutes(-11)),
            body.clone(),
        ),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = post(
        &service,
        signed(
            "m-6",
            kind,
            "notification",
            now_rfc3339(chrono::Duration::minutes(11)),
            body.clone(),
        ),
    )
    .await;
    assert_eq!(status, 403);
    // Oversized: 413, counted.
    let huge = format!("{{\"pad\":\"{}\"}}", "x".repeat(16 * 1024));
    let (status, _) = post(
        &service,
        signed(
            "m-7",
            kind,
            "notification",
            now_rfc3339(chrono::Duration::zero()),
            huge,
        ),
    )
    .await;
    assert_eq!(status, 413);
    // The verification challenge: echoed as text/plain.
    let challenge =
        json!({"challenge": "pogchamp-kappa-360noscope", "subscription": {"id": "sub-9"}})
            .to_string();
    let (status, text) = post(
        &service,
        signed(
            "m-8",
            kind,
            "webhook_callback_verification",
            now_rfc3339(chrono::Duration::zero()),
            challenge,
        ),
    )
    .await;
    assert_eq!((status, text.as_str()), (200, "pogchamp-kappa-360noscope"));
    // A channel this service does not serve: acknowledged, counted, not refused.
    let (other, _) = body_for(&privmsg("someoneelse", "hook-2", "hi"));
    let (status, _) = post(
        &service,
        signed(
            "m-9",
            kind,
            "notification",
            now_rfc3339(chrono::Duration::zero()),
            other,
        ),
    )
    .await;
    assert_eq!(status, 204);
    // A signed body that is not an event: acknowledged, counted as malformed by the worker.
    let (status, _) = post(
        &service,
        signed(
            "m-10",
            kind,
            "notification",
            now_rfc3339(chrono::Duration::zero()),
            "{\"nope\":1}".into(),
        ),
    )
    .await;
    assert_eq!(status, 204);
    // A revocation: counted.
    let (status, _) = post(
        &service,
        signed(
            "m-11",
            kind,
            "revocation",
            now_rfc3339(chrono::Duration::zero()),
            body.replace("\"enabled\"", "\"authorization_revoked\""),
        ),
    )
    .await;
    assert_eq!(status, 204);
    wait_until("everything counted", DEADLINE, || {
        let text = metrics();
        metric_value(&text, "firehose_eventsub_unserved_total") == 1.0
            && metric_value(
                &text,
                "firehose_eventsub_malformed_total{reason=\"webhook_body\"}",
            ) == 1.0
    })
    .await;
    assert_eq!(
        processed(&service, &channel),
        1,
        "nothing but the good message was handled"
    );
    assert_eq!(count("bad_signature"), 2.0);
    assert_eq!(count("missing_signature"), 1.0);
    assert_eq!(count("stale"), 2.0);
    assert_eq!(count("too_large"), 1.0);
    assert_eq!(count("challenge"), 1.0);
    assert_eq!(
        metric_value(&metrics(), "firehose_eventsub_duplicates_total"),
        1.0
    );
    assert_eq!(
        metric_value(
            &metrics(),
            "firehose_eventsub_revocations_total{reason=\"authorization_revoked\"}"
        ),
        1.0
    );
    assert!(
        service.core().readiness().ready,
        "IRC chat is untouched: {:?}",
        service.core().readiness().reasons
    );
    service.shutdown().await;
    sim.shutdown().await;
}
