//! The Helix points budget of one token, kept the way Helix keeps it: a bucket of `points`
//! refilled continuously at `points` per budget window (Twitch: 800 a minute), one point per
//! call, plus a pause after a 429 until its `Ratelimit-Reset`.
//!
//! Helix documents its limit as this token bucket, so a burst of `points` calls goes at once
//! and then one every `window / points`; a sliding window would instead stall for the rest of
//! the minute after a burst, which in a raid is the worst time. The local bucket is never
//! looser than Helix's: every answer's `Ratelimit-Remaining` lowers it to what Helix counts
//! (another process on the same token), never raises it; `Remaining: 0` empties it, and the
//! next point comes with the refill (`Ratelimit-Reset` is when the bucket is full again, a
//! whole minute after a burst: waiting for it would stall moderation in the middle of a
//! raid). Pauses are capped at one window.
//! [`Budget::per_second`] and [`Budget::available`] are what the worker plans with: the
//! refill rate (the configured points, or Twitch's `Ratelimit-Limit` when lower) and the
//! points in the bucket now.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::log::unix_ms;

#[derive(Debug)]
struct State {
    /// Points in the bucket at `at`.
    points: f64,
    at: Instant,
    paused_until: Option<Instant>,
}

#[derive(Debug)]
pub struct Budget {
    state: Mutex<State>,
    /// The bucket's size (and refill per window).
    points: f64,
    window: Duration,
    /// The bucket size Helix's `Ratelimit-Limit` last gave (0: not seen yet).
    limit_seen: AtomicU64,
    /// Calls already started that wait for their next point (a retry, a change after its
    /// read): they go before any new call is let in ([`Budget::reserve`]).
    waiting: AtomicUsize,
}

/// What Helix's rate-limit headers said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateHeaders {
    /// The bucket size (points per minute).
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    /// Unix seconds at which the bucket is full again.
    pub reset: Option<u64>,
}

/// One started call waiting for a point, for as long as this lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Waiting<'a> {
        count.fetch_add(1, Ordering::AcqRel);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl State {
    /// Refills up to `now`.
    fn refill(&mut self, now: Instant, capacity: f64, per_s: f64) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.points = (self.points + elapsed * per_s).min(capacity);
        self.at = self.at.max(now);
    }
}

impl Budget {
    pub fn new(points: u32, window: Duration) -> Budget {
        let capacity = f64::from(points.max(1));
        Budget {
            state: Mutex::new(State {
                points: capacity,
                at: Instant::now(),
                paused_until: None,
            }),
            points: capacity,
            window: window.max(Duration::from_millis(1)),
            limit_seen: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
        }
    }

    /// A point for a new call, unless a call already started waits for one (that one goes
    /// first); else when to ask again.
    pub fn reserve(&self, now: Instant) -> Result<(), Instant> {
        if self.waiting.load(Ordering::Acquire) > 0 {
            let refill = Duration::from_secs_f64(1.0 / self.per_second().max(1e-9));
            return Err(now + refill.min(self.window));
        }
        self.try_take(now)
    }

    /// Calls a second this budget lets through: the configured points per window, or what
    /// Helix's `Ratelimit-Limit` says per minute when that is lower.
    pub fn per_second(&self) -> f64 {
        let configured = self.points / self.window.as_secs_f64();
        match self.limit_seen.load(Ordering::Relaxed) {
            0 => configured,
            per_minute => configured.min(per_minute as f64 / 60.0),
        }
    }

    /// Whole points in the bucket now (0 while paused).
    pub fn available(&self, now: Instant) -> u64 {
        let per_s = self.per_second();
        let Ok(mut state) = self.state.lock() else {
            return 0;
        };
        if state.paused_until.is_some_and(|until| until > now) {
            return 0;
        }
        state.refill(now, self.points, per_s);
        state.points.floor() as u64
    }

    /// Takes one point now, or says when to try again.
    pub fn try_take(&self, now: Instant) -> Result<(), Instant> {
        let per_s = self.per_second();
        let Ok(mut state) = self.state.lock() else {
            return Err(now + self.window);
        };
        if let Some(until) = state.paused_until {
            if until > now {
                return Err(until);
            }
            state.paused_until = None;
        }
        state.refill(now, self.points, per_s);
        if state.points >= 1.0 {
            state.points -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - state.points) / per_s.max(1e-9);
        Err(now + Duration::from_secs_f64(wait.min(self.window.as_secs_f64())))
    }

    /// Puts back one point taken and not spent (never above the bucket's size).
    pub fn refund(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.points = (state.points + 1.0).min(self.points);
        }
    }

    /// Waits for one point, ahead of new calls ([`Budget::reserve`]); false if `shutdown`
    /// came first.
    pub async fn take(&self, shutdown: &CancellationToken) -> bool {
        let Err(mut at) = self.try_take(Instant::now()) else {
            return true;
        };
        // Counted while waiting, and uncounted however the wait ends (a dropped future too:
        // a count left behind would keep every new call out for good).
        let _waiting = Waiting::new(&self.waiting);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep_until(at.into()) => {}
            }
            match self.try_take(Instant::now()) {
                Ok(()) => return true,
                Err(next) => at = next,
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

    /// Follows what Helix counts: the bucket never holds more than its `Ratelimit-Remaining`.
    pub fn observe(&self, headers: RateHeaders) {
        if let Some(limit) = headers.limit.filter(|l| *l > 0) {
            self.limit_seen.store(limit, Ordering::Relaxed);
        }
        let Some(remaining) = headers.remaining else {
            return;
        };
        if let Ok(mut state) = self.state.lock() {
            state.points = state.points.min(remaining as f64);
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
    fn a_burst_of_the_buckets_size_then_one_point_per_refill() {
        let budget = Budget::new(3, Duration::from_secs(60));
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(budget.try_take(now), Ok(()));
        }
        let next = budget.try_take(now).expect_err("empty");
        let wait = next.duration_since(now);
        assert!(
            wait > Duration::from_millis(19_900) && wait <= Duration::from_secs(20),
            "one point refills in 20 s: {wait:?}"
        );
        assert!(budget.try_take(now + Duration::from_secs(20)).is_ok());
        assert!(budget.try_take(now + Duration::from_secs(21)).is_err());
        assert_eq!(
            budget.available(now + Duration::from_secs(600)),
            3,
            "never above its size"
        );
    }

    #[tokio::test]
    async fn a_call_already_started_gets_the_next_point_before_a_new_one() {
        let budget = std::sync::Arc::new(Budget::new(1, Duration::from_millis(200)));
        assert!(budget.reserve(Instant::now()).is_ok());
        let stop = CancellationToken::new();
        let waiter = {
            let (budget, stop) = (budget.clone(), stop.clone());
            tokio::spawn(async move { budget.take(&stop).await })
        };
        tokio::task::yield_now().await;
        assert!(
            budget.reserve(Instant::now()).is_err(),
            "a new call waits while a started one does"
        );
        assert!(
            waiter.await.unwrap_or(false),
            "the started call got its point"
        );
        assert_eq!(budget.waiting.load(Ordering::Acquire), 0);
        // A waiting call dropped (its task aborted) leaves no count behind.
        let aborted = {
            let (budget, stop) = (budget.clone(), stop.clone());
            tokio::spawn(async move { budget.take(&stop).await })
        };
        tokio::task::yield_now().await;
        assert_eq!(budget.waiting.load(Ordering::Acquire), 1, "it waits");
        aborted.abort();
        let _ = aborted.await;
        assert_eq!(budget.waiting.load(Ordering::Acquire), 0);
    }

    #[test]
    fn absurd_headers_never_loosen_the_budget() {
        let budget = Budget::new(800, Duration::from_secs(60));
        let now = Instant::now();
        budget.observe(RateHeaders {
            limit: Some(u64::MAX),
            remaining: Some(u64::MAX),
            reset: Some(u64::MAX),
        });
        assert!((budget.per_second() - 800.0 / 60.0).abs() < 1e-9);
        assert!(budget.available(now) <= 800);
        budget.observe(RateHeaders {
            limit: Some(0),
            remaining: None,
            reset: None,
        });
        assert!(
            budget.per_second() > 0.0,
            "a zero limit is ignored, not a stall forever"
        );
        // A reset far in the future pauses at most one window.
        budget.pause_until(budget.reset_instant(Some(u64::MAX)));
        let until = budget.try_take(Instant::now()).err();
        assert!(until.is_some_and(|u| u <= Instant::now() + Duration::from_secs(60)));
    }

    #[test]
    fn helix_remaining_lowers_the_bucket_and_never_raises_it() {
        let budget = Budget::new(800, Duration::from_secs(60));
        let now = Instant::now();
        let said = |remaining| RateHeaders {
            limit: Some(800),
            remaining: Some(remaining),
            reset: None,
        };
        budget.observe(said(5));
        assert!(
            budget.available(now) <= 5,
            "another user of the token spent the rest"
        );
        budget.observe(said(700));
        assert!(budget.available(now) <= 6);
    }

    #[test]
    fn remaining_zero_empties_the_bucket_and_a_429_pauses_until_the_reset() {
        let budget = Budget::new(100, Duration::from_secs(2));
        let reset = unix_ms() / 1_000 + 3_600;
        budget.observe(RateHeaders {
            limit: None,
            remaining: Some(0),
            reset: Some(reset),
        });
        let now = Instant::now();
        let next = budget.try_take(now).expect_err("empty");
        assert!(
            next.duration_since(now) <= Duration::from_millis(20),
            "the next point comes with the refill (50 a second), not at the reset"
        );
        // A 429: Helix and the bucket disagree; wait for its reset, capped at one window.
        budget.pause_until(budget.reset_instant(Some(reset)));
        let now = Instant::now();
        let until = budget.try_take(now).err();
        assert!(
            until.is_some_and(
                |u| u > now + Duration::from_secs(1) && u <= now + Duration::from_secs(2)
            )
        );
        assert!(budget.try_take(now + Duration::from_secs(3)).is_ok());
    }

    #[test]
    fn the_planned_rate_is_the_lower_of_the_configured_and_twitchs() {
        let budget = Budget::new(800, Duration::from_secs(60));
        assert!((budget.per_second() - 800.0 / 60.0).abs() < 1e-9);
        let said = |limit| RateHeaders {
            limit: Some(limit),
            remaining: Some(10),
            reset: None,
        };
        budget.observe(said(120));
        assert!(
            (budget.per_second() - 2.0).abs() < 1e-9,
            "Twitch's is lower"
        );
        budget.observe(said(100_000));
        assert!((budget.per_second() - 800.0 / 60.0).abs() < 1e-9);
    }
}
