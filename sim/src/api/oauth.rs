//! The simulated `id.twitch.tv/oauth2`: `POST /token` (client credentials, refresh token,
//! authorization code), `GET /validate`, `POST /revoke` and `GET /authorize`, as Twitch
//! documents them, with tokens whose life is short and configurable so tests see renewals.
//!
//! Every issued token is remembered (bounded; expired ones are forgotten first). Refresh tokens
//! rotate: a used one stops working, as a public client's do, so a client that does not keep
//! the newest refresh token fails its next renewal. Faults on demand: revoke every token of a
//! kind, remove a scope from a user (their tokens and every later one lack it), refuse the next
//! authorisation.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use serde_json::json;

use super::{lock, ApiState};

/// Tokens remembered at most (the oldest expired ones go first, then the oldest).
const MAX_TOKENS: usize = 100_000;

/// App access token or a user's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    App,
    User,
}

/// What the server knows about one access token.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub kind: TokenKind,
    pub user_id: Option<String>,
    pub login: Option<String>,
    pub scopes: Vec<String>,
    pub expires_at: Instant,
}

impl TokenInfo {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

#[derive(Debug, Clone)]
struct Grant {
    user_id: String,
    login: String,
    scopes: Vec<String>,
}

#[derive(Debug, Clone)]
struct Code {
    grant: Grant,
    redirect_uri: String,
    expires_at: Instant,
}

/// Counters a test can read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OAuthStats {
    pub app_tokens_issued: u64,
    pub user_tokens_refreshed: u64,
    pub codes_exchanged: u64,
    pub validations: u64,
    pub validations_refused: u64,
    /// Refresh attempts with an unknown (used, revoked or made up) refresh token.
    pub refresh_refused: u64,
    /// Helix calls refused because the token was expired, revoked or unknown.
    pub helix_unauthorized: u64,
    /// Tokens revoked through `POST /oauth2/revoke`.
    pub revoked: u64,
}

/// The OAuth server's state.
#[derive(Debug)]
pub struct OAuthState {
    pub client_id: String,
    pub client_secret: String,
    pub app_token_life: Duration,
    pub user_token_life: Duration,
    tokens: HashMap<String, TokenInfo>,
    order: VecDeque<String>,
    refresh: HashMap<String, Grant>,
    codes: HashMap<String, Code>,
    /// Scopes taken away from a user (by user id): missing from their tokens from now on.
    lost_scopes: HashMap<String, HashSet<String>>,
    /// Who "is logged in" at `/authorize` (the user that consents), and whether they refuse.
    pub authorizing: Option<(String, String)>,
    pub refuse_next_authorization: bool,
    /// Broadcasters (user ids) that authorised `channel:bot` for this client.
    pub channel_bot: HashSet<String>,
    pub stats: OAuthStats,
    counter: u64,
}

impl OAuthState {
    pub fn new(client_id: &str, client_secret: &str) -> OAuthState {
        OAuthState {
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            app_token_life: Duration::from_secs(60 * 24 * 3600),
            user_token_life: Duration::from_secs(4 * 3600),
            tokens: HashMap::new(),
            order: VecDeque::new(),
            refresh: HashMap::new(),
            codes: HashMap::new(),
            lost_scopes: HashMap::new(),
            authorizing: None,
            refuse_next_authorization: false,
            channel_bot: HashSet::new(),
            stats: OAuthStats::default(),
            counter: 0,
        }
    }

    fn new_secret(&mut self, prefix: &str) -> String {
        self.counter += 1;
        let noise: u64 = rand::random();
        format!("{prefix}{:08x}{noise:016x}", self.counter)
    }

    fn remember(&mut self, token: String, info: TokenInfo) {
        let now = Instant::now();
        while self.tokens.len() >= MAX_TOKENS {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.tokens.remove(&oldest);
        }
        // Forget expired tokens at the front while we are here (keeps the map small).
        while let Some(front) = self.order.front() {
            match self.tokens.get(front) {
                Some(t) if t.expires_at + Duration::from_secs(60) > now => break,
                _ => {
                    if let Some(front) = self.order.pop_front() {
                        self.tokens.remove(&front);
                    }
                }
            }
        }
        self.order.push_back(token.clone());
        self.tokens.insert(token, info);
    }

    fn scopes_for(&self, user_id: &str, wanted: &[String]) -> Vec<String> {
        let lost = self.lost_scopes.get(user_id);
        wanted
            .iter()
            .filter(|s| !lost.is_some_and(|l| l.contains(*s)))
            .cloned()
            .collect()
    }

    /// Issues an app access token.
    pub fn issue_app_token(&mut self) -> (String, Duration) {
        let token = self.new_secret("app");
        let life = self.app_token_life;
        self.remember(
            token.clone(),
            TokenInfo {
                kind: TokenKind::App,
                user_id: None,
                login: None,
                scopes: Vec::new(),
                expires_at: Instant::now() + life,
            },
        );
        self.stats.app_tokens_issued += 1;
        (token, life)
    }

    /// Issues a user access token and its refresh token.
    fn issue_user_token(&mut self, grant: Grant) -> (String, String, Duration, Vec<String>) {
        let token = self.new_secret("usr");
        let refresh = self.new_secret("ref");
        let life = self.user_token_life;
        let scopes = self.scopes_for(&grant.user_id, &grant.scopes);
        self.remember(
            token.clone(),
            TokenInfo {
                kind: TokenKind::User,
                user_id: Some(grant.user_id.clone()),
                login: Some(grant.login.clone()),
                scopes: scopes.clone(),
                expires_at: Instant::now() + life,
            },
        );
        self.refresh.insert(refresh.clone(), grant);
        (token, refresh, life, scopes)
    }

    /// A refresh token for `login` (id `user_id`) with `scopes`, as if the user had gone
    /// through the authorisation code flow once (what an operator puts in the bot's config).
    pub fn issue_refresh_token(&mut self, user_id: &str, login: &str, scopes: &[&str]) -> String {
        let refresh = self.new_secret("ref");
        self.refresh.insert(
            refresh.clone(),
            Grant {
                user_id: user_id.to_string(),
                login: login.to_string(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
            },
        );
        refresh
    }

    /// A user access token for `login` (no refresh token), as an operator would paste it.
    pub fn issue_static_user_token(
        &mut self,
        user_id: &str,
        login: &str,
        scopes: &[&str],
    ) -> String {
        let grant = Grant {
            user_id: user_id.to_string(),
            login: login.to_string(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        };
        let (token, refresh, _, _) = self.issue_user_token(grant);
        self.refresh.remove(&refresh);
        token
    }

    /// The token's record if it is known, unexpired and unrevoked.
    pub fn check(&mut self, token: &str) -> Option<TokenInfo> {
        let info = self.tokens.get(token)?;
        if info.expires_at <= Instant::now() {
            return None;
        }
        let mut info = info.clone();
        if let Some(user) = &info.user_id {
            info.scopes = self.scopes_for(user, &info.scopes);
        }
        Some(info)
    }

    /// Revokes every token of `kind` (and, for users, every refresh token).
    pub fn revoke_all(&mut self, kind: TokenKind) {
        self.tokens.retain(|_, t| t.kind != kind);
        if kind == TokenKind::User {
            self.refresh.clear();
        }
    }

    /// Takes `scope` away from the user: their tokens lack it from now on.
    pub fn remove_scope(&mut self, user_id: &str, scope: &str) {
        self.lost_scopes
            .entry(user_id.to_string())
            .or_default()
            .insert(scope.to_string());
    }

    /// Makes every current token expire now (their refresh tokens stay valid).
    pub fn expire_all(&mut self) {
        let now = Instant::now();
        for token in self.tokens.values_mut() {
            token.expires_at = now;
        }
    }
}

fn oauth_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"status": status.as_u16(), "message": message})),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct TokenForm {
    client_id: Option<String>,
    client_secret: Option<String>,
    grant_type: Option<String>,
    refresh_token: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
}

/// `POST /oauth2/token` (form-encoded).
pub async fn token(State(api): State<ApiState>, Form(form): Form<TokenForm>) -> Response {
    let mut auth = lock(&api.oauth);
    if form.client_id.as_deref() != Some(auth.client_id.as_str()) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid client");
    }
    if form.client_secret.as_deref() != Some(auth.client_secret.as_str()) {
        return oauth_error(StatusCode::FORBIDDEN, "invalid client secret");
    }
    match form.grant_type.as_deref() {
        Some("client_credentials") => {
            let (token, life) = auth.issue_app_token();
            axum::Json(json!({
                "access_token": token, "expires_in": life.as_secs(), "token_type": "bearer"
            }))
            .into_response()
        }
        Some("refresh_token") => {
            let Some(grant) = form
                .refresh_token
                .as_deref()
                .and_then(|r| auth.refresh.remove(r))
            else {
                auth.stats.refresh_refused += 1;
                return oauth_error(StatusCode::BAD_REQUEST, "Invalid refresh token");
            };
            let (token, refresh, life, scopes) = auth.issue_user_token(grant);
            auth.stats.user_tokens_refreshed += 1;
            axum::Json(json!({
                "access_token": token, "refresh_token": refresh, "expires_in": life.as_secs(),
                "scope": scopes, "token_type": "bearer"
            }))
            .into_response()
        }
        Some("authorization_code") => {
            let code = form.code.as_deref().and_then(|c| auth.codes.remove(c));
            let Some(code) = code.filter(|c| c.expires_at > Instant::now()) else {
                return oauth_error(StatusCode::BAD_REQUEST, "Invalid authorization code");
            };
            if form.redirect_uri.as_deref() != Some(code.redirect_uri.as_str()) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "Parameter redirect_uri does not match registered URI",
                );
            }
            let (token, refresh, life, scopes) = auth.issue_user_token(code.grant);
            auth.stats.codes_exchanged += 1;
            axum::Json(json!({
                "access_token": token, "refresh_token": refresh, "expires_in": life.as_secs(),
                "scope": scopes, "token_type": "bearer"
            }))
            .into_response()
        }
        _ => oauth_error(StatusCode::BAD_REQUEST, "unsupported grant type"),
    }
}

/// `GET /oauth2/validate` with `Authorization: OAuth <token>`.
pub async fn validate(State(api): State<ApiState>, headers: HeaderMap) -> Response {
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("OAuth ")
                .or_else(|| v.strip_prefix("Bearer "))
        })
        .map(str::to_string);
    let mut auth = lock(&api.oauth);
    auth.stats.validations += 1;
    let Some(info) = presented.as_deref().and_then(|t| auth.check(t)) else {
        auth.stats.validations_refused += 1;
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid access token");
    };
    let expires_in = info
        .expires_at
        .saturating_duration_since(Instant::now())
        .as_secs();
    let body = match info.kind {
        TokenKind::App => json!({
            "client_id": auth.client_id, "scopes": info.scopes, "expires_in": expires_in
        }),
        TokenKind::User => json!({
            "client_id": auth.client_id, "login": info.login, "scopes": info.scopes,
            "user_id": info.user_id, "expires_in": expires_in
        }),
    };
    axum::Json(body).into_response()
}

#[derive(Debug, Deserialize)]
pub struct RevokeForm {
    client_id: Option<String>,
    token: Option<String>,
}

/// `POST /oauth2/revoke` (form: client_id, token).
pub async fn revoke(State(api): State<ApiState>, Form(form): Form<RevokeForm>) -> Response {
    let mut auth = lock(&api.oauth);
    if form.client_id.as_deref() != Some(auth.client_id.as_str()) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid client");
    }
    match form.token.as_deref().and_then(|t| auth.tokens.remove(t)) {
        Some(_) => {
            auth.stats.revoked += 1;
            StatusCode::OK.into_response()
        }
        None => oauth_error(StatusCode::BAD_REQUEST, "Invalid token"),
    }
}

#[derive(Debug, Deserialize)]
pub struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
}

/// `GET /oauth2/authorize`: the consent page. The simulated user (see
/// `TwitchApi::authorize_as`) consents at once, and the browser is sent back to
/// `redirect_uri` with `code`, `scope` and `state` (or `error=access_denied`).
pub async fn authorize(State(api): State<ApiState>, Query(q): Query<AuthorizeQuery>) -> Response {
    let mut auth = lock(&api.oauth);
    if q.client_id.as_deref() != Some(auth.client_id.as_str())
        || q.response_type.as_deref() != Some("code")
    {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid client or response_type");
    }
    let Some(redirect) = q.redirect_uri.filter(|r| r.starts_with("http")) else {
        return oauth_error(StatusCode::BAD_REQUEST, "missing redirect_uri");
    };
    let state = q.state.unwrap_or_default();
    let separator = if redirect.contains('?') { '&' } else { '?' };
    let encoded_state = url_encode(&state);
    if std::mem::take(&mut auth.refuse_next_authorization) {
        let target = format!(
            "{redirect}{separator}error=access_denied&error_description=The+user+denied+you+access&state={encoded_state}"
        );
        return Redirect::to(&target).into_response();
    }
    let Some((user_id, login)) = auth.authorizing.clone() else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "nobody is logged in to the simulated Twitch",
        );
    };
    let scopes: Vec<String> = q
        .scope
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if scopes.iter().any(|s| s == "channel:bot") {
        auth.channel_bot.insert(user_id.clone());
    }
    let code = auth.new_secret("code");
    let scope_text = scopes.join("+");
    auth.codes.insert(
        code.clone(),
        Code {
            grant: Grant {
                user_id,
                login,
                scopes,
            },
            redirect_uri: redirect.clone(),
            expires_at: Instant::now() + Duration::from_secs(600),
        },
    );
    let target =
        format!("{redirect}{separator}code={code}&scope={scope_text}&state={encoded_state}");
    Redirect::to(&target).into_response()
}

/// Percent-encodes everything but unreserved characters.
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
