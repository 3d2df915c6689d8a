//! Wire types of appointments (owned by the admin service): their events on the
//! `CAREHUB_APPOINTMENTS` stream, and the care-relation query other services use to decide
//! what a doctor may see.

use crate::rpc::Role;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Subjects of the appointment domain.
pub mod subject {
    /// Micro service name of the admin service, which owns appointments.
    pub const SERVICE: &str = "admin";
    pub(crate) const REQUEST_APPOINTMENT: &str = "carehub.api.admin.request_appointment";
    pub(crate) const BOOK_SLOT: &str = "carehub.api.admin.book_slot";
    pub const LIST_APPOINTMENTS: &str = "carehub.api.admin.list_appointments";
    pub(crate) const GET_APPOINTMENT: &str = "carehub.api.admin.get_appointment";
    pub(crate) const LIST_MY_OFFERS: &str = "carehub.api.admin.list_my_offers";
    pub(crate) const ACCEPT_OFFER: &str = "carehub.api.admin.accept_offer";
    pub(crate) const DECLINE_OFFER: &str = "carehub.api.admin.decline_offer";
    pub(crate) const CANCEL_APPOINTMENT: &str = "carehub.api.admin.cancel_appointment";
    pub(crate) const COMPLETE_APPOINTMENT: &str = "carehub.api.admin.complete_appointment";
    pub(crate) const MARK_NO_SHOW: &str = "carehub.api.admin.mark_no_show";
    pub(crate) const ADMIN_DECLINE: &str = "carehub.api.admin.admin_decline";
    pub(crate) const ADMIN_REROUTE: &str = "carehub.api.admin.admin_reroute";
    pub(crate) const SAVE_GROUP: &str = "carehub.api.admin.save_group";
    pub(crate) const LIST_GROUPS: &str = "carehub.api.admin.list_groups";
    pub(crate) const LIST_AUDIT: &str = "carehub.api.admin.list_audit";
    pub(crate) const REQUEST_RESCHEDULE: &str = "carehub.api.admin.request_reschedule";
    pub(crate) const PROPOSE_TIME: &str = "carehub.api.admin.propose_time";
    pub(crate) const ANSWER_PROPOSAL: &str = "carehub.api.admin.answer_proposal";
    /// Events: `carehub.events.appointment.<kind>` (stream `CAREHUB_APPOINTMENTS`).
    pub(crate) const EVENT_PREFIX: &str = "carehub.events.appointment";
    /// Service-to-service: what relation a doctor has with a patient right now.
    pub const CARE_RELATION: &str = "carehub.admin.care_relation";
    /// Service-to-service: a doctor's confirmed appointments in a period.
    pub(crate) const CONFIRMED_OVERLAPPING: &str = "carehub.admin.confirmed_overlapping";
    /// Service-to-service: cancel them (forced time off, a disabled doctor).
    pub(crate) const CANCEL_OVERLAPPING: &str = "carehub.admin.cancel_overlapping";
    /// Service-to-service: the times of a doctor that are not free (the doctor service asks
    /// while listing free slots).
    pub(crate) const TAKEN: &str = "carehub.admin.taken";
    /// Free slots of a doctor: asked by the gateway, answered from the copy of the doctor and
    /// the taken times in one service.
    pub(crate) const FREE_SLOTS: &str = "carehub.api.admin.free_slots";
    /// Service-to-service: the doctor service hands over a doctor's new state before it
    /// answers the change, so the next slot query or booking sees it.
    pub(crate) const APPLY_DOCTOR: &str = "carehub.admin.apply_doctor";
}

/// Where an appointment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AppointmentStatus {
    /// Waiting to be offered (or in the admin queue).
    Requested,
    /// Offered to one doctor, or to several (broadcast).
    Offered,
    Confirmed,
    Completed,
    NoShow,
    Cancelled,
    /// Nobody accepted before the final deadline.
    Expired,
    /// Declined by an admin from the queue.
    Declined,
}

impl AppointmentStatus {
    /// Every status, in a stable order.
    pub const ALL: [AppointmentStatus; 8] = [
        Self::Requested,
        Self::Offered,
        Self::Confirmed,
        Self::Completed,
        Self::NoShow,
        Self::Cancelled,
        Self::Expired,
        Self::Declined,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Offered => "offered",
            Self::Confirmed => "confirmed",
            Self::Completed => "completed",
            Self::NoShow => "no_show",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
            Self::Declined => "declined",
        }
    }

    /// Whether nothing can happen to the appointment any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::NoShow | Self::Cancelled | Self::Expired | Self::Declined
        )
    }
}

/// An appointment as its participants and admins see it. Times are RFC 3339 UTC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Appointment {
    pub id: String,
    pub patient_id: String,
    /// The patient's account name, once the admin service knows the account (replies only;
    /// events leave it out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_name: Option<String>,
    /// The doctor once confirmed (or the one a request named).
    pub doctor_id: Option<String>,
    /// That doctor's name, as [`Appointment::patient_name`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doctor_name: Option<String>,
    /// The group a request named or was routed through.
    pub group_id: Option<String>,
    pub specialty: Option<String>,
    pub status: AppointmentStatus,
    /// The patient's preferred window.
    #[schema(format = DateTime)]
    pub window_start: String,
    #[schema(format = DateTime)]
    pub window_end: String,
    /// The fixed time, once confirmed.
    #[schema(format = DateTime)]
    pub start: Option<String>,
    #[schema(format = DateTime)]
    pub end: Option<String>,
    pub reason: String,
    /// Who cancelled, declined or completed it, and why / notes.
    pub closed_by: Option<String>,
    pub close_reason: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Incremented on every transition (optimistic concurrency).
    pub version: i64,
    /// A move waiting for the other side, while the current time holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_change: Option<PendingChange>,
    /// The latest video call, once one ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_call: Option<CallSummary>,
}

/// A confirmed appointment a change would cancel, as an `appointments_affected` error lists it
/// in `details.appointments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AffectedAppointment {
    pub id: String,
    pub patient_id: String,
    /// The patient's account name, once the admin service knows the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_name: Option<String>,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub start: String,
    #[schema(format = DateTime)]
    pub end: String,
    pub status: AppointmentStatus,
}

impl AffectedAppointment {
    /// The listed form of `a`; `None` for one without a fixed time (never confirmed).
    pub fn of(a: &Appointment) -> Option<Self> {
        Some(Self {
            id: a.id.clone(),
            patient_id: a.patient_id.clone(),
            patient_name: a.patient_name.clone(),
            start: a.start.clone()?,
            end: a.end.clone()?,
            status: a.status,
        })
    }
}

/// A finished video call of an appointment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CallSummary {
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub started_at: String,
    #[schema(format = DateTime)]
    pub ended_at: String,
    /// Seconds of every call of the appointment together.
    pub total_seconds: i64,
}

/// A move of a confirmed appointment waiting for an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PendingChange {
    /// `patient` (asked for a new window; the doctor accepts by choosing a time in it) or
    /// `doctor` (proposed a time; the patient accepts or declines).
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub window_start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub window_end: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub end: Option<String>,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AppointmentEventKind {
    Requested,
    /// An offer went out to a doctor (see `doctor_id` of the event).
    Offered,
    /// A doctor declined their offer (the request moves on).
    OfferDeclined,
    /// An offer timed out (the request moves on).
    OfferTimedOut,
    /// No doctor left: the request waits in the admin queue.
    Escalated,
    Confirmed,
    /// A move of a confirmed appointment was asked for (the patient, with an offer to the
    /// doctor) or proposed (the doctor, to the patient). The old time holds meanwhile.
    ChangeRequested,
    /// The other side refused the move (or the offer timed out): the old time stands.
    ChangeDeclined,
    Rescheduled,
    /// A video call of the appointment ended (recorded by the hub).
    CallEnded,
    Cancelled,
    Completed,
    NoShow,
    Expired,
    Declined,
}

impl AppointmentEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Offered => "offered",
            Self::OfferDeclined => "offer_declined",
            Self::OfferTimedOut => "offer_timed_out",
            Self::Escalated => "escalated",
            Self::Confirmed => "confirmed",
            Self::ChangeRequested => "change_requested",
            Self::ChangeDeclined => "change_declined",
            Self::Rescheduled => "rescheduled",
            Self::CallEnded => "call_ended",
            Self::Cancelled => "cancelled",
            Self::Completed => "completed",
            Self::NoShow => "no_show",
            Self::Expired => "expired",
            Self::Declined => "declined",
        }
    }

    /// `carehub.events.appointment.<kind>`.
    pub fn subject(self) -> String {
        format!("{}.{}", subject::EVENT_PREFIX, self.as_str())
    }
}

/// Who did something.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Actor {
    pub user_id: String,
    #[schema(value_type = String)]
    pub role: Role,
    /// A display name for messages ("cancelled by Dr. X").
    pub display_name: Option<String>,
}

/// One durable appointment event. Exactly one per transition; `event_id` is the `Nats-Msg-Id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppointmentEvent {
    pub event_id: String,
    pub kind: AppointmentEventKind,
    /// Unix milliseconds.
    pub at: i64,
    /// The appointment after the transition.
    pub appointment: Appointment,
    /// The doctor an offer event concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doctor_id: Option<String>,
    /// Who caused it; `None` for the system (deadlines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The users who should hear about it.
    pub notify: Vec<String>,
}

/// What relation a doctor has with a patient right now (the patient service asks before
/// showing a medical record to a doctor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CareRelation {
    pub doctor_id: String,
    pub patient_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CareRelationReply {
    /// An offer to this doctor for this patient is pending.
    pub open_offer: bool,
    /// A confirmed appointment between them exists.
    pub confirmed: bool,
    /// The end of their most recent completed appointment, Unix milliseconds.
    pub last_completed_at: Option<i64>,
}

rpc!(CareRelation => CareRelationReply, subject::CARE_RELATION, "care_relation");

/// Where a request should go: exactly one of a doctor, a group or a specialty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Doctor(String),
    Group(String),
    Specialty(String),
}

/// A patient asks for an appointment inside a preferred window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RequestAppointment {
    pub target: Target,
    /// RFC 3339.
    pub window_start: String,
    pub window_end: String,
    /// 1..=1000 characters.
    pub reason: String,
    /// Repeating a request with the same key returns the first result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// A patient books a free slot of a doctor who allows instant booking: confirmed at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BookSlot {
    pub doctor_id: String,
    /// RFC 3339; must be the start of one of the doctor's free slots.
    pub start: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// The caller's appointments (a patient's own, a doctor's own; admins see all).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct ListAppointments {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AppointmentStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AppointmentPage {
    pub appointments: Vec<Appointment>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GetAppointment {
    pub id: String,
}

/// An offer's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OfferStatus {
    Pending,
    Accepted,
    Declined,
    Withdrawn,
    TimedOut,
}

impl OfferStatus {
    /// Every offer state, in a stable order.
    pub const ALL: [OfferStatus; 5] = [
        Self::Pending,
        Self::Accepted,
        Self::Declined,
        Self::Withdrawn,
        Self::TimedOut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Declined => "declined",
            Self::Withdrawn => "withdrawn",
            Self::TimedOut => "timed_out",
        }
    }
}

/// An appointment request offered to one doctor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Offer {
    pub id: String,
    pub appointment_id: String,
    pub doctor_id: String,
    pub status: OfferStatus,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub deadline: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub decided_at: Option<String>,
    pub reason: Option<String>,
}

/// An appointment with its offers (offers are shown to the doctors concerned and admins).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AppointmentDetail {
    pub appointment: Appointment,
    pub offers: Vec<Offer>,
}

/// A doctor's pending offers.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct ListMyOffers {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OfferList {
    pub offers: Vec<OfferWithAppointment>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OfferWithAppointment {
    pub offer: Offer,
    pub appointment: Appointment,
}

/// A doctor accepts their offer and fixes the time (a slot start inside the window).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AcceptOffer {
    pub appointment_id: String,
    pub start: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeclineOffer {
    pub appointment_id: String,
    pub reason: String,
}

/// Cancel (patient or doctor before the start; admin any time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CancelAppointment {
    pub id: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CompleteAppointment {
    pub id: String,
    pub notes: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MarkNoShow {
    pub id: String,
}

/// An admin declines a request waiting in the admin queue (or any open request).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AdminDecline {
    pub id: String,
    pub reason: String,
}

/// An admin sends an open request somewhere else; pending offers are withdrawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AdminReroute {
    pub id: String,
    pub target: Target,
}

/// How a group picks among its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Rotate fairly among available members.
    RoundRobin,
    /// The available member with the fewest open offers and confirmed appointments in the
    /// window; ties go to the member listed first.
    LeastLoaded,
    /// Offer to every available member; the first accept wins.
    Broadcast,
}

impl Strategy {
    /// Every strategy, in a stable order.
    pub const ALL: [Strategy; 3] = [Self::RoundRobin, Self::LeastLoaded, Self::Broadcast];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RoundRobin => "round_robin",
            Self::LeastLoaded => "least_loaded",
            Self::Broadcast => "broadcast",
        }
    }
}

/// A doctor group (department) and its routing rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Group {
    pub id: String,
    pub name: String,
    /// A specialty has at most one routing group.
    pub specialty: Option<String>,
    pub strategy: Strategy,
    /// Seconds a member has to accept an offer.
    pub accept_deadline_secs: i64,
    /// Member doctor ids, in order (the order breaks least-loaded ties).
    pub members: Vec<String>,
    pub version: i64,
}

/// Create or replace a group (admin).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SaveGroup {
    /// `None` creates a group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specialty: Option<String>,
    pub strategy: Strategy,
    pub accept_deadline_secs: i64,
    pub members: Vec<String>,
    /// Required when replacing: the version read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct ListGroups {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GroupList {
    pub groups: Vec<Group>,
}

/// The audit trail (admin).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct ListAudit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<crate::audit::AuditEntry>,
    pub next_cursor: Option<String>,
}

/// A patient asks to move their confirmed appointment into a new window: the doctor gets an
/// offer and accepts it by choosing a time there. Until then the old time holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RequestReschedule {
    pub id: String,
    pub window_start: String,
    pub window_end: String,
}

/// A doctor proposes a new time for a confirmed appointment; the patient answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProposeTime {
    pub id: String,
    pub start: String,
}

/// The patient accepts or declines the doctor's proposed time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AnswerProposal {
    pub id: String,
    pub accept: bool,
}

rpc!(RequestAppointment => Appointment, subject::REQUEST_APPOINTMENT, "request_appointment");
rpc!(BookSlot => Appointment, subject::BOOK_SLOT, "book_slot");
rpc!(ListAppointments => AppointmentPage, subject::LIST_APPOINTMENTS, "list_appointments");
rpc!(GetAppointment => AppointmentDetail, subject::GET_APPOINTMENT, "get_appointment");
rpc!(ListMyOffers => OfferList, subject::LIST_MY_OFFERS, "list_my_offers");
rpc!(AcceptOffer => Appointment, subject::ACCEPT_OFFER, "accept_offer");
rpc!(DeclineOffer => Appointment, subject::DECLINE_OFFER, "decline_offer");
rpc!(CancelAppointment => Appointment, subject::CANCEL_APPOINTMENT, "cancel_appointment");
rpc!(CompleteAppointment => Appointment, subject::COMPLETE_APPOINTMENT, "complete_appointment");
rpc!(MarkNoShow => Appointment, subject::MARK_NO_SHOW, "mark_no_show");
rpc!(AdminDecline => Appointment, subject::ADMIN_DECLINE, "admin_decline");
rpc!(AdminReroute => Appointment, subject::ADMIN_REROUTE, "admin_reroute");
rpc!(SaveGroup => Group, subject::SAVE_GROUP, "save_group");
rpc!(ListGroups => GroupList, subject::LIST_GROUPS, "list_groups");
rpc!(ListAudit => AuditPage, subject::LIST_AUDIT, "list_audit");
rpc!(RequestReschedule => Appointment, subject::REQUEST_RESCHEDULE, "request_reschedule");
rpc!(ProposeTime => Appointment, subject::PROPOSE_TIME, "propose_time");
rpc!(AnswerProposal => Appointment, subject::ANSWER_PROPOSAL, "answer_proposal");

/// A doctor's confirmed appointments overlapping `[start, end)`; without `end`, every one
/// from `start` on (the doctor service asks before adding time off, auth before disabling a
/// doctor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfirmedOverlapping {
    pub doctor_id: String,
    /// RFC 3339.
    pub start: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AppointmentList {
    pub appointments: Vec<Appointment>,
}

/// Cancels a doctor's confirmed appointments overlapping `[start, end)` because the doctor
/// will not be there; each patient is told who cancelled and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancelOverlapping {
    pub doctor_id: String,
    pub start: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    pub reason: String,
    /// Who forced it (the doctor adding time off, the admin disabling the doctor).
    pub actor: Actor,
}

rpc!(ConfirmedOverlapping => AppointmentList, subject::CONFIRMED_OVERLAPPING, "confirmed_overlapping");

rpc!(CancelOverlapping => AppointmentList, subject::CANCEL_OVERLAPPING, "cancel_overlapping");

/// The times in `[from, to)` that no slot query may list as free: the doctor's confirmed
/// appointments and the new times the doctor proposed for a move; with `patient_id`, also
/// that patient's own confirmed appointments (with any doctor). Instants in Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TakenTimes {
    pub doctor_id: String,
    pub from_ms: i64,
    pub to_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_id: Option<String>,
}

/// Half-open intervals `[start_ms, end_ms)`, sorted by start; they may overlap.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TakenList {
    pub taken: Vec<(i64, i64)>,
}

rpc!(TakenTimes => TakenList, subject::TAKEN, "taken");

/// Free slots of an approved doctor in `[from, to)` (at most 62 days): working hours minus time
/// off minus what is taken (see [`TakenTimes`], with the caller as the patient when a patient
/// asks). A slot that has started is not free.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListFreeSlots {
    pub doctor_id: String,
    /// RFC 3339.
    pub from: String,
    /// RFC 3339, after `from`.
    pub to: String,
}

rpc!(ListFreeSlots => crate::doctor::SlotList, subject::FREE_SLOTS, "free_slots");

/// A doctor's state as the doctor service just committed it (the same snapshot as its
/// `CAREHUB_DOCTORS` event). The admin service stores it unless it holds a newer version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyDoctor {
    pub event: crate::doctor::DoctorEvent,
}

rpc!(ApplyDoctor => crate::doctor::Versioned, subject::APPLY_DOCTOR, "apply_doctor");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rpc as _;

    #[test]
    fn targets_and_requests_snapshot() {
        let r = RequestAppointment {
            target: Target::Group("g1".into()),
            window_start: "2026-12-01T08:00:00Z".into(),
            window_end: "2026-12-01T12:00:00Z".into(),
            reason: "checkup".into(),
            idempotency_key: None,
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"target":{"group":"g1"},"window_start":"2026-12-01T08:00:00Z",
                "window_end":"2026-12-01T12:00:00Z","reason":"checkup"})
        );
        assert_eq!(
            RequestAppointment::SUBJECT,
            "carehub.api.admin.request_appointment"
        );
        assert_eq!(Strategy::LeastLoaded.as_str(), "least_loaded");
        assert_eq!(
            serde_json::to_value(OfferStatus::TimedOut).unwrap(),
            serde_json::json!("timed_out")
        );
    }

    #[test]
    fn event_subjects_follow_the_kind() {
        assert_eq!(
            AppointmentEventKind::OfferTimedOut.subject(),
            "carehub.events.appointment.offer_timed_out"
        );
        assert_eq!(
            AppointmentEventKind::NoShow.subject(),
            "carehub.events.appointment.no_show"
        );
    }

    #[test]
    fn statuses_serialize_as_their_names() {
        for s in AppointmentStatus::ALL {
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
        assert!(AppointmentStatus::Expired.is_final());
        assert!(!AppointmentStatus::Confirmed.is_final());
    }
}
