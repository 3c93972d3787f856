//! The Helix points budget of one token: at most `points` calls in any budget window, plus a
//! pause whenever Helix says the bucket is empty (`Ratelimit-Remaining: 0` or a 429) until its
//! `Ratelimit-Reset`.
//!
//! The local limit is an exact sliding window ([`crate::util::window::SlidingWindow`]), which
//! is never looser than Helix's refilling bucket; the headers catch what the local count cannot
//! see (another process using the same token). Pauses are capped at one budget window.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::log::unix_ms;
use crate::util::window::SlidingWindow;

#[derive(Debug)]
struct State {
    window: SlidingWindow,
    paused_until: Option<Instant>,
}

#[derive(Debug)]
pub struct Budget {
    state: Mutex<State>,
    points: usize,
    window: Duration,
}

/// What Helix's rate-limit headers said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateHeaders {
    pub remaining: Option<u64>,
    /// Unix seconds at which the bucket is full again.
    pub reset: Option<u64>,
}

impl Budget {
    pub fn new(points: u32, window: Duration) -> Budget {
        Budget {
            state: Mutex::new(State {
                window: SlidingWindow::new(window),
                paused_until: None,
            }),
            points: points.max(1) as usize,
            window,
        }
    }

    /// Takes one point now, or says when to try again.
    pub fn try_take(&self, now: Instant) -> Result<(), Instant> {
        let Ok(mut state) = self.state.lock() else {
            return Err(now + self.window);
        };
        if let Some(until) = state.paused_until {
            if until > now {
                return Err(until);
            }
            state.paused_until = None;
        }
        state.window.try_acquire(now, self.points)
    }

    /// Waits for one point; false if `shutdown` came first.
    pub async fn take(&self, shutdown: &CancellationToken) -> bool {
        loop {
            let Err(at) = self.try_take(Instant::now()) else {
                return true;
            };
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep_until(at.into()) => {}
            }
        }
    }

    /// Pauses every call until `until` (capped at one window from now).
    pub fn pause_until(&self, until: Instant) {
        let now = Instant::now();
        let until = until.min(now + self.window);
        if let Ok(mut state) = self.state.lock() {
            if state.paused_until.is_none_or(|p| p < until) {
                state.paused_until = Some(until);
            }
        }
    }

    /// When the headers say the bucket is empty, pauses until its reset.
    pub fn observe(&self, headers: RateHeaders) {
        if headers.remaining == Some(0) {
            self.pause_until(self.reset_instant(headers.reset));
        }
    }

    /// The instant of a `Ratelimit-Reset` (unix seconds); a full window when absent.
    pub fn reset_instant(&self, reset: Option<u64>) -> Instant {
        let now = Instant::now();
        match reset {
            Some(secs) => {
                let wait = secs.saturating_mul(1_000).saturating_sub(unix_ms());
                now + Duration::from_millis(wait).min(self.window)
            }
            None => now + self.window,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_points_per_window() {
        let budget = Budget::new(3, Duration::from_secs(60));
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(budget.try_take(now), Ok(()));
        }
        assert_eq!(budget.try_take(now), Err(now + Duration::from_secs(60)));
    }

    #[test]
    fn remaining_zero_pauses_until_reset_capped_at_the_window() {
        let budget = Budget::new(100, Duration::from_secs(2));
        let reset = unix_ms() / 1_000 + 3_600;
        budget.observe(RateHeaders {
            remaining: Some(0),
            reset: Some(reset),
        });
        let now = Instant::now();
        let until = budget.try_take(now).err();
        assert!(until.is_some_and(|u| u > now && u <= now + Duration::from_secs(2)));
        budget.observe(RateHeaders {
            remaining: Some(5),
            reset: Some(reset),
        });
        assert!(budget.try_take(now + Duration::from_secs(3)).is_ok());
    }
}
