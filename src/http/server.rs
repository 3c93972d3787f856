//! The HTTP server under the endpoints: an accept loop per listening address, one hyper HTTP/1
//! connection per accepted socket, and the limits `axum::serve` does not offer.
//!
//! - **Header read timeout** (`http.header_read_timeout_ms`): hyper's own, with tokio's timer;
//!   a connection whose request head has not fully arrived that long after hyper started
//!   reading it (a fresh connection, or an idle keep-alive one) is closed and counted
//!   (`http_header_timeouts_total`).
//! - **Body read timeout** (`http.body_read_timeout_ms`): hyper has none, so every request's
//!   body is wrapped in a [`DeadlineBody`] that fails once that long has passed since the
//!   head arrived; a handler reading it ([`read_body`]) answers 408 with `connection: close`,
//!   counted (`http_body_timeouts_total`). A body no handler reads is never waited for.
//! - **Connection limit** (`http.max_connections`, per listener): a semaphore with one permit
//!   per open connection. A connection accepted with none left gets a best-effort `503` and is
//!   closed at once, counted (`http_connections_refused_total`); the accept loop never waits
//!   for a permit, so refusing costs nothing but the accept.
//! - **Graceful shutdown**: on `stop` the loop stops accepting, every connection finishes the
//!   request it is serving (hyper's graceful shutdown) and closes; [`run`] returns once all
//!   have (it takes back every permit).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::obs::HttpListenerMetrics;

/// Answer written to a connection over the limit before it is closed (best effort: one
/// non-blocking write, and a client that already sent its request may see a reset instead).
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: 22\r\n\r\ntoo many connections\r\n";

/// How long the loop pauses after a failed accept (out of file descriptors, typically) before
/// trying again, so it does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The per-connection settings of one listener.
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_connections: u32,
}

/// One open connection's slot: its permit, and the open-connections gauge while it lasts.
struct Slot {
    _permit: OwnedSemaphorePermit,
    open: prometheus_client::metrics::gauge::Gauge,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// Serves `app` on `listener` until `stop` is cancelled, then waits for its connections.
pub async fn run(
    listener: TcpListener,
    app: axum::Router,
    limits: Limits,
    metrics: HttpListenerMetrics,
    stop: CancellationToken,
) {
    let max = limits.max_connections.max(1);
    let (body_read_timeout, body_timeouts) =
        (limits.body_read_timeout, metrics.body_timeouts.clone());
    let app = app.layer(axum::middleware::from_fn(move |request, next| {
        with_body_deadline(request, next, body_read_timeout, body_timeouts.clone())
    }));
    let permits = Arc::new(Semaphore::new(max as usize));
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "HTTP accept failed");
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                }
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            metrics.refused.inc();
            refuse(stream);
            continue;
        };
        metrics.open.inc();
        let slot = Slot {
            _permit: permit,
            open: metrics.open.clone(),
        };
        tokio::spawn(connection(
            stream,
            app.clone(),
            limits.header_read_timeout,
            metrics.header_timeouts.clone(),
            stop.clone(),
            slot,
        ));
    }
    drop(listener);
    // Every connection holds a permit until it is done: having them all back means all closed.
    let _ = permits.acquire_many(max).await;
}

/// Over the limit: a short answer if the socket takes it at once, then close.
fn refuse(stream: TcpStream) {
    let _ = stream.try_write(REFUSED);
    drop(stream);
}

/// Serves one connection; closes it on a header read timeout or, after the request in
/// progress, on `stop`.
async fn connection(
    stream: TcpStream,
    app: axum::Router,
    header_read_timeout: Duration,
    header_timeouts: prometheus_client::metrics::counter::Counter,
    stop: CancellationToken,
    slot: Slot,
) {
    let _ = stream.set_nodelay(true);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.as_mut().await
        }
    };
    if let Err(e) = result {
        if e.is_timeout() {
            header_timeouts.inc();
            tracing::debug!("HTTP connection closed: request head not read in time");
        } else {
            tracing::debug!(error = %e, "HTTP connection ended with an error");
        }
    }
    drop(slot);
}

/// Gives the request's body its read deadline (see the module's notes).
async fn with_body_deadline(
    request: Request,
    next: Next,
    timeout: Duration,
    timeouts: prometheus_client::metrics::counter::Counter,
) -> Response {
    let request = request.map(|body| {
        Body::new(DeadlineBody {
            inner: body,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            timeouts,
            expired: false,
        })
    });
    next.run(request).await
}

/// A request body that fails with [`BodyTimedOut`] when it has not ended by its deadline.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timeouts: prometheus_client::metrics::counter::Counter,
    expired: bool,
}

/// The error of a body that did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within http.body_read_timeout_ms")]
pub struct BodyTimedOut;

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(Some(Err(BodyTimedOut.into())));
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.expired = true;
            this.timeouts.inc();
            return Poll::Ready(Some(Err(BodyTimedOut.into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Why a request body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// Over the limit the route takes.
    TooLarge,
    /// Not all there by `http.body_read_timeout_ms`.
    TimedOut,
    /// The client broke the stream off (or sent a malformed chunk).
    Broken(String),
}

impl IntoResponse for BodyError {
    fn into_response(self) -> Response {
        match self {
            BodyError::TooLarge => {
                super::error_response(StatusCode::PAYLOAD_TOO_LARGE, "body too large")
            }
            BodyError::TimedOut => (
                StatusCode::REQUEST_TIMEOUT,
                [(header::CONNECTION, "close")],
                axum::Json(super::openapi::ErrorBody {
                    error: BodyTimedOut.to_string(),
                }),
            )
                .into_response(),
            BodyError::Broken(why) => super::error_response(
                StatusCode::BAD_REQUEST,
                &format!("the request body could not be read: {why}"),
            ),
        }
    }
}

/// Reads a whole request body of at most `limit` bytes, within its deadline.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(error) = source {
            if error.is::<BodyTimedOut>() {
                return BodyError::TimedOut;
            }
            if error.is::<http_body_util::LengthLimitError>() {
                return BodyError::TooLarge;
            }
            source = error.source();
        }
        BodyError::Broken(e.to_string())
    })
}
