//! A websocket client of the hub's JSON frames, with the hub's own small buffers (a socket of
//! the load client costs little), optionally bound to a chosen source address.

use anyhow::Context as _;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub(super) type Socket = WebSocketStream<TcpStream>;

/// How long a setup step may wait for a frame.
pub(super) const FRAME_DEADLINE: Duration = Duration::from_secs(30);

fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4_096)
        .write_buffer_size(0)
}

/// Opens `ws://<addr>/ws` (no auth yet), from `source` when given.
///
/// # Errors
/// When the TCP connection or the upgrade fails.
pub(super) async fn open(addr: SocketAddr, source: Option<Ipv4Addr>) -> anyhow::Result<Socket> {
    let socket = TcpSocket::new_v4().context("creating a socket")?;
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::from((ip, 0)))
            .with_context(|| format!("binding source address {ip}"))?;
    }
    let stream = socket
        .connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (ws, _) = tokio_tungstenite::client_async_with_config(
        format!("ws://{addr}/ws"),
        stream,
        Some(config()),
    )
    .await
    .context("websocket upgrade")?;
    Ok(ws)
}

/// Opens and authenticates; returns once `welcome` arrived.
///
/// # Errors
/// When the socket cannot be opened or the hub refuses the token.
pub(super) async fn signed_in(
    addr: SocketAddr,
    source: Option<Ipv4Addr>,
    token: &str,
) -> anyhow::Result<Socket> {
    let mut ws = open(addr, source).await?;
    send(&mut ws, &json!({"type": "auth", "token": token})).await?;
    let f = next_of(&mut ws, &["welcome"]).await?;
    anyhow::ensure!(f["type"] == "welcome", "auth refused: {f}");
    Ok(ws)
}

/// Sends one frame.
///
/// # Errors
/// When the socket is closed.
pub(super) async fn send(ws: &mut Socket, frame: &Value) -> anyhow::Result<()> {
    ws.send(Message::text(frame.to_string()))
        .await
        .context("sending a frame")
}

/// The next JSON frame (pings and pongs skipped).
///
/// # Errors
/// On close, a read error, an unreadable frame or after [`FRAME_DEADLINE`].
pub(super) async fn next(ws: &mut Socket) -> anyhow::Result<Value> {
    loop {
        let m = tokio::time::timeout(FRAME_DEADLINE, ws.next())
            .await
            .context("no frame within the deadline")?
            .context("the socket closed")?
            .context("reading a frame")?;
        match m {
            Message::Text(t) => {
                return serde_json::from_str(&t).context("a frame that is not JSON");
            }
            Message::Close(c) => anyhow::bail!("the socket closed: {c:?}"),
            _ => {}
        }
    }
}

/// The next frame of one of `kinds` (or an `error` frame); others are skipped.
///
/// # Errors
/// As [`next`].
pub(super) async fn next_of(ws: &mut Socket, kinds: &[&str]) -> anyhow::Result<Value> {
    loop {
        let f = next(ws).await?;
        let t = f["type"].as_str().unwrap_or_default();
        if t == "error" || kinds.contains(&t) {
            return Ok(f);
        }
    }
}

/// Like [`next_of`], but an `error` frame is an error.
///
/// # Errors
/// As [`next`], or when the hub answered with an error frame.
pub(super) async fn expect(ws: &mut Socket, kind: &str) -> anyhow::Result<Value> {
    let f = next_of(ws, &[kind]).await?;
    anyhow::ensure!(f["type"] == kind, "expected {kind}, got {f}");
    Ok(f)
}
