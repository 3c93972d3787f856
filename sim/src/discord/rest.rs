//! The fake's REST side (axum over TLS): answers `GET /api/v10/gateway` (and `/gateway/bot`)
//! with its `ws://127.0.0.1` gateway, and records message posts, deletes, member edits
//! (timeouts) and bans. Every request must carry `Authorization: Bot <token>` (401 otherwise).
//! Posts can be made to answer 429 (with `Retry-After`) to exercise the ratelimiter.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::payloads::{self, MessageSpec};
use super::{FakeState, Recorded};

pub fn routes(state: Arc<FakeState>) -> Router {
    Router::new()
        .route("/api/v10/gateway", get(gateway))
        .route("/api/v10/gateway/bot", get(gateway_bot))
        .route("/api/v10/channels/{channel}/messages", post(post_message))
        .route(
            "/api/v10/channels/{channel}/messages/{message}",
            axum::routing::delete(record_no_content),
        )
        .route("/api/v10/guilds/{guild}/members/{user}", patch(edit_member))
        .route(
            "/api/v10/guilds/{guild}/bans/{user}",
            put(record_no_content).delete(record_no_content),
        )
        .fallback(unknown)
        .with_state(state)
}

fn authorized(state: &FakeState, headers: &HeaderMap) -> bool {
    let expected = format!("Bot {}", state.config.token);
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == expected)
}

fn unauthorized(state: &FakeState) -> Response {
    state.unauthorized.fetch_add(1, Ordering::Relaxed);
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"message": "401: Unauthorized", "code": 0})),
    )
        .into_response()
}

async fn gateway(State(state): State<Arc<FakeState>>, headers: HeaderMap) -> Response {
    state.gateway_asks.fetch_add(1, Ordering::Relaxed);
    if !authorized(&state, &headers) {
        return unauthorized(&state);
    }
    let url = state
        .config
        .advertised_gateway
        .clone()
        .unwrap_or_else(|| state.gateway_url());
    Json(json!({ "url": url })).into_response()
}

async fn gateway_bot(State(state): State<Arc<FakeState>>, headers: HeaderMap) -> Response {
    state.gateway_asks.fetch_add(1, Ordering::Relaxed);
    if !authorized(&state, &headers) {
        return unauthorized(&state);
    }
    Json(json!({
        "url": state.gateway_url(),
        "shards": state.config.shards,
        "session_start_limit": {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1},
    }))
    .into_response()
}

fn record(state: &FakeState, method: &Method, path: &str, headers: &HeaderMap, body: Value) {
    let reason = headers
        .get("x-audit-log-reason")
        .and_then(|v| v.to_str().ok())
        .map(percent_decode);
    state.record(Recorded {
        method: method.to_string(),
        path: path.to_string(),
        body,
        reason,
    });
}

async fn post_message(
    State(state): State<Arc<FakeState>>,
    Path(channel): Path<u64>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized(&state);
    }
    if take_one(&state.posts_to_refuse) {
        state.answered_429.fetch_add(1, Ordering::Relaxed);
        let retry_after = "0.05";
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", retry_after), ("x-ratelimit-scope", "user")],
            Json(json!({"message": "You are being rate limited.", "retry_after": 0.05, "global": false})),
        )
            .into_response();
    }
    let path = format!("/api/v10/channels/{channel}/messages");
    record(&state, &Method::POST, &path, &headers, body.clone());
    let spec = MessageSpec {
        id: state.next_id(),
        channel_id: channel,
        guild_id: 0,
        author_id: payloads::BOT_USER_ID,
        author_name: "firehose-bot".into(),
        content: body["content"].as_str().unwrap_or_default().to_string(),
        reply_to: body["message_reference"]["message_id"]
            .as_str()
            .and_then(|id| id.parse().ok()),
        ..MessageSpec::default()
    };
    Json(payloads::message(&spec)).into_response()
}

async fn edit_member(
    State(state): State<Arc<FakeState>>,
    Path((_guild, user)): Path<(u64, u64)>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    if !authorized(&state, &parts.headers) {
        return unauthorized(&state);
    }
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    record(
        &state,
        &parts.method,
        parts.uri.path(),
        &parts.headers,
        body.clone(),
    );
    let until = body["communication_disabled_until"].as_str();
    Json(payloads::member(user, until)).into_response()
}

async fn record_no_content(State(state): State<Arc<FakeState>>, request: Request) -> Response {
    if !authorized(&state, request.headers()) {
        return unauthorized(&state);
    }
    record(
        &state,
        request.method(),
        request.uri().path(),
        request.headers(),
        Value::Null,
    );
    StatusCode::NO_CONTENT.into_response()
}

async fn unknown(State(state): State<Arc<FakeState>>, request: Request) -> Response {
    record(
        &state,
        request.method(),
        request.uri().path(),
        request.headers(),
        Value::Null,
    );
    (
        StatusCode::NOT_FOUND,
        Json(json!({"message": "404: Not Found", "code": 0})),
    )
        .into_response()
}

/// Takes one from a counter of things still to do, if any.
fn take_one(counter: &std::sync::atomic::AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
        .is_ok()
}

/// Decodes `%XX` escapes (serenity percent-encodes the audit-log reason header).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
