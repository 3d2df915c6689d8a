//! Wire types of the hub: the websocket frames clients and hub nodes exchange (documented in
//! `docs/PROTOCOL.md`), the subjects hub nodes use to reach each other's users, the presence
//! bucket, and the call record the hub sends the admin service when a call ends.
//!
//! Frames are JSON objects tagged by `type` (snake_case). Every type ignores unknown fields, so a
//! newer client or node may add fields during a rolling upgrade. A change to a snapshot in the
//! tests below is a protocol change.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Subjects and names of the hub.
pub mod subject {
    /// Micro service name of every hub node (`nats micro info hub`).
    pub const SERVICE: &str = "hub";
    /// Core NATS subject prefix of frames for one user on whichever node holds their sockets:
    /// `carehub.hub.user.<user_id>`.
    pub(crate) const HUB_USER_PREFIX: &str = "carehub.hub.user";
    /// The admin service records a finished call on the appointment.
    pub(crate) const RECORD_CALL: &str = "carehub.admin.record_call";
    /// JetStream stream of online users: the last message on `carehub.presence.<user_id>.<node>`
    /// is a [`super::PresenceEntry`], one per node holding a socket of the user.
    pub const PRESENCE_STREAM: &str = "CAREHUB_PRESENCE";
    /// Subject prefix of presence entries.
    pub const PRESENCE_PREFIX: &str = "carehub.presence";
    /// Core NATS subject prefix of presence changes: a node publishes on
    /// `carehub.hub.presence.<user_id>` after it wrote or removed its entry of that user.
    pub const PRESENCE_CHANGED_PREFIX: &str = "carehub.hub.presence";
}

/// The subject frames for `user_id` are published on.
pub fn hub_user_subject(user_id: &str) -> String {
    format!("{}.{user_id}", subject::HUB_USER_PREFIX)
}

/// Websocket close codes the hub uses (RFC 6455 private range 4000–4999 plus standard ones).
pub mod close {
    /// The hub node is shutting down; reconnect (to any node).
    pub const GOING_AWAY: u16 = 1001;
    /// A frame larger than the hard frame limit; the socket cannot continue.
    pub const TOO_BIG: u16 = 1009;
    /// An unexpected server failure.
    pub const INTERNAL: u16 = 1011;
    /// The `auth` frame was missing, malformed, or its token was refused.
    pub const UNAUTHORIZED: u16 = 4001;
    /// No `auth` frame arrived within the handshake deadline.
    pub const AUTH_TIMEOUT: u16 = 4002;
    /// The token, its session or the account was revoked (logout, disabled, password change).
    pub const REVOKED: u16 = 4003;
    /// The access token expired and no fresh `auth` frame replaced it in time.
    pub const TOKEN_EXPIRED: u16 = 4004;
    /// The client read too slowly: its outbound queue filled up.
    pub const TOO_SLOW: u16 = 4008;
    /// Nothing (not even a pong) was received for the idle timeout.
    pub const IDLE: u16 = 4009;
}

/// Limits of the frames' fields; a frame past one is answered `validation_failed`.
pub mod limits {
    /// Longest id a frame carries (`client_id`, a room or call id), in characters.
    pub const MAX_ID_CHARS: usize = 64;
    /// Messages in one `chat_history` page when `limit` is left out.
    pub const HISTORY_DEFAULT: u32 = 50;
    /// The most messages one `chat_history` page may ask for.
    pub const HISTORY_MAX: u32 = 200;
}

/// The stable code of an `error` frame. The wire form is the snake_case name; clients match on
/// it, so a rename is a protocol change. The frames schema keeps it an open string: a newer hub
/// may send a code this build reads as [`FrameErrorCode::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameErrorCode {
    /// The frame is not JSON, has an unknown `type`, or lacks a field.
    BadFrame,
    /// A field is invalid (empty chat body, bad limit, ...).
    ValidationFailed,
    /// Not signed in yet (a frame before `auth`), or a re-`auth` for another user.
    Unauthorized,
    /// The room, appointment or call does not exist or is not the caller's.
    NotFound,
    /// The caller is a participant but the action is not allowed now (appointment not
    /// confirmed, outside the call window).
    Forbidden,
    /// The call is not in a state that allows this frame.
    Conflict,
    /// A frame or chat message over its size limit.
    PayloadTooLarge,
    /// More frames per second than allowed; the frame was dropped.
    RateLimited,
    /// An SDP offer or answer that does not parse, or of the wrong kind.
    BadSdp,
    /// A service the hub depends on is not answering; retry.
    ServiceUnavailable,
    /// A `slots_watch` for a sixth doctor on one socket.
    TooManyWatches,
    /// Anything else; details are in the hub's logs.
    Internal,
    /// A code this build does not know (sent by a newer hub).
    #[serde(other)]
    Unknown,
}

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Must be the first frame; may be sent again later with a fresh token of the same user.
    Auth {
        token: String,
    },
    /// Stores a message in the appointment's room; answered by `chat_ack` after the commit.
    ChatSend {
        room: String,
        /// Client-chosen id (1–64 chars): a retry with the same id stores nothing new.
        client_id: String,
        body: String,
    },
    /// Messages older than `before_seq` (or the newest), newest page first.
    ChatHistory {
        room: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before_seq: Option<i64>,
        /// 1 to 200 messages, default 50 (`limits::HISTORY_MAX`, `limits::HISTORY_DEFAULT`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Everything after `after_seq`, for a reconnecting client.
    Resume {
        room: String,
        after_seq: i64,
    },
    /// The caller has read the room up to `seq` (stored, and relayed to the other participant).
    ChatRead {
        room: String,
        seq: i64,
    },
    /// The caller is (or stopped) typing; relayed, never stored.
    Typing {
        room: String,
        active: bool,
    },
    /// Watch a doctor's free slots in `[from, to)` (RFC 3339, at most 62 days): the hub sends
    /// `slots_changed` when that range may have changed. At most 5 doctors per socket;
    /// watching a doctor again replaces its range. Answered by `slots_watching`.
    SlotsWatch {
        doctor_id: String,
        from: String,
        to: String,
    },
    /// Stop watching a doctor's slots. Answered by `slots_unwatched`.
    SlotsUnwatch {
        doctor_id: String,
    },
    /// Whether the other participant of an appointment is online.
    PresenceGet {
        appointment_id: String,
    },
    /// Starts a call, or rejoins the appointment's open call.
    CallInvite {
        appointment_id: String,
    },
    CallAccept {
        appointment_id: String,
    },
    CallDecline {
        appointment_id: String,
    },
    /// The caller withdraws an invitation nobody accepted yet.
    CallCancel {
        appointment_id: String,
    },
    CallHangup {
        appointment_id: String,
    },
    RtcOffer {
        appointment_id: String,
        sdp: String,
    },
    RtcAnswer {
        appointment_id: String,
        sdp: String,
    },
    RtcIce {
        appointment_id: String,
        candidate: IceCandidate,
    },
}

impl ClientFrame {
    /// The frame's `type`, for error frames and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Auth { .. } => "auth",
            Self::ChatSend { .. } => "chat_send",
            Self::ChatHistory { .. } => "chat_history",
            Self::Resume { .. } => "resume",
            Self::ChatRead { .. } => "chat_read",
            Self::Typing { .. } => "typing",
            Self::SlotsWatch { .. } => "slots_watch",
            Self::SlotsUnwatch { .. } => "slots_unwatch",
            Self::PresenceGet { .. } => "presence_get",
            Self::CallInvite { .. } => "call_invite",
            Self::CallAccept { .. } => "call_accept",
            Self::CallDecline { .. } => "call_decline",
            Self::CallCancel { .. } => "call_cancel",
            Self::CallHangup { .. } => "call_hangup",
            Self::RtcOffer { .. } => "rtc_offer",
            Self::RtcAnswer { .. } => "rtc_answer",
            Self::RtcIce { .. } => "rtc_ice",
        }
    }
}

/// An ICE candidate as a browser's `RTCIceCandidateInit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IceCandidate {
    pub candidate: String,
    #[serde(default, rename = "sdpMid")]
    pub(crate) sdp_mid: Option<String>,
    #[serde(default, rename = "sdpMLineIndex")]
    pub(crate) sdp_mline_index: Option<u16>,
    #[serde(
        default,
        rename = "usernameFragment",
        skip_serializing_if = "Option::is_none"
    )]
    pub username_fragment: Option<String>,
}

/// An ICE server as a browser's `RTCIceServer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// One stored chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChatMessage {
    pub room: String,
    /// 1, 2, 3, ... per room, in commit order.
    pub seq: i64,
    pub sender_id: String,
    pub client_id: String,
    pub body: String,
    /// Unix milliseconds.
    pub sent_at: i64,
}

/// What the hub sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The `auth` frame was accepted (first time or renewal).
    Welcome {
        user_id: String,
        role: String,
        /// Token expiry, Unix seconds: send a fresh `auth` before then.
        expires_at: i64,
        /// The hub node serving this socket.
        node: String,
    },
    /// A frame could not be handled; the connection stays usable.
    Error {
        #[schemars(with = "String")]
        code: FrameErrorCode,
        message: String,
        /// The `type` of the client frame this answers, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<String>,
        /// The `client_id` of a refused `chat_send` (of a coalesced refusal: the first one).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        /// Of a coalesced refusal (`rate_limited`, `payload_too_large`, `bad_frame`): the
        /// `client_id` of the last refused `chat_send` it covers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_client_id: Option<String>,
        /// Of a coalesced refusal: how many frames it covers (1 for a single frame).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<u32>,
        /// Of a coalesced refusal: milliseconds until the socket may send a frame again
        /// without it being rate limited.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    /// The token expires soon; send a fresh `auth` frame or the socket closes (4004).
    TokenExpiring {
        expires_at: i64,
    },
    /// The caller's `chat_send` is stored (also the answer to a retry).
    ChatAck {
        room: String,
        client_id: String,
        seq: i64,
        sent_at: i64,
    },
    /// A stored message, to every socket of both participants.
    ChatMessage {
        message: ChatMessage,
    },
    /// A page of messages, oldest first; `has_more` when older ones exist.
    ChatHistory {
        room: String,
        messages: Vec<ChatMessage>,
        has_more: bool,
    },
    /// The messages after a `resume`'s `after_seq`, oldest first; `has_more` when the page was
    /// full (resume again from the last seq).
    ChatBacklog {
        room: String,
        messages: Vec<ChatMessage>,
        has_more: bool,
    },
    /// `user_id` read `room` up to `seq`.
    ChatRead {
        room: String,
        user_id: String,
        seq: i64,
    },
    Typing {
        room: String,
        user_id: String,
        active: bool,
    },
    /// A notification the notification service just stored for this user.
    Notification {
        notification: crate::notify::Notification,
        unread_count: i64,
    },
    Presence {
        appointment_id: String,
        user_id: String,
        online: bool,
    },
    /// The socket now watches the doctor's slots in this range.
    SlotsWatching {
        doctor_id: String,
        from: String,
        to: String,
    },
    SlotsUnwatched {
        doctor_id: String,
    },
    /// The doctor's free slots in `[from, to)` may have changed (a booking, a cancel, a move,
    /// new hours): ask for them again. Never says who or what.
    SlotsChanged {
        doctor_id: String,
        from: String,
        to: String,
    },
    /// To the inviter (and a rejoining participant): the call and the ICE servers to use.
    CallJoined {
        appointment_id: String,
        call_id: String,
        ice_servers: Vec<IceServer>,
    },
    /// To the invited participant: someone is calling (or rejoining an open call).
    CallRing {
        appointment_id: String,
        call_id: String,
        from: String,
        ice_servers: Vec<IceServer>,
    },
    CallAccept {
        appointment_id: String,
        call_id: String,
        from: String,
    },
    CallDecline {
        appointment_id: String,
        call_id: String,
        from: String,
    },
    CallCancel {
        appointment_id: String,
        call_id: String,
        from: String,
    },
    CallHangup {
        appointment_id: String,
        call_id: String,
        from: String,
    },
    RtcOffer {
        appointment_id: String,
        from: String,
        sdp: String,
    },
    RtcAnswer {
        appointment_id: String,
        from: String,
        sdp: String,
    },
    RtcIce {
        appointment_id: String,
        from: String,
        candidate: IceCandidate,
    },
}

impl ServerFrame {
    /// An error frame answering a client frame of type `request`.
    pub fn error(code: FrameErrorCode, message: impl Into<String>, request: Option<&str>) -> Self {
        Self::Error {
            code,
            message: message.into(),
            request: request.map(str::to_owned),
            client_id: None,
            last_client_id: None,
            count: None,
            retry_after_ms: None,
        }
    }
}

/// The JSON Schema (draft 7) of the websocket frames: [`ClientFrame`], [`ServerFrame`] and the
/// types they contain under `definitions`, the root accepting either kind of frame.
///
/// It describes what the Rust types accept (schemars' deserialize contract), so every frame the
/// hub sends fits it (the tests below check each variant). Unknown fields stay allowed, as on the
/// wire. `carehub frames-schema` prints it and `npm run gen` in web/ generates the client's frame
/// types from it: a new or changed frame means regenerating them.
pub fn frames_schema() -> serde_json::Value {
    let mut generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let client = generator.subschema_for::<ClientFrame>();
    let server = generator.subschema_for::<ServerFrame>();
    let definitions = generator.take_definitions(true);
    serde_json::json!({
        "$schema": schemars::consts::meta_schemas::DRAFT07,
        "title": "HubFrame",
        "description": "A websocket frame of the hub (docs/PROTOCOL.md): what a client sends or what the hub sends.",
        "anyOf": [client, server],
        "definitions": definitions,
    })
}

/// Value of a presence bucket key: which node last saw the user, and when (Unix ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceEntry {
    pub node: String,
    pub at: i64,
}

/// Records a finished call on its appointment (the admin service answers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordCall {
    pub appointment_id: String,
    /// The hub's call id; recording the same call twice changes nothing.
    #[serde(default)]
    pub call_id: String,
    /// RFC 3339 UTC: when the callee accepted.
    pub started_at: String,
    /// RFC 3339 UTC: when one side hung up (or the call was abandoned).
    pub ended_at: String,
}

/// The admin service's acknowledgement of a [`RecordCall`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecorded {
    pub ok: bool,
}

rpc!(RecordCall => CallRecorded, subject::RECORD_CALL, "record_call");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rpc as _;
    use crate::test_support::round_trip;
    use serde_json::json;

    fn cand() -> IceCandidate {
        IceCandidate {
            candidate: "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host".into(),
            sdp_mid: Some("0".into()),
            sdp_mline_index: Some(0),
            username_fragment: None,
        }
    }

    /// The chat message of the server frame examples.
    fn message() -> ChatMessage {
        ChatMessage {
            room: "a1".into(),
            seq: 7,
            sender_id: "u1".into(),
            client_id: "c1".into(),
            body: "hi".into(),
            sent_at: 1000,
        }
    }

    /// A coalesced refusal: an error frame with every optional field set.
    fn refusal() -> ServerFrame {
        ServerFrame::Error {
            code: FrameErrorCode::RateLimited,
            message: "slow down".into(),
            request: Some("chat_send".into()),
            client_id: Some("c1".into()),
            last_client_id: Some("c9".into()),
            count: Some(9),
            retry_after_ms: Some(50),
        }
    }

    /// The ICE servers of the call frame examples.
    fn ice_servers() -> Vec<IceServer> {
        vec![IceServer {
            urls: vec!["turn:127.0.0.1:3478".into()],
            username: Some("9:u1".into()),
            credential: Some("x".into()),
        }]
    }

    #[test]
    fn client_frames_have_stable_shapes() {
        let a = "a1".to_owned();
        let cases = vec![
            (
                ClientFrame::Auth { token: "t".into() },
                json!({"type":"auth","token":"t"}),
            ),
            (
                ClientFrame::ChatSend {
                    room: a.clone(),
                    client_id: "c1".into(),
                    body: "hi".into(),
                },
                json!({"type":"chat_send","room":"a1","client_id":"c1","body":"hi"}),
            ),
            (
                ClientFrame::ChatHistory {
                    room: a.clone(),
                    before_seq: Some(10),
                    limit: Some(5),
                },
                json!({"type":"chat_history","room":"a1","before_seq":10,"limit":5}),
            ),
            (
                ClientFrame::ChatHistory {
                    room: a.clone(),
                    before_seq: None,
                    limit: None,
                },
                json!({"type":"chat_history","room":"a1"}),
            ),
            (
                ClientFrame::Resume {
                    room: a.clone(),
                    after_seq: 3,
                },
                json!({"type":"resume","room":"a1","after_seq":3}),
            ),
            (
                ClientFrame::ChatRead {
                    room: a.clone(),
                    seq: 4,
                },
                json!({"type":"chat_read","room":"a1","seq":4}),
            ),
            (
                ClientFrame::Typing {
                    room: a.clone(),
                    active: true,
                },
                json!({"type":"typing","room":"a1","active":true}),
            ),
            (
                ClientFrame::PresenceGet {
                    appointment_id: a.clone(),
                },
                json!({"type":"presence_get","appointment_id":"a1"}),
            ),
            (
                ClientFrame::CallInvite {
                    appointment_id: a.clone(),
                },
                json!({"type":"call_invite","appointment_id":"a1"}),
            ),
            (
                ClientFrame::CallHangup {
                    appointment_id: a.clone(),
                },
                json!({"type":"call_hangup","appointment_id":"a1"}),
            ),
            (
                ClientFrame::RtcOffer {
                    appointment_id: a.clone(),
                    sdp: "v=0".into(),
                },
                json!({"type":"rtc_offer","appointment_id":"a1","sdp":"v=0"}),
            ),
            (
                ClientFrame::RtcIce {
                    appointment_id: a,
                    candidate: cand(),
                },
                json!({"type":"rtc_ice","appointment_id":"a1","candidate":{
                    "candidate":"candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host",
                    "sdpMid":"0","sdpMLineIndex":0}}),
            ),
        ];
        for (frame, snapshot) in cases {
            assert_eq!(snapshot["type"], frame.kind());
            round_trip(&frame, snapshot);
        }
    }

    #[test]
    fn server_frames_have_stable_shapes() {
        let msg = message();
        let msg_json = json!({"room":"a1","seq":7,"sender_id":"u1","client_id":"c1","body":"hi",
            "sent_at":1000});
        let cases = vec![
            (
                ServerFrame::Welcome {
                    user_id: "u1".into(),
                    role: "patient".into(),
                    expires_at: 9,
                    node: "n1".into(),
                },
                json!({"type":"welcome","user_id":"u1","role":"patient","expires_at":9,"node":"n1"}),
            ),
            (
                ServerFrame::error(FrameErrorCode::BadSdp, "no", Some("rtc_offer")),
                json!({"type":"error","code":"bad_sdp","message":"no","request":"rtc_offer"}),
            ),
            (
                refusal(),
                json!({"type":"error","code":"rate_limited","message":"slow down","request":"chat_send",
                    "client_id":"c1","last_client_id":"c9","count":9,"retry_after_ms":50}),
            ),
            (
                ServerFrame::ChatAck {
                    room: "a1".into(),
                    client_id: "c1".into(),
                    seq: 7,
                    sent_at: 1000,
                },
                json!({"type":"chat_ack","room":"a1","client_id":"c1","seq":7,"sent_at":1000}),
            ),
            (
                ServerFrame::ChatMessage {
                    message: msg.clone(),
                },
                json!({"type":"chat_message","message":msg_json}),
            ),
            (
                ServerFrame::ChatHistory {
                    room: "a1".into(),
                    messages: vec![msg.clone()],
                    has_more: true,
                },
                json!({"type":"chat_history","room":"a1","messages":[msg_json],"has_more":true}),
            ),
            (
                ServerFrame::ChatBacklog {
                    room: "a1".into(),
                    messages: vec![msg],
                    has_more: false,
                },
                json!({"type":"chat_backlog","room":"a1","messages":[msg_json],"has_more":false}),
            ),
            (
                ServerFrame::Presence {
                    appointment_id: "a1".into(),
                    user_id: "d1".into(),
                    online: true,
                },
                json!({"type":"presence","appointment_id":"a1","user_id":"d1","online":true}),
            ),
            (
                ServerFrame::CallRing {
                    appointment_id: "a1".into(),
                    call_id: "c".into(),
                    from: "u1".into(),
                    ice_servers: ice_servers(),
                },
                json!({"type":"call_ring","appointment_id":"a1","call_id":"c","from":"u1",
                    "ice_servers":[{"urls":["turn:127.0.0.1:3478"],"username":"9:u1","credential":"x"}]}),
            ),
            (
                ServerFrame::RtcIce {
                    appointment_id: "a1".into(),
                    from: "u1".into(),
                    candidate: cand(),
                },
                json!({"type":"rtc_ice","appointment_id":"a1","from":"u1","candidate":{
                    "candidate":"candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host",
                    "sdpMid":"0","sdpMLineIndex":0}}),
            ),
        ];
        for (frame, snapshot) in cases {
            round_trip(&frame, snapshot);
        }
    }

    #[test]
    fn record_call_is_an_rpc_on_the_admin_subject() {
        round_trip(
            &RecordCall {
                appointment_id: "a1".into(),
                call_id: "c1".into(),
                started_at: "2026-01-01T10:00:00Z".into(),
                ended_at: "2026-01-01T10:20:00Z".into(),
            },
            json!({"appointment_id":"a1","call_id":"c1","started_at":"2026-01-01T10:00:00Z",
                "ended_at":"2026-01-01T10:20:00Z"}),
        );
        assert_eq!(RecordCall::SUBJECT, "carehub.admin.record_call");
        assert_eq!(hub_user_subject("u1"), "carehub.hub.user.u1");
    }

    /// One frame of every client variant, with every optional field set.
    fn every_client_frame() -> Vec<ClientFrame> {
        let room = || "a1".to_owned();
        let apt = || "a1".to_owned();
        vec![
            ClientFrame::Auth { token: "t".into() },
            ClientFrame::ChatSend {
                room: room(),
                client_id: "c1".into(),
                body: "hi".into(),
            },
            ClientFrame::ChatHistory {
                room: room(),
                before_seq: Some(10),
                limit: Some(5),
            },
            ClientFrame::Resume {
                room: room(),
                after_seq: 3,
            },
            ClientFrame::ChatRead {
                room: room(),
                seq: 4,
            },
            ClientFrame::Typing {
                room: room(),
                active: true,
            },
            ClientFrame::SlotsWatch {
                doctor_id: "d1".into(),
                from: "2026-01-01T00:00:00Z".into(),
                to: "2026-01-08T00:00:00Z".into(),
            },
            ClientFrame::SlotsUnwatch {
                doctor_id: "d1".into(),
            },
            ClientFrame::PresenceGet {
                appointment_id: apt(),
            },
            ClientFrame::CallInvite {
                appointment_id: apt(),
            },
            ClientFrame::CallAccept {
                appointment_id: apt(),
            },
            ClientFrame::CallDecline {
                appointment_id: apt(),
            },
            ClientFrame::CallCancel {
                appointment_id: apt(),
            },
            ClientFrame::CallHangup {
                appointment_id: apt(),
            },
            ClientFrame::RtcOffer {
                appointment_id: apt(),
                sdp: "v=0".into(),
            },
            ClientFrame::RtcAnswer {
                appointment_id: apt(),
                sdp: "v=0".into(),
            },
            ClientFrame::RtcIce {
                appointment_id: apt(),
                candidate: IceCandidate {
                    username_fragment: Some("uf".into()),
                    ..cand()
                },
            },
        ]
    }

    /// One frame of every server variant, with every optional field set (and the error frame
    /// also without them).
    fn every_server_frame() -> Vec<ServerFrame> {
        let msg = message();
        let call = |kind: &str| {
            let frame = json!({"type":kind,"appointment_id":"a1","call_id":"c","from":"u1"});
            serde_json::from_value(frame).unwrap()
        };
        vec![
            ServerFrame::Welcome {
                user_id: "u1".into(),
                role: "patient".into(),
                expires_at: 9,
                node: "n1".into(),
            },
            ServerFrame::error(FrameErrorCode::BadFrame, "no", None),
            refusal(),
            ServerFrame::TokenExpiring { expires_at: 9 },
            ServerFrame::ChatAck {
                room: "a1".into(),
                client_id: "c1".into(),
                seq: 7,
                sent_at: 1000,
            },
            ServerFrame::ChatMessage {
                message: msg.clone(),
            },
            ServerFrame::ChatHistory {
                room: "a1".into(),
                messages: vec![msg.clone()],
                has_more: true,
            },
            ServerFrame::ChatBacklog {
                room: "a1".into(),
                messages: vec![msg],
                has_more: false,
            },
            ServerFrame::ChatRead {
                room: "a1".into(),
                user_id: "u2".into(),
                seq: 7,
            },
            ServerFrame::Typing {
                room: "a1".into(),
                user_id: "u2".into(),
                active: false,
            },
            ServerFrame::Notification {
                notification: crate::notify::Notification {
                    id: "n1".into(),
                    kind: "appointment_confirmed".into(),
                    title: "Confirmed".into(),
                    body: "See you".into(),
                    appointment_id: Some("a1".into()),
                    created_at: "2026-01-01T10:00:00Z".into(),
                    read_at: None,
                },
                unread_count: 1,
            },
            ServerFrame::Presence {
                appointment_id: "a1".into(),
                user_id: "d1".into(),
                online: true,
            },
            ServerFrame::SlotsWatching {
                doctor_id: "d1".into(),
                from: "2026-01-01T00:00:00Z".into(),
                to: "2026-01-08T00:00:00Z".into(),
            },
            ServerFrame::SlotsUnwatched {
                doctor_id: "d1".into(),
            },
            ServerFrame::SlotsChanged {
                doctor_id: "d1".into(),
                from: "2026-01-01T00:00:00Z".into(),
                to: "2026-01-08T00:00:00Z".into(),
            },
            ServerFrame::CallJoined {
                appointment_id: "a1".into(),
                call_id: "c".into(),
                ice_servers: ice_servers(),
            },
            ServerFrame::CallRing {
                appointment_id: "a1".into(),
                call_id: "c".into(),
                from: "u1".into(),
                ice_servers: ice_servers(),
            },
            call("call_accept"),
            call("call_decline"),
            call("call_cancel"),
            call("call_hangup"),
            ServerFrame::RtcOffer {
                appointment_id: "a1".into(),
                from: "u1".into(),
                sdp: "v=0".into(),
            },
            ServerFrame::RtcAnswer {
                appointment_id: "a1".into(),
                from: "u1".into(),
                sdp: "v=0".into(),
            },
            ServerFrame::RtcIce {
                appointment_id: "a1".into(),
                from: "u1".into(),
                candidate: IceCandidate {
                    sdp_mid: None,
                    sdp_mline_index: None,
                    ..cand()
                },
            },
        ]
    }

    /// A validator of one definition of [`frames_schema`] (`ClientFrame` or `ServerFrame`).
    fn validator(definition: &str) -> jsonschema::Validator {
        let mut schema = frames_schema();
        schema["anyOf"] = json!([{ "$ref": format!("#/definitions/{definition}") }]);
        jsonschema::draft7::new(&schema).unwrap()
    }

    /// The `type` tags the schema's definition of `definition` allows, sorted.
    fn schema_tags(definition: &str) -> Vec<String> {
        let schema = frames_schema();
        let mut tags: Vec<String> = schema["definitions"][definition]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                v["properties"]["type"]["const"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        tags.sort();
        tags
    }

    /// Checks every frame serde writes fits the schema, and that the frames cover every tag the
    /// schema knows (so a new variant needs an example here).
    fn check_against_schema<T: Serialize>(definition: &str, frames: &[T]) {
        let validator = validator(definition);
        let mut tags = Vec::new();
        for frame in frames {
            let value = serde_json::to_value(frame).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| e.to_string())
                .collect();
            assert!(
                errors.is_empty(),
                "{value} does not fit the {definition} schema: {errors:?}"
            );
            tags.push(value["type"].as_str().unwrap().to_owned());
        }
        tags.sort();
        tags.dedup();
        assert_eq!(
            tags,
            schema_tags(definition),
            "a {definition} variant has no example"
        );
    }

    #[test]
    fn every_client_frame_fits_the_schema() {
        check_against_schema("ClientFrame", &every_client_frame());
    }

    #[test]
    fn every_server_frame_fits_the_schema() {
        check_against_schema("ServerFrame", &every_server_frame());
    }

    #[test]
    fn the_schema_refuses_what_serde_refuses() {
        let client = validator("ClientFrame");
        let server = validator("ServerFrame");
        let refused = [
            (&client, json!({"type":"launch_missiles"})),
            (&client, json!({"type":"chat_send","room":"a1","body":"hi"})),
            (&client, json!({"type":"chat_read","room":"a1","seq":"4"})),
            (
                &client,
                json!({"type":"rtc_ice","appointment_id":"a1","candidate":{"sdpMid":"0"}}),
            ),
            (
                &server,
                json!({"type":"welcome","user_id":"u1","role":"patient","node":"n1"}),
            ),
            (
                &server,
                json!({"type":"error","code":"x","message":"m","count":-1}),
            ),
            (
                &server,
                json!({"type":"call_joined","appointment_id":"a1","call_id":"c","ice_servers":[{"urls":"turn:x"}]}),
            ),
        ];
        for (validator, frame) in refused {
            assert!(!validator.is_valid(&frame), "the schema accepts {frame}");
            let as_client = serde_json::from_value::<ClientFrame>(frame.clone()).is_err();
            let as_server = serde_json::from_value::<ServerFrame>(frame.clone()).is_err();
            assert!(as_client && as_server, "serde accepts {frame}");
        }
    }

    #[test]
    fn the_schema_keeps_unknown_fields_allowed_and_optional_fields_optional() {
        assert!(
            validator("ClientFrame").is_valid(&json!({"type":"chat_history","room":"a1","v":2}))
        );
        assert!(
            validator("ServerFrame").is_valid(&json!({"type":"error","code":"x","message":"m"}))
        );
    }

    #[test]
    fn frame_error_codes_keep_their_wire_names_and_read_new_ones_as_unknown() {
        let names = "bad_frame validation_failed unauthorized not_found forbidden conflict \
            payload_too_large rate_limited bad_sdp service_unavailable too_many_watches internal";
        for name in names.split_whitespace() {
            let code: FrameErrorCode = serde_json::from_value(json!(name)).unwrap();
            assert_ne!(code, FrameErrorCode::Unknown, "{name}");
            assert_eq!(serde_json::to_value(code).unwrap(), json!(name));
        }
        let newer = serde_json::from_value::<FrameErrorCode>(json!("from_a_newer_hub"));
        assert_eq!(newer.unwrap(), FrameErrorCode::Unknown);
    }

    #[test]
    fn unknown_fields_are_ignored_and_unknown_types_refused() {
        let f: ClientFrame =
            serde_json::from_value(json!({"type":"auth","token":"t","v":2})).unwrap();
        assert_eq!(f, ClientFrame::Auth { token: "t".into() });
        assert!(serde_json::from_value::<ClientFrame>(json!({"type":"launch_missiles"})).is_err());
    }
}
