//! The web console at `/ui`: what the people who run a big channel's bot use instead of curl.
//! Server-rendered HTML ([`maud`], escaped by default) with one small script for the live
//! channel table and the file picker; no build step.
//!
//! - [`login`]: the login page, the admin token form, "log in with Twitch" (streamers and
//!   moderators see only their channels), logout.
//! - [`channels`]: every channel the user may see, live through server-sent events; join, part
//!   and revive.
//! - [`rules`]: a channel's rules (list, add, edit, delete, shadow toggle, nuke settings), the
//!   "try it" box, and the audit log of rule edits.
//! - [`modlog`]: a channel's moderation log with each Helix call's outcome, by user and rule.
//! - [`session`]: sessions and CSRF tokens; [`pages`]: the layout and shared bits; [`assets`]:
//!   the stylesheet and the script.
//!
//! Security: a session is an HTTP-only, `SameSite=Lax` cookie (`Secure` with
//! `console.secure_cookies`), never a token in a URL or in script-readable storage. Every change
//! is a POST carrying the session's CSRF token and, when the browser says where it comes from
//! (`Origin`, `Sec-Fetch-Site`), coming from this site. Without a session, pages redirect to
//! the login and changes answer 401; a user without the right to a channel gets 403. Every
//! answer has a strict Content-Security-Policy (scripts and styles from this site only, no
//! framing), `no-store` caching and `Referrer-Policy: same-origin`. The console is not part of
//! the admin API's OpenAPI description: it is pages for people; it calls the same operations
//! ([`crate::app::Core`], the rules API's checked edit) the API does.

pub mod assets;
pub mod channels;
pub mod login;
pub mod modlog;
pub mod pages;
pub mod rules;
pub mod session;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::app::Core;
use crate::channel::ChannelKey;
use crate::config::discord::is_snowflake;
use crate::config::is_login;
use session::{Session, Sessions};

/// The session cookie.
pub const SESSION_COOKIE: &str = "fh_session";
/// The Twitch login's state cookie (binds the callback to the browser that started it).
pub const LOGIN_STATE_COOKIE: &str = "fh_login";

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Wrong admin tokens accepted per minute, the whole process together; beyond it the token
/// form answers 429 until the minute has passed (guessing stays hopeless at one a second;
/// sessions and Twitch logins are not affected).
pub const MAX_FAILED_LOGINS_PER_MINUTE: usize = 60;

/// What the console's handlers share.
pub struct Console {
    pub core: Arc<Core>,
    pub sessions: Sessions,
    /// Recent wrong admin tokens ([`MAX_FAILED_LOGINS_PER_MINUTE`]).
    pub failed_logins: std::sync::Mutex<crate::util::window::SlidingWindow>,
    /// "Try it" runs: one at a time.
    pub try_runs: tokio::sync::Semaphore,
    /// Live channel views (event streams) open at once: a quarter of `http.max_connections`.
    pub streams: Arc<tokio::sync::Semaphore>,
    /// Login lookups of the moderation log's search (Helix calls), per minute.
    pub lookups: std::sync::Mutex<crate::util::window::SlidingWindow>,
}

pub type ConsoleState = Arc<Console>;

impl Console {
    pub fn new(core: Arc<Core>) -> ConsoleState {
        let c = &core.config.console;
        let sessions = Sessions::new(
            Duration::from_millis(c.session_ttl_ms),
            c.max_sessions,
            core.metrics.console_sessions.clone(),
        );
        let streams = (core.config.http.max_connections as usize / 4).max(1);
        Arc::new(Console {
            core,
            sessions,
            failed_logins: std::sync::Mutex::new(crate::util::window::SlidingWindow::new(
                Duration::from_secs(60),
            )),
            try_runs: tokio::sync::Semaphore::new(1),
            streams: Arc::new(tokio::sync::Semaphore::new(streams)),
            lookups: std::sync::Mutex::new(crate::util::window::SlidingWindow::new(
                Duration::from_secs(60),
            )),
        })
    }
}

/// The console's routes (empty when `console.enabled` is off).
pub fn router(console: ConsoleState) -> Router {
    if !console.core.config.console.enabled {
        return Router::new();
    }
    Router::new()
        .route("/ui", get(login::page))
        .route("/ui/", get(login::page))
        .route("/ui/login", post(login::with_token))
        .route("/ui/login/twitch", get(login::twitch_start))
        .route("/ui/login/twitch/callback", get(login::twitch_callback))
        .route("/ui/logout", post(login::logout))
        .route("/ui/assets/console.css", get(assets::stylesheet))
        .route("/ui/assets/console.js", get(assets::script))
        .route("/ui/channels", get(channels::page).post(channels::join))
        .route("/ui/channels/events", get(channels::events))
        .route("/ui/channels/{platform}/{channel}", get(rules::page))
        .route(
            "/ui/channels/{platform}/{channel}/part",
            post(channels::part),
        )
        .route(
            "/ui/channels/{platform}/{channel}/revive",
            post(channels::revive),
        )
        .route("/ui/channels/{platform}/{channel}/rules", post(rules::edit))
        .route("/ui/channels/{platform}/{channel}/try", post(rules::try_it))
        .route(
            "/ui/channels/{platform}/{channel}/moderation",
            get(modlog::page),
        )
        .layer(middleware::from_fn(security_headers))
        .with_state(console)
}

/// The headers every console answer carries.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name: header::HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY,
    );
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::REFERRER_POLICY, "same-origin");
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, header::CACHE_CONTROL, "no-store");
    }
    response
}

/// The value of cookie `name` in the request, if any.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}

/// A `Set-Cookie` value: HTTP-only, same-site Lax, on `path`, for `max_age` (zero: removed).
pub fn set_cookie(
    console: &Console,
    name: &str,
    value: &str,
    path: &str,
    max_age: Duration,
) -> HeaderValue {
    let mut c = cookie::Cookie::new(name.to_string(), value.to_string());
    c.set_http_only(true);
    c.set_same_site(cookie::SameSite::Lax);
    c.set_path(path.to_string());
    let c_config = &console.core.config.console;
    // Secure when told so, or when Twitch sends users back over HTTPS (the console is then
    // reached over HTTPS).
    c.set_secure(c_config.secure_cookies || c_config.twitch_redirect_url.starts_with("https://"));
    c.set_max_age(cookie::time::Duration::seconds(
        i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
    ));
    HeaderValue::from_str(&c.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The signed-in user of a request, with the session's cookie value.
pub struct SignedIn {
    pub session: Session,
    pub id: String,
}

/// Why a request cannot go on (already a response).
pub type Refusal = Box<Response>;

impl Console {
    /// Whether one more login lookup fits this minute ([`modlog::MAX_LOOKUPS_PER_MINUTE`]).
    fn lookup_allowed(&self) -> bool {
        self.lookups.lock().is_ok_and(|mut window| {
            window
                .try_acquire(std::time::Instant::now(), modlog::MAX_LOOKUPS_PER_MINUTE)
                .is_ok()
        })
    }

    /// The session of the request; without one a page answers a redirect to the login.
    fn page_session(&self, headers: &HeaderMap) -> Result<SignedIn, Refusal> {
        self.session_of(headers)
            .ok_or_else(|| Box::new(Redirect::to("/ui").into_response()))
    }

    /// A channel page's session and channel ([`Console::page_session`], [`channel_of`]).
    fn page_channel(
        &self,
        headers: &HeaderMap,
        platform: &str,
        channel: &str,
    ) -> Result<(SignedIn, ChannelKey), Refusal> {
        let signed = self.page_session(headers)?;
        let key = channel_of(self, &signed, platform, channel)?;
        Ok((signed, key))
    }

    /// The session of a change or a stream; without one, 401.
    fn change_session(&self, headers: &HeaderMap) -> Result<SignedIn, Refusal> {
        self.session_of(headers).ok_or_else(|| {
            Box::new(pages::refused(
                StatusCode::UNAUTHORIZED,
                "Not logged in",
                "Log in first: this needs a session.",
            ))
        })
    }

    fn session_of(&self, headers: &HeaderMap) -> Option<SignedIn> {
        let id = cookie_value(headers, SESSION_COOKIE)?;
        let session = self.sessions.get(&id)?;
        Some(SignedIn { session, id })
    }

    /// A change's checks: it comes from this site and carries the session's CSRF token.
    fn check_change(
        &self,
        headers: &HeaderMap,
        session: &Session,
        csrf: &str,
    ) -> Result<(), Refusal> {
        if !same_site(headers) || !session.csrf_matches(csrf) {
            self.core.metrics.console_csrf_refused.inc();
            return Err(Box::new(pages::refused(
                StatusCode::FORBIDDEN,
                "Refused",
                "This change did not come from a console page of this session (a missing or stale form token, or another site). Reload the page and try again.",
            )));
        }
        Ok(())
    }
}

/// Whether the browser says the request comes from this site (or says nothing, as non-browser
/// clients do: the CSRF token still has to match).
pub fn same_site(headers: &HeaderMap) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site") {
        if !matches!(site, "same-origin" | "none") {
            return false;
        }
    }
    match (header("origin"), header("host")) {
        (None, _) => true,
        (Some(origin), Some(host)) => {
            origin == format!("http://{host}") || origin == format!("https://{host}")
        }
        (Some(_), None) => false,
    }
}

/// The channel a console path names, if the user may manage it and it is supervised.
fn channel_of(
    console: &Console,
    signed: &SignedIn,
    platform: &str,
    channel: &str,
) -> Result<ChannelKey, Refusal> {
    let key = match platform {
        "twitch" if is_login(channel) => ChannelKey::twitch(channel),
        "discord" if is_snowflake(channel) => ChannelKey::discord(channel),
        _ => {
            return Err(Box::new(pages::refused(
                StatusCode::NOT_FOUND,
                "No such channel",
                "That is not a channel of this service.",
            )))
        }
    };
    if !signed.session.who.may_manage(&key) {
        return Err(Box::new(pages::refused(
            StatusCode::FORBIDDEN,
            "Not your channel",
            "You can manage only the channels you own or moderate.",
        )));
    }
    if console.core.registry.get(&key).is_none() {
        return Err(Box::new(pages::refused(
            StatusCode::NOT_FOUND,
            "No such channel",
            "That channel is not joined.",
        )));
    }
    Ok(key)
}

/// Reads and parses a form body (`application/x-www-form-urlencoded`), within the body
/// deadline and `limit` bytes.
async fn read_form<T: serde::de::DeserializeOwned>(
    body: axum::body::Body,
    limit: usize,
) -> Result<T, Refusal> {
    let bytes = super::server::read_body(body, limit)
        .await
        .map_err(|e| Box::new(e.into_response()))?;
    serde_urlencoded::from_bytes(&bytes).map_err(|e| {
        Box::new(pages::refused(
            StatusCode::BAD_REQUEST,
            "Bad form",
            &format!("The form could not be read: {e}"),
        ))
    })
}

/// `State` of the console routes.
type St = State<ConsoleState>;
