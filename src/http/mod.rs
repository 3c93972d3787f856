//! HTTP endpoints (axum): health for supervisors, metrics for Prometheus, and the admin API.
//!
//! | route | auth | answer |
//! |---|---|---|
//! | `GET /healthz` | - | 200 while the process is alive |
//! | `GET /readyz` | - | 200 when connected, channels joined and none failed; else 503 + reasons |
//! | `GET /openapi.json` | - | this API's OpenAPI 3.1 description ([`openapi`]; `docs/openapi.json`) |
//! | `GET /metrics` | - | Prometheus text |
//! | `GET /v1/channels` | - | JSON: one entry per channel |
//! | `POST /v1/channels` | bearer | join many: `{"channels": [...]}`, answered at once (202: accepted, already, invalid); joined in the background |
//! | `DELETE /v1/channels` | bearer | part many, likewise |
//! | `POST /v1/channels/{login}` | bearer | join (or revive a failed channel) |
//! | `DELETE /v1/channels/{login}` | bearer | part |
//! | `GET /v1/channels/{login}/rules` | bearer | the channel's rules |
//! | `GET/PUT/DELETE /v1/channels/{login}/{commands,keywords,timers,filters}/{name}` | bearer | one rule (see [`rules`]) |
//! | `GET /v1/channels/discord/{id}/rules`, `GET/PUT/DELETE /v1/channels/discord/{id}/{kind}/{name}` | bearer | the same for a Discord channel |
//! | `POST /v1/store/flush` | bearer | write every pending state change now; 200, or 503 + why |
//! | `DELETE /v1/users/{platform}/{user_id}` | bearer | delete one user's data everywhere (see [`users`]); JSON of what was removed |
//! | `GET /v1/channels/{login}/authorize` | bearer | the link a broadcaster follows to grant `channel:bot` |
//! | `GET /v1/bot/authorize` | bearer | the link the bot account follows to authorise the app (its refresh token) |
//! | `GET /oauth/callback` | - (Twitch's redirect; the one-use `state` is the check) | records the grant |
//! | `POST /eventsub` | - (the HMAC signature is the check) | EventSub webhooks (with a webhook secret) |
//! | `/ui/...` | a console session (admin token or Twitch login) | the web console ([`console`]: HTML pages, not in the OpenAPI description) |
//!
//! The admin token is compared in constant time ([`subtle`]); the `Bearer` scheme is
//! case-insensitive. Without a configured token the admin routes refuse every request.
//!
//! Where they listen: by default every route on `http.listen`. With `http.admin_listen` set,
//! the admin API (every `/v1/...` route), the console (`/ui`), `/metrics` and `/openapi.json` move there (with
//! `/healthz` and `/readyz` as well), and `http.listen` keeps only `/healthz`, `/readyz`,
//! `/oauth/callback` and `/eventsub`. Routes are registered only through
//! utoipa-axum's `routes!`, so each one is in the OpenAPI description ([`openapi`]). Each address has its own accept loop ([`server`]): at most
//! `http.max_connections` connections, and a request head not read within
//! `http.header_read_timeout_ms` closes its connection.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use subtle::ConstantTimeEq;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub mod console;
pub mod openapi;
pub mod rules;
mod server;
mod twitch;
mod users;

use crate::app::Core;
use crate::channel::registry::{busiest_first, by_name};
use crate::channel::{ChannelShared, JoinOutcome, ShedReason};
use crate::engine::Platform;

/// Where the endpoints listen, and the task serving them.
pub struct Listening {
    /// `http.listen`: everything, or with an admin address only the public routes.
    pub main: SocketAddr,
    /// `http.admin_listen`, when set: the admin API and `/metrics`.
    pub admin: Option<SocketAddr>,
    /// Ends once `stop` fired and every connection closed.
    pub task: JoinHandle<()>,
}

/// Binds `http.listen` (and `http.admin_listen`, when set) and serves until `stop` is
/// cancelled (see [`server`] for the limits).
pub async fn serve(core: Arc<Core>, stop: CancellationToken) -> anyhow::Result<Listening> {
    let http = core.config.http.clone();
    let limits = server::Limits {
        header_read_timeout: std::time::Duration::from_millis(http.header_read_timeout_ms),
        body_read_timeout: std::time::Duration::from_millis(http.body_read_timeout_ms),
        max_connections: http.max_connections,
    };
    let main = bind(http.listen, "http.listen").await?;
    let main_addr = main.local_addr()?;
    let (main_routes, admin_routes) =
        listener_routes(http.admin_listen.is_some(), token_guard(Arc::clone(&core)));
    let console = console::Console::new(Arc::clone(&core));
    let main_console = admin_routes.is_none().then_some(&console);
    let main_app = serving(main_routes, &core, main_console);
    let admin = match (http.admin_listen, admin_routes) {
        (Some(addr), Some(routes)) => {
            let listener = bind(addr, "http.admin_listen").await?;
            let admin_addr = listener.local_addr()?;
            Some((listener, admin_addr, serving(routes, &core, Some(&console))))
        }
        _ => None,
    };
    let mut tasks = vec![tokio::spawn(server::run(
        main,
        main_app,
        limits.clone(),
        core.metrics.http_listener("main"),
        stop.clone(),
    ))];
    let admin_addr = admin.as_ref().map(|(_, addr, _)| *addr);
    if let Some((listener, _, app)) = admin {
        tasks.push(tokio::spawn(server::run(
            listener,
            app,
            limits,
            core.metrics.http_listener("admin"),
            stop,
        )));
    }
    let task = tokio::spawn(async move {
        for task in tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "HTTP server task failed");
            }
        }
    });
    Ok(Listening {
        main: main_addr,
        admin: admin_addr,
        task,
    })
}

async fn bind(addr: SocketAddr, key: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} ({key}): {e}"))
}

/// Every route on one address (the default: no `http.admin_listen`), as served.
pub fn routes(core: Arc<Core>) -> Router {
    let (main, _) = listener_routes(false, token_guard(Arc::clone(&core)));
    let console = console::Console::new(Arc::clone(&core));
    serving(main, &core, Some(&console))
}

type Routes = OpenApiRouter<Arc<Core>>;

/// The routes of each listening address, with `guard` around the token-protected ones.
/// Without an admin address (`split` false) everything is on the main one; with one, the main
/// address keeps what must stay reachable from outside (health and readiness for load
/// balancers, the OAuth redirect for a broadcaster's browser, the EventSub webhook for
/// Twitch) and the admin address gets the admin API, `/metrics`, the API's description and
/// health. [`openapi::document`] describes the unsplit set, and a test checks that the split
/// serves the same routes.
fn listener_routes(split: bool, guard: impl FnOnce(Routes) -> Routes) -> (Routes, Option<Routes>) {
    let admin = probe_routes()
        .routes(routes!(openapi::serve_document))
        .merge(open_admin_routes())
        .merge(guard(protected_routes()));
    if split {
        (probe_routes().merge(intake_routes()), Some(admin))
    } else {
        (admin.merge(intake_routes()), None)
    }
}

/// The serving router of one address (with the web console where the admin API is).
fn serving(routes: Routes, core: &Arc<Core>, console: Option<&console::ConsoleState>) -> Router {
    let (router, _) = routes.split_for_parts();
    let router = router.with_state(Arc::clone(core));
    match console {
        Some(console) => router.merge(console::router(Arc::clone(console))),
        None => router,
    }
}

/// The admin token check ([`require_admin`]) around every route of a set.
fn token_guard(core: Arc<Core>) -> impl FnOnce(Routes) -> Routes {
    move |routes| routes.route_layer(middleware::from_fn_with_state(core, require_admin))
}

/// Every route the service serves, unguarded, for [`openapi::document`] (the description
/// does not depend on the state).
fn described_routes() -> Routes {
    listener_routes(false, |routes| routes).0
}

/// Health and readiness, served on every address.
fn probe_routes() -> Routes {
    OpenApiRouter::default()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// Where others call in: Twitch's OAuth redirect and its EventSub webhook deliveries.
fn intake_routes() -> Routes {
    OpenApiRouter::default()
        .routes(routes!(twitch::oauth_callback))
        .routes(routes!(twitch::eventsub_webhook))
}

fn open_admin_routes() -> Routes {
    OpenApiRouter::default()
        .routes(routes!(metrics))
        .routes(routes!(list_channels))
}

/// The routes that need the admin token (each names [`openapi::ADMIN_TOKEN`] in its
/// description; `tests/openapi.rs` checks that both agree).
fn protected_routes() -> Routes {
    OpenApiRouter::default()
        .routes(routes!(join_channels, part_channels))
        .routes(routes!(join_channel, part_channel))
        .routes(routes!(rules::get_twitch_rules))
        .routes(routes!(flush_store))
        .routes(routes!(users::delete_user))
        .routes(routes!(twitch::authorize_channel))
        .routes(routes!(twitch::authorize_bot))
        .routes(routes!(
            rules::get_twitch_item,
            rules::put_twitch_item,
            rules::delete_twitch_item
        ))
        // Discord channels by channel id. A Twitch channel named `discord` keeps its routes
        // above (paths of other lengths), as `tests/http_api.rs` checks.
        .routes(routes!(rules::get_discord_rules))
        .routes(routes!(
            rules::get_discord_item,
            rules::put_discord_item,
            rules::delete_discord_item
        ))
}

/// Writes everything the store's writer holds (before maintenance, or to read exact figures).
#[utoipa::path(
    post,
    path = "/v1/store/flush",
    tag = "store",
    responses(
        (status = 200, description = "Every pending state change is written.", body = openapi::FlushAnswer),
        (status = 503, description = "The store failed, or did not finish within `supervisor.drain_timeout_ms`.", body = openapi::ErrorBody),
    ),
    security(("admin_token" = [])),
)]
async fn flush_store(State(core): State<Arc<Core>>) -> Response {
    let timeout = std::time::Duration::from_millis(core.config.supervisor.drain_timeout_ms);
    match tokio::time::timeout(timeout, core.store.flush()).await {
        Ok(Ok(())) => Json(openapi::FlushAnswer { flushed: true }).into_response(),
        Ok(Err(e)) => error_response(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        Err(_) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "the store did not finish writing within supervisor.drain_timeout_ms",
        ),
    }
}

/// Liveness: 200 while the process is alive.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain")),
)]
async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: connected, channels joined and none failed.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "Ready (`degraded` lists what is behind while chat is handled).", body = crate::app::Readiness),
        (status = 503, description = "Not ready; `reasons` says why.", body = crate::app::Readiness),
    ),
)]
async fn readyz(State(core): State<Arc<Core>>) -> Response {
    let readiness = core.readiness();
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness)).into_response()
}

/// One `/metrics` render at a time in the process: a flood of scrapes queues here instead of
/// taking every blocking thread (and the cores chat needs).
static RENDERING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// The service's metrics in Prometheus' text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "metrics",
    responses((status = 200, description = "Prometheus text exposition (version 0.0.4).", body = String, content_type = "text/plain; version=0.0.4; charset=utf-8")),
)]
async fn metrics(State(core): State<Arc<Core>>) -> Response {
    let Ok(_turn) = RENDERING.acquire().await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    // Rendered on a blocking thread: a scrape of many channels never holds up the async
    // workers that carry chat (the collectors read atomics and take no lock the hot path holds).
    let Ok(text) = tokio::task::spawn_blocking(move || core.metrics.render()).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// One channel, as `GET /v1/channels` lists it.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct ChannelView {
    /// `twitch` or `discord`.
    platform: &'static str,
    /// The Twitch login, or the Discord channel id.
    channel: String,
    /// The configured name of a Discord channel (its key is the channel id).
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    state: crate::channel::ChannelStatus,
    /// Twitch: the connection has joined it; Discord: the gateway is connected.
    joined: bool,
    /// Messages admitted and not yet handled (bounded by `admission.capacity`).
    in_flight: u64,
    received: u64,
    processed: u64,
    /// Messages shed, every reason together.
    shed: u64,
    /// Messages shed, per reason (reasons with none left out).
    #[schema(value_type = BTreeMap<String, u64>)]
    shed_by_reason: BTreeMap<&'static str, u64>,
    /// Actor restarts (a panicking handler restarts its actor).
    restarts: u64,
    last_error: Option<String>,
    /// Twitch: the channel's authorisation for the app-token path (with Helix configured).
    #[serde(skip_serializing_if = "Option::is_none")]
    authorization: Option<crate::twitch::auth::ChannelAuthorization>,
    /// Twitch: its EventSub subscriptions (with EventSub as the ingest).
    #[serde(skip_serializing_if = "Option::is_none")]
    eventsub: Option<crate::twitch::eventsub::ChannelSubscriptions>,
}

/// Default and largest page of `GET /v1/channels`.
const CHANNEL_PAGE: usize = 1_000;
const MAX_CHANNEL_PAGE: usize = 10_000;

/// Which page of `GET /v1/channels`, in which order.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ChannelPage {
    /// Entries per page: 1 to 10,000 (default 1,000).
    limit: Option<usize>,
    /// Entries skipped first (default 0).
    offset: Option<usize>,
    /// `name` (platform, then channel; the default), or the busiest first by `received`,
    /// `shed` or `in_flight`.
    sort: Option<String>,
}

/// Sorts `channels` as `sort` says; `None` for an unknown order.
fn sort_channels(channels: &mut [Arc<ChannelShared>], sort: Option<&str>) -> Option<()> {
    let busiest = |f: fn(&ChannelShared) -> u64| {
        move |a: &Arc<ChannelShared>, b: &Arc<ChannelShared>| {
            f(b).cmp(&f(a)).then_with(|| by_name(a, b))
        }
    };
    match sort.unwrap_or("name") {
        "name" => channels.sort_unstable_by(|a, b| by_name(a, b)),
        "received" => channels.sort_unstable_by(|a, b| busiest_first(a, b)),
        "shed" => channels.sort_unstable_by(busiest(|c| c.counters.shed_total())),
        "in_flight" => channels.sort_unstable_by(busiest(|c| c.in_flight())),
        _ => return None,
    }
    Some(())
}

/// The channels the service supervises, Twitch and Discord, a page at a time (the total in
/// `X-Total-Count`).
#[utoipa::path(
    get,
    path = "/v1/channels",
    tag = "channels",
    params(ChannelPage),
    responses(
        (status = 200, description = "One entry per channel of the page; the number of channels in `X-Total-Count`.", body = Vec<ChannelView>,
            headers(("X-Total-Count" = u64, description = "Channels in all pages"))),
        (status = 400, description = "A bad `limit`, `offset` or `sort`.", body = openapi::ErrorBody),
    ),
)]
async fn list_channels(
    State(core): State<Arc<Core>>,
    page: Result<axum::extract::Query<ChannelPage>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(axum::extract::Query(page)) = page else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "query: limit and offset are numbers, sort is name, received, shed or in_flight",
        );
    };
    let limit = page.limit.unwrap_or(CHANNEL_PAGE);
    if !(1..=MAX_CHANNEL_PAGE).contains(&limit) {
        return error_response(
            StatusCode::BAD_REQUEST,
            &format!("limit is 1 to {MAX_CHANNEL_PAGE}"),
        );
    }
    let mut channels = core.registry.all();
    if sort_channels(&mut channels, page.sort.as_deref()).is_none() {
        return error_response(
            StatusCode::BAD_REQUEST,
            "sort is name, received, shed or in_flight",
        );
    }
    let total = channels.len();
    let status = core.twitch.status();
    let views: Vec<ChannelView> = channels
        .iter()
        .skip(page.offset.unwrap_or(0))
        .take(limit)
        .map(|c| ChannelView {
            platform: c.key.platform.as_str(),
            channel: c.key.name.to_string(),
            name: match c.key.platform {
                Platform::Discord => core
                    .config
                    .discord
                    .channels
                    .get(&*c.key.name)
                    .map(|d| d.name.clone()),
                Platform::Twitch => None,
            },
            state: c.status(),
            joined: match c.key.platform {
                Platform::Twitch => status.is_joined(&c.key.name),
                Platform::Discord => core.discord.as_ref().is_some_and(|d| d.is_connected()),
            },
            in_flight: c.in_flight(),
            received: c.counters.received.load(Ordering::Relaxed),
            processed: c.counters.processed.load(Ordering::Relaxed),
            shed: c.counters.shed_total(),
            shed_by_reason: ShedReason::ALL
                .iter()
                .map(|r| (r.as_str(), c.counters.shed(*r)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            restarts: c.counters.restarts.load(Ordering::Relaxed),
            last_error: c.last_error(),
            authorization: match c.key.platform {
                Platform::Twitch => core.auth.as_ref().map(|a| {
                    a.channel_authorization(&c.key.name, status.is_moderator(&c.key.name))
                }),
                Platform::Discord => None,
            },
            eventsub: match c.key.platform {
                Platform::Twitch => core.eventsub.as_ref().and_then(|e| e.channel(&c.key.name)),
                Platform::Discord => None,
            },
        })
        .collect();
    ([("x-total-count", total.to_string())], Json(views)).into_response()
}

/// Largest bulk body: 100,000 logins of 25 characters, quoted, with commas.
const MAX_BULK_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The body of a bulk join or part.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct BulkChannels {
    /// Twitch logins (at most 100,000).
    channels: Vec<String>,
}

/// A bulk request's body, or the refusal to answer.
async fn bulk_body(body: axum::body::Body) -> Result<Vec<String>, Response> {
    let bytes = server::read_body(body, MAX_BULK_BODY_BYTES)
        .await
        .map_err(IntoResponse::into_response)?;
    let parsed: BulkChannels = serde_json::from_slice(&bytes).map_err(|e| {
        error_response(
            StatusCode::BAD_REQUEST,
            &format!("body must be {{\"channels\": [\"login\", ...]}}: {e}"),
        )
    })?;
    Ok(parsed.channels)
}

fn bulk_answer(
    result: Result<crate::app::membership::BulkAnswer, crate::app::membership::BulkError>,
) -> Response {
    use crate::app::membership::BulkError;
    match result {
        Ok(answer) => (StatusCode::ACCEPTED, Json(answer)).into_response(),
        Err(e @ BulkError::TooMany(_)) => error_response(StatusCode::BAD_REQUEST, &e.to_string()),
        Err(e) => error_response(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

/// Joins many Twitch channels: answered at once, joined in the background (in order, JOINs
/// paced by Twitch's limits; progress: `firehose_channels_join_pending`, each channel's
/// `joined` in `GET /v1/channels`).
#[utoipa::path(
    post,
    path = "/v1/channels",
    tag = "channels",
    request_body(content = BulkChannels, description = "The logins (at most 100,000; 4 MiB).", content_type = "application/json"),
    responses(
        (status = 202, description = "Accepted: `accepted` are being joined, `already` were joined or waiting, `invalid` are not logins.", body = crate::app::membership::BulkAnswer),
        (status = 400, description = "Not the expected body, or over 100,000 entries.", body = openapi::ErrorBody),
        (status = 408, description = "The body did not arrive within `http.body_read_timeout_ms`.", body = openapi::ErrorBody),
        (status = 413, description = "The body is over 4 MiB.", body = openapi::ErrorBody),
        (status = 503, description = "Too many channels are waiting to be joined, or the service is shutting down; nothing was taken.", body = openapi::ErrorBody),
    ),
    security(("admin_token" = [])),
)]
async fn join_channels(State(core): State<Arc<Core>>, body: axum::body::Body) -> Response {
    match bulk_body(body).await {
        Ok(channels) => bulk_answer(core.join_many(&channels)),
        Err(refused) => refused,
    }
}

/// Parts many Twitch channels: answered at once, parted in the background.
#[utoipa::path(
    delete,
    path = "/v1/channels",
    tag = "channels",
    request_body(content = BulkChannels, description = "The logins (at most 100,000; 4 MiB).", content_type = "application/json"),
    responses(
        (status = 202, description = "Accepted: `accepted` are being parted, `already` were not joined, `invalid` are not logins.", body = crate::app::membership::BulkAnswer),
        (status = 400, description = "Not the expected body, or over 100,000 entries.", body = openapi::ErrorBody),
        (status = 408, description = "The body did not arrive within `http.body_read_timeout_ms`.", body = openapi::ErrorBody),
        (status = 413, description = "The body is over 4 MiB.", body = openapi::ErrorBody),
        (status = 503, description = "The service is shutting down; nothing was taken.", body = openapi::ErrorBody),
    ),
    security(("admin_token" = [])),
)]
async fn part_channels(State(core): State<Arc<Core>>, body: axum::body::Body) -> Response {
    match bulk_body(body).await {
        Ok(channels) => bulk_answer(core.part_many(&channels)),
        Err(refused) => refused,
    }
}

/// Joins a Twitch channel (or revives a failed one).
#[utoipa::path(
    post,
    path = "/v1/channels/{login}",
    tag = "channels",
    params(("login" = String, Path, description = "The Twitch login (a-z, 0-9, `_`; 1-25 characters).")),
    responses(
        (status = 201, description = "Joined: its actor runs and the JOIN is queued (paced by Twitch's limits).", body = openapi::JoinAnswer),
        (status = 200, description = "Already joined, or revived after it failed.", body = openapi::JoinAnswer),
        (status = 400, description = "Not a login, or the service is shutting down.", body = openapi::ErrorBody),
    ),
    security(("admin_token" = [])),
)]
async fn join_channel(State(core): State<Arc<Core>>, Path(login): Path<String>) -> Response {
    match core.join(&login).await {
        Ok(outcome) => {
            let status = match outcome {
                JoinOutcome::Joined => StatusCode::CREATED,
                _ => StatusCode::OK,
            };
            let answer = openapi::JoinAnswer {
                channel: login,
                outcome,
            };
            (status, Json(answer)).into_response()
        }
        Err(error) => error_response(StatusCode::BAD_REQUEST, &error.to_string()),
    }
}

/// Parts a Twitch channel: its actor drains and stops.
#[utoipa::path(
    delete,
    path = "/v1/channels/{login}",
    tag = "channels",
    params(("login" = String, Path, description = "The Twitch login.")),
    responses(
        (status = 200, description = "Parted.", body = openapi::PartAnswer),
        (status = 400, description = "Not a login.", body = openapi::ErrorBody),
        (status = 404, description = "Not joined.", body = openapi::ErrorBody),
        (status = 503, description = "The channel could not be parted now (shutting down).", body = openapi::ErrorBody),
    ),
    security(("admin_token" = [])),
)]
async fn part_channel(State(core): State<Arc<Core>>, Path(login): Path<String>) -> Response {
    if !crate::config::is_login(&login) {
        return error_response(
            StatusCode::BAD_REQUEST,
            &format!("`{login}` is not a channel login"),
        );
    }
    match core.part(&login).await {
        Ok(true) => Json(openapi::PartAnswer {
            channel: login,
            parted: true,
        })
        .into_response(),
        Ok(false) => error_response(
            StatusCode::NOT_FOUND,
            &format!("channel `{login}` is not joined"),
        ),
        Err(error) => error_response(StatusCode::SERVICE_UNAVAILABLE, &error.to_string()),
    }
}

pub(crate) fn error_response(status: StatusCode, error: &str) -> Response {
    let body = openapi::ErrorBody {
        error: error.to_string(),
    };
    (status, Json(body)).into_response()
}

/// Admin routes' middleware: lets the request through only with the right bearer token.
async fn require_admin(State(core): State<Arc<Core>>, request: Request, next: Next) -> Response {
    match deny_unless_admin(&core, request.headers()) {
        Some(denied) => denied,
        None => next.run(request).await,
    }
}

/// Checks `Authorization: Bearer <admin token>` in constant time; the 401 answer when it fails.
fn deny_unless_admin(core: &Core, headers: &HeaderMap) -> Option<Response> {
    let unauthorized = |why: &str| {
        let mut response = error_response(StatusCode::UNAUTHORIZED, why);
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        response
    };
    let Some(expected) = core.admin_token() else {
        return Some(unauthorized(
            "admin API disabled: no admin token configured",
        ));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .unwrap_or("");
    if bool::from(presented.as_bytes().ct_eq(expected.expose().as_bytes())) {
        None
    } else {
        Some(unauthorized("missing or wrong bearer token"))
    }
}

/// The token of an `Authorization: Bearer <token>` value. The scheme is case-insensitive
/// (RFC 9110 section 11.1: `bearer` and `BEARER` are `Bearer`), and one or more spaces
/// separate it from the token.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::{bearer_token, listener_routes, Routes};

    fn operations(routes: Routes) -> BTreeSet<(String, String)> {
        let api = serde_json::to_value(routes.into_openapi()).expect("serialises");
        api["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, item)| {
                let item = item.as_object().expect("item");
                item.keys()
                    .map(|method| (method.clone(), path.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn split_listeners_serve_exactly_the_described_routes() {
        let (all, none) = listener_routes(false, |r| r);
        assert!(none.is_none());
        let described = operations(all);
        let (main, admin) = listener_routes(true, |r| r);
        let main = operations(main);
        let admin = operations(admin.expect("an admin address"));
        let served: BTreeSet<_> = main.union(&admin).cloned().collect();
        assert_eq!(served, described);
        let on_main: BTreeSet<&str> = main.iter().map(|(_, p)| p.as_str()).collect();
        assert_eq!(
            on_main,
            BTreeSet::from(["/healthz", "/readyz", "/oauth/callback", "/eventsub"]),
            "the public address keeps only what outsiders must reach"
        );
        assert!(admin.iter().any(|(_, p)| p == "/openapi.json"));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in ["Bearer abc", "bearer abc", "BEARER abc", "bEaReR   abc"] {
            assert_eq!(bearer_token(value), Some("abc"), "{value}");
        }
        for value in ["Basic abc", "Bearerabc", "abc", "", "Bearer"] {
            assert_eq!(bearer_token(value), None, "{value}");
        }
        assert_eq!(
            bearer_token("Bearer "),
            Some(""),
            "an empty token is no token"
        );
    }
}
