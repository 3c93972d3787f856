//! Moderation through the Twitch Helix API (IRC moderation commands no longer exist).
//!
//! [`HelixModerator::submit`] validates a [`ModerationRequest`] and puts it on a bounded queue
//! without ever waiting; a worker task sends it to Helix (ban/timeout: `POST
//! /moderation/bans`, unban: `DELETE /moderation/bans`, delete: `DELETE /moderation/chat`)
//! within the token's points budget, with bounded concurrency and retries, and records every
//! action and its outcome in the [`ModerationLogEntry`] log (memory ring + optional JSON-lines
//! file) and the `helix_*` metrics. Tests run it against the checking fake of `firehose-sim`.
//!
//! Parts (the `[helix]` section's type is `config::HelixConfig`): `request` (action -> exact Helix call), `budget`
//! (points per window, `Ratelimit-*` headers), `client` (one call, classification, retries),
//! `worker` (queue, concurrency, shutdown), `log`, `metrics`.

pub mod bearer;
pub mod budget;
pub mod call;
pub mod chat;
mod client;
pub mod eventsub;
pub mod feedback;
mod log;
mod metrics;
mod modes;
mod request;
pub mod streams;
pub mod users;
mod worker;

pub use bearer::{Bearer, StaticBearer};
pub use client::Outcome;
pub use feedback::{ActorFeedback, ChannelFeedback};
pub use log::{ForgottenLog, ModerationLogEntry};
pub use metrics::HelixMetrics;
pub use request::{ModerationRequest, Refused, MAX_REASON_CHARS, MAX_TIMEOUT_S};

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{HelixConfig, Secret};
use log::ModerationLog;
use request::Job;
use worker::{Shared, Worker};

/// Handle to the Helix moderation worker. Cheap to clone; every clone feeds the same queue.
#[derive(Clone)]
pub struct HelixModerator {
    inner: Arc<Inner>,
}

struct Inner {
    tx: mpsc::Sender<Job>,
    log: Arc<ModerationLog>,
    metrics: HelixMetrics,
}

impl std::fmt::Debug for HelixModerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HelixModerator")
            .field("queued", &self.queued())
            .finish_non_exhaustive()
    }
}

impl HelixModerator {
    /// Registers the metrics and starts the worker (and the log file writer, if configured).
    /// The returned task ends after `shutdown` once queued actions are logged as dropped,
    /// calls in flight finished and the log file flushed. Must be called inside a tokio
    /// runtime. `config` should have passed [`HelixConfig::validate`].
    pub fn start(
        config: HelixConfig,
        token: Secret,
        registry: &mut Registry,
        shutdown: CancellationToken,
    ) -> (HelixModerator, JoinHandle<()>) {
        let metrics = HelixMetrics::register(registry);
        HelixModerator::start_with_metrics(
            config,
            StaticBearer::new(Some(&token)),
            metrics,
            None,
            shutdown,
        )
    }

    /// [`HelixModerator::start`] with metrics already registered (the service registers every
    /// component's metrics first, then starts the components), reporting backlogs and refused
    /// chat-mode changes to `feedback`.
    pub fn start_with_metrics(
        config: HelixConfig,
        bearer: Arc<dyn Bearer>,
        metrics: HelixMetrics,
        feedback: Option<Arc<dyn ChannelFeedback>>,
        shutdown: CancellationToken,
    ) -> (HelixModerator, JoinHandle<()>) {
        let (log, writer) = match &config.moderation_log {
            Some(path) => {
                let (log, writer) =
                    ModerationLog::with_file(config.log_capacity, metrics.clone(), path);
                let stop = CancellationToken::new();
                let handle = tokio::spawn(writer.run(stop.clone()));
                (log, Some((handle, stop)))
            }
            None => (
                ModerationLog::new(config.log_capacity, metrics.clone()),
                None,
            ),
        };
        let log = Arc::new(log);
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let moderator = HelixModerator {
            inner: Arc::new(Inner {
                tx,
                log: log.clone(),
                metrics: metrics.clone(),
            }),
        };
        let executor = match client::Executor::new(
            &config,
            bearer,
            metrics.clone(),
            shutdown.clone(),
        ) {
            Ok(executor) => executor,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the Helix HTTP client; moderation is off");
                drop(rx);
                let handle = tokio::spawn(async move {
                    if let Some((handle, stop)) = writer {
                        shutdown.cancelled().await;
                        stop.cancel();
                        let _ = handle.await;
                    }
                });
                return (moderator, handle);
            }
        };
        let worker = Worker {
            shared: Shared {
                executor,
                log,
                metrics,
                feedback: feedback.clone(),
            },
            rx,
            staged_capacity: config.queue_capacity.max(1),
            max_in_flight: config.max_in_flight.max(1),
            drain_timeout: Duration::from_millis(config.request_timeout_ms)
                + Duration::from_secs(1),
            max_age: Duration::from_millis(config.max_action_age_ms),
        };
        let handle = tokio::spawn(worker.run(shutdown, writer));
        (moderator, handle)
    }

    /// Queues a moderation action; never waits. A full queue drops it (logged and counted).
    pub fn submit(&self, request: ModerationRequest) -> Result<(), Refused> {
        let inner = &self.inner;
        let job = Job::from_request(request).inspect_err(|refused| {
            inner.metrics.dropped(refused.reason());
        })?;
        // Counted before sending so the worker's decrement can never come first.
        inner.metrics.queue_depth.inc();
        let (job, refused, reason) = match inner.tx.try_send(job) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::TrySendError::Full(job)) => (job, Refused::QueueFull, "queue_full"),
            Err(mpsc::error::TrySendError::Closed(job)) => (job, Refused::Closed, "closed"),
        };
        inner.metrics.queue_depth.dec();
        // A chat-mode change refused here (queue full) is not Twitch's no: the engine keeps
        // the step engaged and its revert runs; the drop is logged and counted.
        worker::record_dropped(&inner.log, &inner.metrics, &job, reason);
        Err(refused)
    }

    /// The in-memory moderation log, newest last.
    pub fn log(&self) -> Vec<ModerationLogEntry> {
        self.inner.log.entries()
    }

    /// Removes one user's entries from the moderation log (memory and file).
    pub async fn forget_user(&self, user_id: &str) -> ForgottenLog {
        self.inner.log.forget_user(user_id).await
    }

    /// Actions waiting in the queue.
    pub fn queued(&self) -> usize {
        // Submitted and not yet dispatched: in the channel or waiting its channel's turn.
        self.inner.metrics.queue_depth.get().max(0) as usize
    }
}
