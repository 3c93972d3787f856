//! The simulated Twitch HTTP APIs on one 127.0.0.1 port, beside the chat simulator:
//!
//! - `/oauth2/*` ([`oauth`]): tokens (client credentials, refresh, authorization code),
//!   validation, revocation, the consent page;
//! - `/helix/users` (here): logins to user ids (a channel's id is its `room-id`);
//! - `/helix/moderation/channels` ([`moderated`]): the channels a user moderates;
//! - `/helix/chat/messages` ([`chat`]): the bot's messages, judged under the same send limits
//!   as its IRC PRIVMSGs and recorded in the same place;
//! - `/helix/eventsub/*` (`crate::eventsub`): subscriptions and conduits;
//! - anything else under `/helix` goes to a mounted [`crate::helix::FakeHelix`] (moderation,
//!   streams), when one is mounted with [`TwitchApi::mount_helix`].
//!
//! Helix calls need `Client-Id` and `Authorization: Bearer <token>` with a token this server
//! issued and that is neither expired nor revoked (401 like Helix otherwise). It shares the
//! simulator's state (its channels, recorder and send limits), so what a test sees through
//! [`crate::SimHandle`] covers IRC and the APIs alike.

pub mod chat;
pub mod moderated;
pub mod oauth;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tower::ServiceExt;

pub use oauth::{OAuthStats, TokenInfo, TokenKind};

use crate::content::Chatter;
use crate::state::Shared;

pub(crate) use crate::state::lock;

/// The client id the simulated Twitch knows (the fake Helix's, so both accept it).
pub const CLIENT_ID: &str = crate::helix::FAKE_CLIENT_ID;
/// The client secret that goes with it.
pub const CLIENT_SECRET: &str = "fakeclientsecret0123456789";
/// The scopes a chat bot asks of its own account.
pub const BOT_SCOPES: &[&str] = &[
    "chat:read",
    "chat:edit",
    "user:read:chat",
    "user:write:chat",
    "user:bot",
    "moderator:manage:banned_users",
    "moderator:manage:chat_messages",
];

/// What the API handlers share.
pub struct ApiInner {
    pub sim: Arc<Shared>,
    /// Helix points per token (Twitch: 800 per minute): token -> (window start, used).
    buckets: Mutex<std::collections::HashMap<String, (std::time::Instant, u32)>>,
    pub oauth: Mutex<oauth::OAuthState>,
    pub chat: Mutex<chat::ChatState>,
    pub eventsub: crate::eventsub::EventSubShared,
    helix: Mutex<Option<axum::Router>>,
    /// Channel login -> the logins of its moderators (`GET /helix/moderation/channels`).
    pub moderators: Mutex<std::collections::BTreeMap<String, std::collections::BTreeSet<String>>>,
}

pub type ApiState = Arc<ApiInner>;

/// The running API server. Cheap to clone.
#[derive(Clone)]
pub struct TwitchApi {
    inner: ApiState,
    addr: SocketAddr,
}

impl std::fmt::Debug for TwitchApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwitchApi")
            .field("addr", &self.addr)
            .finish()
    }
}

impl TwitchApi {
    /// Binds 127.0.0.1:0 (the simulator's address's host) and serves until the sim shuts down.
    pub(crate) async fn start(
        sim: Arc<Shared>,
        eventsub: crate::eventsub::EventSubShared,
    ) -> std::io::Result<TwitchApi> {
        let listener = tokio::net::TcpListener::bind((sim.config.listen.ip(), 0)).await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(ApiInner {
            buckets: Mutex::new(std::collections::HashMap::new()),
            oauth: Mutex::new(oauth::OAuthState::new(CLIENT_ID, CLIENT_SECRET)),
            chat: Mutex::new(chat::ChatState::default()),
            eventsub,
            helix: Mutex::new(None),
            moderators: Mutex::new(std::collections::BTreeMap::new()),
            sim,
        });
        let app = axum::Router::new()
            .route("/oauth2/token", post(oauth::token))
            .route("/oauth2/validate", get(oauth::validate))
            .route("/oauth2/revoke", post(oauth::revoke))
            .route("/oauth2/authorize", get(oauth::authorize))
            .route("/helix/users", get(users))
            .route("/helix/chat/messages", post(chat::send))
            .route(
                "/helix/moderation/channels",
                get(moderated::moderated_channels),
            )
            .merge(crate::eventsub::api::routes())
            .fallback(fallback)
            .with_state(Arc::clone(&inner));
        let stop = inner.sim.shutdown.clone();
        tokio::spawn(async move {
            let server = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned());
            if let Err(e) = server.await {
                tracing::warn!(error = %e, "simulated Twitch API ended");
            }
        });
        Ok(TwitchApi { inner, addr })
    }

    pub(crate) fn state(&self) -> &ApiState {
        &self.inner
    }

    /// `http://127.0.0.1:PORT/helix` (the service's `helix.base_url`).
    pub fn helix_url(&self) -> String {
        format!("http://{}/helix", self.addr)
    }

    /// `http://127.0.0.1:PORT/oauth2` (the service's `twitch.auth.oauth_url`).
    pub fn oauth_url(&self) -> String {
        format!("http://{}/oauth2", self.addr)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves the fake Helix's routes (moderation, streams) on this port too, accepting the
    /// tokens this server issued (as well as the fake's own fixed token).
    pub fn mount_helix(&self, helix: &crate::helix::FakeHelix) {
        let api = Arc::clone(&self.inner);
        helix.accept_tokens(Arc::new(move |token: &str| {
            lock(&api.oauth).check(token).is_some()
        }));
        *lock(&self.inner.helix) = Some(helix.router());
    }

    /// Serves `router` for every path this server does not (a recording Helix of a bench).
    pub fn mount_router(&self, router: axum::Router) {
        *lock(&self.inner.helix) = Some(router);
    }

    /// The bot's login and user id as the simulated Twitch knows them.
    pub fn user_id(&self, login: &str) -> String {
        user_id(&self.inner, login)
    }

    /// A refresh token for `login` with `scopes` (what the operator gets from authorising the
    /// bot once and puts in `FIREHOSE_TWITCH_REFRESH_TOKEN`).
    pub fn issue_refresh_token(&self, login: &str, scopes: &[&str]) -> String {
        let id = self.user_id(login);
        lock(&self.inner.oauth).issue_refresh_token(&id, login, scopes)
    }

    /// A user access token without a refresh token (a static `FIREHOSE_HELIX_TOKEN`).
    pub fn issue_user_token(&self, login: &str, scopes: &[&str]) -> String {
        let id = self.user_id(login);
        lock(&self.inner.oauth).issue_static_user_token(&id, login, scopes)
    }

    /// Life of tokens issued from now on (short lives make tests see renewals).
    pub fn set_token_life(&self, app: std::time::Duration, user: std::time::Duration) {
        let mut oauth = lock(&self.inner.oauth);
        oauth.app_token_life = app;
        oauth.user_token_life = user;
    }

    /// Revokes every token of a kind (user: also every refresh token).
    pub fn revoke_tokens(&self, kind: TokenKind) {
        lock(&self.inner.oauth).revoke_all(kind);
    }

    /// Makes every access token issued so far expire now.
    pub fn expire_tokens(&self) {
        lock(&self.inner.oauth).expire_all();
    }

    /// Takes a scope away from a user: their tokens lack it from now on.
    pub fn remove_scope(&self, login: &str, scope: &str) {
        let id = self.user_id(login);
        lock(&self.inner.oauth).remove_scope(&id, scope);
    }

    /// Who consents at `/oauth2/authorize` from now on.
    pub fn authorize_as(&self, login: &str) {
        let id = self.user_id(login);
        lock(&self.inner.oauth).authorizing = Some((id, login.to_string()));
    }

    /// Makes `login` a moderator of `channel` (as `GET /helix/moderation/channels` tells).
    pub fn add_moderator(&self, channel: &str, login: &str) {
        lock(&self.inner.moderators)
            .entry(channel.to_ascii_lowercase())
            .or_default()
            .insert(login.to_ascii_lowercase());
    }

    /// The next visit to `/oauth2/authorize` is refused (`error=access_denied`).
    pub fn refuse_next_authorization(&self) {
        lock(&self.inner.oauth).refuse_next_authorization = true;
    }

    /// Marks the broadcaster as having authorised `channel:bot` (or takes it back).
    pub fn set_channel_bot(&self, login: &str, granted: bool) {
        let id = self.user_id(login);
        let mut oauth = lock(&self.inner.oauth);
        if granted {
            oauth.channel_bot.insert(id);
        } else {
            oauth.channel_bot.remove(&id);
        }
    }

    pub fn has_channel_bot(&self, login: &str) -> bool {
        let id = self.user_id(login);
        lock(&self.inner.oauth).channel_bot.contains(&id)
    }

    pub fn oauth_stats(&self) -> OAuthStats {
        lock(&self.inner.oauth).stats
    }

    /// Sends to `channel` are answered `is_sent: false` with `code` from now on (None: normal).
    pub fn set_chat_drop(&self, channel: &str, code: Option<&str>) {
        let mut chat = lock(&self.inner.chat);
        match code {
            Some(code) => chat.drops.insert(channel.to_string(), code.to_string()),
            None => chat.drops.remove(channel),
        };
    }

    /// Counters of `POST /helix/chat/messages`.
    pub fn chat_stats(&self) -> chat::ChatStats {
        lock(&self.inner.chat).stats.clone()
    }
}

/// The id of `login`: a channel's `room-id` (the channel is created in the sim's table if
/// new, so its chat and its subscriptions agree), the bot's (or anyone's not a channel) from
/// its login, like the chat simulator's GLOBALUSERSTATE.
pub fn user_id(api: &ApiInner, login: &str) -> String {
    let login = login.to_ascii_lowercase();
    if login == api.sim.config.bot_login {
        return Chatter::for_login(&login).user_id;
    }
    let id = api
        .sim
        .change_membership(|table| table.ensure(&login))
        .map(|id| id.to_string());
    id.unwrap_or_else(|| Chatter::for_login(&login).user_id)
}

/// The login of a user id the sim handed out (channels and the bot).
pub fn login_of(api: &ApiInner, user_id: &str) -> Option<String> {
    let bot = &api.sim.config.bot_login;
    if Chatter::for_login(bot).user_id == user_id {
        return Some(bot.clone());
    }
    let id: u64 = user_id.parse().ok()?;
    lock(&api.sim.channels).login_of(id)
}

/// A Helix error body.
pub fn helix_error(status: StatusCode, message: &str) -> Response {
    let reason = status.canonical_reason().unwrap_or("Error");
    (
        status,
        axum::Json(json!({"error": reason, "status": status.as_u16(), "message": message})),
    )
        .into_response()
}

/// Checks `Client-Id` and the bearer token; the token's record, or Helix's 401.
pub fn authenticate(api: &ApiInner, headers: &HeaderMap) -> Result<TokenInfo, Response> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let mut oauth = lock(&api.oauth);
    if header("client-id") != Some(oauth.client_id.as_str()) {
        oauth.stats.helix_unauthorized += 1;
        return Err(helix_error(
            StatusCode::UNAUTHORIZED,
            "Client ID and OAuth token do not match",
        ));
    }
    let token = header("authorization").and_then(|v| v.strip_prefix("Bearer "));
    let info = match token.and_then(|t| oauth.check(t)) {
        Some(info) => info,
        None => {
            oauth.stats.helix_unauthorized += 1;
            return Err(helix_error(StatusCode::UNAUTHORIZED, "Invalid OAuth token"));
        }
    };
    drop(oauth);
    take_point(api, token.unwrap_or_default())?;
    Ok(info)
}

/// One point of the token's Helix bucket (`SimConfig::api_points_per_minute` a minute, as
/// Twitch's 800); an empty bucket answers 429 with `Ratelimit-*` headers.
fn take_point(api: &ApiInner, token: &str) -> Result<(), Response> {
    let limit = api.sim.config.api_points_per_minute;
    let window = std::time::Duration::from_secs(60);
    let now = std::time::Instant::now();
    let mut buckets = lock(&api.buckets);
    if buckets.len() > 10_000 {
        buckets.retain(|_, (start, _)| now.duration_since(*start) < window);
    }
    let (start, used) = buckets.entry(token.to_string()).or_insert((now, 0));
    if now.duration_since(*start) >= window {
        *start = now;
        *used = 0;
    }
    if *used >= limit {
        let left = window.saturating_sub(now.duration_since(*start));
        let reset = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| (d + left).as_secs())
            .unwrap_or(0);
        let mut response = helix_error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
        let headers = response.headers_mut();
        headers.insert("ratelimit-limit", limit.into());
        headers.insert("ratelimit-remaining", 0u32.into());
        headers.insert("ratelimit-reset", reset.into());
        return Err(response);
    }
    *used += 1;
    Ok(())
}

/// `GET /helix/users?login=..&id=..` (up to 100 in all); no parameter: the token's user.
async fn users(State(api): State<ApiState>, headers: HeaderMap, uri: axum::http::Uri) -> Response {
    let token = match authenticate(&api, &headers) {
        Ok(token) => token,
        Err(refused) => return refused,
    };
    let Ok(Query(query)) = Query::<Vec<(String, String)>>::try_from_uri(&uri) else {
        return helix_error(StatusCode::BAD_REQUEST, "malformed query");
    };
    if query.len() > 100 {
        return helix_error(
            StatusCode::BAD_REQUEST,
            "at most 100 id and login parameters",
        );
    }
    let mut logins = Vec::new();
    for (key, value) in &query {
        match key.as_str() {
            "login" => logins.push(value.to_ascii_lowercase()),
            "id" => logins.extend(login_of(&api, value)),
            _ => return helix_error(StatusCode::BAD_REQUEST, &format!("unknown parameter {key}")),
        }
    }
    if query.is_empty() {
        match (token.kind, token.login) {
            (TokenKind::User, Some(login)) => logins.push(login),
            _ => {
                return helix_error(
                    StatusCode::BAD_REQUEST,
                    "an app access token must name the users (id or login)",
                )
            }
        }
    }
    let data: Vec<serde_json::Value> = logins
        .iter()
        .filter(|l| is_login(l))
        .map(|login| {
            json!({
                "id": user_id(&api, login), "login": login, "display_name": login,
                "type": "", "broadcaster_type": "partner", "description": "",
                "profile_image_url": "", "offline_image_url": "", "view_count": 0,
                "created_at": "2016-12-14T20:32:28Z"
            })
        })
        .collect();
    axum::Json(json!({ "data": data })).into_response()
}

/// Twitch's login rule: 1-25 of a-z, 0-9, `_` (anything else does not exist).
pub fn is_login(s: &str) -> bool {
    (1..=25).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Everything not served here goes to the mounted fake Helix (moderation, streams).
async fn fallback(State(api): State<ApiState>, request: Request) -> Response {
    let router = lock(&api.helix).clone();
    match router {
        Some(router) => match router.oneshot(request.map(Body::new)).await {
            Ok(response) => response.into_response(),
            Err(never) => match never {},
        },
        None => helix_error(StatusCode::NOT_FOUND, "no such endpoint"),
    }
}
