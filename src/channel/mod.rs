//! Actors: a supervisor owning one actor per channel.
//!
//! - [`supervisor`]: the `Supervisor` actor spawns, restarts (with backoff and a restart
//!   intensity limit) and stops channel actors; joins and parts go through it.
//! - [`channel`]: the `ChannelActor`, sole owner of one channel's engine state.
//! - [`registry`]: per-channel shared data (admission gate, counters, status) that outlives
//!   any one actor.
//! - [`rules_book`]: each channel's engine rules, loaded from files and edited at run time.
//! - [`delivery`]: one admitted message, accounted for however it ends.
//!
//! Output leaves through two seams: [`ActionSink`] (the transport's outbound side, chosen per
//! platform by [`dispatch::PlatformDispatch`]) and the
//! optional [`ProcessedTap`] (observers: tests, benchmarks).

pub mod actor;
pub mod admission;
pub mod delivery;
pub mod dispatch;
pub mod metrics;
pub mod registry;
pub mod rules_book;
pub mod supervisor;

pub use actor::{ChannelContext, ChannelMsg};
pub use registry::{ChannelKey, ChannelRegistry, ChannelShared, ChannelStatus, ShedReason};
pub use rules_book::RulesBook;
pub use supervisor::{JoinOutcome, Supervisor, SupervisorMsg};

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
