//! The bench's recording Helix: a minimal Helix moderation endpoint on 127.0.0.1 that answers
//! like Helix (ban 200 with data, delete 204, empty `GET /streams`) and tells the simulator's
//! latency tracker the moment each delete, timeout or ban arrives, so moderation latency is
//! measured from the simulator's send of the spam message to its moderation call arriving.
//!
//! It checks nothing beyond what it needs to match the call (the checking fake for tests is
//! `firehose_sim::helix`); calls it cannot read are counted as `malformed`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use firehose_sim::track::ModerationCall;
use firehose_sim::SimHandle;

/// Client id and token the bench configures (any value works here).
pub const BENCH_CLIENT_ID: &str = "benchclientid";
pub const BENCH_TOKEN: &str = "benchtoken";

/// Counters of the recording Helix.
#[derive(Debug, Default)]
pub struct HelixCounts {
    pub bans: AtomicU64,
    pub deletes: AtomicU64,
    pub other: AtomicU64,
    pub malformed: AtomicU64,
}

#[derive(Clone)]
struct AppState {
    sim: SimHandle,
    counts: Arc<HelixCounts>,
}

/// A running recording Helix; stops when dropped.
pub struct RecordingHelix {
    pub base_url: String,
    pub counts: Arc<HelixCounts>,
    stop: CancellationToken,
}

impl Drop for RecordingHelix {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The recording Helix's routes (to serve them on another server, e.g. the simulated Twitch
/// API's port when the service reads chat through EventSub).
pub fn router(sim: SimHandle, counts: Arc<HelixCounts>) -> axum::Router {
    axum::Router::new()
        .fallback(handle)
        .with_state(AppState { sim, counts })
}

impl RecordingHelix {
    /// Binds 127.0.0.1:0 and serves until dropped.
    pub async fn start(sim: SimHandle) -> std::io::Result<RecordingHelix> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let counts = Arc::new(HelixCounts::default());
        let app = router(sim, Arc::clone(&counts));
        let stop = CancellationToken::new();
        let server =
            axum::serve(listener, app).with_graceful_shutdown(stop.clone().cancelled_owned());
        tokio::spawn(async move {
            if let Err(e) = server.await {
                tracing::warn!(error = %e, "bench Helix server ended");
            }
        });
        Ok(RecordingHelix {
            base_url: format!("http://{addr}/helix"),
            counts,
            stop,
        })
    }
}

fn query_value(uri: &Uri, key: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| v.to_string())
    })
}

fn ratelimited(status: StatusCode, body: Option<Value>) -> Response {
    let mut response = match body {
        Some(body) => (status, axum::Json(body)).into_response(),
        None => status.into_response(),
    };
    let headers = response.headers_mut();
    headers.insert("ratelimit-limit", 100_000.into());
    headers.insert("ratelimit-remaining", 100_000.into());
    response
}

async fn handle(State(state): State<AppState>, method: Method, uri: Uri, body: Bytes) -> Response {
    let arrived = Instant::now();
    let path = uri.path().strip_prefix("/helix").unwrap_or("");
    match (method.as_str(), path) {
        ("GET", "/streams") => ratelimited(
            StatusCode::OK,
            Some(json!({ "data": [], "pagination": {} })),
        ),
        ("DELETE", "/moderation/chat") => match query_value(&uri, "message_id") {
            Some(message_id) => {
                state.counts.deletes.fetch_add(1, Ordering::Relaxed);
                state
                    .sim
                    .record_moderation(&ModerationCall::Delete { message_id }, arrived);
                ratelimited(StatusCode::NO_CONTENT, None)
            }
            None => malformed(&state),
        },
        ("POST", "/moderation/bans") => {
            let room = query_value(&uri, "broadcaster_id").and_then(|r| r.parse::<u64>().ok());
            let user = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("data")?.get("user_id")?.as_str().map(str::to_string));
            match (room, user) {
                (Some(room_id), Some(user_id)) => {
                    state.counts.bans.fetch_add(1, Ordering::Relaxed);
                    state.sim.record_moderation(
                        &ModerationCall::Ban {
                            room_id,
                            user_id: user_id.clone(),
                        },
                        arrived,
                    );
                    let data = json!({ "data": [{
                        "broadcaster_id": room_id.to_string(),
                        "moderator_id": query_value(&uri, "moderator_id").unwrap_or_default(),
                        "user_id": user_id,
                        "created_at": "2026-01-01T00:00:00Z",
                        "end_time": null
                    }]});
                    ratelimited(StatusCode::OK, Some(data))
                }
                _ => malformed(&state),
            }
        }
        _ => {
            state.counts.other.fetch_add(1, Ordering::Relaxed);
            ratelimited(StatusCode::NO_CONTENT, None)
        }
    }
}

fn malformed(state: &AppState) -> Response {
    state.counts.malformed.fetch_add(1, Ordering::Relaxed);
    ratelimited(StatusCode::BAD_REQUEST, None)
}
