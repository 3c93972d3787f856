//! "Log in with Twitch" for the web console: a streamer or a moderator proves who they are
//! through Twitch's authorization code flow, and Twitch says which channels they moderate.
//!
//! [`ConsoleLogin::link`] answers Twitch's `/authorize` URL (scope
//! `user:read:moderated_channels`, `console.twitch_redirect_url`, a fresh one-use `state` valid
//! `twitch.auth.authorize_ttl_ms`; at most `max_pending_authorizations` wait, oldest forgotten
//! first). The console also puts that state in a cookie, so that [`ConsoleLogin::finish`] only
//! accepts a callback in the browser that started the login (no login CSRF). `finish` checks
//! the state, exchanges the code, validates the token (Twitch names the user), and reads the
//! user's moderated channels (Helix `GET /moderation/channels`, 100 a page, at most
//! [`MAX_MODERATED_PAGES`] pages). The user's token is used for those calls, then revoked
//! (best effort): the console keeps who the user is and their channels, never the token.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::metrics::AuthMetrics;
use super::oauth::{OAuthClient, OAuthError};
use super::onboarding::CallbackParams;
use crate::config::{is_login, Config, Secret};

/// What the console asks of the user: only the list of channels they moderate.
pub const LOGIN_SCOPES: &[&str] = &["user:read:moderated_channels"];
/// Pages of moderated channels read (100 each): 1,000 channels.
pub const MAX_MODERATED_PAGES: usize = 10;

/// Who logged in, and the channels they moderate (their own is `login`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwitchUser {
    pub login: String,
    pub user_id: String,
    pub moderated: Vec<String>,
}

/// Why a Twitch login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("this login link was not issued by this service, was already used, or was started in another browser")]
    BadState,
    #[error("this login link expired; log in again")]
    Expired,
    #[error("Twitch did not authorise the login: {0}")]
    Denied(String),
    #[error("Twitch did not say who you are")]
    NoIdentity,
    #[error("Twitch's OAuth service: {0}")]
    OAuth(#[from] OAuthError),
    #[error("Twitch's moderated channels list: {0}")]
    Helix(String),
}

impl LoginError {
    pub fn label(&self) -> &'static str {
        match self {
            LoginError::BadState => "bad_state",
            LoginError::Expired => "expired",
            LoginError::Denied(_) => "denied",
            LoginError::NoIdentity => "no_identity",
            LoginError::OAuth(_) => "oauth_failed",
            LoginError::Helix(_) => "helix_failed",
        }
    }
}

/// Nonces used, and the same with their expiry (unix seconds), oldest first.
type UsedNonces = (HashSet<String>, VecDeque<(u64, String)>);

/// The console's Twitch login.
pub struct ConsoleLogin {
    oauth: OAuthClient,
    http: reqwest::Client,
    helix_base: String,
    redirect: String,
    ttl: Duration,
    /// Signs the states (made at start; a restart voids the logins under way).
    key: [u8; 32],
    max_used: usize,
    /// Nonces of states already used, with their expiry (unix seconds), oldest first.
    used: Mutex<UsedNonces>,
    metrics: AuthMetrics,
}

impl std::fmt::Debug for ConsoleLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleLogin")
            .field("redirect", &self.redirect)
            .finish_non_exhaustive()
    }
}

/// One page of "Get Moderated Channels" (its entries are `twitch_api`'s type).
#[derive(serde::Deserialize)]
struct ModeratedPage {
    data: Vec<twitch_api::helix::moderation::get_moderated_channels::ModeratedChannel>,
    #[serde(default)]
    pagination: Pagination,
}

#[derive(serde::Deserialize, Default)]
struct Pagination {
    cursor: Option<String>,
}

impl ConsoleLogin {
    /// The login of `config` (None when `console.twitch_redirect_url` is empty).
    pub fn new(
        config: &Config,
        oauth: OAuthClient,
        metrics: AuthMetrics,
    ) -> Result<Option<ConsoleLogin>, reqwest::Error> {
        let redirect = config.console.twitch_redirect_url.clone();
        if redirect.is_empty() {
            return Ok(None);
        }
        let timeout = Duration::from_millis(config.helix.request_timeout_ms);
        let http = super::oauth::http_client(timeout)?;
        let a = &config.twitch.auth;
        Ok(Some(ConsoleLogin {
            oauth,
            http,
            helix_base: config.helix.base_url.trim_end_matches('/').to_string(),
            redirect,
            ttl: Duration::from_millis(a.authorize_ttl_ms),
            key: rand::random(),
            max_used: a.max_pending_authorizations,
            used: Mutex::new((HashSet::new(), VecDeque::new())),
            metrics,
        }))
    }

    /// Twitch's authorisation URL and the state it carries (for the browser's cookie too).
    pub fn link(&self) -> (String, String) {
        let expires = unix_s() + self.ttl.as_secs().max(1);
        let nonce = hex::encode(rand::random::<[u8; 16]>());
        let signed = format!("{expires}.{nonce}");
        let state = format!("{signed}.{}", hex::encode(self.sign(&signed)));
        let url = self
            .oauth
            .authorize_url(&self.redirect, LOGIN_SCOPES, &state);
        (url, state)
    }

    fn sign(&self, text: &str) -> Vec<u8> {
        match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(mut mac) => {
                mac.update(text.as_bytes());
                mac.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        }
    }

    /// Handles Twitch's redirect back: `browser_state` is the state cookie of the browser.
    pub async fn finish(
        &self,
        params: CallbackParams,
        browser_state: Option<&str>,
    ) -> Result<TwitchUser, LoginError> {
        let result = self.handle(params, browser_state).await;
        match &result {
            Ok(_) => self.metrics.authorization("console", "granted"),
            Err(e) => self.metrics.authorization("console", e.label()),
        }
        result
    }

    async fn handle(
        &self,
        params: CallbackParams,
        browser_state: Option<&str>,
    ) -> Result<TwitchUser, LoginError> {
        let state = params.state.as_deref().unwrap_or("");
        let same_browser = browser_state
            .is_some_and(|cookie| bool::from(cookie.as_bytes().ct_eq(state.as_bytes())));
        if state.is_empty() || !same_browser {
            return Err(LoginError::BadState);
        }
        self.take_state(state)?;
        if let Some(error) = params.error {
            let why = params.error_description.unwrap_or(error);
            return Err(LoginError::Denied(why.chars().take(200).collect()));
        }
        let code = params
            .code
            .filter(|c| !c.is_empty())
            .ok_or_else(|| LoginError::Denied("no code in the callback".into()))?;
        let issued = self.oauth.exchange_code(&code, &self.redirect).await?;
        let validated = self.oauth.validate(&issued.access).await?;
        let login = validated
            .login
            .map(|l| l.to_ascii_lowercase())
            .filter(|l| is_login(l))
            .ok_or(LoginError::NoIdentity)?;
        let user_id = validated
            .user_id
            .filter(|id| !id.is_empty())
            .ok_or(LoginError::NoIdentity)?;
        let moderated = if validated.scopes.iter().any(|s| s == LOGIN_SCOPES[0]) {
            self.moderated(&issued.access, &user_id).await
        } else {
            Ok(Vec::new())
        };
        if let Err(e) = self.oauth.revoke(&issued.access).await {
            tracing::debug!(error = %e, "the console login's token could not be revoked");
        }
        let moderated = moderated?;
        Ok(TwitchUser {
            login,
            user_id,
            moderated,
        })
    }

    /// Checks a state's signature and expiry, and uses it up.
    fn take_state(&self, state: &str) -> Result<(), LoginError> {
        let mut parts = state.splitn(3, '.');
        let (Some(expires), Some(nonce), Some(mac)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(LoginError::BadState);
        };
        let Ok(mac) = hex::decode(mac) else {
            return Err(LoginError::BadState);
        };
        let Ok(mut check) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return Err(LoginError::BadState);
        };
        check.update(format!("{expires}.{nonce}").as_bytes());
        if check.verify_slice(&mac).is_err() {
            return Err(LoginError::BadState);
        }
        let expires: u64 = expires.parse().map_err(|_| LoginError::BadState)?;
        let now = unix_s();
        if expires <= now {
            return Err(LoginError::Expired);
        }
        let Ok(mut guard) = self.used.lock() else {
            return Err(LoginError::BadState);
        };
        let (set, order) = &mut *guard;
        while order.front().is_some_and(|(at, _)| *at <= now) || order.len() >= self.max_used {
            if let Some((_, old)) = order.pop_front() {
                set.remove(&old);
            }
        }
        if !set.insert(nonce.to_string()) {
            return Err(LoginError::BadState);
        }
        order.push_back((expires, nonce.to_string()));
        Ok(())
    }

    /// The logins of the channels `user_id` moderates (Helix, with the user's own token).
    async fn moderated(&self, token: &Secret, user_id: &str) -> Result<Vec<String>, LoginError> {
        let mut channels = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_MODERATED_PAGES {
            let mut query = vec![("user_id", user_id.to_string()), ("first", "100".into())];
            if let Some(cursor) = &after {
                query.push(("after", cursor.clone()));
            }
            let response = self
                .http
                .get(format!("{}/moderation/channels", self.helix_base))
                .query(&query)
                .header("Client-Id", self.oauth.client_id())
                .bearer_auth(token.expose())
                .send()
                .await
                .map_err(|e| LoginError::Helix(e.without_url().to_string()))?;
            let status = response.status();
            if !status.is_success() {
                return Err(LoginError::Helix(format!("Helix answered {status}")));
            }
            let page: ModeratedPage = response
                .json()
                .await
                .map_err(|e| LoginError::Helix(format!("answer body: {}", e.without_url())))?;
            channels.extend(
                page.data
                    .into_iter()
                    .map(|c| c.broadcaster_login.to_string().to_ascii_lowercase())
                    .filter(|l| is_login(l)),
            );
            match page.pagination.cursor.filter(|c| !c.is_empty()) {
                Some(cursor) => after = Some(cursor),
                None => break,
            }
        }
        channels.sort();
        channels.dedup();
        Ok(channels)
    }
}

fn unix_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login() -> ConsoleLogin {
        let mut config = Config::default();
        config.console.twitch_redirect_url = "http://127.0.0.1:1/ui/login/twitch/callback".into();
        let oauth = OAuthClient::new("http://127.0.0.1:1", "client", None, Duration::from_secs(1))
            .expect("client");
        let metrics = AuthMetrics::register(&mut prometheus_client::registry::Registry::default());
        ConsoleLogin::new(&config, oauth, metrics)
            .expect("built")
            .expect("configured")
    }

    #[test]
    fn a_state_is_signed_good_once_and_a_forged_one_is_refused() {
        let login = login();
        let (url, state) = login.link();
        assert!(
            url.contains("scope=user%3Aread%3Amoderated_channels"),
            "{url}"
        );
        assert!(login.take_state(&state).is_ok());
        assert!(
            matches!(login.take_state(&state), Err(LoginError::BadState)),
            "used once"
        );
        let (_, other) = login.link();
        let (signed, mac) = other.rsplit_once('.').expect("three parts");
        let later = signed.replacen(signed.split('.').next().expect("expiry"), "99999999999", 1);
        assert!(matches!(
            login.take_state(&format!("{later}.{mac}")),
            Err(LoginError::BadState)
        ));
        for forged in ["", "a.b.c", "1.2", "..", "0.00.zz"] {
            assert!(login.take_state(forged).is_err(), "{forged}");
        }
        let another = super::ConsoleLogin {
            key: [7; 32],
            ..self::login()
        };
        let (_, foreign) = another.link();
        assert!(login.take_state(&foreign).is_err(), "another key's state");
    }

    #[test]
    fn an_expired_state_is_refused() {
        let login = login();
        let expired = format!("{}.{}", unix_s() - 1, "ab".repeat(16));
        let state = format!("{expired}.{}", hex::encode(login.sign(&expired)));
        assert!(matches!(login.take_state(&state), Err(LoginError::Expired)));
    }
}
