//! Start-up in named steps, each a function that takes what the earlier ones built:
//!
//! 1. [`load_rules`]: every channel's rules from `engine.rules_dir`, validated (nothing has
//!    started yet, so a bad file stops start-up cleanly);
//! 2. [`store`]: open the configured store (or the one given), migrate or check its schema,
//!    start the write-behind writer;
//! 3. [`metrics`]: the Prometheus registry with every component's families and collectors,
//!    then the process-wide metrics over it;
//! 4. [`platforms`]: Helix moderation, the Twitch connection and its outbound scheduler, the
//!    Discord client and its outbound worker (the Discord shards connect later, once every
//!    mapped channel has its actor);
//! 5. [`supervisor`]: the channel context (engine, [`dispatch`] to the platforms, store) and
//!    the supervisor that spawns the channel actors.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::channel::dispatch::PlatformDispatch;
use crate::channel::metrics::{ChannelCollector, SeriesPolicy};
use crate::channel::supervisor::SupervisorArgs;
use crate::channel::{
    ActionSink, ChannelContext, ChannelRegistry, ProcessedTap, Router, RulesBook, Supervisor,
    SupervisorMsg,
};
use crate::config::{Config, ConfigError, EngineConfig, StoreConfig};
use crate::config::{Ingest, SendVia};
use crate::discord::{Discord, DiscordMetrics, DiscordParts};
use crate::engine::{ChatHandler, Engine};
use crate::obs::Metrics;
use crate::store::{StateStore, StoreCollector, StoreHandle, WriterConfig};
use crate::twitch::auth::{Auth, AuthMetrics};
use crate::twitch::eventsub::{EventSub, EventSubParts};
use crate::twitch::helix::chat::{ChatMetrics, HelixChat};
use crate::twitch::helix::streams::StreamMetrics;
use crate::twitch::helix::{
    ActorFeedback, Bearer, ChannelFeedback, HelixMetrics, HelixModerator, StaticBearer,
};
use crate::twitch::{IrcRole, OutboundLimits, TwitchClient, TwitchOutbound, TwitchStops};

/// Replaceable pieces of a service.
#[derive(Clone)]
pub struct ServiceOptions {
    /// The bot logic every channel actor runs.
    pub handler: Arc<dyn ChatHandler>,
    /// Observer of every handled message (tests, benchmarks).
    pub tap: Option<Arc<dyn ProcessedTap>>,
    /// A store to use instead of the one `[store]` names (tests put a fault-injecting proxy
    /// in front of the database this way). It is migrated like a configured one.
    pub store: Option<Arc<dyn StateStore>>,
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

/// Step 1. Loads and validates every channel's rules from `engine.rules_dir` (none when it is
/// empty). A bad file is a configuration error naming `engine.rules_dir`, the file and the
/// fault; `check-config` and `replay` load the rules the same way.
pub fn load_rules(engine: &EngineConfig) -> Result<Arc<RulesBook>, ConfigError> {
    match engine.rules_dir() {
        Some(dir) => RulesBook::load_dir(dir).map_err(|e| ConfigError::Invalid {
            key: "engine.rules_dir".to_string(),
            reason: e.to_string(),
        }),
        None => Ok(RulesBook::new()),
    }
}

/// Step 2. The store (the given one, or the configured one), its schema brought up to date
/// (or checked), and its writer running.
pub async fn store(
    config: &StoreConfig,
    given: Option<Arc<dyn StateStore>>,
) -> anyhow::Result<(StoreHandle, JoinHandle<()>)> {
    let store = match given {
        Some(store) => prepare_store(store, config).await?,
        None => open_store(config).await?,
    };
    Ok(StoreHandle::start(store, WriterConfig::from_config(config)))
}

/// Opens the configured store and brings its schema up to date (or checks that it is).
pub async fn open_store(config: &StoreConfig) -> anyhow::Result<Arc<dyn StateStore>> {
    let store = crate::store::open(config).await?;
    prepare_store(store, config).await
}

/// Migrates `store` (or checks its schema) per `config`.
async fn prepare_store(
    store: Arc<dyn StateStore>,
    config: &StoreConfig,
) -> anyhow::Result<Arc<dyn StateStore>> {
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

/// What step 3 registered: the process-wide metrics and the families of the components that
/// are configured.
pub struct Registered {
    pub metrics: Arc<Metrics>,
    pub helix: Option<HelixMetrics>,
    pub streams: Option<StreamMetrics>,
    pub discord: Option<DiscordMetrics>,
    pub auth: Option<AuthMetrics>,
    pub chat: Option<ChatMetrics>,
    pub eventsub: Option<crate::twitch::eventsub::EventSubMetrics>,
}

/// Step 3. Registers the store's and the channels' collectors and the families of Helix and
/// Discord (when configured), then builds the process-wide metrics over that registry.
pub fn metrics(
    config: &Config,
    channels: &Arc<ChannelRegistry>,
    store: &StoreHandle,
) -> Registered {
    let mut registry = crate::obs::registry();
    registry.register_collector(Box::new(StoreCollector {
        status: Arc::clone(&store.status),
    }));
    let helix_on =
        config.helix_enabled() && (config.secrets.helix_token.is_some() || config.manages_tokens());
    let helix = helix_on.then(|| HelixMetrics::register(&mut registry));
    let streams = helix_on.then(|| StreamMetrics::register(&mut registry));
    let auth = config
        .helix_enabled()
        .then(|| AuthMetrics::register(&mut registry));
    let chat =
        (config.twitch.send_via == SendVia::Helix).then(|| ChatMetrics::register(&mut registry));
    let eventsub = (config.twitch.ingest == Ingest::Eventsub
        || config.secrets.webhook_secret.is_some())
    .then(|| crate::twitch::eventsub::EventSubMetrics::register(&mut registry));
    let discord = config
        .discord
        .enabled
        .then(|| DiscordMetrics::register(&mut registry));
    let series = SeriesPolicy {
        top: config.http.metrics_top_channels,
        listed: config.http.metrics_channels.iter().cloned().collect(),
    };
    registry.register_collector(Box::new(ChannelCollector::new(
        Arc::clone(channels),
        series,
    )));
    Registered {
        metrics: Metrics::new(registry),
        helix,
        streams,
        discord,
        auth,
        chat,
        eventsub,
    }
}

/// What step 4 started: each platform's handles and the tasks and stops shutdown needs.
pub struct Platforms {
    pub moderation: Option<HelixModerator>,
    pub helix_task: Option<JoinHandle<()>>,
    /// Stops Helix (the moderator and the stream watcher).
    pub helix_stop: CancellationToken,
    pub twitch: TwitchClient,
    pub twitch_task: JoinHandle<()>,
    pub twitch_stops: TwitchStops,
    pub outbound: TwitchOutbound,
    pub outbound_task: JoinHandle<()>,
    /// Drains the outbound sides (Twitch's scheduler, Discord's worker).
    pub outbound_drain: CancellationToken,
    /// Built, not connected yet.
    pub discord: Option<Discord>,
    /// Tokens, ids and onboarding (with `helix.client_id`).
    pub auth: Option<Arc<Auth>>,
    /// Stops the token managers (last, after everything that uses tokens).
    pub auth_stop: CancellationToken,
    /// The Helix chat sender (`twitch.send_via = "helix"`) and its task.
    pub chat_task: Option<JoinHandle<()>>,
    /// The token the stream-status poll uses, when polling is on (IRC ingest with Helix).
    pub stream_bearer: Option<Arc<dyn Bearer>>,
    /// EventSub (ingest and/or the webhook intake), and what stops it (with intake).
    pub eventsub: Option<Arc<EventSub>>,
    pub eventsub_stop: CancellationToken,
}

/// Step 4. Helix moderation, the Twitch connection (it starts connecting now; channels are
/// joined later through the supervisor) and outbound scheduler, and the Discord client.
pub async fn platforms(
    config: &Config,
    router: &Arc<Router>,
    channels: &Arc<ChannelRegistry>,
    registered: &mut Registered,
    store: &StoreHandle,
) -> anyhow::Result<Platforms> {
    let drain_deadline = Duration::from_millis(config.supervisor.drain_timeout_ms);
    let helix_stop = CancellationToken::new();
    let auth_stop = CancellationToken::new();
    let auth = match registered.auth.take() {
        Some(auth_metrics) => {
            let auth = Auth::start(
                config,
                Some(Arc::clone(store.store())),
                auth_metrics,
                auth_stop.clone(),
            )
            .map_err(|e| anyhow::anyhow!("building the Twitch OAuth client: {e}"))?;
            auth.load().await;
            Some(Arc::new(auth))
        }
        None => None,
    };
    // Helix calls on the bot's behalf (moderation) take its user token: the managed one, else
    // the operator's static one.
    let user_bearer: Option<Arc<dyn Bearer>> =
        auth.as_ref().and_then(|a| a.user_bearer()).or_else(|| {
            config
                .secrets
                .helix_token
                .as_ref()
                .map(|t| StaticBearer::new(Some(t)) as Arc<dyn Bearer>)
        });
    let (moderation, helix_task) = match (registered.helix.take(), user_bearer.clone()) {
        (Some(metrics), Some(bearer)) => {
            let feedback: Arc<dyn ChannelFeedback> = ActorFeedback::new(Arc::clone(channels));
            let (moderator, task) = HelixModerator::start_with_metrics(
                config.helix.clone(),
                bearer,
                metrics,
                Some(feedback),
                helix_stop.clone(),
            );
            (Some(moderator), Some(task))
        }
        _ => (None, None),
    };
    let metrics = &registered.metrics;
    let twitch_stops = TwitchStops::default();
    // The IRC login takes the managed user token when there is one (read at every connect).
    let irc_token: Option<Arc<dyn Bearer>> = match auth.as_ref().and_then(|a| a.user.clone()) {
        Some(cell) if config.manages_tokens() => Some(cell),
        _ => config
            .secrets
            .twitch_token
            .as_ref()
            .map(|t| StaticBearer::new(Some(t)) as Arc<dyn Bearer>),
    };
    let role = IrcRole {
        connect: config.twitch.uses_irc(),
        not_routed: (config.twitch.ingest == Ingest::Eventsub)
            .then(|| {
                registered
                    .eventsub
                    .as_ref()
                    .map(|m| m.irc_chat_not_routed.clone())
            })
            .flatten(),
    };
    let (twitch, twitch_task) = TwitchClient::start(
        config.twitch.clone(),
        irc_token,
        Arc::clone(router),
        Arc::clone(metrics),
        twitch_stops.clone(),
        role,
    );
    let outbound_drain = CancellationToken::new();
    let (chat, chat_task) = match (registered.chat.take(), &auth) {
        (Some(chat_metrics), Some(auth)) => {
            let (chat, task) = HelixChat::start(
                &config.helix,
                auth.app_bearer(),
                auth.user_bearer().or_else(|| user_bearer.clone()),
                chat_metrics,
                Arc::clone(metrics),
                outbound_drain.clone(),
            );
            (Some(chat), Some(task))
        }
        _ => (None, None),
    };
    let (outbound, outbound_task) = TwitchOutbound::start(
        OutboundLimits {
            send: config.twitch.send.clone(),
            verified: config.twitch.verified_bot,
            anonymous: config.twitch.login.starts_with("justinfan")
                && config.twitch.send_via == SendVia::Irc,
        },
        Arc::clone(twitch.status()),
        Arc::clone(metrics),
        moderation.clone(),
        auth.clone(),
        chat,
        outbound_drain.clone(),
        drain_deadline,
    );
    let eventsub_stop = CancellationToken::new();
    let eventsub = match (registered.eventsub.take(), &auth) {
        (Some(es_metrics), Some(auth)) => Some(Arc::new(EventSub::start(EventSubParts {
            config: config.clone(),
            router: Arc::clone(router),
            registry: Arc::clone(channels),
            status: Arc::clone(twitch.status()),
            auth: Arc::clone(auth),
            metrics: es_metrics,
            stop: eventsub_stop.clone(),
        })?)),
        _ => None,
    };
    let stream_bearer = (config.twitch.ingest == Ingest::Irc)
        .then(|| {
            auth.as_ref()
                .and_then(|a| a.app_bearer())
                .or_else(|| user_bearer.clone())
        })
        .flatten();
    let discord = match (registered.discord.clone(), config.secrets.discord_token.clone()) {
        (Some(discord_metrics), Some(token)) => Some(
            Discord::build(DiscordParts {
                config: config.discord.clone(),
                token,
                router: Arc::clone(router),
                metrics: discord_metrics,
                service_metrics: Arc::clone(metrics),
                drain: outbound_drain.clone(),
                drain_deadline,
            })
            .await?,
        ),
        (Some(_), None) => anyhow::bail!(
            "discord.enabled is set but there is no token: set FIREHOSE_DISCORD_TOKEN or discord.token_file"
        ),
        _ => None,
    };
    Ok(Platforms {
        eventsub,
        eventsub_stop,
        auth,
        auth_stop,
        chat_task,
        stream_bearer,
        moderation,
        helix_task,
        helix_stop,
        twitch,
        twitch_task,
        twitch_stops,
        outbound,
        outbound_task,
        outbound_drain,
        discord,
    })
}

/// The sink every channel actor submits to: each action to its platform's outbound side.
pub fn dispatch(platforms: &Platforms, metrics: &Arc<Metrics>) -> Arc<dyn ActionSink> {
    Arc::new(PlatformDispatch {
        twitch: Arc::new(platforms.outbound.clone()),
        discord: platforms
            .discord
            .as_ref()
            .map(|d| Arc::new(d.outbound.clone()) as Arc<dyn ActionSink>),
        metrics: Arc::clone(metrics),
    })
}

/// Step 5. The context every channel actor shares (the engine, `sink`, the rules, the store)
/// and the supervisor that spawns them.
pub async fn supervisor(
    config: &Config,
    options: ServiceOptions,
    channels: &Arc<ChannelRegistry>,
    router: Arc<Router>,
    rules: &Arc<RulesBook>,
    store: &StoreHandle,
    sink: Arc<dyn ActionSink>,
) -> anyhow::Result<(ActorRef<SupervisorMsg>, JoinHandle<()>)> {
    let context = ChannelContext {
        handler: options.handler,
        sink,
        tap: options.tap,
        rules: Arc::clone(rules),
        store: store.clone(),
        load_timeout: Duration::from_millis(config.store.load_timeout_ms),
    };
    Actor::spawn(
        None,
        Supervisor,
        SupervisorArgs {
            registry: Arc::clone(channels),
            context,
            router,
            config: config.supervisor.clone(),
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("starting the supervisor: {e}"))
}
