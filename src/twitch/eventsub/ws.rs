//! One EventSub WebSocket connection, kept alive for as long as the service runs: a plain
//! WebSocket session, or one conduit shard.
//!
//! A connection opens the configured URL (TCP or TLS through `twitch::connection`, the
//! WebSocket handshake through tokio-tungstenite, everything under `connect_timeout_ms`), waits
//! for its `session_welcome` and publishes the session on a `watch` ([`SessionState`]), then
//! hands every frame to the [`Dispatcher`]. It never sends a message of its own (Twitch closes a
//! connection that does, 4001); WebSocket pings are answered by tungstenite.
//!
//! - **Keepalive.** No frame for the welcome's `keepalive_timeout_seconds` (+10%, at least 1 s,
//!   so an on-time keepalive is never raced) means the connection is dead: it is replaced.
//! - **`session_reconnect`.** The new URL is opened beside the old connection; once its welcome
//!   arrives it becomes the connection, and the old one is still read until it closes (or 2 s
//!   pass), so nothing in flight is lost; repeats are dropped by message id. The session is the
//!   same one (its subscriptions carry over), so its generation does not change.
//! - **Close codes 4000-4007, errors, oversized frames.** The connection is replaced by a new
//!   one to the configured URL (never to a stale reconnect URL; for 4007 that is what Twitch
//!   asks), with exponential backoff and jitter; a new session gets a new generation, which
//!   tells its owner to subscribe again (plain WebSocket) or re-attach the shard (conduit).
//!   Every end is counted in `eventsub_reconnects_total{reason}`.

use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use super::dispatch::{Dispatcher, Frame};
use crate::twitch::connection::{connect, ChatStream};
use std::sync::Arc;

type Socket = WebSocketStream<Box<dyn ChatStream>>;

/// How long the old connection is still read after a reconnect's welcome.
const DRAIN_OLD: Duration = Duration::from_secs(2);
/// A session that lived this long resets the backoff.
const STABLE: Duration = Duration::from_secs(30);

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct SocketSpec {
    pub url: String,
    pub keepalive_s: u64,
    pub connect_timeout: Duration,
    pub max_frame: usize,
    pub backoff: Duration,
    pub backoff_max: Duration,
    /// For logs: "shard 3", "websocket 1".
    pub label: String,
}

/// The connection's session as its owner sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionState {
    /// The welcomed session, None while (re)connecting.
    pub id: Option<String>,
    /// Bumped for every new session (not for a `session_reconnect`, which keeps it).
    pub generation: u64,
}

/// Why a connection ended.
#[derive(Debug)]
enum End {
    Stopped,
    Lost(Lost),
}

/// Why a connection was lost or never welcomed. Its [`Lost::label`] is the `reason` of
/// `eventsub_reconnects_total`; its text goes to the log.
#[derive(Debug, thiserror::Error)]
enum Lost {
    #[error("bad URL: {0}")]
    BadUrl(String),
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("WebSocket handshake: {0}")]
    Handshake(Box<WsError>),
    #[error("the first message was not a welcome")]
    NoWelcome,
    #[error("closed with code {code}{}", if *.before_welcome { " before the welcome" } else { "" })]
    CloseCode { code: u16, before_welcome: bool },
    #[error("closed{}", if *.before_welcome { " before the welcome" } else { "" })]
    Eof { before_welcome: bool },
    #[error("socket error: {0}")]
    Socket(Box<WsError>),
    #[error("no welcome within the connect timeout")]
    ConnectTimeout,
    #[error("keepalive: nothing for {0} s")]
    Keepalive(u64),
    #[error("message too large: {0}")]
    TooLarge(String),
    #[error("reconnect failed: {why}{}", after.as_ref().map(|a| format!(" (after {a})")).unwrap_or_default())]
    ReconnectFailed {
        why: String,
        after: Option<Box<Lost>>,
    },
}

impl Lost {
    /// The metric label: one of a fixed set (close codes Twitch documents keep their number).
    fn label(&self) -> &'static str {
        match self {
            Lost::BadUrl(_) => "bad_url",
            Lost::Connect(_) => "connect",
            Lost::Handshake(_) => "handshake",
            Lost::NoWelcome => "no_welcome",
            Lost::CloseCode { code, .. } => close_label(*code),
            Lost::Eof { .. } => "closed",
            Lost::Socket(_) => "error",
            Lost::ConnectTimeout => "connect_timeout",
            Lost::Keepalive(_) => "keepalive",
            Lost::TooLarge(_) => "too_large",
            Lost::ReconnectFailed { .. } => "reconnect_failed",
        }
    }
}

/// The label of a close code: Twitch's own (4000-4007) and the common WebSocket ones keep their
/// number, anything else is `close_other` (a server cannot grow the label set).
fn close_label(code: u16) -> &'static str {
    match code {
        1000 => "close_1000",
        1001 => "close_1001",
        1005 => "close_1005",
        1006 => "close_1006",
        4000 => "close_4000",
        4001 => "close_4001",
        4002 => "close_4002",
        4003 => "close_4003",
        4004 => "close_4004",
        4005 => "close_4005",
        4006 => "close_4006",
        4007 => "close_4007",
        _ => "close_other",
    }
}

/// Runs the connection until `stop`.
pub async fn run(
    spec: SocketSpec,
    dispatch: Arc<Dispatcher>,
    session: watch::Sender<SessionState>,
    stop: CancellationToken,
) {
    let mut failures: u32 = 0;
    loop {
        if stop.is_cancelled() {
            return;
        }
        let url = with_keepalive(&spec.url, spec.keepalive_s);
        let opened = tokio::select! {
            _ = stop.cancelled() => return,
            opened = open(&url, &spec, &dispatch) => opened,
        };
        let started = Instant::now();
        let end = match opened {
            Ok((socket, id, keepalive)) => {
                failures = 0;
                session.send_modify(|s| {
                    s.id = Some(id.clone());
                    s.generation += 1;
                });
                dispatch.metrics.sessions_connected.inc();
                tracing::info!(connection = %spec.label, session = %id, "EventSub session welcomed");
                let end = serve(socket, keepalive, &spec, &dispatch, &session, &stop).await;
                dispatch.metrics.sessions_connected.dec();
                session.send_modify(|s| s.id = None);
                end
            }
            Err(why) => End::Lost(why),
        };
        let reason = match end {
            End::Stopped => return,
            End::Lost(reason) => reason,
        };
        if started.elapsed() > STABLE {
            failures = 0;
        }
        failures = failures.saturating_add(1);
        dispatch.metrics.reconnect(reason.label());
        let delay = backoff(&spec, failures);
        tracing::warn!(connection = %spec.label, %reason, ?delay, "EventSub connection ended; reconnecting");
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

fn backoff(spec: &SocketSpec, failures: u32) -> Duration {
    let base = spec.backoff.as_millis() as u64;
    let capped = base
        .saturating_mul(1u64 << failures.saturating_sub(1).min(20))
        .min(spec.backoff_max.as_millis() as u64);
    let jitter = rand::random::<u64>() % (capped / 4 + 1);
    Duration::from_millis(capped - capped / 8 + jitter)
}

/// The configured URL with `keepalive_timeout_seconds` (unless it names one).
pub fn with_keepalive(url: &str, keepalive_s: u64) -> String {
    if url.contains("keepalive_timeout_seconds=") {
        return url.to_string();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}keepalive_timeout_seconds={keepalive_s}")
}

/// How long silence may last before the connection counts as dead.
fn silence_limit(keepalive_s: u64) -> Duration {
    let keepalive = Duration::from_secs(keepalive_s.max(1));
    keepalive + (keepalive / 10).max(Duration::from_secs(1))
}

/// Opens `url` and waits for its welcome: the socket, its session id and keepalive.
async fn open(url: &str, spec: &SocketSpec, dispatch: &Dispatcher) -> Result<Welcomed, Lost> {
    let parsed = twitch_oauth2::url::Url::parse(url).map_err(|e| Lost::BadUrl(e.to_string()))?;
    let tls = match parsed.scheme() {
        "wss" => true,
        "ws" => false,
        other => return Err(Lost::BadUrl(format!("scheme {other}"))),
    };
    let host = parsed
        .host_str()
        .ok_or_else(|| Lost::BadUrl("no host".to_string()))?;
    let port = parsed
        .port_or_known_default()
        .unwrap_or(if tls { 443 } else { 80 });
    let attempt = async {
        let stream = connect(&format!("{host}:{port}"), tls, spec.connect_timeout)
            .await
            .map_err(Lost::Connect)?;
        let config = WebSocketConfig {
            max_message_size: Some(spec.max_frame),
            max_frame_size: Some(spec.max_frame),
            ..WebSocketConfig::default()
        };
        let (mut socket, _) =
            tokio_tungstenite::client_async_with_config(url, stream, Some(config))
                .await
                .map_err(|e| Lost::Handshake(Box::new(e)))?;
        // The first message is the welcome.
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    return match dispatch.frame(&text, Instant::now()) {
                        Frame::Welcome {
                            session_id,
                            keepalive_s,
                        } => Ok((socket, session_id, keepalive_s.unwrap_or(spec.keepalive_s))),
                        _ => Err(Lost::NoWelcome),
                    };
                }
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map(|f| u16::from(f.code)).unwrap_or(1005);
                    return Err(Lost::CloseCode {
                        code,
                        before_welcome: true,
                    });
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(Lost::Socket(Box::new(e))),
                None => {
                    return Err(Lost::Eof {
                        before_welcome: true,
                    })
                }
            }
        }
    };
    tokio::time::timeout(spec.connect_timeout, attempt)
        .await
        .map_err(|_| Lost::ConnectTimeout)?
}

/// What one read gave.
enum Read {
    Frame(String),
    End(Lost),
    Other,
}

fn classify(next: Option<Result<Message, WsError>>, dispatch: &Dispatcher) -> Read {
    match next {
        Some(Ok(Message::Text(text))) => Read::Frame(text),
        Some(Ok(Message::Close(frame))) => {
            let code = frame.map(|f| u16::from(f.code)).unwrap_or(1005);
            Read::End(Lost::CloseCode {
                code,
                before_welcome: false,
            })
        }
        Some(Ok(Message::Binary(_))) => {
            dispatch.metrics.malformed("binary");
            Read::Other
        }
        Some(Ok(_)) => Read::Other,
        Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size }))) => {
            dispatch.metrics.malformed("too_large");
            Read::End(Lost::TooLarge(format!(
                "a {size}-byte message (max {max_size})"
            )))
        }
        Some(Err(WsError::Capacity(e))) => {
            dispatch.metrics.malformed("too_large");
            Read::End(Lost::TooLarge(e.to_string()))
        }
        Some(Err(e)) => Read::End(Lost::Socket(Box::new(e))),
        None => Read::End(Lost::Eof {
            before_welcome: false,
        }),
    }
}

async fn next_of(socket: &mut Option<Socket>) -> Option<Result<Message, WsError>> {
    match socket {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// A welcomed connection: the socket, its session id and keepalive.
type Welcomed = (Socket, String, u64);

type Pending = JoinHandle<Result<Welcomed, Lost>>;

async fn joined(pending: &mut Option<Pending>) -> Result<Welcomed, Lost> {
    match pending {
        Some(handle) => match handle.await {
            Ok(result) => result,
            Err(e) => Err(Lost::ReconnectFailed {
                why: format!("the connecting task ended: {e}"),
                after: None,
            }),
        },
        None => std::future::pending().await,
    }
}

/// Reads the session's frames until it ends.
async fn serve(
    mut socket: Socket,
    mut keepalive_s: u64,
    spec: &SocketSpec,
    dispatch: &Arc<Dispatcher>,
    session: &watch::Sender<SessionState>,
    stop: &CancellationToken,
) -> End {
    let mut old: Option<Socket> = None;
    let mut old_until = tokio::time::Instant::now();
    let mut pending: Option<Pending> = None;
    loop {
        let limit = silence_limit(keepalive_s);
        tokio::select! {
            _ = stop.cancelled() => {
                let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(None)).await;
                return End::Stopped;
            }
            next = tokio::time::timeout(limit, socket.next()) => {
                let Ok(next) = next else {
                    return End::Lost(Lost::Keepalive(limit.as_secs()));
                };
                match classify(next, dispatch) {
                    Read::Frame(text) => {
                        if let Frame::Reconnect { url } = dispatch.frame(&text, Instant::now()) {
                            if pending.is_none() {
                                tracing::info!(connection = %spec.label, "EventSub asked to reconnect");
                                let (spec, dispatch) = (spec.clone(), Arc::clone(dispatch));
                                pending = Some(tokio::spawn(async move { open(&url, &spec, &dispatch).await }));
                            }
                        }
                    }
                    // The server may close the old connection as soon as the new one is
                    // welcomed: take the new one rather than starting afresh.
                    Read::End(reason) => match pending.take() {
                        Some(handle) => match joined(&mut Some(handle)).await {
                            Ok((new, id, keepalive)) => {
                                dispatch.metrics.reconnect("session_reconnect");
                                keepalive_s = keepalive;
                                socket = new;
                                session.send_modify(|s| s.id = Some(id));
                            }
                            Err(why) => return End::Lost(Lost::ReconnectFailed {
                                why: why.to_string(),
                                after: Some(Box::new(reason)),
                            }),
                        },
                        None => return End::Lost(reason),
                    },
                    Read::Other => {}
                }
            }
            next = next_of(&mut old) => match classify(next, dispatch) {
                Read::Frame(text) => {
                    let _ = dispatch.frame(&text, Instant::now());
                }
                Read::End(_) => old = None,
                Read::Other => {}
            },
            _ = tokio::time::sleep_until(old_until), if old.is_some() => {
                if let Some(mut s) = old.take() {
                    let _ = tokio::time::timeout(Duration::from_secs(1), s.close(None)).await;
                }
            }
            opened = joined(&mut pending) => {
                pending = None;
                match opened {
                    Ok((new, id, keepalive)) => {
                        dispatch.metrics.reconnect("session_reconnect");
                        keepalive_s = keepalive;
                        let previous = std::mem::replace(&mut socket, new);
                        if let Some(mut older) = old.replace(previous) {
                            let _ = tokio::time::timeout(Duration::from_secs(1), older.close(None)).await;
                        }
                        old_until = tokio::time::Instant::now() + DRAIN_OLD;
                        // Same session (its subscriptions carried over): same generation.
                        session.send_modify(|s| s.id = Some(id));
                    }
                    // Twitch's advice for 4007 and any failed reconnect: start afresh.
                    Err(why) => return End::Lost(Lost::ReconnectFailed {
                        why: why.to_string(),
                        after: None,
                    }),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keepalive_is_asked_for_once() {
        assert_eq!(
            with_keepalive("wss://eventsub.wss.twitch.tv/ws", 30),
            "wss://eventsub.wss.twitch.tv/ws?keepalive_timeout_seconds=30"
        );
        assert_eq!(
            with_keepalive("ws://127.0.0.1:1/ws?x=1", 10),
            "ws://127.0.0.1:1/ws?x=1&keepalive_timeout_seconds=10"
        );
        let given = "ws://h/ws?keepalive_timeout_seconds=20";
        assert_eq!(with_keepalive(given, 10), given);
    }

    #[test]
    fn silence_gets_a_margin_over_the_keepalive() {
        assert_eq!(silence_limit(10), Duration::from_secs(11));
        assert_eq!(silence_limit(600), Duration::from_secs(660));
    }

    #[test]
    fn end_reasons_have_short_labels_from_a_fixed_set() {
        let closed = |code| Lost::CloseCode {
            code,
            before_welcome: false,
        };
        assert_eq!(closed(4003).label(), "close_4003");
        assert_eq!(closed(4999).label(), "close_other");
        assert_eq!(closed(4999).to_string(), "closed with code 4999");
        assert_eq!(Lost::Keepalive(11).label(), "keepalive");
        assert_eq!(
            Lost::Keepalive(11).to_string(),
            "keepalive: nothing for 11 s"
        );
        let failed = Lost::ReconnectFailed {
            why: Lost::NoWelcome.to_string(),
            after: Some(Box::new(closed(4004))),
        };
        assert_eq!(failed.label(), "reconnect_failed");
        assert_eq!(
            failed.to_string(),
            "reconnect failed: the first message was not a welcome (after closed with code 4004)"
        );
    }
}
