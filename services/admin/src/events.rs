//! Appointment views and the events every transition writes to the outbox.

use crate::store::AppointmentRow;
use carehub_nats::appointment::{
    Actor, Appointment, AppointmentEvent, AppointmentEventKind, CallSummary, PendingChange,
};
use carehub_nats::time::rfc3339;
use carehub_runtime::db::{StoreError, now_ms};
use carehub_runtime::outbox::Pending;

/// The wire view of a stored appointment.
pub(crate) fn view(r: &AppointmentRow) -> Appointment {
    Appointment {
        id: r.id.clone(),
        patient_id: r.patient_id.clone(),
        patient_name: None,
        doctor_id: r.doctor_id.clone(),
        doctor_name: None,
        group_id: r.group_id.clone(),
        specialty: r.specialty.clone(),
        status: r.status,
        window_start: rfc3339(r.window_start),
        window_end: rfc3339(r.window_end),
        start: r.start_at.map(rfc3339),
        end: r.end_at.map(rfc3339),
        reason: r.reason.clone(),
        closed_by: r.closed_by.clone(),
        close_reason: r.close_reason.clone(),
        created_at: rfc3339(r.created_at),
        version: r.version,
        pending_change: r.change_by.as_ref().map(|by| PendingChange {
            by: by.clone(),
            window_start: r.change_window_start.map(rfc3339),
            window_end: r.change_window_end.map(rfc3339),
            start: r.change_start.map(rfc3339),
            end: r.change_end.map(rfc3339),
        }),
        last_call: r
            .last_call_started
            .zip(r.last_call_ended)
            .map(|(s, e)| CallSummary {
                started_at: rfc3339(s),
                ended_at: rfc3339(e),
                total_seconds: r.call_seconds,
            }),
    }
}

/// One event for `row` after a transition, as an outbox row.
///
/// # Errors
/// Only if the event cannot be encoded.
pub(crate) fn one(
    kind: AppointmentEventKind,
    row: &AppointmentRow,
    doctor_id: Option<&str>,
    actor: Option<Actor>,
    reason: Option<&str>,
    notify: Vec<String>,
) -> Result<Vec<Pending>, StoreError> {
    let event_id = uuid::Uuid::now_v7().to_string();
    let event = AppointmentEvent {
        event_id: event_id.clone(),
        kind,
        at: now_ms(),
        appointment: view(row),
        doctor_id: doctor_id.map(str::to_owned),
        actor,
        reason: reason.map(str::to_owned),
        notify,
    };
    Ok(vec![Pending::new(&kind.subject(), &event_id, &event)?])
}

/// The patient and, once there is one, the doctor of an appointment.
pub(crate) fn participants(row: &AppointmentRow) -> Vec<String> {
    let mut v = vec![row.patient_id.clone()];
    v.extend(row.doctor_id.clone());
    v
}

/// The event of a change both participants hear about, concerning the appointment's doctor.
///
/// # Errors
/// Only if the event cannot be encoded.
pub(crate) fn to_participants(
    kind: AppointmentEventKind,
    row: &AppointmentRow,
    actor: Option<Actor>,
    reason: Option<&str>,
) -> Result<Vec<Pending>, StoreError> {
    one(
        kind,
        row,
        row.doctor_id.as_deref(),
        actor,
        reason,
        participants(row),
    )
}

/// What a store write enqueues for a change `actor` made that both participants hear about:
/// [`to_participants`] of the written row, as the write's [`Events`](crate::store::Events).
pub(crate) fn to_participants_by(
    kind: AppointmentEventKind,
    actor: Actor,
    reason: Option<String>,
) -> impl Fn(&AppointmentRow) -> Result<Vec<Pending>, StoreError> + Send + Sync {
    move |row| to_participants(kind, row, Some(actor.clone()), reason.as_deref())
}
