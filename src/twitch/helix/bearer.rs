//! Where a Helix call gets its access token: [`Bearer`]. A fixed token
//! ([`StaticBearer`], an operator-given `FIREHOSE_HELIX_TOKEN`) or one that renews itself
//! (`twitch::auth`'s token cells implement the trait; Helix itself knows nothing of OAuth).
//!
//! On a 401 a caller reports the token it used ([`Bearer::rejected`]) and may wait a moment
//! for a renewed one ([`Bearer::renewed`]) before trying the call once more, so an expiry in
//! the middle of the run costs no queued action.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::config::Secret;

/// A source of access tokens for Helix calls.
pub trait Bearer: Send + Sync + std::fmt::Debug {
    /// The token to use now (without `oauth:` or `Bearer `), if there is one.
    fn token(&self) -> Option<Secret>;

    /// Helix answered 401 to `token`: it is expired or revoked; renew it if it is still the
    /// current one.
    fn rejected(&self, token: &Secret);

    /// Waits up to `wait` for a token other than `old`; None if none came.
    fn renewed<'a>(&'a self, old: &'a Secret, wait: Duration) -> BoxFuture<'a, Option<Secret>>;
}

/// A token that never changes.
#[derive(Debug, Clone)]
pub struct StaticBearer(Option<Secret>);

impl StaticBearer {
    /// From an operator's token; an `oauth:` prefix is dropped.
    pub fn new(token: Option<&Secret>) -> Arc<StaticBearer> {
        let token = token.map(|t| {
            let raw = t.expose().trim();
            Secret::new(raw.strip_prefix("oauth:").unwrap_or(raw))
        });
        Arc::new(StaticBearer(token))
    }
}

impl Bearer for StaticBearer {
    fn token(&self) -> Option<Secret> {
        self.0.clone()
    }

    fn rejected(&self, _token: &Secret) {}

    fn renewed<'a>(&'a self, _old: &'a Secret, _wait: Duration) -> BoxFuture<'a, Option<Secret>> {
        Box::pin(async { None })
    }
}
