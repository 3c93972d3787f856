//! [`Server`]: the running service ([`crate::app::Service`]) and its HTTP endpoints
//! ([`crate::http`]), started and stopped together. It is what `firehose run` runs, and what
//! the demo, the load generator and the integration tests start.
//!
//! The endpoints start last (once the configured channels have their actors) and stop last,
//! so `/readyz` answers 503 for the whole of shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::{Core, Readiness, Service, ServiceOptions, ShutdownReport};
use crate::config::Config;

/// The service with its endpoints.
pub struct Server {
    service: Service,
    http_addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    http_stop: CancellationToken,
    http_task: JoinHandle<()>,
}

impl Server {
    /// Starts the service, then its endpoints on `http.listen` (and `http.admin_listen`).
    /// Returns once they listen; the connection and joins proceed in the background (see
    /// `/readyz`).
    pub async fn start(config: Config, options: ServiceOptions) -> anyhow::Result<Server> {
        let service = Service::start(config, options).await?;
        let http_stop = CancellationToken::new();
        let listening =
            match crate::http::serve(Arc::clone(service.core()), http_stop.clone()).await {
                Ok(listening) => listening,
                Err(e) => {
                    service.shutdown().await;
                    return Err(e);
                }
            };
        match listening.admin {
            Some(admin) => {
                tracing::info!(http_addr = %listening.main, admin_addr = %admin, "HTTP endpoints listening (admin API and metrics on the admin address)")
            }
            None => tracing::info!(http_addr = %listening.main, "HTTP endpoints listening"),
        }
        Ok(Server {
            service,
            http_addr: listening.main,
            admin_addr: listening.admin,
            http_stop,
            http_task: listening.task,
        })
    }

    pub fn core(&self) -> &Arc<Core> {
        self.service.core()
    }

    /// Where the endpoints listen (useful with port 0).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Where the admin API and `/metrics` listen when `http.admin_listen` is set.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Where the admin API and `/metrics` are served: the admin address, else `http.listen`.
    pub fn admin_api_addr(&self) -> SocketAddr {
        self.admin_addr.unwrap_or(self.http_addr)
    }

    /// Waits until `/readyz` would answer 200, or the deadline passes.
    pub async fn wait_ready(&self, deadline: Duration) -> Result<(), Readiness> {
        self.service.wait_ready(deadline).await
    }

    /// Graceful shutdown of the service (see [`crate::app`] for the order), then the endpoints.
    pub async fn shutdown(self) -> ShutdownReport {
        let report = self.service.shutdown().await;
        self.http_stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.http_task).await;
        report
    }
}
