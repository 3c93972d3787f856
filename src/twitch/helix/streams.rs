//! Stream status: which channels are live, and since when, polled from Helix `GET /streams`.
//!
//! The engine needs it for `$(uptime)`, online-only timers and online/offline-only banned
//! phrases. Every `helix.stream_poll_interval_ms` the watcher asks for the wanted channels, 100
//! logins per request (Helix's page size), and reports each channel's status (live since T, or
//! offline) to `on_change`, which acts only on changes. A failed poll changes nothing and is counted; the next poll tries again.

use std::collections::HashMap;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::bearer::Bearer;
use crate::config::HelixConfig;

/// Logins per `GET /streams` request (Helix's maximum page size).
const LOGINS_PER_REQUEST: usize = 100;

#[derive(Debug, Deserialize)]
struct StreamsPage {
    data: Vec<LiveStream>,
}

#[derive(Debug, Deserialize)]
struct LiveStream {
    user_login: String,
    #[serde(rename = "type")]
    kind: String,
    started_at: String,
}

/// Counters of the watcher.
#[derive(Debug, Clone, Default)]
pub struct StreamMetrics {
    pub polls: Counter,
    pub poll_failures: Counter,
}

impl StreamMetrics {
    pub fn register(registry: &mut Registry) -> StreamMetrics {
        let metrics = StreamMetrics::default();
        registry.register(
            "helix_stream_polls",
            "Helix GET /streams requests",
            metrics.polls.clone(),
        );
        registry.register(
            "helix_stream_poll_failures",
            "Helix GET /streams requests that failed (status unchanged until the next poll)",
            metrics.poll_failures.clone(),
        );
        metrics
    }
}

/// Polls Helix for the channels `logins()` returns and calls `on_change(login, live_since_ms)`
/// with each one's status: live (`Some(start)`) or offline (`None`).
pub fn spawn_stream_watcher(
    config: HelixConfig,
    token: std::sync::Arc<dyn Bearer>,
    metrics: StreamMetrics,
    logins: impl Fn() -> Vec<String> + Send + 'static,
    on_change: impl Fn(&str, Option<u64>) + Send + 'static,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let client = match reqwest::Client::builder()
            .timeout(Duration::from_millis(config.request_timeout_ms))
            .build()
        {
            Ok(client) => client,
            Err(e) => {
                tracing::error!(error = %e, "stream watcher: cannot build an HTTP client");
                return;
            }
        };
        let mut interval =
            tokio::time::interval(Duration::from_millis(config.stream_poll_interval_ms));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = interval.tick() => {}
            }
            let wanted = logins();
            for chunk in wanted.chunks(LOGINS_PER_REQUEST) {
                metrics.polls.inc();
                match poll(&client, &config, token.as_ref(), chunk).await {
                    Ok(live) => report(chunk, &live, &on_change),
                    Err(e) => {
                        metrics.poll_failures.inc();
                        tracing::warn!(error = %e, "stream status poll failed");
                    }
                }
            }
        }
    })
}

/// Why a poll of `GET /streams` failed (the status stays as it was until the next poll).
#[derive(Debug, thiserror::Error)]
enum PollError {
    #[error("GET /streams: {0}")]
    Transport(reqwest::Error),
    #[error("GET /streams answered {0}")]
    Status(reqwest::StatusCode),
    #[error("GET /streams body: {0}")]
    Body(reqwest::Error),
    #[error("no access token")]
    NoToken,
}

/// Asks Helix which of `logins` are live; returns login -> live since (ms).
async fn poll(
    client: &reqwest::Client,
    config: &HelixConfig,
    token: &dyn Bearer,
    logins: &[String],
) -> Result<HashMap<String, u64>, PollError> {
    let mut query: Vec<(&str, &str)> = logins.iter().map(|l| ("user_login", l.as_str())).collect();
    let first = LOGINS_PER_REQUEST.to_string();
    query.push(("first", &first));
    let Some(bearer) = token.token() else {
        return Err(PollError::NoToken);
    };
    let response = client
        .get(format!("{}/streams", config.base_url.trim_end_matches('/')))
        .query(&query)
        .header("Client-Id", &config.client_id)
        .bearer_auth(bearer.expose())
        .send()
        .await
        .map_err(|e| PollError::Transport(e.without_url()))?;
    if response.status() == reqwest::StatusCode::UNAUTHORIZED {
        token.rejected(&bearer);
    }
    if !response.status().is_success() {
        return Err(PollError::Status(response.status()));
    }
    let page: StreamsPage = response.json().await.map_err(PollError::Body)?;
    Ok(page
        .data
        .into_iter()
        .filter(|s| s.kind == "live")
        .filter_map(|s| {
            let started = chrono::DateTime::parse_from_rfc3339(&s.started_at).ok()?;
            Some((
                s.user_login.to_ascii_lowercase(),
                started.timestamp_millis().max(0) as u64,
            ))
        })
        .collect())
}

fn report(logins: &[String], live: &HashMap<String, u64>, on_change: &impl Fn(&str, Option<u64>)) {
    for login in logins {
        on_change(login, live.get(login).copied());
    }
}
