//! The EventSub WebSocket server: `ws://127.0.0.1:PORT/ws[?keepalive_timeout_seconds=N]`.
//!
//! Each connection gets a `session_welcome` (a new session, or the session it reconnects with
//! `?reconnect=<token>` from a `session_reconnect`), then its queued frames, a
//! `session_keepalive` whenever it has been quiet for three quarters of its keepalive time, and
//! a WebSocket ping every `ping_interval`. The server only sends: any text or binary frame from
//! the client closes the connection with 4001; a ping left unanswered for `ping_interval`, 4002;
//! no subscription (or conduit shard) within the keepalive time after the welcome, 4003; a
//! reconnect URL that is unknown or used, 4007.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;

use super::{close_reason, payloads, EventSubShared, Out, Session};
use crate::state::lock;

/// Largest frame accepted from a client (it should send none).
const MAX_CLIENT_FRAME: usize = 64 * 1024;

/// Binds the server and accepts connections until the simulator shuts down.
pub(crate) async fn start(shared: EventSubShared) -> std::io::Result<()> {
    let ip = shared.inner.sim.config.listen.ip();
    let listener = TcpListener::bind((ip, 0)).await?;
    let addr = listener.local_addr()?;
    let _ = shared.inner.ws_addr.set(addr);
    tokio::spawn(async move {
        let stop = shared.inner.sim.shutdown.clone();
        loop {
            let accepted = tokio::select! {
                _ = stop.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve(shared.clone(), stream));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "eventsub accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    });
    Ok(())
}

/// What the connection asked for in its URL.
#[derive(Debug, Default)]
struct Asked {
    keepalive_s: Option<u64>,
    reconnect: Option<String>,
    path_ok: bool,
}

fn parse_query(uri: &str) -> Asked {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let mut asked = Asked {
        path_ok: path == "/ws",
        ..Asked::default()
    };
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            // "Specifying an invalid, but numeric value will return the nearest acceptable value."
            "keepalive_timeout_seconds" => {
                asked.keepalive_s = value.parse::<u64>().ok().map(|v| v.clamp(10, 600))
            }
            "reconnect" => asked.reconnect = Some(value.to_string()),
            _ => {}
        }
    }
    asked
}

fn close_message(code: u16) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: close_reason(code).into(),
    }))
}

async fn serve(shared: EventSubShared, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut uri = String::new();
    let callback = |request: &Request, response: Response| {
        uri = request.uri().to_string();
        Ok(response)
    };
    let config = WebSocketConfig {
        max_message_size: Some(MAX_CLIENT_FRAME),
        max_frame_size: Some(MAX_CLIENT_FRAME),
        ..WebSocketConfig::default()
    };
    let Ok(mut socket) =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await
    else {
        return;
    };
    let asked = parse_query(&uri);
    if !asked.path_ok {
        let _ = socket.send(close_message(1008)).await;
        return;
    }
    let inner = &shared.inner;
    let keepalive_s = asked
        .keepalive_s
        .unwrap_or(inner.config.default_keepalive_s);
    let conn = shared.next_conn();
    let (tx, mut rx) = mpsc::channel::<Out>(inner.config.session_queue.max(1));
    let close = inner.sim.shutdown.child_token();
    // Register (new session) or move the reconnecting session here.
    let welcome = {
        let mut es = lock(&inner.state);
        es.stats.connections += 1;
        let connected_at = payloads::now_rfc3339();
        let session_id = match &asked.reconnect {
            Some(token) => {
                let found = es
                    .sessions
                    .values()
                    .find(|s| s.pending_reconnect.as_deref() == Some(token.as_str()))
                    .map(|s| s.id.clone());
                match found {
                    Some(id) => {
                        if let Some(session) = es.sessions.get_mut(&id) {
                            let old = std::mem::replace(&mut session.tx, tx.clone());
                            session.conn = conn;
                            session.close = close.clone();
                            session.pending_reconnect = None;
                            session.silenced = false;
                            // The old connection ends once its queue is written.
                            drop(old);
                        }
                        es.stats.reconnects_completed += 1;
                        Some(id)
                    }
                    None => None,
                }
            }
            None => {
                let id = es.new_id().replace('-', "");
                es.sessions.insert(
                    id.clone(),
                    Session {
                        id: id.clone(),
                        conn,
                        tx: tx.clone(),
                        close: close.clone(),
                        keepalive_s,
                        connected_at: connected_at.clone(),
                        welcomed_at: Instant::now(),
                        owner: None,
                        used: false,
                        conduit_shard: None,
                        subscriptions: 0,
                        cost: 0,
                        pending_reconnect: None,
                        silenced: false,
                    },
                );
                Some(id)
            }
        };
        match session_id {
            Some(id) => {
                es.stats.welcomes += 1;
                let message_id = es.new_id();
                let at = es
                    .sessions
                    .get(&id)
                    .map(|s| s.connected_at.clone())
                    .unwrap_or(connected_at);
                Some((
                    id.clone(),
                    payloads::welcome(&message_id, &id, keepalive_s, &at),
                ))
            }
            None => {
                *es.stats.closes.entry(4007).or_default() += 1;
                None
            }
        }
    };
    let Some((session_id, welcome)) = welcome else {
        let _ = socket.send(close_message(4007)).await;
        return;
    };
    drop(tx);
    if socket.send(Message::Text(welcome)).await.is_err() {
        end(&shared, &session_id, conn);
        return;
    }
    let unused_deadline = Instant::now() + Duration::from_secs(keepalive_s);
    let ping_interval = inner.config.ping_interval;
    let mut last_sent = Instant::now();
    let mut last_ping = Instant::now();
    let mut awaiting_pong: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let keepalive_after = Duration::from_millis(keepalive_s * 750);
    let closed_with = loop {
        tokio::select! {
            _ = close.cancelled() => break None,
            frame = rx.recv() => match frame {
                Some(Out::Text(text)) => {
                    if is_silenced(&shared, &session_id, conn) {
                        lock(&inner.state).stats.dropped += 1;
                        continue;
                    }
                    if socket.send(Message::Text(text)).await.is_err() {
                        break None;
                    }
                    last_sent = Instant::now();
                }
                Some(Out::Close(code, _)) => break Some(code),
                // The session moved to a new connection (reconnect): this one is done.
                None => break Some(1000),
            },
            message = socket.next() => match message {
                Some(Ok(Message::Text(_))) | Some(Ok(Message::Binary(_))) => {
                    lock(&inner.state).stats.inbound_frames += 1;
                    break Some(4001);
                }
                Some(Ok(Message::Pong(_))) => awaiting_pong = None,
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break None,
                Some(Ok(_)) => {}
            },
            _ = tick.tick() => {
                let now = Instant::now();
                if awaiting_pong.is_some_and(|at| now.duration_since(at) >= ping_interval) {
                    break Some(4002);
                }
                if now >= unused_deadline && !is_used(&shared, &session_id) {
                    break Some(4003);
                }
                let moved = lock(&inner.state).sessions.get(&session_id).is_none_or(|s| s.conn != conn);
                let silenced = moved || is_silenced(&shared, &session_id, conn);
                if !silenced && now.duration_since(last_sent) >= keepalive_after {
                    let message_id = lock(&inner.state).new_id();
                    if socket.send(Message::Text(payloads::keepalive(&message_id))).await.is_err() {
                        break None;
                    }
                    last_sent = now;
                }
                if !silenced && awaiting_pong.is_none() && now.duration_since(last_ping) >= ping_interval {
                    if socket.send(Message::Ping(b"firehose-sim".to_vec())).await.is_err() {
                        break None;
                    }
                    last_ping = now;
                    awaiting_pong = Some(now);
                }
            }
        }
    };
    if let Some(code) = closed_with {
        *lock(&inner.state).stats.closes.entry(code).or_default() += 1;
        let _ =
            tokio::time::timeout(Duration::from_secs(1), socket.send(close_message(code))).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(None)).await;
    end(&shared, &session_id, conn);
}

/// Whether this connection must stay quiet: its session is silenced (keepalive loss) or gone.
/// A connection whose session moved (reconnect) still writes what it had queued.
fn is_silenced(shared: &EventSubShared, session: &str, conn: u64) -> bool {
    lock(&shared.inner.state)
        .sessions
        .get(session)
        .is_none_or(|s| s.conn == conn && s.silenced)
}

fn is_used(shared: &EventSubShared, session: &str) -> bool {
    lock(&shared.inner.state)
        .sessions
        .get(session)
        .is_some_and(|s| s.used)
}

/// The connection is over: if the session still lives on it (no reconnect moved it), the
/// session is gone, with its plain subscriptions and its shard.
fn end(shared: &EventSubShared, session: &str, conn: u64) {
    let channels = {
        let mut es = lock(&shared.inner.state);
        let current = es.sessions.get(session).is_some_and(|s| s.conn == conn);
        if !current {
            return;
        }
        es.session_lost(session)
    };
    shared.after_session_lost(&channels);
}
