//! The Helix EventSub endpoints, checked like Twitch checks them:
//!
//! - `POST /helix/eventsub/subscriptions` (202): type and version known, condition complete,
//!   transport valid for the token (WebSocket: a user token and a connected session of that
//!   user; conduit and webhook: an app token), the authorisation chat types need (the user is
//!   the bot: `user:read:chat`; with an app token the broadcaster's `channel:bot` or the bot
//!   being a moderator), no duplicate (409), and the WebSocket limits (3 connections, 300
//!   subscriptions per connection, `max_total_cost` 10; 429 past them);
//! - `GET` (filters `status`, `type`, `user_id`, `subscription_id`; `after` cursor, 100 a page)
//!   and `DELETE ?id=`;
//! - conduits: `GET`/`POST`/`PATCH`/`DELETE /helix/eventsub/conduits` (at most 5, 1..=20000
//!   shards, app tokens only) and `GET`/`PATCH /helix/eventsub/conduits/shards` (WebSocket
//!   shards; a bad session is reported in `errors` per shard).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use serde_json::{json, Value};

use super::{
    payloads, webhook, Conduit, ShardTransport, SubTransport, Subscription, CHAT_TYPES, KNOWN_TYPES,
};
use crate::api::{authenticate, helix_error, lock, ApiState, TokenInfo, TokenKind};

/// Largest `max_total_cost` of an application (app token subscriptions).
const APP_MAX_TOTAL_COST: u32 = 10_000;
/// Page size of Get EventSub Subscriptions.
const PAGE: usize = 100;

pub fn routes() -> axum::Router<ApiState> {
    axum::Router::new()
        .route(
            "/helix/eventsub/subscriptions",
            get(list).post(create).delete(delete),
        )
        .route(
            "/helix/eventsub/conduits",
            get(list_conduits)
                .post(create_conduit)
                .patch(update_conduit)
                .delete(delete_conduit),
        )
        .route(
            "/helix/eventsub/conduits/shards",
            patch(update_shards).get(get_shards),
        )
}

fn refuse(api: &ApiState, status: StatusCode, message: &str) -> Response {
    *lock(&api.eventsub.inner.state)
        .stats
        .subscription_refusals
        .entry(status.as_u16())
        .or_default() += 1;
    helix_error(status, message)
}

fn is_id(v: Option<&Value>) -> Option<String> {
    let s = v?.as_str()?;
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.to_string())
}

/// The channel a subscription is about, from its condition; None when incomplete.
fn condition_key(kind: &str, condition: &Value) -> Option<String> {
    match kind {
        "channel.raid" => is_id(condition.get("to_broadcaster_user_id"))
            .or_else(|| is_id(condition.get("from_broadcaster_user_id"))),
        "stream.online" | "stream.offline" => is_id(condition.get("broadcaster_user_id")),
        _ => {
            is_id(condition.get("user_id"))?;
            is_id(condition.get("broadcaster_user_id"))
        }
    }
}

async fn create(
    State(api): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let token = match authenticate(&api, &headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return refuse(
            &api,
            StatusCode::BAD_REQUEST,
            "The request body is not valid JSON",
        );
    };
    let kind = body["type"].as_str().unwrap_or_default().to_string();
    let version = body["version"].as_str().unwrap_or_default().to_string();
    if !KNOWN_TYPES.contains(&kind.as_str()) || version != "1" {
        return refuse(
            &api,
            StatusCode::BAD_REQUEST,
            "The combination of values in the type and version fields is not valid",
        );
    }
    let condition = body["condition"].clone();
    let Some(key) = condition_key(&kind, &condition) else {
        return refuse(
            &api,
            StatusCode::BAD_REQUEST,
            "The condition is missing a required field",
        );
    };
    let transport = &body["transport"];
    let method = transport["method"].as_str().unwrap_or_default();
    let transport = match (method, token.kind) {
        ("websocket", TokenKind::User) => match transport["session_id"].as_str() {
            Some(session) => SubTransport::Websocket(session.to_string()),
            None => {
                return refuse(
                    &api,
                    StatusCode::BAD_REQUEST,
                    "transport.session_id is required",
                )
            }
        },
        ("conduit", TokenKind::App) => match transport["conduit_id"].as_str() {
            Some(id) => SubTransport::Conduit(id.to_string()),
            None => {
                return refuse(
                    &api,
                    StatusCode::BAD_REQUEST,
                    "transport.conduit_id is required",
                )
            }
        },
        ("webhook", TokenKind::App) => {
            let callback = transport["callback"].as_str().unwrap_or_default();
            let secret = transport["secret"].as_str().unwrap_or_default();
            if !callback.starts_with("http") || !(10..=100).contains(&secret.len()) {
                return refuse(
                    &api,
                    StatusCode::BAD_REQUEST,
                    "transport.callback must be a URL and transport.secret 10 to 100 characters",
                );
            }
            SubTransport::Webhook {
                callback: callback.to_string(),
                secret: secret.to_string(),
            }
        }
        ("websocket" | "conduit" | "webhook", _) => {
            return refuse(
                &api,
                StatusCode::BAD_REQUEST,
                "invalid transport and auth combination",
            )
        }
        _ => {
            return refuse(
                &api,
                StatusCode::BAD_REQUEST,
                "The transport method is not valid",
            )
        }
    };
    if let Err(refused) = check_authorization(&api, &token, &kind, &condition) {
        return refused;
    }
    let cost = cost_of(&api, &token, &kind, &key);
    let (response, created) = {
        let mut es = lock(&api.eventsub.inner.state);
        let duplicate = es.subscriptions.values().any(|s| {
            s.kind == kind
                && s.version == version
                && s.condition == condition
                && s.owner == token.user_id
                && s.transport == transport
        });
        if duplicate {
            drop(es);
            return refuse(&api, StatusCode::CONFLICT, "subscription already exists");
        }
        if let Err((status, why)) = check_transport(&api, &mut es, &token, &transport, cost) {
            drop(es);
            return refuse(&api, status, why);
        }
        let id = es.new_id();
        let status = match transport {
            SubTransport::Webhook { .. } => "webhook_callback_verification_pending",
            _ => "enabled",
        };
        let sub = Subscription {
            id: id.clone(),
            kind: kind.clone(),
            version,
            condition,
            key: key.clone(),
            transport: transport.clone(),
            status: status.into(),
            created_at: payloads::now_rfc3339(),
            cost,
            owner: token.user_id.clone(),
            failures: 0,
        };
        if let SubTransport::Websocket(session) = &transport {
            if let Some(s) = es.sessions.get_mut(session) {
                s.used = true;
                s.subscriptions += 1;
                s.cost += cost;
                s.owner = token.user_id.clone();
            }
        }
        let json = sub.to_json(&es);
        es.add_subscription(sub.clone());
        let (total, total_cost) = totals(&es, &token);
        let max = match token.kind {
            TokenKind::App => APP_MAX_TOTAL_COST,
            TokenKind::User => api.eventsub.inner.config.websocket_max_total_cost,
        };
        (
            json!({"data": [json], "total": total, "total_cost": total_cost, "max_total_cost": max}),
            sub,
        )
    };
    if CHAT_TYPES.contains(&created.kind.as_str()) {
        if let Some(login) = crate::api::login_of(&api, &key) {
            api.eventsub.bridge_join(&login);
        }
    }
    if let SubTransport::Webhook { callback, secret } = &created.transport {
        let challenge = lock(&api.eventsub.inner.state).new_id();
        let subscription = response["data"][0].clone();
        api.eventsub.inner.webhooks.push(
            api.eventsub.clone(),
            webhook::Job {
                subscription_id: created.id.clone(),
                kind: created.kind.clone(),
                version: created.version.clone(),
                callback: callback.clone(),
                secret: secret.clone(),
                message_id: lock(&api.eventsub.inner.state).new_id(),
                message_type: "webhook_callback_verification",
                body: webhook::challenge_body(&subscription, &challenge),
            },
        );
    }
    (StatusCode::ACCEPTED, axum::Json(response)).into_response()
}

/// Chat types need the bot's `user:read:chat` (user token) or, with an app token, the
/// broadcaster's `channel:bot` or the bot being a moderator.
fn check_authorization(
    api: &ApiState,
    token: &TokenInfo,
    kind: &str,
    condition: &Value,
) -> Result<(), Response> {
    if !CHAT_TYPES.contains(&kind) {
        return Ok(());
    }
    let user = condition["user_id"].as_str().unwrap_or_default();
    let broadcaster = condition["broadcaster_user_id"]
        .as_str()
        .unwrap_or_default();
    let bot_id = crate::api::user_id(api, &api.sim.config.bot_login);
    match token.kind {
        TokenKind::User => {
            if token.user_id.as_deref() != Some(user) || !token.has_scope("user:read:chat") {
                return Err(refuse(api, StatusCode::FORBIDDEN, "subscription missing proper authorization: the token's user must be condition.user_id with user:read:chat"));
            }
        }
        TokenKind::App => {
            let granted = lock(&api.oauth).channel_bot.contains(broadcaster);
            let is_mod = api.sim.config.limits.bot_is_mod || broadcaster == bot_id;
            if user != bot_id || !(granted || is_mod) {
                return Err(refuse(api, StatusCode::FORBIDDEN, "subscription missing proper authorization: the broadcaster has not authorised channel:bot and the bot is not a moderator"));
            }
        }
    }
    Ok(())
}

/// Types needing no authorisation cost 1 unless the token's user is the channel.
fn cost_of(api: &ApiState, token: &TokenInfo, kind: &str, key: &str) -> u32 {
    if CHAT_TYPES.contains(&kind) {
        return 0;
    }
    let _ = api;
    match token.kind {
        TokenKind::User if token.user_id.as_deref() == Some(key) => 0,
        _ => 1,
    }
}

fn totals(es: &super::EventSubState, token: &TokenInfo) -> (usize, u32) {
    let mine = es
        .subscriptions
        .values()
        .filter(|s| s.owner == token.user_id);
    let (mut n, mut cost) = (0, 0);
    for s in mine {
        n += 1;
        cost += s.cost;
    }
    (n, cost)
}

/// The transport must be live and within its limits.
fn check_transport(
    api: &ApiState,
    es: &mut super::EventSubState,
    token: &TokenInfo,
    transport: &SubTransport,
    cost: u32,
) -> Result<(), (StatusCode, &'static str)> {
    let config = &api.eventsub.inner.config;
    match transport {
        SubTransport::Websocket(session) => {
            let Some(s) = es.sessions.get(session) else {
                return Err((
                    StatusCode::BAD_REQUEST,
                    "websocket transport session does not exist or has already disconnected",
                ));
            };
            if s.conduit_shard.is_some() {
                return Err((StatusCode::BAD_REQUEST, "the session is a conduit shard"));
            }
            if s.owner.is_some() && s.owner != token.user_id {
                return Err((
                    StatusCode::BAD_REQUEST,
                    "the session belongs to another user",
                ));
            }
            if s.subscriptions >= config.websocket_max_subscriptions {
                return Err((
                    StatusCode::TOO_MANY_REQUESTS,
                    "websocket transport subscription limit exceeded",
                ));
            }
            let used_connections = es
                .sessions
                .values()
                .filter(|o| o.owner == token.user_id && o.subscriptions > 0 && o.id != s.id)
                .count();
            if s.subscriptions == 0 && used_connections >= config.websocket_max_connections {
                return Err((
                    StatusCode::TOO_MANY_REQUESTS,
                    "number of websocket transports limit exceeded",
                ));
            }
            let total: u32 = es
                .subscriptions
                .values()
                .filter(|o| {
                    o.owner == token.user_id && matches!(o.transport, SubTransport::Websocket(_))
                })
                .map(|o| o.cost)
                .sum();
            if total + cost > config.websocket_max_total_cost {
                return Err((
                    StatusCode::TOO_MANY_REQUESTS,
                    "websocket transport cost exceeded",
                ));
            }
        }
        SubTransport::Conduit(id) => {
            if !es.conduits.iter().any(|c| &c.id == id) {
                return Err((StatusCode::BAD_REQUEST, "conduit does not exist"));
            }
        }
        SubTransport::Webhook { .. } => {}
    }
    Ok(())
}

async fn list(State(api): State<ApiState>, headers: HeaderMap, uri: axum::http::Uri) -> Response {
    let token = match authenticate(&api, &headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let query: Vec<(String, String)> = Query::try_from_uri(&uri).map(|q| q.0).unwrap_or_default();
    let get = |k: &str| {
        query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let es = lock(&api.eventsub.inner.state);
    let mut rows: Vec<&Subscription> = es
        .subscriptions
        .values()
        .filter(|s| s.owner == token.user_id)
        .filter(|s| get("status").is_none_or(|v| s.status == v))
        .filter(|s| get("type").is_none_or(|v| s.kind == v))
        .filter(|s| get("user_id").is_none_or(|v| s.key == v))
        .filter(|s| get("subscription_id").is_none_or(|v| s.id == v))
        .collect();
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    let start = get("after")
        .and_then(|after| rows.iter().position(|s| s.id > after))
        .unwrap_or(if get("after").is_some() {
            rows.len()
        } else {
            0
        });
    let page: Vec<Value> = rows
        .iter()
        .skip(start)
        .take(PAGE)
        .map(|s| s.to_json(&es))
        .collect();
    let next = (start + PAGE < rows.len()).then(|| rows[start + PAGE - 1].id.clone());
    let (total, total_cost) = totals(&es, &token);
    let pagination = match next {
        Some(cursor) => json!({"cursor": cursor}),
        None => json!({}),
    };
    axum::Json(
        json!({"data": page, "total": total, "total_cost": total_cost,
                      "max_total_cost": APP_MAX_TOTAL_COST, "pagination": pagination}),
    )
    .into_response()
}

#[derive(serde::Deserialize)]
struct IdQuery {
    id: Option<String>,
}

async fn delete(
    State(api): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<IdQuery>,
) -> Response {
    let token = match authenticate(&api, &headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let Some(id) = q.id else {
        return helix_error(
            StatusCode::BAD_REQUEST,
            "The id query parameter is required",
        );
    };
    let removed = {
        let mut es = lock(&api.eventsub.inner.state);
        match es.subscriptions.get(&id) {
            Some(s) if s.owner == token.user_id => es.remove_subscription(&id),
            _ => None,
        }
    };
    match removed {
        Some(sub) => {
            api.eventsub.after_removal(&[sub.key]);
            StatusCode::NO_CONTENT.into_response()
        }
        None => helix_error(StatusCode::NOT_FOUND, "The subscription was not found"),
    }
}

fn app_only(api: &ApiState, headers: &HeaderMap) -> Result<TokenInfo, Response> {
    let token = authenticate(api, headers)?;
    if token.kind != TokenKind::App {
        return Err(helix_error(
            StatusCode::UNAUTHORIZED,
            "conduits need an app access token",
        ));
    }
    Ok(token)
}

fn conduit_json(c: &Conduit) -> Value {
    json!({"id": c.id, "shard_count": c.shards.len()})
}

async fn list_conduits(State(api): State<ApiState>, headers: HeaderMap) -> Response {
    if let Err(r) = app_only(&api, &headers) {
        return r;
    }
    let es = lock(&api.eventsub.inner.state);
    let data: Vec<Value> = es.conduits.iter().map(conduit_json).collect();
    axum::Json(json!({ "data": data })).into_response()
}

fn shard_count(body: &Value, max: usize) -> Option<usize> {
    let n = body["shard_count"].as_u64()? as usize;
    (1..=max).contains(&n).then_some(n)
}

async fn create_conduit(
    State(api): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = app_only(&api, &headers) {
        return r;
    }
    let config = &api.eventsub.inner.config;
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(n) = shard_count(&body, config.max_shards) else {
        return helix_error(StatusCode::BAD_REQUEST, "shard_count must be 1 to 20000");
    };
    let mut es = lock(&api.eventsub.inner.state);
    if es.conduits.len() >= config.max_conduits {
        return helix_error(StatusCode::TOO_MANY_REQUESTS, "conduit limit reached");
    }
    let conduit = Conduit {
        id: es.new_id(),
        shards: vec![None; n],
        rr: 0,
    };
    let json = conduit_json(&conduit);
    es.conduits.push(conduit);
    axum::Json(json!({ "data": [json] })).into_response()
}

async fn update_conduit(
    State(api): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = app_only(&api, &headers) {
        return r;
    }
    let max = api.eventsub.inner.config.max_shards;
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (Some(id), Some(n)) = (body["id"].as_str(), shard_count(&body, max)) else {
        return helix_error(
            StatusCode::BAD_REQUEST,
            "id and shard_count (1 to 20000) are required",
        );
    };
    let mut es = lock(&api.eventsub.inner.state);
    let Some(conduit) = es.conduits.iter_mut().find(|c| c.id == id) else {
        return helix_error(StatusCode::NOT_FOUND, "conduit not found");
    };
    conduit.shards.resize(n, None);
    let json = conduit_json(conduit);
    axum::Json(json!({ "data": [json] })).into_response()
}

async fn delete_conduit(
    State(api): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<IdQuery>,
) -> Response {
    if let Err(r) = app_only(&api, &headers) {
        return r;
    }
    let keys = {
        let mut es = lock(&api.eventsub.inner.state);
        let Some(index) = es
            .conduits
            .iter()
            .position(|c| Some(&c.id) == q.id.as_ref())
        else {
            return helix_error(StatusCode::NOT_FOUND, "conduit not found");
        };
        let conduit = es.conduits.remove(index);
        let ids: Vec<String> = es
            .subscriptions
            .values()
            .filter(|s| s.transport == SubTransport::Conduit(conduit.id.clone()))
            .map(|s| s.id.clone())
            .collect();
        ids.iter()
            .filter_map(|id| es.remove_subscription(id))
            .map(|s| s.key)
            .collect::<Vec<_>>()
    };
    api.eventsub.after_removal(&keys);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(serde::Deserialize)]
struct ConduitQuery {
    conduit_id: Option<String>,
}

async fn get_shards(
    State(api): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<ConduitQuery>,
) -> Response {
    if let Err(r) = app_only(&api, &headers) {
        return r;
    }
    let es = lock(&api.eventsub.inner.state);
    let Some(conduit) = es
        .conduits
        .iter()
        .find(|c| Some(&c.id) == q.conduit_id.as_ref())
    else {
        return helix_error(StatusCode::NOT_FOUND, "conduit not found");
    };
    let data: Vec<Value> = conduit
        .shards
        .iter()
        .enumerate()
        .map(|(i, shard)| match shard {
            Some(ShardTransport::Websocket(session)) if es.sessions.contains_key(session) => {
                json!({
                    "id": i.to_string(), "status": "enabled",
                    "transport": {"method": "websocket", "session_id": session}
                })
            }
            _ => json!({"id": i.to_string(), "status": "websocket_disconnected",
                        "transport": {"method": "websocket", "session_id": null}}),
        })
        .collect();
    axum::Json(json!({ "data": data, "pagination": {} })).into_response()
}

async fn update_shards(
    State(api): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = app_only(&api, &headers) {
        return r;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(conduit_id) = body["conduit_id"].as_str().map(str::to_string) else {
        return helix_error(StatusCode::BAD_REQUEST, "conduit_id is required");
    };
    let Some(shards) = body["shards"].as_array().cloned() else {
        return helix_error(StatusCode::BAD_REQUEST, "shards is required");
    };
    let mut es = lock(&api.eventsub.inner.state);
    es.stats.shard_updates += 1;
    if !es.conduits.iter().any(|c| c.id == conduit_id) {
        return helix_error(StatusCode::NOT_FOUND, "conduit not found");
    }
    let (mut data, mut errors) = (Vec::new(), Vec::new());
    for shard in shards {
        let id_text = shard["id"].as_str().unwrap_or_default().to_string();
        let mut fail = |message: &str, code: &str| {
            errors.push(json!({"id": id_text, "message": message, "code": code}));
        };
        let Ok(index) = id_text.parse::<usize>() else {
            fail("invalid shard id", "invalid_parameter");
            continue;
        };
        let shards_len = es
            .conduits
            .iter()
            .find(|c| c.id == conduit_id)
            .map_or(0, |c| c.shards.len());
        if index >= shards_len {
            fail("shard id out of range", "invalid_parameter");
            continue;
        }
        if shard["transport"]["method"].as_str() != Some("websocket") {
            fail("only websocket shards are simulated", "invalid_parameter");
            continue;
        }
        let Some(session) = shard["transport"]["session_id"]
            .as_str()
            .map(str::to_string)
        else {
            fail("session_id is required", "invalid_parameter");
            continue;
        };
        let usable = es.sessions.get(&session).is_some_and(|s| {
            s.subscriptions == 0
                && s.conduit_shard
                    .as_ref()
                    .is_none_or(|(c, i)| c == &conduit_id && *i == index)
        });
        if !usable {
            fail(
                "The websocket session is not connected or is in use",
                "websocket_session_not_connected",
            );
            continue;
        }
        if let Some(s) = es.sessions.get_mut(&session) {
            s.used = true;
            s.conduit_shard = Some((conduit_id.clone(), index));
        }
        let previous = es
            .conduits
            .iter_mut()
            .find(|c| c.id == conduit_id)
            .and_then(|c| c.shards[index].replace(ShardTransport::Websocket(session.clone())));
        if let Some(ShardTransport::Websocket(old)) = previous {
            if old != session {
                if let Some(s) = es.sessions.get_mut(&old) {
                    s.conduit_shard = None;
                }
            }
        }
        let connected = es.sessions.get(&session).map(|s| s.connected_at.clone());
        data.push(json!({"id": id_text, "status": "enabled",
                         "transport": {"method": "websocket", "session_id": session, "connected_at": connected}}));
    }
    axum::Json(json!({ "data": data, "errors": errors })).into_response()
}
