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

/// Sessions one principal (the operator, or one Twitch user) keeps at once.
pub const MAX_SESSIONS_PER_USER: usize = 8;

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

    /// Who this is, whatever the session: `admin` or the Twitch user id.
    fn principal(&self) -> &str {
        match self {
            Who::Admin => "admin",
            Who::Twitch { user_id, .. } => user_id,
        }
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
    /// Event streams open for this session.
    pub streams: Arc<std::sync::atomic::AtomicUsize>,
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

    /// Starts a session for `who`, living `ttl`; answers its id (the cookie's value). One
    /// principal keeps at most [`MAX_SESSIONS_PER_USER`] sessions (its oldest ends first); when
    /// `console.max_sessions` are alive, the oldest Twitch user's session ends before any
    /// operator's, so logins through Twitch cannot push operators out.
    pub fn create(&self, who: Who, ttl: Duration) -> String {
        let now = Instant::now();
        self.by_hash.retain(|_, s| s.expires > now);
        let same = |s: &Session| s.who.principal() == who.principal();
        while self.by_hash.iter().filter(|e| same(e.value())).count() >= MAX_SESSIONS_PER_USER {
            if !self.end_oldest(|s| same(s)) {
                break;
            }
        }
        while self.by_hash.len() >= self.max {
            if !self.end_oldest(|s| !s.who.is_admin()) && !self.end_oldest(|_| true) {
                break;
            }
        }
        let id = random_hex();
        self.by_hash.insert(
            hash(&id),
            Session {
                who,
                csrf: random_hex(),
                created: now,
                expires: now + ttl,
                flash: Arc::new(Mutex::new(None)),
                streams: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            },
        );
        self.gauge.set(self.by_hash.len() as i64);
        id
    }

    /// Ends the oldest session matching `which`; false when none does.
    fn end_oldest(&self, which: impl Fn(&Session) -> bool) -> bool {
        let oldest = self
            .by_hash
            .iter()
            .filter(|e| which(e.value()))
            .min_by_key(|e| e.value().created)
            .map(|e| *e.key());
        match oldest {
            Some(key) => self.by_hash.remove(&key).is_some(),
            None => false,
        }
    }

    /// The key a session is kept under (what a stream holds instead of the cookie's value).
    pub fn key_of(id: &str) -> [u8; 32] {
        hash(id)
    }

    /// The live session of cookie value `id`.
    pub fn get(&self, id: &str) -> Option<Session> {
        self.get_by_key(hash(id))
    }

    /// The live session kept under `key` ([`Sessions::key_of`]).
    pub fn get_by_key(&self, key: [u8; 32]) -> Option<Session> {
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

    /// How long an operator's session lives (`console.session_ttl_ms`).
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
        let id = s.create(Who::Admin, s.ttl());
        assert_eq!(s.get(&id).map(|x| x.who), Some(Who::Admin));
        assert!(s.get("0".repeat(64).as_str()).is_none());
        assert!(s.get(&id[..63]).is_none(), "a prefix is not the id");
        s.end(&id);
        assert!(s.get(&id).is_none());
    }

    #[test]
    fn the_oldest_session_ends_when_too_many_are_alive() {
        let s = sessions(2, Duration::from_secs(60));
        let first = s.create(Who::Admin, s.ttl());
        let second = s.create(Who::Admin, s.ttl());
        let third = s.create(Who::Admin, s.ttl());
        assert_eq!(s.len(), 2);
        assert!(s.get(&first).is_none());
        assert!(s.get(&second).is_some() && s.get(&third).is_some());
    }

    #[test]
    fn twitch_logins_cannot_push_operators_out_and_one_user_keeps_few_sessions() {
        let s = sessions(3, Duration::from_secs(60));
        let admin = s.create(Who::Admin, s.ttl());
        let twitch = |id: &str| Who::Twitch {
            login: format!("u{id}"),
            user_id: id.into(),
            channels: BTreeSet::new(),
        };
        for n in 0..20 {
            s.create(twitch(&n.to_string()), s.ttl());
        }
        assert!(s.get(&admin).is_some(), "the operator's session stays");
        assert_eq!(s.len(), 3);
        let s = sessions(100, Duration::from_secs(60));
        let first = s.create(twitch("7"), s.ttl());
        for _ in 0..MAX_SESSIONS_PER_USER {
            s.create(twitch("7"), s.ttl());
        }
        assert_eq!(s.len(), MAX_SESSIONS_PER_USER);
        assert!(s.get(&first).is_none(), "the user's oldest session ended");
    }

    #[test]
    fn an_expired_session_is_gone() {
        let s = sessions(10, Duration::from_millis(0));
        let id = s.create(Who::Admin, s.ttl());
        assert!(s.get(&id).is_none());
    }

    #[test]
    fn csrf_tokens_differ_per_session_and_must_match_exactly() {
        let s = sessions(10, Duration::from_secs(60));
        let a = s.get(&s.create(Who::Admin, s.ttl())).expect("a");
        let b = s.get(&s.create(Who::Admin, s.ttl())).expect("b");
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
