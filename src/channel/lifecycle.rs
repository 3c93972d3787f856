//! A channel's lifecycle: its status (idle, starting, running, restarting, failed, parting), its last
//! error (typed, shown as one bounded line in `/v1/channels`) and its orphans (deliveries whose
//! actor died before handling them, kept in order for the next actor).
//!
//! The supervisor and the actor move the status; a [`Delivery`]'s `Drop` hands orphans in;
//! the next actor takes them out, oldest first. Orphans are kept only while the channel can
//! still get an actor, checked under the same lock the final sweep takes, so none slips in
//! after it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::delivery::Delivery;

/// Longest `last_error` kept per channel.
pub const MAX_ERROR_CHARS: usize = 200;

/// Lifecycle of a channel, as `/v1/channels` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum ChannelStatus {
    /// Its actor is being spawned for the first time.
    Starting = 0,
    /// Its actor is up and handling messages.
    Running = 1,
    /// Its actor failed and is waiting out its backoff before a restart.
    Restarting = 2,
    /// It failed more often than the restart intensity allows; messages are shed.
    Failed = 3,
    /// It is being parted; messages are shed.
    Parting = 4,
    /// Joined, with no actor yet: one starts on its first message (`supervisor.lazy_start`),
    /// which waits for it like any message waits for a restarting actor.
    Idle = 5,
}

impl ChannelStatus {
    fn from_u8(v: u8) -> ChannelStatus {
        match v {
            0 => ChannelStatus::Starting,
            1 => ChannelStatus::Running,
            2 => ChannelStatus::Restarting,
            3 => ChannelStatus::Failed,
            5 => ChannelStatus::Idle,
            _ => ChannelStatus::Parting,
        }
    }
}

/// What last went wrong with a channel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// Its actor failed (a panic in the handler, or an error): ractor's report.
    #[error("{0}")]
    ActorFailed(String),
    /// Its rules did not compile; it runs the built-in commands only.
    #[error("rules refused, running built-ins only: {0}")]
    RulesRefused(String),
    /// Its stored state is not loaded yet (the store did not answer); it is retried.
    #[error("stored state not loaded yet: {0}")]
    StateNotLoaded(String),
    /// A fresh actor could not be spawned.
    #[error("spawning the channel actor failed: {0}")]
    SpawnFailed(String),
}

/// The last error and the line `/v1/channels` shows for it.
#[derive(Debug)]
struct Recorded {
    error: ChannelError,
    shown: String,
}

/// Status, last error and orphans of one channel. Outlives any one actor.
#[derive(Debug)]
pub struct Lifecycle {
    status: AtomicU8,
    last_error: Mutex<Option<Recorded>>,
    /// Deliveries whose actor died before handling them, by sequence number. Each holds a
    /// permit, so there are never more than the channel's capacity.
    orphans: Mutex<BTreeMap<u64, Delivery>>,
    orphan_count: AtomicUsize,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            status: AtomicU8::new(ChannelStatus::Starting as u8),
            last_error: Mutex::new(None),
            orphans: Mutex::new(BTreeMap::new()),
            orphan_count: AtomicUsize::new(0),
        }
    }
}

impl Lifecycle {
    pub fn status(&self) -> ChannelStatus {
        ChannelStatus::from_u8(self.status.load(Ordering::Acquire))
    }

    pub fn set_status(&self, status: ChannelStatus) {
        self.status.store(status as u8, Ordering::Release);
    }

    /// Moves an idle channel to starting; true for the one caller that did (it asks the
    /// supervisor for the actor), false when the channel was not idle.
    pub fn claim_start(&self) -> bool {
        self.status
            .compare_exchange(
                ChannelStatus::Idle as u8,
                ChannelStatus::Starting as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// The last error as `/v1/channels` shows it.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .ok()
            .and_then(|e| e.as_ref().map(|r| r.shown.clone()))
    }

    /// Records the latest failure, shown cut to its first line and `MAX_ERROR_CHARS`
    /// characters: a panic message can quote chat, and `/v1/channels` shows it.
    pub fn set_error(&self, error: ChannelError) {
        let full = error.to_string();
        let first_line = full.lines().next().unwrap_or_default();
        let mut shown: String = first_line.chars().take(MAX_ERROR_CHARS).collect();
        if shown.len() < full.len() {
            shown.push('…');
        }
        if let Ok(mut slot) = self.last_error.lock() {
            *slot = Some(Recorded { error, shown });
        }
    }

    /// Clears the last error if `passed` says its condition is over (the stored state loaded).
    pub fn clear_error_if(&self, passed: impl Fn(&ChannelError) -> bool) {
        if let Ok(mut slot) = self.last_error.lock() {
            if slot.as_ref().is_some_and(|r| passed(&r.error)) {
                *slot = None;
            }
        }
    }

    /// Whether messages should still be kept for a (re)started actor.
    pub fn accepts_orphans(&self) -> bool {
        matches!(
            self.status(),
            ChannelStatus::Idle
                | ChannelStatus::Starting
                | ChannelStatus::Running
                | ChannelStatus::Restarting
        )
    }

    /// Keeps a delivery whose actor died before handling it, for the next actor. Hands it back
    /// when the channel stopped taking orphans (failed or parting) meanwhile: the status is
    /// checked under the same lock `take_orphans_before` uses after setting it, so no orphan can
    /// slip in after the last sweep.
    pub(super) fn keep_orphan(&self, seq: u64, delivery: Delivery) -> Option<Delivery> {
        let Ok(mut orphans) = self.orphans.lock() else {
            return Some(delivery);
        };
        if !self.accepts_orphans() {
            return Some(delivery);
        }
        orphans.insert(seq, delivery);
        self.orphan_count.store(orphans.len(), Ordering::Release);
        None
    }

    /// Takes every kept delivery, always under the lock (no fast path), so a sweep after a
    /// status change cannot miss an orphan being kept at that moment.
    pub(super) fn take_all_orphans(&self) -> Vec<Delivery> {
        let Ok(mut orphans) = self.orphans.lock() else {
            return Vec::new();
        };
        let all = std::mem::take(&mut *orphans);
        self.orphan_count.store(0, Ordering::Release);
        drop(orphans);
        all.into_values().collect()
    }

    /// Takes the kept deliveries older than `before` (all with `u64::MAX`), oldest first.
    pub(super) fn take_orphans_before(&self, before: u64) -> Vec<Delivery> {
        if self.orphan_count.load(Ordering::Acquire) == 0 {
            return Vec::new();
        }
        let Ok(mut orphans) = self.orphans.lock() else {
            return Vec::new();
        };
        let newer = orphans.split_off(&before);
        let older = std::mem::replace(&mut *orphans, newer);
        self.orphan_count.store(orphans.len(), Ordering::Release);
        drop(orphans);
        older.into_values().collect()
    }

    /// Drops (and so counts as shed) the orphans of a channel that will not get another actor.
    pub(super) fn shed_orphans(&self) {
        drop(self.take_all_orphans());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_error_is_one_bounded_line() {
        let lifecycle = Lifecycle::default();
        lifecycle.set_error(ChannelError::ActorFailed(format!(
            "{}\nsecond line",
            "é".repeat(1_000)
        )));
        let shown = lifecycle.last_error().expect("set");
        assert_eq!(shown.chars().count(), MAX_ERROR_CHARS + 1);
        assert!(shown.ends_with('…') && !shown.contains('\n'));
        lifecycle.set_error(ChannelError::ActorFailed("short".into()));
        assert_eq!(lifecycle.last_error().as_deref(), Some("short"));
    }

    #[test]
    fn only_the_condition_that_passed_is_cleared() {
        let lifecycle = Lifecycle::default();
        let not_loaded = |e: &ChannelError| matches!(e, ChannelError::StateNotLoaded(_));
        lifecycle.set_error(ChannelError::ActorFailed(
            "stored state not loaded yet: a panic quoting it".into(),
        ));
        lifecycle.clear_error_if(not_loaded);
        assert!(
            lifecycle.last_error().is_some(),
            "an actor failure that merely reads like it is kept"
        );
        lifecycle.set_error(ChannelError::StateNotLoaded("timeout".into()));
        assert_eq!(
            lifecycle.last_error().as_deref(),
            Some("stored state not loaded yet: timeout")
        );
        lifecycle.clear_error_if(not_loaded);
        assert_eq!(lifecycle.last_error(), None);
    }
}
