//! Offers as doctors see them: listing, accepting at a time, declining.

use super::{AdminService, active, actor, not_found, on_grid};
use crate::domain::{parse_time, text};
use crate::events::{self, view};
use crate::lifecycle::{self, Action, Party};
use crate::store::{self, Accepted};
use carehub_nats::appointment::*;
use carehub_nats::time::rfc3339;
use carehub_nats::{CallContext, Principal, Role, WireError};
use carehub_runtime::db::{StoreError, now_ms};

pub(super) fn offer_view(o: &store::OfferRow) -> Offer {
    Offer {
        id: o.id.clone(),
        appointment_id: o.appointment_id.clone(),
        doctor_id: o.doctor_id.clone(),
        status: o.status,
        deadline: rfc3339(o.deadline),
        created_at: rfc3339(o.created_at),
        decided_at: o.decided_at.map(rfc3339),
        reason: o.reason.clone(),
    }
}

impl AdminService {
    /// A doctor's pending offers with their requests.
    ///
    /// # Errors
    /// `forbidden` for non-doctors.
    pub(crate) async fn list_my_offers(
        &self,
        ctx: &CallContext,
        _r: ListMyOffers,
    ) -> Result<OfferList, WireError> {
        let p = active(ctx, Role::Doctor)?;
        let mut pending = Vec::new();
        for o in store::pending_offers_for(self.db(), &p.user_id).await? {
            if let Some(a) = store::appointment(self.db(), &o.appointment_id).await? {
                pending.push((offer_view(&o), view(&a)));
            }
        }
        let (offers, appointments): (Vec<_>, Vec<_>) = pending.into_iter().unzip();
        let appointments = self.named_all(appointments).await;
        let offers = offers
            .into_iter()
            .zip(appointments)
            .map(|(offer, appointment)| OfferWithAppointment { offer, appointment })
            .collect();
        Ok(OfferList { offers })
    }

    /// A doctor accepts their offer at a start inside the window and their working hours.
    ///
    /// # Errors
    /// `not_found` without an offer, `validation_failed` for a bad time, `conflict` when the
    /// offer closed meanwhile (another doctor won, it timed out) or the time overlaps.
    pub(crate) async fn accept_offer(
        &self,
        ctx: &CallContext,
        r: AcceptOffer,
    ) -> Result<Appointment, WireError> {
        let p = active(ctx, Role::Doctor)?;
        self.idempotent(p, "accept_offer", r, |r| self.accept_once(p, r))
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
        let outcome = store::accept_offer(
            self.db(),
            &acceptance,
            &events::to_participants_by(AppointmentEventKind::Confirmed, who, None),
        )
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
        Ok(self.named(view(&row)).await)
    }

    /// A doctor declines their offer with a reason; the request moves on.
    ///
    /// # Errors
    /// `not_found` without a pending offer, `validation_failed` without a reason.
    pub(crate) async fn decline_offer(
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
        Ok(self.named(view(&row)).await)
    }
}
