//! Admin API for channel rules: one item at a time, or the whole set.
//!
//! | route | answer |
//! |---|---|
//! | `GET /v1/channels/{login}/rules` | the channel's whole `ChannelRules` |
//! | `GET /v1/channels/{login}/{kind}/{name}` | one item (`kind`: commands, keywords, timers, filters) |
//! | `PUT /v1/channels/{login}/{kind}/{name}` | create (201) or replace (200) it; JSON body |
//! | `DELETE /v1/channels/{login}/{kind}/{name}` | remove it (200), 404 if absent |
//!
//! Every change is checked the way rules files are (serde with unknown fields refused, then
//! `ChannelRules::validate`, which compiles templates and patterns) and refused with a 400 that
//! says what is wrong. A running channel switches to the new rules at once. An edit is applied
//! only to the version it was made from: if the rules changed in between (another edit, a
//! moderator's `!addcom` in chat), the answer is 409 and nothing is lost.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::error_response;

/// A refusal: status and message, rendered as `{"error": ...}`.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(self.0, &self.1)
    }
}
use crate::app::{Core, SetRulesError};
use crate::channel::actor::RulesRefused;
use crate::config::is_login;
use crate::engine::ChannelRules;

const KINDS: [&str; 4] = ["commands", "keywords", "timers", "filters"];

pub(super) async fn get_rules(
    State(core): State<Arc<Core>>,
    Path(login): Path<String>,
) -> Response {
    if !is_login(&login) {
        return bad_login(&login);
    }
    Json(core.rules.get(&login).as_ref().clone()).into_response()
}

pub(super) async fn get_item(
    State(core): State<Arc<Core>>,
    Path((login, kind, name)): Path<(String, String, String)>,
) -> Response {
    let (rules, kind, _) = match current(&core, &login, &kind) {
        Ok(found) => found,
        Err(error) => return error.into_response(),
    };
    match items(&rules, kind)
        .iter()
        .find(|item| item["name"] == name.as_str())
    {
        Some(item) => Json(item.clone()).into_response(),
        None => not_found(kind, &name),
    }
}

pub(super) async fn put_item(
    State(core): State<Arc<Core>>,
    Path((login, kind, name)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let (mut rules, kind, base) = match current(&core, &login, &kind) {
        Ok(found) => found,
        Err(error) => return error.into_response(),
    };
    let mut item: Value = match serde_json::from_slice(&body) {
        Ok(item) => item,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                &format!("body is not valid JSON: {e}"),
            )
        }
    };
    let Some(fields) = item.as_object_mut() else {
        return error_response(StatusCode::BAD_REQUEST, "body must be a JSON object");
    };
    match fields.get("name") {
        None => {
            fields.insert("name".into(), Value::String(name.clone()));
        }
        Some(given) if given != name.as_str() => {
            return error_response(
                StatusCode::BAD_REQUEST,
                &format!("body names `{given}` but the path names `{name}`"),
            )
        }
        Some(_) => {}
    }
    let list = match items_mut(&mut rules, kind) {
        Ok(list) => list,
        Err(error) => return error.into_response(),
    };
    let existed = match list.iter_mut().find(|i| i["name"] == name.as_str()) {
        Some(slot) => {
            *slot = item;
            true
        }
        None => {
            list.push(item);
            false
        }
    };
    match apply(&core, &login, base, rules).await {
        Ok(()) if existed => (
            StatusCode::OK,
            Json(json!({ "channel": login, kind: name, "replaced": true })),
        )
            .into_response(),
        Ok(()) => (
            StatusCode::CREATED,
            Json(json!({ "channel": login, kind: name, "created": true })),
        )
            .into_response(),
        Err(error) => error.into_response(),
    }
}

pub(super) async fn delete_item(
    State(core): State<Arc<Core>>,
    Path((login, kind, name)): Path<(String, String, String)>,
) -> Response {
    let (mut rules, kind, base) = match current(&core, &login, &kind) {
        Ok(found) => found,
        Err(error) => return error.into_response(),
    };
    let list = match items_mut(&mut rules, kind) {
        Ok(list) => list,
        Err(error) => return error.into_response(),
    };
    let before = list.len();
    list.retain(|i| i["name"] != name.as_str());
    if list.len() == before {
        return not_found(kind, &name);
    }
    match apply(&core, &login, base, rules).await {
        Ok(()) => Json(json!({ "channel": login, kind: name, "deleted": true })).into_response(),
        Err(error) => error.into_response(),
    }
}

/// The channel's rules as JSON, and the kind named in the path.
/// The channel's rules as JSON, the kind named in the path, and the version read.
fn current(
    core: &Core,
    login: &str,
    kind: &str,
) -> Result<(Value, &'static str, Arc<ChannelRules>), ApiError> {
    if !is_login(login) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("`{login}` is not a channel login"),
        ));
    }
    let Some(kind) = KINDS.iter().find(|k| **k == kind) else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("unknown rule kind `{kind}`; one of {}", KINDS.join(", ")),
        ));
    };
    let base = core.rules.get(login);
    let rules = serde_json::to_value(base.as_ref()).map_err(|e| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("rules do not serialize: {e}"),
        )
    })?;
    Ok((rules, kind, base))
}

fn items<'a>(rules: &'a Value, kind: &str) -> &'a [Value] {
    rules[kind].as_array().map_or(&[], Vec::as_slice)
}

fn items_mut<'a>(rules: &'a mut Value, kind: &str) -> Result<&'a mut Vec<Value>, ApiError> {
    if !rules[kind].is_array() {
        rules[kind] = Value::Array(Vec::new());
    }
    rules[kind].as_array_mut().ok_or_else(|| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "rules are not an object".into(),
        )
    })
}

/// Checks the edited rules like a rules file and hands them to the channel.
async fn apply(
    core: &Core,
    login: &str,
    base: Arc<ChannelRules>,
    rules: Value,
) -> Result<(), ApiError> {
    let rules: ChannelRules = serde_json::from_value(rules)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("invalid rule: {e}")))?;
    core.set_rules(login, base, rules).await.map_err(|e| match e {
        SetRulesError::Refused(RulesRefused::Invalid(why)) => {
            ApiError(StatusCode::BAD_REQUEST, format!("invalid rule: {why}"))
        }
        SetRulesError::Refused(RulesRefused::Conflict) => ApiError(
            StatusCode::CONFLICT,
            "the channel's rules changed meanwhile (another edit or a moderator in chat); read them again and retry".into(),
        ),
        unavailable @ SetRulesError::Unavailable(_) => {
            ApiError(StatusCode::SERVICE_UNAVAILABLE, unavailable.to_string())
        }
    })
}

fn bad_login(login: &str) -> Response {
    error_response(
        StatusCode::BAD_REQUEST,
        &format!("`{login}` is not a channel login"),
    )
}

fn not_found(kind: &str, name: &str) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        &format!("no {kind} item named `{name}`"),
    )
}
