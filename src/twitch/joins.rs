//! JOIN pacing: channels are joined no faster than Twitch allows (20 per 10 s by default), at
//! start-up, at run time and when rejoining everything after a reconnect.
//!
//! The pacer owns a de-duplicated queue of channels to join; commands come in over a bounded
//! channel. A governor rate limiter with `limit` cells per `window` sets the pace.

use std::collections::{HashSet, VecDeque};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{Quota, RateLimiter};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::status::TwitchStatus;
use crate::config::JoinLimits;
use crate::obs::Metrics;

#[derive(Debug)]
pub enum JoinCmd {
    Join(String),
    Part(String),
    /// A session logged in: (re)join every wanted channel.
    Connected,
}

pub(crate) async fn run_join_pacer(
    limits: JoinLimits,
    status: Arc<TwitchStatus>,
    metrics: Arc<Metrics>,
    mut commands: mpsc::Receiver<JoinCmd>,
    shutdown: CancellationToken,
) {
    let limit = NonZeroU32::new(limits.limit).unwrap_or(NonZeroU32::MIN);
    let period = Duration::from_millis(limits.window_ms) / limit.get();
    let Some(quota) = Quota::with_period(period.max(Duration::from_micros(1))) else {
        return;
    };
    let limiter = RateLimiter::direct(quota.allow_burst(limit));
    let mut queue = JoinQueue::default();
    loop {
        let ready_to_send = !queue.is_empty() && status.is_connected();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            command = commands.recv() => match command {
                Some(command) => queue.apply(command, &status),
                None => return,
            },
            _ = limiter.until_ready(), if ready_to_send => {
                if let Some(channel) = queue.pop() {
                    // Without a connection the send fails; the next `Connected` requeues it.
                    if status.wants(&channel) && status.send_line(format!("JOIN #{channel}")) {
                        metrics.twitch_joins_sent.inc();
                    }
                }
            }
        }
    }
}

#[derive(Default)]
struct JoinQueue {
    order: VecDeque<String>,
    queued: HashSet<String>,
}

impl JoinQueue {
    fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn push(&mut self, channel: String) {
        if self.queued.insert(channel.clone()) {
            self.order.push_back(channel);
        }
    }

    fn pop(&mut self) -> Option<String> {
        let channel = self.order.pop_front()?;
        self.queued.remove(&channel);
        Some(channel)
    }

    fn apply(&mut self, command: JoinCmd, status: &TwitchStatus) {
        match command {
            JoinCmd::Join(channel) => {
                if !status.is_joined(&channel) {
                    self.push(channel);
                }
            }
            JoinCmd::Part(channel) => {
                if self.queued.remove(&channel) {
                    self.order.retain(|c| *c != channel);
                }
                status.send_line(format!("PART #{channel}"));
            }
            JoinCmd::Connected => {
                for channel in status.wanted() {
                    if !status.is_joined(&channel) {
                        self.push(channel);
                    }
                }
            }
        }
    }
}
