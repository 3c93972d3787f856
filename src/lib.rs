//! firehose: a dedicated chat-bot service for the biggest Twitch and Discord channels.
//!
//! The data path of one chat message (see `docs/ARCHITECTURE.md`):
//! `twitch` (connection, parse) -> `router` (admission per channel) -> `actors` (one supervised
//! actor per channel) -> `engine` (pure bot logic) -> `twitch::outbound` (rate-limited replies).
//! `http` serves health, metrics and the admin API; `obs` holds the metrics; `sim` is the
//! Twitch-protocol chat simulator used by tests, the demo and benchmarks; `cli` holds the
//! subcommands; `service` wires the parts together.

pub mod actors;
pub mod bench;
pub mod cli;
pub mod config;
pub mod discord;
pub mod engine;
pub mod helix;
pub mod http;
pub mod obs;
pub mod router;
pub mod service;
pub mod sim;
pub mod store;
pub mod twitch;
