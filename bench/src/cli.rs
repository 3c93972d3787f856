//! `firehose bench`: command-line arguments of the load-generator benchmark (see
//! the crate root), and `firehose bench --ceiling` for the bare twitch-irc receive loop.

use std::path::PathBuf;

use crate::demo::{IngestArg, SendViaArg};
use crate::{run_bench, run_ceiling, BenchOptions, CeilingOptions, Overrides};

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Scenario file, e.g. config/scenarios/steady.toml.
    #[arg(long)]
    pub scenario: PathBuf,
    /// Directory for report.json, report.md, latency.svg and throughput.svg.
    #[arg(long)]
    pub out: PathBuf,
    /// Run the service as its own process (this executable with `run --config`).
    #[arg(long)]
    pub separate_process: bool,
    /// With --separate-process: the service's executable, run as `EXE run --config ...`
    /// (default: this one). A wrapper script can run it under a profiler (`heaptrack`,
    /// `perf record`) while the load generator stays outside the profile.
    #[arg(long, requires = "separate_process")]
    pub service_exe: Option<PathBuf>,
    /// Total seconds of traffic (phases or ramp steps are scaled to fit).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Join at most this many channels.
    #[arg(long)]
    pub max_channels: Option<usize>,
    /// Multiply every rate of the scenario.
    #[arg(long)]
    pub rate_scale: Option<f64>,
    /// Raw IRC lines whose chat texts are the plain chat (default: built-in texts).
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Measure the ceiling instead: the scenario's traffic into twitch-irc's bare receive loop.
    #[arg(long)]
    pub ceiling: bool,
    /// Channel rules file in place of the scenario's `service.rules` (e.g.
    /// config/scenarios/bench-rules-defended.toml: the same raid with the raid defence on).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Offer this many msgs/s in total for --duration seconds (default 10) instead of the
    /// scenario's phases or ramp (with --ceiling: default the scenario's peak).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Where the service reads chat: `irc` (default) or `eventsub` (the simulator's EventSub
    /// conduit with WebSocket shards; tokens renewed through its OAuth service).
    #[arg(long, value_enum, default_value_t = IngestArg::Irc)]
    pub ingest: IngestArg,
    /// What replies go through: `irc` (default) or `helix` (Send Chat Message, within the
    /// scenario's Helix points per minute).
    #[arg(long, value_enum, default_value_t = SendViaArg::Irc)]
    pub send_via: SendViaArg,
}

pub async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let overrides = Overrides {
        duration_s: args.duration,
        max_channels: args.max_channels,
        rate_scale: args.rate_scale,
        flat_rate: if args.ceiling { None } else { args.rate },
        rules: args.rules.clone(),
    };
    if args.ceiling {
        let report = run_ceiling(CeilingOptions {
            scenario: args.scenario,
            out: args.out.clone(),
            overrides,
            rate: args.rate,
            seconds: args.duration.unwrap_or(10.0),
            corpus: args.corpus,
        })
        .await?;
        println!(
            "ceiling ({} channels, offered {:.0}/s): twitch-irc bare receive loop parsed {:.0} msgs/s (simulator sent {:.0}/s); {}",
            report.channels,
            report.offered_msgs_per_s,
            report.msgs_per_s,
            report.sim_sent_per_s,
            args.out.join("ceiling.json").display()
        );
        return Ok(());
    }
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let report = run_bench(BenchOptions {
        scenario: args.scenario,
        out: args.out.clone(),
        separate_process: args.separate_process,
        overrides,
        service_exe: args.service_exe,
        corpus: args.corpus,
        command,
        ingest: args.ingest,
        send_via: args.send_via,
    })
    .await?;
    println!("{}", report.markdown());
    println!("written to {}", args.out.display());
    Ok(())
}
