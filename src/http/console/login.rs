//! Logging in and out. Operators type the admin token into a form (compared in constant
//! time); streamers and moderators log in with Twitch ([`crate::twitch::auth::login`]) and
//! get a session for their own channel and the channels Twitch says they moderate, if at least
//! one of them is on this service (anyone else with a Twitch account gets no session).

use std::collections::BTreeSet;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use subtle::ConstantTimeEq;

use super::pages::{layout, refused, respond};
use super::session::Who;
use super::{
    cookie_value, read_form, same_site, set_cookie, Console, St, LOGIN_STATE_COOKIE,
    MAX_FAILED_LOGINS_PER_MINUTE, SESSION_COOKIE,
};
use crate::channel::ChannelKey;
use crate::twitch::auth::login::ConsoleLogin;
use crate::twitch::auth::CallbackParams;

#[derive(serde::Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    token: String,
}

#[derive(serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `GET /ui`: the login page (signed in: on to the channels).
pub async fn page(State(console): St, headers: HeaderMap) -> Response {
    if console.session_of(&headers).is_some() {
        return Redirect::to("/ui/channels").into_response();
    }
    login_page(&console, StatusCode::OK, None)
}

fn login_page(console: &Console, status: StatusCode, error: Option<&str>) -> Response {
    let twitch = console
        .core
        .auth
        .as_ref()
        .is_some_and(|a| a.console_login.is_some());
    let body = html! {
        h1 { "Log in" }
        form method="post" action="/ui/login" class="card" {
            label for="token" { "Admin token" }
            input id="token" name="token" type="password" autocomplete="current-password"
                required aria-describedby=[error.map(|_| "token-error")];
            @if let Some(error) = error {
                p class="field-error" id="token-error" role="alert" { (error) }
            }
            button type="submit" { "Log in as operator" }
        }
        @if twitch {
            p class="card" {
                "Streamer or moderator? "
                a href="/ui/login/twitch" id="twitch-login" { "Log in with Twitch" }
                " to manage the channels you own or moderate."
            }
        }
    };
    respond(status, layout("Log in", None, body))
}

/// `POST /ui/login`: the admin token form.
pub async fn with_token(State(console): St, headers: HeaderMap, body: Body) -> Response {
    if !same_site(&headers) {
        console.core.metrics.console_csrf_refused.inc();
        return refused(
            StatusCode::FORBIDDEN,
            "Refused",
            "This login did not come from this console's page.",
        );
    }
    let form: TokenForm = match read_form(body, 8 * 1024).await {
        Ok(form) => form,
        Err(refusal) => return *refusal,
    };
    let metrics = &console.core.metrics;
    let Some(expected) = console.core.admin_token() else {
        metrics.console_login("token", "not_configured");
        return login_page(
            &console,
            StatusCode::UNAUTHORIZED,
            Some("No admin token is configured on this service: operator login is off."),
        );
    };
    let now = std::time::Instant::now();
    let free_at = console
        .failed_logins
        .lock()
        .map(|mut w| w.next_free(now, MAX_FAILED_LOGINS_PER_MINUTE))
        .unwrap_or(now);
    if free_at > now {
        metrics.console_login("token", "throttled");
        let wait = free_at.duration_since(now).as_secs() + 1;
        let mut response = login_page(
            &console,
            StatusCode::TOO_MANY_REQUESTS,
            Some(&format!("Too many wrong tokens: try again in {wait} s.")),
        );
        if let Ok(value) = header::HeaderValue::from_str(&wait.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    let presented = form.token.trim();
    if !bool::from(presented.as_bytes().ct_eq(expected.expose().as_bytes())) {
        if let Ok(mut window) = console.failed_logins.lock() {
            window.record(now);
        }
        metrics.console_login("token", "wrong_token");
        return login_page(
            &console,
            StatusCode::UNAUTHORIZED,
            Some("That is not the admin token."),
        );
    }
    metrics.console_login("token", "ok");
    signed_in(&console, &headers, Who::Admin)
}

/// Starts a session for `who` (ending the one this browser had): its cookie, and on to the
/// channels.
fn signed_in(console: &Console, headers: &HeaderMap, who: Who) -> Response {
    if let Some(old) = cookie_value(headers, SESSION_COOKIE) {
        console.sessions.end(&old);
    }
    let ttl = match who {
        Who::Admin => console.sessions.ttl(),
        Who::Twitch { .. } => {
            Duration::from_millis(console.core.config.console.twitch_session_ttl_ms)
        }
    };
    let id = console.sessions.create(who, ttl);
    let cookie = set_cookie(console, SESSION_COOKIE, &id, "/ui", ttl);
    let mut response = Redirect::to("/ui/channels").into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

/// The Twitch login, or the page saying it is off.
fn twitch_login(console: &Console) -> Result<&ConsoleLogin, super::Refusal> {
    console
        .core
        .auth
        .as_ref()
        .and_then(|a| a.console_login.as_ref())
        .ok_or_else(|| {
            Box::new(refused(
                StatusCode::NOT_FOUND,
                "Twitch login is off",
                "This service has no console.twitch_redirect_url: log in with the admin token.",
            ))
        })
}

/// `GET /ui/login/twitch`: off to Twitch, with the state in a cookie of this browser.
pub async fn twitch_start(State(console): St) -> Response {
    let login = match twitch_login(&console) {
        Ok(login) => login,
        Err(refusal) => return *refusal,
    };
    let (url, state) = login.link();
    let ttl = Duration::from_millis(console.core.config.twitch.auth.authorize_ttl_ms);
    let cookie = set_cookie(&console, LOGIN_STATE_COOKIE, &state, "/ui/login", ttl);
    let mut response = Redirect::to(&url).into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

/// `GET /ui/login/twitch/callback`: Twitch sends the browser back here.
pub async fn twitch_callback(
    State(console): St,
    headers: HeaderMap,
    Query(params): Query<CallbackParams>,
) -> Response {
    let login = match twitch_login(&console) {
        Ok(login) => login,
        Err(refusal) => return *refusal,
    };
    let browser_state = cookie_value(&headers, LOGIN_STATE_COOKIE);
    let metrics = &console.core.metrics;
    let user = match login.finish(params, browser_state.as_deref()).await {
        Ok(user) => user,
        Err(e) => {
            metrics.console_login("twitch", e.label());
            let status = match e {
                crate::twitch::auth::login::LoginError::OAuth(_)
                | crate::twitch::auth::login::LoginError::Helix(_) => StatusCode::BAD_GATEWAY,
                _ => StatusCode::BAD_REQUEST,
            };
            return refused(status, "Twitch login failed", &e.to_string());
        }
    };
    let mut channels: BTreeSet<String> = user.moderated.into_iter().collect();
    channels.insert(user.login.clone());
    let registry = &console.core.registry;
    if !channels
        .iter()
        .any(|c| registry.get(&ChannelKey::twitch(c)).is_some())
    {
        metrics.console_login("twitch", "no_channel");
        return refused(
            StatusCode::FORBIDDEN,
            "No channel here",
            &format!(
                "{} owns or moderates no channel of this service.",
                user.login
            ),
        );
    }
    metrics.console_login("twitch", "ok");
    let mut response = signed_in(
        &console,
        &headers,
        Who::Twitch {
            login: user.login,
            user_id: user.user_id,
            channels,
        },
    );
    let cleared = set_cookie(
        &console,
        LOGIN_STATE_COOKIE,
        "",
        "/ui/login",
        Duration::ZERO,
    );
    response.headers_mut().append(header::SET_COOKIE, cleared);
    response
}

/// `POST /ui/logout`.
pub async fn logout(State(console): St, headers: HeaderMap, body: Body) -> Response {
    let signed = match console.change_session(&headers) {
        Ok(signed) => signed,
        Err(refusal) => return *refusal,
    };
    let form: CsrfForm = match read_form(body, 8 * 1024).await {
        Ok(form) => form,
        Err(refusal) => return *refusal,
    };
    if let Err(refusal) = console.check_change(&headers, &signed.session, &form.csrf) {
        return *refusal;
    }
    console.sessions.end(&signed.id);
    let mut response = Redirect::to("/ui").into_response();
    let cleared = set_cookie(&console, SESSION_COOKIE, "", "/ui", Duration::ZERO);
    response.headers_mut().append(header::SET_COOKIE, cleared);
    response
}
