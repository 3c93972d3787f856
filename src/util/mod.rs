//! Small pieces every floor of the crate may use, with no dependency on any of them.
//!
//! - [`window`]: the exact sliding-window limit Twitch counts by (JOIN pacing, the send
//!   scheduler, the Helix points budget).

pub mod window;

pub use window::SlidingWindow;
