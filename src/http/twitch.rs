//! Twitch's HTTP entry points: onboarding links (admin), Twitch's OAuth redirect back to us,
//! and the EventSub webhook endpoint.
//!
//! `POST /eventsub` reads at most `twitch.eventsub.webhook_max_body_bytes` (413 beyond,
//! counted), hands headers and raw body to the intake (`twitch::eventsub::webhook`), which
//! decides without waiting: 403 for a missing, wrong or stale signature, 200 for a replay or a
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

/// `GET /v1/bot/authorize`: the link the bot account follows.
pub async fn authorize_bot(State(core): State<Arc<Core>>) -> Response {
    link(&core, AuthorizeFor::Bot)
}

/// `GET /oauth/callback?code&scope&state` (or `error`, `error_description`).
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

/// `POST /eventsub`.
pub async fn eventsub_webhook(
    State(core): State<Arc<Core>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(intake) = core.eventsub.as_ref().and_then(|e| e.webhook.clone()) else {
        return error_response(StatusCode::NOT_FOUND, "no webhook secret is configured");
    };
    let limit = core.config.twitch.eventsub.webhook_max_body_bytes;
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(body) => body,
        Err(_) => {
            intake.too_large();
            return error_response(StatusCode::PAYLOAD_TOO_LARGE, "body too large");
        }
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
