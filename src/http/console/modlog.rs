//! A channel's moderation log: every delete, timeout, ban and unban the bot sent (or could
//! not send) through Helix, with its outcome, attempts and latency, newest first; searchable
//! by user (a user id, or a login looked up through Helix) and by rule. It reads the Helix
//! moderator's in-memory log (`helix.moderation_log_capacity` entries across channels; the
//! JSON-lines file keeps the long history). Without Helix moderation, the store's log of what
//! the engine decided is shown instead, each marked as not sent.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;

use super::pages::{layout, respond};
use super::rules::when;
use super::St;
use crate::config::is_login;

/// Rows shown at most.
const SHOWN: usize = 500;
/// How long a login lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Login lookups (Helix `GET /users`, out of the app token's points) per minute, the whole
/// console together; beyond, a search by login is answered "search by user id".
pub const MAX_LOOKUPS_PER_MINUTE: usize = 30;

#[derive(Debug, Default, serde::Deserialize)]
pub struct Search {
    #[serde(default)]
    user: String,
    #[serde(default)]
    rule: String,
}

/// One row, from either source.
struct Row {
    at_ms: u64,
    action: String,
    user_id: String,
    duration_s: Option<u64>,
    reason: String,
    rule: String,
    outcome: String,
    attempts: Option<u32>,
    latency_ms: Option<u64>,
}

/// `GET /ui/channels/{platform}/{channel}/moderation?user=&rule=`.
pub async fn page(
    State(console): St,
    headers: HeaderMap,
    Path((platform, channel)): Path<(String, String)>,
    Query(search): Query<Search>,
) -> Response {
    let (signed, key) = match console.page_channel(&headers, &platform, &channel) {
        Ok(found) => found,
        Err(refusal) => return *refusal,
    };
    let core = &console.core;
    let user = search.user.trim().to_ascii_lowercase();
    let rule = search.rule.trim().to_ascii_lowercase();
    let mut note = None;
    let user_id = if user.is_empty() || user.bytes().all(|b| b.is_ascii_digit()) {
        Some(user.clone())
    } else if is_login(&user) {
        match &core.auth {
            Some(auth) if auth.directory.id(&user).is_some() => auth.directory.id(&user),
            Some(auth) if console.lookup_allowed() => {
                let lookup = auth.resolve(std::slice::from_ref(&user));
                let _ = tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await;
                let id = auth.directory.id(&user);
                if id.is_none() {
                    note = Some(format!("Twitch knows no user {user}."));
                }
                id
            }
            Some(_) => {
                note = Some("Too many login searches this minute: search by user id.".into());
                None
            }
            None => {
                note = Some("Logins cannot be looked up without Helix: search by user id.".into());
                None
            }
        }
    } else {
        note = Some("Search by a Twitch login or a user id.".into());
        None
    };
    let helix_log = core
        .moderation
        .as_ref()
        .filter(|_| key.platform == crate::engine::Platform::Twitch);
    let (rows, source) = match helix_log {
        Some(moderation) => {
            let rows: Vec<Row> = moderation
                .log()
                .into_iter()
                .rev()
                .filter(|e| e.channel == *key.name)
                .map(|e| Row {
                    at_ms: e.at_ms,
                    action: e.action,
                    user_id: e.user_id.unwrap_or_default(),
                    duration_s: e.duration_s,
                    reason: e.reason.unwrap_or_default(),
                    rule: e.rule,
                    outcome: e.outcome,
                    attempts: Some(e.attempts),
                    latency_ms: e.latency_ms,
                })
                .collect();
            (rows, "Helix calls and their outcomes")
        }
        None => {
            let stored = tokio::time::timeout(
                LOOKUP_TIMEOUT,
                core.store.store().moderation_log(&key.name, 2_000),
            )
            .await;
            let rows = match stored {
                Ok(Ok(entries)) => entries
                    .into_iter()
                    .map(|e| Row {
                        at_ms: u64::try_from(e.at_ms).unwrap_or(0),
                        action: e.action,
                        user_id: e.user_id,
                        duration_s: u64::try_from(e.duration_s).ok().filter(|d| *d > 0),
                        reason: e.reason,
                        rule: e.rule,
                        outcome: "not sent: no Helix moderation configured".into(),
                        attempts: None,
                        latency_ms: None,
                    })
                    .collect(),
                Ok(Err(e)) => {
                    note = Some(format!("The stored log cannot be read now: {e}"));
                    Vec::new()
                }
                Err(_) => {
                    note = Some("The stored log did not answer in time.".into());
                    Vec::new()
                }
            };
            (
                rows,
                "what the rules decided (no Helix moderation is configured)",
            )
        }
    };
    let matching: Vec<&Row> = rows
        .iter()
        .filter(|r| match &user_id {
            Some(id) if !id.is_empty() => r.user_id == *id,
            Some(_) => true,
            None => false,
        })
        .filter(|r| rule.is_empty() || r.rule.to_ascii_lowercase().contains(&rule))
        .take(SHOWN)
        .collect();
    let base = format!("/ui/channels/{}/{}", key.platform.as_str(), key.name);
    let title = format!("Moderation log of {}", key.name);
    let body = html! {
        h1 { (title) }
        p { a href=(base) { "Back to the channel's rules" } }
        form method="get" class="card inline-form" role="search" {
            label for="search-user" { "User (login or id)" }
            input id="search-user" name="user" value=(search.user) autocomplete="off";
            label for="search-rule" { "Rule" }
            input id="search-rule" name="rule" value=(search.rule) autocomplete="off";
            button type="submit" { "Search" }
        }
        @if let Some(note) = &note {
            p class="field-error" role="alert" { (note) }
        }
        div class="table-wrap" {
            table id="moderation-log" {
                caption { "Newest first: " (source) }
                thead { tr {
                    th scope="col" { "When (UTC)" } th scope="col" { "Action" } th scope="col" { "User id" }
                    th scope="col" { "Duration" } th scope="col" { "Reason" } th scope="col" { "Rule" }
                    th scope="col" { "Outcome" } th scope="col" { "Attempts" } th scope="col" { "Latency" }
                } }
                tbody {
                    @for r in &matching {
                        tr {
                            td { (when(r.at_ms)) }
                            td data-field="action" { (r.action) }
                            td data-field="user" { (r.user_id) }
                            td { @if let Some(d) = r.duration_s { (d) " s" } }
                            td { (r.reason) }
                            td data-field="rule" { (r.rule) }
                            td data-field="outcome" { (r.outcome) }
                            td { @if let Some(a) = r.attempts { (a) } }
                            td { @if let Some(l) = r.latency_ms { (l) " ms" } }
                        }
                    }
                }
            }
        }
        @if matching.is_empty() {
            p { "No entry matches." }
        }
    };
    respond(StatusCode::OK, layout(&title, Some(&signed.session), body))
}
