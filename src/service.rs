//! The service: builds every part, wires them together, and takes them down in order.
//!
//! ```text
//! Twitch connection --(parse)--> Router --(admission)--> ChannelActor (one per channel)
//!        ^                                                     | engine -> actions
//!        +------------- TwitchOutbound (rate limits) <---------+
//! Supervisor: spawns / restarts / stops channel actors.   HTTP: health, metrics, admin.
//! Discord gateway (serenity) --> the same Router; DiscordOutbound <-- PlatformDispatch.
//! ```
//!
//! Shutdown order (SIGTERM / Ctrl-C): readiness turns 503; the connection stops reading and the
//! Discord shards close (intake stops); every channel mailbox drains within the deadline; the
//! state store writes every pending change within the deadline; the send queue flushes what the
//! limits allow within the deadline; the connection closes; the HTTP server stops.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::channel::actor::{RulesEdit, RulesRefused};
use crate::channel::admission::Router;
use crate::channel::dispatch::PlatformDispatch;
use crate::channel::supervisor::{DrainReport, SupervisorArgs};
use crate::channel::{
    ChannelContext, ChannelKey, ChannelMsg, ChannelRegistry, ChannelStatus, JoinOutcome,
    ProcessedTap, RulesBook, Supervisor, SupervisorMsg,
};
use crate::config::{is_login, Config, ConfigError, EngineConfig, Secret};
use crate::discord::{Discord, DiscordGateway, DiscordMetrics, DiscordParts, GatewayStatus};
use crate::engine::{ChannelRules, ChatHandler, Engine};
use crate::obs::Metrics;
use crate::store::{StoreHandle, WriterConfig};
use crate::twitch::helix::streams::{spawn_stream_watcher, StreamMetrics};
use crate::twitch::helix::HelixModerator;
use crate::twitch::{OutboundLimits, TwitchClient, TwitchOutbound, TwitchStops};

/// Replaceable pieces of a service.
#[derive(Clone)]
pub struct ServiceOptions {
    /// The bot logic every channel actor runs.
    pub handler: Arc<dyn ChatHandler>,
    /// Observer of every handled message (tests, benchmarks).
    pub tap: Option<Arc<dyn ProcessedTap>>,
    /// A store to use instead of the one `[store]` names (tests put a fault-injecting proxy
    /// in front of the database this way). It is migrated like a configured one.
    pub store: Option<Arc<dyn crate::store::StateStore>>,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        ServiceOptions {
            handler: Arc::new(Engine),
            tap: None,
            store: None,
        }
    }
}

/// What the HTTP layer and the CLI need from a running service.
pub struct Core {
    pub config: Config,
    /// Helix moderation, when configured (its log is readable here).
    pub moderation: Option<HelixModerator>,
    pub rules: Arc<RulesBook>,
    pub registry: Arc<ChannelRegistry>,
    pub metrics: Arc<Metrics>,
    pub twitch: TwitchClient,
    /// The state store's writer (and through it the store).
    pub store: StoreHandle,
    /// The Discord gateway's state, when Discord is enabled.
    pub discord: Option<Arc<GatewayStatus>>,
    supervisor: ActorRef<SupervisorMsg>,
    shutting_down: AtomicBool,
}

/// Why a rules edit did not happen.
#[derive(Debug)]
pub enum SetRulesError {
    Refused(RulesRefused),
    /// The channel actor did not answer in time.
    Unavailable(String),
}

/// Readiness and, when not ready, why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub reasons: Vec<String>,
    /// Ready, but something is behind (the state store): chat is still handled.
    pub degraded: Vec<String>,
}

const ADMIN_CALL_TIMEOUT: Duration = Duration::from_secs(5);

impl Core {
    pub fn admin_token(&self) -> Option<&Secret> {
        self.config.secrets.admin_token.as_ref()
    }

    /// Joins a Twitch channel: starts its actor, then asks the connection to join (paced).
    pub async fn join(&self, login: &str) -> Result<JoinOutcome, String> {
        if !is_login(login) {
            return Err(format!(
                "`{login}` is not a channel login (lowercase a-z, 0-9, _; 1-25 chars)"
            ));
        }
        if self.is_shutting_down() {
            return Err("the service is shutting down".into());
        }
        let key = ChannelKey::twitch(login);
        let outcome = ractor::call_t!(
            self.supervisor,
            SupervisorMsg::Join,
            ADMIN_CALL_TIMEOUT.as_millis() as u64,
            key
        )
        .map_err(|e| format!("supervisor did not answer: {e}"))?
        .map_err(|e| e.to_string())?;
        self.twitch.join(login).await;
        Ok(outcome)
    }

    /// Starts the actor of a mapped Discord channel (by channel id).
    pub async fn join_discord(&self, channel_id: &str) -> Result<JoinOutcome, String> {
        ractor::call_t!(
            self.supervisor,
            SupervisorMsg::Join,
            ADMIN_CALL_TIMEOUT.as_millis() as u64,
            ChannelKey::discord(channel_id)
        )
        .map_err(|e| format!("supervisor did not answer: {e}"))?
        .map_err(|e| e.to_string())
    }

    /// Parts a Twitch channel; false when it was not joined.
    pub async fn part(&self, login: &str) -> Result<bool, String> {
        if !is_login(login) {
            // Also keeps anything but a login out of the PART line we send.
            return Err(format!("`{login}` is not a channel login"));
        }
        let key = ChannelKey::twitch(login);
        self.twitch.part(login).await;
        ractor::call_t!(
            self.supervisor,
            SupervisorMsg::Part,
            ADMIN_CALL_TIMEOUT.as_millis() as u64,
            key
        )
        .map_err(|e| format!("supervisor did not answer: {e}"))
    }

    /// Replaces a channel's rules after validating them; a running channel picks them up at
    /// once (its actor compiles them), others when they start.
    ///
    /// `base` is the version the edit was made from: if the rules changed meanwhile (another
    /// edit, a moderator's `!addcom`), nothing changes and the edit is refused as a conflict.
    pub async fn set_rules(
        &self,
        login: &str,
        base: Arc<ChannelRules>,
        rules: ChannelRules,
    ) -> Result<(), SetRulesError> {
        rules
            .validate()
            .map_err(|e| SetRulesError::Refused(RulesRefused::Invalid(e.to_string())))?;
        let rules = Arc::new(rules);
        let actor = self
            .registry
            .get(&ChannelKey::twitch(login))
            .and_then(|c| c.mailbox.actor());
        match actor {
            Some(actor) => ractor::call_t!(
                actor,
                ChannelMsg::SetRules,
                ADMIN_CALL_TIMEOUT.as_millis() as u64,
                RulesEdit { base, rules }
            )
            .map_err(|e| SetRulesError::Unavailable(format!("channel actor did not answer: {e}")))?
            .map_err(SetRulesError::Refused),
            None if self.rules.replace_if(login, &base, rules) => Ok(()),
            None => Err(SetRulesError::Refused(RulesRefused::Conflict)),
        }
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    pub fn readiness(&self) -> Readiness {
        let mut reasons = Vec::new();
        if self.is_shutting_down() {
            reasons.push("shutting down".to_string());
        }
        let status = self.twitch.status();
        if !status.is_connected() {
            reasons.push("twitch: not connected".to_string());
        } else {
            let missing = status.not_joined();
            if !missing.is_empty() {
                let shown: Vec<_> = missing.iter().take(10).cloned().collect();
                reasons.push(format!(
                    "twitch: {} channel(s) not joined yet: {}",
                    missing.len(),
                    shown.join(", ")
                ));
            }
        }
        if let Some(discord) = &self.discord {
            if !discord.is_connected() {
                reasons.push(format!(
                    "discord: {} of {} shard(s) connected",
                    discord.connected_shards(),
                    discord.shards
                ));
            }
        }
        let failed: Vec<String> = self
            .registry
            .all()
            .iter()
            .filter(|c| c.status() == ChannelStatus::Failed)
            .map(|c| c.key.to_string())
            .collect();
        if !failed.is_empty() {
            reasons.push(format!("channels failed: {}", failed.join(", ")));
        }
        let degraded = self.store.status.degraded_reason().into_iter().collect();
        Readiness {
            ready: reasons.is_empty(),
            reasons,
            degraded,
        }
    }
}

/// Loads and validates every channel's rules from `engine.rules_dir` (none when it is empty).
/// A bad file is a configuration error naming `engine.rules_dir`, the file and the fault.
pub fn load_rules(engine: &EngineConfig) -> Result<Arc<RulesBook>, ConfigError> {
    match engine.rules_dir() {
        Some(dir) => RulesBook::load_dir(dir).map_err(|e| ConfigError::Invalid {
            key: "engine.rules_dir".to_string(),
            reason: e.to_string(),
        }),
        None => Ok(RulesBook::new()),
    }
}

/// Opens the configured store and brings its schema up to date (or checks that it is).
pub async fn open_store(
    config: &crate::config::StoreConfig,
) -> anyhow::Result<Arc<dyn crate::store::StateStore>> {
    let store = crate::store::open(config).await?;
    prepare_store(store, config).await
}

/// Migrates `store` (or checks its schema) per `config`.
async fn prepare_store(
    store: Arc<dyn crate::store::StateStore>,
    config: &crate::config::StoreConfig,
) -> anyhow::Result<Arc<dyn crate::store::StateStore>> {
    if config.migrate_on_start {
        let applied = store.migrate().await?;
        if !applied.is_empty() {
            tracing::info!(
                backend = store.backend(),
                ?applied,
                "store migrations applied"
            );
        }
    } else {
        let version = store.schema_version().await?;
        let latest = crate::store::migrations::latest();
        if version != latest {
            anyhow::bail!(
                "the {} store has schema version {version}, this build needs {latest}: run `firehose migrate --config <file>` (or set store.migrate_on_start)",
                store.backend()
            );
        }
    }
    Ok(store)
}

/// Sends timer ticks to the channels whose rules have timers (at most one pending each).
async fn run_ticker(registry: Arc<ChannelRegistry>, every: Duration, stop: CancellationToken) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = interval.tick() => {
                registry.for_each(|channel| channel.mailbox.tick());
            }
        }
    }
}

/// A running service.
pub struct Service {
    core: Arc<Core>,
    ticker_stop: CancellationToken,
    helix_stop: CancellationToken,
    helix_task: Option<JoinHandle<()>>,
    http_addr: SocketAddr,
    stops: TwitchStops,
    outbound_drain: CancellationToken,
    http_stop: CancellationToken,
    twitch_task: JoinHandle<()>,
    outbound_task: JoinHandle<()>,
    discord: Option<(DiscordGateway, JoinHandle<()>)>,
    http_task: JoinHandle<()>,
    supervisor_task: JoinHandle<()>,
    store_task: JoinHandle<()>,
}

/// What shutdown managed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShutdownReport {
    pub drain: DrainReport,
    /// State changes the store could not write before the deadline (0 = all stored).
    pub store_unwritten: usize,
    pub processed: u64,
    pub shed: u64,
}

impl Service {
    /// Starts everything and asks to join the configured channels. Returns once the HTTP
    /// endpoints listen; the connection and joins proceed in the background (see `/readyz`).
    pub async fn start(config: Config, options: ServiceOptions) -> anyhow::Result<Service> {
        let registry = ChannelRegistry::new();
        let store = match options.store.clone() {
            Some(store) => prepare_store(store, &config.store).await?,
            None => open_store(&config.store).await?,
        };
        let (store, store_task) =
            StoreHandle::start(store, WriterConfig::from_config(&config.store));
        let helix_stop = CancellationToken::new();
        let mut helix = None;
        let mut stream_metrics = None;
        let mut discord_metrics = None;
        let metrics = Metrics::new({
            let mut prometheus = crate::obs::registry();
            let prometheus = &mut prometheus;
            prometheus.register_collector(Box::new(crate::store::StoreCollector {
                status: Arc::clone(&store.status),
            }));
            if let (true, Some(token)) =
                (config.helix_enabled(), config.secrets.helix_token.clone())
            {
                helix = Some(HelixModerator::start(
                    config.helix.clone(),
                    token,
                    prometheus,
                    helix_stop.clone(),
                ));
                stream_metrics = Some(StreamMetrics::register(prometheus));
            }
            if config.discord.enabled {
                discord_metrics = Some(DiscordMetrics::register(prometheus));
            }
            prometheus.register_collector(Box::new(
                crate::channel::metrics::ChannelCollector::new(Arc::clone(&registry)),
            ));
            std::mem::take(prometheus)
        });
        let (moderation, helix_task) = match helix {
            Some((moderator, task)) => (Some(moderator), Some(task)),
            None => (None, None),
        };
        let router = Router::new(
            Arc::clone(&registry),
            Arc::clone(&metrics),
            config.admission.clone(),
        );
        let stops = TwitchStops::default();
        let (twitch, twitch_task) = TwitchClient::start(
            config.twitch.clone(),
            config.secrets.twitch_token.clone(),
            Arc::clone(&router),
            Arc::clone(&metrics),
            stops.clone(),
        );
        let outbound_drain = CancellationToken::new();
        let (outbound, outbound_task) = TwitchOutbound::start(
            OutboundLimits {
                send: config.twitch.send.clone(),
                verified: config.twitch.verified_bot,
                anonymous: config.twitch.login.starts_with("justinfan"),
            },
            Arc::clone(twitch.status()),
            Arc::clone(&metrics),
            moderation.clone(),
            outbound_drain.clone(),
            Duration::from_millis(config.supervisor.drain_timeout_ms),
        );
        let discord = match (discord_metrics, config.secrets.discord_token.clone()) {
            (Some(metrics_d), Some(token)) => Some(
                Discord::build(DiscordParts {
                    config: config.discord.clone(),
                    token,
                    router: Arc::clone(&router),
                    metrics: metrics_d,
                    service_metrics: Arc::clone(&metrics),
                    drain: outbound_drain.clone(),
                    drain_deadline: Duration::from_millis(config.supervisor.drain_timeout_ms),
                })
                .await?,
            ),
            (Some(_), None) => anyhow::bail!(
                "discord.enabled is set but there is no token: set FIREHOSE_DISCORD_TOKEN or discord.token_file"
            ),
            _ => None,
        };
        let rules = load_rules(&config.engine)?;
        let context = ChannelContext {
            handler: options.handler,
            sink: Arc::new(PlatformDispatch {
                twitch: Arc::new(outbound),
                discord: discord
                    .as_ref()
                    .map(|d| Arc::new(d.outbound.clone()) as Arc<dyn crate::channel::ActionSink>),
                metrics: Arc::clone(&metrics),
            }),
            tap: options.tap,
            rules: Arc::clone(&rules),
            store: store.clone(),
            load_timeout: Duration::from_millis(config.store.load_timeout_ms),
        };
        let (supervisor, supervisor_task) = Actor::spawn(
            None,
            Supervisor,
            SupervisorArgs {
                registry: Arc::clone(&registry),
                context,
                router,
                config: config.supervisor.clone(),
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("starting the supervisor: {e}"))?;
        if let (Some(stream_metrics), Some(token)) =
            (stream_metrics, config.secrets.helix_token.clone())
        {
            let wanted = Arc::clone(twitch.status());
            let channels = Arc::clone(&registry);
            spawn_stream_watcher(
                config.helix.clone(),
                token,
                stream_metrics,
                move || wanted.wanted(),
                move |login, since| {
                    // Compared with the channel itself (not the watcher's memory), so a channel
                    // parted and joined again between polls still learns its status.
                    if let Some(channel) = channels.get(&ChannelKey::twitch(login)) {
                        crate::channel::stream::stream_changed(&channel, since);
                    }
                },
                helix_stop.clone(),
            );
        }
        let ticker_stop = CancellationToken::new();
        tokio::spawn(run_ticker(
            Arc::clone(&registry),
            Duration::from_millis(config.engine.tick_interval_ms),
            ticker_stop.clone(),
        ));
        let core = Arc::new(Core {
            config: config.clone(),
            moderation,
            rules,
            registry,
            metrics,
            twitch,
            store,
            discord: discord.as_ref().map(|d| Arc::clone(&d.status)),
            supervisor,
            shutting_down: AtomicBool::new(false),
        });
        for channel in &config.twitch.channels {
            core.join(channel)
                .await
                .map_err(|e| anyhow::anyhow!("joining {channel}: {e}"))?;
        }
        for channel in config.discord.channels.keys() {
            core.join_discord(channel)
                .await
                .map_err(|e| anyhow::anyhow!("starting Discord channel {channel}: {e}"))?;
        }
        // The gateway starts once every mapped channel has its actor.
        let discord = discord.map(Discord::connect);
        let http_stop = CancellationToken::new();
        let (http_addr, http_task) =
            crate::http::serve(config.http.listen, Arc::clone(&core), http_stop.clone()).await?;
        tracing::info!(%http_addr, "HTTP endpoints listening");
        Ok(Service {
            core,
            ticker_stop,
            helix_stop,
            helix_task,
            http_addr,
            stops,
            outbound_drain,
            http_stop,
            twitch_task,
            outbound_task,
            discord,
            http_task,
            supervisor_task,
            store_task,
        })
    }

    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Waits until `/readyz` would answer 200, or the deadline passes.
    pub async fn wait_ready(&self, deadline: Duration) -> Result<(), Readiness> {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let readiness = self.core.readiness();
            if readiness.ready {
                return Ok(());
            }
            if tokio::time::Instant::now() >= until {
                return Err(readiness);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Graceful shutdown; see the module docs for the order.
    pub async fn shutdown(self) -> ShutdownReport {
        let core = &self.core;
        core.shutting_down.store(true, Ordering::Release);
        self.stops.intake.cancel();
        let (discord_gateway, discord_outbound) = match self.discord {
            Some((gateway, outbound)) => (Some(gateway), Some(outbound)),
            None => (None, None),
        };
        if let Some(gateway) = discord_gateway {
            gateway.shutdown().await;
        }
        self.ticker_stop.cancel();
        let deadline = Duration::from_millis(core.config.supervisor.drain_timeout_ms);
        let drain = ractor::call_t!(
            core.supervisor,
            SupervisorMsg::DrainAll,
            (deadline + Duration::from_secs(1)).as_millis() as u64,
            deadline
        )
        .unwrap_or_default();
        // Every handled message's changes are with the writer now: write them all.
        let store_unwritten = core.store.shutdown(deadline).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.store_task).await;
        self.outbound_drain.cancel();
        let _ = tokio::time::timeout(deadline + Duration::from_secs(1), self.outbound_task).await;
        if let Some(task) = discord_outbound {
            let _ = tokio::time::timeout(deadline + Duration::from_secs(1), task).await;
        }
        // Moderation actions produced by the last messages go out too, within the deadline;
        // the worker then lets calls in flight finish.
        if let Some(moderation) = &core.moderation {
            let until = tokio::time::Instant::now() + deadline;
            while moderation.queued() > 0 && tokio::time::Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        self.helix_stop.cancel();
        if let Some(task) = self.helix_task {
            let _ = tokio::time::timeout(deadline + Duration::from_secs(1), task).await;
        }
        self.stops.close.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.twitch_task).await;
        core.supervisor.stop(None);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.supervisor_task).await;
        self.http_stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.http_task).await;
        let channels = core.registry.all();
        ShutdownReport {
            drain,
            store_unwritten,
            processed: channels
                .iter()
                .map(|c| c.counters.processed.load(Ordering::Relaxed))
                .sum(),
            shed: channels.iter().map(|c| c.counters.shed_total()).sum(),
        }
    }
}
