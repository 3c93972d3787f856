//! Runs one scenario: simulator, recording Helix and service (in this process, or the service
//! as a child process), channel joins, the phases or the capacity ramp with a progress bar,
//! draining, and the measurements that go into the [`Report`]. Memory and the sliding latency
//! window run on the [`Monitor`]'s thread beside the traffic.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::demo::{use_twitch_apis, IngestArg, SendViaArg};
use crate::helix::{RecordingHelix, BENCH_CLIENT_ID, BENCH_TOKEN};
use crate::monitor::{Monitor, MonitorResult};
use crate::procstat::{self, ProcSample};
use crate::report::{
    DefenceReport, Identity, ModerationDetail, Percentiles, PhaseReport, RampStep, RecoveryReport,
    Report, Sample, SecondsPercentiles,
};
use crate::scenario::{ChannelPlan, Overrides, Phase, Recovery, Scenario};
use crate::scrape::{Scraper, ServiceCounts};
use firehose::app::ServiceOptions;
use firehose::cli::Server;
use firehose::config::{Config, OverflowPolicy, Secret};
use firehose_sim::track::TrackerSnapshot;
use firehose_sim::{SimConfig, SimHandle, SimStats, Simulator};

/// Bearer token of the service's admin API during a bench.
const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";
/// Replies per second kept under a verified bot's 7,500 / 30 s (250/s) with a margin.
pub const MAX_REPLIES_PER_S: f64 = 200.0;
/// Channels above which `/metrics` (one series per channel and figure) is scraped less often.
const LARGE_SCRAPE: usize = 20_000;

/// What to run and where to put the results.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub scenario: PathBuf,
    pub out: PathBuf,
    pub separate_process: bool,
    pub overrides: Overrides,
    /// The executable run as the service with `--separate-process` (default: this one).
    pub service_exe: Option<PathBuf>,
    /// Raw IRC lines whose chat text is the plain chat of the mix.
    pub corpus: Option<PathBuf>,
    /// The command line, as written into the report.
    pub command: String,
    /// Where the service reads chat (IRC, or the simulator's EventSub).
    pub ingest: IngestArg,
    /// What replies go through (IRC, or the simulator's Helix Send Chat Message).
    pub send_via: SendViaArg,
}

/// The service under test, in process or as a child.
enum Target {
    InProcess(Box<Server>),
    Child {
        child: tokio::process::Child,
        pid: u32,
    },
}

impl Target {
    fn pid(&self) -> Option<u32> {
        match self {
            Target::InProcess(_) => None,
            Target::Child { pid, .. } => Some(*pid),
        }
    }

    async fn stop(self) {
        match self {
            Target::InProcess(service) => {
                let _ = service.shutdown().await;
            }
            Target::Child { mut child, pid } => {
                // SIGTERM asks for the graceful shutdown; kill only if it does not come.
                let _ = tokio::process::Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .status()
                    .await;
                if tokio::time::timeout(Duration::from_secs(15), child.wait())
                    .await
                    .is_err()
                {
                    let _ = child.kill().await;
                }
            }
        }
    }
}

/// Everything the traffic loop needs.
struct Ctx {
    sim: SimHandle,
    monitor: Monitor,
    scraper: Scraper,
    plan: Vec<ChannelPlan>,
    base_total: f64,
    progress: ProgressBar,
    started: Instant,
    samples: Vec<Sample>,
    scrape_every: u32,
    ticks: u32,
    last_sent: u64,
    last_processed: Option<(u64, Instant)>,
    last_at: Instant,
    offered_integral: f64,
    last_counts: ServiceCounts,
}

/// What one stretch of traffic measured.
struct Stretch {
    sent: u64,
    processed: u64,
    shed: u64,
    generator_skipped: u64,
    seconds: f64,
    reply: Histogram<u64>,
    moderation: Histogram<u64>,
}

fn sent_total(sim: &SimHandle) -> u64 {
    let s = sim.stats();
    s.privmsgs_sent + s.events_sent
}

impl Ctx {
    fn boosted(&self, channel: Option<usize>, factor: f64) -> f64 {
        let extra = channel
            .and_then(|c| self.plan.get(c))
            .map_or(0.0, |c| c.rate * (factor - 1.0));
        self.base_total + extra
    }

    /// Runs traffic at `rate` for `length`, sampling once a second.
    async fn stretch(&mut self, phase: &str, rate: f64, length: Duration) -> Stretch {
        let begin = Instant::now();
        let sent0 = sent_total(&self.sim);
        let skipped0 = self.sim.stats().generator_skipped;
        let counts0 = self.last_counts;
        let mut reply = firehose::obs::new_latency_histogram();
        let mut moderation = firehose::obs::new_latency_histogram();
        self.sim.set_rate(rate);
        while begin.elapsed() < length {
            let wait = Duration::from_secs(1).min(length.saturating_sub(begin.elapsed()));
            tokio::time::sleep(wait).await;
            let (r, m) = self.sample(phase, rate).await;
            let _ = reply.add(&r);
            let _ = moderation.add(&m);
        }
        // Read the service once more at the end so the stretch's counts are its own.
        let counts = self.scrape_now().await;
        Stretch {
            sent: sent_total(&self.sim) - sent0,
            processed: counts.processed.saturating_sub(counts0.processed),
            shed: counts.shed.saturating_sub(counts0.shed),
            generator_skipped: self.sim.stats().generator_skipped - skipped0,
            seconds: begin.elapsed().as_secs_f64(),
            reply,
            moderation,
        }
    }

    async fn scrape_now(&mut self) -> ServiceCounts {
        if let Ok(counts) = self.scraper.scrape().await {
            self.last_counts = counts;
        }
        self.last_counts
    }

    /// One sampling tick: sent and processed rates and this second's latency percentiles.
    async fn sample(&mut self, phase: &str, rate: f64) -> (Histogram<u64>, Histogram<u64>) {
        let now = Instant::now();
        let dt = now.duration_since(self.last_at).as_secs_f64().max(1e-3);
        self.offered_integral += rate * dt;
        self.last_at = now;
        let sent = sent_total(&self.sim);
        let sent_per_s = (sent - self.last_sent) as f64 / dt;
        self.last_sent = sent;
        self.ticks += 1;
        let mut processed_per_s = None;
        if self.ticks % self.scrape_every == 0 {
            let counts = self.scrape_now().await;
            let at = Instant::now();
            if let Some((before, then)) = self.last_processed {
                let span = at.duration_since(then).as_secs_f64().max(1e-3);
                processed_per_s = Some(counts.processed.saturating_sub(before) as f64 / span);
            }
            self.last_processed = Some((counts.processed, at));
        }
        let (reply, moderation) = self.monitor.take_second();
        let rss = self.monitor.last_rss();
        let q = |h: &Histogram<u64>, q: f64| (!h.is_empty()).then(|| h.value_at_quantile(q));
        let t_s = self.started.elapsed().as_secs_f64();
        self.samples.push(Sample {
            t_s,
            phase: phase.to_string(),
            sent_per_s,
            processed_per_s,
            reply_p50_us: q(&reply, 0.5),
            reply_p99_us: q(&reply, 0.99),
            moderation_p50_us: q(&moderation, 0.5),
            moderation_p99_us: q(&moderation, 0.99),
            rss_bytes: (rss > 0).then_some(rss),
        });
        self.progress.set_position(t_s as u64);
        self.progress.set_message(format!(
            "{phase}: sent {sent_per_s:.0}/s processed {} shed {} reply p99 {}",
            processed_per_s.map_or("-".into(), |p| format!("{p:.0}/s")),
            self.last_counts.shed,
            q(&reply, 0.99).map_or("-".into(), |v| format!("{:.1} ms", v as f64 / 1000.0)),
        ));
        (reply, moderation)
    }
}

/// Runs a scenario and writes its report into `options.out`.
pub async fn run_bench(options: BenchOptions) -> anyhow::Result<Report> {
    let mut scenario = Scenario::load(&options.scenario)?;
    scenario.apply(&options.overrides);
    let plan = scenario.channel_plan();
    let channels: Vec<String> = plan.iter().map(|c| c.name.clone()).collect();
    let mut notes = Vec::new();
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("creating {}", options.out.display()))?;

    let base_total: f64 = plan.iter().map(|c| c.rate).sum();
    let peak_replies = peak_replies(&scenario, base_total);
    if peak_replies > MAX_REPLIES_PER_S {
        notes.push(format!(
            "the mix asks for up to {peak_replies:.0} replies/s, over the {MAX_REPLIES_PER_S}/s a verified bot can send: reply latency includes waiting for Twitch's send window"
        ));
    }

    let mut sim_config = SimConfig::with_channels(0);
    sim_config.channels = channels.clone();
    sim_config.channel_weights = Some(plan.iter().map(|c| c.rate).collect());
    sim_config.channel_chatters = Some(plan.iter().map(|c| c.chatters).collect());
    sim_config.mix = Some(scenario.mix.to_content_mix());
    sim_config.event_fraction = scenario.traffic.event_share;
    sim_config.rate = 0.0;
    sim_config.corpus = options.corpus.clone();
    sim_config.limits.verified = true;
    sim_config.limits.bot_is_mod = true;
    sim_config.limits.join_limit = u32::MAX;
    sim_config.max_channels = channels.len() + 16;
    sim_config.server_ping_interval = Duration::from_secs(600);
    // The simulated Helix (EventSub subscriptions, Send Chat Message) grants what the service is
    // configured to spend: the scenario's budget, whose reason its file states.
    sim_config.api_points_per_minute = scenario.service.helix_points_per_minute;
    let sim = Simulator::start(sim_config)
        .await
        .context("starting the simulator")?;
    let helix = RecordingHelix::start(sim.clone(), scenario.service.helix_points_per_minute)
        .await
        .context("starting the bench Helix")?;

    let rules_dir = options.out.join(".rules");
    write_rules(&scenario, &channels, &rules_dir)?;
    let mut config = service_config(&scenario, sim.local_addr(), &helix.base_url, &rules_dir);
    if options.ingest != IngestArg::Irc || options.send_via != SendViaArg::Irc {
        // EventSub subscriptions and Helix chat go to the simulated Twitch API's port, which
        // then also serves the recording Helix (moderation is measured the same way).
        use_twitch_apis(&mut config, &sim, options.ingest, options.send_via);
        config.helix.client_id = firehose_sim::api::CLIENT_ID.to_string();
        sim.api().mount_router(crate::helix::router(
            sim.clone(),
            Arc::clone(&helix.counts),
            Arc::clone(&helix.budget),
        ));
    }

    let progress = progress_bar(scenario.traffic_seconds());
    progress.set_message("starting the service");
    let (target, http) = if options.separate_process {
        start_child(&options, &mut config).await?
    } else {
        config.validate()?;
        let service = Server::start(config, ServiceOptions::default()).await?;
        let http = service.http_addr();
        (Target::InProcess(Box::new(service)), http)
    };
    let result = measure(
        &options, &scenario, plan, &sim, &helix, &target, http, progress, notes,
    )
    .await;
    target.stop().await;
    sim.shutdown().await;
    drop(helix);
    let _ = std::fs::remove_dir_all(&rules_dir);
    let report = result?;
    report.write(&options.out)?;
    Ok(report)
}

/// The most replies per second the scenario asks for: each phase's rate times its own mix's
/// share of commands (a ramp: its top rate with the scenario's mix).
fn peak_replies(scenario: &Scenario, base_total: f64) -> f64 {
    let plan = scenario.channel_plan();
    match &scenario.ramp {
        Some(r) => r.max_msgs_per_s * scenario.mix.to_content_mix().reply_share(),
        None => scenario
            .phases
            .iter()
            .map(|p| {
                let extra = p
                    .channel
                    .and_then(|c| plan.get(c))
                    .map_or(0.0, |c| c.rate * (p.channel_factor - 1.0));
                let mix = p.mix.as_ref().unwrap_or(&scenario.mix);
                (base_total + extra) * p.rate_factor * mix.to_content_mix().reply_share()
            })
            .fold(0.0, f64::max),
    }
}

fn progress_bar(seconds: f64) -> ProgressBar {
    let bar =
        ProgressBar::with_draw_target(Some(seconds.ceil() as u64), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len}s {msg}")
    {
        bar.set_style(style);
    }
    bar
}

/// Writes the scenario's rules for its biggest channels into `dir`.
fn write_rules(scenario: &Scenario, channels: &[String], dir: &Path) -> anyhow::Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let Some(path) = scenario.rules_path() else {
        return Ok(());
    };
    let rules = std::fs::read_to_string(&path)
        .with_context(|| format!("reading rules {}", path.display()))?;
    let parsed: firehose::engine::ChannelRules =
        toml::from_str(&rules).with_context(|| format!("rules {}", path.display()))?;
    parsed
        .validate()
        .map_err(|e| anyhow::anyhow!("rules {}: {e}", path.display()))?;
    let n = match scenario.service.rules_top_channels {
        0 => channels.len(),
        n => n.min(channels.len()),
    };
    for channel in &channels[..n] {
        std::fs::write(dir.join(format!("{channel}.toml")), &rules)?;
    }
    Ok(())
}

/// The service configuration for a bench run (channels are joined later, to measure memory).
fn service_config(scenario: &Scenario, sim: SocketAddr, helix: &str, rules: &Path) -> Config {
    let mut config = crate::demo::demo_config(sim, &[], SocketAddr::from(([127, 0, 0, 1], 0)));
    config.twitch.join.limit = 1_000_000;
    config.twitch.keepalive_interval_ms = 600_000;
    config.admission.capacity = scenario.service.admission_capacity;
    config.admission.overflow = if scenario.service.overflow == "block" {
        OverflowPolicy::Block
    } else {
        OverflowPolicy::Shed
    };
    config.engine.rules_dir = rules.display().to_string();
    config.helix.base_url = helix.to_string();
    config.helix.client_id = BENCH_CLIENT_ID.to_string();
    config.helix.points_per_minute = scenario.service.helix_points_per_minute;
    config.helix.max_in_flight = 32;
    config.helix.queue_capacity = 100_000;
    // Stream status is not part of any scenario: poll rarely.
    config.helix.stream_poll_interval_ms = 3_600_000;
    config.secrets.admin_token = Some(Secret::new(ADMIN_TOKEN));
    config.secrets.helix_token = Some(Secret::new(BENCH_TOKEN));
    config
}

/// Spawns `<exe> run --config <out>/service.toml` and waits for its HTTP endpoint.
async fn start_child(
    options: &BenchOptions,
    config: &mut Config,
) -> anyhow::Result<(Target, SocketAddr)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let http = SocketAddr::from(([127, 0, 0, 1], port));
    config.http.listen = http;
    config.validate()?;
    let path = options.out.join("service.toml");
    std::fs::write(&path, toml::to_string(&*config)?)?;
    let exe = match &options.service_exe {
        Some(exe) => exe.clone(),
        None => std::env::current_exe().context("finding this executable")?,
    };
    let log = std::fs::File::create(options.out.join("service.log"))?;
    let mut command = tokio::process::Command::new(&exe);
    // Secrets reach the child through its environment, never the written config file.
    let secrets = [
        (
            "FIREHOSE_TWITCH_CLIENT_SECRET",
            &config.secrets.client_secret,
        ),
        (
            "FIREHOSE_TWITCH_REFRESH_TOKEN",
            &config.secrets.refresh_token,
        ),
    ];
    for (name, secret) in secrets {
        if let Some(secret) = secret {
            command.env(name, secret.expose());
        }
    }
    if config.secrets.helix_token.is_some() {
        command.env("FIREHOSE_HELIX_TOKEN", BENCH_TOKEN);
    }
    let child = command
        .arg("run")
        .arg("--config")
        .arg(&path)
        .env("FIREHOSE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env(
            "FIREHOSE_LOG",
            std::env::var("FIREHOSE_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    let pid = child
        .id()
        .ok_or_else(|| anyhow::anyhow!("the service process exited at once"))?;
    let mut target = Target::Child { child, pid };
    let client = reqwest::Client::builder().no_proxy().build()?;
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let up = client
            .get(format!("http://{http}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if up {
            return Ok((target, http));
        }
        if let Target::Child { child, .. } = &mut target {
            if let Ok(Some(status)) = child.try_wait() {
                anyhow::bail!(
                    "the service process exited ({status}); see {}",
                    options.out.join("service.log").display()
                );
            }
        }
        if Instant::now() > until {
            target.stop().await;
            anyhow::bail!("the service process did not answer /healthz within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Joins every channel the way an operator would: one bulk request per 100,000 channels
/// (`POST /v1/channels`, or the same `Core::join_many` in process), answered at once; the
/// actors start and the JOINs go out in the background. Returns how long the requests took to
/// be answered (the joins themselves are waited for by the caller).
async fn join_all(
    target: &Target,
    http: SocketAddr,
    channels: &[String],
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for chunk in channels.chunks(firehose::app::membership::MAX_PER_REQUEST) {
        let accepted = match target {
            Target::InProcess(service) => {
                service
                    .core()
                    .join_many(chunk)
                    .map_err(|e| anyhow::anyhow!("joining {} channels: {e}", chunk.len()))?
                    .accepted
            }
            Target::Child { .. } => {
                let client = reqwest::Client::builder().no_proxy().build()?;
                let response = client
                    .post(format!("http://{http}/v1/channels"))
                    .bearer_auth(ADMIN_TOKEN)
                    .json(&serde_json::json!({ "channels": chunk }))
                    .send()
                    .await?;
                anyhow::ensure!(
                    response.status().is_success(),
                    "joining {} channels: HTTP {}",
                    chunk.len(),
                    response.status()
                );
                let answer: serde_json::Value = response.json().await?;
                answer["accepted"].as_u64().unwrap_or(0) as usize
            }
        };
        anyhow::ensure!(
            accepted == chunk.len(),
            "{accepted} of {} channels accepted",
            chunk.len()
        );
    }
    Ok(started.elapsed())
}

async fn wait_ready(http: SocketAddr, deadline: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    let until = Instant::now() + deadline;
    loop {
        let response = client.get(format!("http://{http}/readyz")).send().await;
        if let Ok(r) = response {
            if r.status().is_success() {
                return Ok(());
            }
            if Instant::now() > until {
                let body = r.text().await.unwrap_or_default();
                anyhow::bail!("service not ready after {deadline:?}: {body}");
            }
        } else if Instant::now() > until {
            anyhow::bail!("service not answering /readyz after {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn proc_sample(target: &Target) -> anyhow::Result<ProcSample> {
    procstat::sample(target.pid()).context("reading /proc")
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    options: &BenchOptions,
    scenario: &Scenario,
    plan: Vec<ChannelPlan>,
    sim: &SimHandle,
    helix: &RecordingHelix,
    target: &Target,
    http: SocketAddr,
    progress: ProgressBar,
    mut notes: Vec<String>,
) -> anyhow::Result<Report> {
    let channels: Vec<String> = plan.iter().map(|c| c.name.clone()).collect();
    let n = channels.len();
    let join_deadline = Duration::from_secs(60 + (n as u64) / 500);
    wait_ready(http, Duration::from_secs(30)).await?;
    let before_join = proc_sample(target)?;
    progress.set_message(format!("joining {n} channels"));
    let started_join = Instant::now();
    let accepted_in = join_all(target, http, &channels).await?;
    if !sim.wait_joined(n, join_deadline).await {
        anyhow::bail!(
            "only {} of {n} channels joined within {join_deadline:?}",
            sim.joined_channels()
        );
    }
    wait_ready(http, join_deadline).await?;
    let joined_in = started_join.elapsed();
    notes.push(format!(
        "{n} channels joined through the bulk API: accepted in {:.3} s, every JOIN confirmed after {:.1} s",
        accepted_in.as_secs_f64(),
        joined_in.as_secs_f64()
    ));
    let after_join = proc_sample(target)?;
    let rss_per_channel =
        after_join.rss_bytes.saturating_sub(before_join.rss_bytes) as f64 / n as f64;

    let scraper = Scraper::new(http)?;
    let counts0 = scraper.scrape().await.context("scraping /metrics")?;
    let cpu0 = proc_sample(target)?.cpu_s;
    let base_total: f64 = plan.iter().map(|c| c.rate).sum();
    let phases: &[Phase] = if scenario.ramp.is_some() {
        &[]
    } else {
        &scenario.phases
    };
    let monitor = Monitor::start(
        sim.clone(),
        target.pid(),
        phases,
        scenario.recovery.as_ref(),
    )
    .context("starting the monitor thread")?;
    let started = Instant::now();
    let mut ctx = Ctx {
        sim: sim.clone(),
        monitor,
        scraper,
        base_total,
        progress,
        started,
        samples: Vec::new(),
        scrape_every: if n > LARGE_SCRAPE { 10 } else { 1 },
        ticks: 0,
        last_sent: sent_total(sim),
        last_processed: Some((counts0.processed, started)),
        last_at: started,
        offered_integral: 0.0,
        last_counts: counts0,
        plan,
    };
    let mut ramp_steps = Vec::new();
    let mut capacity = None;
    let mut stretches: Vec<(String, f64, Stretch)> = Vec::new();
    match &scenario.ramp {
        Some(ramp) => {
            let mut rate = ramp.start_msgs_per_s;
            let step_length = Duration::from_secs_f64(ramp.step_duration_s);
            while rate <= ramp.max_msgs_per_s * (1.0 + 1e-9) {
                let label = format!("ramp {rate:.0}/s");
                let s = ctx.stretch(&label, rate, step_length).await;
                let sent_per_s = s.sent as f64 / s.seconds;
                let processed_per_s = s.processed as f64 / s.seconds;
                let reply_p99 = (!s.reply.is_empty()).then(|| s.reply.value_at_quantile(0.99));
                let moderation_p99 =
                    (!s.moderation.is_empty()).then(|| s.moderation.value_at_quantile(0.99));
                let mut why = Vec::new();
                if s.shed > 0 {
                    why.push(format!("{} shed", s.shed));
                }
                if processed_per_s < ramp.min_delivered_share * rate {
                    why.push(format!(
                        "processed {processed_per_s:.0}/s < {:.0}% of offered",
                        ramp.min_delivered_share * 100.0
                    ));
                }
                for slo in scenario.slo.iter().filter(|s| s.is_latency()) {
                    let p = if slo.metric.starts_with("reply") {
                        Percentiles::of(&s.reply)
                    } else {
                        Percentiles::of(&s.moderation)
                    };
                    let probe = Report::probe(&slo.metric, p);
                    if let Some(v) = probe {
                        if !slo.passes(v) {
                            why.push(format!("{} = {v:.0}", slo.metric));
                        }
                    }
                }
                let sustained = why.is_empty();
                if sustained {
                    capacity = Some(processed_per_s);
                }
                ramp_steps.push(RampStep {
                    offered_msgs_per_s: rate,
                    sent_per_s,
                    processed_per_s,
                    shed: s.shed,
                    reply_p99_us: reply_p99,
                    moderation_p99_us: moderation_p99,
                    sustained,
                    why: why.join("; "),
                });
                if !sustained {
                    break;
                }
                rate += ramp.step_msgs_per_s;
            }
            if capacity.is_none() {
                notes.push("no ramp step was sustained: capacity is below the first step".into());
            }
        }
        None => {
            for (i, phase) in scenario.phases.iter().enumerate() {
                apply_phase(&ctx, scenario, phase);
                let rate = ctx.boosted(phase.channel, phase.channel_factor) * phase.rate_factor;
                ctx.monitor.enter_phase(i);
                let s = ctx
                    .stretch(&phase.name, rate, Duration::from_secs_f64(phase.duration_s))
                    .await;
                reset_phase(&ctx, scenario, phase);
                stretches.push((phase.name.clone(), rate, s));
            }
        }
    }
    sim.set_rate(0.0);
    ctx.monitor.leave_phases();
    let traffic_seconds = started.elapsed().as_secs_f64();
    let offered = ctx.offered_integral / traffic_seconds.max(1e-3);
    ctx.progress.set_message("draining");
    let counts = settle(&mut ctx, Duration::from_secs(20)).await;
    // Every state change written, so the store's rows cover the whole run.
    let flushed = flush_store(&http).await;
    let counts = if flushed.is_ok() {
        ctx.scrape_now().await
    } else {
        counts
    };
    ctx.progress.finish_and_clear();
    let end = proc_sample(target)?;
    let stats = sim.stats();
    let tracked = sim.tracker_now();
    let sent = stats.privmsgs_sent + stats.events_sent;
    let processed = counts.processed.saturating_sub(counts0.processed);
    let shed = counts.shed.saturating_sub(counts0.shed);
    if processed + shed != sent {
        notes.push(format!(
            "not settled within the drain deadline: sent {sent}, processed + shed {}",
            processed + shed
        ));
    }
    if stats.generator_skipped > 0 {
        notes.push(format!(
            "the simulator fell more than 1 s behind and skipped {} messages (its own ceiling on these cores)",
            stats.generator_skipped
        ));
    }
    if tracked.unthreaded_replies > 0 {
        notes.push(format!(
            "{} bot messages were not threaded replies (filter warnings, !echo): not timed",
            tracked.unthreaded_replies
        ));
    }
    if options.separate_process {
        notes.push("CPU and RSS are the service process's alone (read from /proc/<pid>)".into());
    } else {
        notes.push("in-process: CPU and RSS include the simulator and the bench (read from /proc/self); RSS per channel includes the simulator's channel table".into());
    }
    if counts.actions_dropped > 0 || counts.helix_failed > 0 {
        notes.push(format!(
            "the service dropped {} replies/moderation actions (firehose_outbound_dropped_total + firehose_helix_dropped_total) and {} Helix calls failed: their messages are never answered",
            counts.actions_dropped, counts.helix_failed
        ));
    }
    if counts.actions_coalesced > 0 {
        notes.push(format!(
            "{} moderation actions were coalesced into a harsher one for the same user (firehose_helix_dropped_total{{reason=\"merged\"|\"superseded\"}}): the ban or timeout removed their messages",
            counts.actions_coalesced
        ));
    }
    if let Err(e) = &flushed {
        notes.push(format!(
            "the final store flush failed ({e}): store writes cover completed flushes only"
        ));
    }
    let store_measured = counts.store_rows_written.is_some();
    let store_writes = counts.store_rows_written.unwrap_or(0) as f64;
    if !store_measured {
        notes.push("store not measured (metric absent): firehose_store_rows_written_total is not exported by this build".into());
    }
    let cpu_seconds = end.cpu_s - cpu0;
    let Ctx {
        monitor, samples, ..
    } = ctx;
    let measured = monitor.finish();
    if measured.rss_errors > 0 {
        notes.push(format!(
            "{} of the 100 ms VmRSS readings failed (/proc unreadable)",
            measured.rss_errors
        ));
    }
    // The generator sends a few more between the last stretch's final count and stopping
    // (`set_rate(0)` takes effect at its next tick): they were sent at the end of the last
    // phase, so they count there and the phases add up to the run.
    let counted: u64 = stretches.iter().map(|(_, _, s)| s.sent).sum();
    if let Some((_, _, last)) = stretches.last_mut() {
        last.sent += sent.saturating_sub(counted);
    }
    let phase_reports = phase_reports(stretches, &measured);
    let identity = Identity::of(sent, processed, shed);
    let recovery = scenario
        .recovery
        .as_ref()
        .and_then(|r| recovery_report(r, &measured, &mut notes));
    let flood_rss_ratio = scenario
        .recovery
        .as_ref()
        .and_then(|r| flood_rss_ratio(&r.after, &phase_reports));
    let mut report = Report {
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        mode: if options.separate_process {
            "separate-process".into()
        } else {
            "in-process".into()
        },
        ingest: format!("{:?}", options.ingest).to_lowercase(),
        send_via: format!("{:?}", options.send_via).to_lowercase(),
        command: options.command.clone(),
        channels: n,
        traffic_seconds,
        offered_msgs_per_s: offered,
        msgs_per_s: processed as f64 / traffic_seconds.max(1e-3),
        messages_sent: sent,
        messages_received: counts.received.saturating_sub(counts0.received),
        messages_processed: processed,
        messages_shed: shed,
        generator_skipped: stats.generator_skipped,
        reply_latency_us: Percentiles::of(&tracked.reply_latency_us),
        moderation_latency_us: Percentiles::of(&tracked.moderation_latency_us),
        replies_expected: tracked.replies_expected,
        replies_matched: tracked.replies_matched,
        moderation_expected: tracked.moderation_expected,
        moderation_matched: tracked.moderation_matched,
        moderation_unmatched: tracked.moderation_unmatched,
        cpu_seconds,
        cpu_s_per_million: if processed > 0 {
            cpu_seconds / processed as f64 * 1e6
        } else {
            0.0
        },
        peak_rss_bytes: end.peak_rss_bytes,
        rss_before_join_bytes: before_join.rss_bytes,
        rss_after_join_bytes: after_join.rss_bytes,
        rss_per_channel_bytes: rss_per_channel,
        store_writes_per_message: if store_measured && processed > 0 {
            store_writes / processed as f64
        } else {
            0.0
        },
        store_measured,
        capacity_msgs_per_s: capacity,
        ramp_steps,
        phases: phase_reports,
        identity,
        recovery_s: recovery.as_ref().and_then(|r| r.outcome.recovery_s),
        recovery,
        flood_rss_ratio,
        drain_peak_rss_bytes: (measured.drain_peak_rss_bytes > 0)
            .then_some(measured.drain_peak_rss_bytes),
        spam_visible_s: None,
        spam_removed_ratio: None,
        false_positive_ratio: None,
        helix_calls: helix.counts.calls.load(Ordering::Relaxed),
        helix_429s: helix.counts.rate_limited.load(Ordering::Relaxed),
        helix_points_per_minute: helix.budget.limit(),
        moderation_detail: None,
        defences: defences(helix, started),
        slo: Vec::new(),
        samples,
        notes,
    };
    moderation_figures(&mut report, &stats, &tracked);
    report.judge(&scenario.slo);
    Ok(report)
}

/// The spam and false-positive figures of a run that sent spam (see [`Report::spam_visible_s`]).
fn moderation_figures(report: &mut Report, stats: &SimStats, tracked: &TrackerSnapshot) {
    let spam_sent = tracked.moderation_expected;
    if spam_sent + stats.spam_blocked == 0 {
        return;
    }
    let legit_attempted = stats.privmsgs_sent.saturating_sub(spam_sent) + stats.legit_silenced;
    let detail = ModerationDetail {
        spam_sent,
        spam_blocked: stats.spam_blocked,
        spam_removed: tracked.spam_removed,
        legit_attempted,
        false_deletes: tracked.false_deletes,
        false_sanctions: tracked.false_sanctions,
        legit_silenced: stats.legit_silenced,
        refused_sanctioned: stats.refused_sanctioned,
    };
    let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
    report.spam_visible_s = Some(SecondsPercentiles::of_micros(&tracked.spam_visible_us));
    report.spam_removed_ratio = ratio(
        detail.spam_removed + detail.spam_blocked,
        spam_sent + detail.spam_blocked,
    );
    report.false_positive_ratio = ratio(
        detail.false_deletes + detail.false_sanctions + detail.legit_silenced,
        legit_attempted,
    );
    report.moderation_detail = Some(detail);
}

/// The chat-mode changes the bench's Helix saw, timed from the traffic's start.
fn defences(helix: &RecordingHelix, started: Instant) -> Vec<DefenceReport> {
    let seen = helix
        .counts
        .defences
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    seen.iter()
        .map(|d| DefenceReport {
            at_s: d.at.saturating_duration_since(started).as_secs_f64(),
            room_id: d.room_id,
            what: d.what.clone(),
        })
        .collect()
}

impl Report {
    /// The value of a latency SLO metric over one histogram's percentiles.
    fn probe(metric: &str, p: Percentiles) -> Option<f64> {
        let field = metric.split_once('.')?.1;
        if p.count == 0 {
            return None;
        }
        Some(match field {
            "p50" => p.p50,
            "p90" => p.p90,
            "p99" => p.p99,
            "p999" => p.p999,
            _ => p.max,
        } as f64)
    }
}

/// Each phase's figures: its stretch's counts and latencies, and the monitor's peak RSS.
fn phase_reports(stretches: Vec<(String, f64, Stretch)>, m: &MonitorResult) -> Vec<PhaseReport> {
    stretches
        .into_iter()
        .enumerate()
        .map(|(i, (name, offered, s))| {
            let per_s = |n: u64| n as f64 / s.seconds.max(1e-3);
            PhaseReport {
                name,
                seconds: s.seconds,
                offered_msgs_per_s: offered,
                sent: s.sent,
                processed: s.processed,
                shed: s.shed,
                generator_skipped: s.generator_skipped,
                sent_per_s: per_s(s.sent),
                processed_per_s: per_s(s.processed),
                peak_rss_bytes: m.peak_rss_bytes.get(i).copied().unwrap_or(0),
                rss_readings: m.rss_readings.get(i).copied().unwrap_or(0),
                reply_latency_us: Percentiles::of(&s.reply),
                moderation_latency_us: Percentiles::of(&s.moderation),
            }
        })
        .collect()
}

/// The words of `report.json`'s `recovery.definition`.
fn recovery_definition(r: &Recovery) -> String {
    format!(
        "Every {step} s the bench computes {metric} over the answers that arrived in the last {window} s (a sliding window over the simulator's matched {kind}). A window passes when it holds at least one answer and the figure is at most {max} µs, fails when it is above, and is empty otherwise. recovery_s is the time from the end of phase `{after}` (when the next phase's rate was set) to the end of the first passing window after which no window failed for {hold} s.",
        step = r.step_s,
        metric = r.metric,
        window = r.window_s,
        kind = if r.is_moderation() {
            "moderation calls"
        } else {
            "threaded replies"
        },
        max = r.max,
        after = r.after,
        hold = r.hold_s,
    )
}

fn recovery_report(
    r: &Recovery,
    m: &MonitorResult,
    notes: &mut Vec<String>,
) -> Option<RecoveryReport> {
    let Some(o) = m.recovery else {
        notes.push(format!(
            "recovery not timed: phase `{}` never ended",
            r.after
        ));
        return None;
    };
    match (o.recovery_s, o.confirmed) {
        (None, _) => notes.push(format!(
            "{} was not back under {} µs before the traffic ended ({} windows after `{}`: {} failing, {} empty)",
            r.metric, r.max, o.windows, r.after, o.windows_failing, o.windows_empty
        )),
        (Some(_), false) => notes.push(format!(
            "the recovery was seen to hold {:.2} s of the {:.2} s asked before the traffic ended",
            o.held_s.unwrap_or(0.0),
            r.hold_s
        )),
        (Some(_), true) => {}
    }
    Some(RecoveryReport {
        after: r.after.clone(),
        metric: r.metric.clone(),
        max_us: r.max,
        window_s: r.window_s,
        step_s: r.step_s,
        hold_s: r.hold_s,
        definition: recovery_definition(r),
        outcome: o,
    })
}

/// Peak RSS of phase `flood` over the highest peak of the phases before it.
fn flood_rss_ratio(flood: &str, phases: &[PhaseReport]) -> Option<f64> {
    let at = phases.iter().position(|p| p.name == flood)?;
    let before = phases[..at].iter().map(|p| p.peak_rss_bytes).max()?;
    let peak = phases[at].peak_rss_bytes;
    (before > 0 && peak > 0).then(|| peak as f64 / before as f64)
}

fn apply_phase(ctx: &Ctx, scenario: &Scenario, phase: &Phase) {
    if let Some(c) = phase.channel {
        if let Some(plan) = ctx.plan.get(c) {
            ctx.sim
                .set_channel_weight(&plan.name, plan.rate * phase.channel_factor);
            if let Some(raid) = &phase.raid {
                ctx.sim.start_raid(raid.plan(&plan.name, phase.duration_s));
            }
        }
    }
    let mix = phase.mix.as_ref().unwrap_or(&scenario.mix);
    ctx.sim.set_mix(Some(mix.to_content_mix()));
}

fn reset_phase(ctx: &Ctx, scenario: &Scenario, phase: &Phase) {
    if let Some(c) = phase.channel {
        if let Some(plan) = ctx.plan.get(c) {
            ctx.sim.set_channel_weight(&plan.name, plan.rate);
        }
    }
    if phase.mix.is_some() {
        ctx.sim.set_mix(Some(scenario.mix.to_content_mix()));
    }
}

/// Waits until the service handled everything sent and every expected answer came, or until
/// answers stop coming for 3 s after that (a shed spam message is never moderated), or the
/// deadline passes; returns the last counts.
/// Asks the service to write every pending state change (`POST /v1/store/flush`).
async fn flush_store(http: &std::net::SocketAddr) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    let response = client
        .post(format!("http://{http}/v1/store/flush"))
        .bearer_auth(ADMIN_TOKEN)
        .timeout(Duration::from_secs(30))
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "store flush: HTTP {}",
        response.status()
    );
    Ok(())
}

async fn settle(ctx: &mut Ctx, deadline: Duration) -> ServiceCounts {
    let until = Instant::now() + deadline;
    let mut last_answers = (0, Instant::now());
    loop {
        let counts = ctx.scrape_now().await;
        let sent = sent_total(&ctx.sim);
        let t = ctx.sim.tracker();
        let handled = counts.received >= sent && counts.processed + counts.shed >= counts.received;
        let answers = t.replies_matched + t.moderation_matched;
        if answers != last_answers.0 {
            last_answers = (answers, Instant::now());
        }
        let answered = t.replies_matched >= t.replies_expected
            && t.moderation_matched >= t.moderation_expected;
        let quiet = last_answers.1.elapsed() > Duration::from_secs(3);
        if (handled && (answered || quiet)) || Instant::now() > until {
            return counts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
