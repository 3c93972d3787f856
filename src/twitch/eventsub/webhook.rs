//! The webhook transport's door: what `POST /eventsub` does with a request, in this order:
//!
//! 1. the body was read within `webhook_max_body_bytes` (the HTTP layer; 413 beyond);
//! 2. `Twitch-Eventsub-Message-Signature` must be `sha256=` + hex HMAC-SHA256(secret,
//!    message id + timestamp + raw body), checked in constant time (`hmac`'s `verify_slice`);
//!    missing or wrong: 403;
//! 3. the timestamp must be within `webhook_max_age_s` (Twitch: 10 minutes) of now: 403;
//! 4. a message id seen before (Twitch retrying one we took, or a replay) is answered 200 and
//!    not handed on again;
//! 5. `webhook_callback_verification`: the challenge as the body, `text/plain`, and the
//!    subscription turns enabled; `revocation`: handed to the subscriber; `notification`:
//!    handed off to a bounded queue (503 when it is full, so Twitch delivers it later; the id
//!    is remembered only once it was taken) and answered 200 at once. A worker parses it with
//!    `twitch_api` and dispatches it like a WebSocket notification (a channel not served is
//!    acknowledged and counted, never refused: Twitch would retry and then revoke).
//!
//! Every answer is counted in `eventsub_webhook_requests_total{outcome}`. This handler is also
//! the seed of a serverless path: the same engine behind one HTTP handler.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use twitch_api::eventsub::Event;

use super::convert::rfc3339_ms;
use super::dispatch::Dispatcher;
use super::metrics::EventSubMetrics;
use super::subscriber::Subscriber;
use crate::config::Secret;

/// The headers the endpoint reads.
#[derive(Debug, Clone, Default)]
pub struct WebhookHeaders {
    pub message_id: Option<String>,
    pub timestamp: Option<String>,
    pub signature: Option<String>,
    pub message_type: Option<String>,
    pub subscription_type: Option<String>,
    pub subscription_version: Option<String>,
}

/// What to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookAnswer {
    /// 2xx, nothing to say.
    Accepted,
    /// 200 with this body as `text/plain`.
    Challenge(String),
    /// 403.
    Forbidden(&'static str),
    /// 400.
    BadRequest(&'static str),
    /// 503: the hand-off queue is full; Twitch delivers again later.
    Busy,
}

/// A notification taken, waiting for the worker.
#[derive(Debug)]
struct Accepted {
    headers: WebhookHeaders,
    body: bytes::Bytes,
    received_at: Instant,
}

pub struct WebhookIntake {
    secret: Secret,
    max_age: Duration,
    queue: mpsc::Sender<Accepted>,
    dispatch: Arc<Dispatcher>,
    subscriber: Option<Arc<Subscriber>>,
    metrics: EventSubMetrics,
}

impl std::fmt::Debug for WebhookIntake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookIntake").finish_non_exhaustive()
    }
}

/// `sha256=` + hex HMAC-SHA256(secret, id + timestamp + body).
pub fn sign(secret: &str, message_id: &str, timestamp: &str, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(message_id.as_bytes());
    mac.update(timestamp.as_bytes());
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `signature` signs the message, compared in constant time.
pub fn verify(
    secret: &str,
    message_id: &str,
    timestamp: &str,
    body: &[u8],
    signature: &str,
) -> bool {
    let Some(hex_sig) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(message_id.as_bytes());
    mac.update(timestamp.as_bytes());
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

impl WebhookIntake {
    /// The intake and its worker (which ends when `stop` fires, after the queue is empty).
    pub fn start(
        secret: Secret,
        config: &crate::config::EventSubConfig,
        dispatch: Arc<Dispatcher>,
        subscriber: Option<Arc<Subscriber>>,
        metrics: EventSubMetrics,
        stop: CancellationToken,
    ) -> (Arc<WebhookIntake>, JoinHandle<()>) {
        let (queue, rx) = mpsc::channel(config.webhook_queue_capacity.max(1));
        let intake = Arc::new(WebhookIntake {
            secret,
            max_age: Duration::from_secs(config.webhook_max_age_s),
            queue,
            dispatch: Arc::clone(&dispatch),
            subscriber,
            metrics: metrics.clone(),
        });
        let task = tokio::spawn(work(rx, dispatch, metrics, stop));
        (intake, task)
    }

    /// Counts a body refused for its size (the HTTP layer answers 413).
    pub fn too_large(&self) {
        self.metrics.webhook("too_large");
    }

    /// Decides on one request. Never waits.
    pub fn handle(&self, headers: WebhookHeaders, body: bytes::Bytes) -> WebhookAnswer {
        let answer = self.decide(headers, body);
        let outcome = match &answer {
            WebhookAnswer::Accepted => "accepted",
            WebhookAnswer::Challenge(_) => "challenge",
            WebhookAnswer::Forbidden(why) => why,
            WebhookAnswer::BadRequest(_) => "malformed",
            WebhookAnswer::Busy => "queue_full",
        };
        self.metrics.webhook(outcome);
        answer
    }

    fn decide(&self, headers: WebhookHeaders, body: bytes::Bytes) -> WebhookAnswer {
        let (Some(id), Some(timestamp), Some(signature)) = (
            headers.message_id.as_deref(),
            headers.timestamp.as_deref(),
            headers.signature.as_deref(),
        ) else {
            return WebhookAnswer::Forbidden("missing_signature");
        };
        if !verify(self.secret.expose(), id, timestamp, &body, signature) {
            return WebhookAnswer::Forbidden("bad_signature");
        }
        let Some(sent_ms) = rfc3339_ms(timestamp) else {
            return WebhookAnswer::Forbidden("stale");
        };
        let now_ms = crate::engine::millis(std::time::SystemTime::now());
        let age = Duration::from_millis(now_ms.abs_diff(sent_ms));
        if age > self.max_age {
            return WebhookAnswer::Forbidden("stale");
        }
        if self.dispatch.seen(id) {
            // Twitch repeats an id only when it missed our 2xx; a replay changes nothing.
            self.metrics.duplicates.inc();
            return WebhookAnswer::Accepted;
        }
        match headers.message_type.as_deref() {
            Some("webhook_callback_verification") => {
                let parsed: Option<(String, String)> =
                    serde_json::from_slice::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| {
                            let challenge = v.get("challenge")?.as_str()?.to_string();
                            let sub = v.get("subscription")?.get("id")?.as_str()?.to_string();
                            Some((challenge, sub))
                        });
                let Some((challenge, subscription)) = parsed else {
                    return WebhookAnswer::BadRequest("not a verification request");
                };
                self.dispatch.first_time(id);
                if let Some(subscriber) = &self.subscriber {
                    subscriber.verified(&subscription);
                }
                WebhookAnswer::Challenge(challenge)
            }
            Some("revocation") => match parse(&headers, &body) {
                Some(event) => {
                    self.dispatch.revocation(id, &event);
                    WebhookAnswer::Accepted
                }
                None => WebhookAnswer::BadRequest("not a revocation"),
            },
            Some("notification") => {
                let accepted = Accepted {
                    headers: headers.clone(),
                    body,
                    received_at: Instant::now(),
                };
                match self.queue.try_send(accepted) {
                    Ok(()) => {
                        self.dispatch.first_time(id);
                        self.metrics.webhook_queue_depth.inc();
                        WebhookAnswer::Accepted
                    }
                    Err(_) => WebhookAnswer::Busy,
                }
            }
            _ => WebhookAnswer::BadRequest("unknown Twitch-Eventsub-Message-Type"),
        }
    }
}

/// Parses a webhook body with `twitch_api`, from its type and version headers.
fn parse(headers: &WebhookHeaders, body: &[u8]) -> Option<Event> {
    let request = http::Request::builder()
        .header(
            "Twitch-Eventsub-Message-Type",
            headers.message_type.as_deref().unwrap_or_default(),
        )
        .header(
            "Twitch-Eventsub-Subscription-Type",
            headers.subscription_type.as_deref().unwrap_or_default(),
        )
        .header(
            "Twitch-Eventsub-Subscription-Version",
            headers.subscription_version.as_deref().unwrap_or_default(),
        )
        .body(body.to_vec())
        .ok()?;
    Event::parse_http(&request).ok()
}

async fn work(
    mut rx: mpsc::Receiver<Accepted>,
    dispatch: Arc<Dispatcher>,
    metrics: EventSubMetrics,
    stop: CancellationToken,
) {
    loop {
        let item = tokio::select! {
            item = rx.recv() => item,
            _ = stop.cancelled() => {
                rx.close();
                rx.recv().await
            }
        };
        let Some(item) = item else { return };
        metrics.webhook_queue_depth.dec();
        match parse(&item.headers, &item.body) {
            Some(event) => {
                let sent = item
                    .headers
                    .timestamp
                    .as_deref()
                    .and_then(rfc3339_ms)
                    .unwrap_or_default();
                dispatch.handle(&event, sent, item.received_at);
            }
            None => metrics.malformed("webhook_body"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_the_same_secret_and_message() {
        let sig = sign("0123456789abc", "id1", "2026-01-01T00:00:00Z", b"{}");
        assert!(sig.starts_with("sha256="));
        assert!(verify(
            "0123456789abc",
            "id1",
            "2026-01-01T00:00:00Z",
            b"{}",
            &sig
        ));
        assert!(!verify(
            "0123456789abd",
            "id1",
            "2026-01-01T00:00:00Z",
            b"{}",
            &sig
        ));
        assert!(!verify(
            "0123456789abc",
            "id2",
            "2026-01-01T00:00:00Z",
            b"{}",
            &sig
        ));
        assert!(!verify(
            "0123456789abc",
            "id1",
            "2026-01-01T00:00:01Z",
            b"{}",
            &sig
        ));
        assert!(!verify(
            "0123456789abc",
            "id1",
            "2026-01-01T00:00:00Z",
            b"{ }",
            &sig
        ));
        assert!(!verify(
            "0123456789abc",
            "id1",
            "2026-01-01T00:00:00Z",
            b"{}",
            "sha256=zz"
        ));
        assert!(!verify(
            "0123456789abc",
            "id1",
            "2026-01-01T00:00:00Z",
            b"{}",
            &sig[7..]
        ));
    }
}
