//! Onboarding: the broadcaster's `channel:bot` authorisation (so the bot reads chat with the
//! app token and sends with the Chat Bot badge), and the bot account's own authorisation (its
//! refresh token), both through Twitch's authorization code flow.
//!
//! [`Onboarding::authorize`] answers the link to give the user: Twitch's `/authorize` with the
//! scopes, this service's `twitch.auth.redirect_url` and a fresh `state` (32 random bytes,
//! single use, valid `authorize_ttl_ms`; at most `max_pending_authorizations` wait, the oldest
//! forgotten first). Twitch sends the user back to `GET /oauth/callback?code&scope&state`;
//! [`Onboarding::callback`] checks the state (unknown, used, expired or missing: refused), the
//! user's refusal, exchanges the code, validates the token and checks it is the expected
//! account with the needed scopes. A channel grant is recorded (memory and store scope
//! `twitch_grants`; the broadcaster's token itself is not kept); the bot's refresh token
//! becomes the one its token manager renews with (and the store keeps).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use tokio::sync::watch;

use super::directory::Directory;
use super::manager::RefreshSlot;
use super::metrics::AuthMetrics;
use super::oauth::{OAuthClient, OAuthError};
use super::token::TokenCell;
use crate::config::is_login;
use crate::store::StateStore;

/// Store scope of channel authorisations (broadcaster id -> granted scopes).
pub const GRANTS_SCOPE: &str = "twitch_grants";
/// What a broadcaster grants.
pub const CHANNEL_SCOPES: &[&str] = &["channel:bot"];
const STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// Whose authorisation a link asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeFor {
    /// A broadcaster (by login) granting `channel:bot`.
    Channel(String),
    /// The bot account itself (its refresh token).
    Bot,
}

impl AuthorizeFor {
    fn label(&self) -> &'static str {
        match self {
            AuthorizeFor::Channel(_) => "channel",
            AuthorizeFor::Bot => "bot",
        }
    }
}

#[derive(Debug)]
struct Pending {
    what: AuthorizeFor,
    expires: Instant,
}

/// A link to hand to the user.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Link {
    pub url: String,
    pub scopes: Vec<String>,
    pub expires_in_s: u64,
}

/// What a callback recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Granted {
    pub kind: &'static str,
    pub login: String,
    pub user_id: String,
    pub scopes: Vec<String>,
}

/// The query of `GET /oauth/callback`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// Why onboarding refused.
#[derive(Debug, thiserror::Error)]
pub enum OnboardError {
    #[error("authorisation links are off: {0}")]
    NotConfigured(&'static str),
    #[error("`{0}` is not a channel login (lowercase a-z, 0-9, _; 1-25 chars)")]
    NotALogin(String),
    #[error("unknown, used or missing state: this link was not issued by this service or was already used")]
    BadState,
    #[error("this authorisation link expired; ask for a new one")]
    Expired,
    #[error("the user did not authorise: {0}")]
    Denied(String),
    #[error("authorised as `{got}`, but the link was for `{expected}`")]
    WrongUser { expected: String, got: String },
    #[error("the authorisation lacks {0}")]
    MissingScopes(String),
    #[error("Twitch's OAuth service: {0}")]
    OAuth(#[from] OAuthError),
}

impl OnboardError {
    pub fn label(&self) -> &'static str {
        match self {
            OnboardError::NotConfigured(_) => "not_configured",
            OnboardError::NotALogin(_) => "bad_login",
            OnboardError::BadState => "bad_state",
            OnboardError::Expired => "expired",
            OnboardError::Denied(_) => "denied",
            OnboardError::WrongUser { .. } => "wrong_user",
            OnboardError::MissingScopes(_) => "missing_scopes",
            OnboardError::OAuth(_) => "oauth_failed",
        }
    }
}

pub struct Onboarding {
    pub(super) oauth: OAuthClient,
    pub(super) redirect: String,
    pub(super) ttl: Duration,
    pub(super) max_pending: usize,
    pending: Mutex<(HashMap<String, Pending>, VecDeque<String>)>,
    grants: DashMap<String, String>,
    pub(super) store: Option<Arc<dyn StateStore>>,
    pub(super) directory: Arc<Directory>,
    pub(super) bot_refresh: Option<Arc<RefreshSlot>>,
    pub(super) bot_cell: Option<Arc<TokenCell>>,
    pub(super) bot_login: String,
    pub(super) bot_scopes: Vec<String>,
    pub(super) has_secret: bool,
    changes: watch::Sender<u64>,
    pub(super) metrics: AuthMetrics,
}

impl std::fmt::Debug for Onboarding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Onboarding")
            .field("grants", &self.grants.len())
            .finish_non_exhaustive()
    }
}

impl Onboarding {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        oauth: OAuthClient,
        config: &crate::config::AuthConfig,
        store: Option<Arc<dyn StateStore>>,
        directory: Arc<Directory>,
        bot_refresh: Option<Arc<RefreshSlot>>,
        bot_cell: Option<Arc<TokenCell>>,
        bot_login: String,
        bot_scopes: Vec<String>,
        has_secret: bool,
        metrics: AuthMetrics,
    ) -> Onboarding {
        Onboarding {
            oauth,
            redirect: config.redirect_url.clone(),
            ttl: Duration::from_millis(config.authorize_ttl_ms),
            max_pending: config.max_pending_authorizations.max(1),
            pending: Mutex::new((HashMap::new(), VecDeque::new())),
            grants: DashMap::new(),
            store,
            directory,
            bot_refresh,
            bot_cell,
            bot_login,
            bot_scopes,
            has_secret,
            changes: watch::Sender::new(0),
            metrics,
        }
    }

    /// Loads the recorded channel grants (at start-up).
    pub async fn load(&self) {
        let Some(store) = &self.store else { return };
        match tokio::time::timeout(STORE_TIMEOUT, store.list_state(GRANTS_SCOPE)).await {
            Ok(Ok(rows)) => {
                for (id, scopes) in rows {
                    self.grants.insert(id, scopes);
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot load the recorded channel authorisations")
            }
            Err(_) => tracing::warn!("loading the recorded channel authorisations timed out"),
        }
    }

    /// Whether the broadcaster authorised `channel:bot`.
    pub fn has_channel_bot(&self, broadcaster_id: &str) -> bool {
        self.grants
            .get(broadcaster_id)
            .is_some_and(|s| s.split(' ').any(|x| x == "channel:bot"))
    }

    /// Marks a channel as authorised (tests, and operators whose grant predates the store).
    pub fn record_grant(&self, broadcaster_id: &str, scopes: &str) {
        self.grants
            .insert(broadcaster_id.to_string(), scopes.to_string());
        self.changes.send_modify(|g| *g += 1);
    }

    /// Bumped at every new grant.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// A fresh link for `what`.
    pub fn authorize(&self, what: AuthorizeFor) -> Result<Link, OnboardError> {
        if self.redirect.is_empty() {
            return Err(OnboardError::NotConfigured("set twitch.auth.redirect_url"));
        }
        if !self.has_secret {
            return Err(OnboardError::NotConfigured(
                "the code exchange needs the client secret (FIREHOSE_TWITCH_CLIENT_SECRET)",
            ));
        }
        if let AuthorizeFor::Channel(login) = &what {
            if !is_login(login) {
                return Err(OnboardError::NotALogin(login.clone()));
            }
        }
        if what == AuthorizeFor::Bot && self.bot_refresh.is_none() {
            return Err(OnboardError::NotConfigured(
                "the bot's tokens are not managed (no client secret)",
            ));
        }
        let scopes: Vec<String> = match &what {
            AuthorizeFor::Channel(_) => CHANNEL_SCOPES.iter().map(|s| s.to_string()).collect(),
            AuthorizeFor::Bot => self.bot_scopes.clone(),
        };
        let state = new_state();
        let scope_refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
        let url = self
            .oauth
            .authorize_url(&self.redirect, &scope_refs, &state);
        let now = Instant::now();
        if let Ok(mut guard) = self.pending.lock() {
            let (map, order) = &mut *guard;
            while map.len() >= self.max_pending {
                let Some(oldest) = order.pop_front() else {
                    break;
                };
                map.remove(&oldest);
            }
            map.insert(
                state.clone(),
                Pending {
                    what,
                    expires: now + self.ttl,
                },
            );
            order.push_back(state);
        }
        Ok(Link {
            url,
            scopes,
            expires_in_s: self.ttl.as_secs(),
        })
    }

    fn take_state(&self, state: &str) -> Result<AuthorizeFor, OnboardError> {
        let Ok(mut guard) = self.pending.lock() else {
            return Err(OnboardError::BadState);
        };
        let (map, order) = &mut *guard;
        let pending = map.remove(state).ok_or(OnboardError::BadState)?;
        order.retain(|s| s != state);
        if pending.expires <= Instant::now() {
            return Err(OnboardError::Expired);
        }
        Ok(pending.what)
    }

    /// Handles Twitch's redirect back.
    pub async fn callback(&self, params: CallbackParams) -> Result<Granted, OnboardError> {
        let result = self.handle_callback(params).await;
        match &result {
            Ok(granted) => self.metrics.authorization(granted.kind, "granted"),
            Err(e) => self.metrics.authorization("any", e.label()),
        }
        result
    }

    async fn handle_callback(&self, params: CallbackParams) -> Result<Granted, OnboardError> {
        let state = params.state.as_deref().filter(|s| !s.is_empty());
        let what = self.take_state(state.ok_or(OnboardError::BadState)?)?;
        if let Some(error) = params.error {
            let why = params.error_description.unwrap_or(error);
            return Err(OnboardError::Denied(why.chars().take(200).collect()));
        }
        let code = params
            .code
            .filter(|c| !c.is_empty())
            .ok_or_else(|| OnboardError::Denied("no code in the callback".into()))?;
        let issued = self.oauth.exchange_code(&code, &self.redirect).await?;
        let validated = self.oauth.validate(&issued.access).await?;
        let login = validated.login.clone().unwrap_or_default();
        let user_id = validated.user_id.clone().unwrap_or_default();
        let wanted: Vec<String> = match &what {
            AuthorizeFor::Channel(_) => CHANNEL_SCOPES.iter().map(|s| s.to_string()).collect(),
            AuthorizeFor::Bot => self.bot_scopes.clone(),
        };
        let missing: Vec<String> = wanted
            .iter()
            .filter(|s| !validated.scopes.contains(s))
            .cloned()
            .collect();
        match &what {
            AuthorizeFor::Channel(expected) if *expected != login => {
                return Err(OnboardError::WrongUser {
                    expected: expected.clone(),
                    got: login,
                })
            }
            AuthorizeFor::Bot
                if !self.bot_login.starts_with("justinfan") && self.bot_login != login =>
            {
                return Err(OnboardError::WrongUser {
                    expected: self.bot_login.clone(),
                    got: login,
                })
            }
            _ => {}
        }
        if !missing.is_empty() {
            return Err(OnboardError::MissingScopes(missing.join(", ")));
        }
        match &what {
            AuthorizeFor::Channel(_) => {
                let scopes = validated.scopes.join(" ");
                self.directory.insert(&login, &user_id);
                if let Some(store) = &self.store {
                    let write = store.put_state(GRANTS_SCOPE, &user_id, &scopes);
                    match tokio::time::timeout(STORE_TIMEOUT, write).await {
                        Ok(Ok(())) => {}
                        _ => {
                            tracing::warn!(channel = %login, "the channel's authorisation could not be stored; it holds until a restart")
                        }
                    }
                }
                self.record_grant(&user_id, &scopes);
                tracing::info!(channel = %login, "the broadcaster authorised channel:bot");
            }
            AuthorizeFor::Bot => {
                let (Some(slot), Some(refresh)) = (&self.bot_refresh, issued.refresh.clone())
                else {
                    return Err(OnboardError::NotConfigured(
                        "no refresh token came with the bot's authorisation",
                    ));
                };
                slot.replace(refresh);
                if let Some(cell) = &self.bot_cell {
                    cell.set_token(issued.access.clone(), issued.expires_in);
                    cell.set_validated(
                        validated.user_id.clone(),
                        validated.login.clone(),
                        validated.scopes.clone(),
                        validated.expires_in,
                    );
                    // Wake its manager: it stores the new refresh token and takes over.
                    cell.wake();
                }
                tracing::info!(bot = %login, "the bot account authorised the application");
            }
        }
        Ok(Granted {
            kind: what.label(),
            login,
            user_id,
            scopes: validated.scopes,
        })
    }
}

/// 32 random bytes, hex.
fn new_state() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}
