//! Routing appointment requests with ractor actors.
//!
//! - [`router::Router`] (one per admin instance) owns the routing of every open request: it
//!   picks doctors (directly, or by asking a group actor), creates offers, escalates requests
//!   nobody can take to the admin queue, and sweeps deadlines (offers that timed out, requests
//!   past their final deadline). It supervises its children and rebuilds itself from the
//!   database in `pre_start`.
//! - [`group::GroupActor`] (one per doctor group) applies the group's strategy, one of the pure
//!   functions of [`strategy`] over a snapshot of the members.
//! - [`doctor::DoctorActor`] (one per doctor with pending offers) holds that doctor's offer
//!   deadlines as timers and times offers out when they fire.
//! - [`mailbox`] counts the messages waiting in each kind of actor's mailbox (a gauge).
//!
//! Every state change is a compare-and-set in the database, so an actor that restarts, a
//! timer that fires twice, or the periodic sweep racing a timer cannot change anything twice.
//!
//! Several admin instances may run at once. Each open request has one owner instance (the one
//! that received it), recorded on the row; only the owner routes it and sweeps its deadlines.
//! Every instance renews a lease in `admin_instances` at each sweep; when an instance stops
//! renewing (it crashed, or was killed), the first live instance to notice adopts its open
//! requests, one compare-and-set per request, and rebuilds their timers. A clean shutdown
//! releases the lease so the others adopt at once.

pub(crate) mod doctor;
pub(crate) mod group;
pub(crate) mod mailbox;
pub(crate) mod router;
pub(crate) mod strategy;

use crate::config::AdminConfig;
use crate::events;
use crate::lifecycle::{self, Action, Party};
use crate::store::{self, AppointmentRow, DoctorRow};
use carehub_nats::appointment::{AppointmentEventKind, AppointmentStatus, OfferStatus};
use carehub_runtime::db::{Db, StoreError, now_ms};
use carehub_runtime::outbox::Relay;

/// What the actors need: storage, settings, and the outbox relay to wake.
#[derive(Clone)]
pub(crate) struct Core {
    pub(crate) db: Db,
    pub(crate) cfg: AdminConfig,
    pub(crate) relay: Relay,
    /// This admin instance's id: the owner of the requests it routes.
    pub(crate) instance: String,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core").finish_non_exhaustive()
    }
}

/// Whether a doctor can take a request for `[from, to)`: approved, and (when their working
/// hours are known) with at least one free slot in it.
///
/// # Errors
/// On storage failure.
pub(crate) async fn available(
    core: &Core,
    d: &DoctorRow,
    from: i64,
    to: i64,
) -> Result<bool, StoreError> {
    if !d.approved {
        return Ok(false);
    }
    let busy = store::busy(&core.db, &d.doctor_id, from, to).await?;
    Ok(crate::slots::has_free_slot(d, from, to, &busy))
}

/// Times out a doctor's offer if its deadline passed. Returns the appointment when it did.
///
/// # Errors
/// On storage failure.
pub(crate) async fn time_out(
    core: &Core,
    appointment_id: &str,
    doctor_id: &str,
) -> Result<Option<AppointmentRow>, StoreError> {
    let doctor = doctor_id.to_owned();
    let close = store::CloseOffer {
        appointment_id,
        doctor_id,
        to: OfferStatus::TimedOut,
        reason: None,
        due_only: true,
        now: now_ms(),
    };
    let row = store::close_offer(&core.db, &close, &move |row| {
        if row.status == AppointmentStatus::Confirmed {
            // A patient's move the doctor did not answer: the old time stands.
            let why = Some("the doctor did not answer in time");
            let notify = vec![row.patient_id.clone(), doctor.clone()];
            return events::one(
                AppointmentEventKind::ChangeDeclined,
                row,
                Some(&doctor),
                None,
                why,
                notify,
            );
        }
        events::one(
            AppointmentEventKind::OfferTimedOut,
            row,
            Some(&doctor),
            None,
            None,
            vec![doctor.clone()],
        )
    })
    .await?;
    if row.is_some() {
        core.relay.wake();
    }
    Ok(row)
}

/// Expires an open request past its final deadline; the patient is told.
///
/// # Errors
/// On storage failure.
pub(crate) async fn expire(core: &Core, id: &str) -> Result<Option<AppointmentRow>, StoreError> {
    let now = now_ms();
    let Some(step) = lifecycle::step(Action::Expire, Party::System) else {
        return Ok(None);
    };
    let change = store::StatusChange {
        id,
        from: &step.from,
        to: step.to,
        closed_by: None,
        close_reason: Some("nobody could accept the request in time"),
        started_by: None,
        now,
    };
    let row = store::transition(&core.db, &change, &|row| {
        if row.final_deadline > now {
            return Err(StoreError::Conflict("not due".into()));
        }
        events::one(
            AppointmentEventKind::Expired,
            row,
            None,
            None,
            None,
            vec![row.patient_id.clone()],
        )
    })
    .await;
    match row {
        Ok(Some(r)) => {
            core.relay.wake();
            Ok(Some(r))
        }
        Ok(None) | Err(StoreError::Conflict(_)) => Ok(None),
        Err(e) => Err(e),
    }
}
