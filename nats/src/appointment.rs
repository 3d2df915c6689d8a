//! Wire types of appointments (owned by the admin service): their events on the
//! `CAREHUB_APPOINTMENTS` stream, and the care-relation query other services use to decide
//! what a doctor may see.

use crate::rpc::{Role, Rpc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Subjects of the appointment domain.
pub mod subject {
    /// Events: `carehub.events.appointment.<kind>` (stream `CAREHUB_APPOINTMENTS`).
    pub const EVENT_PREFIX: &str = "carehub.events.appointment";
    /// Service-to-service: what relation a doctor has with a patient right now.
    pub const CARE_RELATION: &str = "carehub.admin.care_relation";
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
    /// The doctor once confirmed (or the one a request named).
    pub doctor_id: Option<String>,
    /// The group a request named or was routed through.
    pub group_id: Option<String>,
    pub specialty: Option<String>,
    pub status: AppointmentStatus,
    /// The patient's preferred window.
    pub window_start: String,
    pub window_end: String,
    /// The fixed time, once confirmed.
    pub start: Option<String>,
    pub end: Option<String>,
    pub reason: String,
    /// Who cancelled, declined or completed it, and why / notes.
    pub closed_by: Option<String>,
    pub close_reason: Option<String>,
    pub created_at: String,
    /// Incremented on every transition (optimistic concurrency).
    pub version: i64,
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
    Rescheduled,
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
            Self::Rescheduled => "rescheduled",
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

impl Rpc for CareRelation {
    type Reply = CareRelationReply;
    const SUBJECT: &'static str = subject::CARE_RELATION;
    const ENDPOINT: &'static str = "care_relation";
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for s in [
            AppointmentStatus::Requested,
            AppointmentStatus::Offered,
            AppointmentStatus::Confirmed,
            AppointmentStatus::Completed,
            AppointmentStatus::NoShow,
            AppointmentStatus::Cancelled,
            AppointmentStatus::Expired,
            AppointmentStatus::Declined,
        ] {
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
        assert!(AppointmentStatus::Expired.is_final());
        assert!(!AppointmentStatus::Confirmed.is_final());
    }
}
