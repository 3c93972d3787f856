//! The bench's monitor: one OS thread that runs beside the traffic and measures what needs
//! finer or steadier timing than the once-a-second sampling loop, however loaded the async
//! runtime is:
//!
//! - the service's resident memory (`VmRSS` of its process, [`RSS_EVERY`]), kept as the peak
//!   and the number of readings of each phase, and of the drain after the last one;
//! - the simulator's matched answers, collected every `step` into a sliding window whose
//!   latency percentile times the recovery after a flood ([`RecoveryTracker`], the definition
//!   in [`Recovery`]), and handed to the sampling loop once a second ([`Monitor::take_second`]).
//!
//! Its memory is fixed whatever the run's length: per-phase maxima, the window's few
//! sub-histograms and the tracker's counters.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::procstat;
use crate::scenario::Recovery;
use firehose_sim::SimHandle;

/// How often the service's `VmRSS` is read.
pub const RSS_EVERY: Duration = Duration::from_millis(100);
/// How often answers are collected when no recovery is timed.
const DEFAULT_STEP: Duration = Duration::from_millis(250);
/// No phase is running (before the first, or a capacity ramp).
const NO_PHASE: usize = usize::MAX;

type Latencies = (Histogram<u64>, Histogram<u64>);

fn latencies() -> Latencies {
    (
        firehose::obs::new_latency_histogram(),
        firehose::obs::new_latency_histogram(),
    )
}

/// What the monitor measured, read when it stops.
#[derive(Debug, Clone, Default)]
pub struct MonitorResult {
    /// Highest `VmRSS` read during each phase (0: never read).
    pub peak_rss_bytes: Vec<u64>,
    /// `VmRSS` readings taken during each phase.
    pub rss_readings: Vec<u64>,
    /// Highest `VmRSS` read after the phases, while draining (0: never read).
    pub drain_peak_rss_bytes: u64,
    /// Readings that failed (the process gone, `/proc` unreadable).
    pub rss_errors: u64,
    /// `None` when the scenario times no recovery or the flood never ended.
    pub recovery: Option<RecoveryOutcome>,
}

/// The timing of recovery (see [`Recovery`] for the definition).
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct RecoveryOutcome {
    /// Seconds from the flood's end to the end of the first passing window that no failing one
    /// followed (within `hold_s`, or until the traffic ended); `None`: never back under.
    pub recovery_s: Option<f64>,
    /// The passing window was followed by `hold_s` seconds without a failing one (false: the
    /// traffic ended before `hold_s` had passed).
    pub confirmed: bool,
    /// Seconds the recovery was seen to hold (from `recovery_s` to the last window).
    pub held_s: Option<f64>,
    /// Windows evaluated after the flood, and how they went.
    pub windows: u64,
    pub windows_passing: u64,
    pub windows_failing: u64,
    pub windows_empty: u64,
    /// Windows over the bound after the recovery was confirmed (relapses).
    pub windows_failing_after_recovery: u64,
    /// The highest figure of any window after the flood (µs).
    pub peak_window_us: Option<u64>,
}

/// Times recovery from a sequence of window figures: pure, fed one window at a time.
#[derive(Debug, Clone)]
pub struct RecoveryTracker {
    max_us: f64,
    hold_s: f64,
    candidate: Option<f64>,
    recovered: Option<f64>,
    last_t: f64,
    out: RecoveryOutcome,
}

impl RecoveryTracker {
    pub fn new(max_us: f64, hold_s: f64) -> RecoveryTracker {
        RecoveryTracker {
            max_us,
            hold_s,
            candidate: None,
            recovered: None,
            last_t: 0.0,
            out: RecoveryOutcome::default(),
        }
    }

    /// One window ending `t_s` seconds after the flood's end, with its figure (`None`: the
    /// window held no answer).
    pub fn observe(&mut self, t_s: f64, value_us: Option<u64>) {
        self.out.windows += 1;
        self.last_t = t_s;
        match value_us {
            None => self.out.windows_empty += 1,
            Some(v) => {
                self.out.peak_window_us = Some(self.out.peak_window_us.map_or(v, |p| p.max(v)));
                if v as f64 <= self.max_us {
                    self.out.windows_passing += 1;
                    if self.recovered.is_none() && self.candidate.is_none() {
                        self.candidate = Some(t_s);
                    }
                } else {
                    self.out.windows_failing += 1;
                    if self.recovered.is_some() {
                        self.out.windows_failing_after_recovery += 1;
                    } else {
                        self.candidate = None;
                    }
                }
            }
        }
        if self.recovered.is_none() {
            if let Some(c) = self.candidate {
                if t_s - c >= self.hold_s {
                    self.recovered = Some(c);
                }
            }
        }
    }

    pub fn outcome(&self) -> RecoveryOutcome {
        let at = self.recovered.or(self.candidate);
        RecoveryOutcome {
            recovery_s: at,
            confirmed: self.recovered.is_some(),
            held_s: at.map(|c| (self.last_t - c).max(0.0)),
            ..self.out
        }
    }
}

/// The recovery being timed: which phase ends the flood, and the window.
struct Timing {
    /// Index of the first phase after the flood.
    phase_after: usize,
    moderation: bool,
    quantile: Option<f64>,
    window: Duration,
    max_us: f64,
    hold_s: f64,
}

/// State shared by the thread and the sampling loop (behind one mutex).
struct State {
    /// Answers since the last window step (the timed family only).
    pending: Histogram<u64>,
    /// Answers since the sampling loop last took them.
    second: Latencies,
    /// The window's sub-intervals: (end, answers).
    ring: VecDeque<(Instant, Histogram<u64>)>,
    scratch: Histogram<u64>,
    flood_end: Option<Instant>,
    tracker: Option<RecoveryTracker>,
}

struct Shared {
    sim: SimHandle,
    pid: Option<u32>,
    step: Duration,
    timing: Option<Timing>,
    stop: AtomicBool,
    phase: AtomicUsize,
    peaks: Vec<AtomicU64>,
    readings: Vec<AtomicU64>,
    last_rss: AtomicU64,
    rss_errors: AtomicU64,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves the simulator's newly matched answers into the window and the second's share.
    fn pull(&self, state: &mut State) {
        let (reply, moderation) = self.sim.take_latency_interval();
        let _ = state.second.0.add(&reply);
        let _ = state.second.1.add(&moderation);
        if let Some(t) = &self.timing {
            let _ = state
                .pending
                .add(if t.moderation { &moderation } else { &reply });
        }
    }

    fn read_rss(&self) {
        match procstat::rss_bytes(self.pid) {
            Ok(rss) => {
                self.last_rss.store(rss, Ordering::Relaxed);
                let phase = self.phase.load(Ordering::Acquire);
                if let (Some(peak), Some(n)) = (self.peaks.get(phase), self.readings.get(phase)) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                    n.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(_) => {
                self.rss_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// One window step: close the sub-interval, slide the window, and after the flood judge it.
    fn step(&self, now: Instant) {
        let mut guard = self.lock();
        let state = &mut *guard;
        self.pull(state);
        let Some(t) = &self.timing else {
            return;
        };
        let mut sub = firehose::obs::new_latency_histogram();
        std::mem::swap(&mut sub, &mut state.pending);
        state.ring.push_back((now, sub));
        // Keep the sub-intervals ending within the window (half a step of slack for jitter).
        let horizon = t.window.saturating_sub(self.step / 2);
        while state
            .ring
            .front()
            .is_some_and(|(end, _)| now.duration_since(*end) >= horizon)
        {
            state.ring.pop_front();
        }
        let Some(flood_end) = state.flood_end else {
            return;
        };
        state.scratch.reset();
        for (_, h) in &state.ring {
            let _ = state.scratch.add(h);
        }
        let value = (!state.scratch.is_empty()).then(|| match t.quantile {
            Some(q) => state.scratch.value_at_quantile(q),
            None => state.scratch.max(),
        });
        let since = now.saturating_duration_since(flood_end).as_secs_f64();
        if let Some(tracker) = &mut state.tracker {
            tracker.observe(since, value);
        }
    }
}

/// The running monitor; [`Monitor::finish`] stops it.
pub struct Monitor {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Monitor {
    /// Starts the thread: `pid` is the service's process (`None`: this one), `phases` the
    /// number of phases whose peaks are kept, `recovery` the timing the scenario asks for.
    pub fn start(
        sim: SimHandle,
        pid: Option<u32>,
        phases: &[crate::scenario::Phase],
        recovery: Option<&Recovery>,
    ) -> std::io::Result<Monitor> {
        let timing = recovery.and_then(|r| {
            let flood = phases.iter().position(|p| p.name == r.after)?;
            Some(Timing {
                phase_after: flood + 1,
                moderation: r.is_moderation(),
                quantile: r.quantile(),
                window: Duration::from_secs_f64(r.window_s),
                max_us: r.max,
                hold_s: r.hold_s,
            })
        });
        let step = recovery.map_or(DEFAULT_STEP, |r| Duration::from_secs_f64(r.step_s));
        let shared = Arc::new(Shared {
            sim,
            pid,
            step,
            timing,
            stop: AtomicBool::new(false),
            phase: AtomicUsize::new(NO_PHASE),
            // One slot per phase and one for the drain after them.
            peaks: (0..=phases.len()).map(|_| AtomicU64::new(0)).collect(),
            readings: (0..=phases.len()).map(|_| AtomicU64::new(0)).collect(),
            last_rss: AtomicU64::new(0),
            rss_errors: AtomicU64::new(0),
            state: Mutex::new(State {
                pending: firehose::obs::new_latency_histogram(),
                second: latencies(),
                ring: VecDeque::new(),
                scratch: firehose::obs::new_latency_histogram(),
                flood_end: None,
                tracker: None,
            }),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("bench-monitor".into())
                .spawn(move || run(&shared))?
        };
        Ok(Monitor {
            shared,
            thread: Some(thread),
        })
    }

    /// Phase `index` starts now (its rate is being set). Entering the phase after the flood
    /// starts the recovery clock.
    pub fn enter_phase(&self, index: usize) {
        self.shared.phase.store(index, Ordering::Release);
        if let Some(t) = &self.shared.timing {
            if index == t.phase_after {
                let mut state = self.shared.lock();
                state.flood_end = Some(Instant::now());
                state.tracker = Some(RecoveryTracker::new(t.max_us, t.hold_s));
            }
        }
    }

    /// The phases are over: readings from now on are the drain's, and recovery windows are no
    /// longer judged (the traffic has ended).
    pub fn leave_phases(&self) {
        let drain = self.shared.peaks.len() - 1;
        self.shared.phase.store(drain, Ordering::Release);
        self.shared.lock().flood_end = None;
    }

    /// The (reply, moderation) latencies matched since the previous call.
    pub fn take_second(&self) -> Latencies {
        let mut guard = self.shared.lock();
        let state = &mut *guard;
        self.shared.pull(state);
        std::mem::replace(&mut state.second, latencies())
    }

    /// The latest `VmRSS` reading (0 before the first).
    pub fn last_rss(&self) -> u64 {
        self.shared.last_rss.load(Ordering::Relaxed)
    }

    /// Stops the thread and returns what it measured.
    pub fn finish(mut self) -> MonitorResult {
        self.stop();
        let s = &self.shared;
        let recovery = s.lock().tracker.as_ref().map(RecoveryTracker::outcome);
        let mut peak_rss_bytes: Vec<u64> =
            s.peaks.iter().map(|a| a.load(Ordering::Relaxed)).collect();
        let mut rss_readings: Vec<u64> = s
            .readings
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .collect();
        rss_readings.pop();
        MonitorResult {
            drain_peak_rss_bytes: peak_rss_bytes.pop().unwrap_or(0),
            peak_rss_bytes,
            rss_readings,
            rss_errors: s.rss_errors.load(Ordering::Relaxed),
            recovery,
        }
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(shared: &Shared) {
    let mut next_rss = Instant::now();
    let mut next_step = Instant::now() + shared.step;
    while !shared.stop.load(Ordering::Acquire) {
        let now = Instant::now();
        if now >= next_rss {
            shared.read_rss();
            next_rss = (next_rss + RSS_EVERY).max(now);
        }
        if now >= next_step {
            shared.step(now);
            next_step = (next_step + shared.step).max(now);
        }
        let wake = next_rss.min(next_step);
        // Short sleeps so a stop is seen quickly.
        std::thread::sleep(
            wake.saturating_duration_since(Instant::now())
                .min(Duration::from_millis(50)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_is_the_first_good_window_that_holds() {
        let mut t = RecoveryTracker::new(100.0, 1.0);
        // Still flooded, then one good window, a relapse, then good for good.
        for (at, v) in [
            (0.25, Some(900)),
            (0.5, Some(50)),
            (0.75, Some(400)),
            (1.0, None),
            (1.25, Some(90)),
            (1.5, None),
            (1.75, Some(80)),
            (2.0, Some(70)),
            (2.25, Some(60)),
            (2.5, Some(500)),
        ] {
            t.observe(at, v);
        }
        let o = t.outcome();
        assert_eq!(o.recovery_s, Some(1.25));
        assert!(o.confirmed);
        assert_eq!(o.windows, 10);
        assert_eq!(
            (o.windows_passing, o.windows_failing, o.windows_empty),
            (5, 3, 2)
        );
        assert_eq!(o.windows_failing_after_recovery, 1);
        assert_eq!(o.peak_window_us, Some(900));
        assert_eq!(o.held_s, Some(1.25));
    }

    #[test]
    fn an_unheld_or_absent_recovery_is_reported_as_such() {
        let mut never = RecoveryTracker::new(100.0, 1.0);
        never.observe(0.25, Some(200));
        never.observe(0.5, None);
        assert_eq!(never.outcome().recovery_s, None);
        assert!(!never.outcome().confirmed);
        let mut short = RecoveryTracker::new(100.0, 5.0);
        short.observe(0.25, Some(200));
        short.observe(0.5, Some(10));
        short.observe(0.75, Some(20));
        let o = short.outcome();
        assert_eq!(o.recovery_s, Some(0.5));
        assert!(!o.confirmed, "held 0.25 s of the 5 s asked");
        assert_eq!(o.held_s, Some(0.25));
        let mut at_once = RecoveryTracker::new(100.0, 0.0);
        at_once.observe(0.25, Some(100));
        assert_eq!(at_once.outcome().recovery_s, Some(0.25));
        assert!(at_once.outcome().confirmed, "at the bound is under it");
    }
}
