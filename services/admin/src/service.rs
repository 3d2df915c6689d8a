//! The admin operations and their NATS endpoints. Endpoints decode, call one method of
//! [`AdminService`], and encode; routing happens in the [`crate::routing`] actors.
//!
//! This module starts the service and holds what every use case shares (who is calling, the
//! slot grid, idempotent calls, overlap checks); the operations live by use case in
//! `requests`, `bookings`, `offers`, `moves`, `groups`, `audit` and `queries` (what other
//! services ask or tell).

use crate::config::AdminConfig;
use crate::routing::Core;
use crate::routing::mailbox::Envelope;
use crate::routing::router::{Router, RouterMsg};
use crate::slots::GridCheck;
use crate::store::{self, AppointmentRow};
use crate::{SPEC, idempotency, migrator, slots};
use anyhow::Context as _;
use carehub_bus::Bus;
use carehub_nats::appointment::{Actor as Who, *};
use carehub_nats::{CallContext, ErrorCode, Principal, Role, UserStatus, WireError};
use carehub_runtime::db::Db;
use carehub_runtime::outbox::Relay;
use carehub_runtime::service::Running;
use ractor::ActorRef;
use std::sync::Arc;

mod audit;
mod bookings;
mod groups;
mod moves;
mod offers;
mod queries;
mod requests;

/// The admin service's shared state. Cheap to clone.
#[derive(Clone)]
pub(crate) struct AdminService {
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
    let js = carehub_bus::streams::ensure(&bus, &carehub_nats::streams::ALL, &cfg.streams)
        .await
        .context("creating the event streams")?;
    let relay = Relay::new(SPEC.name, db.clone(), js.clone()).with_options(cfg.relay);
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
    crate::feeds::spawn(&running, &js, &bus, &core);
    let svc = AdminService {
        inner: Arc::new(Inner { core, router }),
    };
    let micro = carehub_bus::serve!(&bus, SPEC, max_in_flight, svc,
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
        carehub_nats::hub::RecordCall => record_call,
        ConfirmedOverlapping => confirmed_overlapping,
        TakenTimes => taken,
        ListFreeSlots => free_slots,
        ApplyDoctor => apply_doctor,
        CancelOverlapping => cancel_overlapping,
    );
    Ok(running.serving(micro))
}

fn active(ctx: &CallContext, role: Role) -> Result<&Principal, WireError> {
    let p = ctx.caller()?;
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

fn put_names(a: &mut Appointment, names: &std::collections::HashMap<String, String>) {
    a.patient_name = names.get(&a.patient_id).cloned();
    a.doctor_name = a.doctor_id.as_ref().and_then(|d| names.get(d).cloned());
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
    async fn idempotent<R, F, Fut>(
        &self,
        p: &Principal,
        operation: &str,
        r: R,
        run: F,
    ) -> Result<Appointment, WireError>
    where
        R: idempotency::Keyed + serde::Serialize,
        F: FnOnce(R) -> Fut,
        Fut: std::future::Future<Output = Result<Appointment, WireError>>,
    {
        let Some(key) = r.idempotency_key().map(str::to_owned) else {
            return run(r).await;
        };
        let call = idempotency::Call {
            caller: &p.user_id,
            key: &key,
            operation,
            request: without_key(&r)?,
        };
        idempotency::once(self.db(), self.core().cfg.idempotency_ttl, call, || run(r)).await
    }

    /// The account names of `ids`; a failed read names nobody (the ids still say who).
    async fn names(&self, ids: &[&str]) -> std::collections::HashMap<String, String> {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        store::names(self.db(), &ids).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading account names");
            std::collections::HashMap::new()
        })
    }

    /// `a` with its patient's and doctor's names.
    async fn named(&self, mut a: Appointment) -> Appointment {
        let ids = [Some(a.patient_id.as_str()), a.doctor_id.as_deref()];
        let ids: Vec<&str> = ids.into_iter().flatten().collect();
        let names = self.names(&ids).await;
        put_names(&mut a, &names);
        a
    }

    /// `list` with every patient's and doctor's name, read at once.
    async fn named_all(&self, mut list: Vec<Appointment>) -> Vec<Appointment> {
        let ids: Vec<&str> = list
            .iter()
            .flat_map(|a| [Some(a.patient_id.as_str()), a.doctor_id.as_deref()])
            .flatten()
            .collect();
        let names = self.names(&ids).await;
        for a in &mut list {
            put_names(a, &names);
        }
        list
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
        let h = store::holders(self.db(), patient_id, doctor_id, start, end, except).await?;
        if h.patient {
            return Err(patient_busy());
        }
        if h.doctor {
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
}
