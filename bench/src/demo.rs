//! `firehose demo`: the simulator and the service in one process, on the embedded defaults.
//!
//! It starts a simulator with N Zipf-weighted channels, points a service at it (plain TCP on
//! loopback, the bot verified and moderator so replies are not throttled by Twitch's per-account
//! limit), waits until every channel is joined, drives R msgs/s for S seconds with a live
//! progress line, lets the pipeline drain, and prints a summary: messages sent / processed /
//! shed, msgs/s, and the `!ping` reply latency measured by the simulator (from the moment it
//! wrote the `!ping` to the moment the threaded reply arrived back).
//!
//! With `--discord-channels N` it also runs a simulated Discord guild (the fake Discord of
//! `firehose_sim::discord`, on loopback) with N mapped channels beside the Twitch simulator: the same
//! service handles both, and the summary adds the guild's messages and answered `!ping`s.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use anyhow::Context;
use firehose::app::ServiceOptions;
use firehose::cli::Server;
use firehose::config::DiscordChannel;
use firehose::config::{Config, Secret};
use firehose_sim::discord::guild::{self, GuildStats, GuildTraffic};
use firehose_sim::discord::{FakeDiscord, FakeDiscordConfig};
use firehose_sim::{SimConfig, SimHandle, Simulator};

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Channels to simulate and join.
    #[arg(long, default_value_t = 100)]
    pub channels: usize,
    /// Chat messages per second over all channels.
    #[arg(long, default_value_t = 2000.0)]
    pub rate: f64,
    /// Seconds of traffic.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Address of the service's HTTP endpoints while the demo runs.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub http: SocketAddr,
    /// Share of chat messages that are `!ping`.
    #[arg(long, default_value_t = 0.01)]
    pub ping_fraction: f64,
    /// Messages in flight per channel before shedding.
    #[arg(long)]
    pub capacity: Option<u32>,
    /// Raw IRC lines whose chat text the simulator reuses (default: built-in content).
    #[arg(long)]
    pub corpus: Option<std::path::PathBuf>,
    /// Keep state in ScyllaDB/Cassandra at this `host:port` (keyspace `firehose_demo`) instead
    /// of the embedded store in memory.
    #[arg(long)]
    pub scylla_uri: Option<String>,
    /// The store writer's flush interval (ms); default `store.flush_interval_ms`.
    #[arg(long)]
    pub store_flush_ms: Option<u64>,
    /// Channels of a simulated Discord guild (a fake Discord on loopback) run beside the Twitch
    /// simulator; 0 = Twitch only.
    #[arg(long, default_value_t = 0)]
    pub discord_channels: usize,
    /// Discord messages per second over all its channels (same `!ping` share as Twitch).
    #[arg(long, default_value_t = 50.0)]
    pub discord_rate: f64,
    /// Where the service reads chat: `irc` (default) or `eventsub` (the simulator's EventSub,
    /// a conduit with WebSocket shards, tokens renewed through its OAuth service).
    #[arg(long, value_enum, default_value_t = IngestArg::Irc)]
    pub ingest: IngestArg,
    /// What replies go through: `irc` (default) or `helix` (the simulator's Send Chat Message;
    /// the `!ping` share is kept within Helix's 800 points per minute).
    #[arg(long, value_enum, default_value_t = SendViaArg::Irc)]
    pub send_via: SendViaArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IngestArg {
    Irc,
    Eventsub,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SendViaArg {
    Irc,
    Helix,
}

/// Points the configuration's Twitch side at the simulator's EventSub and Helix (`ingest`,
/// `send_via`), with the app and bot tokens renewed through the simulator's OAuth service.
pub fn use_twitch_apis(
    config: &mut Config,
    sim: &SimHandle,
    ingest: IngestArg,
    send_via: SendViaArg,
) {
    use firehose::config::{EventSubTransport, Ingest, SendVia};
    use firehose_sim::api::{BOT_SCOPES, CLIENT_ID, CLIENT_SECRET};
    if ingest == IngestArg::Irc && send_via == SendViaArg::Irc {
        return;
    }
    config.twitch.ingest = match ingest {
        IngestArg::Irc => Ingest::Irc,
        IngestArg::Eventsub => Ingest::Eventsub,
    };
    config.twitch.send_via = match send_via {
        SendViaArg::Irc => SendVia::Irc,
        SendViaArg::Helix => SendVia::Helix,
    };
    config.helix.base_url = sim.api().helix_url();
    config.helix.client_id = CLIENT_ID.to_string();
    config.twitch.auth.oauth_url = sim.api().oauth_url();
    config.secrets.client_secret = Some(Secret::new(CLIENT_SECRET));
    config.secrets.refresh_token = Some(Secret::new(
        sim.api()
            .issue_refresh_token(&config.twitch.login, BOT_SCOPES),
    ));
    config.secrets.helix_token = None;
    let es = &mut config.twitch.eventsub;
    es.transport = EventSubTransport::Conduit;
    es.shards = 2;
    es.websocket_url = sim.eventsub().websocket_url();
    es.reconnect_backoff_ms = 50;
    es.retry_backoff_ms = 200;
}

/// Helix's Send Chat Message budget: 800 points per minute per token, of which the demo uses
/// at most this share for replies.
pub const MAX_HELIX_REPLIES_PER_S: f64 = 800.0 / 60.0 * 0.8;

/// The demo's outcome, also used by tests and benchmarks.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoSummary {
    pub seconds: f64,
    pub sent: u64,
    pub processed: u64,
    pub shed: u64,
    pub msgs_per_s: f64,
    pub pings_sent: u64,
    pub pings_answered: u64,
    pub ping_p50_us: u64,
    pub ping_p99_us: u64,
    pub ping_max_us: u64,
    /// The state store: backend, rows written in all, rows per processed message (the
    /// coalescing ratio), flush durations.
    pub store_backend: String,
    pub store_rows_written: u64,
    pub store_rows_per_message: f64,
    pub store_flushes: u64,
    pub store_flush_p50_us: u64,
    pub store_flush_p99_us: u64,
    /// Messages the simulated Discord guild sent (0 without `--discord-channels`).
    pub discord_sent: u64,
    pub discord_pings_sent: u64,
    /// `pong` replies the fake Discord received through REST.
    pub discord_pings_answered: u64,
}

pub async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let summary = run_demo(args).await?;
    println!();
    println!("firehose demo summary");
    println!("  duration           {:.1} s", summary.seconds);
    println!("  messages sent      {}", summary.sent);
    println!("  messages processed {}", summary.processed);
    println!("  messages shed      {}", summary.shed);
    println!(
        "  throughput         {:.0} msgs/s processed",
        summary.msgs_per_s
    );
    println!(
        "  !ping answered     {} of {}",
        summary.pings_answered, summary.pings_sent
    );
    println!(
        "  !ping reply latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        summary.ping_p50_us as f64 / 1000.0,
        summary.ping_p99_us as f64 / 1000.0,
        summary.ping_max_us as f64 / 1000.0
    );
    println!(
        "  state store        {}: {} rows written, {:.4} rows per message, {} flushes p50 {:.2} ms p99 {:.2} ms",
        summary.store_backend,
        summary.store_rows_written,
        summary.store_rows_per_message,
        summary.store_flushes,
        summary.store_flush_p50_us as f64 / 1000.0,
        summary.store_flush_p99_us as f64 / 1000.0
    );
    if summary.discord_sent > 0 {
        println!("  discord sent       {}", summary.discord_sent);
        println!(
            "  discord !ping      {} answered of {}",
            summary.discord_pings_answered, summary.discord_pings_sent
        );
    }
    Ok(())
}

/// The demo's configuration for a simulator at `sim_addr`.
pub fn demo_config(sim_addr: SocketAddr, channels: &[String], http: SocketAddr) -> Config {
    let mut config = Config::default();
    config.twitch.server = sim_addr.to_string();
    config.twitch.tls = false;
    config.twitch.login = "firehosedemo".into();
    config.twitch.channels = channels.to_vec();
    config.twitch.verified_bot = true;
    config.twitch.join.limit = 2_000;
    config.http.listen = http;
    config
}

/// Replies per second the demo's traffic asks for at most: 80 % of a verified bot's 7,500
/// messages / 30 s, so the measured latency is the pipeline's, not time spent waiting for
/// Twitch's send window. Two thirds go to `!ping`, one third to `!echo`.
pub const MAX_REPLIES_PER_S: f64 = 200.0;

pub async fn run_demo(args: DemoArgs) -> anyhow::Result<DemoSummary> {
    let mut sim_config = SimConfig::with_channels(args.channels);
    sim_config.rate = 0.0;
    let max_replies = match args.send_via {
        SendViaArg::Irc => MAX_REPLIES_PER_S,
        SendViaArg::Helix => MAX_HELIX_REPLIES_PER_S,
    };
    let reply_share = max_replies / args.rate.max(1.0);
    sim_config.ping_fraction = args.ping_fraction.min(reply_share * 2.0 / 3.0);
    sim_config.echo_fraction = sim_config.echo_fraction.min(reply_share / 3.0);
    if sim_config.ping_fraction < args.ping_fraction {
        eprintln!(
            "demo: !ping share lowered to {:.4} (and !echo to {:.4}) to stay under {max_replies:.0} replies/s ({})",
            sim_config.ping_fraction,
            sim_config.echo_fraction,
            match args.send_via {
                SendViaArg::Irc => "Twitch's verified-bot send limit is 250/s",
                SendViaArg::Helix => "Helix's 800 points per minute per token",
            }
        );
    }
    sim_config.corpus = args.corpus.clone();
    sim_config.limits.verified = true;
    sim_config.limits.bot_is_mod = true;
    sim_config.limits.join_limit = 2_000;
    let sim = start_sim(sim_config.clone()).await?;
    let mut config = demo_config(sim.local_addr(), &sim_config.channels, args.http);
    use_twitch_apis(&mut config, &sim, args.ingest, args.send_via);
    if let Some(capacity) = args.capacity {
        config.admission.capacity = capacity;
    }
    if let Some(ms) = args.store_flush_ms {
        config.store.flush_interval_ms = ms;
    }
    if let Some(uri) = &args.scylla_uri {
        config.store.scylla_uri = uri.clone();
        config.store.keyspace = "firehose_demo".into();
    }
    let guild = match args.discord_channels {
        0 => None,
        n => Some(DemoGuild::start(n, &mut config).await?),
    };
    config.validate()?;
    let service = Server::start(config, ServiceOptions::default()).await?;
    eprintln!(
        "demo: simulator on {}, service HTTP on http://{} ; {} {} channels (ingest {:?}, send via {:?})...",
        sim.local_addr(),
        service.http_addr(),
        match args.ingest {
            IngestArg::Irc => "joining",
            IngestArg::Eventsub => "subscribing",
        },
        args.channels,
        args.ingest,
        args.send_via
    );
    let waited = Instant::now();
    if let Err(readiness) = service.wait_ready(Duration::from_secs(60)).await {
        anyhow::bail!(
            "service not ready after 60 s: {}",
            readiness.reasons.join("; ")
        );
    }
    eprintln!("demo: ready in {:.2} s", waited.elapsed().as_secs_f64());
    let started = Instant::now();
    sim.set_rate(args.rate);
    let discord_traffic = guild
        .as_ref()
        .map(|g| g.drive(args.discord_rate, sim_config.ping_fraction));
    progress_until(&sim, &service, started, Duration::from_secs(args.duration)).await;
    sim.set_rate(0.0);
    let discord_stats = match discord_traffic {
        Some((stats, stop, task)) => {
            stop.cancel();
            let _ = task.await;
            Some(stats)
        }
        None => None,
    };
    let traffic_seconds = started.elapsed().as_secs_f64();
    let discord_sent = discord_stats
        .as_ref()
        .map_or(0, |s| s.sent.load(Ordering::Relaxed));
    let discord_pings = discord_stats
        .as_ref()
        .map_or(0, |s| s.pings.load(Ordering::Relaxed));
    let pongs = || guild.as_ref().map_or(0, |g| g.pongs());
    settle(
        &sim,
        &service,
        Duration::from_secs(10),
        discord_sent,
        || pongs() >= discord_pings,
    )
    .await;
    let mut summary = summarize(&sim, &service, traffic_seconds);
    summary.discord_sent = discord_sent;
    summary.discord_pings_sent = discord_pings;
    summary.discord_pings_answered = pongs();
    for line in service.core().metrics.render().lines() {
        let replies = line.starts_with("firehose_outbound_sent_total")
            || line.starts_with("firehose_outbound_dropped_total");
        if replies {
            eprintln!("demo: {line}");
        }
    }
    let store = std::sync::Arc::clone(&service.core().store.status);
    let _ = service.shutdown().await;
    sim.shutdown().await;
    // After shutdown: every change is written, so the ratio covers the whole run.
    summary.store_backend = store.backend.to_string();
    summary.store_rows_written = store.rows_written.load(Ordering::Relaxed);
    summary.store_rows_per_message =
        summary.store_rows_written as f64 / (summary.processed.max(1)) as f64;
    summary.store_flushes = store.flushes_ok.load(Ordering::Relaxed);
    if let Ok(h) = store.flush_latency_us.lock() {
        summary.store_flush_p50_us = h.value_at_quantile(0.5);
        summary.store_flush_p99_us = h.value_at_quantile(0.99);
    }
    if let Some(guild) = guild {
        let _ = std::fs::remove_file(&guild.ca_file);
        guild.fake.shutdown().await;
    }
    Ok(summary)
}

fn totals(service: &Server) -> (u64, u64, u64) {
    let channels = service.core().registry.all();
    let received = channels
        .iter()
        .map(|c| c.counters.received.load(Ordering::Relaxed))
        .sum();
    let processed = channels
        .iter()
        .map(|c| c.counters.processed.load(Ordering::Relaxed))
        .sum();
    let shed = channels.iter().map(|c| c.counters.shed_total()).sum();
    (received, processed, shed)
}

async fn progress_until(sim: &SimHandle, service: &Server, started: Instant, length: Duration) {
    let tty = std::io::stderr().is_terminal();
    let mut last = (0u64, Instant::now());
    while started.elapsed() < length {
        tokio::time::sleep(Duration::from_secs(1).min(length.saturating_sub(started.elapsed())))
            .await;
        let stats = sim.stats();
        let (_, processed, shed) = totals(service);
        let now = Instant::now();
        let rate = (processed - last.0) as f64 / now.duration_since(last.1).as_secs_f64().max(1e-3);
        last = (processed, now);
        let line = format!(
            "t={:>4.1}s sent={} processed={} shed={} rate={:.0}/s pings={} answered={}",
            started.elapsed().as_secs_f64(),
            stats.privmsgs_sent + stats.events_sent,
            processed,
            shed,
            rate,
            stats.pings_sent,
            stats.replies_matched
        );
        if tty {
            eprint!("\r{line}   ");
            let _ = std::io::stderr().flush();
        } else {
            eprintln!("{line}");
        }
    }
    if tty {
        eprintln!();
    }
}

/// Waits until everything the simulator sent was handled (processed or shed) and the replies
/// to the `!ping`s are in, or the deadline passes.
async fn settle(
    sim: &SimHandle,
    service: &Server,
    deadline: Duration,
    discord_sent: u64,
    discord_replied: impl Fn() -> bool,
) {
    let until = Instant::now() + deadline;
    while Instant::now() < until {
        let stats = sim.stats();
        let (received, processed, shed) = totals(service);
        let sent = stats.privmsgs_sent + stats.events_sent + discord_sent;
        let handled = received >= sent && processed + shed >= received;
        let replied = stats.replies_matched >= stats.pings_sent && discord_replied();
        if handled && replied {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn summarize(sim: &SimHandle, service: &Server, seconds: f64) -> DemoSummary {
    let stats = sim.stats();
    let (_, processed, shed) = totals(service);
    let latencies = sim.reply_latencies();
    DemoSummary {
        seconds,
        sent: stats.privmsgs_sent + stats.events_sent,
        processed,
        shed,
        msgs_per_s: processed as f64 / seconds.max(1e-3),
        pings_sent: stats.pings_sent,
        pings_answered: stats.replies_matched,
        ping_p50_us: latencies.value_at_quantile(0.5),
        ping_p99_us: latencies.value_at_quantile(0.99),
        ping_max_us: latencies.max(),
        store_backend: String::new(),
        store_rows_written: 0,
        store_rows_per_message: 0.0,
        store_flushes: 0,
        store_flush_p50_us: 0,
        store_flush_p99_us: 0,
        discord_sent: 0,
        discord_pings_sent: 0,
        discord_pings_answered: 0,
    }
}

/// The demo's simulated Discord guild: a fake Discord and the channels mapped to it.
struct DemoGuild {
    fake: FakeDiscord,
    channels: Vec<u64>,
    /// The fake's test CA, written for the service to trust; removed at the end.
    ca_file: std::path::PathBuf,
}

const DEMO_GUILD: u64 = 1_300_000_000_000_000_000;
const DEMO_DISCORD_TOKEN: &str = "demo-discord-token";

impl DemoGuild {
    /// Starts a fake Discord with `n` channels in one guild and points `config` at it.
    async fn start(n: usize, config: &mut Config) -> anyhow::Result<DemoGuild> {
        let fake = FakeDiscord::start(FakeDiscordConfig::new(DEMO_DISCORD_TOKEN, vec![DEMO_GUILD]))
            .await?;
        let ca_file = fake.write_test_ca(&std::env::temp_dir())?;
        config.discord.enabled = true;
        config.discord.rest_address = fake.rest_addr().to_string();
        config.discord.root_ca_file = Some(ca_file.clone());
        let channels: Vec<u64> = (1..=n as u64).map(|i| DEMO_GUILD + i).collect();
        for (i, channel) in channels.iter().enumerate() {
            config.discord.channels.insert(
                channel.to_string(),
                DiscordChannel {
                    name: format!("demo-{i}"),
                    guild: DEMO_GUILD.to_string(),
                },
            );
        }
        config.secrets.discord_token = Some(Secret::new(DEMO_DISCORD_TOKEN));
        Ok(DemoGuild {
            fake,
            channels,
            ca_file,
        })
    }

    fn drive(
        &self,
        rate: f64,
        ping_fraction: f64,
    ) -> (
        Arc<GuildStats>,
        CancellationToken,
        tokio::task::JoinHandle<()>,
    ) {
        let stop = CancellationToken::new();
        let traffic = GuildTraffic {
            guild: DEMO_GUILD,
            channels: self.channels.clone(),
            rate,
            ping_fraction,
        };
        let (stats, task) = guild::drive(Arc::clone(self.fake.state()), traffic, stop.clone());
        (stats, stop, task)
    }

    /// `pong` replies posted to the fake so far.
    fn pongs(&self) -> u64 {
        self.fake
            .calls("POST", "/messages")
            .iter()
            .filter(|r| r.body["content"] == "pong")
            .count() as u64
    }
}

/// Starts a simulator for the demo, failing with context.
pub async fn start_sim(config: SimConfig) -> anyhow::Result<SimHandle> {
    Simulator::start(config)
        .await
        .context("starting the simulator")
}
