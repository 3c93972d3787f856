//! What the Twitch side knows right now: connected or not, which channels are wanted and which
//! are joined, where the bot is a moderator, and the current connection's send queue.
//! Shared by the session, the join pacer, the outbound scheduler and `/readyz`.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};

use dashmap::DashSet;
use tokio::sync::mpsc;

#[derive(Debug, Default)]
pub struct TwitchStatus {
    connected: AtomicBool,
    wanted: Mutex<BTreeSet<String>>,
    joined: Mutex<HashSet<String>>,
    moderator_in: DashSet<String>,
    /// Channel login -> its user id (`room-id` from ROOMSTATE), for Helix calls.
    room_ids: dashmap::DashMap<String, String>,
    /// The bot's own user id (GLOBALUSERSTATE), for Helix calls.
    bot_user_id: RwLock<Option<String>>,
    /// Lines to write on the current connection (bounded); None while disconnected.
    wire: RwLock<Option<mpsc::Sender<String>>>,
}

impl TwitchStatus {
    pub fn new(moderator_channels: &[String]) -> TwitchStatus {
        let status = TwitchStatus::default();
        for channel in moderator_channels {
            status.moderator_in.insert(channel.clone());
        }
        status
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    pub(crate) fn set_connected(&self, wire: Option<mpsc::Sender<String>>) {
        let connected = wire.is_some();
        if let Ok(mut slot) = self.wire.write() {
            *slot = wire;
        }
        if !connected {
            if let Ok(mut joined) = self.joined.lock() {
                joined.clear();
            }
        }
        self.connected.store(connected, Ordering::Release);
    }

    /// Queues a raw line on the current connection. False when disconnected or its queue is full.
    pub fn send_line(&self, line: String) -> bool {
        let wire = self.wire.read().ok().and_then(|w| w.clone());
        wire.is_some_and(|w| w.try_send(line).is_ok())
    }

    /// The current connection's send queue, to wait on when it is full.
    pub fn wire(&self) -> Option<mpsc::Sender<String>> {
        self.wire.read().ok().and_then(|w| w.clone())
    }

    pub fn want(&self, channel: &str) {
        if let Ok(mut wanted) = self.wanted.lock() {
            wanted.insert(channel.to_string());
        }
    }

    pub fn unwant(&self, channel: &str) {
        if let Ok(mut wanted) = self.wanted.lock() {
            wanted.remove(channel);
        }
    }

    pub fn wants(&self, channel: &str) -> bool {
        self.wanted.lock().is_ok_and(|w| w.contains(channel))
    }

    pub fn wanted(&self) -> Vec<String> {
        self.wanted
            .lock()
            .map(|w| w.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn set_joined(&self, channel: &str, joined: bool) {
        if let Ok(mut set) = self.joined.lock() {
            if joined {
                set.insert(channel.to_string());
            } else {
                set.remove(channel);
            }
        }
    }

    pub fn is_joined(&self, channel: &str) -> bool {
        self.joined.lock().is_ok_and(|j| j.contains(channel))
    }

    /// Wanted channels not joined yet.
    pub fn not_joined(&self) -> Vec<String> {
        let joined = self.joined.lock().map(|j| j.clone()).unwrap_or_default();
        self.wanted()
            .into_iter()
            .filter(|c| !joined.contains(c))
            .collect()
    }

    pub fn room_id(&self, channel: &str) -> Option<String> {
        self.room_ids.get(channel).map(|id| id.value().clone())
    }

    pub(crate) fn set_room_id(&self, channel: &str, id: &str) {
        if !id.is_empty() {
            self.room_ids.insert(channel.to_string(), id.to_string());
        }
    }

    pub fn bot_user_id(&self) -> Option<String> {
        self.bot_user_id.read().ok().and_then(|id| id.clone())
    }

    /// Whether `id` is the bot's own user id (false while it is not known, and for "").
    pub fn is_bot_user_id(&self, id: &str) -> bool {
        !id.is_empty()
            && self
                .bot_user_id
                .read()
                .is_ok_and(|own| own.as_deref() == Some(id))
    }

    pub(crate) fn set_bot_user_id(&self, id: &str) {
        if let Ok(mut slot) = self.bot_user_id.write() {
            *slot = Some(id.to_string());
        }
    }

    pub fn is_moderator(&self, channel: &str) -> bool {
        self.moderator_in.contains(channel)
    }

    pub(crate) fn set_moderator(&self, channel: &str, moderator: bool) {
        if moderator {
            self.moderator_in.insert(channel.to_string());
        } else {
            self.moderator_in.remove(channel);
        }
    }
}
