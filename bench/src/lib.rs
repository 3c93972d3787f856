//! firehose-bench: the benchmark of the service. It holds `firehose bench` (the load
//! generator, below), `firehose demo` ([`demo`](mod@demo): simulator and service in one
//! process with a live summary) and, in `benches/`, the criterion micro-benches of the
//! pipeline's pieces.
//! It drives the `firehose` library from outside, against the servers of `firehose-sim`.
//!
//! ## The load generator
//!
//! A scenario file ([`scenario`]) declares a realistic fire hose: channels with Zipf-distributed
//! viewers, messages per second from viewers, a content mix and a Zipf chatter population per
//! channel, phases (steady, a raid spike, a hate raid) or a capacity ramp, and SLOs. [`run`]
//! starts the Twitch simulator, a recording Helix ([`helix`]) and the service (in process, or
//! as its own process), drives the traffic, and measures throughput (the service's own
//! `/metrics`, [`scrape`]), end-to-end reply and moderation latency (the simulator's tracker:
//! from its send of a message to the threaded reply or Helix call arriving back), CPU and memory
//! ([`procstat`]; per phase on the [`monitor`]'s thread, which also times the recovery after
//! an overload scenario's flood over a sliding latency window). [`report`] writes
//! `report.json`, `report.md` and three SVG plots. [`ceiling`]
//! measures the same traffic into twitch-irc's bare receive loop. [`cli`] holds the
//! command-line arguments of `firehose bench`.

pub mod ceiling;
pub mod cli;
pub mod demo;
pub mod helix;
pub mod monitor;
pub mod procstat;
pub mod report;
pub mod run;
pub mod scenario;
pub mod scrape;

pub use ceiling::{run_ceiling, CeilingOptions, CeilingReport};
pub use cli::{bench, BenchArgs};
pub use demo::{demo, demo_config, run_demo, DemoArgs, DemoSummary};
pub use report::Report;
pub use run::{run_bench, BenchOptions};
pub use scenario::{Overrides, Scenario};
