//! The channel registry: one [`ChannelShared`] per joined channel, shared by the router, the
//! channel's actor, its supervisor and the HTTP endpoints.
//!
//! `ChannelShared` is the channel's public face, made of parts that each have one job and
//! their own file: its admission gate ([`Gate`]: permits, sequence numbers, the waiting line),
//! its counters (atomics: the hot path never takes a lock), its [`Lifecycle`] (status, last
//! error, orphans), its [`Mailbox`] (the current actor, timer ticks) and its [`StreamStatus`].
//! It outlives any one actor, so a restarted actor picks up where the failed one stopped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

use super::admission::{Gate, ShedReason};
use super::key::ChannelKey;
use super::lifecycle::{ChannelStatus, Lifecycle};
use super::mailbox::Mailbox;
use super::stream::StreamStatus;
use crate::engine::Drops;

/// Channels ordered busiest first (messages received), then by platform and name: the order
/// of `/v1/channels?sort=received` and of the channels `/metrics` gives series of their own.
pub fn busiest_first(a: &ChannelShared, b: &ChannelShared) -> std::cmp::Ordering {
    let received = |c: &ChannelShared| c.counters.received.load(Ordering::Relaxed);
    received(b).cmp(&received(a)).then_with(|| by_name(a, b))
}

/// Channels ordered by platform, then name.
pub fn by_name(a: &ChannelShared, b: &ChannelShared) -> std::cmp::Ordering {
    (a.key.platform, &a.key.name).cmp(&(b.key.platform, &b.key.name))
}

/// Per-channel counters. Monotonic, read by `/v1/channels` and `/metrics`.
#[derive(Debug, Default)]
pub struct ChannelCounters {
    /// Messages routed to this channel.
    pub received: AtomicU64,
    /// Messages its handler finished.
    pub processed: AtomicU64,
    shed: [AtomicU64; ShedReason::ALL.len()],
    /// Actor failures (each followed by a restart unless the channel was marked failed).
    pub restarts: AtomicU64,
    /// What the engine's bounded state dropped or refused, by [`Drops::REASONS`].
    engine_dropped: [AtomicU64; Drops::REASONS.len()],
}

impl ChannelCounters {
    pub fn add_shed(&self, reason: ShedReason) {
        self.shed[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn shed(&self, reason: ShedReason) -> u64 {
        self.shed[reason.index()].load(Ordering::Relaxed)
    }

    /// Adds what the engine dropped between two of its [`Drops`] readings.
    pub fn add_engine_dropped(&self, before: &Drops, now: &Drops) {
        for ((counter, was), is) in self
            .engine_dropped
            .iter()
            .zip(before.counts())
            .zip(now.counts())
        {
            if is > was {
                counter.fetch_add(is - was, Ordering::Relaxed);
            }
        }
    }

    /// What the engine dropped, for [`Drops::REASONS`] index `index`.
    pub fn engine_dropped(&self, index: usize) -> u64 {
        self.engine_dropped
            .get(index)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    pub fn shed_total(&self) -> u64 {
        self.shed.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// Everything about one channel that outlives its actor.
#[derive(Debug)]
pub struct ChannelShared {
    pub key: ChannelKey,
    /// One permit per message allowed in flight, and the order messages were admitted in.
    pub admission: Gate,
    pub counters: ChannelCounters,
    pub lifecycle: Lifecycle,
    pub mailbox: Mailbox,
    pub stream: StreamStatus,
}

impl ChannelShared {
    pub fn new(key: ChannelKey, capacity: u32) -> Arc<Self> {
        Arc::new(ChannelShared {
            key,
            admission: Gate::new(capacity),
            counters: ChannelCounters::default(),
            lifecycle: Lifecycle::default(),
            mailbox: Mailbox::default(),
            stream: StreamStatus::default(),
        })
    }

    /// The channel's status (a shortcut for `lifecycle.status()`).
    pub fn status(&self) -> ChannelStatus {
        self.lifecycle.status()
    }

    /// The last error as `/v1/channels` shows it (a shortcut for `lifecycle.last_error()`).
    pub fn last_error(&self) -> Option<String> {
        self.lifecycle.last_error()
    }

    /// Starts the actor of an idle channel (`supervisor.lazy_start`): the first caller moves
    /// it to starting and asks the supervisor; everyone else, and a channel that is not idle,
    /// does nothing. Messages meanwhile wait as orphans, in order, for the actor.
    pub fn start_if_idle(&self) {
        if self.lifecycle.claim_start() && !self.mailbox.request_start(&self.key) {
            // Nobody to start it (a channel made outside a supervisor): fail it, counted,
            // rather than keep its messages for an actor that never comes.
            self.lifecycle
                .set_error(super::lifecycle::ChannelError::SpawnFailed(
                    "no supervisor to start the idle channel's actor".into(),
                ));
            self.lifecycle.set_status(ChannelStatus::Failed);
            self.lifecycle.shed_orphans();
        }
    }

    /// Messages admitted and not yet finished (mailbox, handler, or waiting for a restart).
    pub fn in_flight(&self) -> u64 {
        self.admission.in_flight()
    }
}

/// The set of channels, keyed by [`ChannelKey`].
///
/// Rule for the `DashMap`: never hold one of its references across an `.await` or while
/// touching the map again; clone the `Arc` out and drop the reference.
#[derive(Debug, Default)]
pub struct ChannelRegistry {
    channels: DashMap<ChannelKey, Arc<ChannelShared>>,
}

impl ChannelRegistry {
    pub fn new() -> Arc<Self> {
        Arc::new(ChannelRegistry::default())
    }

    pub fn get(&self, key: &ChannelKey) -> Option<Arc<ChannelShared>> {
        self.channels
            .get(key)
            .map(|entry| Arc::clone(entry.value()))
    }

    pub fn insert(&self, shared: Arc<ChannelShared>) {
        self.channels.insert(shared.key.clone(), shared);
    }

    pub fn remove(&self, key: &ChannelKey) -> Option<Arc<ChannelShared>> {
        self.channels.remove(key).map(|(_, shared)| shared)
    }

    /// A snapshot of all channels, sorted by key.
    pub fn all(&self) -> Vec<Arc<ChannelShared>> {
        let mut all: Vec<_> = self
            .channels
            .iter()
            .map(|e| Arc::clone(e.value()))
            .collect();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        all
    }

    /// Calls `f` on every channel, in no particular order, without collecting them.
    /// `f` must not touch the registry itself.
    pub fn for_each(&self, mut f: impl FnMut(&Arc<ChannelShared>)) {
        for entry in self.channels.iter() {
            f(entry.value());
        }
    }

    pub fn len(&self) -> usize {
        self.channels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_drops_are_added_as_increases_between_readings() {
        let counters = ChannelCounters::default();
        let first = Drops {
            warnings_refused: 3,
            cooldowns_evicted: 2,
            ..Drops::default()
        };
        counters.add_engine_dropped(&Drops::default(), &first);
        let second = Drops {
            warnings_refused: 5,
            ..first
        };
        counters.add_engine_dropped(&first, &second);
        // A restarted actor's engine counts from zero again: nothing is taken back.
        counters.add_engine_dropped(&second, &Drops::default());
        let reason = |name: &str| {
            let index = Drops::REASONS.iter().position(|r| *r == name);
            counters.engine_dropped(index.expect("a reason"))
        };
        assert_eq!(reason("warning_refused"), 5);
        assert_eq!(reason("cooldown_evicted"), 2);
        assert_eq!(reason("journal_dropped"), 0);
    }
}
