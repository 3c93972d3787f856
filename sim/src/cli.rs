//! `firehose sim`: runs the simulator on its own and reports progress on stderr.
//!
//! Prints one progress line per second (connections, joined channels, sent msgs/s, bot
//! replies, rate-limited) and a summary with reply latency percentiles at the end.

use super::{SimConfig, SimHandle, SimStats, Simulator};
use anyhow::Context;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Arguments of `firehose sim`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Address to listen on, e.g. 127.0.0.1:6667.
    #[arg(long, default_value = "127.0.0.1:6667")]
    pub listen: SocketAddr,
    /// Number of channels (sim0000, sim0001, ...), Zipf-weighted.
    #[arg(long, default_value_t = 100)]
    pub channels: usize,
    /// Total chat messages per second over all joined channels.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    pub duration: Option<u64>,
    /// Raw IRC lines whose chat text is reused as content (e.g. ../shared/corpus/xqcow-chat-2019.txt).
    #[arg(long)]
    pub corpus: Option<std::path::PathBuf>,
    /// The bot is a verified bot (7,500 messages / 30 s).
    #[arg(long)]
    pub verified: bool,
}

/// `firehose sim ...`.
pub async fn sim(args: SimArgs) -> anyhow::Result<()> {
    let mut config = SimConfig::with_channels(args.channels);
    config.listen = args.listen;
    config.rate = args.rate;
    config.corpus = args.corpus;
    config.limits.verified = args.verified;
    run_standalone(config, args.duration.map(Duration::from_secs))
        .await
        .context("simulator")
}

/// Starts the simulator and runs it until `duration` has passed or Ctrl-C.
pub async fn run_standalone(config: SimConfig, duration: Option<Duration>) -> anyhow::Result<()> {
    let sim = Simulator::start(config).await?;
    eprintln!("firehose sim listening on {}", sim.local_addr());
    let started = Instant::now();
    let stop = async {
        match duration {
            Some(duration) => tokio::time::sleep(duration).await,
            None => std::future::pending::<()>().await,
        }
    };
    tokio::pin!(stop);
    let mut progress = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    let mut previous = (Instant::now(), SimStats::default());
    loop {
        tokio::select! {
            _ = &mut stop => break,
            signal = tokio::signal::ctrl_c() => {
                signal?;
                eprintln!("interrupted");
                break;
            }
            _ = progress.tick() => {
                let now = (Instant::now(), sim.stats());
                eprintln!("{}", progress_line(&sim, &previous, &now));
                previous = now;
            }
        }
    }
    sim.shutdown().await;
    eprintln!("{}", summary(&sim, started.elapsed()));
    Ok(())
}

/// One line of progress between two stats snapshots.
fn progress_line(
    sim: &SimHandle,
    before: &(Instant, SimStats),
    now: &(Instant, SimStats),
) -> String {
    let seconds = now
        .0
        .saturating_duration_since(before.0)
        .as_secs_f64()
        .max(1e-3);
    let per_second = |a: u64, b: u64| b.saturating_sub(a) as f64 / seconds;
    let (b, n) = (&before.1, &now.1);
    format!(
        "conns {} joined {} | sent {:.0} msg/s ({} total, {} events) | bot {:.0} msg/s, replies matched {} | ratelimited {} dup {} too-long {} | backpressure {} ms",
        n.active_connections,
        sim.joined_channels(),
        per_second(b.privmsgs_sent, n.privmsgs_sent),
        n.privmsgs_sent,
        n.events_sent,
        per_second(b.bot_messages, n.bot_messages),
        n.replies_matched,
        n.ratelimited,
        n.duplicates,
        n.too_long,
        n.backpressure_wait_us / 1_000,
    )
}

/// The final report: totals and reply latency percentiles.
fn summary(sim: &SimHandle, elapsed: Duration) -> String {
    let stats = sim.stats();
    let latencies = sim.reply_latencies();
    let seconds = elapsed.as_secs_f64().max(1e-3);
    let mut out = format!(
        "summary after {:.1} s: {} connections, {} joins ({} over limit), {} PRIVMSGs sent ({:.0}/s), {} events, {} !pings\n",
        seconds,
        stats.connections,
        stats.joins,
        stats.join_violations,
        stats.privmsgs_sent,
        stats.privmsgs_sent as f64 / seconds,
        stats.events_sent,
        stats.pings_sent,
    );
    out.push_str(&format!(
        "bot: {} messages, {} accepted, {} ratelimited, {} duplicates, {} too long; {} replies matched",
        stats.bot_messages,
        stats.bot_accepted,
        stats.ratelimited,
        stats.duplicates,
        stats.too_long,
        stats.replies_matched,
    ));
    if !latencies.is_empty() {
        out.push_str(&format!(
            "\nreply latency us: p50 {} p90 {} p99 {} p99.9 {} max {}",
            latencies.value_at_quantile(0.5),
            latencies.value_at_quantile(0.9),
            latencies.value_at_quantile(0.99),
            latencies.value_at_quantile(0.999),
            latencies.max(),
        ));
    }
    if stats.generator_skipped > 0 {
        out.push_str(&format!(
            "\ngenerator fell behind: {} messages skipped",
            stats.generator_skipped
        ));
    }
    out
}
