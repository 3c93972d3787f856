//! `GET /helix/moderation/channels?user_id=&first=&after=`: the channels a user moderates, as
//! Twitch's "Get Moderated Channels" answers it: a user access token of that very user with
//! `user:read:moderated_channels`, `first` 1 to 100 (default 20), an opaque `after` cursor,
//! `{"data": [{broadcaster_id, broadcaster_login, broadcaster_name}], "pagination": {...}}`.
//! Who moderates where is set by the test ([`crate::api::TwitchApi::add_moderator`]).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{authenticate, helix_error, lock, user_id, ApiState, TokenKind};

pub const SCOPE: &str = "user:read:moderated_channels";

#[derive(Debug, serde::Deserialize)]
pub struct ModeratedQuery {
    user_id: Option<String>,
    first: Option<String>,
    after: Option<String>,
}

pub async fn moderated_channels(
    State(api): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<ModeratedQuery>,
) -> Response {
    let token = match authenticate(&api, &headers) {
        Ok(token) => token,
        Err(refused) => return refused,
    };
    if token.kind != TokenKind::User || !token.has_scope(SCOPE) {
        return helix_error(
            StatusCode::UNAUTHORIZED,
            "Missing scope: user:read:moderated_channels",
        );
    }
    let Some(wanted) = q.user_id.filter(|id| !id.is_empty()) else {
        return helix_error(
            StatusCode::BAD_REQUEST,
            "Missing required parameter \"user_id\"",
        );
    };
    if token.user_id.as_deref() != Some(wanted.as_str()) {
        return helix_error(
            StatusCode::BAD_REQUEST,
            "The ID in user_id must match the user ID found in the request's OAuth token.",
        );
    }
    let first = match q.first.as_deref().map(str::parse::<usize>) {
        None => 20,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => return helix_error(StatusCode::BAD_REQUEST, "first must be 1 to 100"),
    };
    let start = match q.after.as_deref().map(str::parse::<usize>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return helix_error(StatusCode::BAD_REQUEST, "invalid cursor"),
    };
    let login = token.login.clone().unwrap_or_default();
    let channels: Vec<String> = lock(&api.moderators)
        .iter()
        .filter(|(_, mods)| mods.contains(&login))
        .map(|(channel, _)| channel.clone())
        .collect();
    let page: Vec<_> = channels
        .iter()
        .skip(start)
        .take(first)
        .map(|channel| {
            json!({
                "broadcaster_id": user_id(&api, channel),
                "broadcaster_login": channel,
                "broadcaster_name": channel,
            })
        })
        .collect();
    let next = start + page.len();
    let pagination = if next < channels.len() {
        json!({"cursor": next.to_string()})
    } else {
        json!({})
    };
    axum::Json(json!({"data": page, "pagination": pagination})).into_response()
}
