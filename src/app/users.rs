//! Deleting one person's data on one platform, everywhere the service keeps it
//! (`DELETE /v1/users/{platform}/{user_id}`): the state store (user stats, warnings, moderation
//! log entries about them), the store writer's pending changes, the running channel actors'
//! engine state (warnings, per-user cooldowns, nuke scrollback) and, on Twitch, the Helix
//! moderation log (its in-memory ring and its JSON-lines file, `helix.moderation_log`).
//!
//! The order closes the races (see `store::writer`): the writer drops what it holds about the
//! user and starts dropping whatever about them arrives; the channel actors clear their copies;
//! then, with no flush in flight, the store deletes the rows, and only after that are changes
//! about the user taken again. The whole operation runs in a task of its own, so a client that
//! hangs up half-way cannot leave it unfinished.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use super::Core;
use crate::channel::{ChannelMsg, ChannelRegistry};
use crate::engine::{ForgottenUser, Platform};
use crate::store::writer::ForgetReport;
use crate::store::ForgottenRows;
use crate::twitch::helix::ForgottenLog;

/// Longest user id accepted (Twitch ids and Discord snowflakes are 20 digits at most).
pub const MAX_USER_ID_LEN: usize = 64;
/// How long one channel actor has to clear its copies.
const ACTOR_TIMEOUT: Duration = Duration::from_secs(5);
/// Channel actors asked at once.
const ACTOR_CONCURRENCY: usize = 64;

/// Why a deletion was refused or did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ForgetUserError {
    #[error("unknown platform `{0}`: use `twitch` or `discord`")]
    UnknownPlatform(String),
    #[error("invalid user id: {0}")]
    BadUserId(String),
    #[error("the service is shutting down")]
    ShuttingDown,
    /// The in-memory part ran (see the report); the store part failed and should be retried.
    #[error("the state store could not delete the user's data (retry the request): {error}")]
    Store {
        error: String,
        report: Box<ForgetUserReport>,
    },
}

/// What a deletion removed, per place and kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ForgetUserReport {
    pub platform: &'static str,
    pub user_id: String,
    /// Rows deleted in the state store.
    pub stored: ForgottenRows,
    /// Changes dropped before they reached the store.
    pub pending: ForgottenRows,
    /// What the running channel actors held.
    pub in_memory: ForgottenUser,
    /// The Helix moderation log's entries about the user (Twitch, with Helix configured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub helix_log: Option<ForgottenLog>,
    /// Every channel (store name, `twitch:login`) where something was removed.
    pub channels: BTreeSet<String>,
    /// Running channels whose actor did not answer in time (their in-memory copies may remain
    /// until they restart or expire); empty when everything was reached.
    pub channels_unreachable: Vec<String>,
}

/// The platform named in a request.
pub fn parse_platform(name: &str) -> Result<Platform, ForgetUserError> {
    match name {
        "twitch" => Ok(Platform::Twitch),
        "discord" => Ok(Platform::Discord),
        other => {
            let shown: String = other.chars().take(32).collect();
            Err(ForgetUserError::UnknownPlatform(
                shown.escape_debug().to_string(),
            ))
        }
    }
}

/// A user id: 1 to [`MAX_USER_ID_LEN`] bytes, no control characters or white space.
pub fn check_user_id(user_id: &str) -> Result<(), ForgetUserError> {
    if user_id.is_empty() {
        return Err(ForgetUserError::BadUserId("it is empty".into()));
    }
    if user_id.len() > MAX_USER_ID_LEN {
        return Err(ForgetUserError::BadUserId(format!(
            "longer than {MAX_USER_ID_LEN} bytes"
        )));
    }
    if user_id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ForgetUserError::BadUserId(
            "it holds control characters or white space".into(),
        ));
    }
    Ok(())
}

impl Core {
    /// Deletes everything kept about `user_id` on `platform`; see the module doc.
    pub async fn forget_user(
        &self,
        platform: &str,
        user_id: &str,
    ) -> Result<ForgetUserReport, ForgetUserError> {
        let platform = parse_platform(platform)?;
        check_user_id(user_id)?;
        if self.is_shutting_down() {
            return Err(ForgetUserError::ShuttingDown);
        }
        let registry = Arc::clone(&self.registry);
        let store = self.store.clone();
        let helix = match platform {
            Platform::Twitch => self.moderation.clone(),
            Platform::Discord => None,
        };
        let user = user_id.to_string();
        let task = tokio::spawn(async move {
            let in_memory = forget_in_actors(registry, platform, user.clone());
            let ((held, unreachable), stored) =
                store.forget_user(platform.as_str(), &user, in_memory).await;
            let helix_log = match helix {
                Some(helix) => Some(helix.forget_user(&user).await),
                None => None,
            };
            (held, unreachable, stored, helix_log)
        });
        let (held, unreachable, stored, helix_log) =
            task.await.map_err(|e| ForgetUserError::Store {
                error: format!("the deletion task failed: {e}"),
                report: Box::default(),
            })?;
        let mut report = ForgetUserReport {
            platform: platform.as_str(),
            user_id: user_id.to_string(),
            in_memory: ForgottenUser::default(),
            helix_log,
            channels_unreachable: unreachable,
            ..ForgetUserReport::default()
        };
        for (channel, forgotten) in held {
            report.in_memory.add(forgotten);
            report.channels.insert(channel);
        }
        match stored {
            Ok(ForgetReport { stored, pending }) => {
                report.channels.extend(stored.channels.iter().cloned());
                report.channels.extend(pending.channels.iter().cloned());
                report.stored = stored;
                report.pending = pending;
                tracing::info!(
                    platform = platform.as_str(),
                    stored = report.stored.total(),
                    pending = report.pending.total(),
                    in_memory = report.in_memory.total(),
                    channels = report.channels.len(),
                    "deleted a user's data"
                );
                Ok(report)
            }
            Err(e) => Err(ForgetUserError::Store {
                error: e.to_string(),
                report: Box::new(report),
            }),
        }
    }
}

/// Asks every running channel actor of `platform` to forget the user: what each removed (the
/// channels where something went), and the channels whose actor did not answer.
async fn forget_in_actors(
    registry: Arc<ChannelRegistry>,
    platform: Platform,
    user_id: String,
) -> (Vec<(String, ForgottenUser)>, Vec<String>) {
    let actors: Vec<_> = registry
        .all()
        .into_iter()
        .filter(|c| c.key.platform == platform)
        .filter_map(|c| c.mailbox.actor().map(|actor| (c.key.to_string(), actor)))
        .collect();
    let answers: Vec<(String, Option<ForgottenUser>)> = futures::stream::iter(actors)
        .map(|(channel, actor)| {
            let user_id = user_id.clone();
            async move {
                let answer = ractor::call_t!(
                    actor,
                    ChannelMsg::ForgetUser,
                    ACTOR_TIMEOUT.as_millis() as u64,
                    user_id
                );
                (channel, answer.ok())
            }
        })
        .buffer_unordered(ACTOR_CONCURRENCY)
        .collect()
        .await;
    let mut held = Vec::new();
    let mut unreachable = Vec::new();
    for (channel, answer) in answers {
        match answer {
            Some(forgotten) if forgotten.total() > 0 => held.push((channel, forgotten)),
            Some(_) => {}
            None => unreachable.push(channel),
        }
    }
    unreachable.sort();
    (held, unreachable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_and_user_ids_are_checked() {
        assert_eq!(parse_platform("twitch").ok(), Some(Platform::Twitch));
        assert_eq!(parse_platform("discord").ok(), Some(Platform::Discord));
        for bad in ["", "Twitch", "youtube", "twitch\n"] {
            assert!(
                matches!(
                    parse_platform(bad),
                    Err(ForgetUserError::UnknownPlatform(_))
                ),
                "{bad:?}"
            );
        }
        assert!(check_user_id("12345678901234567890").is_ok());
        assert!(check_user_id("x").is_ok());
        let long = "9".repeat(MAX_USER_ID_LEN + 1);
        for bad in ["", "12\n3", "12\u{1f}3", "12 3", "\u{0}", long.as_str()] {
            assert!(
                matches!(check_user_id(bad), Err(ForgetUserError::BadUserId(_))),
                "{bad:?}"
            );
        }
        assert!(check_user_id(&"9".repeat(MAX_USER_ID_LEN)).is_ok());
    }
}
