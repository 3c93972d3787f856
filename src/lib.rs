//! firehose: a dedicated chat-bot service for the biggest Twitch and Discord channels.
//!
//! # Layout
//!
//! The crate is a house of floors. A module may use only modules on floors *below* its own
//! (never its own floor, never above), so there is no import circle anywhere and each floor
//! can be read, tested and replaced knowing only what is under it. `tests/layering.rs` reads
//! the list below (it is the single source of truth) and fails when a module breaks it.
//!
//! <!-- layers -->
//! 0. `util`, `config`: the ground floor. `util`: small pieces every floor may use (the
//!    exact sliding-window limit). `config`: every section's type (`twitch`, `helix`,
//!    `discord`, `store`, `http`, `engine`, ...), TOML + `FIREHOSE_*` overrides + secrets;
//!    it checks values, never loads what they point to (the rules directory is loaded by
//!    its callers: start-up and `check-config`).
//! 1. `engine`: the pure bot logic behind `ChatHandler`: (channel state, event, time) in,
//!    actions out; no I/O, no clock, no transport.
//! 2. `obs`: the Prometheus registry and the process-wide metric families; each floor
//!    above registers its own collectors into it.
//! 3. `store`: the `StateStore` seam, its CQL and embedded backends, migrations, the
//!    exactly-once write-behind writer, and the mapping from the engine's journal to store
//!    changes.
//! 4. `channel`: one supervised actor per channel: the channel key and registry, admission
//!    (router, waiting line, shed reasons), the lifecycle (status, last error, orphans),
//!    deliveries, the actor, the supervisor, the platform dispatcher, the rules book, the
//!    ticker and the per-channel metrics collector.
//! 5. `twitch`, `discord`: the platforms. `twitch`: IRC connection (twitch-irc parser),
//!    JOIN pacing, rate-limited outbound, and Helix (`twitch::helix`: moderation and stream
//!    status). `discord`: serenity gateway ingest and REST outbound.
//! 6. `app`: the running service: admin operations (`Core`, typed errors), start-up in
//!    named steps (store, metrics, platforms, supervisor) and shutdown in order.
//! 7. `http`: health, readiness, metrics, the admin API and the web console (`/ui`), on top of `app`.
//! 8. `cli`: the service's subcommands (`run`, `migrate`, `check-config`, `replay`) and
//!    [`cli::Server`], which wires `app` and `http` together.
//! <!-- /layers -->
//!
//! Tooling lives in crates of its own, never in this library: `firehose-sim` (`sim/`: the
//! Twitch-protocol simulator, the fake Helix, the fake Discord), `firehose-bench` (`bench/`:
//! the load generator, the demo and the criterion benches) and `firehose-cli` (`cli/`: the
//! `firehose` binary, every subcommand).
//!
//! # The data path of one chat message
//!
//! `twitch::client` (connection, parse) -> `channel::admission` (router: a bounded gate per
//! channel) -> `channel::actor` (one supervised actor per channel) -> `engine` (pure bot
//! logic) -> `channel::dispatch` -> `twitch::outbound` (rate-limited replies) or
//! `twitch::helix` (moderation); what lasts goes to `store`'s writer. `docs/ARCHITECTURE.md`
//! has the whole picture.

pub mod app;
pub mod channel;
pub mod cli;
pub mod config;
pub mod discord;
pub mod engine;
pub mod http;
pub mod obs;
pub mod store;
pub mod twitch;
pub mod util;
