//! Instant bookings of a free slot.

use super::{AdminService, active, actor, on_grid};
use crate::domain::{parse_time, text};
use crate::events::{self, view};
use crate::store::{self, NewAppointment};
use carehub_nats::appointment::*;
use carehub_nats::{CallContext, Principal, Role, WireError};
use carehub_runtime::db::{StoreError, now_ms};

impl AdminService {
    /// A patient books a free slot of an instant-booking doctor: confirmed at once.
    ///
    /// # Errors
    /// `validation_failed` for an unknown doctor or a time that is not a free slot start,
    /// `conflict` when someone else took the slot first.
    pub(crate) async fn book_slot(
        &self,
        ctx: &CallContext,
        r: BookSlot,
    ) -> Result<Appointment, WireError> {
        let p = active(ctx, Role::Patient)?;
        self.idempotent(p, "book_slot", r, |r| self.book_once(p, r))
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
        let result = store::insert_appointment(
            self.db(),
            &new,
            &events::to_participants_by(AppointmentEventKind::Confirmed, who, None),
        )
        .await;
        match result {
            Ok((row, _)) => {
                self.core().relay.wake();
                Ok(self.named(view(&row)).await)
            }
            Err(StoreError::Conflict(_)) => {
                Err(self.overlap_error(&p.user_id, start, end, None).await)
            }
            Err(e) => Err(e.into()),
        }
    }
}
