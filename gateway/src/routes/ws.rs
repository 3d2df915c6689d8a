//! `GET /ws`: the hub's websocket, forwarded so the web client needs one origin.
//!
//! The gateway opens the hub connection first, passing the client's `Origin` along (and the
//! request id, under which the hub logs the socket and makes its calls), so the
//! hub's own Origin check decides (a refusal becomes the same HTTP status here). Only then is the
//! client's upgrade accepted, and frames are pumped both ways unchanged: the hub speaks the
//! protocol (docs/PROTOCOL.md), authenticates and limits frames; the gateway adds no rate limit
//! per message. Close codes and reasons pass through in both directions; a hub connection that
//! breaks without a close frame reaches the client as `1014` "hub connection lost". With several hub URLs
//! configured, connections take them in turn and fall back to the next one that answers.
//!
//! Liveness: the hub's pings are passed on to the client, and a client that sends nothing (not
//! even a pong) for the idle timeout is closed with the hub's `4009`, since the gateway answers
//! the hub's pings itself. This route is not in the OpenAPI document.

use crate::config::GatewayConfig;
use crate::edge::request_id::RequestId;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use carehub_nats::ErrorCode;
use futures::{SinkExt as _, StreamExt as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self as ts, Error as WsError};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Upstream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long opening the hub connection may take before the next hub is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A write to the hub, or of a close frame, blocked this long drops the pair (a write of a
/// frame to the client has the hub's write timeout, after which it is closed as too slow).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest frame read from either side. Above the hub's own hard limit, so the hub decides
/// (and closes with `1009`) rather than the gateway.
const MAX_FRAME: usize = 256 * 1024;
/// Bytes read from either socket at a time. Each buffer starts at this size and stays, zero
/// filled, for the socket's life, so it is a large part of an idle pair's memory; 1 KiB, as in
/// the hub, holds a typical frame in one read, and a larger frame grows the buffer to its size.
const READ_BUFFER: usize = 1_024;
/// The hub's close code for a socket idle too long.
const IDLE: u16 = 4009;
const GOING_AWAY: u16 = 1001;
/// Sent to the client when the hub connection broke without a close frame (bad gateway).
const HUB_LOST: u16 = 1014;
/// How long one side is still read after a close, for the close handshake to finish.
const CLOSE_DRAIN: Duration = Duration::from_secs(2);
const TOO_BIG: u16 = 1009;
/// The hub's close code for a client that does not read.
const TOO_SLOW: u16 = 4008;
/// How long a client closed as too slow gets to take its close frame.
const CLOSE_LINGER: Duration = Duration::from_secs(5);

/// The hub nodes `/ws` is forwarded to.
#[derive(Debug)]
pub(crate) struct Forwarder {
    urls: Vec<String>,
    next: AtomicUsize,
    idle: Duration,
    write_timeout: Duration,
}

/// The `/ws` route, with its own state (the hub URLs and whose turn it is).
pub(crate) fn route(cfg: &GatewayConfig) -> MethodRouter<AppState> {
    let f = Arc::new(Forwarder {
        urls: cfg.hub_urls.clone(),
        next: AtomicUsize::new(0),
        idle: cfg.hub_idle_timeout,
        write_timeout: cfg.hub_write_timeout,
    });
    get(forward).with_state(f)
}

/// Connects to a hub node, then accepts the client's upgrade and pumps frames.
async fn forward(
    State(f): State<Arc<Forwarder>>,
    request_id: Option<Extension<RequestId>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let id = request_id.map(|Extension(id)| id.0);
    let upstream = match f.connect(headers.get(header::ORIGIN), id.as_deref()).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    let (idle, wt) = (f.idle, f.write_timeout);
    upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .on_upgrade(move |client| pump(client, upstream, idle, wt))
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(Some(MAX_FRAME))
        .max_frame_size(Some(MAX_FRAME))
}

impl Forwarder {
    /// Opens a websocket to the next hub node that answers.
    ///
    /// # Errors
    /// The hub's HTTP refusal (a foreign Origin is `403`) as the same status, or
    /// `service_unavailable` when no hub node can be reached.
    async fn connect(
        &self,
        origin: Option<&HeaderValue>,
        request_id: Option<&str>,
    ) -> Result<Upstream, ApiError> {
        let n = self.urls.len();
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            let url = &self.urls[(first + i) % n];
            let mut req = match url.as_str().into_client_request() {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(%url, error = %e, "bad hub URL");
                    continue;
                }
            };
            if let Some(o) = origin {
                req.headers_mut().insert(header::ORIGIN, o.clone());
            }
            // The hub logs the socket and makes its calls under this request's id.
            if let Some(v) = request_id.and_then(|id| HeaderValue::from_str(id).ok()) {
                req.headers_mut().insert("x-request-id", v);
            }
            let attempt =
                tokio_tungstenite::connect_async_with_config(req, Some(ws_config()), true);
            match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
                Ok(Ok((ws, _))) => {
                    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
                        let _ = s.set_nodelay(true);
                    }
                    return Ok(ws);
                }
                // The hub answered and refused: its answer stands.
                Ok(Err(WsError::Http(resp))) => return Err(ApiError::from_status(resp.status())),
                Ok(Err(e)) => tracing::warn!(%url, error = %e, "hub node unreachable"),
                Err(_) => tracing::warn!(%url, "hub node did not answer in time"),
            }
        }
        Err(ApiError::new(
            ErrorCode::ServiceUnavailable,
            "no hub node is reachable; try again shortly",
        ))
    }
}

/// Why one direction of the pump stopped.
enum End {
    /// That side sent a close frame, which was passed on.
    Closed,
    /// That side vanished (or its stream failed) without a close frame.
    Gone,
    /// A frame too big to read.
    TooBig,
    /// The client sent nothing for the idle timeout.
    Idle,
    /// Writing to the other side failed or was stuck.
    WriteFailed,
}

async fn pump(client: WebSocket, upstream: Upstream, idle: Duration, wt: Duration) {
    let _open = carehub_runtime::metrics::Held::new(metrics::gauge!(
        "carehub_websockets_open",
        "component" => "gateway"
    ));
    let (mut c_tx, mut c_rx) = client.split();
    let (mut u_tx, mut u_rx) = upstream.split();
    tokio::select! {
        end = client_to_hub(&mut c_rx, &mut u_tx, idle) => {
            client_ended(end, &mut c_tx, &mut u_tx, &mut u_rx, wt).await;
        }
        end = hub_to_client(&mut u_rx, &mut c_tx, wt) => {
            match end {
                End::Closed => {}
                End::WriteFailed => {
                    let _ = tokio::time::timeout(WRITE_TIMEOUT, u_tx.send(hub_close(GOING_AWAY, "client left"))).await;
                    // A client that does not read gets a last chance to take its close frame.
                    let close = client_close(TOO_SLOW, "too slow");
                    let _ = tokio::time::timeout(CLOSE_LINGER, c_tx.send(close)).await;
                }
                End::Gone | End::TooBig | End::Idle => {
                    let _ = tokio::time::timeout(WRITE_TIMEOUT, c_tx.send(client_close(HUB_LOST, "hub connection lost"))).await;
                }
            }
            // Keep reading the client until it answers the close: closing with unread data
            // would reset the connection, and the client could lose the close frame.
            drain_client(&mut c_rx).await;
        }
    }
    let _ = tokio::time::timeout(WRITE_TIMEOUT, c_tx.close()).await;
    let _ = tokio::time::timeout(WRITE_TIMEOUT, u_tx.close()).await;
}

/// After the client's side ended: tells each side what the other cannot, and passes on the
/// hub's close frame. When writing to the hub failed, the hub may have closed first (its close
/// frame is then on its way): that one is passed on, and only without it does the client get
/// `1014`.
async fn client_ended(
    end: End,
    c_tx: &mut futures::stream::SplitSink<WebSocket, ws::Message>,
    u_tx: &mut futures::stream::SplitSink<Upstream, ts::Message>,
    u_rx: &mut futures::stream::SplitStream<Upstream>,
    wt: Duration,
) {
    let to_client = match end {
        End::Idle => Some((IDLE, "idle timeout")),
        End::TooBig => Some((TOO_BIG, "frame too big")),
        End::WriteFailed => {
            if drain_hub(u_rx, c_tx, wt).await {
                return;
            }
            Some((HUB_LOST, "hub connection lost"))
        }
        End::Closed | End::Gone => None,
    };
    if let Some((code, reason)) = to_client {
        let _ = tokio::time::timeout(WRITE_TIMEOUT, c_tx.send(client_close(code, reason))).await;
    }
    if !matches!(end, End::Closed | End::WriteFailed) {
        let _ = tokio::time::timeout(
            WRITE_TIMEOUT,
            u_tx.send(hub_close(GOING_AWAY, "client left")),
        )
        .await;
    }
    // Let the hub's answer to a close reach the client.
    drain_hub(u_rx, c_tx, wt).await;
}

fn client_close(code: u16, reason: &'static str) -> ws::Message {
    ws::Message::Close(Some(ws::CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// Reads and discards what the client still sends, until it closes or a moment passed.
async fn drain_client(c_rx: &mut futures::stream::SplitStream<WebSocket>) {
    let _ = tokio::time::timeout(CLOSE_DRAIN, async {
        while let Some(Ok(m)) = c_rx.next().await {
            if matches!(m, ws::Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

fn hub_close(code: u16, reason: &'static str) -> ts::Message {
    ts::Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    }))
}

/// After the client's side ended: passes on what the hub still sends for a moment; returns
/// whether that ended with the hub's close frame.
async fn drain_hub(
    u_rx: &mut futures::stream::SplitStream<Upstream>,
    c_tx: &mut futures::stream::SplitSink<WebSocket, ws::Message>,
    wt: Duration,
) -> bool {
    matches!(
        tokio::time::timeout(CLOSE_DRAIN, hub_to_client(u_rx, c_tx, wt)).await,
        Ok(End::Closed)
    )
}

async fn client_to_hub(
    c_rx: &mut futures::stream::SplitStream<WebSocket>,
    u_tx: &mut futures::stream::SplitSink<Upstream, ts::Message>,
    idle: Duration,
) -> End {
    loop {
        let msg = match tokio::time::timeout(idle, c_rx.next()).await {
            Err(_) => return End::Idle,
            Ok(None) => return End::Gone,
            Ok(Some(Err(e))) => {
                let too_big = std::error::Error::source(&e)
                    .and_then(|s| s.downcast_ref::<WsError>())
                    .is_some_and(|e| matches!(e, WsError::Capacity(_)));
                return if too_big { End::TooBig } else { End::Gone };
            }
            Ok(Some(Ok(m))) => m,
        };
        let (out, closed) = match msg {
            ws::Message::Text(t) => match ts::Utf8Bytes::try_from(bytes::Bytes::from(t)) {
                Ok(t) => (ts::Message::Text(t), false),
                Err(_) => return End::Gone,
            },
            ws::Message::Binary(b) => (ts::Message::Binary(b), false),
            // The client's pongs only prove it alive; the gateway answers the hub's pings.
            ws::Message::Ping(_) | ws::Message::Pong(_) => continue,
            ws::Message::Close(c) => (
                ts::Message::Close(c.map(|c| CloseFrame {
                    code: CloseCode::from(c.code),
                    reason:
                        ts::Utf8Bytes::try_from(bytes::Bytes::from(c.reason)).unwrap_or_default(),
                })),
                true,
            ),
        };
        match tokio::time::timeout(WRITE_TIMEOUT, u_tx.send(out)).await {
            Ok(Ok(())) if closed => return End::Closed,
            Ok(Ok(())) => {}
            _ => return End::WriteFailed,
        }
    }
}

async fn hub_to_client(
    u_rx: &mut futures::stream::SplitStream<Upstream>,
    c_tx: &mut futures::stream::SplitSink<WebSocket, ws::Message>,
    wt: Duration,
) -> End {
    loop {
        let msg = match u_rx.next().await {
            None => return End::Gone,
            Some(Err(WsError::Capacity(_))) => return End::TooBig,
            Some(Err(_)) => return End::Gone,
            Some(Ok(m)) => m,
        };
        let (out, closed) = match msg {
            ts::Message::Text(t) => match ws::Utf8Bytes::try_from(bytes::Bytes::from(t)) {
                Ok(t) => (ws::Message::Text(t), false),
                Err(_) => return End::Gone,
            },
            ts::Message::Binary(b) => (ws::Message::Binary(b), false),
            ts::Message::Ping(p) => (ws::Message::Ping(p), false),
            ts::Message::Pong(_) | ts::Message::Frame(_) => continue,
            ts::Message::Close(c) => (
                ws::Message::Close(c.map(|c| ws::CloseFrame {
                    code: u16::from(c.code),
                    reason:
                        ws::Utf8Bytes::try_from(bytes::Bytes::from(c.reason)).unwrap_or_default(),
                })),
                true,
            ),
        };
        match tokio::time::timeout(wt, c_tx.send(out)).await {
            Ok(Ok(())) if closed => return End::Closed,
            Ok(Ok(())) => {}
            _ => return End::WriteFailed,
        }
    }
}
