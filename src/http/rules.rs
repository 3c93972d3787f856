//! Admin API for channel rules: one item at a time, or the whole set, for Twitch channels (by
//! login) and Discord channels (by channel id).
//!
//! | route | answer |
//! |---|---|
//! | `GET /v1/channels/{login}/rules` | the Twitch channel's whole `ChannelRules` |
//! | `GET /v1/channels/{login}/{kind}/{name}` | one item (`kind`: commands, keywords, timers, filters) |
//! | `PUT /v1/channels/{login}/{kind}/{name}` | create (201) or replace (200) it; JSON body |
//! | `DELETE /v1/channels/{login}/{kind}/{name}` | remove it (200), 404 if absent |
//! | `... /v1/channels/discord/{channel id}/...` | the same for a Discord channel |
//!
//! Every change is checked the way rules files are: serde with unknown fields refused, item
//! names without control characters, then the channel's own compilation
//! ([`crate::channel::rules_book::compile`]), and refused with a 400 that says what is wrong
//! ([`edit`] is that check, with no I/O: the `admin_rules` fuzz target runs it). A running
//! channel switches to the new rules at once; every edit also goes to the state store, so a
//! channel that has no actor keeps it when it starts. An edit is applied only to the version
//! it was made from: if the rules changed in between (another edit, a moderator's `!addcom` in
//! chat), the answer is 409 and nothing is lost. Every applied edit is written to the
//! channel's audit log ([`crate::app::audit`]) with who made it ([`change_item`], which the web
//! console edits through too).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use super::{error_response, openapi};
use crate::app::{Core, SetRulesError};
use crate::channel::actor::RulesRefused;
use crate::channel::{rules_book, ChannelKey};
use crate::config::discord::is_snowflake;
use crate::config::is_login;
use crate::engine::ChannelRules;

/// The item kinds, as the paths name them.
pub const KINDS: [&str; 4] = ["commands", "keywords", "timers", "filters"];

/// Largest body accepted for one item (an item is small; a rules set is bounded anyway).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// A refusal: status and message, rendered as `{"error": ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(self.0, &self.1)
    }
}

/// A checked edit of one item.
#[derive(Debug, Clone)]
pub struct Edited {
    /// The whole rules after the edit; they compile.
    pub rules: ChannelRules,
    /// Whether the item existed before.
    pub existed: bool,
    /// The kind, as the path names it.
    pub kind: &'static str,
}

/// What a path's channel part names.
fn twitch(login: &str) -> Result<ChannelKey, ApiError> {
    if is_login(login) {
        Ok(ChannelKey::twitch(login))
    } else {
        Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("`{login}` is not a channel login"),
        ))
    }
}

fn discord(id: &str) -> Result<ChannelKey, ApiError> {
    if is_snowflake(id) {
        Ok(ChannelKey::discord(id))
    } else {
        Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("`{id}` is not a Discord channel id (a snowflake: digits)"),
        ))
    }
}

/// The rules routes of one platform: the whole set and one item (GET, PUT, DELETE), each an
/// annotated handler (the OpenAPI description comes from these annotations), over the shared
/// [`whole`], [`get_item`] and [`change`]. `key` is the path parameter naming the channel, its
/// description, and the function that checks it into a [`ChannelKey`].
macro_rules! rules_routes {
    (
        rules = $rules_path:tt,
        item = $item_path:tt,
        key = ($param:tt, $param_doc:tt, $keyed:ident),
        handlers = ($get_rules:ident, $get_item:ident, $put_item:ident, $delete_item:ident) $(,)?
    ) => {
        /// The channel's whole rules.
        #[utoipa::path(
            get,
            path = $rules_path,
            tag = "rules",
            params(($param = String, Path, description = $param_doc)),
            responses(
                (status = 200, description = "Its rules (the file's, with every edit since).", body = crate::engine::ChannelRules),
                (status = 400, description = "Not a channel key of that platform.", body = openapi::ErrorBody),
            ),
            security(("admin_token" = [])),
        )]
        pub(super) async fn $get_rules(
            State(core): State<Arc<Core>>,
            Path(key): Path<String>,
        ) -> Response {
            whole(&core, $keyed(&key)).await
        }

        /// One rule item of the channel.
        #[utoipa::path(
            get,
            path = $item_path,
            tag = "rules",
            params(($param = String, Path, description = $param_doc), ("kind" = openapi::RuleKind, Path, description = "The item kind; another answers 404."), ("name" = String, Path, description = "The item's name (a command's includes its prefix, e.g. `!discord`); no control characters.")),
            responses(
                (status = 200, description = "The item.", body = openapi::RuleItem),
                (status = 400, description = "Not a channel key of that platform.", body = openapi::ErrorBody),
                (status = 404, description = "Unknown kind, or no such item.", body = openapi::ErrorBody),
                (status = 500, description = "The stored rules could not be read as JSON (a bug: reported, nothing changed).", body = openapi::ErrorBody),
            ),
            security(("admin_token" = [])),
        )]
        pub(super) async fn $get_item(
            State(core): State<Arc<Core>>,
            Path((key, kind, name)): Path<(String, String, String)>,
        ) -> Response {
            get_item(&core, $keyed(&key), &kind, &name).await
        }

        /// Creates or replaces one rule item of the channel: checked as rules files are, then
        /// applied to the running channel and written to the state store.
        #[utoipa::path(
            put,
            path = $item_path,
            tag = "rules",
            params(($param = String, Path, description = $param_doc), ("kind" = openapi::RuleKind, Path, description = "The item kind; another answers 404."), ("name" = String, Path, description = "The item's name (a command's includes its prefix, e.g. `!discord`); no control characters.")),
            request_body(content = openapi::RuleItem, description = "The item, of the path's kind (at most 256 KiB; unknown fields refused).", content_type = "application/json"),
            responses(
                (status = 201, description = "Created.", body = openapi::RuleEdited),
                (status = 200, description = "Replaced.", body = openapi::RuleEdited),
                (status = 400, description = "Invalid item: what is wrong and where (e.g. a regex error with its position).", body = openapi::ErrorBody),
                (status = 404, description = "Unknown kind.", body = openapi::ErrorBody),
                (status = 500, description = "The stored rules could not be read as JSON (a bug: reported, nothing changed).", body = openapi::ErrorBody),
                (status = 408, description = "The body did not arrive within `http.body_read_timeout_ms` (the connection is closed).", body = openapi::ErrorBody),
                (status = 409, description = "The rules changed meanwhile (another edit, a moderator in chat): read them again and retry.", body = openapi::ErrorBody),
                (status = 503, description = "The channel or the store cannot take the edit now.", body = openapi::ErrorBody),
            ),
            security(("admin_token" = [])),
        )]
        pub(super) async fn $put_item(
            State(core): State<Arc<Core>>,
            Path((key, kind, name)): Path<(String, String, String)>,
            body: Body,
        ) -> Response {
            let body = match read_item_body(body).await {
                Ok(body) => body,
                Err(refused) => return refused,
            };
            change(&core, $keyed(&key), &kind, &name, Some(&body)).await
        }

        /// Removes one rule item of the channel (from the running channel and the store).
        #[utoipa::path(
            delete,
            path = $item_path,
            tag = "rules",
            params(($param = String, Path, description = $param_doc), ("kind" = openapi::RuleKind, Path, description = "The item kind; another answers 404."), ("name" = String, Path, description = "The item's name (a command's includes its prefix, e.g. `!discord`); no control characters.")),
            responses(
                (status = 200, description = "Deleted.", body = openapi::RuleEdited),
                (status = 400, description = "Not a channel key of that platform, or a bad name.", body = openapi::ErrorBody),
                (status = 404, description = "Unknown kind, or no such item.", body = openapi::ErrorBody),
                (status = 500, description = "The stored rules could not be read as JSON (a bug: reported, nothing changed).", body = openapi::ErrorBody),
                (status = 409, description = "The rules changed meanwhile: read them again and retry.", body = openapi::ErrorBody),
                (status = 503, description = "The channel or the store cannot take the edit now.", body = openapi::ErrorBody),
            ),
            security(("admin_token" = [])),
        )]
        pub(super) async fn $delete_item(
            State(core): State<Arc<Core>>,
            Path((key, kind, name)): Path<(String, String, String)>,
        ) -> Response {
            change(&core, $keyed(&key), &kind, &name, None).await
        }
    };
}

rules_routes!(
    rules = "/v1/channels/{login}/rules",
    item = "/v1/channels/{login}/{kind}/{name}",
    key = ("login", "The Twitch login.", twitch),
    handlers = (
        get_twitch_rules,
        get_twitch_item,
        put_twitch_item,
        delete_twitch_item
    ),
);

rules_routes!(
    rules = "/v1/channels/discord/{id}/rules",
    item = "/v1/channels/discord/{id}/{kind}/{name}",
    key = ("id", "The Discord channel id (a snowflake).", discord),
    handlers = (
        get_discord_rules,
        get_discord_item,
        put_discord_item,
        delete_discord_item
    ),
);

async fn whole(core: &Core, key: Result<ChannelKey, ApiError>) -> Response {
    match key {
        Ok(key) => Json(core.current_rules(&key).await.as_ref().clone()).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn get_item(
    core: &Core,
    key: Result<ChannelKey, ApiError>,
    kind: &str,
    name: &str,
) -> Response {
    let key = match key {
        Ok(key) => key,
        Err(error) => return error.into_response(),
    };
    let current = core.current_rules(&key).await;
    let found = kind_of(kind).and_then(|kind| {
        let rules = as_json(&current)?;
        items(&rules, kind)
            .iter()
            .find(|item| item["name"] == name)
            .cloned()
            .ok_or_else(|| not_found(kind, name))
    });
    match found {
        Ok(item) => Json(item).into_response(),
        Err(error) => error.into_response(),
    }
}

/// A PUT's body, read within `http.body_read_timeout_ms`; at most [`MAX_BODY_BYTES`] (one byte
/// more is read so that [`edit`] refuses an over-long body with its own message).
async fn read_item_body(body: Body) -> Result<axum::body::Bytes, Response> {
    super::server::read_body(body, MAX_BODY_BYTES + 1)
        .await
        .map_err(|e| match e {
            super::server::BodyError::TooLarge => error_response(
                StatusCode::BAD_REQUEST,
                &format!("body is over {MAX_BODY_BYTES} bytes"),
            ),
            other => other.into_response(),
        })
}

/// Who makes an edit, for the audit log ([`crate::app::audit`]).
#[derive(Debug, Clone)]
pub struct Editor {
    /// `admin` or `twitch:<login>`.
    pub who: String,
    /// `api` or `console`.
    pub via: &'static str,
}

/// What a checked and applied item change did.
#[derive(Debug, Clone, Copy)]
pub struct Changed {
    pub kind: &'static str,
    /// Whether the item existed before.
    pub existed: bool,
}

/// A PUT (`body`) or DELETE (`None`) of one item by `editor`: checked ([`edit`]), handed to
/// the channel, then written to the audit log. The admin API and the console both edit
/// through here.
pub async fn change_item(
    core: &Core,
    key: &ChannelKey,
    kind: &str,
    name: &str,
    body: Option<&[u8]>,
    editor: &Editor,
) -> Result<Changed, ApiError> {
    let base = core.current_rules(key).await;
    let Edited {
        rules,
        existed,
        kind,
    } = edit(&base, kind, name, body)?;
    let before = item_json(&base, kind, name);
    let after = item_json(&rules, kind, name);
    apply(core, key, base, rules).await?;
    let entry = crate::app::audit::AuditEntry {
        at_ms: crate::app::audit::now_ms(),
        who: editor.who.clone(),
        via: editor.via.to_string(),
        kind: kind.to_string(),
        name: name.to_string(),
        before,
        after,
    };
    core.record_audit(key, entry).await;
    Ok(Changed { kind, existed })
}

/// The item `name` of `kind` in `rules`, as JSON (None: there is none).
pub fn item_json(rules: &ChannelRules, kind: &str, name: &str) -> Option<Value> {
    let whole = as_json(rules).ok()?;
    items(&whole, kind)
        .iter()
        .find(|item| item["name"] == name)
        .cloned()
}

/// A PUT (`body`) or DELETE (`None`) of one item through the admin API.
async fn change(
    core: &Core,
    key: Result<ChannelKey, ApiError>,
    kind: &str,
    name: &str,
    body: Option<&[u8]>,
) -> Response {
    let key = match key {
        Ok(key) => key,
        Err(error) => return error.into_response(),
    };
    let editor = Editor {
        who: "admin".into(),
        via: "api",
    };
    let Changed { kind, existed } = match change_item(core, &key, kind, name, body, &editor).await {
        Ok(changed) => changed,
        Err(error) => return error.into_response(),
    };
    let mut answer = openapi::RuleEdited {
        platform: key.platform.as_str().to_string(),
        channel: key.name.to_string(),
        ..Default::default()
    };
    let item = Some(name.to_string());
    match kind {
        "commands" => answer.commands = item,
        "keywords" => answer.keywords = item,
        "timers" => answer.timers = item,
        _ => answer.filters = item,
    }
    let status = match (body.is_some(), existed) {
        (false, _) => {
            answer.deleted = Some(true);
            StatusCode::OK
        }
        (true, true) => {
            answer.replaced = Some(true);
            StatusCode::OK
        }
        (true, false) => {
            answer.created = Some(true);
            StatusCode::CREATED
        }
    };
    (status, Json(answer)).into_response()
}

/// Applies one item edit to `rules` without any I/O: `body` is the new item (PUT) or `None`
/// (DELETE). Refusals say what is wrong: 404 for an unknown kind or a missing item, 400 for
/// anything else. What it accepts compiles as the channel compiles it.
pub fn edit(
    rules: &ChannelRules,
    kind: &str,
    name: &str,
    body: Option<&[u8]>,
) -> Result<Edited, ApiError> {
    let kind = kind_of(kind)?;
    if name.contains(char::is_control) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("item name {name:?} holds a control character"),
        ));
    }
    let mut whole = as_json(rules)?;
    let list = items_mut(&mut whole, kind)?;
    let existed = list.iter().any(|i| i["name"] == name);
    match body {
        None if !existed => return Err(not_found(kind, name)),
        None => list.retain(|i| i["name"] != name),
        Some(body) => {
            let item = item_of(body, name)?;
            match list.iter_mut().find(|i| i["name"] == name) {
                Some(slot) => *slot = item,
                None => list.push(item),
            }
        }
    }
    let rules: ChannelRules = serde_json::from_value(whole)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("invalid rule: {e}")))?;
    rules_book::compile(&rules)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("invalid rule: {e}")))?;
    Ok(Edited {
        rules,
        existed,
        kind,
    })
}

/// A PUT body as the item it names (the path's name filled in when the body has none).
fn item_of(body: &[u8], name: &str) -> Result<Value, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("body is over {MAX_BODY_BYTES} bytes"),
        ));
    }
    let mut item: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("body is not valid JSON: {e}"),
        )
    })?;
    let Some(fields) = item.as_object_mut() else {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "body must be a JSON object".into(),
        ));
    };
    match fields.get("name") {
        None => {
            fields.insert("name".into(), Value::String(name.to_string()));
        }
        Some(given) if given != name => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("body names `{given}` but the path names `{name}`"),
            ))
        }
        Some(_) => {}
    }
    Ok(item)
}

fn kind_of(kind: &str) -> Result<&'static str, ApiError> {
    KINDS.iter().find(|k| **k == kind).copied().ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("unknown rule kind `{kind}`; one of {}", KINDS.join(", ")),
        )
    })
}

pub fn as_json(rules: &ChannelRules) -> Result<Value, ApiError> {
    serde_json::to_value(rules).map_err(|e| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("rules do not serialize: {e}"),
        )
    })
}

pub fn items<'a>(rules: &'a Value, kind: &str) -> &'a [Value] {
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

/// Hands the checked rules to the channel (its actor, or the book and the store).
pub async fn apply(
    core: &Core,
    key: &ChannelKey,
    base: Arc<ChannelRules>,
    rules: ChannelRules,
) -> Result<(), ApiError> {
    core.set_rules(key, base, rules).await.map_err(|e| match e {
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

fn not_found(kind: &str, name: &str) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!("no {kind} item named `{name}`"),
    )
}

/// Property code shared by the `admin_rules` fuzz target and the suite's smoke test over its
/// seeds (`fuzz/seeds/admin_rules/`).
#[doc(hidden)]
pub mod fuzzing {
    use super::{edit, KINDS};
    use crate::channel::rules_book;
    use crate::engine::ChannelRules;
    use crate::store::model::{rules_from_rows, rules_to_rows};

    /// The rules every fuzz edit starts from: the documented example (every feature).
    pub fn base() -> ChannelRules {
        toml::from_str(include_str!("../../config/channels/example.toml"))
            .expect("config/channels/example.toml is valid rules")
    }

    /// One admin edit from fuzz bytes: the first byte picks the kind (and PUT or DELETE), the
    /// text up to the first newline is the item name, the rest is the body. Never panics;
    /// what is accepted compiles, is what the body said, and survives the store's rows.
    pub fn check(base: &ChannelRules, data: &[u8]) {
        let Some((&selector, rest)) = data.split_first() else {
            return;
        };
        let kind = KINDS
            .get(usize::from(selector % 5))
            .copied()
            .unwrap_or("bogus");
        let text = String::from_utf8_lossy(rest);
        let (name, body) = text.split_once('\n').unwrap_or((&text, ""));
        let body = (selector & 0x80 == 0).then_some(body.as_bytes());
        let Ok(edited) = edit(base, kind, name, body) else {
            return;
        };
        assert!(
            rules_book::compile(&edited.rules).is_ok(),
            "accepted rules compile"
        );
        let named = |rules: &ChannelRules| -> usize {
            let value = serde_json::to_value(rules).expect("rules serialize");
            value[kind].as_array().map_or(0, |items| {
                items.iter().filter(|i| i["name"] == name).count()
            })
        };
        match body {
            Some(_) => assert_eq!(named(&edited.rules), 1, "the item is there, once"),
            None => assert_eq!(named(&edited.rules), 0, "the item is gone"),
        }
        let rows = rules_to_rows(&edited.rules).expect("rows");
        let back = rules_from_rows(&rows).expect("stored rules read back");
        assert_eq!(back, edited.rules, "stored and read back unchanged");
    }
}
