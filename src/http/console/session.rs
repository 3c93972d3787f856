//! Console sessions: who is logged in, until when, with which CSRF token.
//!
//! A session id is 32 random bytes (hex) handed to the browser in an HTTP-only, same-site
//! cookie; the server keeps only its SHA-256, so a memory dump does not hand out live cookies.
//! Each session has its own CSRF token (32 random bytes) that every form carries and every
//! change is checked against, in constant time. Sessions end `console.session_ttl_ms` after
//! login or at logout; at most `console.max_sessions` live at once (a new login beyond ends the
//! oldest one). Expired sessions are swept at every login.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::channel::ChannelKey;
use crate::engine::Platform;

/// Who a session belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// Logged in with the admin token: every channel, join and part.
    Admin,
    /// Logged in with Twitch: their own channel and those they moderate.
    Twitch {
        login: String,
        user_id: String,
        channels: BTreeSet<String>,
    },
}

impl Who {
    /// The name the audit log records.
    pub fn audit_name(&self) -> String {
        match self {
            Who::Admin => "admin".into(),
            Who::Twitch { login, .. } => format!("twitch:{login}"),
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Who::Admin)
    }

    /// Whether this user may see and edit `key`.
    pub fn may_manage(&self, key: &ChannelKey) -> bool {
        match self {
            Who::Admin => true,
            Who::Twitch { channels, .. } => {
                key.platform == Platform::Twitch && channels.contains(&*key.name)
            }
        }
    }
}

/// A live session.
#[derive(Debug, Clone)]
pub struct Session {
    pub who: Who,
    pub csrf: String,
    created: Instant,
    expires: Instant,
    /// A message for the next page (what the last change did), shown once.
    flash: Arc<Mutex<Option<String>>>,
}

impl Session {
    /// Whether `presented` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        bool::from(presented.as_bytes().ct_eq(self.csrf.as_bytes()))
    }

    /// Leaves a message for the next page.
    pub fn set_flash(&self, message: impl Into<String>) {
        if let Ok(mut slot) = self.flash.lock() {
            *slot = Some(message.into());
        }
    }

    /// The message left for this page, once.
    pub fn take_flash(&self) -> Option<String> {
        self.flash.lock().ok()?.take()
    }
}

/// Every live session.
pub struct Sessions {
    by_hash: DashMap<[u8; 32], Session>,
    ttl: Duration,
    max: usize,
    gauge: prometheus_client::metrics::gauge::Gauge,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("live", &self.by_hash.len())
            .finish()
    }
}

fn hash(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

fn random_hex() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

impl Sessions {
    pub fn new(
        ttl: Duration,
        max: usize,
        gauge: prometheus_client::metrics::gauge::Gauge,
    ) -> Sessions {
        Sessions {
            by_hash: DashMap::new(),
            ttl,
            max: max.max(1),
            gauge,
        }
    }

    /// Starts a session for `who`; answers its id (the cookie's value).
    pub fn create(&self, who: Who) -> String {
        let now = Instant::now();
        self.by_hash.retain(|_, s| s.expires > now);
        while self.by_hash.len() >= self.max {
            let oldest = self
                .by_hash
                .iter()
                .min_by_key(|entry| entry.value().created)
                .map(|entry| *entry.key());
            match oldest {
                Some(key) => {
                    self.by_hash.remove(&key);
                }
                None => break,
            }
        }
        let id = random_hex();
        self.by_hash.insert(
            hash(&id),
            Session {
                who,
                csrf: random_hex(),
                created: now,
                expires: now + self.ttl,
                flash: Arc::new(Mutex::new(None)),
            },
        );
        self.gauge.set(self.by_hash.len() as i64);
        id
    }

    /// The live session of cookie value `id`.
    pub fn get(&self, id: &str) -> Option<Session> {
        let key = hash(id);
        let session = self.by_hash.get(&key)?.clone();
        if session.expires <= Instant::now() {
            self.by_hash.remove(&key);
            self.gauge.set(self.by_hash.len() as i64);
            return None;
        }
        Some(session)
    }

    /// Ends the session of cookie value `id`.
    pub fn end(&self, id: &str) {
        self.by_hash.remove(&hash(id));
        self.gauge.set(self.by_hash.len() as i64);
    }

    /// Seconds a new session lives (the cookie's `Max-Age`).
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(max: usize, ttl: Duration) -> Sessions {
        Sessions::new(ttl, max, Default::default())
    }

    #[test]
    fn a_session_is_found_by_its_id_only_and_ends_at_logout() {
        let s = sessions(10, Duration::from_secs(60));
        let id = s.create(Who::Admin);
        assert_eq!(s.get(&id).map(|x| x.who), Some(Who::Admin));
        assert!(s.get("0".repeat(64).as_str()).is_none());
        assert!(s.get(&id[..63]).is_none(), "a prefix is not the id");
        s.end(&id);
        assert!(s.get(&id).is_none());
    }

    #[test]
    fn the_oldest_session_ends_when_too_many_are_alive() {
        let s = sessions(2, Duration::from_secs(60));
        let first = s.create(Who::Admin);
        let second = s.create(Who::Admin);
        let third = s.create(Who::Admin);
        assert_eq!(s.len(), 2);
        assert!(s.get(&first).is_none());
        assert!(s.get(&second).is_some() && s.get(&third).is_some());
    }

    #[test]
    fn an_expired_session_is_gone() {
        let s = sessions(10, Duration::from_millis(0));
        let id = s.create(Who::Admin);
        assert!(s.get(&id).is_none());
    }

    #[test]
    fn csrf_tokens_differ_per_session_and_must_match_exactly() {
        let s = sessions(10, Duration::from_secs(60));
        let a = s.get(&s.create(Who::Admin)).expect("a");
        let b = s.get(&s.create(Who::Admin)).expect("b");
        assert_ne!(a.csrf, b.csrf);
        assert!(a.csrf_matches(&a.csrf.clone()));
        assert!(!a.csrf_matches(&b.csrf));
        assert!(!a.csrf_matches(""));
    }

    #[test]
    fn a_twitch_user_manages_only_their_channels() {
        let who = Who::Twitch {
            login: "streamer".into(),
            user_id: "1".into(),
            channels: BTreeSet::from(["streamer".to_string(), "friend".to_string()]),
        };
        assert!(who.may_manage(&ChannelKey::twitch("streamer")));
        assert!(who.may_manage(&ChannelKey::twitch("friend")));
        assert!(!who.may_manage(&ChannelKey::twitch("other")));
        assert!(!who.may_manage(&ChannelKey::discord("123")));
        assert!(Who::Admin.may_manage(&ChannelKey::discord("123")));
    }
}
