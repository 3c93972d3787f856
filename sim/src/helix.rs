//! A fake Helix moderation API for tests: an axum server on 127.0.0.1 that checks every request
//! the way Helix would (method, path, query parameters, `Client-Id` and `Bearer` headers, JSON
//! body shape and limits), records it, and answers like Helix (ban state, deleted messages,
//! `Ratelimit-*` headers, a points bucket).
//!
//! Requests that fail the checks are answered 400/401/404 and listed in [`FakeHelix::rejected`];
//! the others are listed in [`FakeHelix::requests`] with the status they got. Faults:
//! [`FakeHelix::fail_next`] answers the next n valid requests with a status (429 comes with
//! `Ratelimit-Remaining: 0` and a reset one second ahead), [`FakeHelix::set_delay`] slows every
//! answer, [`FakeHelix::without_scope`] answers the calls that need a scope 401 `Missing
//! scope: <scope>`, as Helix does for a token that lacks it. The server stops when the
//! `FakeHelix` is dropped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// The client id the fake expects in `Client-Id`.
pub const FAKE_CLIENT_ID: &str = "fakeclientid0123456789";
/// The token the fake expects in `Authorization: Bearer <token>`.
pub const FAKE_TOKEN: &str = "faketoken0123456789abcdef";
/// Path prefix of the fake's API (like `https://api.twitch.tv/helix`).
const PREFIX: &str = "/helix";
/// Most requests (and rejections) remembered.
const MAX_RECORDS: usize = 100_000;
/// Helix's ceiling for a timeout, in seconds (two weeks), as Twitch documents it.
pub const MAX_TIMEOUT_S: u64 = 1_209_600;
/// Helix's ceiling for a ban or timeout reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// Now, in milliseconds since the Unix epoch.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One request that passed the checks.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// Full path, e.g. `/helix/moderation/bans`.
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub body: Option<Value>,
    pub client_id: Option<String>,
    pub authorization: Option<String>,
    /// The status the fake answered.
    pub status: u16,
    pub at: Instant,
}

/// Helix's points bucket: `limit` points, refilled continuously at `limit` per `window`.
#[derive(Debug)]
struct Bucket {
    limit: u32,
    window: Duration,
    points: f64,
    at: Instant,
}

impl Bucket {
    fn full(limit: u32, window: Duration) -> Bucket {
        Bucket {
            limit,
            window,
            points: f64::from(limit),
            at: Instant::now(),
        }
    }

    /// The refill rate per minute, as Helix's `Ratelimit-Limit` says it.
    fn per_minute(&self) -> u32 {
        let per_minute = f64::from(self.limit) * 60.0 / self.window.as_secs_f64().max(1e-3);
        per_minute.round().min(f64::from(u32::MAX)) as u32
    }

    /// Takes a point; returns (allowed, remaining, reset: unix seconds when full again).
    fn take(&mut self, now: Instant) -> (bool, u32, u64) {
        let limit = f64::from(self.limit);
        let per_s = limit / self.window.as_secs_f64().max(1e-3);
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.points = (self.points + elapsed * per_s).min(limit);
        self.at = self.at.max(now);
        let allowed = self.points >= 1.0;
        if allowed {
            self.points -= 1.0;
        }
        let to_full = Duration::from_secs_f64(((limit - self.points) / per_s).max(0.0));
        let reset = (unix_ms() + to_full.as_millis() as u64).div_ceil(1_000);
        (allowed, self.points.floor() as u32, reset)
    }
}

/// Tokens accepted besides [`FAKE_TOKEN`] (the simulated OAuth server's, once mounted).
#[derive(Clone)]
pub struct TokenCheck(Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl std::fmt::Debug for TokenCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCheck")
    }
}

#[derive(Debug)]
struct FakeState {
    extra_tokens: Option<TokenCheck>,
    requests: Vec<RecordedRequest>,
    rejected: Vec<String>,
    fail_remaining: u32,
    fail_status: u16,
    /// Scopes the token is taken to lack.
    missing_scopes: HashSet<&'static str>,
    delay: Duration,
    /// (broadcaster, user) -> permanent ban (false: timeout).
    bans: HashMap<(String, String), bool>,
    deleted: HashSet<String>,
    /// Shield Mode per broadcaster id.
    shield: HashMap<String, bool>,
    /// Chat settings fields set per broadcaster id.
    chat_settings: HashMap<String, serde_json::Map<String, Value>>,
    bucket: Bucket,
    /// Live channels (login -> started at, ms) for `GET /streams`.
    live: HashMap<String, u64>,
    stream_polls: u64,
}

type Shared = Arc<Mutex<FakeState>>;

fn lock(state: &Shared) -> MutexGuard<'_, FakeState> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The running fake. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeHelix {
    base_url: String,
    state: Shared,
    stop: CancellationToken,
}

impl Drop for FakeHelix {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl FakeHelix {
    /// Starts the fake on 127.0.0.1:0. Must be called inside a tokio runtime; panics if it
    /// cannot bind (it is a test tool; see [`FakeHelix::try_start`]).
    #[allow(clippy::expect_used)]
    pub fn start() -> FakeHelix {
        FakeHelix::try_start().expect("the fake Helix binds 127.0.0.1:0")
    }

    pub fn try_start() -> std::io::Result<FakeHelix> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let state: Shared = Arc::new(Mutex::new(FakeState {
            extra_tokens: None,
            requests: Vec::new(),
            rejected: Vec::new(),
            fail_remaining: 0,
            fail_status: 500,
            missing_scopes: HashSet::new(),
            delay: Duration::ZERO,
            bans: HashMap::new(),
            deleted: HashSet::new(),
            shield: HashMap::new(),
            chat_settings: HashMap::new(),
            bucket: Bucket::full(800, Duration::from_secs(60)),
            live: HashMap::new(),
            stream_polls: 0,
        }));
        let app = router(state.clone());
        let stop = CancellationToken::new();
        let server =
            axum::serve(listener, app).with_graceful_shutdown(stop.clone().cancelled_owned());
        tokio::spawn(async move {
            if let Err(e) = server.await {
                tracing::warn!(error = %e, "fake Helix server ended");
            }
        });
        Ok(FakeHelix {
            base_url: format!("http://{addr}{PREFIX}"),
            state,
            stop,
        })
    }

    /// The fake's routes, to serve them on another server too (the simulated Twitch API's
    /// port, see `TwitchApi::mount_helix`); they share this fake's state.
    pub fn router(&self) -> axum::Router {
        router(self.state.clone())
    }

    /// Accepts tokens for which `check` holds, besides [`FAKE_TOKEN`].
    pub fn accept_tokens(&self, check: Arc<dyn Fn(&str) -> bool + Send + Sync>) {
        lock(&self.state).extra_tokens = Some(TokenCheck(check));
    }

    /// The API root to put in `helix.base_url`.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Requests that passed the checks, in arrival order.
    /// Marks a channel live since `started_ms` (unix ms), or offline with None.
    pub fn set_live(&self, login: &str, started_ms: Option<u64>) {
        let mut guard = lock(&self.state);
        match started_ms {
            Some(ms) => guard.live.insert(login.to_string(), ms),
            None => guard.live.remove(login),
        };
    }

    /// `GET /streams` requests answered.
    /// Whether Shield Mode is on for `broadcaster_id`.
    pub fn shield_mode(&self, broadcaster_id: &str) -> bool {
        lock(&self.state)
            .shield
            .get(broadcaster_id)
            .copied()
            .unwrap_or(false)
    }

    /// The chat settings fields set for `broadcaster_id` (as last sent).
    pub fn chat_settings(&self, broadcaster_id: &str) -> serde_json::Map<String, Value> {
        lock(&self.state)
            .chat_settings
            .get(broadcaster_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Sets the channel's modes as a moderator would have before the bot acts: Shield Mode,
    /// and the chat-settings fields of `fields` (a JSON object).
    pub fn set_modes(&self, broadcaster_id: &str, shield: bool, fields: Value) {
        let mut state = lock(&self.state);
        state.shield.insert(broadcaster_id.to_string(), shield);
        if let Value::Object(fields) = fields {
            let settings = state
                .chat_settings
                .entry(broadcaster_id.to_string())
                .or_default();
            settings.extend(fields);
        }
    }

    pub fn stream_polls(&self) -> u64 {
        lock(&self.state).stream_polls
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state).requests.clone()
    }

    /// Why each refused request failed the checks.
    pub fn rejected(&self) -> Vec<String> {
        lock(&self.state).rejected.clone()
    }

    /// Answers the next `n` valid requests with `status` instead of carrying them out.
    pub fn fail_next(&self, n: u32, status: u16) {
        let mut state = lock(&self.state);
        state.fail_remaining = n;
        state.fail_status = status;
    }

    /// From now on the token lacks `scope`: the calls that need it get 401 `Missing scope`.
    pub fn without_scope(&self, scope: &'static str) {
        lock(&self.state).missing_scopes.insert(scope);
    }

    /// Delays every answer by `delay`.
    pub fn set_delay(&self, delay: Duration) {
        lock(&self.state).delay = delay;
    }

    /// The fake's own points bucket (default 800, refilled at 800 per 60 s, like Helix; full
    /// again now); over it: 429.
    pub fn set_ratelimit(&self, limit: u32, window: Duration) {
        lock(&self.state).bucket = Bucket::full(limit, window);
    }
}

/// A request that passed the checks, before it is carried out.
struct Checked {
    record: RecordedRequest,
    route: Route,
}

impl Route {
    /// The scope Helix wants of the token for this call (reading chat settings needs none).
    fn scope(self) -> Option<&'static str> {
        match self {
            Route::Ban | Route::Unban => Some("moderator:manage:banned_users"),
            Route::Delete => Some("moderator:manage:chat_messages"),
            Route::ShieldMode | Route::ReadShieldMode => Some("moderator:manage:shield_mode"),
            Route::ChatSettings => Some("moderator:manage:chat_settings"),
            Route::ReadChatSettings => None,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Ban,
    Unban,
    Delete,
    /// `PUT /moderation/shield_mode` `{"is_active": bool}`.
    ShieldMode,
    /// `PATCH /chat/settings` with any of the chat-mode fields.
    ChatSettings,
    /// `GET /moderation/shield_mode`.
    ReadShieldMode,
    /// `GET /chat/settings`.
    ReadChatSettings,
}

type Rejection = (StatusCode, String);

fn reject(status: StatusCode, why: impl Into<String>) -> Rejection {
    (status, why.into())
}

fn helix_error(status: StatusCode, message: &str) -> Response {
    let reason = status.canonical_reason().unwrap_or("Error");
    let body = json!({"error": reason, "status": status.as_u16(), "message": message});
    (status, axum::Json(body)).into_response()
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::to_string)
}

fn is_id(value: Option<&String>) -> bool {
    value.is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
}

fn route_of(method: &Method, path: &str) -> Result<Route, Rejection> {
    match (method.as_str(), path.strip_prefix(PREFIX).unwrap_or("")) {
        ("POST", "/moderation/bans") => Ok(Route::Ban),
        ("DELETE", "/moderation/bans") => Ok(Route::Unban),
        ("DELETE", "/moderation/chat") => Ok(Route::Delete),
        ("PUT", "/moderation/shield_mode") => Ok(Route::ShieldMode),
        ("PATCH", "/chat/settings") => Ok(Route::ChatSettings),
        ("GET", "/moderation/shield_mode") => Ok(Route::ReadShieldMode),
        ("GET", "/chat/settings") => Ok(Route::ReadChatSettings),
        _ => Err(reject(
            StatusCode::NOT_FOUND,
            format!("no such endpoint: {method} {path}"),
        )),
    }
}

fn router(state: Shared) -> axum::Router {
    axum::Router::new()
        .route(&format!("{PREFIX}/streams"), axum::routing::get(streams))
        .fallback(handle)
        .with_state(state)
}

fn check_headers(headers: &HeaderMap, extra: Option<&TokenCheck>) -> Result<(), Rejection> {
    if header(headers, "client-id").as_deref() != Some(FAKE_CLIENT_ID) {
        return Err(reject(
            StatusCode::UNAUTHORIZED,
            "Client-Id missing or wrong",
        ));
    }
    let expected = format!("Bearer {FAKE_TOKEN}");
    let presented = header(headers, "authorization");
    let accepted = presented.as_deref() == Some(expected.as_str())
        || presented
            .as_deref()
            .and_then(|p| p.strip_prefix("Bearer "))
            .zip(extra)
            .is_some_and(|(token, check)| (check.0)(token));
    if !accepted {
        return Err(reject(
            StatusCode::UNAUTHORIZED,
            "Authorization is not `Bearer <token>`",
        ));
    }
    Ok(())
}

fn check_query(route: Route, query: &BTreeMap<String, String>) -> Result<(), Rejection> {
    let extra = match route {
        Route::Ban
        | Route::ShieldMode
        | Route::ChatSettings
        | Route::ReadShieldMode
        | Route::ReadChatSettings => None,
        Route::Unban => Some("user_id"),
        Route::Delete => Some("message_id"),
    };
    for key in query.keys() {
        let known = key == "broadcaster_id" || key == "moderator_id" || Some(key.as_str()) == extra;
        if !known {
            return Err(reject(
                StatusCode::BAD_REQUEST,
                format!("unexpected query parameter {key}"),
            ));
        }
    }
    for key in ["broadcaster_id", "moderator_id"].into_iter().chain(extra) {
        let ok = match key {
            "message_id" => query.get(key).is_some_and(|v| !v.is_empty()),
            _ => is_id(query.get(key)),
        };
        if !ok {
            return Err(reject(
                StatusCode::BAD_REQUEST,
                format!("missing or invalid {key}"),
            ));
        }
    }
    Ok(())
}

/// `{"data":{"user_id":"..","duration":1..=1209600?,"reason":"<=500 chars"?}}`, nothing else.
fn check_ban_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, Rejection> {
    let bad = |why: &str| reject(StatusCode::BAD_REQUEST, why.to_string());
    let json_type =
        header(headers, "content-type").is_some_and(|t| t.starts_with("application/json"));
    if !json_type {
        return Err(bad("Content-Type is not application/json"));
    }
    let value: Value = serde_json::from_slice(body).map_err(|_| bad("body is not JSON"))?;
    let top = value
        .as_object()
        .ok_or_else(|| bad("body is not an object"))?;
    if top.len() != 1 {
        return Err(bad("body must hold only `data`"));
    }
    let data = top
        .get("data")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("`data` missing or not an object"))?;
    for (key, field) in data {
        let ok = match key.as_str() {
            "user_id" => field
                .as_str()
                .is_some_and(|u| !u.is_empty() && u.bytes().all(|b| b.is_ascii_digit())),
            "duration" => field
                .as_u64()
                .is_some_and(|d| (1..=MAX_TIMEOUT_S).contains(&d)),
            "reason" => field
                .as_str()
                .is_some_and(|r| r.chars().count() <= MAX_REASON_CHARS),
            _ => false,
        };
        if !ok {
            return Err(bad(&format!(
                "data.{key} is not allowed or invalid: {field}"
            )));
        }
    }
    if !data.contains_key("user_id") {
        return Err(bad("data.user_id missing"));
    }
    Ok(value)
}

/// Shield Mode: `{"is_active": bool}`; chat settings: only Twitch's fields, each of its type
/// and range (follower_mode_duration 0..=129600 minutes, slow_mode_wait_time 3..=120 s).
fn check_mode_body(route: Route, headers: &HeaderMap, body: &[u8]) -> Result<Value, Rejection> {
    let bad = |why: &str| reject(StatusCode::BAD_REQUEST, why.to_string());
    let json_type =
        header(headers, "content-type").is_some_and(|t| t.starts_with("application/json"));
    if !json_type {
        return Err(bad("Content-Type is not application/json"));
    }
    let value: Value = serde_json::from_slice(body).map_err(|_| bad("body is not JSON"))?;
    let fields = value
        .as_object()
        .filter(|o| !o.is_empty())
        .ok_or_else(|| bad("body is not a non-empty object"))?;
    for (key, field) in fields {
        let ok = match (route, key.as_str()) {
            (Route::ShieldMode, "is_active") => field.is_boolean(),
            (
                Route::ChatSettings,
                "emote_mode" | "follower_mode" | "slow_mode" | "subscriber_mode"
                | "unique_chat_mode",
            ) => field.is_boolean(),
            (Route::ChatSettings, "follower_mode_duration") => {
                field.as_u64().is_some_and(|m| m <= 129_600)
            }
            (Route::ChatSettings, "slow_mode_wait_time") => {
                field.as_u64().is_some_and(|s| (3..=120).contains(&s))
            }
            _ => false,
        };
        if !ok {
            return Err(bad(&format!("{key} is not allowed or invalid: {field}")));
        }
    }
    Ok(value)
}

fn check(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    extra: Option<&TokenCheck>,
) -> Result<Checked, Rejection> {
    let route = route_of(method, uri.path())?;
    check_headers(headers, extra)?;
    let query = Query::<BTreeMap<String, String>>::try_from_uri(uri)
        .map_err(|e| reject(StatusCode::BAD_REQUEST, format!("bad query: {e}")))?
        .0;
    check_query(route, &query)?;
    let body = match route {
        Route::Ban => Some(check_ban_body(headers, body)?),
        Route::ShieldMode | Route::ChatSettings => Some(check_mode_body(route, headers, body)?),
        _ if body.is_empty() => None,
        _ => {
            return Err(reject(
                StatusCode::BAD_REQUEST,
                "DELETE and GET must have no body",
            ))
        }
    };
    Ok(Checked {
        route,
        record: RecordedRequest {
            method: method.to_string(),
            path: uri.path().to_string(),
            query,
            body,
            client_id: header(headers, "client-id"),
            authorization: header(headers, "authorization"),
            status: 0,
            at: Instant::now(),
        },
    })
}

/// What `GET /moderation/shield_mode` and `GET /chat/settings` answer, as Helix shapes it;
/// `None` for the other routes.
fn read_modes(state: &FakeState, checked: &Checked) -> Option<Value> {
    let room = checked.record.query.get("broadcaster_id")?.clone();
    match checked.route {
        Route::ReadShieldMode => Some(json!({
            "is_active": state.shield.get(&room).copied().unwrap_or(false),
            "moderator_id": "",
            "moderator_login": "",
            "moderator_name": "",
            "last_activated_at": ""
        })),
        Route::ReadChatSettings => {
            let set = state.chat_settings.get(&room);
            let field =
                |k: &str, default: Value| set.and_then(|s| s.get(k)).cloned().unwrap_or(default);
            Some(json!({
                "broadcaster_id": room,
                "moderator_id": checked.record.query.get("moderator_id"),
                "emote_mode": field("emote_mode", json!(false)),
                "follower_mode": field("follower_mode", json!(false)),
                "follower_mode_duration": field("follower_mode_duration", Value::Null),
                "slow_mode": field("slow_mode", json!(false)),
                "slow_mode_wait_time": field("slow_mode_wait_time", Value::Null),
                "subscriber_mode": field("subscriber_mode", json!(false)),
                "unique_chat_mode": false,
                "non_moderator_chat_delay": false,
                "non_moderator_chat_delay_duration": null
            }))
        }
        _ => None,
    }
}

/// Carries out a checked request against the fake's state: status and Helix error message.
fn carry_out(state: &mut FakeState, checked: &Checked) -> (StatusCode, Option<&'static str>) {
    let q = &checked.record.query;
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let data = checked.record.body.as_ref().and_then(|b| b.get("data"));
    match checked.route {
        Route::Ban => {
            let user = data
                .and_then(|d| d.get("user_id"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let key = (get("broadcaster_id"), user.to_string());
            let permanent = data.and_then(|d| d.get("duration")).is_none();
            if state.bans.get(&key) == Some(&true) {
                return (
                    StatusCode::BAD_REQUEST,
                    Some("The user specified in the user_id field is already banned."),
                );
            }
            if state.bans.len() < MAX_RECORDS {
                state.bans.insert(key, permanent);
            }
            (StatusCode::OK, None)
        }
        Route::Unban => match state.bans.remove(&(get("broadcaster_id"), get("user_id"))) {
            Some(_) => (StatusCode::NO_CONTENT, None),
            None => (
                StatusCode::BAD_REQUEST,
                Some("The user specified in the user_id field is not banned."),
            ),
        },
        Route::ShieldMode => {
            let on = checked
                .record
                .body
                .as_ref()
                .and_then(|b| b.get("is_active"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            state.shield.insert(get("broadcaster_id"), on);
            (StatusCode::OK, None)
        }
        Route::ChatSettings => {
            let settings = state
                .chat_settings
                .entry(get("broadcaster_id"))
                .or_default();
            if let Some(Value::Object(fields)) = &checked.record.body {
                for (k, v) in fields {
                    settings.insert(k.clone(), v.clone());
                }
            }
            (StatusCode::OK, None)
        }
        Route::Delete => {
            let id = get("message_id");
            if state.deleted.contains(&id) {
                return (
                    StatusCode::NOT_FOUND,
                    Some("The message specified in the message_id field was not found."),
                );
            }
            if state.deleted.len() < MAX_RECORDS {
                state.deleted.insert(id);
            }
            (StatusCode::NO_CONTENT, None)
        }
        Route::ReadShieldMode | Route::ReadChatSettings => (StatusCode::OK, None),
    }
}

fn with_rate_headers(mut response: Response, limit: u32, remaining: u32, reset: u64) -> Response {
    let headers = response.headers_mut();
    headers.insert("ratelimit-limit", HeaderValue::from(limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(reset));
    response
}

fn ok_body(checked: &Checked, status: StatusCode) -> Response {
    if status == StatusCode::NO_CONTENT {
        return status.into_response();
    }
    let q = &checked.record.query;
    if matches!(checked.route, Route::ShieldMode | Route::ChatSettings) {
        let mut data = checked
            .record
            .body
            .as_ref()
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        data.insert("broadcaster_id".into(), json!(q.get("broadcaster_id")));
        data.insert("moderator_id".into(), json!(q.get("moderator_id")));
        return (status, axum::Json(json!({ "data": [data] }))).into_response();
    }
    let data = checked
        .record
        .body
        .as_ref()
        .and_then(|b| b.get("data"))
        .cloned()
        .unwrap_or(Value::Null);
    let body = json!({"data": [{
        "broadcaster_id": q.get("broadcaster_id"),
        "moderator_id": q.get("moderator_id"),
        "user_id": data.get("user_id"),
        "created_at": "2026-01-01T00:00:00Z",
        "end_time": Value::Null,
    }]});
    (status, axum::Json(body)).into_response()
}

/// Decides the answer to a checked request and records it; returns (answer, delay).
fn answer(state: &mut FakeState, mut checked: Checked) -> (Response, Duration) {
    let now = Instant::now();
    let limit = state.bucket.limit;
    let (response, remaining, reset) = if state.fail_remaining > 0 {
        state.fail_remaining -= 1;
        let status =
            StatusCode::from_u16(state.fail_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let reset = unix_ms() / 1_000 + 1;
        let remaining = if status == StatusCode::TOO_MANY_REQUESTS {
            0
        } else {
            limit
        };
        (helix_error(status, "injected fault"), remaining, reset)
    } else {
        let (allowed, remaining, reset) = state.bucket.take(now);
        let missing = checked
            .route
            .scope()
            .filter(|scope| state.missing_scopes.contains(scope));
        let response = if !allowed {
            helix_error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests")
        } else if let Some(scope) = missing {
            helix_error(StatusCode::UNAUTHORIZED, &format!("Missing scope: {scope}"))
        } else if let Some(data) = read_modes(state, &checked) {
            (StatusCode::OK, axum::Json(json!({ "data": [data] }))).into_response()
        } else {
            match carry_out(state, &checked) {
                (status, None) => ok_body(&checked, status),
                (status, Some(message)) => helix_error(status, message),
            }
        };
        (response, remaining, reset)
    };
    checked.record.status = response.status().as_u16();
    if state.requests.len() < MAX_RECORDS {
        state.requests.push(checked.record);
    }
    (
        with_rate_headers(response, state.bucket.per_minute(), remaining, reset),
        state.delay,
    )
}

/// `GET /streams?user_login=..&user_login=..`: the live ones among them, Helix-shaped.
async fn streams(State(state): State<Shared>, uri: Uri, headers: HeaderMap) -> Response {
    let extra = lock(&state).extra_tokens.clone();
    if let Err((status, why)) = check_headers(&headers, extra.as_ref()) {
        return helix_error(status, &why);
    }
    let query = match Query::<Vec<(String, String)>>::try_from_uri(&uri) {
        Ok(Query(query)) => query,
        Err(e) => return helix_error(StatusCode::BAD_REQUEST, &format!("bad query: {e}")),
    };
    let logins: Vec<&str> = query
        .iter()
        .filter(|(k, _)| k == "user_login")
        .map(|(_, v)| v.as_str())
        .collect();
    if logins.is_empty() || logins.len() > 100 {
        return helix_error(StatusCode::BAD_REQUEST, "1 to 100 user_login parameters");
    }
    let mut guard = lock(&state);
    guard.stream_polls += 1;
    let data: Vec<Value> = logins
        .iter()
        .filter_map(|login| {
            let started = guard.live.get(*login)?;
            let started_at = chrono::DateTime::from_timestamp_millis(*started as i64)?
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            Some(serde_json::json!({
                "id": "1", "user_id": "1", "user_login": login, "user_name": login,
                "type": "live", "title": "live", "viewer_count": 50000, "started_at": started_at
            }))
        })
        .collect();
    axum::Json(serde_json::json!({ "data": data, "pagination": {} })).into_response()
}

async fn handle(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (response, delay) = {
        let mut guard = lock(&state);
        let extra = guard.extra_tokens.clone();
        match check(&method, &uri, &headers, &body, extra.as_ref()) {
            Ok(checked) => answer(&mut guard, checked),
            Err((status, why)) => {
                if guard.rejected.len() < MAX_RECORDS {
                    guard.rejected.push(format!("{method} {uri}: {why}"));
                }
                (helix_error(status, &why), guard.delay)
            }
        }
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    response
}
