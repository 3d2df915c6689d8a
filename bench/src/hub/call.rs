//! Call setup time: a doctor invites, the patient accepts, and two webrtc-rs peers exchange
//! their offer, answer and ICE candidates only through hub frames until both are connected on
//! loopback. The clock runs from sending `call_invite` until both peers report `connected`.

use super::ws::{self, Socket};
use anyhow::Context as _;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCIceServer, RTCPeerConnectionIceEvent, RTCPeerConnectionState,
    RTCSessionDescription,
};

const CONNECT: Duration = Duration::from_secs(30);

struct Events {
    candidates: mpsc::UnboundedSender<RTCIceCandidateInit>,
    state: watch::Sender<RTCPeerConnectionState>,
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

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.state.send(state);
    }
}

struct Peer {
    pc: Arc<dyn PeerConnection>,
    candidates: mpsc::UnboundedReceiver<RTCIceCandidateInit>,
    state: watch::Receiver<RTCPeerConnectionState>,
}

fn ice_servers(frame: &Value) -> anyhow::Result<Vec<RTCIceServer>> {
    frame["ice_servers"]
        .as_array()
        .context("a call frame without ice_servers")?
        .iter()
        .map(|s| {
            Ok(RTCIceServer {
                urls: serde_json::from_value(s["urls"].clone())?,
                username: s["username"].as_str().unwrap_or_default().to_owned(),
                credential: s["credential"].as_str().unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

async fn peer(servers: Vec<RTCIceServer>) -> anyhow::Result<Peer> {
    let (cand_tx, candidates) = mpsc::unbounded_channel();
    let (state_tx, state) = watch::channel(RTCPeerConnectionState::New);
    let cfg = RTCConfigurationBuilder::new().with_ice_servers(servers);
    let pc = Box::pin(
        PeerConnectionBuilder::new()
            .with_configuration(cfg.build())
            .with_handler(Arc::new(Events {
                candidates: cand_tx,
                state: state_tx,
            }))
            .with_udp_addrs(vec!["127.0.0.1:0"])
            .build(),
    )
    .await
    .context("creating a peer connection")?;
    Ok(Peer {
        pc: Arc::new(pc),
        candidates,
        state,
    })
}

/// Relays one peer's signaling through its hub socket until `stop`; gives the socket back.
async fn signal(
    mut ws: Socket,
    pc: Arc<dyn PeerConnection>,
    mut local: mpsc::UnboundedReceiver<RTCIceCandidateInit>,
    room: String,
    offerer: bool,
    stop: CancellationToken,
) -> anyhow::Result<Socket> {
    if offerer {
        let offer = pc.create_offer(None).await?;
        pc.set_local_description(offer.clone()).await?;
        ws::send(
            &mut ws,
            &json!({"type": "rtc_offer", "appointment_id": room, "sdp": offer.sdp}),
        )
        .await?;
    }
    let mut early: Vec<RTCIceCandidateInit> = Vec::new();
    let mut remote_set = false;
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(ws),
            Some(c) = local.recv() => {
                ws::send(&mut ws, &json!({"type": "rtc_ice", "appointment_id": room, "candidate": c})).await?;
            }
            f = ws::next(&mut ws) => {
                let f = f?;
                match f["type"].as_str().unwrap_or_default() {
                    "rtc_offer" if !offerer => {
                        let sdp = f["sdp"].as_str().unwrap_or_default().to_owned();
                        pc.set_remote_description(RTCSessionDescription::offer(sdp)?).await?;
                        remote_set = true;
                        let answer = pc.create_answer(None).await?;
                        pc.set_local_description(answer.clone()).await?;
                        ws::send(&mut ws, &json!({"type": "rtc_answer", "appointment_id": room, "sdp": answer.sdp})).await?;
                        for c in early.drain(..) {
                            pc.add_ice_candidate(c).await?;
                        }
                    }
                    "rtc_answer" if offerer => {
                        let sdp = f["sdp"].as_str().unwrap_or_default().to_owned();
                        pc.set_remote_description(RTCSessionDescription::answer(sdp)?).await?;
                        remote_set = true;
                        for c in early.drain(..) {
                            pc.add_ice_candidate(c).await?;
                        }
                    }
                    "rtc_ice" => {
                        let c: RTCIceCandidateInit = serde_json::from_value(f["candidate"].clone())?;
                        if remote_set {
                            pc.add_ice_candidate(c).await?;
                        } else {
                            early.push(c);
                        }
                    }
                    "error" => anyhow::bail!("the hub refused a signaling frame: {f}"),
                    _ => {}
                }
            }
        }
    }
}

/// One call from invite to both peers connected; the doctor hangs up afterwards. Returns the
/// setup time, and the part of it until the caller got `call_accept` (hub signaling alone).
///
/// # Errors
/// When a frame is refused, a peer fails or the peers do not connect in time.
pub async fn round(
    hub: SocketAddr,
    doctor_token: &str,
    patient_token: &str,
    room: &str,
) -> anyhow::Result<(Duration, Duration)> {
    let mut doctor = ws::signed_in(hub, None, doctor_token).await?;
    let mut patient = ws::signed_in(hub, None, patient_token).await?;
    let started = Instant::now();
    ws::send(
        &mut doctor,
        &json!({"type": "call_invite", "appointment_id": room}),
    )
    .await?;
    let joined = ws::expect(&mut doctor, "call_joined").await?;
    let ring = ws::expect(&mut patient, "call_ring").await?;
    ws::send(
        &mut patient,
        &json!({"type": "call_accept", "appointment_id": room}),
    )
    .await?;
    ws::expect(&mut doctor, "call_accept").await?;
    let accepted = started.elapsed();
    let mut caller = peer(ice_servers(&joined)?).await?;
    let mut callee = peer(ice_servers(&ring)?).await?;
    // An offer needs a media section: a data channel gives it one.
    let _dc = caller.pc.create_data_channel("bench", None).await?;
    let stop = CancellationToken::new();
    let caller_task = tokio::spawn(signal(
        doctor,
        caller.pc.clone(),
        std::mem::replace(&mut caller.candidates, mpsc::unbounded_channel().1),
        room.to_owned(),
        true,
        stop.clone(),
    ));
    let callee_task = tokio::spawn(signal(
        patient,
        callee.pc.clone(),
        std::mem::replace(&mut callee.candidates, mpsc::unbounded_channel().1),
        room.to_owned(),
        false,
        stop.clone(),
    ));
    let connected = tokio::time::timeout(CONNECT, async {
        for state in [&mut caller.state, &mut callee.state] {
            state
                .wait_for(|s| *s == RTCPeerConnectionState::Connected)
                .await?;
        }
        Ok::<_, anyhow::Error>(())
    })
    .await;
    let took = started.elapsed();
    stop.cancel();
    let doctor = caller_task.await?;
    let patient = callee_task.await?;
    let _ = caller.pc.close().await;
    let _ = callee.pc.close().await;
    connected.context("the peers did not connect in time")??;
    let (mut doctor, mut patient) = (doctor?, patient?);
    ws::send(
        &mut doctor,
        &json!({"type": "call_hangup", "appointment_id": room}),
    )
    .await?;
    ws::expect(&mut patient, "call_hangup").await?;
    Ok((took, accepted))
}
