//! Bursts from a client that reads: valid chat, typing, malformed and oversized frames sent
//! back to back, directly to a hub node and through the gateway, with the other participant on
//! a second node. The socket stays open, refusals come as a bounded number of coalesced error
//! frames whose counts add up, and nothing is stored twice. A client that does not read is
//! closed as too slow while a reading socket of the same user gets every frame.

use crate::harness::Backend;
use crate::hub::{DEADLINE, Pair, Socket, Ws, clinic, pair, second_hub};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// The protocol's default limits, which the other hub scenarios raise.
const LIMITS: &[(&str, &str)] = &[
    ("CAREHUB_HUB_FRAMES_PER_SEC", "20"),
    ("CAREHUB_HUB_FRAME_BURST", "40"),
    ("CAREHUB_HUB_ERROR_INTERVAL", "250"),
];
const INTERVAL_MS: u128 = 250;
const SIZES: [usize; 4] = [100, 300, 600, 2_000];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chat,
    Typing,
    Malformed,
    Oversized,
}

/// Frame `i` of a burst of `kind` tagged `tag`.
fn frame(kind: Kind, room: &str, tag: &str, i: usize) -> String {
    match kind {
        Kind::Chat => json!({"type": "chat_send", "room": room, "client_id": format!("{tag}-{i}"),
            "body": format!("burst message {i}")})
        .to_string(),
        Kind::Typing => {
            json!({"type": "typing", "room": room, "active": i.is_multiple_of(2)}).to_string()
        }
        Kind::Malformed if i.is_multiple_of(2) => format!("{{not json {i}"),
        Kind::Malformed => {
            json!({"type": "chat_send", "room": room, "client_id": format!("{tag}-{i}")})
                .to_string()
        }
        Kind::Oversized => {
            // 17 to 60 KiB, above the 16 KiB frame limit and below the 64 KiB hard one.
            let kib = 17 + i % 44;
            json!({"type": "chat_send", "room": room, "client_id": format!("{tag}-{i}"),
                "body": "z".repeat(kib * 1024 - 100)})
            .to_string()
        }
    }
}

/// What the bursting socket received until every frame of the burst was accounted for.
#[derive(Default, Debug)]
struct Tally {
    acks: usize,
    /// Error frames per code, and the sum of their `count`s.
    frames: HashMap<String, usize>,
    counts: HashMap<String, u64>,
    other_errors: usize,
    last_error_at: Option<Instant>,
}

impl Tally {
    fn refused(&self) -> u64 {
        self.counts.values().sum()
    }

    fn take(&mut self, f: &Value) {
        match f["type"].as_str() {
            Some("chat_ack") => self.acks += 1,
            Some("error") => {
                let code = f["code"].as_str().unwrap_or_default().to_owned();
                match f["count"].as_u64() {
                    Some(n) => {
                        assert!(n >= 1, "a count of zero: {f}");
                        *self.counts.entry(code.clone()).or_default() += n;
                        *self.frames.entry(code).or_default() += 1;
                        self.last_error_at = Some(Instant::now());
                    }
                    None => self.other_errors += 1,
                }
            }
            _ => {}
        }
    }
}

/// Sends `n` frames of `kind` back to back on a fresh socket at `url` while reading every frame
/// as it arrives (and the doctor's socket reads the typing frames that got through); returns
/// once every frame is accounted for.
async fn burst(url: &str, p: &Pair, doctor: &mut Ws, kind: Kind, n: usize, tag: &str) {
    let ws = Ws::signed_in(url, &p.patient).await;
    let (mut tx, mut rx) = ws.socket.split();
    let frames: Vec<String> = (0..n).map(|i| frame(kind, &p.room, tag, i)).collect();
    let start = Instant::now();
    let sender = tokio::spawn(async move {
        for f in frames {
            tx.send(Message::text(f))
                .await
                .expect("the socket takes the burst");
        }
        tx
    });
    let mut tally = Tally::default();
    let mut typed = 0usize;
    let give_up = Instant::now() + DEADLINE;
    let accounted = |t: &Tally, typed: usize| {
        t.acks as u64 + t.refused() + t.other_errors as u64 + typed as u64
    };
    while accounted(&tally, typed) < n as u64 {
        tokio::select! {
            m = rx.next() => match m {
                Some(Ok(Message::Text(t))) => tally.take(&serde_json::from_str(&t).unwrap()),
                Some(Ok(Message::Close(c))) => panic!("{kind:?} x{n}: the socket closed: {c:?}"),
                Some(Ok(_)) => {}
                other => panic!("{kind:?} x{n}: the socket failed: {other:?}"),
            },
            f = doctor.next() => {
                if f["type"] == "typing" { typed += 1 }
            }
            () = tokio::time::sleep_until(give_up) => panic!("{kind:?} x{n}: only {tally:?} and {typed} typing frames arrived"),
        }
    }
    let tx = sender.await.unwrap();
    let sent = n as u64;
    assert_eq!(
        accounted(&tally, typed),
        sent,
        "{kind:?} x{n}: {tally:?}, {typed} typed"
    );
    assert_eq!(tally.other_errors, 0, "{kind:?} x{n}: {tally:?}");
    match kind {
        Kind::Chat => assert!(tally.acks > 0, "{kind:?} x{n}: no message got through"),
        Kind::Typing => assert!(typed > 0, "{kind:?} x{n}: no typing got through"),
        Kind::Malformed | Kind::Oversized => assert_eq!(tally.acks + typed, 0),
    }
    // At most one error frame per code per interval over the burst.
    let span = tally
        .last_error_at
        .map_or(0, |t| t.duration_since(start).as_millis());
    for (code, frames) in &tally.frames {
        let bound = span / INTERVAL_MS + 1;
        assert!(
            *frames as u128 <= bound,
            "{kind:?} x{n}: {frames} {code} frames in {span} ms"
        );
    }
    let mut ws = Ws {
        socket: tx.reunite(rx).unwrap(),
    };
    still_open(&mut ws, &p.room, tag).await;
}

/// The socket answers a fresh message once the rate limit allows it.
async fn still_open(ws: &mut Ws, room: &str, tag: &str) {
    let give_up = Instant::now() + DEADLINE;
    loop {
        let id = format!("{tag}-probe");
        ws.send(json!({"type": "chat_send", "room": room, "client_id": id, "body": "still here"}))
            .await;
        loop {
            let f = ws.next().await;
            if f["type"] == "chat_ack" && f["client_id"] == id.as_str() {
                return;
            }
            if f["type"] == "error" && f["code"] == "rate_limited" {
                let wait = f["retry_after_ms"].as_u64().expect("retry_after_ms");
                assert!(Instant::now() < give_up, "the socket stays rate limited");
                tokio::time::sleep(Duration::from_millis(wait.max(10))).await;
                break;
            }
        }
    }
}

/// Every stored message of the room, through `resume`.
async fn stored(ws: &mut Ws, room: &str) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    loop {
        let after = out.last().map_or(0, |m| m["seq"].as_i64().unwrap());
        ws.send(json!({"type": "resume", "room": room, "after_seq": after}))
            .await;
        let f = loop {
            let f = ws.next().await;
            if f["type"] == "chat_backlog" {
                break f;
            }
        };
        out.extend(f["messages"].as_array().unwrap().iter().cloned());
        if f["has_more"] != true {
            return out;
        }
    }
}

async fn bursts_on(url: &str, path: &str, p: &Pair, doctor: &mut Ws) {
    for kind in [Kind::Chat, Kind::Typing, Kind::Malformed, Kind::Oversized] {
        for n in SIZES {
            let tag = format!("{path}-{kind:?}-{n}");
            burst(url, p, doctor, kind, n, &tag).await;
        }
    }
    let mut reader = Ws::signed_in(url, &p.doctor).await;
    let all = stored(&mut reader, &p.room).await;
    let ids: Vec<&str> = all
        .iter()
        .map(|m| m["client_id"].as_str().unwrap())
        .collect();
    let distinct: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), distinct.len(), "a message was stored twice");
    assert!(
        ids.iter()
            .all(|id| id.ends_with("-probe")
                || !(id.contains("Malformed") || id.contains("Oversized"))),
        "a refused frame was stored"
    );
}

async fn bursts_from_a_reading_client(through_gateway: bool) {
    let mut clinic = clinic(Backend::Sqlite, LIMITS).await;
    let hub2 = second_hub(&mut clinic).await;
    let p = pair(&clinic).await;
    let mut doctor = Ws::signed_in(&hub2, &p.doctor).await;
    let (url, path) = if through_gateway {
        (
            format!("{}/ws", clinic.base.replacen("http://", "ws://", 1)),
            "gw",
        )
    } else {
        (clinic.hub_url(), "hub")
    };
    bursts_on(&url, path, &p, &mut doctor).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_every_kind_leave_a_reading_clients_socket_open_with_coalesced_errors() {
    bursts_from_a_reading_client(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_through_the_gateway_leave_a_reading_clients_socket_open_with_coalesced_errors() {
    bursts_from_a_reading_client(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_refused_frame_is_answered_with_its_request_and_client_id() {
    let clinic = clinic(Backend::Sqlite, LIMITS).await;
    let p = pair(&clinic).await;
    let mut ws = Ws::signed_in(&clinic.hub_url(), &p.patient).await;
    let big = frame(Kind::Oversized, &p.room, "one", 3);
    ws.send_raw(&big).await;
    let e = ws.next_of("error").await;
    assert_eq!(e["code"], "payload_too_large");
    assert_eq!(e["request"], "chat_send");
    assert_eq!(e["client_id"], "one-3");
    assert_eq!(e["last_client_id"], "one-3");
    assert_eq!(e["count"], 1);
    assert!(e["retry_after_ms"].is_u64());
}

/// Opens a socket whose kernel receive buffer is small, signs it in, and never reads from it.
async fn non_reading(url: &str, token: &str) -> Socket {
    let addr: std::net::SocketAddr = url
        .trim_start_matches("ws://")
        .trim_end_matches("/ws")
        .parse()
        .unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    ws.send(Message::text(
        json!({"type": "auth", "token": token}).to_string(),
    ))
    .await
    .unwrap();
    ws
}

fn notification(user_id: &str, i: usize) -> Vec<u8> {
    json!({"user_id": user_id, "unread_count": i + 1, "notification": {
        "id": format!("n{i}"), "kind": "appointment_reminder", "title": format!("Reminder {i}"),
        "body": "r".repeat(4096), "appointment_id": null,
        "created_at": "2026-12-05T06:00:00Z", "read_at": null}})
    .to_string()
    .into_bytes()
}

/// A client that stops reading while `n` notifications of 4 KiB are pushed to its user, at
/// `url`; a reading socket of the same user is on the hub node directly.
async fn stuck_client(through_gateway: bool) {
    let clinic = clinic(
        Backend::Sqlite,
        &[
            ("CAREHUB_HUB_WRITE_TIMEOUT", "2"),
            ("CAREHUB_HUB_SEND_BUFFER", "4096"),
        ],
    )
    .await;
    let email = crate::harness::unique_email("pat");
    clinic.patient(&email).await;
    let (token, user_id) = crate::hub::session_of(&clinic, &email).await;
    let url = if through_gateway {
        format!("{}/ws", clinic.base.replacen("http://", "ws://", 1))
    } else {
        clinic.hub_url()
    };
    let mut stuck = non_reading(&url, &token).await;
    let mut reading = Ws::signed_in(&clinic.hub_url(), &token).await;
    // Past this many, the stuck socket's queue and every buffer on its way are certainly full.
    let (n, past_buffers) = if through_gateway {
        (8_000, 6_000)
    } else {
        (5_000, 1_000)
    };
    let notify = clinic.nats_client_as("notify").await;
    let subject = carehub_nats::notify::push_subject(&user_id);
    let publisher = tokio::spawn(async move {
        for i in 0..n {
            notify
                .publish(subject.clone(), notification(&user_id, i).into())
                .await
                .unwrap();
        }
        notify.flush().await.unwrap();
    });

    // The stuck socket holds up its user's frames on this node until it is given up on (the
    // write timeout): the reading socket getting past what the stuck one's queue and buffers
    // hold means it was. It then reads what reached it, and the close frame.
    let (past, mut seen) = tokio::sync::watch::channel(0usize);
    let reader = tokio::spawn(async move {
        let mut got = 0;
        while got < n {
            let f = reading.next_any().await;
            if f["type"] == "notification" {
                assert_eq!(f["unread_count"], got + 1, "in order, none missing");
                got += 1;
                let _ = past.send(got);
            }
        }
        got
    });
    seen.wait_for(|got| *got >= past_buffers).await.unwrap();
    let close = loop {
        match tokio::time::timeout(DEADLINE, stuck.next()).await.unwrap() {
            Some(Ok(Message::Close(c))) => {
                break c.map(|c| (u16::from(c.code), c.reason.to_string()));
            }
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(close, Some((4008, "too slow".to_owned())));
    publisher.await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("the reading socket gets every notification")
        .unwrap();
    assert_eq!(got, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_is_closed_as_too_slow_and_its_reading_socket_gets_everything()
{
    stuck_client(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_through_the_gateway_is_closed_as_too_slow_too() {
    stuck_client(true).await;
}
