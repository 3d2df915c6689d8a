//! Real WebRTC through the hub: two webrtc-rs peers exchange their offer, answer and ICE
//! candidates only as hub frames (on one node, and across two), reach `connected`, and a
//! data-channel message crosses. With Debian's coturn started by the test, the peers connect
//! relay-only with the credentials the hub hands out, and coturn refuses an expired one.

use crate::harness::{Backend, Clinic};
use crate::hub::{Pair, Ws, clinic, pair, second_hub};
use carehub_testkit::peer::{Peer, Signaling};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use webrtc::data_channel::DataChannelEvent;
use webrtc::peer_connection::{
    PeerConnection, RTCIceCandidateInit, RTCIceServer, RTCPeerConnectionState,
};

const CONNECT: Duration = Duration::from_secs(30);
const HELLO: &str = "hello over a data channel";

/// ICE servers as the hub handed them out (`call_joined` / `call_ring`), for webrtc-rs.
fn ice_servers(frame: &Value) -> Vec<RTCIceServer> {
    carehub_testkit::peer::ice_servers(frame).expect("ice_servers in a call frame")
}

async fn peer(servers: Vec<RTCIceServer>, relay_only: bool) -> Peer {
    Peer::new(servers, relay_only)
        .await
        .expect("peer connection")
}

/// Relays one peer's signaling through its hub socket until `stop`: sends the offer (for the
/// offerer), answers an offer, applies answers and candidates, and sends local candidates as
/// `rtc_ice`. Returns the candidate lines it sent.
async fn signal(
    mut ws: Ws,
    pc: Arc<dyn PeerConnection>,
    mut local: mpsc::UnboundedReceiver<RTCIceCandidateInit>,
    room: String,
    offerer: bool,
    stop: CancellationToken,
) -> Vec<String> {
    let mut sent = Vec::new();
    let mut signaling = Signaling::new(pc, &room, offerer);
    if offerer {
        ws.send(signaling.offer().await.expect("an offer")).await;
    }
    loop {
        tokio::select! {
            () = stop.cancelled() => return sent,
            Some(c) = local.recv() => {
                sent.push(c.candidate.clone());
                ws.send(signaling.candidate(&c)).await;
            }
            f = ws.next() => {
                if let Some(reply) = signaling.handle(&f).await.expect("a signaling frame applied") {
                    ws.send(reply).await;
                }
            }
        }
    }
}

/// Opens a call between the pair (the doctor calls, the patient accepts) with the doctor on
/// `doctor_hub` and the patient on `patient_hub`; returns both sockets and the ICE servers each
/// was handed.
async fn open_call(
    p: &Pair,
    doctor_hub: &str,
    patient_hub: &str,
) -> (Ws, Vec<RTCIceServer>, Ws, Vec<RTCIceServer>) {
    let mut doctor = Ws::signed_in(doctor_hub, &p.doctor).await;
    let mut patient = Ws::signed_in(patient_hub, &p.patient).await;
    doctor
        .send(json!({"type": "call_invite", "appointment_id": p.room}))
        .await;
    let joined = doctor.next_of("call_joined").await;
    let ring = patient.next_of("call_ring").await;
    patient
        .send(json!({"type": "call_accept", "appointment_id": p.room}))
        .await;
    doctor.next_of("call_accept").await;
    (doctor, ice_servers(&joined), patient, ice_servers(&ring))
}

/// Runs the two peers' signaling through the hub until both are connected and the doctor's
/// data-channel message reached the patient. Returns the candidate lines each side sent.
async fn connect_through_hub(
    p: &Pair,
    doctor_hub: &str,
    patient_hub: &str,
    relay_only: bool,
) -> (Vec<String>, Vec<String>) {
    let (doctor_ws, doctor_ice, patient_ws, patient_ice) =
        open_call(p, doctor_hub, patient_hub).await;
    let mut caller = peer(doctor_ice, relay_only).await;
    let mut callee = peer(patient_ice, relay_only).await;
    let dc = caller.pc.create_data_channel("chat", None).await.unwrap();
    let stop = CancellationToken::new();
    let tasks = [
        tokio::spawn(signal(
            doctor_ws,
            caller.pc.clone(),
            caller.take_candidates(),
            p.room.clone(),
            true,
            stop.clone(),
        )),
        tokio::spawn(signal(
            patient_ws,
            callee.pc.clone(),
            callee.take_candidates(),
            p.room.clone(),
            false,
            stop.clone(),
        )),
    ];
    tokio::time::timeout(CONNECT, async {
        for state in [&mut caller.state, &mut callee.state] {
            state
                .wait_for(|s| *s == RTCPeerConnectionState::Connected)
                .await
                .unwrap();
        }
    })
    .await
    .expect("both peers reach connected");

    let sender = dc.clone();
    tokio::spawn(async move {
        while let Some(e) = sender.poll().await {
            if matches!(e, DataChannelEvent::OnOpen) {
                sender.send_text(HELLO).await.unwrap();
            }
        }
    });
    let got = tokio::time::timeout(CONNECT, callee.messages.recv())
        .await
        .expect("a data-channel message before the deadline");
    assert_eq!(got.as_deref(), Some(HELLO));

    stop.cancel();
    let mut sent = Vec::new();
    for t in tasks {
        sent.push(t.await.expect("signaling task"));
    }
    let _ = caller.pc.close().await;
    let _ = callee.pc.close().await;
    let callee_sent = sent.pop().unwrap();
    (sent.pop().unwrap(), callee_sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_webrtc_peers_connect_with_signaling_through_one_hub_node() {
    let clinic = clinic(Backend::Sqlite, &[]).await;
    let p = pair(&clinic).await;
    let hub = clinic.hub_url();
    let (a, b) = connect_through_hub(&p, &hub, &hub, false).await;
    assert!(
        !a.is_empty() && !b.is_empty(),
        "candidates went through the hub"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_webrtc_peers_connect_with_signaling_across_two_hub_nodes() {
    let mut clinic = clinic(Backend::Sqlite, &[]).await;
    let hub2 = second_hub(&mut clinic).await;
    let p = pair(&clinic).await;
    connect_through_hub(&p, &clinic.hub_url(), &hub2, false).await;
}

/// Debian's coturn in `use-auth-secret` mode on a free loopback port; killed on drop.
struct Coturn {
    child: Child,
    port: u16,
    secret: String,
    dir: std::path::PathBuf,
}

impl Coturn {
    async fn start() -> Self {
        let port = crate::support::net::free_port();
        let secret = uuid::Uuid::new_v4().simple().to_string();
        let dir =
            std::env::temp_dir().join(format!("carehub-turn-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(dir.join("turnserver.log")).unwrap();
        let child = Command::new("turnserver")
            .args([
                "-n",
                "--no-cli",
                "--no-tls",
                "--no-dtls",
                "--use-auth-secret",
                &format!("--static-auth-secret={secret}"),
                "--realm=carehub.test",
                "--listening-ip=127.0.0.1",
                "--relay-ip=127.0.0.1",
                &format!("--listening-port={port}"),
                "--min-port=49152",
                "--max-port=65535",
                "--allow-loopback-peers",
                "--simple-log",
                "--log-file=stdout",
                &format!("--pidfile={}", dir.join("turnserver.pid").display()),
            ])
            .stdout(log)
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .expect("turnserver (scripts/install-deps.sh installs coturn)");
        crate::support::wait::listening("coturn to listen", port, Duration::from_secs(20)).await;
        Self {
            child,
            port,
            secret,
            dir,
        }
    }

    fn url(&self) -> String {
        format!("turn:127.0.0.1:{}", self.port)
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn clinic_with_turn(turn: &Coturn) -> Clinic {
    let url = turn.url();
    clinic(
        Backend::Sqlite,
        &[
            ("CAREHUB_ICE_SERVERS", url.as_str()),
            ("CAREHUB_TURN_SECRET", turn.secret.as_str()),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_webrtc_peers_connect_relay_only_through_coturn_with_the_hubs_credentials() {
    let turn = Coturn::start().await;
    let clinic = clinic_with_turn(&turn).await;
    let p = pair(&clinic).await;
    let hub = clinic.hub_url();
    let (a, b) = connect_through_hub(&p, &hub, &hub, true).await;
    for line in a.iter().chain(&b) {
        assert!(line.contains("typ relay"), "only relay candidates: {line}");
    }
    assert!(!a.is_empty() && !b.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coturn_refuses_an_expired_credential() {
    let turn = Coturn::start().await;
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let gather = |expires_at: i64| {
        let c = carehub_hub::turn::credential(&turn.secret, "some-user", expires_at);
        let servers = vec![RTCIceServer {
            urls: vec![turn.url()],
            username: c.username,
            credential: c.password,
        }];
        async move {
            let mut peer = peer(servers, true).await;
            let _dc = peer.pc.create_data_channel("chat", None).await.unwrap();
            let offer = peer.pc.create_offer(None).await.unwrap();
            peer.pc.set_local_description(offer).await.unwrap();
            tokio::time::timeout(CONNECT, peer.gathered.wait_for(|g| *g))
                .await
                .expect("gathering completes")
                .unwrap();
            let mut relays = 0;
            while let Ok(c) = peer.candidates.try_recv() {
                assert!(c.candidate.contains("typ relay"));
                relays += 1;
            }
            let _ = peer.pc.close().await;
            relays
        }
    };
    assert!(gather(now + 600).await > 0, "a live credential allocates");
    assert_eq!(gather(now - 60).await, 0, "an expired one does not");
}
