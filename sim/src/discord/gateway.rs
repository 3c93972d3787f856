//! The fake's gateway (WebSocket over plain TCP on 127.0.0.1): Hello, then Identify (token
//! checked, READY sent) or Resume (RESUMED sent), heartbeat ACKs, and whatever the test pushes:
//! MESSAGE_CREATE dispatches (to the shard that owns the guild, with sequence numbers), raw
//! (possibly malformed) frames, or an abrupt drop of the connection.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use super::payloads::{self, op};
use super::FakeState;

/// What a test pushes to a live session.
#[derive(Debug)]
pub enum Push {
    Dispatch {
        kind: String,
        data: Value,
    },
    Raw(String),
    /// Close the TCP connection without a close frame, like a network failure.
    Drop,
}

/// Frames a session can have waiting; a full session refuses more (the push reports it).
pub const SESSION_QUEUE: usize = 10_000;

pub async fn serve(listener: TcpListener, state: Arc<FakeState>, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let state = Arc::clone(&state);
        let stop = stop.clone();
        tokio::spawn(async move {
            if let Ok(ws) = tokio_tungstenite::accept_async(stream).await {
                session(ws, state, stop).await;
            }
        });
    }
}

/// How a session started.
struct Start {
    shard: u64,
    session_id: String,
    seq: u64,
}

async fn session(
    mut ws: WebSocketStream<TcpStream>,
    state: Arc<FakeState>,
    stop: CancellationToken,
) {
    state.connections.fetch_add(1, Ordering::Relaxed);
    if send(&mut ws, payloads::hello(state.config.heartbeat_interval_ms))
        .await
        .is_err()
    {
        return;
    }
    let Some(start) = handshake(&mut ws, &state).await else {
        let _ = ws.close(None).await;
        return;
    };
    let (tx, mut rx) = mpsc::channel(SESSION_QUEUE);
    let id = state.add_session(start.shard, &start.session_id, tx);
    let mut seq = start.seq;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            push = rx.recv() => match push {
                Some(Push::Dispatch { kind, data }) => {
                    seq += 1;
                    if send(&mut ws, payloads::dispatch(seq, &kind, data)).await.is_err() {
                        break;
                    }
                }
                Some(Push::Raw(text)) => {
                    if ws.send(WsMessage::Text(text)).await.is_err() {
                        break;
                    }
                }
                Some(Push::Drop) | None => break,
            },
            frame = ws.next() => match frame {
                Some(Ok(WsMessage::Text(text))) => {
                    if answer(&mut ws, &state, &text).await.is_err() {
                        break;
                    }
                }
                Some(Ok(WsMessage::Close(_))) => {
                    // tungstenite queued the closing handshake's answer; send it.
                    let _ = ws.flush().await;
                    break;
                }
                Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
    state.remove_session(id);
    // Dropping the stream closes the TCP connection without a close frame.
}

/// Waits for Identify or Resume and answers it; None when the client fails it.
async fn handshake(ws: &mut WebSocketStream<TcpStream>, state: &FakeState) -> Option<Start> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .ok()??
            .ok()?;
        let WsMessage::Text(text) = frame else {
            continue;
        };
        let value: Value = serde_json::from_str(&text).ok()?;
        let data = &value["d"];
        match value["op"].as_u64() {
            Some(op::HEARTBEAT) => send(ws, payloads::heartbeat_ack()).await.ok()?,
            Some(op::IDENTIFY) => {
                if !token_ok(state, data) {
                    state.refused_logins.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
                state.identifies.fetch_add(1, Ordering::Relaxed);
                state
                    .last_intents
                    .store(data["intents"].as_u64().unwrap_or(0), Ordering::Relaxed);
                let shard = data["shard"][0].as_u64().unwrap_or(0);
                let total = data["shard"][1].as_u64().unwrap_or(1);
                let session_id = format!("fake-session-{}", state.next_id());
                let guilds: Vec<u64> = state
                    .config
                    .guilds
                    .iter()
                    .copied()
                    .filter(|g| payloads::shard_of(*g, total) == shard)
                    .collect();
                let ready =
                    payloads::ready(&session_id, &state.gateway_url(), [shard, total], &guilds);
                send(ws, payloads::dispatch(1, "READY", ready)).await.ok()?;
                return Some(Start {
                    shard,
                    session_id,
                    seq: 1,
                });
            }
            Some(op::RESUME) => {
                if !token_ok(state, data) {
                    state.refused_logins.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
                let session_id = data["session_id"].as_str().unwrap_or_default().to_string();
                let seq = data["seq"].as_u64().unwrap_or(0);
                let shard = state.shard_of_session(&session_id)?;
                state.resumes.fetch_add(1, Ordering::Relaxed);
                let resumed =
                    payloads::dispatch(seq + 1, "RESUMED", Value::Object(Default::default()));
                send(ws, resumed).await.ok()?;
                return Some(Start {
                    shard,
                    session_id,
                    seq: seq + 1,
                });
            }
            _ => {}
        }
    }
}

fn token_ok(state: &FakeState, data: &Value) -> bool {
    let presented = data["token"].as_str().unwrap_or_default();
    presented == state.config.token || presented == format!("Bot {}", state.config.token)
}

/// Answers a frame from a logged-in client (heartbeats).
async fn answer(
    ws: &mut WebSocketStream<TcpStream>,
    state: &FakeState,
    text: &str,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return Ok(());
    };
    if value["op"].as_u64() == Some(op::HEARTBEAT) {
        state.heartbeats.fetch_add(1, Ordering::Relaxed);
        send(ws, payloads::heartbeat_ack()).await?;
    }
    Ok(())
}

async fn send(
    ws: &mut WebSocketStream<TcpStream>,
    value: Value,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    ws.send(WsMessage::Text(value.to_string())).await
}
