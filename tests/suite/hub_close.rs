//! Close codes a client can cause arrive through the gateway as the hub sends them: the same
//! code and reason directly and through the gateway (the suite shortens the auth, token and
//! idle timeouts).

use crate::harness::{Clinic, unique_email};
use crate::hub::{DEADLINE, Socket, Ws, clinic, session_of};
use crate::support::wait;
use carehub::system::Component;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

fn gateway_ws(base: &str) -> String {
    format!("{}/ws", base.replacen("http://", "ws://", 1))
}

/// Reads until the close frame; its code and reason (`None` when the connection ended without
/// one).
async fn close_frame(socket: &mut Socket) -> Option<(u16, String)> {
    loop {
        let m = tokio::time::timeout(DEADLINE, socket.next())
            .await
            .expect("closed before the deadline");
        match m {
            Some(Ok(Message::Close(c))) => {
                return c.map(|c| (u16::from(c.code), c.reason.to_string()));
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum How {
    Normal,
    TooBig,
    BadToken,
    NoAuth,
    Logout,
    Expired,
    Idle,
}

/// Causes `how` on a socket at `url`; returns the close frame the client got.
async fn cause(clinic: &Clinic, url: &str, how: How) -> Option<(u16, String)> {
    let email = unique_email("close");
    clinic.patient(&email).await;
    let (token, _) = session_of(clinic, &email).await;
    let mut ws = match how {
        How::BadToken | How::NoAuth => Ws::open(url, None).await.unwrap(),
        _ => Ws::signed_in(url, &token).await,
    };
    match how {
        How::Normal => {
            let bye = CloseFrame {
                code: CloseCode::Normal,
                reason: "bye".into(),
            };
            ws.socket.send(Message::Close(Some(bye))).await.unwrap();
        }
        How::TooBig => ws.send_raw(&"x".repeat(70 * 1024)).await,
        How::BadToken => ws.send(json!({"type": "auth", "token": "nope"})).await,
        How::Logout => {
            let r = clinic
                .http
                .post(clinic.url("/api/auth/logout"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
        How::NoAuth | How::Expired | How::Idle => {}
    }
    close_frame(&mut ws.socket).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_close_code_a_client_can_cause_arrives_through_the_gateway_unchanged() {
    let clinic = clinic(
        crate::harness::Backend::Sqlite,
        &[
            ("CAREHUB_HUB_AUTH_TIMEOUT", "1"),
            ("CAREHUB_ACCESS_TOKEN_TTL", "3"),
        ],
    )
    .await;
    let cases = [
        (How::Normal, 1000),
        (How::TooBig, 1009),
        (How::BadToken, 4001),
        (How::NoAuth, 4002),
        (How::Logout, 4003),
        (How::Expired, 4004),
    ];
    let (direct, through) = (clinic.hub_url(), gateway_ws(&clinic.base));
    for (how, code) in cases {
        let d = cause(&clinic, &direct, how).await;
        let g = cause(&clinic, &through, how).await;
        assert_eq!(d.as_ref().map(|c| c.0), Some(code), "{how:?} directly");
        assert_eq!(g, d, "{how:?} through the gateway");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_clients_stopping_hub_nodes_and_lost_ones_close_as_the_protocol_says() {
    // No pings, so a client that sends nothing is idle.
    let mut clinic = clinic(
        crate::harness::Backend::Sqlite,
        &[
            ("CAREHUB_HUB_IDLE_TIMEOUT", "3"),
            ("CAREHUB_HUB_PING_INTERVAL", "3600"),
        ],
    )
    .await;
    let d = cause(&clinic, &clinic.hub_url(), How::Idle).await;
    let g = cause(&clinic, &gateway_ws(&clinic.base), How::Idle).await;
    assert_eq!(d, Some((4009, "idle timeout".to_owned())));
    assert_eq!(g, d, "idle through the gateway");

    let port = crate::support::net::free_port();
    let addr = format!("127.0.0.1:{port}");
    let node_url = format!("ws://{addr}/ws");
    let gateway = clinic
        .start_more(
            &[
                ("CAREHUB_HUB_URL", node_url.as_str()),
                ("CAREHUB_GATEWAY_ADDR", "127.0.0.1:0"),
            ],
            &[Component::Gateway],
        )
        .await
        .unwrap();
    let email = unique_email("stop");
    clinic.patient(&email).await;
    let (token, _) = session_of(&clinic, &email).await;
    let start = |clinic: &Clinic| clinic.spawn_child("hub", &[("CAREHUB_HUB_ADDR", addr.as_str())]);
    let listening = || async {
        wait::listening("the child hub node listens", port, DEADLINE).await;
    };

    let child = start(&clinic);
    listening().await;
    let mut direct = Ws::signed_in(&node_url, &token).await;
    let mut through = Ws::signed_in(&gateway_ws(&gateway), &token).await;
    assert!(clinic.stop_child(child).await, "the node stops cleanly");
    let want = Some((1001, "hub node shutting down".to_owned()));
    assert_eq!(close_frame(&mut direct.socket).await, want);
    assert_eq!(close_frame(&mut through.socket).await, want);

    // A node that vanishes sends no close frame: the gateway says so with 1014 (which
    // tungstenite refuses as a code, so this client reads the frames itself).
    let child = start(&clinic);
    listening().await;
    let mut raw = RawClient::signed_in(&gateway_ws(&gateway), &token).await;
    clinic.kill_child(child);
    assert_eq!(raw.close().await, (1014, "hub connection lost".to_owned()));
}

/// A websocket client on a bare TCP stream that takes any close code.
struct RawClient {
    tcp: tokio::net::TcpStream,
}

impl RawClient {
    async fn signed_in(url: &str, token: &str) -> Self {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let addr = url.trim_start_matches("ws://").trim_end_matches("/ws");
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(tcp.read_u8().await.unwrap());
        }
        assert!(head.starts_with(b"HTTP/1.1 101"), "upgrade refused");
        let auth = json!({"type": "auth", "token": token}).to_string();
        let mut frame = vec![0x81, 0x80 | 126];
        frame.extend_from_slice(&u16::try_from(auth.len()).unwrap().to_be_bytes());
        frame.extend_from_slice(&[0, 0, 0, 0]); // a zero mask leaves the payload as it is
        frame.extend_from_slice(auth.as_bytes());
        tcp.write_all(&frame).await.unwrap();
        let mut c = Self { tcp };
        let (op, body) = c.frame().await;
        assert_eq!(op, 1, "a text frame first");
        assert!(String::from_utf8_lossy(&body).contains("welcome"));
        c
    }

    /// The next frame from the server: opcode and payload.
    async fn frame(&mut self) -> (u8, Vec<u8>) {
        use tokio::io::AsyncReadExt as _;
        let read = async {
            let b0 = self.tcp.read_u8().await?;
            let len = match self.tcp.read_u8().await? & 0x7f {
                126 => u64::from(self.tcp.read_u16().await?),
                127 => self.tcp.read_u64().await?,
                n => u64::from(n),
            };
            let mut body = vec![0; usize::try_from(len).unwrap()];
            self.tcp.read_exact(&mut body).await?;
            Ok::<_, std::io::Error>((b0 & 0x0f, body))
        };
        tokio::time::timeout(DEADLINE, read)
            .await
            .expect("a frame before the deadline")
            .expect("the connection stays up until a close frame")
    }

    /// Reads up to the close frame; its code and reason.
    async fn close(&mut self) -> (u16, String) {
        loop {
            let (op, body) = self.frame().await;
            if op == 8 {
                let code = u16::from_be_bytes([body[0], body[1]]);
                return (code, String::from_utf8_lossy(&body[2..]).into_owned());
            }
        }
    }
}
