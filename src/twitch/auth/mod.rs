//! Twitch tokens that renew themselves, who is who, and onboarding a channel.
//!
//! - [`token`]: [`TokenCell`], one access token as the service sees it (a Helix `Bearer`).
//! - [`manager`]: renews and validates a token for months (client credentials for the app
//!   token; the refresh token, kept newest in the store, for the bot's user token; or just
//!   validation for a static token).
//! - [`oauth`]: the calls to Twitch's OAuth service.
//! - [`directory`]: logins to user ids (Helix `GET /users`, cached in the store).
//! - [`onboarding`]: authorisation links and the OAuth callback (a broadcaster's
//!   `channel:bot`, the bot's own refresh token).
//! - [`login`]: "log in with Twitch" for the web console (who the user is, what they
//!   moderate).
//! - [`metrics`]: `twitch_token_*`, `twitch_authorizations_total`.
//!
//! [`Auth`] bundles them for the rest of the service: the bearers that Helix calls, the IRC
//! login, EventSub and the sender use, readiness (a revoked token or a missing scope is named
//! in `/readyz`), and what `/v1/channels` shows of each channel's authorisation.

pub mod directory;
pub mod login;
pub mod manager;
pub mod metrics;
pub mod oauth;
pub mod onboarding;
pub mod token;

pub use directory::Directory;
pub use metrics::AuthMetrics;
pub use onboarding::{AuthorizeFor, CallbackParams, Granted, Link, OnboardError, Onboarding};
pub use token::{TokenCell, TokenKind, TokenProblem, TokenView};

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::store::StateStore;
use crate::twitch::helix::call::{HelixCaller, HelixError};
use crate::twitch::helix::Bearer;
use manager::{needed_user_scopes, RefreshSlot, Renewer, Source};
use oauth::OAuthClient;

/// The bot account's scopes asked for by `GET /v1/bot/authorize`, besides what the
/// configured paths need.
const BOT_BASE_SCOPES: &[&str] = &["user:read:chat", "user:write:chat", "user:bot"];
/// Asked for as well when Helix moderation is on: the raid defence's chat-mode steps (Shield
/// Mode, `PATCH /chat/settings`). Not required of a token (a channel without the defence never
/// needs them); a step Twitch refuses for a missing scope is reported back and skipped.
pub const DEFENCE_SCOPES: &[&str] = &[
    "moderator:manage:shield_mode",
    "moderator:manage:chat_settings",
];

/// What a channel's authorisation looks like (for `/v1/channels`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ChannelAuthorization {
    /// The channel's user id, once known.
    pub user_id: Option<String>,
    /// The broadcaster authorised `channel:bot`.
    pub channel_bot: bool,
    /// The bot is a moderator there (or is the broadcaster).
    pub moderator: bool,
    /// What is missing for the app-token path (empty: nothing).
    pub missing: Vec<String>,
}

/// Tokens, directory and onboarding of one service.
pub struct Auth {
    pub app: Option<Arc<TokenCell>>,
    pub user: Option<Arc<TokenCell>>,
    pub directory: Arc<Directory>,
    pub onboarding: Arc<Onboarding>,
    /// The console's Twitch login, with `console.twitch_redirect_url`.
    pub console_login: Option<login::ConsoleLogin>,
    pub metrics: AuthMetrics,
    /// Whether the user token is needed by the configured paths (else its absence is fine).
    user_needed: bool,
    bot_login: String,
    callers: Vec<Arc<HelixCaller>>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("app", &self.app.as_ref().map(|c| c.view()))
            .field("user", &self.user.as_ref().map(|c| c.view()))
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// Builds the token cells and starts their managers (they fetch, validate and renew in
    /// the background; readiness says when a token is not there yet). Must run in a runtime.
    pub fn start(
        config: &Config,
        store: Option<Arc<dyn StateStore>>,
        metrics: AuthMetrics,
        stop: CancellationToken,
    ) -> Result<Auth, reqwest::Error> {
        let a = &config.twitch.auth;
        let oauth = OAuthClient::new(
            &a.oauth_url,
            &config.helix.client_id,
            config.secrets.client_secret.clone(),
            Duration::from_millis(a.request_timeout_ms),
        )?;
        let managed = config.manages_tokens();
        let needed = needed_user_scopes(config);
        let mut tasks = Vec::new();
        let mut spawn = |cell: &Arc<TokenCell>, source: Source| {
            let renewer = Renewer {
                cell: Arc::clone(cell),
                oauth: oauth.clone(),
                source,
                store: store.clone(),
                config: a.clone(),
                metrics: metrics.clone(),
            };
            tasks.push(tokio::spawn(renewer.run(stop.clone())));
        };
        let app = managed.then(|| Arc::new(TokenCell::new(TokenKind::App, Vec::new())));
        if let Some(cell) = &app {
            spawn(cell, Source::ClientCredentials);
        }
        let refresh = managed.then(|| RefreshSlot::new(config.secrets.refresh_token.clone()));
        let user = match (&refresh, config.user_token()) {
            (Some(slot), _) => {
                let cell = Arc::new(TokenCell::new(TokenKind::User, needed.clone()));
                spawn(&cell, Source::Refresh(Arc::clone(slot)));
                Some(cell)
            }
            (None, Some(token)) if !config.helix.client_id.is_empty() => {
                let raw = token.expose().trim();
                let raw = crate::config::Secret::new(raw.strip_prefix("oauth:").unwrap_or(raw));
                let cell = Arc::new(TokenCell::new(TokenKind::User, needed.clone()));
                spawn(&cell, Source::Static(raw));
                Some(cell)
            }
            _ => None,
        };
        let user_needed = user_token_needed(config);
        let directory = Arc::new(Directory::new(store.clone()));
        let mut bot_scopes: Vec<String> = BOT_BASE_SCOPES.iter().map(|s| s.to_string()).collect();
        let defence: &[&str] = if config.helix_enabled() {
            DEFENCE_SCOPES
        } else {
            &[]
        };
        let defence = defence.iter().map(|s| s.to_string());
        for scope in needed.iter().cloned().chain(defence) {
            if !bot_scopes.contains(&scope) {
                bot_scopes.push(scope);
            }
        }
        let console_login = login::ConsoleLogin::new(config, oauth.clone(), metrics.clone())?;
        let onboarding = Arc::new(Onboarding::new(
            oauth,
            a,
            store,
            Arc::clone(&directory),
            refresh,
            user.clone(),
            config.twitch.login.clone(),
            bot_scopes,
            config.secrets.client_secret.is_some(),
            metrics.clone(),
        ));
        let mut callers = Vec::new();
        for cell in app.iter().chain(user.iter()) {
            let bearer: Arc<dyn Bearer> = cell.clone();
            if let Ok(caller) = HelixCaller::new(&config.helix, bearer, stop.clone()) {
                callers.push(Arc::new(caller));
            }
        }
        Ok(Auth {
            app,
            user,
            directory,
            onboarding,
            console_login,
            metrics,
            user_needed,
            bot_login: config.twitch.login.clone(),
            callers,
            tasks: std::sync::Mutex::new(tasks),
        })
    }

    /// Waits (up to `deadline`) for the token managers to end once the stop token fired.
    pub async fn stopped(&self, deadline: Duration) {
        let tasks: Vec<JoinHandle<()>> = match self.tasks.lock() {
            Ok(mut tasks) => tasks.drain(..).collect(),
            Err(poisoned) => poisoned.into_inner().drain(..).collect(),
        };
        let _ = tokio::time::timeout(deadline, futures::future::join_all(tasks)).await;
    }

    /// Loads what the store knows (user ids, channel grants).
    pub async fn load(&self) {
        self.directory.load().await;
        self.onboarding.load().await;
    }

    pub fn app_bearer(&self) -> Option<Arc<dyn Bearer>> {
        self.app.clone().map(|c| c as Arc<dyn Bearer>)
    }

    pub fn user_bearer(&self) -> Option<Arc<dyn Bearer>> {
        self.user.clone().map(|c| c as Arc<dyn Bearer>)
    }

    /// The bot's user id: from its validated user token, else from the directory.
    pub fn bot_user_id(&self) -> Option<String> {
        self.user
            .as_ref()
            .and_then(|c| c.user_id())
            .or_else(|| self.directory.id(&self.bot_login))
    }

    pub fn bot_login(&self) -> &str {
        &self.bot_login
    }

    /// Resolves logins (and the bot's own) to ids through Helix, with the app token if there
    /// is one, else the user token.
    pub async fn resolve(&self, logins: &[String]) -> Result<(), HelixError> {
        let Some(caller) = self.callers.first() else {
            return Err(HelixError::NoToken);
        };
        let mut all: Vec<String> = logins.to_vec();
        if crate::config::is_login(&self.bot_login) && !self.bot_login.starts_with("justinfan") {
            all.push(self.bot_login.clone());
        }
        self.directory.resolve(caller, &all).await
    }

    /// Waits until every present token has been obtained once (or `deadline`).
    pub async fn wait_tokens(&self, deadline: Duration) {
        let until = tokio::time::Instant::now() + deadline;
        for cell in self.app.iter().chain(self.user.iter()) {
            let mut changes = cell.generation();
            while !cell.has_token() && cell.problem().is_none() {
                if tokio::time::timeout_at(until, changes.changed())
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }

    /// What makes the service not ready, and what is only degraded.
    pub fn readiness(&self) -> (Vec<String>, Vec<String>) {
        let mut reasons = Vec::new();
        let mut degraded = Vec::new();
        for cell in self.app.iter().chain(self.user.iter()) {
            let kind = cell.kind.as_str();
            if let Some(problem) = cell.problem() {
                reasons.push(format!("twitch {kind} token: {}", problem.describe()));
            } else if !cell.has_token() {
                reasons.push(format!("twitch {kind} token: not obtained yet"));
            } else if let Some(why) = cell.renewal_failing() {
                degraded.push(format!("twitch {kind} token: renewal failing ({why})"));
            }
        }
        if self.user.is_none() && self.user_needed {
            reasons.push(
                "twitch user token: none configured (FIREHOSE_TWITCH_REFRESH_TOKEN or GET /v1/bot/authorize)"
                    .to_string(),
            );
        }
        (reasons, degraded)
    }

    /// A channel's authorisation for the app-token path.
    pub fn channel_authorization(&self, login: &str, moderator: bool) -> ChannelAuthorization {
        let user_id = self.directory.id(login);
        let channel_bot = user_id
            .as_deref()
            .is_some_and(|id| self.onboarding.has_channel_bot(id));
        let moderator = moderator || login == self.bot_login;
        let missing = if channel_bot || moderator {
            Vec::new()
        } else {
            vec!["channel:bot from the broadcaster (GET /v1/channels/{login}/authorize), or the bot made a moderator".to_string()]
        };
        ChannelAuthorization {
            user_id,
            channel_bot,
            moderator,
            missing,
        }
    }

    /// Token views for `/v1` JSON (no token in them).
    pub fn views(&self) -> Vec<TokenView> {
        self.app
            .iter()
            .chain(self.user.iter())
            .map(|c| c.view())
            .collect()
    }
}

/// The configured paths that cannot work without the bot's user token.
fn user_token_needed(config: &Config) -> bool {
    use crate::config::{EventSubTransport, Ingest, SendVia};
    let t = &config.twitch;
    (t.ingest == Ingest::Eventsub && t.eventsub.transport == EventSubTransport::Websocket)
        || (t.send_via == SendVia::Helix && !config.manages_tokens())
        || config.helix_enabled() && config.secrets.helix_token.is_some()
}
