//! A simulated Discord guild for the demo: paced MESSAGE_CREATE traffic over a set of channels,
//! a share of it `!ping`, sent through the fake gateway; the bot's replies arrive at the fake's
//! REST side, where they are counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{FakeState, MessageSpec};

const CHAT: &[&str] = &[
    "hello from discord",
    "gg",
    "what game is this?",
    "LUL that was close",
    "anyone else watching on mobile?",
    "<3",
];

/// What the guild traffic sent so far.
#[derive(Debug, Default)]
pub struct GuildStats {
    pub sent: AtomicU64,
    pub pings: AtomicU64,
    /// Messages no gateway session took (not connected at that moment).
    pub undelivered: AtomicU64,
}

/// The traffic's shape.
#[derive(Debug, Clone)]
pub struct GuildTraffic {
    pub guild: u64,
    pub channels: Vec<u64>,
    /// Messages per second over all channels.
    pub rate: f64,
    pub ping_fraction: f64,
}

/// Starts sending until `stop`; returns the running counts.
pub fn drive(
    state: Arc<FakeState>,
    traffic: GuildTraffic,
    stop: CancellationToken,
) -> (Arc<GuildStats>, JoinHandle<()>) {
    let stats = Arc::new(GuildStats::default());
    let counts = Arc::clone(&stats);
    let task = tokio::spawn(async move {
        if traffic.channels.is_empty() || traffic.rate <= 0.0 {
            return;
        }
        let mut every = tokio::time::interval(Duration::from_secs_f64(1.0 / traffic.rate));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = every.tick() => {}
            }
            let spec = next_message(&traffic);
            let ping = spec.content == "!ping";
            match state.send_message(spec) {
                Some(_) => {
                    counts.sent.fetch_add(1, Ordering::Relaxed);
                    if ping {
                        counts.pings.fetch_add(1, Ordering::Relaxed);
                    }
                }
                None => {
                    counts.undelivered.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
    (stats, task)
}

fn next_message(traffic: &GuildTraffic) -> MessageSpec {
    let mut rng = rand::rng();
    let channel = traffic.channels[rng.random_range(0..traffic.channels.len())];
    let content = if rng.random::<f64>() < traffic.ping_fraction {
        "!ping".to_string()
    } else {
        CHAT[rng.random_range(0..CHAT.len())].to_string()
    };
    let author = 1_000 + rng.random_range(0..500u64);
    MessageSpec {
        channel_id: channel,
        guild_id: traffic.guild,
        author_id: author,
        author_name: format!("member{author}"),
        content,
        ..MessageSpec::default()
    }
}
