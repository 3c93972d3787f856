//! Twitch chat: the source and the sink of the Twitch side.
//!
//! - [`client`]: the connection loop (connect, login, keepalive, RECONNECT, backoff) that parses
//!   lines with twitch-irc and hands chat events to the router.
//! - [`connection`]: TCP or TLS to the configured server.
//! - [`convert`]: twitch-irc messages -> platform-neutral chat events.
//! - [`joins`]: JOIN pacing within Twitch's limits.
//! - [`lines`]: bounded line framing that skips (and reports) bad lines instead of ending.
//! - [`outbound`]: replies back to chat within Twitch's send limits; moderation to [`helix`].
//! - [`helix`]: the Helix API: moderation (delete, timeout, ban, unban), stream status, users,
//!   chat messages, EventSub subscriptions and conduits.
//! - [`auth`]: tokens that renew themselves, logins to ids, onboarding a channel.
//! - [`eventsub`]: reading chat through EventSub (conduit shards, WebSocket sessions,
//!   webhooks) into the same router as IRC.
//! - [`status`]: connected / joined / moderator state shared by the above and `/readyz`.

pub mod auth;
pub mod client;
pub mod connection;
pub mod convert;
pub mod eventsub;
pub mod helix;
pub mod joins;
pub mod lines;
pub mod outbound;
pub mod status;

pub use client::{IrcRole, TwitchClient, TwitchStops};
pub use outbound::{OutboundLimits, TwitchOutbound};
pub use status::TwitchStatus;
