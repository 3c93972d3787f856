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
    // After a turn found the connection's send queue full: no JOIN before this.
    let mut wire_full_until = tokio::time::Instant::now();
    loop {
        let ready_to_send = !queue.is_empty() && status.is_connected();
        let free_at = tokio::time::Instant::from_std(sent.next_free(Instant::now(), limit))
            .max(wire_full_until);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            command = commands.recv() => match command {
                Some(command) => queue.apply(command, &status),
                None => return,
            },
            _ = tokio::time::sleep_until(free_at), if ready_to_send => {
                if send_while_free(&mut queue, &mut sent, limit, &status, &metrics) {
                    wire_full_until = tokio::time::Instant::now() + WIRE_FULL_BACKOFF;
                }
            }
        }
    }
}

/// Most JOINs sent in one turn before the pacer looks at its commands again.
const MAX_JOINS_PER_TURN: usize = 1_000;
/// Lines of the connection's send queue a turn leaves free (PONGs, replies).
const WIRE_HEADROOM: usize = 64;
/// How long the pacer waits after finding the connection's send queue full.
const WIRE_FULL_BACKOFF: Duration = Duration::from_millis(5);

/// Sends queued JOINs while the window has room, at most [`MAX_JOINS_PER_TURN`] and never into
/// the last [`WIRE_HEADROOM`] lines of the connection's send queue: one per wake-up would cap
/// joins at the timer's 1 ms resolution (100,000 channels in 100 s) however large the
/// allowance. True when the send queue was full (the caller waits a moment, not spins).
fn send_while_free(
    queue: &mut JoinQueue,
    sent: &mut SlidingWindow,
    limit: usize,
    status: &TwitchStatus,
    metrics: &Metrics,
) -> bool {
    let room = status
        .wire()
        .map_or(0, |wire| wire.capacity())
        .saturating_sub(WIRE_HEADROOM);
    if room == 0 {
        return status.is_connected();
    }
    for _ in 0..MAX_JOINS_PER_TURN.min(room) {
        let now = Instant::now();
        if sent.next_free(now, limit) > now {
            return false;
        }
        let Some(channel) = queue.pop() else {
            return false;
        };
        if !status.wants(&channel) || status.is_joined(&channel) {
            continue;
        }
        if status.send_line(format!("JOIN #{channel}")) {
            sent.record(now);
            metrics.twitch_joins_sent.inc();
        } else {
            let connected = status.is_connected();
            if connected {
                // The connection's send queue was full: try again in turn.
                queue.push(channel);
            }
            // Disconnected: the next `Connected` requeues every wanted channel.
            return connected;
        }
    }
    false
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

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(status: &TwitchStatus, n: usize) -> JoinQueue {
        let mut queue = JoinQueue::default();
        for i in 0..n {
            let channel = format!("chan{i}");
            status.want(&channel);
            queue.push(channel);
        }
        queue
    }

    #[test]
    fn a_turn_sends_what_the_window_allows_at_once_and_no_more() {
        let status = TwitchStatus::new(&[]);
        let (wire, mut lines) = mpsc::channel(10_000);
        status.set_connected(Some(wire));
        let metrics = Metrics::new(prometheus_client::registry::Registry::default());
        let mut queue = wanted(&status, 2_500);
        let mut sent = SlidingWindow::new(Duration::from_secs(10));
        // A large allowance: one turn sends its most, not one JOIN.
        send_while_free(&mut queue, &mut sent, 100_000, &status, &metrics);
        assert_eq!(lines.len(), MAX_JOINS_PER_TURN);
        assert_eq!(lines.try_recv().ok().as_deref(), Some("JOIN #chan0"));
        // A small one: the turn stops at the limit, the rest wait in order.
        let mut sent = SlidingWindow::new(Duration::from_secs(10));
        let before = lines.len();
        send_while_free(&mut queue, &mut sent, 20, &status, &metrics);
        assert_eq!(lines.len() - before, 20);
        send_while_free(&mut queue, &mut sent, 20, &status, &metrics);
        assert_eq!(lines.len() - before, 20, "the window is full");
        assert_eq!(queue.pop().as_deref(), Some("chan1020"));
    }

    #[test]
    fn a_turn_leaves_headroom_on_the_connection_and_keeps_the_rest_in_order() {
        let status = TwitchStatus::new(&[]);
        let (wire, mut lines) = mpsc::channel(WIRE_HEADROOM + 6);
        status.set_connected(Some(wire));
        let metrics = Metrics::new(prometheus_client::registry::Registry::default());
        let mut queue = wanted(&status, 10);
        let mut sent = SlidingWindow::new(Duration::from_secs(10));
        assert!(!send_while_free(
            &mut queue, &mut sent, 100, &status, &metrics
        ));
        assert_eq!(lines.len(), 6, "the headroom stays free");
        assert!(
            send_while_free(&mut queue, &mut sent, 100, &status, &metrics),
            "a full queue says so: the pacer waits instead of spinning"
        );
        assert_eq!(lines.len(), 6);
        let mut left = Vec::new();
        while let Some(channel) = queue.pop() {
            left.push(channel);
        }
        assert_eq!(left, ["chan6", "chan7", "chan8", "chan9"], "nothing lost");
        assert_eq!(lines.try_recv().ok().as_deref(), Some("JOIN #chan0"));
    }
}
