//! Carries out one job against Helix: budget point, HTTP call, classification, retries.
//!
//! 2xx is success. A 401 is reported to the token's [`Bearer`]; when a renewed token arrives
//! within a few seconds the call is tried once more with it, else the 401 is final (the token
//! is invalid or lacks a scope: logged as an error).
//! Other 4xx are final too: Helix refuses them the same way every time (already banned, not
//! banned, message already deleted); such an "already done" answer counts as success only
//! after an earlier attempt that may have been carried out (a timeout, a transport error, a
//! 5xx), since that attempt is the likely cause. 429, 5xx and transport errors are retried up to
//! `max_retries` times with exponential backoff and jitter; a 429 also pauses the whole budget
//! until `Ratelimit-Reset`. Every attempt costs a budget point. The token is only ever put in
//! the `Authorization` header: it is never logged. A chat-mode change first reads the mode as
//! it was ([`super::modes`]), so the defence's revert restores it instead of turning it off.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::header::{HeaderMap, AUTHORIZATION};
use reqwest::{Response, StatusCode};
use tokio_util::sync::CancellationToken;

use super::bearer::Bearer;
use super::budget::{Budget, RateHeaders};
use super::metrics::HelixMetrics;
use super::modes::{self, Priors};
use super::request::{Call, Job, Kind};
use crate::config::HelixConfig;
use crate::engine::action::ChatModeChange;

/// How long a call that got a 401 waits for a renewed token before failing.
const RENEWAL_WAIT: Duration = Duration::from_secs(5);

/// Most of an error body read (Helix error bodies are a few hundred bytes).
const MAX_BODY_BYTES: usize = 4_096;
/// Most of Helix's error message kept in a log entry.
const MAX_MESSAGE_CHARS: usize = 200;
/// Longest backoff between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What became of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Nothing needed doing: a chat mode already as strict as asked, or left on at the end
    /// because it was on before the defence.
    Kept(String),
    /// Helix's definitive no (a 4xx: missing scope, not a moderator, refused).
    Refused(String),
    /// Not done for another reason (retries exhausted, no token): it may have happened.
    Failed(String),
    Dropped(String),
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Kept(_) => "kept",
            Outcome::Refused(_) | Outcome::Failed(_) => "failed",
            Outcome::Dropped(_) => "dropped",
        }
    }

    pub fn text(&self) -> String {
        match self {
            Outcome::Ok => "ok".into(),
            Outcome::Kept(why) => format!("kept: {why}"),
            Outcome::Refused(why) | Outcome::Failed(why) => format!("failed: {why}"),
            Outcome::Dropped(why) => format!("dropped: {why}"),
        }
    }
}

/// The verdict on one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Ok,
    Final(String),
    /// Helix says the action is already in effect (already banned, not banned any more,
    /// message gone). Final; it counts as success only after an earlier attempt whose fate is
    /// unknown (timeout, transport error, 5xx), which may well have carried it out.
    AlreadyDone(String),
    /// Worth another try; `maybe_applied` when Helix may have carried it out anyway.
    Retry {
        why: String,
        maybe_applied: bool,
    },
}

fn retry(why: String, maybe_applied: bool) -> Attempt {
    Attempt::Retry { why, maybe_applied }
}

/// Classifies a Helix answer (`message` is the error body's `message`, if any).
pub fn classify(status: StatusCode, message: &str, kind: Kind) -> Attempt {
    let detail = |what: &str| {
        if message.is_empty() {
            format!("{what} ({})", status.as_u16())
        } else {
            format!("{what} ({}): {message}", status.as_u16())
        }
    };
    if status.is_success() {
        return Attempt::Ok;
    }
    let lower = message.to_ascii_lowercase();
    match status.as_u16() {
        // Helix says "Missing scope: ..." when the token is good but lacks what this call
        // needs (Shield Mode, chat settings): renewing it would not help.
        401 if lower.contains("scope") => Attempt::Final(detail("missing scope")),
        401 => Attempt::Final(detail("token invalid or missing scope")),
        429 => retry(detail("rate limited"), false),
        s if s >= 500 => retry(detail("server error"), true),
        400 | 404 if kind == Kind::Delete => Attempt::AlreadyDone(detail("message not deleted")),
        400 if kind != Kind::Unban && lower.contains("already banned") => {
            Attempt::AlreadyDone(detail("already banned"))
        }
        400 if kind == Kind::Unban && lower.contains("not banned") => {
            Attempt::AlreadyDone(detail("not banned"))
        }
        _ => Attempt::Final(detail("refused")),
    }
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

pub fn rate_headers(headers: &HeaderMap) -> RateHeaders {
    RateHeaders {
        limit: header_u64(headers, "ratelimit-limit"),
        remaining: header_u64(headers, "ratelimit-remaining"),
        reset: header_u64(headers, "ratelimit-reset"),
    }
}

/// Delay before retry number `retry` (1-based): base * 2^(retry-1), capped, in [d/2, d].
pub fn backoff(base: Duration, retry: u32) -> Duration {
    let factor = 2u32.saturating_pow(retry.saturating_sub(1).min(16));
    let full = base.saturating_mul(factor).min(MAX_BACKOFF);
    let half = full / 2;
    let jitter_ms = rand::rng().random_range(0..=half.as_millis() as u64);
    half + Duration::from_millis(jitter_ms)
}

/// Reads at most [`MAX_BODY_BYTES`] of the body and pulls out Helix's `message`.
async fn error_message(mut response: Response) -> String {
    let mut body = Vec::new();
    while body.len() < MAX_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(MAX_BODY_BYTES);
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_string))
        .unwrap_or_default();
    message.chars().take(MAX_MESSAGE_CHARS).collect()
}

/// Most of a read's answer taken (a chat-settings answer is a few hundred bytes).
const MAX_READ_BYTES: usize = 16 * 1024;

/// The JSON of a success answer, read up to [`MAX_READ_BYTES`]; `None` if longer or not JSON.
async fn read_json(mut response: Response) -> Option<serde_json::Value> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.ok()? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_READ_BYTES {
            return None;
        }
    }
    serde_json::from_slice(&body).ok()
}

/// Sends jobs to Helix. Shared by the worker's in-flight tasks.
#[derive(Debug)]
pub struct Executor {
    http: reqwest::Client,
    base_url: String,
    client_id: String,
    bearer: Arc<dyn Bearer>,
    budget: Budget,
    metrics: HelixMetrics,
    max_retries: u32,
    retry_backoff: Duration,
    shutdown: CancellationToken,
    /// Set by a 401, cleared by a success: the invalid-token error is logged once per spell.
    token_refused: AtomicBool,
    /// Chat modes that were on before the defence changed them.
    priors: Priors,
}

impl Executor {
    pub fn new(
        config: &HelixConfig,
        bearer: Arc<dyn Bearer>,
        metrics: HelixMetrics,
        shutdown: CancellationToken,
    ) -> Result<Arc<Executor>, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.request_timeout_ms))
            .connect_timeout(Duration::from_millis(config.request_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("firehose/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Arc::new(Executor {
            http,
            base_url: config.base_url.trim_end_matches('/').to_string(),
            client_id: config.client_id.clone(),
            bearer,
            budget: Budget::new(
                config.points_per_minute,
                Duration::from_millis(config.budget_window_ms),
            ),
            metrics,
            max_retries: config.max_retries,
            retry_backoff: Duration::from_millis(config.retry_backoff_ms),
            shutdown,
            token_refused: AtomicBool::new(false),
            priors: Priors::default(),
        }))
    }

    /// Calls a second the token's budget lets through (what the worker plans with).
    pub fn per_second(&self) -> f64 {
        self.budget.per_second()
    }

    /// Points in the token's bucket now.
    pub fn available(&self) -> u64 {
        self.budget.available(Instant::now())
    }

    /// Takes a point for a job about to start (the worker starts a job only with its first
    /// point in hand, so the order of its lines decides who spends the points), or says when
    /// one is there.
    pub fn reserve(&self) -> Result<(), Instant> {
        self.budget.reserve(Instant::now())
    }

    /// Gives back a reserved point that was not spent.
    pub fn refund(&self) {
        self.budget.refund();
    }

    /// Runs a job to its outcome; returns the outcome and the number of HTTP calls made.
    /// `prepaid`: its first point was reserved.
    pub async fn execute(&self, job: &Job, prepaid: bool) -> (Outcome, u32) {
        let mut prepaid = prepaid;
        let done = match job.change {
            Some(change) if change.engages() => self.engage(job, change, &mut prepaid).await,
            Some(change) => self.revert(job, change, &mut prepaid).await,
            None => self.run(job, job.call(), &mut prepaid).await,
        };
        if prepaid {
            self.refund();
        }
        done
    }

    /// One point: the reserved one if still unspent, else one from the budget (false on
    /// shutdown).
    async fn point(&self, prepaid: &mut bool) -> bool {
        std::mem::take(prepaid) || self.budget.take(&self.shutdown).await
    }

    /// An engaging chat-mode change: reads the mode first; leaves a mode at least as strict
    /// alone, else changes it and remembers what to restore.
    async fn engage(
        &self,
        job: &Job,
        change: ChatModeChange,
        prepaid: &mut bool,
    ) -> (Outcome, u32) {
        let (answer, read) = self.read(job, modes::read_call(job, change), prepaid).await;
        match answer.and_then(|a| modes::prior_of(change, &a)) {
            Some(prior) if prior.untouched => {
                self.priors.remember(&job.channel, change, prior);
                let why = format!("{} already (set before the defence)", change.describe());
                (Outcome::Kept(why), read)
            }
            Some(prior) => {
                self.priors.remember(&job.channel, change, prior);
                let (outcome, n) = self.run(job, job.call(), prepaid).await;
                (outcome, n + read)
            }
            None => {
                self.priors.forget(&job.channel, change);
                let (outcome, n) = self.run(job, job.call(), prepaid).await;
                (outcome, n + read)
            }
        }
    }

    /// A reverting chat-mode change: puts back what was on before the defence, if anything.
    async fn revert(
        &self,
        job: &Job,
        change: ChatModeChange,
        prepaid: &mut bool,
    ) -> (Outcome, u32) {
        match self.priors.take(&job.channel, change) {
            Some(prior) if prior.untouched => {
                let why = format!("{} was on before the defence", modes::mode_of(change));
                (Outcome::Kept(why), 0)
            }
            Some(prior) => {
                let mut call = job.call();
                call.body = Some(prior.body);
                self.run(job, call, prepaid).await
            }
            None => self.run(job, job.call(), prepaid).await,
        }
    }

    /// One read (one budget point, no retry): the JSON answer, if it was a success.
    async fn read(
        &self,
        job: &Job,
        call: Call,
        prepaid: &mut bool,
    ) -> (Option<serde_json::Value>, u32) {
        if !self.point(prepaid).await {
            return (None, 0);
        }
        let Some(token) = self.bearer.token() else {
            self.budget.refund();
            return (None, 0);
        };
        let url = format!("{}{}", self.base_url, call.path);
        let request = self
            .http
            .get(url)
            .query(&call.query)
            .header("Client-Id", &self.client_id)
            .header(AUTHORIZATION, format!("Bearer {}", token.expose()));
        let started = Instant::now();
        let response = request.send().await;
        self.metrics.observe_call(started.elapsed());
        let Ok(response) = response else {
            return (None, 1);
        };
        self.budget.observe(rate_headers(response.headers()));
        if !response.status().is_success() {
            tracing::debug!(action = job.kind.as_str(), status = %response.status(), "reading the chat modes failed; the revert will turn the mode off");
            return (None, 1);
        }
        (read_json(response).await, 1)
    }

    /// Runs `call` for `job` to its outcome, with retries.
    async fn run(&self, job: &Job, call: Call, prepaid: &mut bool) -> (Outcome, u32) {
        let mut attempts = 0;
        let mut maybe_applied = false;
        let mut renewed_once = false;
        loop {
            if !self.point(prepaid).await {
                return (Outcome::Dropped("shutdown".into()), attempts);
            }
            attempts += 1;
            let Some(token) = self.bearer.token() else {
                return (Outcome::Failed("no access token".into()), attempts);
            };
            let verdict = self.attempt(&call, job.kind, &token).await;
            if let Attempt::Final(why) = &verdict {
                if why.starts_with("token invalid") && !renewed_once {
                    renewed_once = true;
                    self.bearer.rejected(&token);
                    if self.bearer.renewed(&token, RENEWAL_WAIT).await.is_some() {
                        continue;
                    }
                }
            }
            let why = match verdict {
                Attempt::Ok => return (Outcome::Ok, attempts),
                Attempt::AlreadyDone(_) if maybe_applied => return (Outcome::Ok, attempts),
                // A definitive no, unless an earlier attempt may have carried it out.
                Attempt::Final(why) | Attempt::AlreadyDone(why) if !maybe_applied => {
                    return (Outcome::Refused(why), attempts)
                }
                Attempt::Final(why) | Attempt::AlreadyDone(why) => {
                    return (Outcome::Failed(why), attempts)
                }
                Attempt::Retry {
                    why,
                    maybe_applied: m,
                } => {
                    maybe_applied |= m;
                    why
                }
            };
            if attempts > self.max_retries {
                let why = format!("{why}; gave up after {attempts} attempts");
                return (Outcome::Failed(why), attempts);
            }
            self.metrics.retries.inc();
            tracing::debug!(action = job.kind.as_str(), attempts, %why, "helix call will be retried");
            if !self.sleep(backoff(self.retry_backoff, attempts)).await {
                return (Outcome::Dropped(format!("shutdown ({why})")), attempts);
            }
        }
    }

    /// Sleeps unless shut down first; false on shutdown.
    async fn sleep(&self, delay: Duration) -> bool {
        tokio::select! {
            _ = self.shutdown.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }

    /// One HTTP call and its verdict.
    async fn attempt(&self, call: &Call, kind: Kind, token: &crate::config::Secret) -> Attempt {
        let url = format!("{}{}", self.base_url, call.path);
        let mut request = self
            .http
            .request(call.method.clone(), url)
            .query(&call.query)
            .header("Client-Id", &self.client_id)
            .header(AUTHORIZATION, format!("Bearer {}", token.expose()));
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let started = Instant::now();
        let response = request.send().await;
        self.metrics.observe_call(started.elapsed());
        let response = match response {
            Ok(response) => response,
            Err(e) => return retry(super::call::describe(&e), true),
        };
        let status = response.status();
        let headers = rate_headers(response.headers());
        self.budget.observe(headers);
        if status == StatusCode::TOO_MANY_REQUESTS && headers.reset.is_some() {
            self.budget
                .pause_until(self.budget.reset_instant(headers.reset));
        }
        if status.is_success() {
            self.token_refused.store(false, Ordering::Relaxed);
            return Attempt::Ok;
        }
        let verdict = classify(status, &error_message(response).await, kind);
        let missing_scope =
            matches!(&verdict, Attempt::Final(why) if why.starts_with("missing scope"));
        if missing_scope {
            tracing::warn!(
                action = kind.as_str(),
                "Helix refused a call for a missing scope; the token is kept (other calls go on)"
            );
        } else if status == StatusCode::UNAUTHORIZED
            && !self.token_refused.swap(true, Ordering::Relaxed)
        {
            // Once until the next success, not once per action.
            tracing::error!(client_id = %self.client_id, "Helix refused the moderation token (401): it is invalid, expired or lacks moderator scopes; moderation actions fail until it is replaced");
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let s = |n| StatusCode::from_u16(n).unwrap_or(StatusCode::IM_A_TEAPOT);
        assert_eq!(classify(s(204), "", Kind::Delete), Attempt::Ok);
        assert!(matches!(classify(s(401), "", Kind::Ban), Attempt::Final(_)));
        let scope = classify(
            s(401),
            "Missing scope: moderator:manage:shield_mode",
            Kind::ShieldMode,
        );
        assert!(
            matches!(&scope, Attempt::Final(why) if why.starts_with("missing scope")),
            "not taken for a bad token (no renewal): {scope:?}"
        );
        assert!(matches!(
            classify(s(429), "", Kind::Ban),
            Attempt::Retry { .. }
        ));
        assert!(matches!(
            classify(s(503), "", Kind::Ban),
            Attempt::Retry { .. }
        ));
        assert!(matches!(
            classify(s(404), "", Kind::Delete),
            Attempt::AlreadyDone(_)
        ));
        let banned = classify(
            s(400),
            "The user specified in the user_id field is already banned.",
            Kind::Ban,
        );
        assert!(
            matches!(banned, Attempt::AlreadyDone(why) if why.starts_with("already banned (400)"))
        );
        let not_banned = classify(s(400), "The user is not banned.", Kind::Unban);
        assert!(matches!(not_banned, Attempt::AlreadyDone(_)));
        assert!(matches!(
            classify(s(400), "bad", Kind::Ban),
            Attempt::Final(_)
        ));
    }

    #[test]
    fn backoff_doubles_within_jitter_and_is_capped() {
        let base = Duration::from_millis(200);
        for retry in 1..=4u32 {
            let d = backoff(base, retry);
            let full = base * 2u32.pow(retry - 1);
            assert!(d >= full / 2 && d <= full, "retry {retry}: {d:?}");
        }
        assert!(backoff(base, 40) <= MAX_BACKOFF);
    }
}
