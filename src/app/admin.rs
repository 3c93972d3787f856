//! The admin operations of a running service, behind [`Core`]: join, part, replace rules,
//! readiness. The HTTP layer (and the CLI, and tests) call these; every refusal is a typed
//! error whose text says what is wrong.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ractor::ActorRef;

use crate::channel::actor::{RulesEdit, RulesRefused};
use crate::channel::supervisor::RulesTarget;
use crate::channel::{
    rules_book, ChannelKey, ChannelMsg, ChannelRegistry, ChannelStatus, JoinOutcome, RulesBook,
    SpawnError, SupervisorMsg,
};
use crate::config::{is_login, Config, Secret};
use crate::discord::GatewayStatus;
use crate::engine::ChannelRules;
use crate::obs::Metrics;
use crate::store::StoreHandle;
use crate::twitch::auth::Auth;
use crate::twitch::eventsub::EventSub;
use crate::twitch::helix::HelixModerator;
use crate::twitch::TwitchClient;

/// How long an admin operation waits for the supervisor or a channel actor.
const ADMIN_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// What the HTTP layer and the CLI need from a running service.
pub struct Core {
    pub config: Config,
    /// Helix moderation, when configured (its log is readable here).
    pub moderation: Option<HelixModerator>,
    /// Tokens, ids and onboarding, with `helix.client_id`.
    pub auth: Option<Arc<Auth>>,
    /// EventSub (ingest and/or webhook intake), when configured.
    pub eventsub: Option<Arc<EventSub>>,
    pub rules: Arc<RulesBook>,
    pub registry: Arc<ChannelRegistry>,
    pub metrics: Arc<Metrics>,
    pub twitch: TwitchClient,
    /// The state store's writer (and through it the store).
    pub store: StoreHandle,
    /// The Discord gateway's state, when Discord is enabled.
    pub discord: Option<Arc<GatewayStatus>>,
    pub(super) supervisor: ActorRef<SupervisorMsg>,
    pub(super) shutting_down: AtomicBool,
    /// Bulk joins and parts under way ([`super::membership`]).
    pub(super) membership: super::membership::Membership,
}

/// Why a join or part did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Not a Twitch login (also keeps anything but a login out of the JOIN/PART lines).
    #[error("`{0}` is not a channel login (lowercase a-z, 0-9, _; 1-25 chars)")]
    NotALogin(String),
    #[error("the service is shutting down")]
    ShuttingDown,
    /// The supervisor did not answer in time (or has stopped).
    #[error("supervisor did not answer: {0}")]
    SupervisorUnavailable(String),
    /// The channel's actor could not be spawned.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
}

/// Why a rules edit did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SetRulesError {
    #[error(transparent)]
    Refused(RulesRefused),
    /// The channel actor did not answer in time.
    #[error("channel actor did not answer: {0}")]
    Unavailable(String),
}

/// Readiness and, when not ready, why.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Readiness {
    pub ready: bool,
    pub reasons: Vec<String>,
    /// Ready, but something is behind (the state store): chat is still handled.
    pub degraded: Vec<String>,
}

/// Longest an admin read waits for an idle channel's actor to load its stored rules, beyond
/// `store.load_timeout_ms`.
const RULES_READ_SLACK: Duration = Duration::from_secs(1);

impl Core {
    /// The rules a channel runs, for an admin to read or edit. An idle channel's stored rules
    /// (edited at run time) are not in the book until its actor loads them, so an idle channel
    /// is started first and this waits (at most `store.load_timeout_ms` and a second) until
    /// its actor has loaded them.
    pub async fn current_rules(&self, key: &ChannelKey) -> Arc<ChannelRules> {
        if let Some(shared) = self.registry.get(key) {
            shared.start_if_idle();
            let deadline = tokio::time::Instant::now()
                + Duration::from_millis(self.config.store.load_timeout_ms)
                + RULES_READ_SLACK;
            while shared.status() == ChannelStatus::Starting
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        self.rules.get(key)
    }

    pub fn admin_token(&self) -> Option<&Secret> {
        self.config.secrets.admin_token.as_ref()
    }

    /// Joins a Twitch channel: starts its actor, then asks the connection to join (paced).
    pub async fn join(&self, login: &str) -> Result<JoinOutcome, AdminError> {
        if !is_login(login) {
            return Err(AdminError::NotALogin(login.to_string()));
        }
        if self.is_shutting_down() {
            return Err(AdminError::ShuttingDown);
        }
        let outcome = self.supervise(ChannelKey::twitch(login)).await?;
        self.twitch.join(login).await;
        if let Some(eventsub) = &self.eventsub {
            eventsub.join(login);
        }
        Ok(outcome)
    }

    /// Starts the actor of a mapped Discord channel (by channel id).
    pub async fn join_discord(&self, channel_id: &str) -> Result<JoinOutcome, AdminError> {
        self.supervise(ChannelKey::discord(channel_id)).await
    }

    /// Asks the supervisor to give the channel an actor (or a fresh one, if it failed).
    async fn supervise(&self, key: ChannelKey) -> Result<JoinOutcome, AdminError> {
        let outcome = ractor::call_t!(
            self.supervisor,
            SupervisorMsg::Join,
            ADMIN_CALL_TIMEOUT.as_millis() as u64,
            key
        )
        .map_err(|e| AdminError::SupervisorUnavailable(e.to_string()))??;
        Ok(outcome)
    }

    /// Parts a Twitch channel; false when it was not joined.
    pub async fn part(&self, login: &str) -> Result<bool, AdminError> {
        if !is_login(login) {
            // Also keeps anything but a login out of the PART line we send.
            return Err(AdminError::NotALogin(login.to_string()));
        }
        let key = ChannelKey::twitch(login);
        self.twitch.part(login).await;
        if let Some(eventsub) = &self.eventsub {
            eventsub.part(login);
        }
        ractor::call_t!(
            self.supervisor,
            SupervisorMsg::Part,
            ADMIN_CALL_TIMEOUT.as_millis() as u64,
            key
        )
        .map_err(|e| AdminError::SupervisorUnavailable(e.to_string()))
    }

    /// Replaces a channel's rules after compiling them as the channel does; a running
    /// channel switches at once (its actor installs them), others start from them. Either way
    /// the edit goes to the state store like a chat edit, so it outlives the process and the
    /// next start of the channel (which restores its stored rules) keeps it.
    ///
    /// `base` is the version the edit was made from: if the rules changed meanwhile (another
    /// edit, a moderator's `!addcom`), nothing changes and the edit is refused as a conflict.
    pub async fn set_rules(
        &self,
        key: &ChannelKey,
        base: Arc<ChannelRules>,
        rules: ChannelRules,
    ) -> Result<(), SetRulesError> {
        rules_book::compile(&rules)
            .map_err(|e| SetRulesError::Refused(RulesRefused::Invalid(e.to_string())))?;
        let edit = RulesEdit {
            base,
            rules: Arc::new(rules),
        };
        let target = ractor::call_t!(
            self.supervisor,
            SupervisorMsg::EditRules,
            ADMIN_CALL_TIMEOUT.as_millis() as u64,
            key.clone(),
            edit
        )
        .map_err(|e| SetRulesError::Unavailable(format!("supervisor: {e}")))?;
        match target {
            RulesTarget::Actor(actor, edit) => ractor::call_t!(
                actor,
                ChannelMsg::SetRules,
                ADMIN_CALL_TIMEOUT.as_millis() as u64,
                edit
            )
            .map_err(|e| SetRulesError::Unavailable(e.to_string()))?
            .map_err(SetRulesError::Refused),
            RulesTarget::Applied => Ok(()),
            RulesTarget::Conflict => Err(SetRulesError::Refused(RulesRefused::Conflict)),
        }
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    pub fn readiness(&self) -> Readiness {
        let mut reasons = Vec::new();
        if self.is_shutting_down() {
            reasons.push("shutting down".to_string());
        }
        let status = self.twitch.status();
        let mut degraded: Vec<String> = Vec::new();
        if !self.config.twitch.uses_irc() {
            // No IRC connection in this mode: EventSub and Helix say below.
        } else if !status.is_connected() {
            reasons.push("twitch: not connected".to_string());
        } else {
            let missing = status.not_joined();
            if !missing.is_empty() {
                let shown: Vec<_> = missing.iter().take(10).cloned().collect();
                reasons.push(format!(
                    "twitch: {} channel(s) not joined yet: {}",
                    missing.len(),
                    shown.join(", ")
                ));
            }
        }
        if let Some(discord) = &self.discord {
            if !discord.is_connected() {
                reasons.push(format!(
                    "discord: {} of {} shard(s) connected",
                    discord.connected_shards(),
                    discord.shards
                ));
            }
        }
        let failed: Vec<String> = self
            .registry
            .all()
            .iter()
            .filter(|c| c.status() == ChannelStatus::Failed)
            .map(|c| c.key.to_string())
            .collect();
        if !failed.is_empty() {
            reasons.push(format!("channels failed: {}", failed.join(", ")));
        }
        if let Some(auth) = &self.auth {
            let (r, d) = auth.readiness();
            reasons.extend(r);
            degraded.extend(d);
        }
        if let Some(eventsub) = &self.eventsub {
            let (r, d) = eventsub.readiness();
            reasons.extend(r);
            degraded.extend(d);
        }
        degraded.extend(self.store.status.degraded_reason());
        Readiness {
            ready: reasons.is_empty(),
            reasons,
            degraded,
        }
    }
}
