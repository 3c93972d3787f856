//! JOIN pacing: channels are joined no faster than Twitch allows (20 per 10 s by default), at
//! start-up, at run time and when rejoining everything after a reconnect.
//!
//! The pacer owns a de-duplicated queue of channels to join; commands come in over a bounded
//! channel. A [`SlidingWindow`] of `limit` JOINs per `window` sets the pace.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::status::TwitchStatus;
use crate::config::JoinLimits;
use crate::obs::Metrics;
use crate::util::window::SlidingWindow;

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
    let limit = limits.limit as usize;
    // A little slack so the server, which sees our JOINs a moment later, never counts more.
    let window =
        Duration::from_millis(limits.window_ms) + Duration::from_millis(limits.window_ms / 50);
    let mut sent = SlidingWindow::new(window);
    let mut queue = JoinQueue::default();
    loop {
        let ready_to_send = !queue.is_empty() && status.is_connected();
        let free_at = tokio::time::Instant::from_std(sent.next_free(Instant::now(), limit));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            command = commands.recv() => match command {
                Some(command) => queue.apply(command, &status),
                None => return,
            },
            _ = tokio::time::sleep_until(free_at), if ready_to_send => {
                let Some(channel) = queue.pop() else { continue };
                if !status.wants(&channel) || status.is_joined(&channel) {
                    continue;
                }
                if status.send_line(format!("JOIN #{channel}")) {
                    sent.record(Instant::now());
                    metrics.twitch_joins_sent.inc();
                } else if status.is_connected() {
                    // The connection's send queue was full: try again in turn.
                    queue.push(channel);
                }
                // Disconnected: the next `Connected` requeues every wanted channel.
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
                // Not joined from now on, so a quick re-join is queued rather than ignored.
                status.set_joined(&channel, false);
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
