//! The bench's recording Helix: a minimal Helix moderation endpoint on 127.0.0.1 that answers
//! like Helix (ban 200 with data, delete 204, empty `GET /streams`) and tells the simulator's
//! latency tracker the moment each delete, timeout or ban arrives, so moderation latency is
//! measured from the simulator's send of the spam message to its moderation call arriving.
//!
//! It checks nothing beyond what it needs to match the call (the checking fake for tests is
//! `firehose_sim::helix`); calls it cannot read are counted as `malformed`.
//!
//! It keeps Twitch's budget: a token bucket of the scenario's points per minute per token
//! (Twitch grants 800), refilled continuously, one point per call; every answer carries
//! `Ratelimit-Limit`, `Ratelimit-Remaining` and `Ratelimit-Reset` (when the bucket is full
//! again, Unix seconds), and a call over the budget is answered 429 and not carried out
//! (counted in [`HelixCounts::rate_limited`]). A ban or timeout stops the user in that room
//! (the simulator sends nothing more from them until it ends), as on Twitch.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
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
    /// Every call that reached it, answered 429 or not.
    pub calls: AtomicU64,
    /// Calls over the budget, answered 429.
    pub rate_limited: AtomicU64,
    pub bans: AtomicU64,
    pub deletes: AtomicU64,
    pub other: AtomicU64,
    /// Shield Mode and chat settings changes.
    pub modes: AtomicU64,
    pub malformed: AtomicU64,
    /// Every chat-mode change, in order (the first [`MAX_DEFENCES`]).
    pub defences: Mutex<Vec<Defence>>,
}

/// A chat-mode change the service asked for.
#[derive(Debug, Clone)]
pub struct Defence {
    pub at: Instant,
    pub room_id: u64,
    /// `shield_mode=true`, or the settings body sent.
    pub what: String,
}

/// Most tokens with a bucket of their own (the bench uses one; a flood of bad ones cannot grow
/// the map).
const MAX_BUCKETS: usize = 64;

/// One token's points: a bucket of `limit` refilled at `limit` per minute.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    points: f64,
    at: Instant,
}

/// The points budget of every token.
#[derive(Debug)]
pub struct Budget {
    limit: u32,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// What one call got from the budget: allowed, and the header values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Take {
    pub allowed: bool,
    pub remaining: u32,
    /// Unix seconds when the bucket is full again.
    pub reset: u64,
}

impl Budget {
    pub fn new(points_per_minute: u32) -> Budget {
        Budget {
            limit: points_per_minute.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one point of `token`'s bucket at `now`.
    pub fn take(&self, token: &str, now: Instant) -> Take {
        let limit = f64::from(self.limit);
        let per_s = limit / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(token) {
            buckets.clear();
        }
        let bucket = buckets.entry(token.to_string()).or_insert(Bucket {
            points: limit,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.points = (bucket.points + elapsed * per_s).min(limit);
        bucket.at = now;
        let allowed = bucket.points >= 1.0;
        if allowed {
            bucket.points -= 1.0;
        }
        let to_full = Duration::from_secs_f64(((limit - bucket.points) / per_s).max(0.0));
        let reset = (SystemTime::now() + to_full)
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() + u64::from(d.subsec_nanos() > 0));
        Take {
            allowed,
            remaining: bucket.points.floor() as u32,
            reset,
        }
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }
}

#[derive(Clone)]
struct AppState {
    sim: SimHandle,
    counts: Arc<HelixCounts>,
    budget: Arc<Budget>,
}

/// A running recording Helix; stops when dropped.
pub struct RecordingHelix {
    pub base_url: String,
    pub counts: Arc<HelixCounts>,
    pub budget: Arc<Budget>,
    stop: CancellationToken,
}

impl Drop for RecordingHelix {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The recording Helix's routes (to serve them on another server, e.g. the simulated Twitch
/// API's port when the service reads chat through EventSub).
pub fn router(sim: SimHandle, counts: Arc<HelixCounts>, budget: Arc<Budget>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(AppState {
        sim,
        counts,
        budget,
    })
}

impl RecordingHelix {
    /// Binds 127.0.0.1:0 and serves until dropped, granting `points_per_minute` per token.
    pub async fn start(sim: SimHandle, points_per_minute: u32) -> std::io::Result<RecordingHelix> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let counts = Arc::new(HelixCounts::default());
        let budget = Arc::new(Budget::new(points_per_minute));
        let app = router(sim, Arc::clone(&counts), Arc::clone(&budget));
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
            budget,
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

fn with_budget(mut response: Response, limit: u32, take: Take) -> Response {
    let headers = response.headers_mut();
    headers.insert("ratelimit-limit", limit.into());
    headers.insert("ratelimit-remaining", take.remaining.into());
    headers.insert("ratelimit-reset", take.reset.into());
    response
}

fn answer(status: StatusCode, body: Option<Value>) -> Response {
    match body {
        Some(body) => (status, axum::Json(body)).into_response(),
        None => status.into_response(),
    }
}

async fn handle(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let arrived = Instant::now();
    state.counts.calls.fetch_add(1, Ordering::Relaxed);
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let take = state.budget.take(token, arrived);
    let limit = state.budget.limit();
    if !take.allowed {
        state.counts.rate_limited.fetch_add(1, Ordering::Relaxed);
        let body =
            json!({"error": "Too Many Requests", "status": 429, "message": "Too Many Requests"});
        return with_budget(
            answer(StatusCode::TOO_MANY_REQUESTS, Some(body)),
            limit,
            take,
        );
    }
    with_budget(
        carry_out(&state, &method, &uri, &body, arrived),
        limit,
        take,
    )
}

fn carry_out(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    body: &Bytes,
    arrived: Instant,
) -> Response {
    let path = uri.path().strip_prefix("/helix").unwrap_or("");
    match (method.as_str(), path) {
        ("GET", "/streams") => answer(
            StatusCode::OK,
            Some(json!({ "data": [], "pagination": {} })),
        ),
        ("DELETE", "/moderation/chat") => match query_value(uri, "message_id") {
            Some(message_id) => {
                state.counts.deletes.fetch_add(1, Ordering::Relaxed);
                state
                    .sim
                    .record_moderation(&ModerationCall::Delete { message_id }, arrived);
                answer(StatusCode::NO_CONTENT, None)
            }
            None => malformed(state),
        },
        ("POST", "/moderation/bans") => {
            let room = room_of(uri);
            let data = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.get("data").cloned());
            let user = data
                .as_ref()
                .and_then(|d| d.get("user_id")?.as_str().map(str::to_string));
            let duration = data
                .as_ref()
                .and_then(|d| d.get("duration")?.as_u64())
                .map(Duration::from_secs);
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
                    state.sim.sanction(room_id, &user_id, duration);
                    let data = json!({ "data": [{
                        "broadcaster_id": room_id.to_string(),
                        "moderator_id": query_value(uri, "moderator_id").unwrap_or_default(),
                        "user_id": user_id,
                        "created_at": "2026-01-01T00:00:00Z",
                        "end_time": null
                    }]});
                    answer(StatusCode::OK, Some(data))
                }
                _ => malformed(state),
            }
        }
        ("DELETE", "/moderation/bans") => match (room_of(uri), query_value(uri, "user_id")) {
            (Some(room_id), Some(user_id)) => {
                state.counts.other.fetch_add(1, Ordering::Relaxed);
                state.sim.unban(room_id, &user_id);
                answer(StatusCode::NO_CONTENT, None)
            }
            _ => malformed(state),
        },
        ("PUT", "/moderation/shield_mode") => {
            let active = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.get("is_active")?.as_bool());
            match (room_of(uri), active) {
                (Some(room_id), Some(active)) => {
                    state.counts.modes.fetch_add(1, Ordering::Relaxed);
                    state.sim.set_chat_modes(room_id, |m| m.shield = active);
                    note_defence(state, arrived, room_id, &format!("shield_mode={active}"));
                    let data = json!({ "data": [{
                        "is_active": active,
                        "moderator_id": query_value(uri, "moderator_id").unwrap_or_default(),
                        "moderator_login": "bot",
                        "moderator_name": "bot",
                        "last_activated_at": "2026-01-01T00:00:00Z"
                    }]});
                    answer(StatusCode::OK, Some(data))
                }
                _ => malformed(state),
            }
        }
        ("GET", "/moderation/shield_mode") => match room_of(uri) {
            Some(room_id) => {
                state.counts.other.fetch_add(1, Ordering::Relaxed);
                let active = state.sim.chat_modes(room_id).shield;
                answer(
                    StatusCode::OK,
                    Some(json!({ "data": [{ "is_active": active }] })),
                )
            }
            None => malformed(state),
        },
        ("GET", "/chat/settings") => match room_of(uri) {
            Some(room_id) => {
                state.counts.other.fetch_add(1, Ordering::Relaxed);
                answer(StatusCode::OK, Some(chat_settings(state, room_id)))
            }
            None => malformed(state),
        },
        ("PATCH", "/chat/settings") => {
            let settings = serde_json::from_slice::<Value>(body).ok();
            match (room_of(uri), settings) {
                (Some(room_id), Some(settings)) => {
                    state.counts.modes.fetch_add(1, Ordering::Relaxed);
                    apply_chat_settings(state, room_id, &settings);
                    note_defence(state, arrived, room_id, &settings.to_string());
                    answer(StatusCode::OK, Some(chat_settings(state, room_id)))
                }
                _ => malformed(state),
            }
        }
        _ => {
            state.counts.other.fetch_add(1, Ordering::Relaxed);
            answer(StatusCode::NO_CONTENT, None)
        }
    }
}

fn room_of(uri: &Uri) -> Option<u64> {
    query_value(uri, "broadcaster_id").and_then(|r| r.parse::<u64>().ok())
}

/// Applies the fields of a `PATCH /chat/settings` body that are present.
fn apply_chat_settings(state: &AppState, room_id: u64, settings: &Value) {
    let flag = |key: &str| settings.get(key).and_then(Value::as_bool);
    state.sim.set_chat_modes(room_id, |m| {
        if let Some(on) = flag("follower_mode") {
            m.followers_only = on;
        }
        if let Some(on) = flag("subscriber_mode") {
            m.subscribers_only = on;
        }
        if let Some(on) = flag("emote_mode") {
            m.emote_only = on;
        }
        match (
            flag("slow_mode"),
            settings.get("slow_mode_wait_time").and_then(Value::as_u64),
        ) {
            (Some(false), _) => m.slow_s = 0,
            (Some(true), wait) => m.slow_s = wait.unwrap_or(30),
            (None, Some(wait)) if m.slow_s > 0 => m.slow_s = wait,
            _ => {}
        }
    });
}

/// The room's settings as Helix answers them.
fn chat_settings(state: &AppState, room_id: u64) -> Value {
    let m = state.sim.chat_modes(room_id);
    json!({ "data": [{
        "broadcaster_id": room_id.to_string(),
        "emote_mode": m.emote_only,
        "follower_mode": m.followers_only,
        "follower_mode_duration": if m.followers_only { Some(0) } else { None },
        "subscriber_mode": m.subscribers_only,
        "slow_mode": m.slow_s > 0,
        "slow_mode_wait_time": if m.slow_s > 0 { Some(m.slow_s) } else { None },
        "unique_chat_mode": false
    }]})
}

/// Most defence changes remembered for the report.
const MAX_DEFENCES: usize = 1_000;

fn note_defence(state: &AppState, at: Instant, room_id: u64, what: &str) {
    let mut defences = state
        .counts
        .defences
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if defences.len() < MAX_DEFENCES {
        defences.push(Defence {
            at,
            room_id,
            what: what.chars().take(200).collect(),
        });
    }
}

fn malformed(state: &AppState) -> Response {
    state.counts.malformed.fetch_add(1, Ordering::Relaxed);
    answer(StatusCode::BAD_REQUEST, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_refills_continuously_and_refuses_when_empty() {
        let budget = Budget::new(60);
        let t0 = Instant::now();
        for n in 0..60 {
            assert!(budget.take("t", t0).allowed, "point {n}");
        }
        let empty = budget.take("t", t0);
        assert!(!empty.allowed);
        assert_eq!(empty.remaining, 0);
        let now_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        assert!(
            empty.reset >= now_s + 59 && empty.reset <= now_s + 61,
            "{empty:?}"
        );
        // One point a second comes back; another token has its own bucket.
        assert!(budget.take("t", t0 + Duration::from_millis(1_100)).allowed);
        assert!(!budget.take("t", t0 + Duration::from_millis(1_200)).allowed);
        assert!(budget.take("other", t0).allowed);
    }

    #[tokio::test]
    async fn calls_over_the_budget_get_429_with_headers_and_are_not_carried_out() {
        let sim = firehose_sim::Simulator::start(firehose_sim::SimConfig::with_channels(1))
            .await
            .expect("sim");
        let helix = RecordingHelix::start(sim.clone(), 2).await.expect("helix");
        let client = reqwest::Client::new();
        let ban = |user: &str| {
            client
                .post(format!(
                    "{}/moderation/bans?broadcaster_id=100000&moderator_id=1",
                    helix.base_url
                ))
                .bearer_auth(BENCH_TOKEN)
                .json(&json!({"data": {"user_id": user, "duration": 60}}))
                .send()
        };
        for user in ["1", "2"] {
            let ok = ban(user).await.expect("call");
            assert_eq!(ok.status(), 200);
            assert_eq!(ok.headers()["ratelimit-limit"], "2");
        }
        let refused = ban("3").await.expect("call");
        assert_eq!(refused.status(), 429);
        assert_eq!(refused.headers()["ratelimit-remaining"], "0");
        assert!(refused.headers().contains_key("ratelimit-reset"));
        assert_eq!(helix.counts.calls.load(Ordering::Relaxed), 3);
        assert_eq!(helix.counts.rate_limited.load(Ordering::Relaxed), 1);
        assert_eq!(
            helix.counts.bans.load(Ordering::Relaxed),
            2,
            "the 429 was not carried out"
        );
        sim.shutdown().await;
    }

    #[tokio::test]
    async fn shield_mode_and_chat_settings_change_the_simulated_chat_and_are_noted() {
        let sim = firehose_sim::Simulator::start(firehose_sim::SimConfig::with_channels(1))
            .await
            .expect("sim");
        let helix = RecordingHelix::start(sim.clone(), 800)
            .await
            .expect("helix");
        let client = reqwest::Client::new();
        let query = "broadcaster_id=100000&moderator_id=1";
        let shield = client
            .put(format!("{}/moderation/shield_mode?{query}", helix.base_url))
            .bearer_auth(BENCH_TOKEN)
            .json(&json!({"is_active": true}))
            .send()
            .await
            .expect("call");
        assert_eq!(shield.status(), 200);
        let settings = client
            .patch(format!("{}/chat/settings?{query}", helix.base_url))
            .bearer_auth(BENCH_TOKEN)
            .json(&json!({"follower_mode": true, "slow_mode": true, "slow_mode_wait_time": 10}))
            .send()
            .await
            .expect("call");
        assert_eq!(settings.status(), 200);
        let body: Value = settings.json().await.expect("json");
        assert_eq!(body["data"][0]["follower_mode"], true);
        assert_eq!(body["data"][0]["slow_mode_wait_time"], 10);
        let modes = sim.chat_modes(100_000);
        assert!(modes.shield && modes.followers_only && !modes.emote_only);
        assert_eq!(modes.slow_s, 10);
        let noted = helix.counts.defences.lock().expect("lock").clone();
        assert_eq!(noted.len(), 2);
        assert_eq!(noted[0].what, "shield_mode=true");
        sim.shutdown().await;
    }
}
