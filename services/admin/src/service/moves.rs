//! Moves of a confirmed appointment: a patient's new window, a doctor's proposed time, and
//! the answers to either.

use super::{AdminService, active, actor, on_grid};
use crate::domain::{Window, parse_time};
use crate::events::{self, view};
use crate::lifecycle::{self, Action, Party};
use crate::store::{self, AppointmentRow, MoveOutcome};
use carehub_nats::appointment::*;
use carehub_nats::{CallContext, Principal, Role, WireError};
use carehub_runtime::db::{StoreError, now_ms};

impl AdminService {
    /// A patient asks to move a confirmed appointment into a new window; the doctor gets an
    /// offer and the old time holds until they accept.
    ///
    /// # Errors
    /// `not_found`, `validation_failed` for a bad window, `conflict` when the appointment is
    /// not confirmed, already started, or a move is pending.
    pub(crate) async fn request_reschedule(
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
        let row = store::request_change(
            self.db(),
            &request,
            &events::to_participants_by(AppointmentEventKind::ChangeRequested, who, None),
        )
        .await?
        .ok_or_else(|| WireError::conflict("a move of this appointment is already pending"))?;
        self.core().relay.wake();
        Ok(self.named(view(&row)).await)
    }

    /// The doctor proposes a new time for a confirmed appointment; the patient answers.
    ///
    /// # Errors
    /// `not_found`, `validation_failed` for a time outside working hours, `conflict` when not
    /// confirmed or a move is pending.
    pub(crate) async fn propose_time(
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
        let row = store::propose_change(
            self.db(),
            &a.id,
            start,
            end,
            now,
            &events::to_participants_by(AppointmentEventKind::ChangeRequested, who, None),
        )
        .await?
        .ok_or_else(|| {
            WireError::conflict(
                "only a confirmed appointment without a pending move can get a new time",
            )
        })?;
        self.core().relay.wake();
        Ok(self.named(view(&row)).await)
    }

    /// The patient accepts (the times swap in one update) or declines the doctor's proposal.
    ///
    /// # Errors
    /// `not_found`, `conflict` without a pending proposal or when the new time is taken.
    pub(crate) async fn answer_proposal(
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
        let (outcome, kind) = if r.accept {
            (
                MoveOutcome::Apply { start, end },
                AppointmentEventKind::Rescheduled,
            )
        } else {
            (MoveOutcome::Decline, AppointmentEventKind::ChangeDeclined)
        };
        let result = store::answer_change(
            self.db(),
            &answer,
            outcome,
            &events::to_participants_by(kind, who, None),
        )
        .await;
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
        Ok(self.named(view(&row)).await)
    }

    /// The doctor accepts a patient's move: the new time replaces the old in one update.
    pub(super) async fn accept_change(
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
        let result = store::answer_change(
            self.db(),
            &answer,
            MoveOutcome::Apply { start, end },
            &events::to_participants_by(AppointmentEventKind::Rescheduled, who, None),
        )
        .await;
        match result {
            Ok(Some(row)) => {
                self.core().relay.wake();
                Ok(self.named(view(&row)).await)
            }
            Ok(None) => Err(WireError::conflict("the offer is no longer open")),
            Err(StoreError::Conflict(_)) => Err(self
                .overlap_error(&a.patient_id, start, end, Some(&a.id))
                .await),
            Err(e) => Err(e.into()),
        }
    }

    /// The doctor declines a patient's move: the old time stands.
    pub(super) async fn decline_change(
        &self,
        p: &Principal,
        a: &AppointmentRow,
        reason: &str,
    ) -> Result<Appointment, WireError> {
        let who = actor(p, self.doctor_name(&p.user_id).await);
        let answer = store::MoveAnswer {
            id: &a.id,
            by: "patient",
            offer_doctor: Some(&p.user_id),
            reason: Some(reason),
            now: now_ms(),
        };
        let row = store::answer_change(
            self.db(),
            &answer,
            MoveOutcome::Decline,
            &events::to_participants_by(
                AppointmentEventKind::ChangeDeclined,
                who,
                Some(reason.to_owned()),
            ),
        )
        .await?
        .ok_or_else(|| WireError::not_found("no open offer for this appointment"))?;
        self.core().relay.wake();
        Ok(self.named(view(&row)).await)
    }
}
