//! Call setup time: a doctor invites, the patient accepts, and two webrtc-rs peers exchange
//! their offer, answer and ICE candidates only through hub frames until both are connected on
//! loopback. The clock runs from sending `call_invite` until both peers report `connected`.

use super::ws::{self, Socket};
use anyhow::Context as _;
use carehub_testkit::peer::{Peer, Signaling, ice_servers};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use webrtc::peer_connection::{PeerConnection, RTCIceCandidateInit, RTCPeerConnectionState};

const CONNECT: Duration = Duration::from_secs(30);

/// Relays one peer's signaling through its hub socket until `stop`; gives the socket back.
async fn signal(
    mut ws: Socket,
    pc: Arc<dyn PeerConnection>,
    mut local: mpsc::UnboundedReceiver<RTCIceCandidateInit>,
    room: String,
    offerer: bool,
    stop: CancellationToken,
) -> anyhow::Result<Socket> {
    let mut signaling = Signaling::new(pc, &room, offerer);
    if offerer {
        ws::send(&mut ws, &signaling.offer().await?).await?;
    }
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(ws),
            Some(c) = local.recv() => ws::send(&mut ws, &signaling.candidate(&c)).await?,
            f = ws::next(&mut ws) => {
                if let Some(reply) = signaling.handle(&f?).await? {
                    ws::send(&mut ws, &reply).await?;
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
pub(super) async fn round(
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
    let mut caller = Peer::new(ice_servers(&joined)?, false).await?;
    let mut callee = Peer::new(ice_servers(&ring)?, false).await?;
    // An offer needs a media section: a data channel gives it one.
    let _dc = caller.pc.create_data_channel("bench", None).await?;
    let stop = CancellationToken::new();
    let caller_task = tokio::spawn(signal(
        doctor,
        caller.pc.clone(),
        caller.take_candidates(),
        room.to_owned(),
        true,
        stop.clone(),
    ));
    let callee_task = tokio::spawn(signal(
        patient,
        callee.pc.clone(),
        callee.take_candidates(),
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
