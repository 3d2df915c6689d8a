//! Requests for an appointment and what closes them: asking, listing, reading, cancelling,
//! completing, no-shows, and an admin's decline or re-route of an open request.

use super::audit::{audit, record};
use super::offers::offer_view;
use super::{AdminService, active, actor, limit, not_found};
use crate::domain::{Window, text};
use crate::events::{self, view};
use crate::lifecycle::{self, Action, Party};
use crate::store::{self, AppointmentRow, NewAppointment, Owner};
use carehub_nats::appointment::*;
use carehub_nats::{CallContext, Principal, Role, WireError};
use carehub_runtime::db::{next_page, now_ms};

/// A closing action on one appointment (cancel, complete, no-show, decline).
struct Closing<'a> {
    id: &'a str,
    action: Action,
    kind: AppointmentEventKind,
    reason: Option<&'a str>,
    /// Only once the appointment started by this time.
    started_by: Option<i64>,
}

impl AdminService {
    /// Checks a target exists and can be routed.
    async fn check_target(
        &self,
        t: &Target,
    ) -> Result<(&'static str, Option<String>, Option<String>, Option<String>), WireError> {
        match t {
            Target::Doctor(id) => match store::doctor(self.db(), id).await? {
                Some(d) if d.approved => Ok(("doctor", Some(id.clone()), None, None)),
                _ => Err(WireError::validation("target: unknown doctor")),
            },
            Target::Group(id) => match store::group(self.db(), id).await? {
                Some(_) => Ok(("group", None, Some(id.clone()), None)),
                None => Err(WireError::validation("target: unknown group")),
            },
            Target::Specialty(s) => {
                let s = s.trim().to_lowercase();
                let has_group = store::group_of_specialty(self.db(), &s).await?.is_some();
                if !has_group && store::doctors_of_specialty(self.db(), &s).await?.is_empty() {
                    return Err(WireError::validation(
                        "target: no doctor practises this specialty",
                    ));
                }
                Ok(("specialty", None, None, Some(s)))
            }
        }
    }

    /// A patient asks for an appointment; routing starts at once.
    ///
    /// # Errors
    /// `forbidden` for non-patients, `validation_failed` for a bad window, reason or target.
    pub(crate) async fn request_appointment(
        &self,
        ctx: &CallContext,
        r: RequestAppointment,
    ) -> Result<Appointment, WireError> {
        let p = active(ctx, Role::Patient)?;
        self.idempotent(p, "request_appointment", r, |r| self.request_once(p, r))
            .await
    }

    async fn request_once(
        &self,
        p: &Principal,
        r: RequestAppointment,
    ) -> Result<Appointment, WireError> {
        let now = now_ms();
        let cfg = &self.core().cfg;
        let w = Window::parse(&r.window_start, &r.window_end, now, cfg.max_horizon)?;
        let deadline = w.final_deadline(now, cfg.max_wait, cfg.min_notice)?;
        let reason = text("reason", &r.reason, 1000)?;
        let (kind, doctor, group, specialty) = self.check_target(&r.target).await?;
        let id = uuid::Uuid::now_v7().to_string();
        let new = NewAppointment {
            id: &id,
            owner: &self.core().instance,
            patient_id: &p.user_id,
            doctor_id: doctor.as_deref(),
            group_id: group.as_deref(),
            specialty: specialty.as_deref(),
            target_kind: kind,
            status: AppointmentStatus::Requested,
            window_start: w.start,
            window_end: w.end,
            start_at: None,
            end_at: None,
            reason: &reason,
            final_deadline: deadline,
            idempotency_key: None,
            now,
        };
        let who = actor(p, None);
        let (row, fresh) = store::insert_appointment(self.db(), &new, &move |row| {
            events::one(
                AppointmentEventKind::Requested,
                row,
                None,
                Some(who.clone()),
                None,
                vec![row.patient_id.clone()],
            )
        })
        .await?;
        if fresh {
            self.core().relay.wake();
            self.route(&row.id);
        }
        Ok(self.named(view(&row)).await)
    }

    /// The caller's appointments: a patient's own, a doctor's (confirmed or offered to them),
    /// every appointment for an admin. Newest first.
    ///
    /// # Errors
    /// `validation_failed` for a bad limit.
    pub(crate) async fn list_appointments(
        &self,
        ctx: &CallContext,
        r: ListAppointments,
    ) -> Result<AppointmentPage, WireError> {
        let p = ctx.caller()?;
        let owner = match p.role {
            Role::Patient => Owner::Patient(&p.user_id),
            Role::Doctor => Owner::Doctor(&p.user_id),
            Role::Admin => Owner::Anyone,
        };
        let limit = limit(r.limit)?;
        let mut rows =
            store::list_appointments(self.db(), owner, r.status, r.cursor.as_deref(), limit + 1)
                .await?;
        let next_cursor = next_page(&mut rows, limit, |a| a.id.clone());
        Ok(AppointmentPage {
            appointments: self.named_all(rows.iter().map(view).collect()).await,
            next_cursor,
        })
    }

    /// One appointment. Someone else's is `not_found`.
    ///
    /// # Errors
    /// `not_found` unless the caller is its patient, a doctor it concerns, or an admin.
    pub(crate) async fn get_appointment(
        &self,
        ctx: &CallContext,
        r: GetAppointment,
    ) -> Result<AppointmentDetail, WireError> {
        let p = ctx.caller()?;
        let a = store::appointment(self.db(), &r.id)
            .await?
            .ok_or_else(not_found)?;
        let offers = store::offers_of(self.db(), &a.id).await?;
        let visible: Vec<_> = match p.role {
            Role::Admin => offers,
            Role::Doctor => offers
                .into_iter()
                .filter(|o| o.doctor_id == p.user_id)
                .collect(),
            Role::Patient => Vec::new(),
        };
        let allowed = match p.role {
            Role::Admin => true,
            Role::Patient => a.patient_id == p.user_id,
            Role::Doctor => a.doctor_id.as_deref() == Some(&p.user_id) || !visible.is_empty(),
        };
        if !allowed {
            return Err(not_found());
        }
        Ok(AppointmentDetail {
            appointment: self.named(view(&a)).await,
            offers: visible.iter().map(offer_view).collect(),
        })
    }

    /// Applies a closing action of `p` (see [`Closing`]), with its event and, for an admin,
    /// an audit entry. `None` when the appointment is not in a status `p` may take it from.
    async fn close(
        &self,
        p: &Principal,
        c: Closing<'_>,
    ) -> Result<Option<AppointmentRow>, WireError> {
        let Closing {
            id,
            action,
            kind,
            reason,
            started_by,
        } = c;
        let Some(step) = lifecycle::step(action, Party::from(p.role)) else {
            return Ok(None);
        };
        let name = if p.role == Role::Doctor {
            self.doctor_name(&p.user_id).await
        } else {
            None
        };
        let who = actor(p, name);
        let reason_ev = reason.map(str::to_owned);
        let admin = (p.role == Role::Admin).then(|| p.clone());
        let audit_action = format!("appointment.{}", kind.as_str());
        let change = store::StatusChange {
            id,
            from: &step.from,
            to: step.to,
            closed_by: Some(&p.user_id),
            close_reason: reason,
            started_by,
            now: now_ms(),
        };
        let row = store::transition(self.db(), &change, &move |row| {
            let mut out =
                events::to_participants(kind, row, Some(who.clone()), reason_ev.as_deref())?;
            if let Some(a) = &admin {
                out.push(audit(
                    a,
                    Some(&row.patient_id),
                    &audit_action,
                    reason_ev.as_deref(),
                )?);
            }
            Ok(out)
        })
        .await?;
        if row.is_some() {
            self.core().relay.wake();
        }
        Ok(row)
    }

    /// Cancels: the patient or doctor before the start, an admin any time; who and why are
    /// recorded and both participants told.
    ///
    /// # Errors
    /// `not_found`, `validation_failed` without a reason, `conflict` when it can no longer be
    /// cancelled.
    pub(crate) async fn cancel(
        &self,
        ctx: &CallContext,
        r: CancelAppointment,
    ) -> Result<Appointment, WireError> {
        let p = ctx.caller()?;
        let reason = text("reason", &r.reason, 1000)?;
        let a = self.owned(p, &r.id).await?;
        // Patients and doctors only before the start; admins any open appointment.
        let action = if a.start_at.is_some_and(|s| s <= now_ms()) {
            Action::CancelStarted
        } else {
            Action::Cancel
        };
        let row = self
            .close(
                p,
                Closing {
                    id: &a.id,
                    action,
                    kind: AppointmentEventKind::Cancelled,
                    reason: Some(&reason),
                    started_by: None,
                },
            )
            .await?;
        let a = row.map(|r| view(&r)).ok_or_else(|| {
            WireError::conflict(format!(
                "a {} appointment cannot be cancelled now",
                a.status.as_str()
            ))
        })?;
        Ok(self.named(a).await)
    }

    /// The doctor completes a confirmed appointment after its start, with notes.
    ///
    /// # Errors
    /// `not_found`, `conflict` before the start or when not confirmed.
    pub(crate) async fn complete(
        &self,
        ctx: &CallContext,
        r: CompleteAppointment,
    ) -> Result<Appointment, WireError> {
        let p = active(ctx, Role::Doctor)?;
        let notes = text("notes", &r.notes, 5000)?;
        let a = self.owned(p, &r.id).await?;
        let row = self
            .close(
                p,
                Closing {
                    id: &a.id,
                    action: Action::Complete,
                    kind: AppointmentEventKind::Completed,
                    reason: Some(&notes),
                    started_by: Some(now_ms()),
                },
            )
            .await?;
        let a = row.map(|r| view(&r)).ok_or_else(|| {
            WireError::conflict("only a confirmed appointment that has started can be completed")
        })?;
        Ok(self.named(a).await)
    }

    /// The doctor marks a confirmed appointment a no-show after its start.
    ///
    /// # Errors
    /// `not_found`, `conflict` before the start or when not confirmed.
    pub(crate) async fn no_show(
        &self,
        ctx: &CallContext,
        r: MarkNoShow,
    ) -> Result<Appointment, WireError> {
        let p = active(ctx, Role::Doctor)?;
        let a = self.owned(p, &r.id).await?;
        let row = self
            .close(
                p,
                Closing {
                    id: &a.id,
                    action: Action::NoShow,
                    kind: AppointmentEventKind::NoShow,
                    reason: None,
                    started_by: Some(now_ms()),
                },
            )
            .await?;
        let a = row.map(|r| view(&r)).ok_or_else(|| {
            WireError::conflict("only a confirmed appointment that has started can be a no-show")
        })?;
        Ok(self.named(a).await)
    }

    /// An admin declines an open request (typically from the admin queue).
    ///
    /// # Errors
    /// `forbidden`, `not_found`, `conflict` when it is no longer open.
    pub(crate) async fn admin_decline(
        &self,
        ctx: &CallContext,
        r: AdminDecline,
    ) -> Result<Appointment, WireError> {
        let p = active(ctx, Role::Admin)?;
        let reason = text("reason", &r.reason, 1000)?;
        let a = self.owned(p, &r.id).await?;
        let row = self
            .close(
                p,
                Closing {
                    id: &a.id,
                    action: Action::AdminDecline,
                    kind: AppointmentEventKind::Declined,
                    reason: Some(&reason),
                    started_by: None,
                },
            )
            .await?;
        let a = row
            .map(|r| view(&r))
            .ok_or_else(|| WireError::conflict("only an open request can be declined"))?;
        Ok(self.named(a).await)
    }

    /// An admin sends an open request to a new target; pending offers are withdrawn.
    ///
    /// # Errors
    /// `forbidden`, `not_found`, `validation_failed` for an unknown target, `conflict` when it
    /// is no longer open.
    pub(crate) async fn admin_reroute(
        &self,
        ctx: &CallContext,
        r: AdminReroute,
    ) -> Result<Appointment, WireError> {
        let p = active(ctx, Role::Admin)?;
        // An unknown appointment is not found, whatever the target.
        self.owned(p, &r.id).await?;
        let (kind, doctor, group, specialty) = self.check_target(&r.target).await?;
        let target = store::Routing {
            kind,
            doctor_id: doctor.as_deref(),
            group_id: group.as_deref(),
            specialty: specialty.as_deref(),
        };
        let row = store::retarget(self.db(), &r.id, &target, now_ms()).await?;
        let Some(row) = row else {
            return match store::appointment(self.db(), &r.id).await? {
                Some(_) => Err(WireError::conflict("only an open request can be re-routed")),
                None => Err(not_found()),
            };
        };
        record(
            self.db(),
            p,
            Some(&row.patient_id),
            "appointment.reroute",
            None,
        )
        .await?;
        tracing::info!(appointment_id = %row.id, admin_id = %p.user_id, "request re-routed");
        self.route(&row.id);
        Ok(self.named(view(&row)).await)
    }
}
