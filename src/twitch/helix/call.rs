//! One authenticated JSON call to Helix, shared by the calls that are not moderation
//! (`users`, `chat`, `eventsub`): the bearer token from a [`Bearer`], `Client-Id`, the token's
//! points [`Budget`], the answer's `Ratelimit-*` headers, a 401 reported to the bearer (and,
//! when a renewed token comes within a few seconds, the call made once more with it), and
//! typed errors that never carry the token.

use std::time::Duration;

use reqwest::header::AUTHORIZATION;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use super::bearer::Bearer;
use super::budget::Budget;
use super::client::rate_headers;

/// How long a call that got a 401 waits for a renewed token.
const RENEWAL_WAIT: Duration = Duration::from_secs(5);
/// Most of an answer body read.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Why a Helix call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HelixError {
    #[error("no access token")]
    NoToken,
    #[error("the token was refused (401): {0}")]
    Unauthorized(String),
    #[error("Helix answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("transport: {0}")]
    Transport(String),
    #[error("answer body: {0}")]
    Body(String),
    #[error("shutting down")]
    Shutdown,
}

impl HelixError {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            HelixError::NoToken => "no_token",
            HelixError::Unauthorized(_) => "unauthorized",
            HelixError::Status { status, .. } if *status == 429 => "rate_limited",
            HelixError::Status { status, .. } if *status >= 500 => "server_error",
            HelixError::Status { .. } => "refused",
            HelixError::Transport(_) => "transport",
            HelixError::Body(_) => "body",
            HelixError::Shutdown => "shutdown",
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            HelixError::Status { status, .. } => Some(*status),
            HelixError::Unauthorized(_) => Some(401),
            _ => None,
        }
    }
}

/// A Helix endpoint caller with one token and its budget.
#[derive(Debug)]
pub struct HelixCaller {
    http: reqwest::Client,
    base_url: String,
    client_id: String,
    pub bearer: std::sync::Arc<dyn Bearer>,
    budget: Budget,
    stop: CancellationToken,
}

impl HelixCaller {
    pub fn new(
        config: &crate::config::HelixConfig,
        bearer: std::sync::Arc<dyn Bearer>,
        stop: CancellationToken,
    ) -> Result<HelixCaller, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.request_timeout_ms))
            .connect_timeout(Duration::from_millis(config.request_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("firehose/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(HelixCaller {
            http,
            base_url: config.base_url.trim_end_matches('/').to_string(),
            client_id: config.client_id.clone(),
            bearer,
            budget: Budget::new(
                config.points_per_minute,
                Duration::from_millis(config.budget_window_ms),
            ),
            stop,
        })
    }

    /// Calls `method path?query` with an optional JSON body; the parsed answer (None for 204).
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
    ) -> Result<Option<T>, HelixError> {
        let mut renewed = false;
        let mut rate_limited = 0;
        loop {
            if !self.budget.take(&self.stop).await {
                return Err(HelixError::Shutdown);
            }
            let token = self.bearer.token().ok_or(HelixError::NoToken)?;
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.base_url))
                .query(query)
                .header("Client-Id", &self.client_id)
                .header(AUTHORIZATION, format!("Bearer {}", token.expose()));
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request
                .send()
                .await
                .map_err(|e| HelixError::Transport(describe(&e)))?;
            let status = response.status();
            let headers = rate_headers(response.headers());
            self.budget.observe(headers);
            let bytes = read_body(response).await?;
            if status.is_success() {
                if status == StatusCode::NO_CONTENT || bytes.is_empty() {
                    return Ok(None);
                }
                return serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| HelixError::Body(e.to_string()));
            }
            let message = error_message(&bytes);
            match status.as_u16() {
                401 if !renewed => {
                    renewed = true;
                    self.bearer.rejected(&token);
                    if self.bearer.renewed(&token, RENEWAL_WAIT).await.is_none() {
                        return Err(HelixError::Unauthorized(message));
                    }
                }
                401 => return Err(HelixError::Unauthorized(message)),
                // The points bucket is empty: wait for its reset and try again. A 429 without
                // `Ratelimit-Remaining: 0` is a limit of another kind (EventSub's cost or
                // connection limits): final.
                429 if rate_limited < 3 && headers.remaining == Some(0) => {
                    rate_limited += 1;
                    self.budget
                        .pause_until(self.budget.reset_instant(headers.reset));
                }
                other => {
                    return Err(HelixError::Status {
                        status: other,
                        message,
                    })
                }
            }
        }
    }
}

async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, HelixError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| HelixError::Transport(describe(&e)))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_BODY_BYTES {
            return Err(HelixError::Body("answer too large".into()));
        }
    }
    Ok(body)
}

/// Helix's `message` from an error body (at most 200 characters).
pub fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_string))
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect()
}

/// A transport error without the URL (it carries ids, never the token, but stays short).
pub fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect error"
    } else {
        "transport error"
    };
    match std::error::Error::source(e) {
        Some(source) => format!("{what}: {source}"),
        None => what.to_string(),
    }
}
