//! A channel's mailbox: its current actor (none while it restarts or before its first message)
//! and the timer-tick flags. The one place outside the actor system that sends the actor
//! messages on the channel's behalf (ticks, stream status, wake-ups); the router hands it
//! deliveries the same way, and through it asks for the actor of an idle channel.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use ractor::ActorRef;

use super::actor::ChannelMsg;
use super::key::ChannelKey;

/// Who starts the actor of an idle channel (the supervisor): asked once per start, never waited
/// for.
pub trait ActorStarter: Send + Sync {
    fn start(&self, key: &ChannelKey);
}

#[derive(Default)]
pub struct Mailbox {
    actor: RwLock<Option<ActorRef<ChannelMsg>>>,
    /// Set by the supervisor when the channel joins; shared by every channel.
    starter: OnceLock<Arc<dyn ActorStarter>>,
    /// The channel's rules have timers: the ticker sends it ticks.
    wants_ticks: AtomicBool,
    /// A tick is in the mailbox; no second one is sent until it is handled.
    tick_pending: AtomicBool,
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox")
            .field("actor", &self.actor)
            .field("wants_ticks", &self.wants_ticks)
            .field("tick_pending", &self.tick_pending)
            .finish_non_exhaustive()
    }
}

impl Mailbox {
    /// The current actor, if one is up.
    pub fn actor(&self) -> Option<ActorRef<ChannelMsg>> {
        self.actor.read().ok().and_then(|a| a.clone())
    }

    pub fn set_actor(&self, actor: Option<ActorRef<ChannelMsg>>) {
        if let Ok(mut slot) = self.actor.write() {
            *slot = actor;
        }
    }

    /// Who starts this channel's actor when it is idle (set once; later calls change nothing).
    pub fn set_starter(&self, starter: Arc<dyn ActorStarter>) {
        let _ = self.starter.set(starter);
    }

    /// Asks for the channel's actor (the caller moved the channel from idle to starting).
    /// False when nobody starts actors for it.
    pub fn request_start(&self, key: &ChannelKey) -> bool {
        match self.starter.get() {
            Some(starter) => {
                starter.start(key);
                true
            }
            None => false,
        }
    }

    /// Sends to the current actor; false when there is none or it just died.
    pub fn send(&self, message: ChannelMsg) -> bool {
        self.actor()
            .is_some_and(|actor| actor.send_message(message).is_ok())
    }

    /// Whether the channel's rules have timers (the actor says so whenever its rules change).
    pub fn set_wants_ticks(&self, wants: bool) {
        self.wants_ticks.store(wants, Ordering::Relaxed);
    }

    /// Sends a timer tick unless one is already pending or the channel has no timers.
    pub fn tick(&self) {
        if !self.wants_ticks.load(Ordering::Relaxed)
            || self.tick_pending.swap(true, Ordering::AcqRel)
        {
            return;
        }
        if !self.send(ChannelMsg::Tick) {
            self.tick_pending.store(false, Ordering::Release);
        }
    }

    /// The pending tick was handled (or died with a failed actor): the next one may go.
    pub fn tick_handled(&self) {
        self.tick_pending.store(false, Ordering::Release);
    }
}
