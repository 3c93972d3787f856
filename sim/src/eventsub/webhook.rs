//! Signed webhook delivery, as Twitch does it: a POST to the subscription's callback with the
//! `Twitch-Eventsub-*` headers and `Twitch-Eventsub-Message-Signature: sha256=<hex HMAC-SHA256
//! (secret, id + timestamp + body)>`; a new subscription first gets a
//! `webhook_callback_verification` (the callback must answer the challenge as its body) and
//! turns `enabled` only then. A notification is tried `webhook_attempts` times; a subscription
//! whose notifications keep failing is revoked (`notification_failures_exceeded`). One worker
//! per callback keeps each callback's order.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{payloads, EventSubShared};
use crate::state::lock;

/// Jobs queued per callback before new ones are dropped (counted as failures).
const QUEUE: usize = 10_000;

/// `sha256=` + hex HMAC-SHA256(secret, message id + timestamp + body).
pub fn signature(secret: &str, message_id: &str, timestamp: &str, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(message_id.as_bytes());
    mac.update(timestamp.as_bytes());
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// One POST to make.
#[derive(Debug, Clone)]
pub struct Job {
    pub subscription_id: String,
    pub kind: String,
    pub version: String,
    pub callback: String,
    pub secret: String,
    pub message_id: String,
    /// `notification`, `webhook_callback_verification` or `revocation`.
    pub message_type: &'static str,
    pub body: String,
}

/// The per-callback workers.
pub struct Webhooks {
    http: reqwest::Client,
    queues: Mutex<HashMap<String, mpsc::Sender<Job>>>,
    stop: CancellationToken,
}

impl Webhooks {
    pub fn new(stop: CancellationToken) -> Webhooks {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Webhooks {
            http,
            queues: Mutex::new(HashMap::new()),
            stop,
        }
    }

    /// Queues a job on its callback's worker (started on first use).
    pub fn push(&self, shared: EventSubShared, job: Job) {
        let mut queues = lock(&self.queues);
        let tx = queues
            .entry(job.callback.clone())
            .or_insert_with(|| {
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(worker(
                    shared.clone(),
                    rx,
                    self.http.clone(),
                    self.stop.clone(),
                ));
                tx
            })
            .clone();
        drop(queues);
        if tx.try_send(job).is_err() {
            lock(&shared.inner.state).stats.webhook_failures += 1;
        }
    }
}

async fn worker(
    shared: EventSubShared,
    mut jobs: mpsc::Receiver<Job>,
    http: reqwest::Client,
    stop: CancellationToken,
) {
    loop {
        let job = tokio::select! {
            _ = stop.cancelled() => return,
            job = jobs.recv() => job,
        };
        let Some(job) = job else { return };
        let attempts = shared.inner.config.webhook_attempts.max(1);
        let mut delivered = None;
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            }
            match post(&shared, &http, &job, attempt).await {
                Some(body) => {
                    delivered = Some(body);
                    break;
                }
                None => lock(&shared.inner.state).stats.webhook_failures += 1,
            }
        }
        settle(&shared, &job, delivered);
    }
}

/// One POST; the response body when the answer was 2xx.
async fn post(
    shared: &EventSubShared,
    http: &reqwest::Client,
    job: &Job,
    retry: u32,
) -> Option<String> {
    let timestamp = payloads::now_rfc3339();
    let signature = signature(
        &job.secret,
        &job.message_id,
        &timestamp,
        job.body.as_bytes(),
    );
    lock(&shared.inner.state).stats.webhook_posts += 1;
    let response = http
        .post(&job.callback)
        .timeout(shared.inner.config.webhook_timeout)
        .header("content-type", "application/json")
        .header("twitch-eventsub-message-id", &job.message_id)
        .header("twitch-eventsub-message-retry", retry.to_string())
        .header("twitch-eventsub-message-type", job.message_type)
        .header("twitch-eventsub-message-signature", signature)
        .header("twitch-eventsub-message-timestamp", &timestamp)
        .header("twitch-eventsub-subscription-type", &job.kind)
        .header("twitch-eventsub-subscription-version", &job.version)
        .body(job.body.clone())
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.text().await.ok()
}

/// What a job's outcome changes: a verified subscription is enabled, a failed verification
/// removes it, notifications failing too often revoke it.
fn settle(shared: &EventSubShared, job: &Job, delivered: Option<String>) {
    match job.message_type {
        "webhook_callback_verification" => {
            let expected = serde_json::from_str::<serde_json::Value>(&job.body)
                .ok()
                .and_then(|v| {
                    v.get("challenge")
                        .and_then(|c| c.as_str())
                        .map(str::to_string)
                });
            let verified = delivered.is_some() && delivered == expected;
            let mut es = lock(&shared.inner.state);
            es.stats.webhook_verifications += 1;
            if verified {
                if let Some(sub) = es.subscriptions.get_mut(&job.subscription_id) {
                    sub.status = "enabled".into();
                }
            } else if let Some(sub) = es.subscriptions.get_mut(&job.subscription_id) {
                sub.status = "webhook_callback_verification_failed".into();
            }
        }
        "notification" => {
            let revoke = {
                let mut es = lock(&shared.inner.state);
                let limit = shared.inner.config.webhook_failures_before_revoke.max(1);
                match es.subscriptions.get_mut(&job.subscription_id) {
                    Some(sub) if delivered.is_some() => {
                        sub.failures = 0;
                        None
                    }
                    Some(sub) => {
                        sub.failures += 1;
                        (sub.failures >= limit).then(|| {
                            sub.status = "notification_failures_exceeded".into();
                            sub.clone()
                        })
                    }
                    None => None,
                }
            };
            if let Some(sub) = revoke {
                shared.send_revocation(&sub);
                let key = sub.key.clone();
                lock(&shared.inner.state).remove_subscription(&sub.id);
                shared.after_removal(&[key]);
            }
        }
        _ => {}
    }
}

/// The verification request's body for a new webhook subscription.
pub fn challenge_body(subscription: &serde_json::Value, challenge: &str) -> String {
    serde_json::json!({ "challenge": challenge, "subscription": subscription }).to_string()
}
