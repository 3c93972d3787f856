//! Twitch's HTTP entry points: onboarding links (admin), Twitch's OAuth redirect back to us,
//! and the EventSub webhook endpoint.
//!
//! `POST /eventsub` reads at most `twitch.eventsub.webhook_max_body_bytes` (413 beyond,
//! counted), hands headers and raw body to the intake (`twitch::eventsub::webhook`), which
//! decides without waiting: 403 for a missing, wrong or stale signature, 204 for a replay or a
//! handed-off notification, the challenge as `text/plain`, 503 when its queue is full. The
//! callback's answers are plain text (nothing from the request is echoed as HTML).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::error_response;
use crate::app::Core;
use crate::twitch::auth::{AuthorizeFor, CallbackParams, OnboardError};
use crate::twitch::eventsub::{WebhookAnswer, WebhookHeaders};

fn onboarding_error(e: &OnboardError) -> Response {
    let status = match e {
        OnboardError::NotConfigured(_) => StatusCode::CONFLICT,
        OnboardError::OAuth(_) => StatusCode::BAD_GATEWAY,
        _ => StatusCode::BAD_REQUEST,
    };
    error_response(status, &e.to_string())
}

fn link(core: &Core, what: AuthorizeFor) -> Response {
    let Some(auth) = &core.auth else {
        return error_response(
            StatusCode::CONFLICT,
            "Twitch onboarding needs helix.client_id and the client secret",
        );
    };
    match auth.onboarding.authorize(what) {
        Ok(link) => Json(link).into_response(),
        Err(e) => onboarding_error(&e),
    }
}

/// `GET /v1/channels/{login}/authorize`: the link the broadcaster follows.
#[utoipa::path(
    get,
    path = "/v1/channels/{login}/authorize",
    tag = "onboarding",
    params(("login" = String, Path, description = "The broadcaster's login.")),
    responses(
        (status = 200, description = "The link, its scopes, and how long its one-use `state` is valid.", body = crate::twitch::auth::onboarding::Link),
        (status = 409, description = "Onboarding is not configured (Helix client id and secret, `twitch.auth.redirect_url`).", body = super::openapi::ErrorBody),
        (status = 400, description = "Not a login.", body = super::openapi::ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn authorize_channel(
    State(core): State<Arc<Core>>,
    Path(login): Path<String>,
) -> Response {
    if !crate::config::is_login(&login) {
        return error_response(
            StatusCode::BAD_REQUEST,
            "not a channel login (lowercase a-z, 0-9, _; 1-25 chars)",
        );
    }
    link(&core, AuthorizeFor::Channel(login))
}

/// `GET /v1/bot/authorize`: the link the bot account follows (to grant the app its user token).
#[utoipa::path(
    get,
    path = "/v1/bot/authorize",
    tag = "onboarding",
    responses(
        (status = 200, description = "The link, its scopes, and how long its one-use `state` is valid.", body = crate::twitch::auth::onboarding::Link),
        (status = 409, description = "Onboarding is not configured (Helix client id and secret, `twitch.auth.redirect_url`).", body = super::openapi::ErrorBody),
    ),
    security(("admin_token" = [])),
)]
pub async fn authorize_bot(State(core): State<Arc<Core>>) -> Response {
    link(&core, AuthorizeFor::Bot)
}

/// `GET /oauth/callback?code&scope&state` (or `error`, `error_description`): Twitch's
/// redirect after a grant; the one-use `state` is the check.
#[utoipa::path(
    get,
    path = "/oauth/callback",
    tag = "onboarding",
    params(
        ("code" = Option<String>, Query, description = "The authorization code."),
        ("scope" = Option<String>, Query, description = "The scopes granted, space-separated."),
        ("state" = Option<String>, Query, description = "The one-use state of the link."),
        ("error" = Option<String>, Query, description = "Set when the user refused."),
        ("error_description" = Option<String>, Query),
    ),
    responses(
        (status = 200, description = "The grant is recorded.", body = String, content_type = "text/plain; charset=utf-8"),
        (status = 400, description = "Refused, unknown or expired state, or a grant without the scopes needed.", body = String, content_type = "text/plain; charset=utf-8"),
        (status = 404, description = "Onboarding is not configured.", body = String, content_type = "text/plain"),
        (status = 502, description = "Twitch's token endpoint failed.", body = String, content_type = "text/plain; charset=utf-8"),
    ),
)]
pub async fn oauth_callback(
    State(core): State<Arc<Core>>,
    Query(params): Query<CallbackParams>,
) -> Response {
    let Some(auth) = &core.auth else {
        return (StatusCode::NOT_FOUND, "onboarding is not configured\n").into_response();
    };
    match auth.onboarding.callback(params).await {
        Ok(granted) => {
            if let Some(eventsub) = &core.eventsub {
                if let Some(subscriber) = &eventsub.subscriber {
                    subscriber.retry_failed();
                }
            }
            let text = match granted.kind {
                "channel" => format!(
                    "Thank you: {} authorised the bot (channel:bot). You can close this page.\n",
                    granted.login
                ),
                _ => format!(
                    "The bot account {} authorised the application. You can close this page.\n",
                    granted.login
                ),
            };
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                text,
            )
                .into_response()
        }
        Err(e) => {
            let status = match e {
                OnboardError::OAuth(_) => StatusCode::BAD_GATEWAY,
                _ => StatusCode::BAD_REQUEST,
            };
            (
                status,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("Authorisation not recorded: {e}\n"),
            )
                .into_response()
        }
    }
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `POST /eventsub`: EventSub webhook deliveries (with a webhook secret configured); the
/// HMAC-SHA256 signature over id, timestamp and body is the check.
#[utoipa::path(
    post,
    path = "/eventsub",
    tag = "twitch",
    params(
        ("Twitch-Eventsub-Message-Id" = String, Header),
        ("Twitch-Eventsub-Message-Timestamp" = String, Header, description = "RFC 3339; older than 10 minutes is refused."),
        ("Twitch-Eventsub-Message-Signature" = String, Header, description = "`sha256=` + hex HMAC."),
        ("Twitch-Eventsub-Message-Type" = String, Header, description = "`notification`, `webhook_callback_verification` or `revocation`."),
        ("Twitch-Eventsub-Subscription-Type" = Option<String>, Header),
        ("Twitch-Eventsub-Subscription-Version" = Option<String>, Header),
    ),
    request_body(content = Object, description = "Twitch's JSON message (at most `twitch.eventsub.webhook_max_body_bytes`).", content_type = "application/json"),
    responses(
        (status = 204, description = "A notification or revocation accepted, or a replayed message id (nothing is done twice)."),
        (status = 200, description = "A verification request: the challenge, as text.", body = String, content_type = "text/plain"),
        (status = 400, description = "Malformed message.", body = super::openapi::ErrorBody),
        (status = 403, description = "Missing, wrong or stale signature.", body = super::openapi::ErrorBody),
        (status = 404, description = "No webhook secret is configured.", body = super::openapi::ErrorBody),
        (status = 408, description = "The body did not arrive within `http.body_read_timeout_ms` (the connection is closed).", body = super::openapi::ErrorBody),
        (status = 413, description = "Body too large (counted).", body = super::openapi::ErrorBody),
        (status = 503, description = "The intake queue is full; Twitch retries (`Retry-After: 1`).", body = super::openapi::ErrorBody),
    ),
)]
pub async fn eventsub_webhook(
    State(core): State<Arc<Core>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(intake) = core.eventsub.as_ref().and_then(|e| e.webhook.clone()) else {
        return error_response(StatusCode::NOT_FOUND, "no webhook secret is configured");
    };
    let limit = core.config.twitch.eventsub.webhook_max_body_bytes;
    let body = match super::server::read_body(body, limit).await {
        Ok(body) => body,
        Err(super::server::BodyError::TooLarge) => {
            intake.too_large();
            return error_response(StatusCode::PAYLOAD_TOO_LARGE, "body too large");
        }
        Err(other) => return other.into_response(),
    };
    let headers = WebhookHeaders {
        message_id: header_text(&headers, "twitch-eventsub-message-id"),
        timestamp: header_text(&headers, "twitch-eventsub-message-timestamp"),
        signature: header_text(&headers, "twitch-eventsub-message-signature"),
        message_type: header_text(&headers, "twitch-eventsub-message-type"),
        subscription_type: header_text(&headers, "twitch-eventsub-subscription-type"),
        subscription_version: header_text(&headers, "twitch-eventsub-subscription-version"),
    };
    match intake.handle(headers, body) {
        WebhookAnswer::Accepted => StatusCode::NO_CONTENT.into_response(),
        WebhookAnswer::Challenge(challenge) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain")],
            challenge,
        )
            .into_response(),
        WebhookAnswer::Forbidden(why) => error_response(StatusCode::FORBIDDEN, why),
        WebhookAnswer::BadRequest(why) => error_response(StatusCode::BAD_REQUEST, why),
        WebhookAnswer::Busy => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            Json(json!({"error": "busy"})),
        )
            .into_response(),
    }
}
