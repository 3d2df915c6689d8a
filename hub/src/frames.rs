//! What each client frame does, once the socket is authenticated: decode is done by the
//! connection, these functions check, call the store or the bus, and answer or relay.

use crate::calls;
use crate::store::{self, Appended};
use crate::{Hub, turn};
use carehub_bus::BusError;
use carehub_nats::appointment::{Appointment, AppointmentStatus, GetAppointment};
use carehub_nats::hub::limits::{HISTORY_DEFAULT, HISTORY_MAX, MAX_ID_CHARS};
use carehub_nats::hub::{ClientFrame, FrameErrorCode, IceCandidate, RecordCall, ServerFrame};
use carehub_nats::time::rfc3339_millis;
use carehub_nats::{CallContext, ErrorCode};
use carehub_runtime::db::{StoreError, now_ms};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::registry::Conn;

/// How long a participation check is reused by one socket.
const PARTICIPATION_TTL: Duration = Duration::from_secs(10);
/// Attempts at storing a message when concurrent writers take the same sequence number.
const APPEND_ATTEMPTS: usize = 8;
/// Messages in one `chat_backlog` page (the client resumes again after the last one).
const BACKLOG_PAGE: u32 = 500;

/// A frame that could not be handled: becomes an `error` frame; the socket stays open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FrameError {
    pub(crate) code: FrameErrorCode,
    pub(crate) message: String,
}

impl FrameError {
    pub(crate) fn new(code: FrameErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
    fn validation(message: impl Into<String>) -> Self {
        Self::new(FrameErrorCode::ValidationFailed, message)
    }
    fn not_found() -> Self {
        Self::new(FrameErrorCode::NotFound, "no such appointment among yours")
    }
    fn conflict(message: impl Into<String>) -> Self {
        Self::new(FrameErrorCode::Conflict, message)
    }
    fn internal() -> Self {
        Self::new(FrameErrorCode::Internal, "something went wrong; try again")
    }
}

impl From<StoreError> for FrameError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "hub store failure");
        Self::internal()
    }
}

impl From<BusError> for FrameError {
    fn from(e: BusError) -> Self {
        match e.to_wire().code {
            ErrorCode::NotFound | ErrorCode::Forbidden => Self::not_found(),
            ErrorCode::ServiceUnavailable | ErrorCode::Timeout => Self::new(
                FrameErrorCode::ServiceUnavailable,
                "the appointment service is not answering; try again shortly",
            ),
            ErrorCode::Unauthorized | ErrorCode::TokenExpired => {
                Self::new(FrameErrorCode::Unauthorized, "the token is no longer valid")
            }
            _ => {
                tracing::warn!(error = %e, "appointment lookup failed");
                Self::internal()
            }
        }
    }
}

/// One authenticated socket's state, owned by its reader task.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) conn: Arc<Conn>,
    /// The id of the socket's `/ws` request, carried by every call made for it.
    pub(crate) request_id: String,
    appointments: HashMap<String, (Instant, Appointment)>,
}

impl Session {
    pub(crate) fn new(conn: Arc<Conn>, request_id: String) -> Self {
        Self {
            conn,
            request_id,
            appointments: HashMap::new(),
        }
    }

    fn me(&self) -> &str {
        &self.conn.user_id
    }

    /// The appointment `id` if the caller is its patient or doctor; `not_found` otherwise.
    async fn participation(&mut self, hub: &Hub, id: &str) -> Result<Appointment, FrameError> {
        check_id("appointment id", id)?;
        if let Some((at, a)) = self.appointments.get(id)
            && at.elapsed() < PARTICIPATION_TTL
        {
            return Ok(a.clone());
        }
        let ctx = CallContext {
            request_id: self.request_id.clone(),
            principal: Some(self.conn.principal()),
            client_ip: None,
        };
        let detail = hub
            .bus()
            .request(&ctx, &GetAppointment { id: id.to_owned() })
            .await?;
        let a = detail.appointment;
        let me = self.me();
        if a.patient_id != me && a.doctor_id.as_deref() != Some(me) {
            return Err(FrameError::not_found());
        }
        if let Ok(who) = other(&a, me) {
            hub.presence_watches().watch(&self.conn, id, who, None);
        }
        if self.appointments.len() > 64 {
            self.appointments.clear();
        }
        self.appointments
            .insert(id.to_owned(), (Instant::now(), a.clone()));
        Ok(a)
    }
}

fn check_id(what: &str, id: &str) -> Result<(), FrameError> {
    if id.is_empty() || id.chars().count() > MAX_ID_CHARS {
        return Err(FrameError::validation(format!(
            "{what} must be 1 to {MAX_ID_CHARS} characters"
        )));
    }
    Ok(())
}

/// The participants of an appointment.
fn participants(a: &Appointment) -> Vec<&str> {
    let mut out = vec![a.patient_id.as_str()];
    if let Some(d) = a.doctor_id.as_deref() {
        out.push(d);
    }
    out
}

/// The other participant.
fn other<'a>(a: &'a Appointment, me: &str) -> Result<&'a str, FrameError> {
    if a.patient_id == me {
        a.doctor_id.as_deref().ok_or_else(|| {
            FrameError::new(
                FrameErrorCode::Forbidden,
                "the appointment has no doctor yet",
            )
        })
    } else {
        Ok(&a.patient_id)
    }
}

/// Handles one frame of an authenticated socket (`auth` is handled by the connection).
///
/// # Errors
/// A [`FrameError`] to send back as an `error` frame.
pub(crate) async fn handle(
    hub: &Hub,
    s: &mut Session,
    frame: ClientFrame,
) -> Result<(), FrameError> {
    match frame {
        ClientFrame::Auth { .. } => Ok(()),
        ClientFrame::ChatSend {
            room,
            client_id,
            body,
        } => chat_send(hub, s, &room, &client_id, &body).await,
        ClientFrame::ChatHistory {
            room,
            before_seq,
            limit,
        } => chat_history(hub, s, &room, before_seq, limit).await,
        ClientFrame::Resume { room, after_seq } => resume(hub, s, &room, after_seq).await,
        ClientFrame::ChatRead { room, seq } => chat_read(hub, s, &room, seq).await,
        ClientFrame::Typing { room, active } => {
            let a = s.participation(hub, &room).await?;
            let to = other(&a, s.me())?;
            let f = ServerFrame::Typing {
                room,
                user_id: s.me().to_owned(),
                active,
            };
            relay(hub, &[to], &f).await
        }
        ClientFrame::PresenceGet { appointment_id } => {
            let a = s.participation(hub, &appointment_id).await?;
            let who = other(&a, s.me())?.to_owned();
            let online = hub.presence().is_online(&who).await.map_err(|e| {
                tracing::warn!(error = %e, "presence read failed");
                FrameError::new(
                    FrameErrorCode::ServiceUnavailable,
                    "presence is unavailable right now",
                )
            })?;
            hub.presence_watches()
                .watch(&s.conn, &appointment_id, &who, Some(online));
            s.conn
                .reply(&ServerFrame::Presence {
                    appointment_id,
                    user_id: who,
                    online,
                })
                .await;
            Ok(())
        }
        ClientFrame::SlotsWatch {
            doctor_id,
            from,
            to,
        } => {
            check_id("doctor id", &doctor_id)?;
            let (f, t) = crate::slots::range(&from, &to).map_err(FrameError::validation)?;
            hub.slot_watches()
                .watch(&s.conn, &doctor_id, f, t)
                .map_err(|_| {
                    FrameError::new(
                        FrameErrorCode::TooManyWatches,
                        format!(
                            "a socket watches at most {} doctors' slots; unwatch one first",
                            crate::slots::MAX_WATCHES
                        ),
                    )
                })?;
            s.conn
                .reply(&ServerFrame::SlotsWatching {
                    doctor_id,
                    from,
                    to,
                })
                .await;
            Ok(())
        }
        ClientFrame::SlotsUnwatch { doctor_id } => {
            hub.slot_watches().unwatch(s.conn.id, &doctor_id);
            s.conn
                .reply(&ServerFrame::SlotsUnwatched { doctor_id })
                .await;
            Ok(())
        }
        ClientFrame::CallInvite { appointment_id } => call_invite(hub, s, &appointment_id).await,
        ClientFrame::CallAccept { appointment_id } => call_accept(hub, s, &appointment_id).await,
        ClientFrame::CallDecline { appointment_id } => {
            call_end(hub, s, &appointment_id, End::Decline).await
        }
        ClientFrame::CallCancel { appointment_id } => {
            call_end(hub, s, &appointment_id, End::Cancel).await
        }
        ClientFrame::CallHangup { appointment_id } => {
            call_end(hub, s, &appointment_id, End::Hangup).await
        }
        ClientFrame::RtcOffer {
            appointment_id,
            sdp,
        } => rtc(hub, s, &appointment_id, Signal::Offer(sdp)).await,
        ClientFrame::RtcAnswer {
            appointment_id,
            sdp,
        } => rtc(hub, s, &appointment_id, Signal::Answer(sdp)).await,
        ClientFrame::RtcIce {
            appointment_id,
            candidate,
        } => rtc(hub, s, &appointment_id, Signal::Ice(candidate)).await,
    }
}

/// Publishes `frame` to every socket of each user in `to`.
async fn relay(hub: &Hub, to: &[&str], frame: &ServerFrame) -> Result<(), FrameError> {
    for user in to {
        hub.registry()
            .send_to_user(user, frame)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "relay failed");
                FrameError::new(
                    FrameErrorCode::ServiceUnavailable,
                    "delivery is unavailable right now",
                )
            })?;
    }
    Ok(())
}

async fn chat_send(
    hub: &Hub,
    s: &mut Session,
    room: &str,
    client_id: &str,
    body: &str,
) -> Result<(), FrameError> {
    check_id("client_id", client_id)?;
    if body.trim().is_empty() {
        return Err(FrameError::validation("the message is empty"));
    }
    let max = hub.config().max_chat_chars;
    if body.chars().count() > max {
        return Err(FrameError::new(
            FrameErrorCode::PayloadTooLarge,
            format!("a message holds at most {max} characters"),
        ));
    }
    let a = s.participation(hub, room).await?;
    let mut attempt = 0;
    let appended = loop {
        attempt += 1;
        let stored = {
            let _turn = hub.chat_append_lock().await;
            store::append(hub.db(), room, s.me(), client_id, body, now_ms()).await
        };
        match stored {
            Ok(x) => break x,
            Err(e) if e.is_conflict() && attempt < APPEND_ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(2 * attempt as u64)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let (m, fresh) = match appended {
        Appended::Stored(m) => (m, true),
        Appended::Duplicate(m) => (m, false),
    };
    s.conn
        .reply(&ServerFrame::ChatAck {
            room: room.to_owned(),
            client_id: client_id.to_owned(),
            seq: m.seq,
            sent_at: m.sent_at,
        })
        .await;
    if fresh {
        relay(
            hub,
            &participants(&a),
            &ServerFrame::ChatMessage { message: m },
        )
        .await?;
    }
    Ok(())
}

async fn chat_history(
    hub: &Hub,
    s: &mut Session,
    room: &str,
    before_seq: Option<i64>,
    limit: Option<u32>,
) -> Result<(), FrameError> {
    let limit = limit.unwrap_or(HISTORY_DEFAULT);
    if !(1..=HISTORY_MAX).contains(&limit) {
        return Err(FrameError::validation(format!(
            "limit must be 1 to {HISTORY_MAX}"
        )));
    }
    if before_seq.is_some_and(|b| b < 1) {
        return Err(FrameError::validation("before_seq must be at least 1"));
    }
    s.participation(hub, room).await?;
    let (messages, has_more) = store::history(hub.db(), room, before_seq, limit).await?;
    s.conn
        .reply(&ServerFrame::ChatHistory {
            room: room.to_owned(),
            messages,
            has_more,
        })
        .await;
    Ok(())
}

async fn resume(hub: &Hub, s: &mut Session, room: &str, after_seq: i64) -> Result<(), FrameError> {
    if after_seq < 0 {
        return Err(FrameError::validation("after_seq must not be negative"));
    }
    s.participation(hub, room).await?;
    let (messages, has_more) = store::after(hub.db(), room, after_seq, BACKLOG_PAGE).await?;
    s.conn
        .reply(&ServerFrame::ChatBacklog {
            room: room.to_owned(),
            messages,
            has_more,
        })
        .await;
    Ok(())
}

async fn chat_read(hub: &Hub, s: &mut Session, room: &str, seq: i64) -> Result<(), FrameError> {
    if seq < 0 {
        return Err(FrameError::validation("seq must not be negative"));
    }
    let a = s.participation(hub, room).await?;
    if store::mark_read(hub.db(), room, s.me(), seq, now_ms()).await? {
        let f = ServerFrame::ChatRead {
            room: room.to_owned(),
            user_id: s.me().to_owned(),
            seq,
        };
        relay(hub, &participants(&a), &f).await?;
    }
    Ok(())
}

/// The appointment, if a call may happen in it now.
async fn callable(hub: &Hub, s: &mut Session, id: &str) -> Result<Appointment, FrameError> {
    let a = s.participation(hub, id).await?;
    if a.status != AppointmentStatus::Confirmed {
        return Err(FrameError::new(
            FrameErrorCode::Forbidden,
            "calls are only possible in a confirmed appointment",
        ));
    }
    let cfg = hub.config();
    calls::check_window(
        a.start.as_deref(),
        a.end.as_deref(),
        chrono::Utc::now(),
        cfg.call_early,
        cfg.call_late,
    )
    .map_err(|e| FrameError::new(FrameErrorCode::Forbidden, e.to_string()))?;
    Ok(a)
}

fn ice_for(hub: &Hub, user_id: &str) -> Vec<carehub_nats::hub::IceServer> {
    let cfg = hub.config();
    let expires = now_ms() / 1000 + i64::try_from(cfg.turn_ttl.as_secs()).unwrap_or(3_600);
    turn::ice_servers(
        &cfg.ice_servers,
        cfg.turn_secret.as_deref(),
        user_id,
        expires,
    )
}

async fn call_invite(hub: &Hub, s: &mut Session, id: &str) -> Result<(), FrameError> {
    let a = callable(hub, s, id).await?;
    let to = other(&a, s.me())?.to_owned();
    let mut attempt = 0;
    let (call, _created) = loop {
        attempt += 1;
        let call_id = uuid::Uuid::now_v7().to_string();
        match store::open_or_join_call(hub.db(), &call_id, id, s.me(), now_ms()).await {
            Ok(x) => break x,
            Err(e) if e.is_conflict() && attempt < APPEND_ATTEMPTS => {}
            Err(e) => return Err(e.into()),
        }
    };
    s.conn
        .reply(&ServerFrame::CallJoined {
            appointment_id: id.to_owned(),
            call_id: call.id.clone(),
            ice_servers: ice_for(hub, s.me()),
        })
        .await;
    let ring = ServerFrame::CallRing {
        appointment_id: id.to_owned(),
        call_id: call.id,
        from: s.me().to_owned(),
        ice_servers: ice_for(hub, &to),
    };
    relay(hub, &[&to], &ring).await
}

async fn open_call(hub: &Hub, id: &str) -> Result<store::CallRow, FrameError> {
    store::open_call(hub.db(), id)
        .await?
        .ok_or_else(|| FrameError::conflict("there is no call in this appointment"))
}

async fn call_accept(hub: &Hub, s: &mut Session, id: &str) -> Result<(), FrameError> {
    let a = callable(hub, s, id).await?;
    let to = other(&a, s.me())?.to_owned();
    let call = open_call(hub, id).await?;
    if call.state == "ringing" && call.caller_id == s.me() {
        return Err(FrameError::conflict(
            "the caller cannot accept their own call",
        ));
    }
    store::start_call(hub.db(), &call.id, now_ms()).await?;
    let f = ServerFrame::CallAccept {
        appointment_id: id.to_owned(),
        call_id: call.id,
        from: s.me().to_owned(),
    };
    relay(hub, &[&to], &f).await
}

#[derive(Debug, Clone, Copy)]
enum End {
    Decline,
    Cancel,
    Hangup,
}

async fn call_end(hub: &Hub, s: &mut Session, id: &str, how: End) -> Result<(), FrameError> {
    let a = s.participation(hub, id).await?;
    let to = other(&a, s.me())?.to_owned();
    let call = open_call(hub, id).await?;
    let caller = call.caller_id == s.me();
    let ringing = call.state == "ringing";
    let reason = match how {
        End::Decline if ringing && !caller => "declined",
        End::Cancel if ringing && caller => "cancelled",
        End::Hangup => "hangup",
        End::Decline => {
            return Err(FrameError::conflict(
                "only a ringing call to you can be declined",
            ));
        }
        End::Cancel => {
            return Err(FrameError::conflict(
                "only your own ringing call can be cancelled",
            ));
        }
    };
    let Some(ended) = store::end_call(hub.db(), &call.id, reason, now_ms()).await? else {
        return Err(FrameError::conflict("the call has already ended"));
    };
    let (appointment_id, call_id, from) = (id.to_owned(), call.id, s.me().to_owned());
    let f = match how {
        End::Decline => ServerFrame::CallDecline {
            appointment_id,
            call_id,
            from,
        },
        End::Cancel => ServerFrame::CallCancel {
            appointment_id,
            call_id,
            from,
        },
        End::Hangup => ServerFrame::CallHangup {
            appointment_id,
            call_id,
            from,
        },
    };
    relay(hub, &[&to], &f).await?;
    if let (Some(started), Some(end)) = (ended.started_at, ended.ended_at) {
        record_call(hub, &ended.appointment_id, &ended.id, started, end);
    }
    Ok(())
}

/// Tells the admin service about a finished call, in the background; a failure is logged.
fn record_call(hub: &Hub, appointment_id: &str, call_id: &str, started: i64, ended: i64) {
    let req = RecordCall {
        appointment_id: appointment_id.to_owned(),
        call_id: call_id.to_owned(),
        started_at: rfc3339_millis(started),
        ended_at: rfc3339_millis(ended),
    };
    let bus = hub.bus().clone();
    tokio::spawn(async move {
        if let Err(e) = bus.request(&CallContext::internal(), &req).await {
            tracing::warn!(error = %e, appointment_id = %req.appointment_id, "call not recorded on the appointment");
        }
    });
}

enum Signal {
    Offer(String),
    Answer(String),
    Ice(IceCandidate),
}

async fn rtc(hub: &Hub, s: &mut Session, id: &str, signal: Signal) -> Result<(), FrameError> {
    let a = s.participation(hub, id).await?;
    let to = other(&a, s.me())?.to_owned();
    open_call(hub, id).await?;
    let (appointment_id, from) = (id.to_owned(), s.me().to_owned());
    let f = match signal {
        Signal::Offer(sdp) => {
            calls::check_sdp(&sdp).map_err(|e| FrameError::new(FrameErrorCode::BadSdp, e))?;
            ServerFrame::RtcOffer {
                appointment_id,
                from,
                sdp,
            }
        }
        Signal::Answer(sdp) => {
            calls::check_sdp(&sdp).map_err(|e| FrameError::new(FrameErrorCode::BadSdp, e))?;
            ServerFrame::RtcAnswer {
                appointment_id,
                from,
                sdp,
            }
        }
        Signal::Ice(candidate) => {
            calls::check_candidate(&candidate.candidate).map_err(FrameError::validation)?;
            ServerFrame::RtcIce {
                appointment_id,
                from,
                candidate,
            }
        }
    };
    relay(hub, &[&to], &f).await
}
