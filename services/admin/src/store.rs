//! Every SQL statement of the admin service. The same text runs on SQLite and PostgreSQL; the
//! overlap guards (triggers / exclusion constraints) live in the per-backend migrations and
//! surface here as [`StoreError::Conflict`].
//!
//! This module holds the row types; the statements are grouped by use case and re-exported
//! here: `requests` (insert, read, list, status changes, escalation, re-routing), `offers`,
//! `moves` (rescheduling), `doctors` (the local copy), `groups`, `audit`, `instances` (routing
//! leases), `people` (account names) and `queries` (what other services ask, recorded calls,
//! overlap checks).

use crate::lifecycle::Stored;
use carehub_nats::appointment::{AppointmentStatus, OfferStatus, Strategy};
use carehub_runtime::db::StoreError;
use carehub_runtime::outbox::Pending;

mod audit;
mod doctors;
mod groups;
mod instances;
mod moves;
mod offers;
mod people;
mod queries;
mod requests;

pub(crate) use audit::{insert_audit, list_audit};
pub(crate) use doctors::{doctor, doctors_of_specialty, upsert_doctor};
pub(crate) use groups::{SaveGroupRow, group, group_of_specialty, groups, save_group};
pub(crate) use instances::{adopt_orphans, release_lease, renew_lease};
pub(crate) use moves::{
    MoveAnswer, MoveOutcome, MoveRequest, answer_change, propose_change, request_change,
};
pub(crate) use offers::{
    Acceptance, Accepted, CloseOffer, NewOffers, accept_offer, busy, close_offer, create_offers,
    due_offers, load, offers_of, pending_offers_for, tried_doctors,
};
pub(crate) use people::{names, upsert_person};
pub(crate) use queries::{
    care_relation, confirmed_overlapping, doctor_and_taken, holders, patient_busy, record_call,
    taken,
};
pub(crate) use requests::{
    NewAppointment, Owner, Routing, StatusChange, appointment, due_expiries, escalate,
    insert_appointment, list_appointments, open_appointments, owned_waiting, retarget, transition,
};

/// A row of `appointments`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct AppointmentRow {
    pub(crate) id: String,
    pub(crate) patient_id: String,
    pub(crate) doctor_id: Option<String>,
    pub(crate) group_id: Option<String>,
    pub(crate) specialty: Option<String>,
    pub(crate) target_kind: String,
    #[sqlx(try_from = "Stored")]
    pub(crate) status: AppointmentStatus,
    pub(crate) window_start: i64,
    pub(crate) window_end: i64,
    pub(crate) start_at: Option<i64>,
    pub(crate) end_at: Option<i64>,
    pub(crate) reason: String,
    pub(crate) closed_by: Option<String>,
    pub(crate) close_reason: Option<String>,
    pub(crate) in_admin_queue: bool,
    pub(crate) final_deadline: i64,
    pub(crate) created_at: i64,
    pub(crate) version: i64,
    /// A pending move: who asked (`patient`: a new window; `doctor`: a proposed time).
    pub(crate) change_by: Option<String>,
    pub(crate) change_window_start: Option<i64>,
    pub(crate) change_window_end: Option<i64>,
    pub(crate) change_start: Option<i64>,
    pub(crate) change_end: Option<i64>,
    pub(crate) last_call_started: Option<i64>,
    pub(crate) last_call_ended: Option<i64>,
    pub(crate) call_seconds: i64,
}

const APPT_COLS: &str = "id, patient_id, doctor_id, group_id, specialty, target_kind, status, window_start, window_end, start_at, end_at, reason, closed_by, close_reason, in_admin_queue, final_deadline, created_at, version, change_by, change_window_start, change_window_end, change_start, change_end, last_call_started, last_call_ended, call_seconds";

/// A row of `offers`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct OfferRow {
    pub(crate) id: String,
    pub(crate) appointment_id: String,
    pub(crate) doctor_id: String,
    #[sqlx(try_from = "Stored")]
    pub(crate) status: OfferStatus,
    pub(crate) deadline: i64,
    pub(crate) created_at: i64,
    pub(crate) decided_at: Option<i64>,
    pub(crate) reason: Option<String>,
}

const OFFER_COLS: &str =
    "id, appointment_id, doctor_id, status, deadline, created_at, decided_at, reason";

/// The local copy of a doctor.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct DoctorRow {
    pub(crate) doctor_id: String,
    pub(crate) display_name: String,
    pub(crate) specialties: String,
    pub(crate) approved: bool,
    pub(crate) auto_accept: bool,
    pub(crate) availability: String,
    pub(crate) version: i64,
}

/// A row of `doctor_groups`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct GroupRow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) specialty: Option<String>,
    #[sqlx(try_from = "Stored")]
    pub(crate) strategy: Strategy,
    pub(crate) accept_deadline_secs: i64,
    pub(crate) rr_cursor: i64,
    pub(crate) version: i64,
}

/// Builds the outbox events for a row just written, inside the same transaction.
pub(crate) type Events<'a> =
    &'a (dyn Fn(&AppointmentRow) -> Result<Vec<Pending>, StoreError> + Send + Sync);

fn sql(s: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(s)
}
