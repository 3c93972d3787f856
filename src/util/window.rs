//! A sliding-window limit, the way Twitch counts: at most `limit` events in any `window`.
//!
//! A token bucket (GCRA, as in `governor`) with burst N and refill N per window lets up to
//! 2N-1 events through in one window, which Twitch punishes (dropped messages, refused joins),
//! so JOIN pacing and the send scheduler both use this exact log of recent event times instead.
//! The log holds at most the largest limit asked for, so memory stays bounded.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct SlidingWindow {
    window: Duration,
    log: VecDeque<Instant>,
}

impl SlidingWindow {
    pub fn new(window: Duration) -> SlidingWindow {
        SlidingWindow {
            window,
            log: VecDeque::new(),
        }
    }

    /// Forgets events that left the window.
    fn expire(&mut self, now: Instant) {
        while self
            .log
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            self.log.pop_front();
        }
    }

    /// When one more event would fit under `limit`: `now` if it fits now.
    pub fn next_free(&mut self, now: Instant, limit: usize) -> Instant {
        self.expire(now);
        if limit == 0 {
            return now + self.window;
        }
        if self.log.len() < limit {
            return now;
        }
        self.log[self.log.len() - limit] + self.window
    }

    /// Records an event at `now`. Call only after [`SlidingWindow::next_free`] said it fits.
    pub fn record(&mut self, now: Instant) {
        self.log.push_back(now);
    }

    /// Records an event if it fits under `limit`; otherwise returns when it would.
    pub fn try_acquire(&mut self, now: Instant, limit: usize) -> Result<(), Instant> {
        let free = self.next_free(now, limit);
        if free <= now {
            self.record(now);
            Ok(())
        } else {
            Err(free)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_more_than_limit_in_any_window() {
        let start = Instant::now();
        let window = Duration::from_secs(10);
        let mut w = SlidingWindow::new(window);
        let mut accepted = Vec::new();
        // Try every 100 ms for 35 s.
        for step in 0..350 {
            let now = start + Duration::from_millis(step * 100);
            if w.try_acquire(now, 20).is_ok() {
                accepted.push(now);
            }
        }
        for (i, t) in accepted.iter().enumerate() {
            let within = accepted[i..]
                .iter()
                .filter(|u| u.duration_since(*t) < window)
                .count();
            assert!(within <= 20, "{within} events in one window");
        }
        // It is not over-strict either: 20 at once, then 20 more each window.
        assert_eq!(accepted.len(), 80);
    }

    #[test]
    fn next_free_is_when_the_oldest_counted_event_leaves() {
        let start = Instant::now();
        let mut w = SlidingWindow::new(Duration::from_secs(1));
        for i in 0..3 {
            w.record(start + Duration::from_millis(i * 100));
        }
        let now = start + Duration::from_millis(300);
        assert_eq!(w.next_free(now, 3), start + Duration::from_secs(1));
        assert_eq!(w.next_free(now, 2), start + Duration::from_millis(1_100));
        assert_eq!(w.next_free(now, 4), now);
    }
}
