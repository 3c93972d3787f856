//! Keeps one [`TokenCell`] usable for months: renews the token before it expires (when less
//! than `refresh_margin_ms` or a tenth of its life is left) and at once after a 401, validates it
//! at start and every `validate_interval_ms` (Twitch's rule), and says what is wrong when
//! something is (revoked, scopes missing), counted and logged once per change, never with the
//! token. Failed renewals back off exponentially (`retry_backoff_ms` .. `retry_backoff_max_ms`)
//! so a broken OAuth service causes no storm.
//!
//! Sources: the app's client credentials; the bot's refresh token (the newest one is kept in
//! the state store, `platform_state` scope `twitch_tokens`, so a restart after a renewal still
//! works; a refused stored one falls back to the configured one); or a static token an operator
//! gave (validated only).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::metrics::AuthMetrics;
use super::oauth::{OAuthClient, OAuthError};
use super::token::{TokenCell, TokenProblem};
use crate::config::{AuthConfig, Secret};
use crate::store::StateStore;
use crate::twitch::helix::Bearer;

/// Store scope and key of the bot's newest refresh token.
pub const TOKENS_SCOPE: &str = "twitch_tokens";
pub const USER_REFRESH_KEY: &str = "user_refresh";
/// Longest a store write of the refresh token may take.
const STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a token comes from.
#[derive(Debug)]
pub enum Source {
    ClientCredentials,
    Refresh(Arc<RefreshSlot>),
    Static(Secret),
}

/// The bot's refresh token: the configured one, and the newest one (which wins).
#[derive(Debug, Default)]
pub struct RefreshSlot {
    configured: Option<Secret>,
    current: Mutex<Option<Secret>>,
    /// The newest refresh token not yet written to the store.
    unsaved: Mutex<Option<Secret>>,
}

impl RefreshSlot {
    pub fn new(configured: Option<Secret>) -> Arc<RefreshSlot> {
        Arc::new(RefreshSlot {
            configured,
            ..RefreshSlot::default()
        })
    }

    fn current(&self) -> Option<Secret> {
        self.current
            .lock()
            .ok()
            .and_then(|c| c.clone())
            .or_else(|| self.configured.clone())
    }

    /// A new refresh token (a renewal's, or the bot's authorisation callback's).
    pub fn replace(&self, token: Secret) {
        if let Ok(mut current) = self.current.lock() {
            *current = Some(token.clone());
        }
        if let Ok(mut unsaved) = self.unsaved.lock() {
            *unsaved = Some(token);
        }
    }

    pub fn is_set(&self) -> bool {
        self.current().is_some()
    }
}

/// Runs one token's renewals and validations.
pub struct Renewer {
    pub cell: Arc<TokenCell>,
    pub oauth: OAuthClient,
    pub source: Source,
    pub store: Option<Arc<dyn StateStore>>,
    pub config: AuthConfig,
    pub metrics: AuthMetrics,
}

impl Renewer {
    /// Until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        if let Source::Refresh(slot) = &self.source {
            self.load_stored(slot).await;
        }
        if let Source::Static(token) = &self.source {
            self.cell.set_token(token.clone(), None);
        }
        let mut failures: u32 = 0;
        let mut retry_at: Option<Instant> = None;
        let mut renew_at: Option<Instant> = None;
        let mut next_validate = Instant::now();
        let mut logged: Option<TokenProblem> = None;
        let mut tried_configured = false;
        loop {
            if stop.is_cancelled() {
                return;
            }
            let now = Instant::now();
            let rejected = self.cell.take_rejected();
            let renewable = !matches!(self.source, Source::Static(_));
            let due = !self.cell.has_token() || rejected || renew_at.is_some_and(|at| now >= at);
            let waiting_retry = retry_at.is_some_and(|at| now < at);
            if renewable && due && !waiting_retry {
                match self.renew(&mut tried_configured).await {
                    Ok(life) => {
                        failures = 0;
                        retry_at = None;
                        renew_at = life.map(|life| now + life - margin(&self.config, life));
                        next_validate = Instant::now();
                    }
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        retry_at = Some(Instant::now() + self.backoff(failures));
                        self.renewal_failed(&e);
                    }
                }
            } else if !renewable && rejected {
                next_validate = now;
            }
            if let Source::Refresh(slot) = &self.source {
                self.save_refresh(slot).await;
            }
            if Instant::now() >= next_validate && self.cell.has_token() {
                next_validate = self.validate(&mut renew_at).await;
            }
            self.report(&mut logged);
            let wake = [Some(next_validate), retry_at, renew_at]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.cell.sleep_until(wake.into()) => {}
            }
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        let base = self.config.retry_backoff_ms;
        let ms = base
            .saturating_mul(1u64 << failures.saturating_sub(1).min(20))
            .min(self.config.retry_backoff_max_ms);
        let jitter = rand::random::<u64>() % (ms / 4 + 1);
        Duration::from_millis(ms - ms / 8 + jitter)
    }

    async fn load_stored(&self, slot: &RefreshSlot) {
        let Some(store) = &self.store else { return };
        match tokio::time::timeout(
            STORE_TIMEOUT,
            store.get_state(TOKENS_SCOPE, USER_REFRESH_KEY),
        )
        .await
        {
            Ok(Ok(Some(stored))) if !stored.is_empty() => {
                if let Ok(mut current) = slot.current.lock() {
                    *current = Some(Secret::new(stored));
                }
                tracing::info!("using the bot's newest refresh token from the state store");
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the stored refresh token; using the configured one")
            }
            Err(_) => tracing::warn!(
                "reading the stored refresh token timed out; using the configured one"
            ),
        }
    }

    /// Writes the newest refresh token to the store (retried at every turn until it lands).
    async fn save_refresh(&self, slot: &RefreshSlot) {
        let Some(store) = &self.store else { return };
        let Some(token) = slot.unsaved.lock().ok().and_then(|u| u.clone()) else {
            return;
        };
        let write = store.put_state(TOKENS_SCOPE, USER_REFRESH_KEY, token.expose());
        match tokio::time::timeout(STORE_TIMEOUT, write).await {
            Ok(Ok(())) => {
                if let Ok(mut unsaved) = slot.unsaved.lock() {
                    if unsaved.as_ref() == Some(&token) {
                        *unsaved = None;
                    }
                }
            }
            Ok(Err(e)) => {
                self.metrics.store_failures.inc();
                tracing::warn!(error = %e, "cannot store the new refresh token yet; retrying");
            }
            Err(_) => {
                self.metrics.store_failures.inc();
                tracing::warn!("storing the new refresh token timed out; retrying");
            }
        }
    }

    /// Gets a new token; its life.
    async fn renew(&self, tried_configured: &mut bool) -> Result<Option<Duration>, OAuthError> {
        let kind = self.cell.kind.as_str();
        let issued = match &self.source {
            Source::ClientCredentials => self.oauth.client_credentials().await,
            Source::Refresh(slot) => {
                let Some(refresh) = slot.current() else {
                    return Err(OAuthError::Refused {
                        status: 0,
                        message: "no refresh token".into(),
                    });
                };
                let result = self.oauth.refresh(&refresh).await;
                match (&result, &slot.configured) {
                    // The stored token was refused: the operator may have given a new one.
                    (Err(e), Some(configured))
                        if e.is_refusal() && *configured != refresh && !*tried_configured =>
                    {
                        *tried_configured = true;
                        tracing::warn!(
                            "the stored refresh token was refused; trying the configured one"
                        );
                        self.oauth.refresh(configured).await
                    }
                    _ => result,
                }
            }
            Source::Static(_) => return Ok(None),
        };
        let outcome = match &issued {
            Ok(_) => "ok",
            Err(e) if e.is_refusal() => "refused",
            Err(_) => "failed",
        };
        self.metrics.renewal(kind, outcome);
        let issued = issued?;
        if let (Source::Refresh(slot), Some(refresh)) = (&self.source, issued.refresh.clone()) {
            slot.replace(refresh);
            *tried_configured = false;
        }
        self.cell.set_token(issued.access, issued.expires_in);
        tracing::info!(
            token = kind,
            expires_in_s = issued.expires_in.map(|d| d.as_secs()),
            "Twitch token renewed"
        );
        Ok(issued.expires_in)
    }

    fn renewal_failed(&self, e: &OAuthError) {
        let kind = self.cell.kind.as_str();
        let expired = self.cell.expires_at().is_none_or(|at| at <= Instant::now());
        if e.is_refusal() {
            self.cell
                .set_problem(Some(TokenProblem::Revoked(e.to_string())));
        } else if expired {
            self.cell
                .set_problem(Some(TokenProblem::Expired(e.to_string())));
        }
        self.cell.set_renewal_failing(Some(e.to_string()));
        tracing::debug!(token = kind, error = %e, "Twitch token renewal failed");
    }

    /// Validates the current token; when to validate next.
    async fn validate(&self, renew_at: &mut Option<Instant>) -> Instant {
        let kind = self.cell.kind.as_str();
        let interval = Duration::from_millis(self.config.validate_interval_ms);
        let Some(token) = self.cell.token() else {
            return Instant::now() + interval;
        };
        match self.oauth.validate(&token).await {
            Ok(v) => {
                self.metrics.validation(kind, "ok");
                let life = v.expires_in;
                self.cell.set_validated(v.user_id, v.login, v.scopes, life);
                if let (Some(life), false) = (life, matches!(self.source, Source::Static(_))) {
                    let due = Instant::now() + life - margin(&self.config, life);
                    *renew_at = Some(renew_at.map_or(due, |at| at.min(due)));
                }
                if matches!(
                    self.cell.problem(),
                    Some(TokenProblem::Revoked(_) | TokenProblem::Expired(_))
                ) {
                    self.cell.set_problem(None);
                }
                Instant::now() + interval
            }
            Err(e) if e.is_refusal() => {
                self.metrics.validation(kind, "invalid");
                match self.source {
                    Source::Static(_) => {
                        self.cell
                            .set_problem(Some(TokenProblem::Revoked(format!("validate: {e}"))));
                        Instant::now() + interval
                    }
                    _ => {
                        // Renew at once (the next turn sees no token).
                        self.cell.clear();
                        Instant::now()
                    }
                }
            }
            Err(e) => {
                self.metrics.validation(kind, "failed");
                tracing::debug!(token = kind, error = %e, "token validation failed; retrying");
                Instant::now()
                    + interval.min(Duration::from_millis(self.config.retry_backoff_max_ms))
            }
        }
    }

    /// Counts and logs a change of problem, once.
    fn report(&self, logged: &mut Option<TokenProblem>) {
        let problem = self.cell.problem();
        if problem == *logged {
            return;
        }
        let kind = self.cell.kind.as_str();
        match &problem {
            Some(p) => {
                self.metrics.problem(kind, p.label());
                tracing::error!(token = kind, problem = %p.describe(), "Twitch token problem");
            }
            None => tracing::info!(token = kind, "Twitch token is usable again"),
        }
        self.metrics
            .set_valid(kind, problem.is_none() && self.cell.has_token());
        *logged = problem;
    }
}

/// How long before the end of its life a token is renewed.
fn margin(config: &AuthConfig, life: Duration) -> Duration {
    Duration::from_millis(config.refresh_margin_ms).min(life / 10)
}

/// The scopes a user token needs for the configured paths.
pub fn needed_user_scopes(config: &crate::config::Config) -> Vec<String> {
    use crate::config::{EventSubTransport, Ingest, SendVia};
    let t = &config.twitch;
    let mut scopes = Vec::new();
    let mut need = |s: &str| {
        if !scopes.iter().any(|x| x == s) {
            scopes.push(s.to_string());
        }
    };
    if t.ingest == Ingest::Eventsub {
        need("user:read:chat");
        if t.eventsub.transport != EventSubTransport::Websocket {
            need("user:bot");
        }
    }
    if t.send_via == SendVia::Helix {
        need("user:write:chat");
        if config.manages_tokens() {
            need("user:bot");
        }
    }
    if t.uses_irc() && config.manages_tokens() {
        need("chat:read");
        if t.send_via == SendVia::Irc {
            need("chat:edit");
        }
    }
    if config.helix_enabled() {
        need("moderator:manage:banned_users");
        need("moderator:manage:chat_messages");
    }
    scopes
}
