//! One websocket: the upgrade (path and `Origin` checks), the `auth` handshake, then a reader
//! (this task) and a writer task joined by the socket's bounded queue.
//!
//! The reader enforces the idle timeout, the frame size and rate limits and the token's expiry,
//! and handles frames in order. The writer writes queued frames, pings every ping interval, and
//! on close sends the close frame with the code that was asked for. A write blocked for longer
//! than the write timeout drops the connection.
//!
//! Metrics: `carehub_websockets_open` (signed-in sockets), `carehub_hub_frames_total` by
//! direction, and `carehub_hub_disconnects_total` by reason (`too_slow` for a client that does
//! not read its frames).

use crate::frames::FrameError;
use crate::registry::Conn;
use crate::{Hub, origin};
use carehub_nats::auth::Verify;
use carehub_nats::hub::{ClientFrame, FrameErrorCode, ServerFrame, close};
use carehub_nats::{CallContext, Principal, UserStatus};
use carehub_runtime::db::now_ms;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt as _, StreamExt as _};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tracing::Instrument as _;

type Sink = SplitSink<WebSocketStream<TcpStream>, Message>;
type Stream = SplitStream<WebSocketStream<TcpStream>>;

/// How long a socket closed as too slow gets to take its close frame before the connection
/// is dropped.
const CLOSE_LINGER: Duration = Duration::from_secs(5);
/// How long the hub keeps reading after its close frame, for the peer's answer: closing a TCP
/// connection with unread data resets it, and the peer could lose the close frame.
const CLOSE_DRAIN: Duration = Duration::from_secs(2);
/// Bytes a socket reads from the kernel at a time. The read buffer starts at this size and is
/// zero-filled on every read, so it is a large part of an idle socket's memory: 1 KiB holds a
/// typical chat or signaling frame in one read. A larger frame (up to the frame limit) is read
/// in 1 KiB steps into a buffer grown to its size, which the socket then keeps.
const READ_BUFFER: usize = 1_024;

/// A human reason for each close code.
pub(crate) fn close_reason(code: u16) -> &'static str {
    match code {
        close::GOING_AWAY => "hub node shutting down",
        close::TOO_BIG => "frame too big",
        close::UNAUTHORIZED => "unauthorized",
        close::AUTH_TIMEOUT => "no auth frame in time",
        close::REVOKED => "token revoked",
        close::TOKEN_EXPIRED => "token expired",
        close::TOO_SLOW => "too slow",
        close::IDLE => "idle timeout",
        close::INTERNAL => "internal error",
        _ => "bye",
    }
}

/// The `reason` label of a socket closed with `code`.
fn disconnect_reason(code: u16) -> &'static str {
    match code {
        1000 => "normal",
        close::GOING_AWAY => "going_away",
        close::TOO_BIG => "too_big",
        close::REVOKED => "revoked",
        close::TOKEN_EXPIRED => "token_expired",
        close::TOO_SLOW => "too_slow",
        close::IDLE => "idle",
        close::INTERNAL => "internal",
        _ => "other",
    }
}

fn ws_config(hub: &Hub) -> WebSocketConfig {
    let hard = (hub.config().max_frame_bytes * 4).max(65_536);
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(hard * 2)
        .max_message_size(Some(hard))
        .max_frame_size(Some(hard))
}

fn refuse(status: StatusCode, why: &str) -> ErrorResponse {
    let mut r = ErrorResponse::new(Some(why.to_owned()));
    *r.status_mut() = status;
    r
}

/// Serves one accepted TCP connection until it closes.
///
/// What runs once per socket (the upgrade, the `auth` handshake, presence updates) runs in
/// futures of its own (boxed), so the task that lives as long as the socket holds only what
/// reading and handling frames needs: tens of thousands of idle sockets each keep that task.
pub(crate) async fn serve(hub: Hub, stream: TcpStream) {
    let Some((ws, request_id)) = Box::pin(upgrade(&hub, stream)).await else {
        return;
    };
    let request_id = request_id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let span = tracing::info_span!("ws", request_id = %request_id);
    let (sink, stream) = ws.split();
    socket(hub, sink, stream, request_id).instrument(span).await;
}

/// The websocket upgrade, with its path and `Origin` checks; the gateway's request id, if it
/// sent a sane one.
async fn upgrade(
    hub: &Hub,
    stream: TcpStream,
) -> Option<(WebSocketStream<TcpStream>, Option<String>)> {
    let cfg = hub.config();
    let mut request_id = None;
    #[expect(
        clippy::result_large_err,
        reason = "tungstenite fixes the handshake callback's error type"
    )]
    let check = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        request_id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|id| carehub_nats::rpc::is_sane_request_id(id))
            .map(str::to_owned);
        if req.uri().path() != "/ws" {
            return Err(refuse(StatusCode::NOT_FOUND, "not found"));
        }
        let origin = req
            .headers()
            .get("origin")
            .map(|v| v.to_str().unwrap_or("\u{fffd}"));
        if !origin::allowed(origin, &cfg.allowed_origins, cfg.public_url.as_deref()) {
            tracing::info!(origin = ?origin, "refused a websocket from a foreign origin");
            return Err(refuse(StatusCode::FORBIDDEN, "origin not allowed"));
        }
        Ok(resp)
    };
    let upgrade =
        tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(ws_config(hub)));
    match tokio::time::timeout(cfg.auth_timeout, upgrade).await {
        Ok(Ok(ws)) => Some((ws, request_id)),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "websocket upgrade failed");
            None
        }
        Err(_) => None,
    }
}

/// An upgraded socket, from the `auth` handshake to its close. Every call made for it carries
/// `request_id`: the gateway's id of the `/ws` request, or a fresh one.
async fn socket(hub: Hub, mut sink: Sink, mut stream: Stream, request_id: String) {
    let principal = match Box::pin(handshake(&hub, &mut stream, &request_id)).await {
        Ok(p) => p,
        Err((close_code, err)) => {
            Box::pin(refuse_auth(&hub, &mut sink, close_code, err)).await;
            return;
        }
    };
    let (tx, rx) = mpsc::channel(hub.config().queue_frames);
    let _open = carehub_runtime::metrics::Held::new(metrics::gauge!(
        "carehub_websockets_open",
        "component" => "hub"
    ));
    let conn = Arc::new(Conn::new(hub.registry().next_id(), principal, tx));
    let first = hub.registry().register(conn.clone()).await;
    if first {
        Box::pin(hub.presence().sync(&conn.user_id, hub.registry())).await;
    }
    welcome(&hub, &conn);
    crate::presence::follow::on_sign_in(&hub, &conn, &request_id);
    let writer = tokio::spawn(write_loop(sink, rx, conn.clone(), hub.clone()).in_current_span());
    crate::reader::read_loop(&hub, &conn, &mut stream, &request_id).await;
    conn.close(1000);
    let reason = disconnect_reason(conn.close_code().unwrap_or(1000));
    metrics::counter!("carehub_hub_disconnects_total", "component" => "hub", "reason" => reason)
        .increment(1);
    hub.slot_watches().forget(conn.id);
    hub.presence_watches().forget(conn.id);
    if hub.registry().unregister(&conn) {
        Box::pin(hub.presence().sync(&conn.user_id, hub.registry())).await;
    }
    let _ = writer.await;
    drain(&mut stream).await;
}

/// Answers a failed `auth` handshake: its error frame, then the close frame.
async fn refuse_auth(hub: &Hub, sink: &mut Sink, close_code: u16, err: FrameError) {
    let frame = ServerFrame::error(err.code, err.message, Some("auth"));
    let wt = hub.config().write_timeout;
    if let Ok(text) = serde_json::to_string(&frame) {
        let _ = tokio::time::timeout(wt, sink.send(Message::text(text))).await;
    }
    let _ = tokio::time::timeout(wt, sink.send(close_message(close_code))).await;
}

/// Reads and discards what the peer still sends after the close frame, until it closes too.
async fn drain(stream: &mut Stream) {
    let _ = tokio::time::timeout(CLOSE_DRAIN, async {
        while let Some(Ok(m)) = stream.next().await {
            if m.is_close() {
                break;
            }
        }
    })
    .await;
}

pub(crate) fn welcome(hub: &Hub, conn: &Arc<Conn>) {
    let p = conn.principal();
    conn.send(&ServerFrame::Welcome {
        user_id: p.user_id,
        role: p.role.as_str().to_owned(),
        expires_at: p.expires_at,
        node: hub.config().node_id.clone(),
    });
}

fn close_message(code: u16) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: close_reason(code).into(),
    }))
}

/// Waits for the `auth` frame and verifies its token.
async fn handshake(
    hub: &Hub,
    stream: &mut Stream,
    request_id: &str,
) -> Result<Principal, (u16, FrameError)> {
    let first = tokio::time::timeout(hub.config().auth_timeout, async {
        loop {
            match stream.next().await {
                Some(Ok(Message::Text(t))) => return Some(t),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                _ => return None,
            }
        }
    })
    .await;
    let text = match first {
        Err(_) => {
            return Err((
                close::AUTH_TIMEOUT,
                FrameError::new(FrameErrorCode::Unauthorized, "send an auth frame first"),
            ));
        }
        Ok(None) => {
            return Err((
                close::UNAUTHORIZED,
                FrameError::new(FrameErrorCode::Unauthorized, "send an auth frame first"),
            ));
        }
        Ok(Some(t)) => t,
    };
    match serde_json::from_str::<ClientFrame>(&text) {
        Ok(ClientFrame::Auth { token }) => verify(hub, &token, request_id)
            .await
            .map_err(|e| (close::UNAUTHORIZED, e)),
        _ => Err((
            close::UNAUTHORIZED,
            FrameError::new(FrameErrorCode::Unauthorized, "the first frame must be auth"),
        )),
    }
}

/// Asks the auth service who a token belongs to.
pub(crate) async fn verify(
    hub: &Hub,
    token: &str,
    request_id: &str,
) -> Result<Principal, FrameError> {
    let ctx = CallContext {
        request_id: request_id.to_owned(),
        ..CallContext::default()
    };
    match hub
        .bus()
        .request(
            &ctx,
            &Verify {
                token: token.to_owned(),
            },
        )
        .await
    {
        Ok(p) if p.status == UserStatus::Active => Ok(p),
        Ok(_) => Err(FrameError::new(
            FrameErrorCode::Unauthorized,
            "the account is not active",
        )),
        Err(carehub_bus::BusError::Remote(e)) => {
            Err(FrameError::new(FrameErrorCode::Unauthorized, e.message))
        }
        Err(e) => {
            tracing::warn!(error = %e, "token verification unavailable");
            Err(FrameError::new(
                FrameErrorCode::ServiceUnavailable,
                "sign-in is unavailable right now; try again shortly",
            ))
        }
    }
}

pub(crate) fn expiry_instant(expires_at: i64) -> Instant {
    let left_ms = expires_at
        .saturating_mul(1000)
        .saturating_sub(now_ms())
        .max(0);
    Instant::now() + Duration::from_millis(u64::try_from(left_ms).unwrap_or(0))
}

async fn write_loop(mut sink: Sink, mut rx: mpsc::Receiver<Utf8Bytes>, conn: Arc<Conn>, hub: Hub) {
    let (wt, every) = (hub.config().write_timeout, hub.config().ping_interval);
    let mut ping = tokio::time::interval_at(Instant::now() + every, every);
    let frames_out =
        metrics::counter!("carehub_hub_frames_total", "component" => "hub", "direction" => "out");
    loop {
        let msg = tokio::select! {
            biased;
            () = conn.closing().cancelled() => break,
            m = rx.recv() => match m {
                Some(t) => {
                    frames_out.increment(1);
                    Message::Text(t)
                }
                None => break,
            },
            _ = ping.tick() => Message::Ping(bytes::Bytes::new()),
        };
        match tokio::time::timeout(wt, sink.send(msg)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "websocket write failed");
                conn.close(close::INTERNAL);
                return;
            }
            Err(_) => {
                tracing::info!(conn = conn.id, "closing a socket that does not read");
                conn.close(close::TOO_SLOW);
                break;
            }
        }
    }
    let code = conn.close_code().unwrap_or(1000);
    // A peer that did not read gets a last chance to take its close frame.
    let linger = if code == close::TOO_SLOW {
        CLOSE_LINGER
    } else {
        wt
    };
    let _ = tokio::time::timeout(linger, sink.send(close_message(code))).await;
    let _ = tokio::time::timeout(wt, sink.close()).await;
}

#[cfg(test)]
mod tests {
    /// The size of the future that `f` returns, without calling it.
    fn future_size<A, B, F>(_: fn(A, B) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    fn future_size4<A, B, C, D, F>(_: fn(A, B, C, D) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every idle socket keeps its two tasks for its whole life, so what their futures hold is
    /// a large part of the hub's memory per connection (docs/BENCHMARKS.md). With the one-time
    /// steps and each frame's work boxed, the socket's is 1,368 bytes (1,360 in a release
    /// build; 3,696 before) and the writer's 424 on Rust 1.95; an inline handshake alone adds
    /// about 800.
    #[test]
    fn an_idle_sockets_tasks_hold_only_the_wait() {
        let socket = future_size(super::serve);
        let writer = future_size4(super::write_loop);
        assert!(socket <= 1_600, "the socket's task is {socket} bytes");
        assert!(writer <= 512, "the writer's task is {writer} bytes");
    }
}
