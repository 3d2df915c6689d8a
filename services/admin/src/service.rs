//! The admin operations and their NATS endpoints. Endpoints decode, call one method of
//! [`AdminService`], and encode; routing happens in the [`crate::routing`] actors.

use crate::config::AdminConfig;
use crate::domain::{Window, fmt_time, parse_time, text};
use crate::events::{self, view};
use crate::lifecycle::{self, Action, Party};
use crate::routing::Core;
use crate::routing::mailbox::Envelope;
use crate::routing::router::{Router, RouterMsg};
use crate::slots::GridCheck;
use crate::store::{self, Accepted, AppointmentRow, NewAppointment, Owner, SaveGroupRow};
use crate::{SPEC, idempotency, migrator, slots};
use anyhow::Context as _;
use carehub_nats::appointment::{Actor as Who, *};
use carehub_nats::audit::AuditEntry;
use carehub_nats::{
    Bus, CallContext, ErrorCode, MicroService, Principal, Role, UserStatus, WireError,
};
use carehub_runtime::db::{Db, StoreError, now_ms};
use carehub_runtime::outbox::{Pending, Relay};
use carehub_runtime::service::Running;
use ractor::ActorRef;
use std::sync::Arc;

/// The admin service's shared state. Cheap to clone.
#[derive(Clone)]
pub struct AdminService {
    inner: Arc<Inner>,
}

struct Inner {
    core: Core,
    router: ActorRef<Envelope<RouterMsg>>,
}

/// Migrates, starts the routing actors and the feeds, and serves every endpoint.
///
/// # Errors
/// When migrations fail, JetStream is unavailable or NATS refuses the subscriptions.
pub async fn start(cfg: AdminConfig, bus: Bus, db: Db) -> anyhow::Result<Running> {
    db.migrate(migrator(&db))
        .await
        .context("admin migrations")?;
    let js = async_nats::jetstream::new(bus.client().clone());
    carehub_nats::streams::ensure(&js, &carehub_nats::streams::ALL, cfg.stream_replicas)
        .await
        .context("creating the event streams")?;
    let relay = Relay::new(SPEC.name, db.clone(), js.clone());
    let running = Running::new(SPEC.name);
    let relay_task = relay.clone().spawn(running.stop_token());
    running.spawn(async move {
        let _ = relay_task.await;
    });
    let max_in_flight = cfg.max_in_flight;
    let core = Core {
        db: db.clone(),
        cfg,
        relay,
        instance: uuid::Uuid::now_v7().to_string(),
    };
    let (router, router_task) = ractor::Actor::spawn(None, Router, core.clone())
        .await
        .context("starting the router actor")?;
    let stop = running.stop_token();
    let r = router.clone();
    running.spawn(async move {
        stop.cancelled().await;
        r.stop(None);
        let _ = router_task.await;
    });
    crate::feeds::spawn(&running, &js, &core).await?;
    let svc = AdminService {
        inner: Arc::new(Inner { core, router }),
    };
    let micro = MicroService::start(&bus, SPEC, max_in_flight).await?;
    carehub_nats::serve!(micro, svc,
        RequestAppointment => request_appointment,
        BookSlot => book_slot,
        ListAppointments => list_appointments,
        GetAppointment => get_appointment,
        ListMyOffers => list_my_offers,
        AcceptOffer => accept_offer,
        DeclineOffer => decline_offer,
        CancelAppointment => cancel,
        CompleteAppointment => complete,
        MarkNoShow => no_show,
        AdminDecline => admin_decline,
        AdminReroute => admin_reroute,
        SaveGroup => save_group,
        ListGroups => list_groups,
        ListAudit => list_audit,
        RequestReschedule => request_reschedule,
        ProposeTime => propose_time,
        AnswerProposal => answer_proposal,
        CareRelation => care_relation,
        carehub_nats::comms::RecordCall => record_call,
        ConfirmedOverlapping => confirmed_overlapping,
        TakenTimes => taken,
        CancelOverlapping => cancel_overlapping,
    );
    Ok(running.serving(micro))
}

fn principal(ctx: &CallContext) -> Result<&Principal, WireError> {
    ctx.principal
        .as_ref()
        .ok_or_else(|| WireError::unauthorized("sign in first"))
}

fn active(ctx: &CallContext, role: Role) -> Result<&Principal, WireError> {
    let p = principal(ctx)?;
    if p.role != role || p.status != UserStatus::Active {
        return Err(WireError::forbidden(format!(
            "only active {}s can do this",
            role.as_str()
        )));
    }
    Ok(p)
}

fn slot_taken() -> WireError {
    WireError::new(
        ErrorCode::SlotTaken,
        "that time overlaps another confirmed appointment; pick another slot",
    )
}

fn patient_busy() -> WireError {
    WireError::new(
        ErrorCode::PatientBusy,
        "the patient already has a confirmed appointment at that time",
    )
}

/// The slot starting at `start` on the doctor's grid (its end), or the 422 saying why not:
/// `off_slot_grid` inside working hours, `validation_failed` with `outside` otherwise.
fn on_grid(d: &store::DoctorRow, start: i64, outside: &str) -> Result<i64, WireError> {
    match slots::grid(d, start) {
        GridCheck::Slot { end } => Ok(end),
        GridCheck::OffGrid => Err(WireError::new(
            ErrorCode::OffSlotGrid,
            format!(
                "start: not a slot start; this doctor's slots are {} minutes long, counted from the start of their hours",
                slots::slot_ms(d) / 60_000
            ),
        )),
        GridCheck::Outside => Err(WireError::validation(outside)),
    }
}

/// The request without its idempotency key, as the key's stored request is compared.
fn without_key(r: &impl serde::Serialize) -> Result<serde_json::Value, WireError> {
    let mut v = serde_json::to_value(r).map_err(|_| WireError::internal())?;
    if let Some(o) = v.as_object_mut() {
        o.remove("idempotency_key");
    }
    Ok(v)
}

fn not_found() -> WireError {
    WireError::not_found("appointment not found")
}

fn actor(p: &Principal, name: Option<String>) -> Who {
    Who {
        user_id: p.user_id.clone(),
        role: p.role,
        display_name: name,
    }
}

fn audit(
    p: &Principal,
    subject: Option<&str>,
    action: &str,
    reason: Option<&str>,
) -> Result<Pending, StoreError> {
    let entry = AuditEntry {
        event_id: uuid::Uuid::now_v7().to_string(),
        at: now_ms(),
        service: SPEC.name.into(),
        actor_id: p.user_id.clone(),
        actor_role: p.role.as_str().into(),
        subject_id: subject.map(str::to_owned),
        action: action.into(),
        reason: reason.map(str::to_owned),
    };
    Pending::new(
        &carehub_nats::audit::subject(SPEC.name),
        &entry.event_id,
        &entry,
    )
}

/// Records an admin action in the audit log kept by this service.
async fn record(
    db: &Db,
    p: &Principal,
    subject: Option<&str>,
    action: &str,
    reason: Option<&str>,
) -> Result<(), WireError> {
    let row = store::AuditRow {
        event_id: uuid::Uuid::now_v7().to_string(),
        at: now_ms(),
        service: SPEC.name.into(),
        actor_id: p.user_id.clone(),
        actor_role: p.role.as_str().into(),
        subject_id: subject.map(str::to_owned),
        action: action.into(),
        reason: reason.map(str::to_owned),
    };
    Ok(store::insert_audit(db, &row).await?)
}

/// A closing action on one appointment (cancel, complete, no-show, decline).
struct Closing<'a> {
    id: &'a str,
    action: Action,
    kind: AppointmentEventKind,
    reason: Option<&'a str>,
    /// Only once the appointment started by this time.
    started_by: Option<i64>,
}

fn limit(l: Option<u32>) -> Result<i64, WireError> {
    let l = i64::from(l.unwrap_or(50));
    if !(1..=200).contains(&l) {
        return Err(WireError::validation("limit: must be between 1 and 200"));
    }
    Ok(l)
}

impl AdminService {
    fn core(&self) -> &Core {
        &self.inner.core
    }

    fn db(&self) -> &Db {
        &self.inner.core.db
    }

    fn route(&self, id: &str) {
        if self
            .inner
            .router
            .cast(RouterMsg::Route(id.to_owned()).into())
            .is_err()
        {
            tracing::error!(appointment_id = %id, "router unavailable; the request is routed on restart");
        }
    }

    /// Runs `run` once per caller and `Idempotency-Key` (see [`crate::idempotency`]); without
    /// a key, simply runs it.
    async fn idempotent<F, Fut>(
        &self,
        p: &Principal,
        operation: &str,
        key: Option<&str>,
        request: serde_json::Value,
        run: F,
    ) -> Result<Appointment, WireError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Appointment, WireError>>,
    {
        let Some(key) = key else {
            return run().await;
        };
        let call = idempotency::Call {
            caller: &p.user_id,
            key,
            operation,
            request,
        };
        idempotency::once(self.db(), self.core().cfg.idempotency_ttl, call, run).await
    }

    /// Why an overlap guard refused a confirmed time: the patient's own appointment
    /// (`patient_busy`) or the doctor's (`slot_taken`).
    async fn overlap_error(
        &self,
        patient_id: &str,
        start: i64,
        end: i64,
        except: Option<&str>,
    ) -> WireError {
        match store::patient_busy(self.db(), patient_id, start, end, except).await {
            Ok(true) => patient_busy(),
            Ok(false) => slot_taken(),
            Err(e) => e.into(),
        }
    }

    /// Refuses a confirmed time the patient or the doctor already holds, before writing it
    /// (the database guard still decides races; see [`Self::overlap_error`]).
    async fn check_free(
        &self,
        patient_id: &str,
        doctor_id: &str,
        start: i64,
        end: i64,
        except: Option<&str>,
    ) -> Result<(), WireError> {
        if store::patient_busy(self.db(), patient_id, start, end, except).await? {
            return Err(patient_busy());
        }
        if store::held_by_proposal(self.db(), doctor_id, start, end, except).await? {
            return Err(slot_taken());
        }
        Ok(())
    }

    async fn doctor_name(&self, id: &str) -> Option<String> {
        store::doctor(self.db(), id)
            .await
            .ok()
            .flatten()
            .map(|d| d.display_name)
    }

    /// Checks a target exists and can be routed.
    async fn check_target(
        &self,
        t: &Target,
    ) -> Result<(&'static str, Option<String>, Option<String>, Option<String>), WireError> {
        match t {
            Target::Doctor(id) => match store::doctor(self.db(), id).await? {
                Some(d) if d.approved => Ok(("doctor", Some(id.clone()), None, None)),
                _ => Err(WireError::validation("target: unknown doctor")),
            },
            Target::Group(id) => match store::group(self.db(), id).await? {
                Some(_) => Ok(("group", None, Some(id.clone()), None)),
                None => Err(WireError::validation("target: unknown group")),
            },
            Target::Specialty(s) => {
                let s = s.trim().to_lowercase();
                let has_group = store::group_of_specialty(self.db(), &s).await?.is_some();
                if !has_group && store::doctors_of_specialty(self.db(), &s).await?.is_empty() {
                    return Err(WireError::validation(
                        "target: no doctor practises this specialty",
                    ));
                }
                Ok(("specialty", None, None, Some(s)))
            }
        }
    }

    /// A patient asks for an appointment; routing starts at once.
    ///
    /// # Errors
    /// `forbidden` for non-patients, `validation_failed` for a bad window, reason or target.
    pub async fn request_appointment(
        &self,
        ctx: &CallContext,
        r: RequestAppointment,
    ) -> Result<Appointment, WireError> {
        let p = active(ctx, Role::Patient)?;
        let key = r.idempotency_key.clone();
        let request = without_key(&r)?;
        self.idempotent(p, "request_appointment", key.as_deref(), request, || {
            self.request_once(p, r)
        })
        .await
    }

    async fn request_once(
        &self,
        p: &Principal,
        r: RequestAppointment,
    ) -> Result<Appointment, WireError> {
        let now = now_ms();
        let cfg = &self.core().cfg;
        let w = Window::parse(&r.window_start, &r.window_end, now, cfg.max_horizon)?;
        let deadline = w.final_deadline(now, cfg.max_wait, cfg.min_notice)?;
        let reason = text("reason", &r.reason, 1000)?;
        let (kind, doctor, group, specialty) = self.check_target(&r.target).await?;
        let id = uuid::Uuid::now_v7().to_string();
        let new = NewAppointment {
            id: &id,
            owner: &self.core().instance,
            patient_id: &p.user_id,
            doctor_id: doctor.as_deref(),
            group_id: group.as_deref(),
            specialty: specialty.as_deref(),
            target_kind: kind,
            status: AppointmentStatus::Requested,
            window_start: w.start,
            window_end: w.end,
            start_at: None,
            end_at: None,
            reason: &reason,
            final_deadline: deadline,
            idempotency_key: None,
            now,
        };
        let who = actor(p, None);
        let (row, fresh) = store::insert_appointment(self.db(), &new, &move |row| {
            events::one(
                AppointmentEventKind::Requested,
                row,
                None,
                Some(who.clone()),
                None,
                vec![row.patient_id.clone()],
            )
        })
        .await?;
        if fresh {
            self.core().relay.wake();
            self.route(&row.id);
        }
        Ok(view(&row))
    }

    /// A patient books a free slot of an instant-booking doctor: confirmed at once.
    ///
    /// # Errors
    /// `validation_failed` for an unknown doctor or a time that is not a free slot start,
    /// `conflict` when someone else took the slot first.
    pub async fn book_slot(
        &self,
        ctx: &CallContext,
        r: BookSlot,
    ) -> Result<Appointment, WireError> {
        let p = active(ctx, Role::Patient)?;
        let key = r.idempotency_key.clone();
        let request = without_key(&r)?;
        self.idempotent(p, "book_slot", key.as_deref(), request, || {
            self.book_once(p, r)
        })
        .await
    }

    async fn book_once(&self, p: &Principal, r: BookSlot) -> Result<Appointment, WireError> {
        let now = now_ms();
        let d = match store::doctor(self.db(), &r.doctor_id).await? {
            Some(d) if d.approved => d,
            _ => return Err(WireError::validation("doctor_id: unknown doctor")),
        };
        if !d.auto_accept {
            return Err(WireError::validation(
                "doctor_id: this doctor does not take instant bookings; send a request instead",
            ));
        }
        let start = parse_time("start", &r.start)?;
        let outside = "start: not one of the doctor's free slots";
        if start <= now {
            return Err(WireError::validation(outside));
        }
        let end = on_grid(&d, start, outside)?;
        let reason = text("reason", &r.reason, 1000)?;
        self.check_free(&p.user_id, &d.doctor_id, start, end, None)
            .await?;
        let id = uuid::Uuid::now_v7().to_string();
        let new = NewAppointment {
            id: &id,
            owner: &self.core().instance,
            patient_id: &p.user_id,
            doctor_id: Some(&d.doctor_id),
            group_id: None,
            specialty: None,
            target_kind: "slot",
            status: AppointmentStatus::Confirmed,
            window_start: start,
            window_end: end,
            start_at: Some(start),
            end_at: Some(end),
            reason: &reason,
            final_deadline: start,
            idempotency_key: None,
            now,
        };
        let who = actor(p, None);
        let result = store::insert_appointment(self.db(), &new, &move |row| {
            events::to_participants(
                AppointmentEventKind::Confirmed,
                row,
                Some(who.clone()),
                None,
            )
        })
        .await;
        match result {
            Ok((row, _)) => {
                self.core().relay.wake();
                Ok(view(&row))
            }
            Err(StoreError::Conflict(_)) => {
                Err(self.overlap_error(&p.user_id, start, end, None).await)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The caller's appointments: a patient's own, a doctor's (confirmed or offered to them),
    /// every appointment for an admin. Newest first.
    ///
    /// # Errors
    /// `validation_failed` for a bad limit.
    pub async fn list_appointments(
        &self,
        ctx: &CallContext,
        r: ListAppointments,
    ) -> Result<AppointmentPage, WireError> {
        let p = principal(ctx)?;
        let owner = match p.role {
            Role::Patient => Owner::Patient(&p.user_id),
            Role::Doctor => Owner::Doctor(&p.user_id),
            Role::Admin => Owner::Anyone,
        };
        let limit = limit(r.limit)?;
        let mut rows =
            store::list_appointments(self.db(), owner, r.status, r.cursor.as_deref(), limit + 1)
                .await?;
        let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next_cursor = if more {
            rows.last().map(|a| a.id.clone())
        } else {
            None
        };
        Ok(AppointmentPage {
            appointments: rows.iter().map(view).collect(),
            next_cursor,
        })
    }

    /// One appointment. Someone else's is `not_found`.
    ///
    /// # Errors
    /// `not_found` unless the caller is its patient, a doctor it concerns, or an admin.
    pub async fn get_appointment(
        &self,
        ctx: &CallContext,
        r: GetAppointment,
    ) -> Result<AppointmentDetail, WireError> {
        let p = principal(ctx)?;
        let a = store::appointment(self.db(), &r.id)
            .await?
            .ok_or_else(not_found)?;
        let offers = store::offers_of(self.db(), &a.id).await?;
        let visible: Vec<_> = match p.role {
            Role::Admin => offers,
            Role::Doctor => offers
                .into_iter()
                .filter(|o| o.doctor_id == p.user_id)
                .collect(),
            Role::Patient => Vec::new(),
        };
        let allowed = match p.role {
            Role::Admin => true,
            Role::Patient => a.patient_id == p.user_id,
            Role::Doctor => a.doctor_id.as_deref() == Some(&p.user_id) || !visible.is_empty(),
        };
        if !allowed {
            return Err(not_found());
        }
        Ok(AppointmentDetail {
            appointment: view(&a),
            offers: visible.iter().map(offer_view).collect(),
        })
    }

    /// A doctor's pending offers with their requests.
    ///
    /// # Errors
    /// `forbidden` for non-doctors.
    pub async fn list_my_offers(
        &self,
        ctx: &CallContext,
        _r: ListMyOffers,
    ) -> Result<OfferList, WireError> {
        let p = active(ctx, Role::Doctor)?;
        let mut offers = Vec::new();
        for o in store::pending_offers_for(self.db(), &p.user_id).await? {
            if let Some(a) = store::appointment(self.db(), &o.appointment_id).await? {
                offers.push(OfferWithAppointment {
                    offer: offer_view(&o),
                    appointment: view(&a),
                });
            }
        }
        Ok(OfferList { offers })
    }

    /// A doctor accepts their offer at a start inside the window and their working hours.
    ///
    /// # Errors
    /// `not_found` without an offer, `validation_failed` for a bad time, `conflict` when the
    /// offer closed meanwhile (another doctor won, it timed out) or the time overlaps.
    pub async fn accept_offer(
        &self,
        ctx: &CallContext,
        r: AcceptOffer,
    ) -> Result<Appointment, WireError> {
        let p = active(ctx, Role::Doctor)?;
        let key = r.idempotency_key.clone();
        let request = without_key(&r)?;
        self.idempotent(p, "accept_offer", key.as_deref(), request, || {
            self.accept_once(p, r)
        })
        .await
    }

    async fn accept_once(&self, p: &Principal, r: AcceptOffer) -> Result<Appointment, WireError> {
        let a = store::appointment(self.db(), &r.appointment_id)
            .await?
            .ok_or_else(not_found)?;
        let offers = store::offers_of(self.db(), &a.id).await?;
        // The doctor's open offer if there is one (a move of a confirmed appointment comes as a
        // second offer), else their latest.
        let Some(mine) = offers
            .iter()
            .filter(|o| o.doctor_id == p.user_id)
            .max_by_key(|o| (o.status == OfferStatus::Pending, o.id.clone()))
        else {
            return Err(not_found());
        };
        if mine.status != OfferStatus::Pending {
            return Err(WireError::conflict(format!(
                "your offer is {}; it can no longer be accepted",
                mine.status.as_str()
            )));
        }
        let d = store::doctor(self.db(), &p.user_id)
            .await?
            .ok_or_else(|| WireError::forbidden("your doctor profile is not known yet"))?;
        let start = parse_time("start", &r.start)?;
        if lifecycle::may(Party::Doctor, a.status, Action::AcceptMove)
            && a.change_by.as_deref() == Some("patient")
        {
            return self.accept_change(p, &a, &d, start).await;
        }
        let end = on_grid(
            &d,
            start,
            "start: outside your working hours or during time off",
        )?;
        if start < a.window_start || end > a.window_end {
            return Err(WireError::validation(
                "start: must lie inside the patient's preferred window",
            ));
        }
        self.check_free(&a.patient_id, &p.user_id, start, end, None)
            .await?;
        let who = actor(p, Some(d.display_name.clone()));
        let acceptance = store::Acceptance {
            appointment_id: &a.id,
            doctor_id: &p.user_id,
            start,
            end,
            now: now_ms(),
        };
        let outcome = store::accept_offer(self.db(), &acceptance, &move |row| {
            events::to_participants(
                AppointmentEventKind::Confirmed,
                row,
                Some(who.clone()),
                None,
            )
        })
        .await;
        let row = match outcome {
            Ok(Accepted::Confirmed(row)) => *row,
            Ok(Accepted::NoOffer) => {
                return Err(WireError::conflict("the offer is no longer open"));
            }
            Ok(Accepted::RequestChanged) => {
                return Err(WireError::conflict(
                    "the request changed meanwhile; reload it",
                ));
            }
            Err(StoreError::Conflict(_)) => {
                return Err(self.overlap_error(&a.patient_id, start, end, None).await);
            }
            Err(e) => return Err(e.into()),
        };
        self.core().relay.wake();
        Ok(view(&row))
    }

    /// A doctor declines their offer with a reason; the request moves on.
    ///
    /// # Errors
    /// `not_found` without a pending offer, `validation_failed` without a reason.
    pub async fn decline_offer(
        &self,
        ctx: &CallContext,
        r: DeclineOffer,
    ) -> Result<Appointment, WireError> {
        let p = active(ctx, Role::Doctor)?;
        let reason = text("reason", &r.reason, 1000)?;
        if let Some(a) = store::appointment(self.db(), &r.appointment_id).await?
            && lifecycle::may(Party::Doctor, a.status, Action::DeclineMove)
            && a.change_by.as_deref() == Some("patient")
            && a.doctor_id.as_deref() == Some(p.user_id.as_str())
        {
            return self.decline_change(p, &a, &reason).await;
        }
        let doctor = p.user_id.clone();
        let who = actor(p, self.doctor_name(&p.user_id).await);
        let reason_ev = reason.clone();
        let close = store::CloseOffer {
            appointment_id: &r.appointment_id,
            doctor_id: &p.user_id,
            to: OfferStatus::Declined,
            reason: Some(&reason),
            due_only: false,
            now: now_ms(),
        };
        let row = store::close_offer(self.db(), &close, &move |row| {
            events::one(
                AppointmentEventKind::OfferDeclined,
                row,
                Some(&doctor),
                Some(who.clone()),
                Some(&reason_ev),
                Vec::new(),
            )
        })
        .await?
        .ok_or_else(|| WireError::not_found("no open offer for this appointment"))?;
        self.core().relay.wake();
        self.route(&row.id);
        Ok(view(&row))
    }

    /// Applies a closing action of `p` (see [`Closing`]), with its event and, for an admin,
    /// an audit entry. `None` when the appointment is not in a status `p` may take it from.
    async fn close(
        &self,
        p: &Principal,
        c: Closing<'_>,
    ) -> Result<Option<AppointmentRow>, WireError> {
        let Closing {
            id,
            action,
            kind,
            reason,
            started_by,
        } = c;
        let Some(step) = lifecycle::step(action, Party::from(p.role)) else {
            return Ok(None);
        };
        let name = if p.role == Role::Doctor {
            self.doctor_name(&p.user_id).await
        } else {
            None
        };
        let who = actor(p, name);
        let reason_ev = reason.map(str::to_owned);
        let admin = (p.role == Role::Admin).then(|| p.clone());
        let audit_action = format!("appointment.{}", kind.as_str());
        let change = store::StatusChange {
            id,
            from: &step.from,
            to: step.to,
            closed_by: Some(&p.user_id),
            close_reason: reason,
            started_by,
            now: now_ms(),
        };
        let row = store::transition(self.db(), &change, &move |row| {
            let mut out =
                events::to_participants(kind, row, Some(who.clone()), reason_ev.as_deref())?;
            if let Some(a) = &admin {
                out.push(audit(
                    a,
                    Some(&row.patient_id),
                    &audit_action,
                    reason_ev.as_deref(),
                )?);
            }
            Ok(out)
        })
        .await?;
        if row.is_some() {
            self.core().relay.wake();
        }
        Ok(row)
    }

    async fn owned(&self, p: &Principal, id: &str) -> Result<AppointmentRow, WireError> {
        let a = store::appointment(self.db(), id)
            .await?
            .ok_or_else(not_found)?;
        let mine = match p.role {
            Role::Admin => true,
            Role::Patient => a.patient_id == p.user_id,
            Role::Doctor => a.doctor_id.as_deref() == Some(&p.user_id),
        };
        if !mine {
            return Err(not_found());
        }
        Ok(a)
    }

    /// Cancels: the patient or doctor before the start, an admin any time; who and why are
    /// recorded and both participants told.
    ///
    /// # Errors
    /// `not_found`, `validation_failed` without a reason, `conflict` when it can no longer be
    /// cancelled.
    pub async fn cancel(
        &self,
        ctx: &CallContext,
        r: CancelAppointment,
    ) -> Result<Appointment, WireError> {
        let p = principal(ctx)?;
        let reason = text("reason", &r.reason, 1000)?;
        let a = self.owned(p, &r.id).await?;
        // Patients and doctors only before the start; admins any open appointment.
        let action = if a.start_at.is_some_and(|s| s <= now_ms()) {
            Action::CancelStarted
        } else {
            Action::Cancel
        };
        let row = self
            .close(
                p,
                Closing {
                    id: &a.id,
                    action,
                    kind: AppointmentEventKind::Cancelled,
                    reason: Some(&reason),
                    started_by: None,
                },
            )
            .await?;
        row.map(|r| view(&r)).ok_or_else(|| {
            WireError::conflict(format!(
                "a {} appointment cannot be cancelled now",
                a.status.as_str()
            ))
        })
    }

    /// The doctor completes a confirmed appointment after its start, with notes.
    ///
    /// # Errors
    /// `not_found`, `conflict` before the start or when not confirmed.
    pub async fn complete(
        &self,
        ctx: &CallContext,
        r: CompleteAppointment,
    ) -> Result<Appointment, WireError> {
        let p = active(ctx, Role::Doctor)?;
        let notes = text("notes", &r.notes, 5000)?;
        let a = self.owned(p, &r.id).await?;
        let row = self
            .close(
                p,
                Closing {
                    id: &a.id,
                    action: Action::Complete,
                    kind: AppointmentEventKind::Completed,
                    reason: Some(&notes),
                    started_by: Some(now_ms()),
                },
            )
            .await?;
        row.map(|r| view(&r)).ok_or_else(|| {
            WireError::conflict("only a confirmed appointment that has started can be completed")
        })
    }

    /// The doctor marks a confirmed appointment a no-show after its start.
    ///
    /// # Errors
    /// `not_found`, `conflict` before the start or when not confirmed.
    pub async fn no_show(
        &self,
        ctx: &CallContext,
        r: MarkNoShow,
    ) -> Result<Appointment, WireError> {
        let p = active(ctx, Role::Doctor)?;
        let a = self.owned(p, &r.id).await?;
        let row = self
            .close(
                p,
                Closing {
                    id: &a.id,
                    action: Action::NoShow,
                    kind: AppointmentEventKind::NoShow,
                    reason: None,
                    started_by: Some(now_ms()),
                },
            )
            .await?;
        row.map(|r| view(&r)).ok_or_else(|| {
            WireError::conflict("only a confirmed appointment that has started can be a no-show")
        })
    }

    /// An admin declines an open request (typically from the admin queue).
    ///
    /// # Errors
    /// `forbidden`, `not_found`, `conflict` when it is no longer open.
    pub async fn admin_decline(
        &self,
        ctx: &CallContext,
        r: AdminDecline,
    ) -> Result<Appointment, WireError> {
        let p = active(ctx, Role::Admin)?;
        let reason = text("reason", &r.reason, 1000)?;
        let a = self.owned(p, &r.id).await?;
        let row = self
            .close(
                p,
                Closing {
                    id: &a.id,
                    action: Action::AdminDecline,
                    kind: AppointmentEventKind::Declined,
                    reason: Some(&reason),
                    started_by: None,
                },
            )
            .await?;
        row.map(|r| view(&r))
            .ok_or_else(|| WireError::conflict("only an open request can be declined"))
    }

    /// An admin sends an open request to a new target; pending offers are withdrawn.
    ///
    /// # Errors
    /// `forbidden`, `not_found`, `validation_failed` for an unknown target, `conflict` when it
    /// is no longer open.
    pub async fn admin_reroute(
        &self,
        ctx: &CallContext,
        r: AdminReroute,
    ) -> Result<Appointment, WireError> {
        let p = active(ctx, Role::Admin)?;
        // An unknown appointment is not found, whatever the target.
        self.owned(p, &r.id).await?;
        let (kind, doctor, group, specialty) = self.check_target(&r.target).await?;
        let target = store::Routing {
            kind,
            doctor_id: doctor.as_deref(),
            group_id: group.as_deref(),
            specialty: specialty.as_deref(),
        };
        let row = store::retarget(self.db(), &r.id, &target, now_ms()).await?;
        let Some(row) = row else {
            return match store::appointment(self.db(), &r.id).await? {
                Some(_) => Err(WireError::conflict("only an open request can be re-routed")),
                None => Err(not_found()),
            };
        };
        record(
            self.db(),
            p,
            Some(&row.patient_id),
            "appointment.reroute",
            None,
        )
        .await?;
        tracing::info!(appointment_id = %row.id, admin_id = %p.user_id, "request re-routed");
        self.route(&row.id);
        Ok(view(&row))
    }

    /// Creates or replaces a group (admin).
    ///
    /// # Errors
    /// `forbidden`, `validation_failed`, `conflict` for a stale version or a specialty another
    /// group already routes.
    pub async fn save_group(&self, ctx: &CallContext, r: SaveGroup) -> Result<Group, WireError> {
        let admin = active(ctx, Role::Admin)?;
        let name = text("name", &r.name, 100)?;
        let specialty = r
            .specialty
            .as_deref()
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty());
        if !(1..=7 * 86_400).contains(&r.accept_deadline_secs) {
            return Err(WireError::validation(
                "accept_deadline_secs: between 1 second and 7 days",
            ));
        }
        if r.members.is_empty() || r.members.len() > 50 {
            return Err(WireError::validation("members: 1 to 50 doctors"));
        }
        let mut seen = std::collections::HashSet::new();
        for m in &r.members {
            if !seen.insert(m) {
                return Err(WireError::validation("members: a doctor is listed twice"));
            }
            if store::doctor(self.db(), m).await?.is_none() {
                return Err(WireError::validation(format!(
                    "members: unknown doctor {m}"
                )));
            }
        }
        let id =
            r.id.clone()
                .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        if r.id.is_some() && r.expected_version.is_none() {
            return Err(WireError::validation(
                "expected_version: required to replace a group",
            ));
        }
        let row = SaveGroupRow {
            id: &id,
            name: &name,
            specialty: specialty.as_deref(),
            strategy: r.strategy,
            accept_deadline_secs: r.accept_deadline_secs,
            members: &r.members,
            expected_version: r.expected_version,
        };
        match store::save_group(self.db(), &row, now_ms()).await {
            Ok(true) => {}
            Ok(false) if store::group(self.db(), &id).await?.is_none() => {
                return Err(WireError::not_found("group not found"));
            }
            Ok(false) => {
                return Err(WireError::conflict(
                    "the group was changed meanwhile; reload it",
                ));
            }
            Err(StoreError::Conflict(_)) => {
                return Err(WireError::conflict(
                    "another group already routes this specialty",
                ));
            }
            Err(e) => return Err(e.into()),
        }
        let action = if r.id.is_some() {
            "group.replace"
        } else {
            "group.create"
        };
        record(self.db(), admin, None, action, Some(&name)).await?;
        let _ = self
            .inner
            .router
            .cast(RouterMsg::GroupChanged(id.clone()).into());
        let (g, members) = store::group(self.db(), &id)
            .await?
            .ok_or_else(WireError::internal)?;
        Ok(group_view(&g, members))
    }

    /// Every group (any signed-in user: patients book groups).
    ///
    /// # Errors
    /// `unauthorized` without a principal.
    pub async fn list_groups(
        &self,
        ctx: &CallContext,
        _r: ListGroups,
    ) -> Result<GroupList, WireError> {
        principal(ctx)?;
        let groups = store::groups(self.db()).await?;
        Ok(GroupList {
            groups: groups.into_iter().map(|(g, m)| group_view(&g, m)).collect(),
        })
    }

    /// The audit trail, newest first (admin).
    ///
    /// # Errors
    /// `forbidden`, `validation_failed` for a bad limit.
    pub async fn list_audit(
        &self,
        ctx: &CallContext,
        r: ListAudit,
    ) -> Result<AuditPage, WireError> {
        active(ctx, Role::Admin)?;
        let limit = limit(r.limit)?;
        let mut rows = store::list_audit(
            self.db(),
            r.subject_id.as_deref(),
            r.actor_id.as_deref(),
            r.cursor.as_deref(),
            limit + 1,
        )
        .await?;
        let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next_cursor = if more {
            rows.last().map(|a| a.event_id.clone())
        } else {
            None
        };
        let entries = rows
            .into_iter()
            .map(|a| AuditEntry {
                event_id: a.event_id,
                at: a.at,
                service: a.service,
                actor_id: a.actor_id,
                actor_role: a.actor_role,
                subject_id: a.subject_id,
                action: a.action,
                reason: a.reason,
            })
            .collect();
        Ok(AuditPage {
            entries,
            next_cursor,
        })
    }

    /// What relation a doctor has with a patient (asked by the patient service).
    ///
    /// # Errors
    /// On storage failure.
    pub async fn care_relation(
        &self,
        _ctx: &CallContext,
        r: CareRelation,
    ) -> Result<CareRelationReply, WireError> {
        let (open_offer, confirmed, last_completed_at) =
            store::care_relation(self.db(), &r.doctor_id, &r.patient_id).await?;
        Ok(CareRelationReply {
            open_offer,
            confirmed,
            last_completed_at,
        })
    }
}

impl AdminService {
    fn period(start: &str, end: Option<&str>) -> Result<(i64, Option<i64>), WireError> {
        let from = parse_time("start", start)?;
        let to = end.map(|e| parse_time("end", e)).transpose()?;
        if to.is_some_and(|t| t <= from) {
            return Err(WireError::validation("end: must be after start"));
        }
        Ok((from, to))
    }

    /// The times of a doctor no slot query may list as free (asked by the doctor service; the
    /// subject carries no user identity and only the doctor service may publish it).
    ///
    /// # Errors
    /// `validation_failed` for a reversed range; storage failures.
    pub async fn taken(&self, _ctx: &CallContext, r: TakenTimes) -> Result<TakenList, WireError> {
        if r.to_ms <= r.from_ms {
            return Err(WireError::validation("to: must be after from"));
        }
        let taken = store::taken(
            self.db(),
            &r.doctor_id,
            r.from_ms,
            r.to_ms,
            r.patient_id.as_deref(),
        )
        .await?;
        Ok(TakenList { taken })
    }

    /// A doctor's confirmed appointments in a period (asked before time off or disabling).
    ///
    /// # Errors
    /// `validation_failed` for a bad period.
    pub async fn confirmed_overlapping(
        &self,
        _ctx: &CallContext,
        r: ConfirmedOverlapping,
    ) -> Result<AppointmentList, WireError> {
        let (from, to) = Self::period(&r.start, r.end.as_deref())?;
        let rows = store::confirmed_overlapping(self.db(), &r.doctor_id, from, to).await?;
        Ok(AppointmentList {
            appointments: rows.iter().map(view).collect(),
        })
    }

    /// Cancels a doctor's confirmed appointments in a period, each with its own event telling
    /// the patient who cancelled and why. Returns the cancelled appointments.
    ///
    /// # Errors
    /// `validation_failed` for a bad period or reason.
    pub async fn cancel_overlapping(
        &self,
        _ctx: &CallContext,
        r: CancelOverlapping,
    ) -> Result<AppointmentList, WireError> {
        let (from, to) = Self::period(&r.start, r.end.as_deref())?;
        let reason = text("reason", &r.reason, 1000)?;
        let mut cancelled = Vec::new();
        let Some(step) = lifecycle::step(Action::CancelForAbsence, Party::System) else {
            return Ok(AppointmentList {
                appointments: cancelled,
            });
        };
        for a in store::confirmed_overlapping(self.db(), &r.doctor_id, from, to).await? {
            let who = r.actor.clone();
            let reason_ev = reason.clone();
            let change = store::StatusChange {
                id: &a.id,
                from: &step.from,
                to: step.to,
                closed_by: Some(&r.actor.user_id),
                close_reason: Some(&reason),
                started_by: None,
                now: now_ms(),
            };
            let row = store::transition(self.db(), &change, &move |row| {
                events::to_participants(
                    AppointmentEventKind::Cancelled,
                    row,
                    Some(who.clone()),
                    Some(&reason_ev),
                )
            })
            .await?;
            if let Some(row) = row {
                cancelled.push(view(&row));
            }
        }
        if !cancelled.is_empty() {
            self.core().relay.wake();
            tracing::info!(doctor_id = %r.doctor_id, count = cancelled.len(), "confirmed appointments cancelled for the doctor's absence");
        }
        Ok(AppointmentList {
            appointments: cancelled,
        })
    }
}

impl AdminService {
    /// A patient asks to move a confirmed appointment into a new window; the doctor gets an
    /// offer and the old time holds until they accept.
    ///
    /// # Errors
    /// `not_found`, `validation_failed` for a bad window, `conflict` when the appointment is
    /// not confirmed, already started, or a move is pending.
    pub async fn request_reschedule(
        &self,
        ctx: &CallContext,
        r: RequestReschedule,
    ) -> Result<Appointment, WireError> {
        let p = active(ctx, Role::Patient)?;
        let a = self.owned(p, &r.id).await?;
        let now = now_ms();
        let cfg = &self.core().cfg;
        let w = Window::parse(&r.window_start, &r.window_end, now, cfg.max_horizon)?;
        let deadline = w.final_deadline(now, cfg.offer_deadline, cfg.min_notice)?;
        let (Some(doctor), true) = (
            a.doctor_id.clone(),
            lifecycle::may(Party::Patient, a.status, Action::RequestMove)
                && a.start_at.is_some_and(|s| s > now),
        ) else {
            return Err(WireError::conflict(
                "only a confirmed appointment that has not started can be moved",
            ));
        };
        let who = actor(p, None);
        let request = store::MoveRequest {
            id: &a.id,
            doctor_id: &doctor,
            window_start: w.start,
            window_end: w.end,
            deadline,
            now,
        };
        let row = store::request_change(self.db(), &request, &move |row| {
            events::to_participants(
                AppointmentEventKind::ChangeRequested,
                row,
                Some(who.clone()),
                None,
            )
        })
        .await?
        .ok_or_else(|| WireError::conflict("a move of this appointment is already pending"))?;
        self.core().relay.wake();
        Ok(view(&row))
    }

    /// The doctor proposes a new time for a confirmed appointment; the patient answers.
    ///
    /// # Errors
    /// `not_found`, `validation_failed` for a time outside working hours, `conflict` when not
    /// confirmed or a move is pending.
    pub async fn propose_time(
        &self,
        ctx: &CallContext,
        r: ProposeTime,
    ) -> Result<Appointment, WireError> {
        let p = active(ctx, Role::Doctor)?;
        let a = self.owned(p, &r.id).await?;
        let d = store::doctor(self.db(), &p.user_id)
            .await?
            .ok_or_else(|| WireError::forbidden("your doctor profile is not known yet"))?;
        let now = now_ms();
        let start = parse_time("start", &r.start)?;
        let outside = "start: must be a future time inside your working hours";
        if start <= now {
            return Err(WireError::validation(outside));
        }
        let end = on_grid(&d, start, outside)?;
        self.check_free(&a.patient_id, &p.user_id, start, end, Some(&a.id))
            .await?;
        let who = actor(p, Some(d.display_name.clone()));
        let row = store::propose_change(self.db(), &a.id, start, end, now, &move |row| {
            events::to_participants(
                AppointmentEventKind::ChangeRequested,
                row,
                Some(who.clone()),
                None,
            )
        })
        .await?
        .ok_or_else(|| {
            WireError::conflict(
                "only a confirmed appointment without a pending move can get a new time",
            )
        })?;
        self.core().relay.wake();
        Ok(view(&row))
    }

    /// The patient accepts (the times swap in one update) or declines the doctor's proposal.
    ///
    /// # Errors
    /// `not_found`, `conflict` without a pending proposal or when the new time is taken.
    pub async fn answer_proposal(
        &self,
        ctx: &CallContext,
        r: AnswerProposal,
    ) -> Result<Appointment, WireError> {
        let p = active(ctx, Role::Patient)?;
        let a = self.owned(p, &r.id).await?;
        let (Some(start), Some(end), Some("doctor")) =
            (a.change_start, a.change_end, a.change_by.as_deref())
        else {
            return Err(WireError::conflict("there is no proposed time to answer"));
        };
        let who = actor(p, None);
        let answer = store::MoveAnswer {
            id: &a.id,
            by: "doctor",
            offer_doctor: None,
            reason: None,
            now: now_ms(),
        };
        let result = if r.accept {
            store::apply_change(self.db(), &answer, start, end, &move |row| {
                events::to_participants(
                    AppointmentEventKind::Rescheduled,
                    row,
                    Some(who.clone()),
                    None,
                )
            })
            .await
        } else {
            store::drop_change(self.db(), &answer, &move |row| {
                events::to_participants(
                    AppointmentEventKind::ChangeDeclined,
                    row,
                    Some(who.clone()),
                    None,
                )
            })
            .await
        };
        let row = match result {
            Ok(Some(row)) => row,
            Ok(None) => {
                return Err(WireError::conflict(
                    "the proposal changed meanwhile; reload it",
                ));
            }
            Err(StoreError::Conflict(_)) => {
                return Err(self
                    .overlap_error(&a.patient_id, start, end, Some(&a.id))
                    .await);
            }
            Err(e) => return Err(e.into()),
        };
        self.core().relay.wake();
        Ok(view(&row))
    }

    /// The doctor accepts a patient's move: the new time replaces the old in one update.
    async fn accept_change(
        &self,
        p: &Principal,
        a: &AppointmentRow,
        d: &store::DoctorRow,
        start: i64,
    ) -> Result<Appointment, WireError> {
        let (Some(ws), Some(we)) = (a.change_window_start, a.change_window_end) else {
            return Err(WireError::conflict("there is no move to accept"));
        };
        let end = on_grid(
            d,
            start,
            "start: outside your working hours or during time off",
        )?;
        if start < ws || end > we {
            return Err(WireError::validation(
                "start: must lie inside the patient's new window",
            ));
        }
        self.check_free(&a.patient_id, &p.user_id, start, end, Some(&a.id))
            .await?;
        let who = actor(p, Some(d.display_name.clone()));
        let answer = store::MoveAnswer {
            id: &a.id,
            by: "patient",
            offer_doctor: Some(&p.user_id),
            reason: None,
            now: now_ms(),
        };
        let result = store::apply_change(self.db(), &answer, start, end, &move |row| {
            events::to_participants(
                AppointmentEventKind::Rescheduled,
                row,
                Some(who.clone()),
                None,
            )
        })
        .await;
        match result {
            Ok(Some(row)) => {
                self.core().relay.wake();
                Ok(view(&row))
            }
            Ok(None) => Err(WireError::conflict("the offer is no longer open")),
            Err(StoreError::Conflict(_)) => Err(self
                .overlap_error(&a.patient_id, start, end, Some(&a.id))
                .await),
            Err(e) => Err(e.into()),
        }
    }

    /// The doctor declines a patient's move: the old time stands.
    async fn decline_change(
        &self,
        p: &Principal,
        a: &AppointmentRow,
        reason: &str,
    ) -> Result<Appointment, WireError> {
        let who = actor(p, self.doctor_name(&p.user_id).await);
        let why = reason.to_owned();
        let answer = store::MoveAnswer {
            id: &a.id,
            by: "patient",
            offer_doctor: Some(&p.user_id),
            reason: Some(reason),
            now: now_ms(),
        };
        let row = store::drop_change(self.db(), &answer, &move |row| {
            events::to_participants(
                AppointmentEventKind::ChangeDeclined,
                row,
                Some(who.clone()),
                Some(&why),
            )
        })
        .await?
        .ok_or_else(|| WireError::not_found("no open offer for this appointment"))?;
        self.core().relay.wake();
        Ok(view(&row))
    }
}

impl AdminService {
    /// Records a finished video call on its appointment (sent by the comms hub; deployment
    /// permissions let only the hub publish it) and emits a `call_ended` event, once per call.
    ///
    /// # Errors
    /// `validation_failed` for bad times, `not_found` for an unknown appointment.
    pub async fn record_call(
        &self,
        _ctx: &CallContext,
        r: carehub_nats::comms::RecordCall,
    ) -> Result<carehub_nats::comms::CallRecorded, WireError> {
        let started = parse_time("started_at", &r.started_at)?;
        let ended = parse_time("ended_at", &r.ended_at)?;
        if ended < started {
            return Err(WireError::validation("ended_at: before started_at"));
        }
        let call_id = if r.call_id.trim().is_empty() {
            format!("{}:{started}", r.appointment_id)
        } else {
            r.call_id.clone()
        };
        if store::appointment(self.db(), &r.appointment_id)
            .await?
            .is_none()
        {
            return Err(not_found());
        }
        let row = store::record_call(
            self.db(),
            &call_id,
            &r.appointment_id,
            started,
            ended,
            &|row| {
                events::one(
                    AppointmentEventKind::CallEnded,
                    row,
                    row.doctor_id.as_deref(),
                    None,
                    None,
                    Vec::new(),
                )
            },
        )
        .await?;
        if row.is_some() {
            self.core().relay.wake();
        }
        Ok(carehub_nats::comms::CallRecorded { ok: true })
    }
}

fn offer_view(o: &store::OfferRow) -> Offer {
    Offer {
        id: o.id.clone(),
        appointment_id: o.appointment_id.clone(),
        doctor_id: o.doctor_id.clone(),
        status: o.status,
        deadline: fmt_time(o.deadline),
        created_at: fmt_time(o.created_at),
        decided_at: o.decided_at.map(fmt_time),
        reason: o.reason.clone(),
    }
}

fn group_view(g: &store::GroupRow, members: Vec<String>) -> Group {
    Group {
        id: g.id.clone(),
        name: g.name.clone(),
        specialty: g.specialty.clone(),
        strategy: g.strategy,
        accept_deadline_secs: g.accept_deadline_secs,
        members,
        version: g.version,
    }
}
