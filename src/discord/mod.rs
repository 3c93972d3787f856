//! Discord: the same engine on Discord guild channels, through serenity.
//!
//! ```text
//! Discord gateway --(serenity shard runners)--> ingest::Ingest --convert--> Router --> ChannelActor
//!                                                                                        | actions
//! Discord REST <--(serenity Http + ratelimiter)-- outbound::DiscordOutbound <------------+
//! ```
//!
//! - [`convert`]: a Discord message -> the engine's platform-neutral chat event.
//! - [`ingest`]: serenity's event handlers; routes messages, tracks shards, counts rate limits
//!   and undecodable dispatches.
//! - [`outbound`]: actions -> REST calls (reply, say, delete, timeout, ban, unban), bounded.
//! - [`metrics`]: the `firehose_discord_*` metrics.
//!
//! Each mapped Discord channel gets its own supervised channel actor (key `discord:<channel
//! id>`), behind the same admission gate as a Twitch channel. [`Discord::build`] makes the
//! serenity client (its HTTP client asks `GET /gateway` for the gateway URL) and the outbound
//! worker; [`Discord::connect`] starts the shards once the channel actors exist, so no early
//! message finds its channel missing.

pub mod convert;
pub mod ingest;
pub mod metrics;
pub mod outbound;

pub use ingest::GatewayStatus;
pub use metrics::DiscordMetrics;
pub use outbound::DiscordOutbound;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serenity::all::{GatewayIntents, HttpBuilder, ShardManager};
use serenity::Client;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::channel::admission::Router;
use crate::config::{DiscordConfig, Secret};
use crate::obs::Metrics;

/// Guild channels' messages and their content: GUILDS | GUILD_MESSAGES | MESSAGE_CONTENT.
pub fn intents() -> GatewayIntents {
    GatewayIntents::GUILDS | GatewayIntents::GUILD_MESSAGES | GatewayIntents::MESSAGE_CONTENT
}

/// A built, not yet connected, Discord side of the service.
pub struct Discord {
    client: Client,
    pub outbound: DiscordOutbound,
    pub outbound_task: JoinHandle<()>,
    pub status: Arc<GatewayStatus>,
    pub config: Arc<DiscordConfig>,
}

/// The running gateway: stop it with [`DiscordGateway::shutdown`].
pub struct DiscordGateway {
    shard_manager: Arc<ShardManager>,
    task: JoinHandle<()>,
}

/// What [`Discord::build`] needs from the service.
pub struct DiscordParts {
    pub config: DiscordConfig,
    pub token: Secret,
    pub router: Arc<Router>,
    pub metrics: DiscordMetrics,
    pub service_metrics: Arc<Metrics>,
    pub drain: CancellationToken,
    pub drain_deadline: Duration,
}

impl Discord {
    /// Builds the serenity client (asking `GET /gateway` for the gateway URL unless
    /// `discord.gateway_url` is set) and starts the outbound worker on its HTTP client.
    pub async fn build(parts: DiscordParts) -> anyhow::Result<Discord> {
        let config = Arc::new(parts.config);
        let status = GatewayStatus::new(config.shards);
        let http = HttpBuilder::new(parts.token.expose())
            .client(rest_client(&config)?)
            .build();
        let ingest = ingest::Ingest {
            router: parts.router,
            config: Arc::clone(&config),
            metrics: parts.metrics.clone(),
            status: Arc::clone(&status),
        };
        let malformed = ingest::MalformedCounter {
            metrics: parts.metrics.clone(),
        };
        let client = serenity::client::ClientBuilder::new_with_http(http, intents())
            .event_handler(ingest)
            .raw_event_handler(malformed)
            .await
            .context("building the Discord client")?;
        if !config.gateway_url.is_empty() {
            *client.ws_url.lock().await = config.gateway_url.clone();
        }
        let (outbound, outbound_task) = DiscordOutbound::start(
            Arc::clone(&client.http),
            Arc::clone(&config),
            parts.metrics,
            parts.service_metrics,
            parts.drain,
            parts.drain_deadline,
        );
        Ok(Discord {
            client,
            outbound,
            outbound_task,
            status,
            config,
        })
    }

    /// Starts every shard (0..shards); serenity reconnects and resumes them on its own.
    pub fn connect(self) -> (DiscordGateway, JoinHandle<()>) {
        let mut client = self.client;
        let shards = self.config.shards;
        let shard_manager = Arc::clone(&client.shard_manager);
        let task = tokio::spawn(async move {
            if let Err(error) = client.start_shards(shards).await {
                tracing::error!(%error, "Discord gateway stopped");
            }
        });
        (
            DiscordGateway {
                shard_manager,
                task,
            },
            self.outbound_task,
        )
    }
}

impl DiscordGateway {
    /// Closes every shard (intake stops) and waits a bounded time for the client to end.
    pub async fn shutdown(self) {
        self.shard_manager.shutdown_all().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

/// The reqwest client serenity uses: I/O timeouts, and the test seam (`discord.com` resolved to
/// `rest_address`, trusting `root_ca_file`). serenity's ratelimiter stays on either way.
fn rest_client(config: &DiscordConfig) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_millis(config.request_timeout_ms));
    if !config.rest_address.is_empty() {
        let addr = config
            .rest_address
            .parse()
            .context("discord.rest_address must be ip:port")?;
        builder = builder.resolve("discord.com", addr);
    }
    if let Some(path) = &config.root_ca_file {
        let pem = std::fs::read(path)
            .with_context(|| format!("discord.root_ca_file: cannot read {}", path.display()))?;
        let certificate = reqwest::Certificate::from_pem(&pem).with_context(|| {
            format!(
                "discord.root_ca_file: {} is not a PEM certificate",
                path.display()
            )
        })?;
        builder = builder.add_root_certificate(certificate);
    }
    builder.build().context("building the Discord HTTP client")
}
