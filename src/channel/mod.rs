//! Channels: one supervised actor per channel, and everything that keeps it bounded.
//!
//! - [`key`], [`registry`]: the channel key and the registry of joined channels; each
//!   channel's [`ChannelShared`] is made of the parts below and outlives any one actor.
//! - [`admission`]: the router and each channel's gate (permits, waiting line, shed reasons):
//!   ractor mailboxes are unbounded, the gate in front of them is what bounds them.
//! - [`ignore`]: whose messages are dropped before admission (`engine.ignore_users`, the
//!   bot's own account).
//! - [`lifecycle`]: status, typed last error, orphans; [`mailbox`]: the current actor and its
//!   ticks; [`stream`]: the stream's live status.
//! - [`delivery`]: one admitted message, accounted for however it ends.
//! - [`actor`]: the `ChannelActor`, sole owner of one channel's engine state.
//! - [`supervisor`]: spawns, restarts (with backoff and a restart intensity limit) and stops
//!   channel actors; joins and parts go through it.
//! - [`rules_book`]: each channel's engine rules, loaded from files and edited at run time.
//! - [`dispatch`]: one [`ActionSink`] in front of each platform's outbound side;
//!   [`cross`]: the sink in front of it that shares filter bans with the channels that ask.
//! - [`ticker`]: timer ticks; [`metrics`]: the per-channel metrics collector.
//!
//! Output leaves through two seams: [`ActionSink`] (the platform's outbound side, chosen per
//! platform by [`dispatch::PlatformDispatch`]) and the optional [`ProcessedTap`] (observers:
//! tests, benchmarks). The platforms sit above this floor: they route into it and implement
//! `ActionSink`; it never names them.

pub mod actor;
pub mod admission;
pub mod cross;
pub mod delivery;
pub mod dispatch;
pub mod ignore;
pub mod key;
pub mod lifecycle;
pub mod mailbox;
pub mod metrics;
pub mod registry;
pub mod rules_book;
pub mod stream;
pub mod supervisor;
pub mod ticker;

pub use actor::{ChannelContext, ChannelMsg};
pub use admission::{Router, ShedReason};
pub use key::ChannelKey;
pub use lifecycle::{ChannelError, ChannelStatus};
pub use registry::{ChannelRegistry, ChannelShared};
pub use rules_book::RulesBook;
pub use supervisor::{JoinOutcome, SpawnError, Supervisor, SupervisorMsg};

use std::time::Instant;

use crate::engine::{Action, ChatEvent};

/// Where a channel actor's actions go (the platform's outbound side).
///
/// `submit` must not block: implementations queue (bounded) and count what they drop.
pub trait ActionSink: Send + Sync + 'static {
    fn submit(&self, event: &ChatEvent, action: Action, received_at: Option<Instant>);
}

/// Observes every message a channel actor finished handling, in order.
pub trait ProcessedTap: Send + Sync + 'static {
    fn processed(&self, event: &ChatEvent, seq: u64);
}
