//! What other services ask or tell: care relations (patient service), taken times and
//! confirmed appointments in a period (doctor service), cancellations for a doctor's absence
//! (doctor and auth services), finished calls (hub).

use super::{AdminService, not_found};
use crate::domain::{parse_time, text};
use crate::events::{self, view};
use crate::lifecycle::{self, Action, Party};
use crate::store;
use crate::{doctors, slots};
use carehub_nats::Role;
use carehub_nats::appointment::*;
use carehub_nats::doctor::{SlotList, Versioned};
use carehub_nats::time::instant;
use carehub_nats::{CallContext, WireError};
use carehub_runtime::db::now_ms;
use carehub_schedule::ScheduleError;

fn schedule_error(e: &ScheduleError) -> WireError {
    WireError::validation(e.to_string())
}

impl AdminService {
    /// What relation a doctor has with a patient (asked by the patient service).
    ///
    /// # Errors
    /// On storage failure.
    pub(crate) async fn care_relation(
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
    pub(crate) async fn taken(
        &self,
        _ctx: &CallContext,
        r: TakenTimes,
    ) -> Result<TakenList, WireError> {
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

    /// Free slots of an approved doctor: working hours minus time off (from the copy of the
    /// doctor, which the doctor service hands over before it answers a change) minus what is
    /// taken. Both are read from this service's database, so a query sent after a booking, a
    /// cancel or a change of hours was answered sees it, through any instance.
    ///
    /// # Errors
    /// `unauthorized`, `not_found` for an unknown or unapproved doctor, `validation_failed` for
    /// a bad, reversed or too long window.
    pub(crate) async fn free_slots(
        &self,
        ctx: &CallContext,
        r: ListFreeSlots,
    ) -> Result<SlotList, WireError> {
        let caller = ctx.caller()?;
        let (from, to) = (instant("from", &r.from)?, instant("to", &r.to)?);
        // A bad window is refused before reading anything.
        if to <= from {
            return Err(schedule_error(&ScheduleError::EmptyWindow));
        }
        if to - from > chrono::Duration::days(carehub_schedule::MAX_WINDOW_DAYS) {
            return Err(schedule_error(&ScheduleError::WindowTooLong));
        }
        let patient = (caller.role == Role::Patient).then_some(caller.user_id.as_str());
        let (from_ms, to_ms) = (from.timestamp_millis(), to.timestamp_millis());
        let (doctor, taken) =
            store::doctor_and_taken(self.db(), &r.doctor_id, from_ms, to_ms, patient)
                .await?
                .filter(|(d, _)| d.approved)
                .ok_or_else(|| WireError::not_found("doctor not found"))?;
        slots::free(&doctor, (from, to), &taken, now_ms())
            .map_err(|e| schedule_error(&e))?
            .ok_or_else(|| {
                tracing::error!(doctor_id = %doctor.doctor_id, "unreadable copy of a doctor");
                WireError::internal()
            })
    }

    /// Stores the doctor's state the doctor service just committed, unless a newer version is
    /// already here (the `CAREHUB_DOCTORS` stream brings the same snapshots, in any order).
    ///
    /// # Errors
    /// On storage failure.
    pub(crate) async fn apply_doctor(
        &self,
        _ctx: &CallContext,
        r: ApplyDoctor,
    ) -> Result<Versioned, WireError> {
        let version = doctors::apply(self.db(), &r.event.doctor).await?;
        Ok(Versioned { version })
    }

    /// A doctor's confirmed appointments in a period (asked before time off or disabling).
    ///
    /// # Errors
    /// `validation_failed` for a bad period.
    pub(crate) async fn confirmed_overlapping(
        &self,
        _ctx: &CallContext,
        r: ConfirmedOverlapping,
    ) -> Result<AppointmentList, WireError> {
        let (from, to) = Self::period(&r.start, r.end.as_deref())?;
        let rows = store::confirmed_overlapping(self.db(), &r.doctor_id, from, to).await?;
        Ok(AppointmentList {
            appointments: self.named_all(rows.iter().map(view).collect()).await,
        })
    }

    /// Cancels a doctor's confirmed appointments in a period, each with its own event telling
    /// the patient who cancelled and why. Returns the cancelled appointments.
    ///
    /// # Errors
    /// `validation_failed` for a bad period or reason.
    pub(crate) async fn cancel_overlapping(
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
            let change = store::StatusChange {
                id: &a.id,
                from: &step.from,
                to: step.to,
                closed_by: Some(&r.actor.user_id),
                close_reason: Some(&reason),
                started_by: None,
                now: now_ms(),
            };
            let row = store::transition(
                self.db(),
                &change,
                &events::to_participants_by(
                    AppointmentEventKind::Cancelled,
                    r.actor.clone(),
                    Some(reason.clone()),
                ),
            )
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
            appointments: self.named_all(cancelled).await,
        })
    }

    /// Records a finished video call on its appointment (sent by the hub; deployment
    /// permissions let only the hub publish it) and emits a `call_ended` event, once per call.
    ///
    /// # Errors
    /// `validation_failed` for bad times, `not_found` for an unknown appointment.
    pub(crate) async fn record_call(
        &self,
        _ctx: &CallContext,
        r: carehub_nats::hub::RecordCall,
    ) -> Result<carehub_nats::hub::CallRecorded, WireError> {
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
        Ok(carehub_nats::hub::CallRecorded { ok: true })
    }
}
