//! The top floor: the service's own subcommands, `run`, `migrate`, `check-config` and
//! `replay` (the `firehose` binary, in the `firehose-cli` crate, parses the arguments and
//! calls these; its tooling subcommands `sim`, `demo` and `bench` come from `firehose-sim` and
//! `firehose-bench`), and [`Server`], the service with its HTTP endpoints: `app` does not know
//! `http`, so this is where the two are wired together.

mod replay;
mod server;

pub use replay::{replay, ReplayArgs};
pub use server::Server;

use std::path::Path;

use crate::app::ServiceOptions;
use crate::config::Config;

/// Logs to stderr; level from `FIREHOSE_LOG` (e.g. `info`, `firehose=debug`), default `info`.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FIREHOSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,scylla=warn,serenity=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// `firehose check-config <path>`.
pub fn check_config(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    // The rules files are part of the configuration: every one must load and validate.
    crate::app::load_rules(&config.engine)?;
    println!(
        "{}: valid ({} channel(s), server {}, overflow {:?}, admin token {})",
        path.display(),
        config.twitch.channels.len(),
        config.twitch.server,
        config.admission.overflow,
        if config.secrets.admin_token.is_some() {
            "set"
        } else {
            "not set: admin API disabled"
        }
    );
    Ok(())
}

/// `firehose run --config <path>`: runs until SIGTERM or Ctrl-C, then shuts down gracefully.
pub async fn run(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    let server = Server::start(config, ServiceOptions::default()).await?;
    tracing::info!(http = %server.http_addr(), "firehose running");
    wait_for_signal().await;
    tracing::info!("shutting down");
    let report = server.shutdown().await;
    tracing::info!(?report, "stopped");
    Ok(())
}

/// `firehose migrate`: applies the store migrations not yet applied and says which.
pub async fn migrate(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    let store = crate::store::open(&config.store).await?;
    let before = store.schema_version().await?;
    let applied = store.migrate().await?;
    let where_ = if config.store.uses_scylla() {
        format!(
            "keyspace {} at {}",
            config.store.keyspace, config.store.scylla_uri
        )
    } else if config.store.embedded_path.is_empty() {
        "embedded store in memory (nothing kept: set store.embedded_path)".to_string()
    } else {
        format!("embedded store {}", config.store.embedded_path)
    };
    if applied.is_empty() {
        println!(
            "{} store, {where_}: schema version {before}, up to date",
            store.backend()
        );
    } else {
        println!(
            "{} store, {where_}: schema version {before} -> {}, applied {:?}",
            store.backend(),
            crate::store::migrations::latest(),
            applied
        );
    }
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
