//! Calls to Twitch's OAuth service (`twitch.auth.oauth_url`): client credentials, refresh,
//! authorization code exchange and validation, answers parsed with `twitch_oauth2`'s wire types
//! (`TwitchTokenResponse`, `ValidatedToken`). Errors say whether Twitch refused (a human must
//! act: a bad secret, a revoked refresh token) or the call failed (worth retrying); they never
//! carry a token or the secret.

use std::time::Duration;

use reqwest::StatusCode;

use crate::config::Secret;

/// Why an OAuth call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// Twitch answered 400/401/403: the credentials, refresh token or code are not (or no
    /// longer) valid.
    #[error("refused ({status}): {message}")]
    Refused { status: u16, message: String },
    /// Anything else (transport, 5xx, 429, a body that is not Twitch's): retry later.
    #[error("failed: {0}")]
    Failed(String),
}

impl OAuthError {
    pub fn is_refusal(&self) -> bool {
        matches!(self, OAuthError::Refused { .. })
    }
}

/// A fresh token from `/token`.
#[derive(Debug, Clone)]
pub struct Issued {
    pub access: Secret,
    pub refresh: Option<Secret>,
    pub expires_in: Option<Duration>,
}

/// What `/validate` says about a token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validated {
    pub client_id: String,
    pub login: Option<String>,
    pub user_id: Option<String>,
    pub scopes: Vec<String>,
    pub expires_in: Option<Duration>,
}

/// The OAuth client of one application.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    http: reqwest::Client,
    base: String,
    client_id: String,
    secret: Option<Secret>,
}

impl OAuthClient {
    pub fn new(
        base: &str,
        client_id: &str,
        secret: Option<Secret>,
        timeout: Duration,
    ) -> Result<OAuthClient, reqwest::Error> {
        let http = http_client(timeout)?;
        Ok(OAuthClient {
            http,
            base: base.trim_end_matches('/').to_string(),
            client_id: client_id.to_string(),
            secret,
        })
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// `https://id.twitch.tv/oauth2/authorize?...`: the page a user opens to authorise.
    pub fn authorize_url(&self, redirect: &str, scopes: &[&str], state: &str) -> String {
        let mut url = match twitch_oauth2::url::Url::parse(&format!("{}/authorize", self.base)) {
            Ok(url) => url,
            Err(_) => return String::new(),
        };
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", redirect)
            .append_pair("scope", &scopes.join(" "))
            .append_pair("state", state)
            .append_pair("force_verify", "true");
        url.to_string()
    }

    fn secret(&self) -> Result<&str, OAuthError> {
        self.secret
            .as_ref()
            .map(Secret::expose)
            .ok_or_else(|| OAuthError::Failed("no client secret configured".into()))
    }

    /// An app access token (client credentials).
    pub async fn client_credentials(&self) -> Result<Issued, OAuthError> {
        let form = [
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.secret()?),
            ("grant_type", "client_credentials"),
        ];
        self.token(&form).await
    }

    /// A new user access token (and refresh token) for `refresh`.
    pub async fn refresh(&self, refresh: &Secret) -> Result<Issued, OAuthError> {
        let form = [
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.secret()?),
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.expose()),
        ];
        self.token(&form).await
    }

    /// Exchanges an authorization code (the callback's `code`).
    pub async fn exchange_code(&self, code: &str, redirect: &str) -> Result<Issued, OAuthError> {
        let form = [
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.secret()?),
            ("code", code),
            ("grant_type", "authorization_code"),
            ("redirect_uri", redirect),
        ];
        self.token(&form).await
    }

    async fn token(&self, form: &[(&str, &str)]) -> Result<Issued, OAuthError> {
        let response = self
            .http
            .post(format!("{}/token", self.base))
            .form(form)
            .send()
            .await
            .map_err(|e| OAuthError::Failed(describe(&e)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| OAuthError::Failed(describe(&e)))?;
        if !status.is_success() {
            return Err(refusal(status, &body));
        }
        let parsed: twitch_oauth2::id::TwitchTokenResponse = serde_json::from_slice(&body)
            .map_err(|e| OAuthError::Failed(format!("token answer: {e}")))?;
        Ok(Issued {
            access: Secret::new(parsed.access_token.as_str()),
            refresh: parsed.refresh_token.map(|r| Secret::new(r.as_str())),
            expires_in: parsed.expires_in.map(Duration::from_secs),
        })
    }

    /// `POST /revoke`: ends `token` (one the service no longer needs).
    pub async fn revoke(&self, token: &Secret) -> Result<(), OAuthError> {
        let form = [
            ("client_id", self.client_id.as_str()),
            ("token", token.expose()),
        ];
        let response = self
            .http
            .post(format!("{}/revoke", self.base))
            .form(&form)
            .send()
            .await
            .map_err(|e| OAuthError::Failed(describe(&e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.bytes().await.unwrap_or_default();
        Err(refusal(status, &body))
    }

    /// `GET /validate`: what Twitch says about `token` (401 = invalid: a refusal).
    pub async fn validate(&self, token: &Secret) -> Result<Validated, OAuthError> {
        let response = self
            .http
            .get(format!("{}/validate", self.base))
            .header("Authorization", format!("OAuth {}", token.expose()))
            .send()
            .await
            .map_err(|e| OAuthError::Failed(describe(&e)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| OAuthError::Failed(describe(&e)))?;
        if !status.is_success() {
            return Err(refusal(status, &body));
        }
        let parsed: twitch_oauth2::ValidatedToken = serde_json::from_slice(&body)
            .map_err(|e| OAuthError::Failed(format!("validate answer: {e}")))?;
        Ok(Validated {
            client_id: parsed.client_id.to_string(),
            login: parsed.login.map(|l| l.to_string()),
            user_id: parsed.user_id.map(|u| u.to_string()),
            scopes: parsed
                .scopes
                .unwrap_or_default()
                .iter()
                .map(|s| s.to_string())
                .collect(),
            expires_in: parsed.expires_in,
        })
    }
}

/// An HTTP client for Twitch's services: `timeout` on connecting and on the whole call, no
/// redirects followed, firehose's user agent.
pub(super) fn http_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("firehose/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// 400/401/403 are Twitch refusing; anything else is a failure worth retrying.
fn refusal(status: StatusCode, body: &[u8]) -> OAuthError {
    let message: String = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_string))
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    match status.as_u16() {
        400 | 401 | 403 => OAuthError::Refused {
            status: status.as_u16(),
            message,
        },
        other => OAuthError::Failed(format!("{other}: {message}")),
    }
}

fn describe(e: &reqwest::Error) -> String {
    crate::twitch::helix::call::describe(e)
}
