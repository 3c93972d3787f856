//! One access token as the rest of the service sees it: [`TokenCell`]. It holds the current
//! token (a [`Secret`]), when it expires, what `/validate` said (user, scopes), and the problem
//! if there is one (revoked, scopes missing, renewal failing). It is a Helix [`Bearer`]: calls
//! take the token from it and report a 401 back, which wakes its manager (`manager`) to renew
//! it; waiters get the renewed token as soon as it is there.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio::sync::{watch, Notify};

use crate::config::Secret;
use crate::twitch::helix::Bearer;

/// App access token or the bot's user access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    App,
    User,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::App => "app",
            TokenKind::User => "user",
        }
    }
}

/// What is wrong with a token, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenProblem {
    /// Twitch refused it (or its refresh token, or the client secret): a human must act.
    Revoked(String),
    /// Valid, but without scopes the configured paths need.
    MissingScopes(Vec<String>),
    /// Expired and the last renewals failed (OAuth service unreachable, 5xx).
    Expired(String),
}

impl TokenProblem {
    pub fn label(&self) -> &'static str {
        match self {
            TokenProblem::Revoked(_) => "revoked",
            TokenProblem::MissingScopes(_) => "missing_scopes",
            TokenProblem::Expired(_) => "expired",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            TokenProblem::Revoked(why) => format!("revoked or refused: {why}"),
            TokenProblem::MissingScopes(scopes) => {
                format!("missing scopes {}", scopes.join(", "))
            }
            TokenProblem::Expired(why) => format!("expired and not renewed: {why}"),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    token: Option<Secret>,
    expires_at: Option<Instant>,
    user_id: Option<String>,
    login: Option<String>,
    scopes: Vec<String>,
    problem: Option<TokenProblem>,
    /// A renewal failed but the token is still valid (shown as degraded).
    renewal_failing: Option<String>,
    /// A caller saw a 401 with the current token.
    rejected: bool,
}

/// One token and its state.
#[derive(Debug)]
pub struct TokenCell {
    pub kind: TokenKind,
    /// Scopes the configured paths need.
    pub needed: Vec<String>,
    state: RwLock<State>,
    generation: watch::Sender<u64>,
    wake: Notify,
}

/// A snapshot for readiness and `/v1` JSON (no token in it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenView {
    pub kind: &'static str,
    pub present: bool,
    pub user_id: Option<String>,
    pub login: Option<String>,
    pub scopes: Vec<String>,
    pub expires_in_s: Option<u64>,
    pub problem: Option<String>,
    pub renewal_failing: Option<String>,
}

impl TokenCell {
    pub fn new(kind: TokenKind, needed: Vec<String>) -> TokenCell {
        TokenCell {
            kind,
            needed,
            state: RwLock::new(State::default()),
            generation: watch::Sender::new(0),
            wake: Notify::new(),
        }
    }

    fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        match self.state.read() {
            Ok(state) => f(&state),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    fn write<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        match self.state.write() {
            Ok(mut state) => f(&mut state),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// A new token from a renewal (its old problems are gone; scopes come with validation).
    pub(crate) fn set_token(&self, token: Secret, expires_in: Option<Duration>) {
        self.write(|s| {
            s.token = Some(token);
            s.expires_at = expires_in.map(|d| Instant::now() + d);
            s.problem = None;
            s.renewal_failing = None;
            s.rejected = false;
        });
        self.generation.send_modify(|g| *g += 1);
    }

    /// What `/validate` said; returns the problem it shows (missing scopes), if any.
    pub(crate) fn set_validated(
        &self,
        user_id: Option<String>,
        login: Option<String>,
        scopes: Vec<String>,
        expires_in: Option<Duration>,
    ) -> Option<TokenProblem> {
        let missing: Vec<String> = self
            .needed
            .iter()
            .filter(|n| !scopes.contains(n))
            .cloned()
            .collect();
        let problem = (!missing.is_empty()).then_some(TokenProblem::MissingScopes(missing));
        self.write(|s| {
            s.user_id = user_id;
            s.login = login;
            s.scopes = scopes;
            if let Some(d) = expires_in {
                s.expires_at = Some(Instant::now() + d);
            }
            if problem.is_some() || matches!(s.problem, Some(TokenProblem::MissingScopes(_))) {
                s.problem = problem.clone();
            }
        });
        problem
    }

    pub(crate) fn set_problem(&self, problem: Option<TokenProblem>) {
        self.write(|s| s.problem = problem);
        if self.read(|s| s.problem.is_some()) {
            // Waiters must not wait for a renewal that will not come.
            self.generation.send_modify(|g| *g += 1);
        }
    }

    pub(crate) fn set_renewal_failing(&self, why: Option<String>) {
        self.write(|s| s.renewal_failing = why);
    }

    /// The current token is unusable (validation said 401): drop it.
    pub(crate) fn clear(&self) {
        self.write(|s| {
            s.token = None;
            s.expires_at = None;
        });
    }

    /// Whether a caller reported a 401 (consumed).
    pub(crate) fn take_rejected(&self) -> bool {
        self.write(|s| std::mem::take(&mut s.rejected))
    }

    /// Wakes the token's manager (a new refresh token arrived).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Waits until woken (a 401) or `deadline`.
    pub(crate) async fn sleep_until(&self, deadline: tokio::time::Instant) {
        tokio::select! {
            _ = self.wake.notified() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }

    pub fn expires_at(&self) -> Option<Instant> {
        self.read(|s| s.expires_at)
    }

    pub fn has_token(&self) -> bool {
        self.read(|s| s.token.is_some())
    }

    pub fn user_id(&self) -> Option<String> {
        self.read(|s| s.user_id.clone())
    }

    pub fn login(&self) -> Option<String> {
        self.read(|s| s.login.clone())
    }

    pub fn scopes(&self) -> Vec<String> {
        self.read(|s| s.scopes.clone())
    }

    pub fn problem(&self) -> Option<TokenProblem> {
        self.read(|s| s.problem.clone())
    }

    pub fn renewal_failing(&self) -> Option<String> {
        self.read(|s| s.renewal_failing.clone())
    }

    /// Bumped at every new token (and when renewal gives up): wait on it for a change.
    pub fn generation(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    pub fn view(&self) -> TokenView {
        self.read(|s| TokenView {
            kind: self.kind.as_str(),
            present: s.token.is_some(),
            user_id: s.user_id.clone(),
            login: s.login.clone(),
            scopes: s.scopes.clone(),
            expires_in_s: s
                .expires_at
                .map(|at| at.saturating_duration_since(Instant::now()).as_secs()),
            problem: s.problem.as_ref().map(TokenProblem::describe),
            renewal_failing: s.renewal_failing.clone(),
        })
    }
}

impl Bearer for TokenCell {
    fn token(&self) -> Option<Secret> {
        self.read(|s| s.token.clone())
    }

    fn rejected(&self, token: &Secret) {
        let current = self.write(|s| {
            let current = s.token.as_ref() == Some(token);
            if current {
                s.rejected = true;
            }
            current
        });
        if current {
            self.wake.notify_one();
        }
    }

    fn renewed<'a>(&'a self, old: &'a Secret, wait: Duration) -> BoxFuture<'a, Option<Secret>> {
        Box::pin(async move {
            let mut changes = self.generation.subscribe();
            let fresh = |cell: &TokenCell| cell.token().filter(|t| t != old);
            if let Some(token) = fresh(self) {
                return Some(token);
            }
            let waited = tokio::time::timeout(wait, async {
                loop {
                    if changes.changed().await.is_err() {
                        return None;
                    }
                    if let Some(token) = fresh(self) {
                        return Some(token);
                    }
                    if self
                        .problem()
                        .is_some_and(|p| !matches!(p, TokenProblem::MissingScopes(_)))
                    {
                        return None;
                    }
                }
            })
            .await;
            waited.ok().flatten()
        })
    }
}
