//! The hub over real websockets: chat across two hub nodes, history and resume,
//! idempotent retries, who may join a room or signal into a call, refused tokens and origins,
//! malformed frames and SDP, logout closing sockets, a slow reader that holds up only its own user's frames until it is closed, presence
//! across nodes, and a call's signaling from invite to hang-up.

use crate::both_backends;
use crate::harness::{Backend, Clinic, PASSWORD, token, unique_email};
use crate::support::wait;
use carehub::system::Component;
use carehub_nats::Role;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

both_backends!(
    two_users_chat_across_two_hub_nodes_and_every_device_gets_each_message,
    history_pages_backwards_and_a_reconnecting_client_gets_exactly_what_it_missed,
    a_retried_message_with_the_same_client_id_is_stored_and_delivered_once,
);

pub(crate) const DEADLINE: Duration = Duration::from_secs(30);
pub(crate) const HOUR_MS: i64 = 3_600_000;

/// Settings every hub scenario uses: calls allowed all day, a quick presence TTL.
pub(crate) const HUB_VARS: &[(&str, &str)] = &[
    ("CAREHUB_CALL_EARLY", "86400"),
    ("CAREHUB_CALL_LATE", "86400"),
    ("CAREHUB_PRESENCE_TTL", "2"),
    ("CAREHUB_HUB_FRAMES_PER_SEC", "10000"),
    ("CAREHUB_HUB_FRAME_BURST", "10000"),
];

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A websocket client speaking the hub's JSON frames.
pub(crate) struct Ws {
    pub(crate) socket: Socket,
}

impl Ws {
    /// Opens a socket to `url`, optionally with an `Origin` header (no auth yet).
    pub(crate) async fn open(url: &str, origin: Option<&str>) -> Result<Self, WsError> {
        let mut req = url.into_client_request()?;
        if let Some(o) = origin {
            req.headers_mut().insert("origin", o.parse().unwrap());
        }
        let (socket, _) = tokio_tungstenite::connect_async(req).await?;
        Ok(Self { socket })
    }

    /// Opens and authenticates; waits for `welcome`.
    pub(crate) async fn signed_in(url: &str, token: &str) -> Self {
        let mut ws = Self::open(url, None).await.expect("websocket opens");
        ws.send(json!({"type": "auth", "token": token})).await;
        let w = ws.next_of("welcome").await;
        assert!(w["user_id"].is_string());
        ws
    }

    pub(crate) async fn send(&mut self, frame: Value) {
        self.socket
            .send(Message::text(frame.to_string()))
            .await
            .expect("send frame");
    }

    pub(crate) async fn send_raw(&mut self, text: &str) {
        self.socket
            .send(Message::text(text.to_owned()))
            .await
            .expect("send raw frame");
    }

    /// The next JSON frame; pings, live notifications (which the booking of the appointment
    /// sends at its own pace) and pushed presence are skipped. Panics on close or after the
    /// deadline.
    pub(crate) async fn next(&mut self) -> Value {
        self.next_but(&["notification", "presence"]).await
    }

    /// The next JSON frame whose type is not in `skip`.
    pub(crate) async fn next_but(&mut self, skip: &[&str]) -> Value {
        loop {
            let f = self.next_any().await;
            if !skip.iter().any(|k| f["type"] == *k) {
                return f;
            }
        }
    }

    /// The next JSON frame of any type.
    pub(crate) async fn next_any(&mut self) -> Value {
        loop {
            let m = tokio::time::timeout(DEADLINE, self.socket.next())
                .await
                .expect("a frame before the deadline")
                .expect("socket open")
                .expect("socket readable");
            match m {
                Message::Text(t) => return serde_json::from_str(&t).expect("json frame"),
                Message::Close(c) => panic!("socket closed: {c:?}"),
                _ => {}
            }
        }
    }

    /// The next frame, which must be of `kind` (pushed frames of other kinds are skipped).
    pub(crate) async fn next_of(&mut self, kind: &str) -> Value {
        let f = if kind == "presence" {
            self.next_but(&["notification"]).await
        } else {
            self.next().await
        };
        assert_eq!(f["type"], kind, "unexpected frame {f}");
        f
    }

    /// Reads until the socket closes; returns the close code (skipping any frames before it).
    pub(crate) async fn close_code(&mut self) -> Option<u16> {
        loop {
            let m = tokio::time::timeout(DEADLINE, self.socket.next())
                .await
                .expect("closed before the deadline");
            match m {
                Some(Ok(Message::Close(c))) => return c.map(|c| u16::from(c.code)),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    }

    pub(crate) async fn chat(&mut self, room: &str, client_id: &str, body: &str) -> i64 {
        self.send(json!({"type": "chat_send", "room": room, "client_id": client_id, "body": body}))
            .await;
        loop {
            let f = self.next().await;
            if f["type"] == "chat_ack" && f["client_id"] == client_id {
                return f["seq"].as_i64().unwrap();
            }
            assert_ne!(f["type"], "error", "chat_send refused: {f}");
        }
    }

    /// Reads `chat_message` frames (skipping others) until one with `seq` arrives.
    pub(crate) async fn until_message(&mut self, seq: i64) -> Vec<Value> {
        let mut got = Vec::new();
        loop {
            let f = self.next().await;
            if f["type"] == "chat_message" {
                let s = f["message"]["seq"].as_i64().unwrap();
                got.push(f["message"].clone());
                if s == seq {
                    return got;
                }
            }
        }
    }
}

/// A patient and a doctor with a confirmed appointment starting within the hour or so.
pub(crate) struct Pair {
    pub(crate) patient: String,
    pub(crate) patient_id: String,
    pub(crate) doctor: String,
    pub(crate) doctor_id: String,
    pub(crate) room: String,
}

pub(crate) async fn session_of(clinic: &Clinic, email: &str) -> (String, String) {
    let s = clinic.login(email, PASSWORD).await;
    (token(&s), s["user"]["id"].as_str().unwrap().to_owned())
}

/// A patient and a doctor with a confirmed appointment.
pub(crate) async fn pair(clinic: &Clinic) -> Pair {
    let mut p = people(clinic).await;
    book(clinic, &mut p).await;
    p
}

/// A patient and a doctor who lets patients book directly; no appointment yet.
pub(crate) async fn people(clinic: &Clinic) -> Pair {
    let demail = unique_email("doc");
    clinic.create_user(Role::Doctor, &demail).await;
    let (doctor, doctor_id) = session_of(clinic, &demail).await;
    let pemail = unique_email("pat");
    clinic.patient(&pemail).await;
    let (patient, patient_id) = session_of(clinic, &pemail).await;
    let http = &clinic.http;
    let v = wait::until("the doctor service knows the doctor", DEADLINE, || async {
        let r = http
            .get(clinic.url("/api/doctors/me/availability"))
            .bearer_auth(&doctor)
            .send()
            .await
            .ok()?;
        if r.status() == 200 {
            r.json::<Value>().await.ok()?["version"].as_i64()
        } else {
            None
        }
    })
    .await;
    let weekly = crate::harness::every_day("00:00", "23:30");
    let r = http
        .put(clinic.url("/api/doctors/me/availability"))
        .bearer_auth(&doctor)
        .json(
            &json!({"expected_version": v, "time_zone": "UTC", "weekly": weekly,
            "slot_minutes": 30, "auto_accept": true}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "availability: {}", r.text().await.unwrap());
    Pair {
        patient,
        patient_id,
        doctor,
        doctor_id,
        room: String::new(),
    }
}

/// The patient books the doctor's first free half-hour slot from now on: confirmed at once.
pub(crate) async fn book(clinic: &Clinic, p: &mut Pair) {
    let http = &clinic.http;
    let (patient, doctor_id) = (&p.patient, &p.doctor_id);
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let first = (now / (HOUR_MS / 2) + 1) * (HOUR_MS / 2);
    let room = wait::until("a slot is booked", DEADLINE, || async {
        for i in 0..4 {
            let start = rfc3339(first + i * HOUR_MS / 2);
            let r = http
                .post(clinic.url("/api/appointments/book"))
                .bearer_auth(patient)
                .header("Idempotency-Key", uuid::Uuid::new_v4().simple().to_string())
                .json(&json!({"doctor_id": doctor_id, "start": start, "reason": "a video visit"}))
                .send()
                .await
                .ok()?;
            if r.status() == 201 {
                let a: Value = r.json().await.ok()?;
                assert_eq!(a["status"], "confirmed");
                return Some(a["id"].as_str()?.to_owned());
            }
        }
        None
    })
    .await;
    p.room = room;
}

/// Unix milliseconds as `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub(crate) async fn clinic(b: Backend, extra: &[(&str, &str)]) -> Clinic {
    let mut vars: Vec<(&str, &str)> = HUB_VARS.to_vec();
    vars.extend_from_slice(extra);
    Clinic::start_with(b, &vars, &Component::ALL).await
}

/// A second in-process hub node; returns its websocket URL.
pub(crate) async fn second_hub(clinic: &mut Clinic) -> String {
    clinic
        .start_more(&[("CAREHUB_HUB_ADDR", "127.0.0.1:0")], &[Component::Hub])
        .await;
    clinic.hub_urls().last().unwrap().clone()
}

async fn two_users_chat_across_two_hub_nodes_and_every_device_gets_each_message(b: Backend) {
    let mut clinic = clinic(b, &[]).await;
    let hub2 = second_hub(&mut clinic).await;
    let p = pair(&clinic).await;
    let mut patient = Ws::signed_in(&clinic.hub_url(), &p.patient).await;
    let mut doctor = Ws::signed_in(&hub2, &p.doctor).await;
    let mut doctor_phone = Ws::signed_in(&clinic.hub_url(), &p.doctor).await;

    let seq = patient.chat(&p.room, "m1", "Hello doctor").await;
    assert_eq!(seq, 1);
    for d in [&mut doctor, &mut doctor_phone] {
        let m = d.until_message(1).await;
        assert_eq!(m.len(), 1);
        assert_eq!(m[0]["body"], "Hello doctor");
        assert_eq!(m[0]["sender_id"], p.patient_id.as_str());
    }
    assert_eq!(
        patient.until_message(1).await.len(),
        1,
        "the sender's socket too"
    );

    let seq = doctor.chat(&p.room, "r1", "Hello, how are you?").await;
    assert_eq!(seq, 2);
    doctor.until_message(2).await;
    let m = patient.until_message(2).await;
    assert_eq!(m[0]["sender_id"], p.doctor_id.as_str());
    doctor_phone.until_message(2).await;

    patient
        .send(json!({"type": "typing", "room": p.room, "active": true}))
        .await;
    let t = doctor.next_of("typing").await;
    assert_eq!(t["user_id"], p.patient_id.as_str());
    assert_eq!(t["active"], true);

    patient
        .send(json!({"type": "chat_read", "room": p.room, "seq": 2}))
        .await;
    let r = doctor.next_of("chat_read").await;
    assert_eq!(
        (r["user_id"].as_str(), r["seq"].as_i64()),
        (Some(p.patient_id.as_str()), Some(2))
    );
}

async fn history_pages_backwards_and_a_reconnecting_client_gets_exactly_what_it_missed(b: Backend) {
    let clinic = clinic(b, &[]).await;
    let p = pair(&clinic).await;
    let mut patient = Ws::signed_in(&clinic.hub_url(), &p.patient).await;
    let mut doctor = Ws::signed_in(&clinic.hub_url(), &p.doctor).await;
    for i in 1..=3 {
        patient
            .chat(&p.room, &format!("c{i}"), &format!("message {i}"))
            .await;
    }
    let seen = doctor.until_message(3).await;
    assert_eq!(seen.len(), 3);
    drop(doctor);

    for i in 4..=7 {
        patient
            .chat(&p.room, &format!("c{i}"), &format!("message {i}"))
            .await;
    }
    let mut doctor = Ws::signed_in(&clinic.hub_url(), &p.doctor).await;
    doctor
        .send(json!({"type": "resume", "room": p.room, "after_seq": 3}))
        .await;
    let backlog = doctor.next_of("chat_backlog").await;
    let seqs: Vec<i64> = backlog["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [4, 5, 6, 7], "exactly the missed messages");
    assert_eq!(backlog["has_more"], false);
    assert_eq!(backlog["messages"][0]["body"], "message 4");

    let page = |before: Option<i64>| {
        let mut f = json!({"type": "chat_history", "room": p.room, "limit": 3});
        if let Some(b) = before {
            f["before_seq"] = json!(b);
        }
        f
    };
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        doctor.send(page(before)).await;
        let h = doctor.next_of("chat_history").await;
        let seqs: Vec<i64> = h["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["seq"].as_i64().unwrap())
            .collect();
        pages.push(seqs.clone());
        if h["has_more"] == false {
            break;
        }
        before = seqs.first().copied();
    }
    assert_eq!(pages, vec![vec![5, 6, 7], vec![2, 3, 4], vec![1]]);

    doctor
        .send(json!({"type": "chat_history", "room": p.room, "limit": 0}))
        .await;
    assert_eq!(doctor.next_of("error").await["code"], "validation_failed");
}

async fn a_retried_message_with_the_same_client_id_is_stored_and_delivered_once(b: Backend) {
    let clinic = clinic(b, &[]).await;
    let p = pair(&clinic).await;
    let mut patient = Ws::signed_in(&clinic.hub_url(), &p.patient).await;
    let mut doctor = Ws::signed_in(&clinic.hub_url(), &p.doctor).await;
    let first = patient.chat(&p.room, "same-id", "Are you there?").await;
    let again = patient.chat(&p.room, "same-id", "Are you there?").await;
    assert_eq!(first, again, "a retry gets the first ack");
    let next = patient.chat(&p.room, "other-id", "Hello?").await;
    assert_eq!(next, first + 1, "the retry took no sequence number");
    let got = doctor.until_message(next).await;
    let ids: Vec<&str> = got
        .iter()
        .map(|m| m["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["same-id", "other-id"], "delivered once");

    doctor
        .send(json!({"type": "chat_history", "room": p.room}))
        .await;
    let h = doctor.next_of("chat_history").await;
    assert_eq!(h["messages"].as_array().unwrap().len(), 2, "stored once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_notification_service_stores_is_pushed_at_once_with_the_unread_count() {
    let clinic = clinic(Backend::Sqlite, &[]).await;
    let mut p = people(&clinic).await;
    let mut patient = Ws::signed_in(&clinic.hub_url(), &p.patient).await;
    let mut doctor = Ws::signed_in(&clinic.hub_url(), &p.doctor).await;
    book(&clinic, &mut p).await;
    for ws in [&mut patient, &mut doctor] {
        // The confirmation also starts presence pushes about the other participant.
        let n = ws.next_but(&["presence"]).await;
        assert_eq!(n["type"], "notification", "{n}");
        assert_eq!(n["notification"]["kind"], "appointment_confirmed");
        assert_eq!(n["notification"]["appointment_id"], p.room.as_str());
        assert_eq!(n["unread_count"], 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_can_neither_join_a_room_nor_signal_into_a_call() {
    let clinic = clinic(Backend::Sqlite, &[]).await;
    let p = pair(&clinic).await;
    let stranger_email = unique_email("stranger");
    clinic.patient(&stranger_email).await;
    let (stranger_token, _) = session_of(&clinic, &stranger_email).await;
    let mut stranger = Ws::signed_in(&clinic.hub_url(), &stranger_token).await;
    let mut patient = Ws::signed_in(&clinic.hub_url(), &p.patient).await;
    let mut doctor = Ws::signed_in(&clinic.hub_url(), &p.doctor).await;

    // The doctor opens a call, so there is something to signal into.
    doctor
        .send(json!({"type": "call_invite", "appointment_id": p.room}))
        .await;
    doctor.next_of("call_joined").await;
    patient.next_of("call_ring").await;

    for frame in [
        json!({"type": "chat_send", "room": p.room, "client_id": "x", "body": "let me in"}),
        json!({"type": "chat_history", "room": p.room}),
        json!({"type": "resume", "room": p.room, "after_seq": 0}),
        json!({"type": "typing", "room": p.room, "active": true}),
        json!({"type": "presence_get", "appointment_id": p.room}),
        json!({"type": "call_invite", "appointment_id": p.room}),
        json!({"type": "call_accept", "appointment_id": p.room}),
        json!({"type": "rtc_ice", "appointment_id": p.room,
            "candidate": {"candidate": "candidate:1 1 udp 1 10.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0}}),
        json!({"type": "call_hangup", "appointment_id": p.room}),
    ] {
        stranger.send(frame.clone()).await;
        let e = stranger.next_of("error").await;
        assert_eq!(e["code"], "not_found", "{frame}");
    }
    // Nothing reached the participants: the next frame each sees is the doctor's marker.
    doctor
        .send(
            json!({"type": "chat_send", "room": p.room, "client_id": "marker", "body": "only us"}),
        )
        .await;
    assert_eq!(doctor.next_of("chat_ack").await["client_id"], "marker");
    assert_eq!(
        doctor.next_of("chat_message").await["message"]["client_id"],
        "marker"
    );
    let m = patient.next_of("chat_message").await;
    assert_eq!(
        m["message"]["client_id"], "marker",
        "the patient got nothing from the stranger"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_a_frame_before_auth_and_a_foreign_origin_are_refused() {
    let clinic = clinic(
        Backend::Sqlite,
        &[("CAREHUB_PUBLIC_URL", "https://care.example.org")],
    )
    .await;
    let url = clinic.hub_url();

    let mut ws = Ws::open(&url, None).await.unwrap();
    ws.send(json!({"type": "auth", "token": "not-a-token"}))
        .await;
    let e = ws.next_of("error").await;
    assert_eq!(e["code"], "unauthorized");
    assert_eq!(ws.close_code().await, Some(4001));

    let mut ws = Ws::open(&url, None).await.unwrap();
    ws.send(json!({"type": "chat_history", "room": "r"})).await;
    assert_eq!(ws.next_of("error").await["code"], "unauthorized");
    assert_eq!(ws.close_code().await, Some(4001));

    match Ws::open(&url, Some("https://evil.example")).await {
        Err(WsError::Http(r)) => assert_eq!(r.status(), 403),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("a foreign origin was accepted"),
    }
    let email = unique_email("pat");
    clinic.patient(&email).await;
    let (t, _) = session_of(&clinic, &email).await;
    let mut ws = Ws::open(&url, Some("https://care.example.org"))
        .await
        .unwrap();
    ws.send(json!({"type": "auth", "token": t})).await;
    ws.next_of("welcome").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_and_bad_sdp_get_an_error_frame_and_the_socket_stays_usable() {
    let clinic = clinic(Backend::Sqlite, &[("CAREHUB_HUB_MAX_FRAME", "2048")]).await;
    let p = pair(&clinic).await;
    let mut patient = Ws::signed_in(&clinic.hub_url(), &p.patient).await;
    let mut doctor = Ws::signed_in(&clinic.hub_url(), &p.doctor).await;

    patient.send_raw("{not json").await;
    assert_eq!(patient.next_of("error").await["code"], "bad_frame");
    patient.send(json!({"type": "launch_missiles"})).await;
    assert_eq!(patient.next_of("error").await["code"], "bad_frame");
    patient
        .send(json!({"type": "chat_send", "room": p.room}))
        .await;
    assert_eq!(patient.next_of("error").await["code"], "bad_frame");
    patient
        .send(json!({"type": "chat_send", "room": p.room, "client_id": "big", "body": "x".repeat(3000)}))
        .await;
    assert_eq!(patient.next_of("error").await["code"], "payload_too_large");
    patient
        .send(json!({"type": "chat_send", "room": p.room, "client_id": "e", "body": "  "}))
        .await;
    let e = patient.next_of("error").await;
    assert_eq!(
        (e["code"].as_str(), e["client_id"].as_str()),
        (Some("validation_failed"), Some("e"))
    );

    patient
        .send(json!({"type": "call_invite", "appointment_id": p.room}))
        .await;
    patient.next_of("call_joined").await;
    doctor.next_of("call_ring").await;
    patient
        .send(json!({"type": "rtc_offer", "appointment_id": p.room, "sdp": "this is not sdp"}))
        .await;
    assert_eq!(patient.next_of("error").await["code"], "bad_sdp");
    patient
        .send(json!({"type": "rtc_offer", "appointment_id": p.room, "sdp": OFFER}))
        .await;
    let offer = doctor.next_of("rtc_offer").await;
    assert_eq!(offer["sdp"], OFFER, "only the valid offer arrives");
    assert_eq!(offer["from"], p.patient_id.as_str());

    let seq = patient.chat(&p.room, "ok", "still here").await;
    doctor.until_message(seq).await;
}

pub(crate) const OFFER: &str = "v=0\r\no=- 4215775240449105457 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
    a=group:BUNDLE 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n\
    a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
    a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
    a=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_closes_the_users_sockets_on_every_node() {
    let mut clinic = clinic(Backend::Sqlite, &[]).await;
    let hub2 = second_hub(&mut clinic).await;
    let email = unique_email("pat");
    clinic.patient(&email).await;
    let (t, _) = session_of(&clinic, &email).await;
    let mut a = Ws::signed_in(&clinic.hub_url(), &t).await;
    let mut b = Ws::signed_in(&hub2, &t).await;
    let r = clinic
        .http
        .post(clinic.url("/api/auth/logout"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(a.close_code().await, Some(4003));
    assert_eq!(b.close_code().await, Some(4003));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_right_across_two_nodes() {
    let mut clinic = clinic(Backend::Sqlite, &[]).await;
    let hub2 = second_hub(&mut clinic).await;
    let p = pair(&clinic).await;
    let mut patient = Ws::signed_in(&clinic.hub_url(), &p.patient).await;
    let ask = json!({"type": "presence_get", "appointment_id": p.room});
    patient.send(ask.clone()).await;
    let f = patient.next_of("presence").await;
    assert_eq!(
        (f["user_id"].as_str(), f["online"].as_bool()),
        (Some(p.doctor_id.as_str()), Some(false))
    );

    let doctor = Ws::signed_in(&hub2, &p.doctor).await;
    patient.send(ask.clone()).await;
    assert_eq!(
        patient.next_of("presence").await["online"],
        true,
        "online on the other node"
    );

    drop(doctor);
    let patient = tokio::sync::Mutex::new(patient);
    wait::until("the doctor goes offline", DEADLINE, || async {
        let mut p = patient.lock().await;
        p.send(ask.clone()).await;
        (p.next_of("presence").await["online"] == false).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_signaled_between_its_participants_and_recorded_when_it_ends() {
    let clinic = clinic(
        Backend::Sqlite,
        &[
            ("CAREHUB_ICE_SERVERS", "turn:127.0.0.1:3478"),
            ("CAREHUB_TURN_SECRET", "s3cret"),
        ],
    )
    .await;
    // Listens beside the admin service, as the admin user (the only one that may).
    let nc = clinic.nats_client_as("admin").await;
    let mut records = nc.subscribe("carehub.admin.record_call").await.unwrap();
    nc.flush().await.unwrap();
    let p = pair(&clinic).await;
    let mut patient = Ws::signed_in(&clinic.hub_url(), &p.patient).await;
    let mut doctor = Ws::signed_in(&clinic.hub_url(), &p.doctor).await;

    doctor
        .send(json!({"type": "call_invite", "appointment_id": p.room}))
        .await;
    let joined = doctor.next_of("call_joined").await;
    let user = joined["ice_servers"][0]["username"].as_str().unwrap();
    assert!(
        user.ends_with(&format!(":{}", p.doctor_id)),
        "TURN REST username: {user}"
    );
    let ring = patient.next_of("call_ring").await;
    assert_eq!(ring["call_id"], joined["call_id"]);
    assert_eq!(ring["from"], p.doctor_id.as_str());
    patient
        .send(json!({"type": "call_accept", "appointment_id": p.room}))
        .await;
    assert_eq!(
        doctor.next_of("call_accept").await["from"],
        p.patient_id.as_str()
    );

    doctor
        .send(json!({"type": "rtc_offer", "appointment_id": p.room, "sdp": OFFER}))
        .await;
    patient.next_of("rtc_offer").await;
    patient
        .send(json!({"type": "rtc_answer", "appointment_id": p.room, "sdp": OFFER}))
        .await;
    doctor.next_of("rtc_answer").await;
    let cand = json!({"candidate": "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host", "sdpMid": "0", "sdpMLineIndex": 0});
    patient
        .send(json!({"type": "rtc_ice", "appointment_id": p.room, "candidate": cand}))
        .await;
    assert_eq!(doctor.next_of("rtc_ice").await["candidate"], cand);

    // The patient drops and rejoins the same call.
    drop(patient);
    let mut patient = Ws::signed_in(&clinic.hub_url(), &p.patient).await;
    patient
        .send(json!({"type": "call_invite", "appointment_id": p.room}))
        .await;
    assert_eq!(
        patient.next_of("call_joined").await["call_id"],
        joined["call_id"]
    );
    assert_eq!(
        doctor.next_of("call_ring").await["call_id"],
        joined["call_id"]
    );

    patient
        .send(json!({"type": "call_hangup", "appointment_id": p.room}))
        .await;
    doctor.next_of("call_hangup").await;
    let m = tokio::time::timeout(DEADLINE, records.next())
        .await
        .unwrap()
        .unwrap();
    let rec: Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(rec["appointment_id"], p.room.as_str());
    assert!(rec["started_at"].as_str().unwrap() <= rec["ended_at"].as_str().unwrap());
    // The admin service keeps the call on the appointment and emits one event for it.
    let url = clinic.url(&format!("/api/appointments/{}", p.room));
    let last = crate::support::wait::until("the call on the appointment", DEADLINE, || async {
        let a: Value = clinic
            .http
            .get(&url)
            .bearer_auth(&p.patient)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let last = a["appointment"]["last_call"].clone();
        (!last.is_null()).then_some(last)
    })
    .await;
    // Stored to the second.
    let stored = last["started_at"].as_str().unwrap().trim_end_matches('Z');
    assert!(
        rec["started_at"].as_str().unwrap().starts_with(stored),
        "{last} vs {rec}"
    );
    assert!(last["total_seconds"].as_i64().unwrap() >= 0);
    let ended = crate::support::wait::until("the call_ended event", DEADLINE, || async {
        let e: Vec<Value> = clinic
            .stream_messages(
                "CAREHUB_APPOINTMENTS",
                "carehub.events.appointment.call_ended",
            )
            .await
            .into_iter()
            .filter(|e| e["appointment"]["id"] == p.room.as_str())
            .collect();
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert_eq!(ended.len(), 1, "one event per call");

    doctor
        .send(json!({"type": "rtc_offer", "appointment_id": p.room, "sdp": OFFER}))
        .await;
    assert_eq!(
        doctor.next_of("error").await["code"],
        "conflict",
        "no call to signal into"
    );
}

/// Opens a socket whose kernel receive buffer is small, and never reads from it.
async fn slow_socket(url: &str, token: &str) -> WebSocketStream<TcpStream> {
    let addr: std::net::SocketAddr = url
        .trim_start_matches("ws://")
        .trim_end_matches("/ws")
        .parse()
        .unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    ws.send(Message::text(
        json!({"type": "auth", "token": token}).to_string(),
    ))
    .await
    .unwrap();
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_is_closed_as_too_slow_and_holds_up_only_its_own_users_frames_meanwhile() {
    let clinic = clinic(
        Backend::Sqlite,
        &[
            ("CAREHUB_HUB_QUEUE", "64"),
            ("CAREHUB_HUB_SEND_BUFFER", "4096"),
            ("CAREHUB_HUB_WRITE_TIMEOUT", "2"),
        ],
    )
    .await;
    let p = pair(&clinic).await;
    let mut slow = slow_socket(&clinic.hub_url(), &p.patient).await;
    let mut patient = Ws::signed_in(&clinic.hub_url(), &p.patient).await;
    let mut doctor = Ws::signed_in(&clinic.hub_url(), &p.doctor).await;
    // The slow socket is registered before the flood (its welcome is queued first).
    let warm = patient.chat(&p.room, "warm-up", "hi").await;
    doctor.until_message(warm).await;

    // The queue (64 frames of ~1.1 KB) plus the kernel buffers (4 KiB each side, doubled by
    // the kernel) hold about 90 KB; the doctor sends 1,500 frames of ~1.1 KB, over 1.6 MB. It
    // keeps at most 8 unacknowledged, so the sockets that do read are never more than a few
    // frames behind, however busy the machine.
    let n: i64 = 1_500;
    let last = warm + n;
    let (mut doctor_tx, mut doctor_rx) = doctor.socket.split();
    let (acked_tx, mut acked) = tokio::sync::watch::channel(0i64);
    let (seen_tx, mut seen) = tokio::sync::watch::channel(0i64);
    let readers = [
        tokio::spawn(async move {
            let mut got = 0;
            loop {
                let f = patient.next().await;
                if f["type"] == "chat_message" {
                    let s = f["message"]["seq"].as_i64().unwrap();
                    got += usize::from(s > warm);
                    let _ = seen_tx.send(s - warm);
                    if s == last {
                        return got;
                    }
                }
            }
        }),
        tokio::spawn(async move {
            let (mut seen, mut acks) = (0, 0);
            while let Some(Ok(m)) = doctor_rx.next().await {
                if let Message::Text(t) = m {
                    let f: Value = serde_json::from_str(&t).unwrap();
                    if f["type"] == "chat_ack" {
                        acks += 1;
                        let _ = acked_tx.send(acks);
                    }
                    if f["type"] == "chat_message" && f["message"]["seq"].as_i64().unwrap() > warm {
                        seen += 1;
                        if f["message"]["seq"] == last {
                            break;
                        }
                    }
                }
            }
            seen
        }),
    ];
    // The slow socket holds up its user's frames on this node until the hub gives up on it
    // (the write timeout): the patient's other socket getting well past what the slow one's
    // queue and buffers hold means it was closed. Only then does it read: what was buffered,
    // then the close code.
    let slow_closed = tokio::spawn(async move {
        seen.wait_for(|s| *s >= 300).await.unwrap();
        loop {
            match tokio::time::timeout(DEADLINE, slow.next()).await.unwrap() {
                Some(Ok(Message::Close(c))) => break c.map(|c| u16::from(c.code)),
                Some(Ok(_)) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    });
    let body = "y".repeat(1000);
    for i in 0..n {
        acked.wait_for(|a| *a >= i - 8).await.unwrap();
        let f = json!({"type": "chat_send", "room": p.room, "client_id": format!("f{i}"), "body": body});
        doctor_tx.send(Message::text(f.to_string())).await.unwrap();
    }
    for r in readers {
        let seen = tokio::time::timeout(Duration::from_secs(120), r)
            .await
            .expect("every message arrives")
            .unwrap();
        assert_eq!(seen as i64, n, "every other socket got every message");
    }

    let code = slow_closed.await.unwrap();
    assert_eq!(code, Some(4008));
}
