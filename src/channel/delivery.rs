//! A [`Delivery`]: one admitted chat message on its way through a channel actor.
//!
//! It carries the admission permit, so the channel's in-flight count falls exactly when the
//! message is finished with, however that happens. Its `Drop` makes sure nothing is lost
//! silently:
//! - dropped before it was handled (its actor died with it still in the mailbox, or a send to a
//!   dead actor failed): it is kept as an orphan and handed, in order, to the restarted actor;
//! - dropped while being handled (the handler panicked on it): counted as `poisoned`, not
//!   retried, so one poison message cannot crash-loop its channel;
//! - dropped after the channel failed or was parted: counted as shed with that reason.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::OwnedSemaphorePermit;

use super::admission::ShedReason;
use super::lifecycle::ChannelStatus;
use super::registry::ChannelShared;
use crate::engine::ChatEvent;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Pending,
    InHandler,
    Done,
}

struct Inner {
    seq: u64,
    event: ChatEvent,
    received_at: Instant,
    channel: Arc<ChannelShared>,
    _permit: OwnedSemaphorePermit,
}

/// One admitted message. See the module docs for what its `Drop` does.
pub struct Delivery {
    inner: Option<Inner>,
    stage: Stage,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("seq", &self.seq())
            .field("stage", &self.stage)
            .finish()
    }
}

impl Delivery {
    /// Wraps an admitted event; takes the channel's next sequence number.
    pub fn new(
        channel: Arc<ChannelShared>,
        event: ChatEvent,
        received_at: Instant,
        permit: OwnedSemaphorePermit,
    ) -> Delivery {
        let seq = channel.admission.next_seq();
        Delivery {
            inner: Some(Inner {
                seq,
                event,
                received_at,
                channel,
                _permit: permit,
            }),
            stage: Stage::Pending,
        }
    }

    pub fn seq(&self) -> u64 {
        self.inner.as_ref().map_or(u64::MAX, |i| i.seq)
    }

    pub fn received_at(&self) -> Option<Instant> {
        self.inner.as_ref().map(|i| i.received_at)
    }

    /// Marks the delivery as being handled and lends out its event. If it is dropped before
    /// [`Delivery::finish`], it counts as poisoned.
    pub fn begin(&mut self) -> Option<&ChatEvent> {
        self.stage = Stage::InHandler;
        self.inner.as_ref().map(|i| &i.event)
    }

    /// The message was handled: release its slot.
    pub fn finish(mut self) {
        self.stage = Stage::Done;
    }

    /// Drops the message on purpose, counted under `reason`.
    pub fn shed(mut self, reason: ShedReason) {
        if let Some(inner) = self.inner.take() {
            inner.channel.counters.add_shed(reason);
        }
        self.stage = Stage::Done;
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        let channel = Arc::clone(&inner.channel);
        match self.stage {
            Stage::Done => {}
            Stage::InHandler => {
                channel.counters.add_shed(ShedReason::Poisoned);
                tracing::warn!(channel = %channel.key, seq = inner.seq, "message dropped: its handler failed on it");
            }
            Stage::Pending => {
                let seq = inner.seq;
                let orphan = Delivery {
                    inner: Some(inner),
                    stage: Stage::Pending,
                };
                if let Some(mut refused) = channel.lifecycle.keep_orphan(seq, orphan) {
                    // The channel will not get another actor: count it as shed.
                    let reason = if channel.status() == ChannelStatus::Failed {
                        ShedReason::ChannelFailed
                    } else {
                        ShedReason::Parted
                    };
                    refused.inner.take();
                    refused.stage = Stage::Done;
                    channel.counters.add_shed(reason);
                }
            }
        }
    }
}
