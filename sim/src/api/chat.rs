//! `POST /helix/chat/messages`: the bot's chat messages through Helix, checked like Twitch
//! checks them (token, scopes, sender, who may send where, 500 characters) and judged under the
//! same send limits as the bot's IRC PRIVMSGs (one account limiter for both paths). A message
//! Twitch would not deliver is answered `is_sent: false` with a `drop_reason` (`msg_ratelimit`,
//! `msg_duplicate`, or whatever code a test set for the channel); a delivered one is recorded
//! exactly like a PRIVMSG (so reply latencies and `received()` cover both paths) and shows up
//! in the channel's EventSub chat as the bot's own `channel.chat.message`, as on Twitch.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{authenticate, helix_error, lock, login_of, ApiState, TokenKind};
use crate::limits::Verdict;
use crate::state::{bump, record_bot_message};

/// Helix's ceiling for a chat message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 500;

/// What the endpoint has seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatStats {
    pub requests: u64,
    pub sent: u64,
    /// `is_sent: false` answers by drop code.
    pub dropped: BTreeMap<String, u64>,
    /// Refused requests (4xx) by status.
    pub refused: BTreeMap<u16, u64>,
    /// Sent with an app access token (the Chat Bot badge) / a user token.
    pub sent_with_app_token: u64,
    pub sent_with_user_token: u64,
}

#[derive(Debug, Default)]
pub struct ChatState {
    /// Channel -> drop code every send to it gets.
    pub drops: HashMap<String, String>,
    pub stats: ChatStats,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    broadcaster_id: String,
    sender_id: String,
    message: String,
    reply_parent_message_id: Option<String>,
    for_source_only: Option<bool>,
}

fn refuse(api: &ApiState, status: StatusCode, message: &str) -> Response {
    *lock(&api.chat)
        .stats
        .refused
        .entry(status.as_u16())
        .or_default() += 1;
    helix_error(status, message)
}

fn is_id(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `POST /helix/chat/messages`.
pub async fn send(
    State(api): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let arrived = Instant::now();
    lock(&api.chat).stats.requests += 1;
    let token = match authenticate(&api, &headers) {
        Ok(token) => token,
        Err(refused) => {
            *lock(&api.chat).stats.refused.entry(401).or_default() += 1;
            return refused;
        }
    };
    let Ok(body) = serde_json::from_slice::<SendBody>(&body) else {
        return refuse(
            &api,
            StatusCode::BAD_REQUEST,
            "The request body is not valid",
        );
    };
    if !is_id(&body.broadcaster_id) || !is_id(&body.sender_id) || body.message.trim().is_empty() {
        return refuse(
            &api,
            StatusCode::BAD_REQUEST,
            "broadcaster_id, sender_id and message are required",
        );
    }
    if body.for_source_only.is_some() && token.kind != TokenKind::App {
        return refuse(
            &api,
            StatusCode::BAD_REQUEST,
            "for_source_only needs an app access token",
        );
    }
    if body.message.chars().count() > MAX_MESSAGE_CHARS {
        return refuse(&api, StatusCode::BAD_REQUEST, "The message is too long");
    }
    let Some(channel) = login_of(&api, &body.broadcaster_id) else {
        return refuse(
            &api,
            StatusCode::BAD_REQUEST,
            "The ID in broadcaster_id is not valid",
        );
    };
    let bot = api.sim.config.bot_login.clone();
    let bot_id = super::user_id(&api, &bot);
    if body.sender_id != bot_id {
        return refuse(
            &api,
            StatusCode::FORBIDDEN,
            "The sender is not permitted to send chat messages",
        );
    }
    let is_mod = api.sim.config.limits.bot_is_mod || channel == bot;
    match token.kind {
        TokenKind::User => {
            if token.user_id.as_deref() != Some(body.sender_id.as_str()) {
                return refuse(
                    &api,
                    StatusCode::FORBIDDEN,
                    "The ID in sender_id must match the user ID in the access token",
                );
            }
            if !token.has_scope("user:write:chat") {
                return refuse(
                    &api,
                    StatusCode::UNAUTHORIZED,
                    "Missing scope: user:write:chat",
                );
            }
        }
        TokenKind::App => {
            let granted = lock(&api.oauth).channel_bot.contains(&body.broadcaster_id);
            if !granted && !is_mod {
                return refuse(&api, StatusCode::FORBIDDEN, "The sender is not permitted to send chat messages to the broadcaster's chat room: the broadcaster has not authorised channel:bot");
            }
        }
    }
    bump(&api.sim.counters.bot_messages);
    let forced = lock(&api.chat).drops.get(&channel).cloned();
    let verdict = match forced {
        Some(_) => Verdict::RateLimited,
        None => crate::state::judge(&api.sim, &bot, &channel, &body.message, is_mod, arrived),
    };
    let drop_code = match (&forced, verdict) {
        (Some(code), _) => Some(code.clone()),
        (None, Verdict::Accepted) => None,
        (None, Verdict::TooLong) => {
            return refuse(&api, StatusCode::BAD_REQUEST, "The message is too long");
        }
        (None, other) => other.rejected_reason().map(str::to_string),
    };
    let accepted = drop_code.is_none();
    record_bot_message(
        &api.sim,
        &channel,
        &body.message,
        body.reply_parent_message_id.clone(),
        if accepted { Verdict::Accepted } else { verdict },
        drop_code.clone(),
        arrived,
    );
    let message_id = crate::chatlines::new_message_id(&mut rand::rng());
    {
        let mut chat = lock(&api.chat);
        match &drop_code {
            None => {
                chat.stats.sent += 1;
                match token.kind {
                    TokenKind::App => chat.stats.sent_with_app_token += 1,
                    TokenKind::User => chat.stats.sent_with_user_token += 1,
                }
            }
            Some(code) => *chat.stats.dropped.entry(code.clone()).or_default() += 1,
        }
    }
    let data = match drop_code {
        None => {
            bump(&api.sim.counters.bot_accepted);
            api.eventsub.bot_message(
                &api,
                &channel,
                &message_id,
                &body.message,
                token.kind == TokenKind::App,
            );
            json!({"message_id": message_id, "is_sent": true, "drop_reason": null})
        }
        Some(code) => {
            match code.as_str() {
                "msg_ratelimit" => bump(&api.sim.counters.ratelimited),
                "msg_duplicate" => bump(&api.sim.counters.duplicates),
                _ => {}
            }
            let message = drop_text(&code);
            json!({"message_id": "", "is_sent": false, "drop_reason": {"code": code, "message": message}})
        }
    };
    (StatusCode::OK, axum::Json(json!({ "data": [data] }))).into_response()
}

fn drop_text(code: &str) -> &'static str {
    match code {
        "msg_ratelimit" => "Your message was not sent because you are sending messages too quickly.",
        "msg_duplicate" => "Your message was not sent because it is identical to the previous one you sent, less than 30 seconds ago.",
        "msg_followersonly" => "This room is in followers-only mode.",
        "msg_emoteonly" => "This room is in emote-only mode.",
        _ => "Your message was not sent.",
    }
}
