//! Real WebRTC through the hub: two webrtc-rs peers exchange their offer, answer and ICE
//! candidates only as hub frames (on one node, and across two), reach `connected`, and a
//! data-channel message crosses. With Debian's coturn started by the test, the peers connect
//! relay-only with the credentials the hub hands out, and coturn refuses an expired one.

use crate::harness::{Backend, Clinic};
use crate::hub::{Pair, Ws, clinic, pair, second_hub};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCIceGatheringState, RTCIceServer, RTCIceTransportPolicy,
    RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSessionDescription,
};

const CONNECT: Duration = Duration::from_secs(30);
const HELLO: &str = "hello over a data channel";

/// What a peer's event handler reports.
struct Events {
    candidates: mpsc::UnboundedSender<RTCIceCandidateInit>,
    state: watch::Sender<RTCPeerConnectionState>,
    gathered: watch::Sender<bool>,
    messages: mpsc::UnboundedSender<String>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Events {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(c) = event.candidate.to_json()
            && !c.candidate.is_empty()
        {
            let _ = self.candidates.send(c);
        }
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.state.send(state);
    }

    async fn on_data_channel(&self, dc: Arc<dyn DataChannel>) {
        tokio::spawn(read_channel(dc, self.messages.clone()));
    }
}

async fn read_channel(dc: Arc<dyn DataChannel>, messages: mpsc::UnboundedSender<String>) {
    while let Some(event) = dc.poll().await {
        match event {
            DataChannelEvent::OnMessage(m) => {
                let _ = messages.send(String::from_utf8_lossy(&m.data).into_owned());
            }
            DataChannelEvent::OnClose => break,
            _ => {}
        }
    }
}

/// One webrtc-rs peer and what its handler reports.
struct Peer {
    pc: Arc<dyn PeerConnection>,
    candidates: mpsc::UnboundedReceiver<RTCIceCandidateInit>,
    state: watch::Receiver<RTCPeerConnectionState>,
    gathered: watch::Receiver<bool>,
    messages: mpsc::UnboundedReceiver<String>,
}

/// ICE servers as the hub handed them out (`call_joined` / `call_ring`), for webrtc-rs.
fn ice_servers(frame: &Value) -> Vec<RTCIceServer> {
    frame["ice_servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| RTCIceServer {
            urls: serde_json::from_value(s["urls"].clone()).unwrap(),
            username: s["username"].as_str().unwrap_or_default().to_owned(),
            credential: s["credential"].as_str().unwrap_or_default().to_owned(),
        })
        .collect()
}

async fn peer(servers: Vec<RTCIceServer>, relay_only: bool) -> Peer {
    let (cand_tx, candidates) = mpsc::unbounded_channel();
    let (state_tx, state) = watch::channel(RTCPeerConnectionState::New);
    let (gathered_tx, gathered) = watch::channel(false);
    let (msg_tx, messages) = mpsc::unbounded_channel();
    let mut cfg = RTCConfigurationBuilder::new().with_ice_servers(servers);
    if relay_only {
        cfg = cfg.with_ice_transport_policy(RTCIceTransportPolicy::Relay);
    }
    // The builder's future is large; keep it off the caller's stack.
    let pc = Box::pin(
        PeerConnectionBuilder::new()
            .with_configuration(cfg.build())
            .with_handler(Arc::new(Events {
                candidates: cand_tx,
                state: state_tx,
                gathered: gathered_tx,
                messages: msg_tx,
            }))
            .with_udp_addrs(vec!["127.0.0.1:0"])
            .build(),
    )
    .await
    .expect("peer connection");
    Peer {
        pc: Arc::new(pc),
        candidates,
        state,
        gathered,
        messages,
    }
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
    if offerer {
        let offer = pc.create_offer(None).await.unwrap();
        pc.set_local_description(offer.clone()).await.unwrap();
        ws.send(json!({"type": "rtc_offer", "appointment_id": room, "sdp": offer.sdp}))
            .await;
    }
    // Candidates that arrive before the remote description wait for it.
    let mut early: Vec<RTCIceCandidateInit> = Vec::new();
    let mut remote_set = false;
    loop {
        tokio::select! {
            () = stop.cancelled() => return sent,
            Some(c) = local.recv() => {
                sent.push(c.candidate.clone());
                ws.send(json!({"type": "rtc_ice", "appointment_id": room, "candidate": c})).await;
            }
            f = ws.next() => match f["type"].as_str().unwrap() {
                "rtc_offer" => {
                    assert!(!offerer);
                    let sdp = f["sdp"].as_str().unwrap().to_owned();
                    pc.set_remote_description(RTCSessionDescription::offer(sdp).unwrap()).await.unwrap();
                    remote_set = true;
                    let answer = pc.create_answer(None).await.unwrap();
                    pc.set_local_description(answer.clone()).await.unwrap();
                    ws.send(json!({"type": "rtc_answer", "appointment_id": room, "sdp": answer.sdp})).await;
                    for c in early.drain(..) {
                        pc.add_ice_candidate(c).await.unwrap();
                    }
                }
                "rtc_answer" => {
                    let sdp = f["sdp"].as_str().unwrap().to_owned();
                    pc.set_remote_description(RTCSessionDescription::answer(sdp).unwrap()).await.unwrap();
                    remote_set = true;
                    for c in early.drain(..) {
                        pc.add_ice_candidate(c).await.unwrap();
                    }
                }
                "rtc_ice" => {
                    let c: RTCIceCandidateInit = serde_json::from_value(f["candidate"].clone()).unwrap();
                    if remote_set {
                        pc.add_ice_candidate(c).await.unwrap();
                    } else {
                        early.push(c);
                    }
                }
                "error" => panic!("the hub refused a signaling frame: {f}"),
                _ => {}
            },
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
            std::mem::replace(&mut caller.candidates, mpsc::unbounded_channel().1),
            p.room.clone(),
            true,
            stop.clone(),
        )),
        tokio::spawn(signal(
            patient_ws,
            callee.pc.clone(),
            std::mem::replace(&mut callee.candidates, mpsc::unbounded_channel().1),
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
