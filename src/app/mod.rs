//! The running service: builds every part in named steps, wires them together, and takes them
//! down in order.
//!
//! ```text
//! Twitch connection --(parse)--> Router --(admission)--> ChannelActor (one per channel)
//!        ^                                                     | engine -> actions
//!        +------------- TwitchOutbound (rate limits) <---------+--> Helix (moderation)
//! Supervisor: spawns / restarts / stops channel actors.   Store writer: what lasts.
//! Discord gateway (serenity) --> the same Router; DiscordOutbound <-- PlatformDispatch.
//! ```
//!
//! - [`admin`]: the admin operations behind [`Core`] (join, part, rules, readiness), with
//!   typed errors.
//! - [`start`]: the start-up steps (rules, store, metrics, platforms, supervisor).
//! - [`membership`]: joining and parting many channels at once, in the background.
//! - [`audit`]: the audit log of rule edits (who, when, before and after).
//! - [`replay`]: chat lines through a channel's rules, every action out (`firehose replay`,
//!   the console's "try it").
//! - [`users`]: deleting one user's data everywhere it is kept.
//! - this module: [`Service::start`] runs them and joins the configured channels;
//!   [`Service::shutdown`] stops everything in order.
//!
//! The HTTP endpoints are not part of this floor: `http` serves a [`Core`], and the CLI's
//! `Server` runs both.
//!
//! Shutdown order (SIGTERM / Ctrl-C): readiness turns 503; the connection stops reading and the
//! Discord shards close (intake stops); every channel mailbox drains within the deadline; the
//! state store writes every pending change within the deadline; the send queue flushes what the
//! limits allow within the deadline; queued moderation goes out; the connection closes; the
//! supervisor stops.

pub mod admin;
pub mod audit;
pub mod membership;
pub mod replay;
pub mod start;
pub mod users;

pub use admin::{AdminError, Core, Readiness, SetRulesError};
pub use start::{load_rules, open_store, ServiceOptions};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::channel::cross::CrossChannelSink;
use crate::channel::ignore::IgnoreList;
use crate::channel::supervisor::DrainReport;
use crate::channel::ticker::run_ticker;
use crate::channel::{ChannelKey, ChannelRegistry, Router, SupervisorMsg};
use crate::config::Config;
use crate::discord::{Discord, DiscordGateway};
use crate::twitch::helix::streams::spawn_stream_watcher;
use crate::twitch::TwitchStops;

/// A running service.
pub struct Service {
    core: Arc<Core>,
    eventsub_stop: CancellationToken,
    auth_stop: CancellationToken,
    chat_task: Option<JoinHandle<()>>,
    ticker_stop: CancellationToken,
    helix_stop: CancellationToken,
    helix_task: Option<JoinHandle<()>>,
    stops: TwitchStops,
    outbound_drain: CancellationToken,
    twitch_task: JoinHandle<()>,
    outbound_task: JoinHandle<()>,
    discord: Option<(DiscordGateway, JoinHandle<()>)>,
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
    /// Starts everything and joins the configured channels (their actors start; the
    /// connection's JOINs proceed in the background, see [`Core::readiness`]).
    pub async fn start(config: Config, options: ServiceOptions) -> anyhow::Result<Service> {
        let rules = start::load_rules(&config.engine)?;
        let (store, store_task) = start::store(&config.store, options.store.clone()).await?;
        let channels = ChannelRegistry::new();
        let mut registered = start::metrics(&config, &channels, &store);
        let metrics = Arc::clone(&registered.metrics);
        let router = Router::with_ignore_list(
            Arc::clone(&channels),
            Arc::clone(&metrics),
            config.admission.clone(),
            IgnoreList::new(&config.engine.ignore_users),
        );
        let platforms =
            start::platforms(&config, &router, &channels, &mut registered, &store).await?;
        let sink = Arc::new(CrossChannelSink::new(
            start::dispatch(&platforms, &metrics),
            Arc::clone(&router),
            Arc::clone(&rules),
            Arc::clone(&metrics),
        ));
        let (supervisor, supervisor_task) =
            start::supervisor(&config, options, &channels, router, &rules, &store, sink).await?;
        if let (Some(streams), Some(token)) =
            (registered.streams.take(), platforms.stream_bearer.clone())
        {
            let wanted = Arc::clone(platforms.twitch.status());
            let known = Arc::clone(&channels);
            spawn_stream_watcher(
                config.helix.clone(),
                token,
                streams,
                move || wanted.wanted(),
                move |login, since| {
                    // Compared with the channel itself (not the watcher's memory), so a channel
                    // parted and joined again between polls still learns its status.
                    if let Some(channel) = known.get(&ChannelKey::twitch(login)) {
                        crate::channel::stream::stream_changed(&channel, since);
                    }
                },
                platforms.helix_stop.clone(),
            );
        }
        let ticker_stop = CancellationToken::new();
        tokio::spawn(run_ticker(
            Arc::clone(&channels),
            Duration::from_millis(config.engine.tick_interval_ms),
            ticker_stop.clone(),
        ));
        let core = Arc::new(Core {
            config: config.clone(),
            moderation: platforms.moderation,
            auth: platforms.auth.clone(),
            eventsub: platforms.eventsub.clone(),
            rules,
            registry: channels,
            metrics,
            twitch: platforms.twitch,
            store,
            discord: platforms.discord.as_ref().map(|d| Arc::clone(&d.status)),
            supervisor,
            shutting_down: AtomicBool::new(false),
            membership: membership::Membership::default(),
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
        let discord = platforms.discord.map(Discord::connect);
        Ok(Service {
            core,
            eventsub_stop: platforms.eventsub_stop,
            auth_stop: platforms.auth_stop,
            chat_task: platforms.chat_task,
            ticker_stop,
            helix_stop: platforms.helix_stop,
            helix_task: platforms.helix_task,
            stops: platforms.twitch_stops,
            outbound_drain: platforms.outbound_drain,
            twitch_task: platforms.twitch_task,
            outbound_task: platforms.outbound_task,
            discord,
            supervisor_task,
            store_task,
        })
    }

    pub fn core(&self) -> &Arc<Core> {
        &self.core
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
        // EventSub intake stops with IRC's (its sessions close; webhooks are no longer taken).
        self.eventsub_stop.cancel();
        if let Some(eventsub) = &core.eventsub {
            eventsub.stopped(Duration::from_secs(5)).await;
        }
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
        // Helix chat sends in flight are answered before the tokens stop.
        if let Some(task) = self.chat_task {
            let _ = tokio::time::timeout(deadline + Duration::from_secs(1), task).await;
        }
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
        self.auth_stop.cancel();
        if let Some(auth) = &core.auth {
            auth.stopped(Duration::from_secs(5)).await;
        }
        core.supervisor.stop(None);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.supervisor_task).await;
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
