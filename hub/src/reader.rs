//! The reading half of a signed-in socket: the idle timeout, the frame rate and size limits,
//! the token's expiry, and the frames themselves, handled in order.
//!
//! A refused frame (over the rate or size limit, unreadable, or a message over its length) is
//! answered through [`Refusals`], at most one error frame per code per
//! `CAREHUB_HUB_ERROR_INTERVAL`; every other answer waits for room in the socket's queue, so a
//! burst slows this reader down (and the peer's sending with it) rather than filling the queue.

use crate::Hub;
use crate::conn::{expiry_instant, verify, welcome};
use crate::frames::{self, FrameError, Session};
use crate::refusals::{Refusals, Refused};
use crate::registry::Conn;
use carehub_nats::hub::{ClientFrame, FrameErrorCode, ServerFrame, close};
use futures::StreamExt as _;
use futures::stream::SplitStream;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

type Stream = SplitStream<WebSocketStream<TcpStream>>;

/// How long before expiry a `token_expiring` frame is sent.
const EXPIRY_WARNING: Duration = Duration::from_secs(30);

/// A token bucket for the frame rate limit.
struct Bucket {
    tokens: f64,
    last: Instant,
    rate: f64,
    burst: f64,
}

impl Bucket {
    fn refill(&mut self) {
        let now = Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
    }

    fn take(&mut self) -> bool {
        self.refill();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Milliseconds until a frame would be taken.
    fn retry_after_ms(&mut self) -> u64 {
        self.refill();
        let missing = (1.0 - self.tokens).max(0.0);
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a small non-negative number of milliseconds"
        )]
        let ms = (missing / self.rate * 1000.0).ceil() as u64;
        ms
    }
}

/// What the reader keeps between frames.
struct Reader {
    bucket: Bucket,
    refusals: Refusals,
    expires: Instant,
    warned: bool,
}

impl Reader {
    async fn refuse(&mut self, conn: &Conn, r: Refused) {
        let retry = self.bucket.retry_after_ms();
        if let Some(f) = self.refusals.refuse(r, Instant::now(), retry) {
            conn.reply(&f).await;
        }
    }

    async fn flush(&mut self, conn: &Conn) {
        let retry = self.bucket.retry_after_ms();
        for f in self.refusals.flush(Instant::now(), retry) {
            conn.reply(&f).await;
        }
    }

    /// When the expiry warning or the expiry is due.
    fn expiry_timer(&self) -> Instant {
        if self.warned {
            self.expires
        } else {
            self.expires
                .checked_sub(EXPIRY_WARNING)
                .unwrap_or(self.expires)
        }
    }
}

/// Whether an error of this code is a refusal, coalesced by [`Refusals`].
fn is_refusal(code: FrameErrorCode) -> bool {
    [
        FrameErrorCode::RateLimited,
        FrameErrorCode::PayloadTooLarge,
        FrameErrorCode::BadFrame,
    ]
    .contains(&code)
}

/// What the next read brought.
enum Read {
    Text(Utf8Bytes),
    Binary,
    Skip,
    End,
}

/// Reads and handles frames until the socket closes or should close.
///
/// Everything awaited here but the wait for the next event is boxed: this future is part of
/// the socket's task for its whole life, so it holds only the wait, and the work an event
/// brings is allocated while it runs.
pub(crate) async fn read_loop(hub: &Hub, conn: &Arc<Conn>, stream: &mut Stream, request_id: &str) {
    let cfg = hub.config();
    let mut session = Session::new(conn.clone(), request_id.to_owned());
    let mut r = Reader {
        bucket: Bucket {
            tokens: f64::from(cfg.frame_burst),
            last: Instant::now(),
            rate: f64::from(cfg.frames_per_sec),
            burst: f64::from(cfg.frame_burst),
        },
        refusals: Refusals::new(cfg.error_interval),
        expires: expiry_instant(conn.principal().expires_at),
        warned: false,
    };
    let frames_in =
        metrics::counter!("carehub_hub_frames_total", "component" => "hub", "direction" => "in");
    let far = Instant::now() + Duration::from_secs(86_400 * 365);
    loop {
        let due = r.refusals.due();
        let msg = tokio::select! {
            biased;
            () = conn.closing().cancelled() => return,
            () = tokio::time::sleep_until(r.expiry_timer()) => {
                if r.warned {
                    conn.close(close::TOKEN_EXPIRED);
                    return;
                }
                r.warned = true;
                let f = ServerFrame::TokenExpiring { expires_at: conn.principal().expires_at };
                Box::pin(conn.reply(&f)).await;
                continue;
            }
            () = tokio::time::sleep_until(due.unwrap_or(far)), if due.is_some() => {
                Box::pin(r.flush(conn)).await;
                continue;
            }
            m = tokio::time::timeout(cfg.idle_timeout, stream.next()) => m,
        };
        let text = match classify(conn, msg) {
            Read::Text(t) => t,
            Read::Binary => {
                frames_in.increment(1);
                let refused = Refused::of(FrameErrorCode::BadFrame, "frames are JSON text", "");
                Box::pin(r.refuse(conn, refused)).await;
                continue;
            }
            Read::Skip => continue,
            Read::End => return,
        };
        frames_in.increment(1);
        if let Some(refused) = admit(&mut r, cfg, &text) {
            Box::pin(r.refuse(conn, refused)).await;
            continue;
        }
        Box::pin(handle_text(
            hub,
            conn,
            &mut session,
            &mut r,
            &text,
            request_id,
        ))
        .await;
    }
}

/// Sorts what the stream gave; closes the socket for the conditions that end it.
fn classify(
    conn: &Conn,
    msg: Result<Option<Result<Message, WsError>>, tokio::time::error::Elapsed>,
) -> Read {
    match msg {
        Err(_) => {
            conn.close(close::IDLE);
            Read::End
        }
        Ok(None | Some(Ok(Message::Close(_)))) => Read::End,
        Ok(Some(Err(WsError::Capacity(_)))) => {
            conn.close(close::TOO_BIG);
            Read::End
        }
        Ok(Some(Err(e))) => {
            tracing::debug!(error = %e, "websocket read failed");
            Read::End
        }
        Ok(Some(Ok(Message::Text(t)))) => Read::Text(t),
        Ok(Some(Ok(Message::Binary(_)))) => Read::Binary,
        Ok(Some(Ok(_))) => Read::Skip,
    }
}

/// The rate and size limits: the refusal of a frame over either, or `None` to handle it.
fn admit(r: &mut Reader, cfg: &crate::HubConfig, text: &str) -> Option<Refused> {
    if !r.bucket.take() {
        return Some(Refused::of(
            FrameErrorCode::RateLimited,
            "too many frames; this one was dropped",
            text,
        ));
    }
    if text.len() > cfg.max_frame_bytes {
        let m = format!("frames are at most {} bytes", cfg.max_frame_bytes);
        return Some(Refused::of(FrameErrorCode::PayloadTooLarge, m, text));
    }
    None
}

/// Decodes and handles one admitted frame; answers its error, if any.
async fn handle_text(
    hub: &Hub,
    conn: &Arc<Conn>,
    session: &mut Session,
    r: &mut Reader,
    text: &str,
    request_id: &str,
) {
    let frame = match serde_json::from_str::<ClientFrame>(text) {
        Ok(f) => f,
        Err(e) => {
            let m = format!("unreadable frame: {e}");
            r.refuse(conn, Refused::of(FrameErrorCode::BadFrame, m, text))
                .await;
            return;
        }
    };
    let kind = frame.kind();
    let client_id = match &frame {
        ClientFrame::ChatSend { client_id, .. } => Some(client_id.clone()),
        _ => None,
    };
    // Inline: the caller boxes this whole future, so the handlers' large futures are
    // allocated only while a frame is handled.
    let result = match frame {
        ClientFrame::Auth { token } => reauth(hub, conn, &token, request_id).await.map(|exp| {
            r.expires = expiry_instant(exp);
            r.warned = false;
        }),
        other => frames::handle(hub, session, other).await,
    };
    let Err(e) = result else { return };
    if is_refusal(e.code) {
        let refused = Refused {
            code: e.code,
            message: e.message,
            request: Some(kind.to_owned()),
            client_id,
        };
        r.refuse(conn, refused).await;
    } else {
        let f = ServerFrame::Error {
            code: e.code,
            message: e.message,
            request: Some(kind.to_owned()),
            client_id,
            last_client_id: None,
            count: None,
            retry_after_ms: None,
        };
        conn.reply(&f).await;
    }
}

/// A fresh token for the same user: replaces the socket's principal; returns its expiry.
async fn reauth(
    hub: &Hub,
    conn: &Arc<Conn>,
    token: &str,
    request_id: &str,
) -> Result<i64, FrameError> {
    let p = verify(hub, token, request_id).await?;
    if p.user_id != conn.user_id {
        return Err(FrameError::new(
            FrameErrorCode::Unauthorized,
            "a socket stays with the user it signed in as",
        ));
    }
    let exp = p.expires_at;
    conn.set_principal(p);
    welcome(hub, conn);
    Ok(exp)
}
