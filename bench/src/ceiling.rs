//! The ceiling: the same simulator traffic consumed by twitch-irc's bare receive loop.
//!
//! A plain TCP client logs in to the simulator, joins the scenario's channels, and reads lines
//! as fast as it can: `IRCMessage::parse` + `ServerMessage::try_from`, then discards them
//! (no routing, no engine, no replies). Its msgs/s is the most any bot built on twitch-irc's
//! parser could take from this simulator on this machine; the full pipeline's throughput is
//! reported as a share of it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use twitch_irc::message::{IRCMessage, ServerMessage};

use crate::scenario::{Overrides, Scenario};
use firehose_sim::{SimConfig, Simulator};

/// What to run.
#[derive(Debug, Clone)]
pub struct CeilingOptions {
    pub scenario: PathBuf,
    pub out: PathBuf,
    pub overrides: Overrides,
    /// Offered msgs/s (default: the scenario's peak).
    pub rate: Option<f64>,
    /// Seconds of traffic (default: 10).
    pub seconds: f64,
    pub corpus: Option<PathBuf>,
}

/// What the bare loop took.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CeilingReport {
    pub scenario: String,
    pub channels: usize,
    pub offered_msgs_per_s: f64,
    pub seconds: f64,
    pub lines_read: u64,
    pub privmsgs_parsed: u64,
    pub parse_errors: u64,
    /// PRIVMSGs parsed and typed per second: the ceiling.
    pub msgs_per_s: f64,
    /// What the simulator delivered per second meanwhile.
    pub sim_sent_per_s: f64,
}

#[derive(Default)]
struct Counts {
    lines: AtomicU64,
    privmsgs: AtomicU64,
    errors: AtomicU64,
}

/// Runs the ceiling measurement and writes `ceiling.json` into `options.out`.
pub async fn run_ceiling(options: CeilingOptions) -> anyhow::Result<CeilingReport> {
    let mut scenario = Scenario::load(&options.scenario)?;
    scenario.apply(&options.overrides);
    let plan = scenario.channel_plan();
    let base: f64 = plan.iter().map(|c| c.rate).sum();
    let peak = match &scenario.ramp {
        Some(r) => r.max_msgs_per_s,
        None => base,
    };
    let rate = options.rate.unwrap_or(peak);
    let mut config = SimConfig::with_channels(0);
    config.channels = plan.iter().map(|c| c.name.clone()).collect();
    config.channel_weights = Some(plan.iter().map(|c| c.rate).collect());
    config.channel_chatters = Some(plan.iter().map(|c| c.chatters).collect());
    config.mix = Some(scenario.mix.to_content_mix());
    config.event_fraction = 0.0;
    config.corpus = options.corpus.clone();
    config.limits.join_limit = u32::MAX;
    config.max_channels = plan.len() + 16;
    config.server_ping_interval = Duration::from_secs(600);
    let sim = Simulator::start(config)
        .await
        .context("starting the simulator")?;

    let stream = TcpStream::connect(sim.local_addr()).await?;
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut login = String::from(
        "CAP REQ :twitch.tv/tags twitch.tv/commands\r\nPASS oauth:ceiling\r\nNICK benchceiling\r\n",
    );
    for batch in plan.chunks(100) {
        let names: Vec<String> = batch.iter().map(|c| format!("#{}", c.name)).collect();
        login.push_str(&format!("JOIN {}\r\n", names.join(",")));
    }
    write.write_all(login.as_bytes()).await?;
    let counts = Arc::new(Counts::default());
    let reader = tokio::spawn(bare_receive_loop(read, Arc::clone(&counts)));
    if !sim.wait_joined(plan.len(), Duration::from_secs(60)).await {
        anyhow::bail!(
            "the bare client joined only {} channels",
            sim.joined_channels()
        );
    }
    let sent0 = sim.stats().privmsgs_sent;
    let parsed0 = counts.privmsgs.load(Ordering::Relaxed);
    let started = Instant::now();
    sim.set_rate(rate);
    tokio::time::sleep(Duration::from_secs_f64(options.seconds)).await;
    let seconds = started.elapsed().as_secs_f64();
    let parsed = counts.privmsgs.load(Ordering::Relaxed) - parsed0;
    let sent = sim.stats().privmsgs_sent - sent0;
    sim.set_rate(0.0);
    sim.shutdown().await;
    drop(write);
    let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
    let report = CeilingReport {
        scenario: scenario.name.clone(),
        channels: plan.len(),
        offered_msgs_per_s: rate,
        seconds,
        lines_read: counts.lines.load(Ordering::Relaxed),
        privmsgs_parsed: parsed,
        parse_errors: counts.errors.load(Ordering::Relaxed),
        msgs_per_s: parsed as f64 / seconds,
        sim_sent_per_s: sent as f64 / seconds,
    };
    std::fs::create_dir_all(&options.out)?;
    std::fs::write(
        options.out.join("ceiling.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    Ok(report)
}

/// Reads lines, parses and types them, discards them.
async fn bare_receive_loop(read: tokio::net::tcp::OwnedReadHalf, counts: Arc<Counts>) {
    let mut reader = BufReader::with_capacity(64 * 1024, read);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        counts.lines.fetch_add(1, Ordering::Relaxed);
        let parsed = IRCMessage::parse(line.trim_end_matches(['\r', '\n']))
            .ok()
            .and_then(|m| ServerMessage::try_from(m).ok());
        match parsed {
            Some(ServerMessage::Privmsg(_)) => {
                counts.privmsgs.fetch_add(1, Ordering::Relaxed);
            }
            Some(_) => {}
            None => {
                counts.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
