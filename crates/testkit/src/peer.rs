//! A webrtc-rs peer connection on loopback, with what its event handler reports (local ICE
//! candidates, connection state, gathering, data-channel messages), and [`Signaling`]: the
//! offer/answer/candidate exchange as hub frames. The caller moves the frames over its own
//! websocket; [`Signaling::handle`] applies each frame that arrives and says what to send back.

use anyhow::Context as _;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCIceGatheringState, RTCIceServer, RTCIceTransportPolicy,
    RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSessionDescription,
};

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
pub struct Peer {
    pub pc: Arc<dyn PeerConnection>,
    /// Local ICE candidates, to be sent as `rtc_ice` (see [`Signaling::candidate`]).
    pub candidates: mpsc::UnboundedReceiver<RTCIceCandidateInit>,
    pub state: watch::Receiver<RTCPeerConnectionState>,
    /// Becomes `true` when ICE gathering completed.
    pub gathered: watch::Receiver<bool>,
    /// Text received on any data channel the other side opened.
    pub messages: mpsc::UnboundedReceiver<String>,
}

impl Peer {
    /// A peer bound to loopback with the given ICE servers; `relay_only` allows TURN relay
    /// candidates only, as a browser configured with `iceTransportPolicy: "relay"`.
    ///
    /// # Errors
    /// When webrtc-rs cannot build the connection.
    pub async fn new(servers: Vec<RTCIceServer>, relay_only: bool) -> anyhow::Result<Self> {
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
        .context("creating a peer connection")?;
        Ok(Self {
            pc: Arc::new(pc),
            candidates,
            state,
            gathered,
            messages,
        })
    }

    /// Takes the receiver of local candidates out (a signaling task owns it from then on).
    pub fn take_candidates(&mut self) -> mpsc::UnboundedReceiver<RTCIceCandidateInit> {
        std::mem::replace(&mut self.candidates, mpsc::unbounded_channel().1)
    }
}

/// ICE servers as the hub hands them out (`call_joined` / `call_ring`), for webrtc-rs.
///
/// # Errors
/// When the frame has no `ice_servers` list or an entry's `urls` is not a list of strings.
pub fn ice_servers(frame: &Value) -> anyhow::Result<Vec<RTCIceServer>> {
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

/// One side of the offer/answer exchange for the call in `room`. Candidates that arrive
/// before the remote description wait for it.
pub struct Signaling {
    pc: Arc<dyn PeerConnection>,
    room: String,
    offerer: bool,
    early: Vec<RTCIceCandidateInit>,
    remote_set: bool,
}

impl Signaling {
    pub fn new(pc: Arc<dyn PeerConnection>, room: &str, offerer: bool) -> Self {
        Self {
            pc,
            room: room.to_owned(),
            offerer,
            early: Vec::new(),
            remote_set: false,
        }
    }

    /// The `rtc_offer` frame to send first (the offerer only; needs a media section, e.g. a
    /// data channel).
    ///
    /// # Errors
    /// When webrtc-rs cannot make or apply the offer.
    pub async fn offer(&self) -> anyhow::Result<Value> {
        let offer = self.pc.create_offer(None).await?;
        self.pc.set_local_description(offer.clone()).await?;
        Ok(json!({"type": "rtc_offer", "appointment_id": self.room, "sdp": offer.sdp}))
    }

    /// The `rtc_ice` frame for a local candidate.
    pub fn candidate(&self, c: &RTCIceCandidateInit) -> Value {
        json!({"type": "rtc_ice", "appointment_id": self.room, "candidate": c})
    }

    /// Applies a frame from the hub; returns the frame to send back, if any (an answer to an
    /// offer). Frames that are not signaling are ignored.
    ///
    /// # Errors
    /// An `error` frame (the hub refused a signaling frame), an offer sent to the offerer, or
    /// what webrtc-rs refuses.
    pub async fn handle(&mut self, f: &Value) -> anyhow::Result<Option<Value>> {
        let mut reply = None;
        match f["type"].as_str().unwrap_or_default() {
            "rtc_offer" => {
                anyhow::ensure!(!self.offerer, "the offerer was sent an offer: {f}");
                let sdp = f["sdp"].as_str().unwrap_or_default().to_owned();
                self.pc
                    .set_remote_description(RTCSessionDescription::offer(sdp)?)
                    .await?;
                let answer = self.pc.create_answer(None).await?;
                self.pc.set_local_description(answer.clone()).await?;
                reply = Some(
                    json!({"type": "rtc_answer", "appointment_id": self.room, "sdp": answer.sdp}),
                );
                self.remote_ready().await?;
            }
            "rtc_answer" if self.offerer => {
                let sdp = f["sdp"].as_str().unwrap_or_default().to_owned();
                self.pc
                    .set_remote_description(RTCSessionDescription::answer(sdp)?)
                    .await?;
                self.remote_ready().await?;
            }
            "rtc_ice" => {
                let c: RTCIceCandidateInit = serde_json::from_value(f["candidate"].clone())?;
                if self.remote_set {
                    self.pc.add_ice_candidate(c).await?;
                } else {
                    self.early.push(c);
                }
            }
            "error" => anyhow::bail!("the hub refused a signaling frame: {f}"),
            _ => {}
        }
        Ok(reply)
    }

    async fn remote_ready(&mut self) -> anyhow::Result<()> {
        self.remote_set = true;
        for c in self.early.drain(..) {
            self.pc.add_ice_candidate(c).await?;
        }
        Ok(())
    }
}
