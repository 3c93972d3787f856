//! The router: admission control between the chat connection and the channel actors.
//!
//! ractor mailboxes are unbounded, so the bound is ours: each channel has a gate with
//! `capacity` permits, one per message in flight (in the mailbox or being handled). The router
//! never waits: [`Router::route`] is synchronous, so one slow channel cannot hold up the
//! connection or any other channel.
//!
//! When a channel is full, the overflow policy decides:
//! - `shed`: the message is dropped and counted (`reason="full"`);
//! - `block`: the message goes into the channel's own bounded waiting line, where a small
//!   per-channel task waits for a permit up to `block_timeout_ms` (then `reason="deadline"`);
//!   a full line sheds with `reason="wait_full"`. While anything waits, later messages of that
//!   channel queue behind it, so order within the channel holds; when nothing waits and a slot
//!   is free, a message goes straight to the actor as under `shed`.
//!
//! Each channel's admission state is its [`Gate`] (part of `ChannelShared`); every message
//! not handled is counted under a [`ShedReason`].
//!
//! Before admission, a chat message from an account in `engine.ignore_users` is dropped: it is
//! counted as received and processed (it was handled, by ignoring it: the identity sent =
//! processed + shed holds) and in `messages_ignored_total{reason="ignore_list"}`. The bot's
//! own messages are recognised by the platforms and handed to [`Router::own_message`]: counted
//! there, but not as received, since they are the service's own output coming back.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::actor::ChannelMsg;
use super::delivery::Delivery;
use super::ignore::IgnoreList;
use super::key::ChannelKey;
use super::lifecycle::ChannelStatus;
use super::registry::{ChannelRegistry, ChannelShared};
use crate::config::{AdmissionConfig, OverflowPolicy};
use crate::engine::{ChatEvent, EventKind, Platform};
use crate::obs::{IgnoreReason, Metrics};

/// Why a message was not handled. Every shed message is counted under one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShedReason {
    /// The channel had `capacity` messages in flight (policy `shed`).
    Full,
    /// Waited `block_timeout_ms` without getting a slot (policy `block`).
    Deadline,
    /// The channel's waiting line was full (policy `block`).
    WaitFull,
    /// The message made the channel's handler panic or fail; it is not retried.
    Poisoned,
    /// The channel is marked failed.
    ChannelFailed,
    /// The channel was parted or the service shut down before the message was handled.
    Parted,
}

impl ShedReason {
    pub const ALL: [ShedReason; 6] = [
        ShedReason::Full,
        ShedReason::Deadline,
        ShedReason::WaitFull,
        ShedReason::Poisoned,
        ShedReason::ChannelFailed,
        ShedReason::Parted,
    ];

    /// [`ShedReason::as_str`] of each of [`ShedReason::ALL`], in that order.
    pub const NAMES: [&'static str; 6] = [
        "full",
        "deadline",
        "wait_full",
        "poisoned",
        "channel_failed",
        "parted",
    ];

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self.index()]
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

/// One channel's admission state: a semaphore with one permit per message allowed in flight
/// (in the mailbox or being handled), the sequence numbers that order deliveries, and under
/// `block` the bounded waiting line.
#[derive(Debug)]
pub struct Gate {
    permits: Arc<Semaphore>,
    capacity: u32,
    /// Sequence number given to the next delivery; orders redelivered messages.
    next_seq: AtomicU64,
    /// `block` policy: the channel's bounded waiting line.
    waiting_line: Mutex<Option<mpsc::Sender<Waiting>>>,
    /// Messages in the waiting line or being delivered from it. While it is above zero, new
    /// messages queue behind them, so order holds.
    waiting: AtomicUsize,
}

impl Gate {
    pub fn new(capacity: u32) -> Gate {
        Gate {
            permits: Arc::new(Semaphore::new(capacity as usize)),
            capacity,
            next_seq: AtomicU64::new(0),
            waiting_line: Mutex::new(None),
            waiting: AtomicUsize::new(0),
        }
    }

    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Messages admitted and not yet finished.
    pub fn in_flight(&self) -> u64 {
        (self.capacity as u64).saturating_sub(self.permits.available_permits() as u64)
    }

    /// The sequence number of the next admitted message.
    pub(super) fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    fn try_admit(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.permits).try_acquire_owned().ok()
    }
}

/// A message parked in a channel's waiting line (`block` policy).
#[derive(Debug)]
pub struct Waiting {
    event: ChatEvent,
    received_at: Instant,
}

/// What happened to a routed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routed {
    Admitted,
    Waiting,
    Shed(ShedReason),
    /// Its author is ignored (counted as processed, never handled).
    Ignored(IgnoreReason),
    /// No such channel is joined.
    Unrouted,
}

#[derive(Debug)]
pub struct Router {
    registry: Arc<ChannelRegistry>,
    metrics: Arc<Metrics>,
    config: AdmissionConfig,
    ignore: IgnoreList,
    /// `messages_ignored_total` by (platform, reason), looked up once.
    ignored: [Counter; 6],
}

impl Router {
    /// A router that ignores nobody (but the bot itself, see [`Router::own_message`]).
    pub fn new(
        registry: Arc<ChannelRegistry>,
        metrics: Arc<Metrics>,
        config: AdmissionConfig,
    ) -> Arc<Router> {
        Router::with_ignore_list(registry, metrics, config, IgnoreList::default())
    }

    /// A router that drops the chat messages of the accounts in `ignore` before admission.
    pub fn with_ignore_list(
        registry: Arc<ChannelRegistry>,
        metrics: Arc<Metrics>,
        config: AdmissionConfig,
        ignore: IgnoreList,
    ) -> Arc<Router> {
        let ignored = [
            (Platform::Twitch, IgnoreReason::Own),
            (Platform::Twitch, IgnoreReason::IgnoreList),
            (Platform::Twitch, IgnoreReason::Bot),
            (Platform::Discord, IgnoreReason::Own),
            (Platform::Discord, IgnoreReason::IgnoreList),
            (Platform::Discord, IgnoreReason::Bot),
        ]
        .map(|(platform, reason)| metrics.ignored(platform, reason));
        Arc::new(Router {
            registry,
            metrics,
            config,
            ignore,
            ignored,
        })
    }

    fn count_ignored(&self, platform: Platform, reason: IgnoreReason) {
        let platform = match platform {
            Platform::Twitch => 0,
            Platform::Discord => 3,
        };
        let reason = match reason {
            IgnoreReason::Own => 0,
            IgnoreReason::IgnoreList => 1,
            IgnoreReason::Bot => 2,
        };
        self.ignored[platform + reason].inc();
    }

    /// A chat message the platform recognised as the bot's own: counted, never handled. Not
    /// counted as received by its channel: it is the service's own output coming back (over
    /// EventSub every reply does), not chat input.
    pub fn own_message(&self, platform: Platform) -> Routed {
        self.count_ignored(platform, IgnoreReason::Own);
        Routed::Ignored(IgnoreReason::Own)
    }

    /// A chat message from another bot, as the platform marks them (Discord's bot accounts
    /// and webhooks): counted, never handled, and like the bot's own not chat input.
    pub fn bot_message(&self, platform: Platform) -> Routed {
        self.count_ignored(platform, IgnoreReason::Bot);
        Routed::Ignored(IgnoreReason::Bot)
    }

    pub fn capacity(&self) -> u32 {
        self.config.capacity
    }

    /// Sets a new channel up for routing (its waiting line, under `block`).
    pub fn prepare(&self, shared: &Arc<ChannelShared>) {
        if self.config.overflow != OverflowPolicy::Block {
            return;
        }
        let (tx, rx) = mpsc::channel(self.config.wait_capacity);
        if let Ok(mut line) = shared.admission.waiting_line.lock() {
            *line = Some(tx);
        }
        let timeout = Duration::from_millis(self.config.block_timeout_ms);
        tokio::spawn(serve_waiting_line(Arc::downgrade(shared), rx, timeout));
    }

    /// Closes a parted channel's waiting line; what is still in it is shed as `parted`.
    pub fn forget(&self, shared: &ChannelShared) {
        if let Ok(mut line) = shared.admission.waiting_line.lock() {
            line.take();
        }
    }

    /// Routes one event to its channel. Never waits.
    pub fn route(&self, event: ChatEvent, received_at: Instant) -> Routed {
        let key = ChannelKey {
            platform: event.platform,
            name: Arc::clone(&event.channel),
        };
        let Some(shared) = self.registry.get(&key) else {
            self.metrics.events_unrouted.inc();
            return Routed::Unrouted;
        };
        shared
            .counters
            .received
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let EventKind::Message(message) = &event.kind {
            if self.ignore.contains(&message.user) {
                shared
                    .counters
                    .processed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.count_ignored(event.platform, IgnoreReason::IgnoreList);
                return Routed::Ignored(IgnoreReason::IgnoreList);
            }
        }
        match shared.status() {
            ChannelStatus::Failed => return shed(&shared, ShedReason::ChannelFailed),
            ChannelStatus::Parting => return shed(&shared, ShedReason::Parted),
            _ => {}
        }
        match self.config.overflow {
            OverflowPolicy::Shed => match shared.admission.try_admit() {
                Some(permit) => {
                    deliver(
                        Delivery::new(Arc::clone(&shared), event, received_at, permit),
                        &shared,
                    );
                    Routed::Admitted
                }
                None => shed(&shared, ShedReason::Full),
            },
            OverflowPolicy::Block => enqueue_waiting(&shared, Waiting { event, received_at }),
        }
    }
}

fn shed(shared: &ChannelShared, reason: ShedReason) -> Routed {
    shared.counters.add_shed(reason);
    Routed::Shed(reason)
}

fn enqueue_waiting(shared: &Arc<ChannelShared>, waiting: Waiting) -> Routed {
    let gate = &shared.admission;
    if gate.waiting.load(Ordering::Acquire) == 0 {
        if let Some(permit) = gate.try_admit() {
            let delivery = Delivery::new(
                Arc::clone(shared),
                waiting.event,
                waiting.received_at,
                permit,
            );
            deliver(delivery, shared);
            return Routed::Admitted;
        }
    }
    let line = gate.waiting_line.lock().ok().and_then(|l| l.clone());
    let Some(line) = line else {
        return shed(shared, ShedReason::Parted);
    };
    gate.waiting.fetch_add(1, Ordering::AcqRel);
    let refused = match line.try_send(waiting) {
        Ok(()) => return Routed::Waiting,
        Err(mpsc::error::TrySendError::Full(_)) => ShedReason::WaitFull,
        Err(mpsc::error::TrySendError::Closed(_)) => ShedReason::Parted,
    };
    gate.waiting.fetch_sub(1, Ordering::AcqRel);
    shed(shared, refused)
}

/// Hands an admitted message to the channel's current actor. If there is none (it is
/// restarting, or idle until this first message) or the send fails (it just died), the
/// delivery's `Drop` keeps it as an orphan for the next actor; an idle channel's actor is asked
/// for after the orphan is kept, so the actor finds it when it starts.
fn deliver(delivery: Delivery, shared: &ChannelShared) {
    let Some(actor) = shared.mailbox.actor() else {
        drop(delivery);
        shared.start_if_idle();
        // An actor that came up between the look and the keep may have swept its orphans
        // already: make it collect this one (nothing is sent while there is none).
        shared.mailbox.send(ChannelMsg::Wake);
        return;
    };
    if let Err(failed) = actor.send_message(ChannelMsg::Deliver(delivery)) {
        drop(failed);
        // A newer actor may already be up: make it collect the orphan.
        shared.mailbox.send(ChannelMsg::Wake);
    }
}

/// The `block` policy's per-channel task: waits for a slot for each parked message in turn.
async fn serve_waiting_line(
    channel: Weak<ChannelShared>,
    mut line: mpsc::Receiver<Waiting>,
    timeout: Duration,
) {
    while let Some(waiting) = line.recv().await {
        let Some(shared) = channel.upgrade() else {
            return;
        };
        let deadline = tokio::time::Instant::from_std(waiting.received_at + timeout);
        let gate = Arc::clone(&shared.admission.permits);
        match tokio::time::timeout_at(deadline, gate.acquire_owned()).await {
            Ok(Ok(permit)) if shared.status() != ChannelStatus::Parting => {
                let delivery = Delivery::new(
                    Arc::clone(&shared),
                    waiting.event,
                    waiting.received_at,
                    permit,
                );
                deliver(delivery, &shared);
            }
            Ok(_) => shared.counters.add_shed(ShedReason::Parted),
            Err(_) => shared.counters.add_shed(ShedReason::Deadline),
        }
        // Only now, with the message in the mailbox (or counted), may newer ones overtake the line.
        shared.admission.waiting.fetch_sub(1, Ordering::AcqRel);
    }
    // The line closed (channel parted): anything left was dropped with it.
}
