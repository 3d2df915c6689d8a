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

use crate::ops::{self, FrameError, Session};
use crate::registry::Conn;
use crate::{Hub, origin};
use carehub_nats::auth::Verify;
use carehub_nats::comms::{ClientFrame, ServerFrame, close, code};
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
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tracing::Instrument as _;

type Sink = SplitSink<WebSocketStream<TcpStream>, Message>;
type Stream = SplitStream<WebSocketStream<TcpStream>>;

/// How long before expiry a `token_expiring` frame is sent.
const EXPIRY_WARNING: Duration = Duration::from_secs(30);

/// A human reason for each close code.
pub fn close_reason(code: u16) -> &'static str {
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
        .read_buffer_size(4_096)
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
pub async fn serve(hub: Hub, stream: TcpStream) {
    let cfg = hub.config().clone();
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
        tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(ws_config(&hub)));
    let ws = match tokio::time::timeout(hub.config().auth_timeout, upgrade).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "websocket upgrade failed");
            return;
        }
        Err(_) => return,
    };
    let request_id = request_id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let span = tracing::info_span!("ws", request_id = %request_id);
    socket(hub, ws, request_id).instrument(span).await;
}

/// An upgraded socket, from the `auth` handshake to its close. Every call made for it carries
/// `request_id`: the gateway's id of the `/ws` request, or a fresh one.
async fn socket(hub: Hub, ws: WebSocketStream<TcpStream>, request_id: String) {
    let (mut sink, mut stream) = ws.split();
    let principal = match handshake(&hub, &mut stream, &request_id).await {
        Ok(p) => p,
        Err((close_code, err)) => {
            let frame = ServerFrame::error(err.code, err.message, Some("auth"));
            let wt = hub.config().write_timeout;
            if let Ok(text) = serde_json::to_string(&frame) {
                let _ = tokio::time::timeout(wt, sink.send(Message::text(text))).await;
            }
            let _ = tokio::time::timeout(wt, sink.send(close_message(close_code))).await;
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
        hub.presence().online(&conn.user_id).await;
    }
    welcome(&hub, &conn);
    let writer = tokio::spawn(write_loop(sink, rx, conn.clone(), hub.clone()).in_current_span());
    read_loop(&hub, &conn, &mut stream, &request_id).await;
    conn.close(1000);
    let reason = disconnect_reason(conn.close_code().unwrap_or(1000));
    metrics::counter!("carehub_hub_disconnects_total", "component" => "hub", "reason" => reason)
        .increment(1);
    hub.slot_watches().forget(conn.id);
    if hub.registry().unregister(&conn) {
        hub.presence().offline(&conn.user_id).await;
    }
    let _ = writer.await;
}

fn welcome(hub: &Hub, conn: &Conn) {
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
                FrameError::new(code::UNAUTHORIZED, "send an auth frame first"),
            ));
        }
        Ok(None) => {
            return Err((
                close::UNAUTHORIZED,
                FrameError::new(code::UNAUTHORIZED, "send an auth frame first"),
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
            FrameError::new(code::UNAUTHORIZED, "the first frame must be auth"),
        )),
    }
}

/// Asks the auth service who a token belongs to.
async fn verify(hub: &Hub, token: &str, request_id: &str) -> Result<Principal, FrameError> {
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
            code::UNAUTHORIZED,
            "the account is not active",
        )),
        Err(carehub_nats::BusError::Remote(e)) => {
            Err(FrameError::new(code::UNAUTHORIZED, e.message))
        }
        Err(e) => {
            tracing::warn!(error = %e, "token verification unavailable");
            Err(FrameError::new(
                code::UNAVAILABLE,
                "sign-in is unavailable right now; try again shortly",
            ))
        }
    }
}

/// A token bucket for the frame rate limit.
struct Bucket {
    tokens: f64,
    last: Instant,
    rate: f64,
    burst: f64,
}

impl Bucket {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn expiry_instant(expires_at: i64) -> Instant {
    let left_ms = expires_at
        .saturating_mul(1000)
        .saturating_sub(now_ms())
        .max(0);
    Instant::now() + Duration::from_millis(u64::try_from(left_ms).unwrap_or(0))
}

fn send_error(conn: &Conn, e: FrameError, request: Option<&str>, client_id: Option<String>) {
    conn.send(&ServerFrame::Error {
        code: e.code.to_owned(),
        message: e.message,
        request: request.map(str::to_owned),
        client_id,
    });
}

async fn read_loop(hub: &Hub, conn: &Arc<Conn>, stream: &mut Stream, request_id: &str) {
    let cfg = hub.config().clone();
    let mut session = Session::new(conn.clone(), request_id.to_owned());
    let mut bucket = Bucket {
        tokens: f64::from(cfg.frame_burst),
        last: Instant::now(),
        rate: f64::from(cfg.frames_per_sec),
        burst: f64::from(cfg.frame_burst),
    };
    let mut expires = expiry_instant(conn.principal().expires_at);
    let mut warned = false;
    let frames_in =
        metrics::counter!("carehub_hub_frames_total", "component" => "hub", "direction" => "in");
    loop {
        let timer = if warned {
            expires
        } else {
            expires.checked_sub(EXPIRY_WARNING).unwrap_or(expires)
        };
        let msg = tokio::select! {
            biased;
            () = conn.closing().cancelled() => return,
            () = tokio::time::sleep_until(timer) => {
                if warned {
                    conn.close(close::TOKEN_EXPIRED);
                    return;
                }
                warned = true;
                conn.send(&ServerFrame::TokenExpiring { expires_at: conn.principal().expires_at });
                continue;
            }
            m = tokio::time::timeout(cfg.idle_timeout, stream.next()) => m,
        };
        let text = match msg {
            Err(_) => {
                conn.close(close::IDLE);
                return;
            }
            Ok(None | Some(Ok(Message::Close(_)))) => return,
            Ok(Some(Err(WsError::Capacity(_)))) => {
                conn.close(close::TOO_BIG);
                return;
            }
            Ok(Some(Err(e))) => {
                tracing::debug!(error = %e, "websocket read failed");
                return;
            }
            Ok(Some(Ok(Message::Text(t)))) => {
                frames_in.increment(1);
                t
            }
            Ok(Some(Ok(Message::Binary(_)))) => {
                frames_in.increment(1);
                send_error(
                    conn,
                    FrameError::new(code::BAD_FRAME, "frames are JSON text"),
                    None,
                    None,
                );
                continue;
            }
            Ok(Some(Ok(_))) => continue,
        };
        if !bucket.take() {
            let e = FrameError::new(code::RATE_LIMITED, "too many frames; this one was dropped");
            send_error(conn, e, None, None);
            continue;
        }
        if text.len() > cfg.max_frame_bytes {
            let e = FrameError::new(
                code::TOO_LARGE,
                format!("frames are at most {} bytes", cfg.max_frame_bytes),
            );
            send_error(conn, e, None, None);
            continue;
        }
        let frame = match serde_json::from_str::<ClientFrame>(&text) {
            Ok(f) => f,
            Err(e) => {
                send_error(
                    conn,
                    FrameError::new(code::BAD_FRAME, format!("unreadable frame: {e}")),
                    None,
                    None,
                );
                continue;
            }
        };
        let kind = frame.kind();
        let client_id = match &frame {
            ClientFrame::ChatSend { client_id, .. } => Some(client_id.clone()),
            _ => None,
        };
        let result = match frame {
            ClientFrame::Auth { token } => Box::pin(reauth(hub, conn, &token, request_id))
                .await
                .map(|exp| {
                    expires = expiry_instant(exp);
                    warned = false;
                }),
            // Boxed: the handlers' futures are large, and inline they would be part of every
            // idle socket's task for its whole life.
            other => Box::pin(ops::handle(hub, &mut session, other)).await,
        };
        if let Err(e) = result {
            send_error(conn, e, Some(kind), client_id);
        }
    }
}

/// A fresh token for the same user: replaces the socket's principal; returns its expiry.
async fn reauth(hub: &Hub, conn: &Conn, token: &str, request_id: &str) -> Result<i64, FrameError> {
    let p = verify(hub, token, request_id).await?;
    if p.user_id != conn.user_id {
        return Err(FrameError::new(
            code::UNAUTHORIZED,
            "a socket stays with the user it signed in as",
        ));
    }
    let exp = p.expires_at;
    conn.set_principal(p);
    welcome(hub, conn);
    Ok(exp)
}

async fn write_loop(mut sink: Sink, mut rx: mpsc::Receiver<Utf8Bytes>, conn: Arc<Conn>, hub: Hub) {
    let cfg = hub.config().clone();
    let wt = cfg.write_timeout;
    let mut ping = tokio::time::interval_at(Instant::now() + cfg.ping_interval, cfg.ping_interval);
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
                tracing::info!(conn = conn.id, "dropping a socket whose writes are stuck");
                conn.close(close::TOO_SLOW);
                return;
            }
        }
    }
    let code = conn.close_code().unwrap_or(1000);
    let _ = tokio::time::timeout(wt, sink.send(close_message(code))).await;
    let _ = tokio::time::timeout(wt, sink.close()).await;
}
