//! `[admission]`: how many messages a channel may have in flight, and what happens to the
//! next one when it is full (the router's overflow policy).

use serde::{Deserialize, Serialize};

use super::{invalid, positive, ConfigError};
/// What the router does when a channel already has `capacity` messages in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverflowPolicy {
    /// Drop the message at once; counted per channel with reason `full`.
    Shed,
    /// Park it in the channel's bounded waiting line for up to `block_timeout_ms`; dropped and
    /// counted (`deadline`, `wait_full`) when that runs out. Other channels are never held up.
    Block,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdmissionConfig {
    /// Messages in flight per channel (in its actor's mailbox or being handled).
    pub capacity: u32,
    pub overflow: OverflowPolicy,
    /// `block` only: longest wait for a slot.
    pub block_timeout_ms: u64,
    /// `block` only: messages that may wait per channel.
    pub wait_capacity: usize,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            capacity: 512,
            overflow: OverflowPolicy::Shed,
            block_timeout_ms: 250,
            wait_capacity: 1_024,
        }
    }
}

impl AdmissionConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let a = self;
        if a.capacity == 0 || a.capacity > 1_000_000 {
            return Err(invalid("admission.capacity", "must be 1..=1000000"));
        }
        if a.overflow == OverflowPolicy::Block {
            positive("admission.block_timeout_ms", a.block_timeout_ms)?;
            positive("admission.wait_capacity", a.wait_capacity as u64)?;
        }
        Ok(())
    }
}
