//! Who is who: channel logins to Twitch user ids (EventSub conditions, Helix sends and
//! moderation name users by id), resolved through Helix `GET /users` (100 logins a call) and
//! cached in memory and in the state store (`platform_state` scope `twitch_user_ids`), so a
//! restart needs no call for the channels it already knew. Only valid logins are ever looked up
//! or stored; the cache holds one entry per channel the service was asked to serve.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;

use crate::store::StateStore;
use crate::twitch::helix::call::{HelixCaller, HelixError};

/// Store scope of login -> user id.
pub const USER_IDS_SCOPE: &str = "twitch_user_ids";
const STORE_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Directory {
    ids: DashMap<String, String>,
    logins: DashMap<String, String>,
    store: Option<Arc<dyn StateStore>>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("ids", &self.ids.len())
            .finish_non_exhaustive()
    }
}

impl Directory {
    pub fn new(store: Option<Arc<dyn StateStore>>) -> Directory {
        Directory {
            ids: DashMap::new(),
            logins: DashMap::new(),
            store,
        }
    }

    /// Loads what the store knows (at start-up).
    pub async fn load(&self) {
        let Some(store) = &self.store else { return };
        match tokio::time::timeout(STORE_TIMEOUT, store.list_state(USER_IDS_SCOPE)).await {
            Ok(Ok(rows)) => {
                for (login, id) in rows {
                    if crate::config::is_login(&login) && is_user_id(&id) {
                        self.insert(&login, &id);
                    }
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot load the stored user ids; asking Helix")
            }
            Err(_) => tracing::warn!("loading the stored user ids timed out; asking Helix"),
        }
    }

    /// Remembers an id learnt elsewhere (IRC's ROOMSTATE, an EventSub event).
    pub fn insert(&self, login: &str, id: &str) {
        self.ids.insert(login.to_string(), id.to_string());
        self.logins.insert(id.to_string(), login.to_string());
    }

    pub fn id(&self, login: &str) -> Option<String> {
        self.ids.get(login).map(|v| v.value().clone())
    }

    pub fn login(&self, id: &str) -> Option<String> {
        self.logins.get(id).map(|v| v.value().clone())
    }

    /// Resolves the logins not known yet through Helix and stores them; logins Twitch does
    /// not know are left out (the caller reports them).
    pub async fn resolve(&self, caller: &HelixCaller, logins: &[String]) -> Result<(), HelixError> {
        let unknown: Vec<String> = logins
            .iter()
            .filter(|l| crate::config::is_login(l) && !self.ids.contains_key(l.as_str()))
            .cloned()
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let found = crate::twitch::helix::users::user_ids(caller, &unknown).await?;
        for (login, id) in found {
            if !crate::config::is_login(&login) || !is_user_id(&id) {
                continue;
            }
            self.insert(&login, &id);
            if let Some(store) = &self.store {
                let write = store.put_state(USER_IDS_SCOPE, &login, &id);
                if let Ok(Err(e)) | Err(e) = tokio::time::timeout(STORE_TIMEOUT, write)
                    .await
                    .map_err(|_| crate::store::StoreError::Unavailable("timed out".into()))
                {
                    tracing::debug!(error = %e, "cannot store a user id (asked again after a restart)");
                }
            }
        }
        Ok(())
    }
}

/// Twitch user ids are decimal digits.
pub fn is_user_id(id: &str) -> bool {
    (1..=20).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit())
}
