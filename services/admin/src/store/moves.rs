//! Moves of a confirmed appointment: a patient's new window, a doctor's proposed time, and the
//! answer that applies or drops either while the confirmed time holds.

use super::{APPT_COLS, AppointmentRow, Events, sql};
use carehub_runtime::db::{Db, StoreError};
use carehub_runtime::{enqueue, write_tx};

/// A patient's request to move a confirmed appointment into a new window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MoveRequest<'a> {
    pub(crate) id: &'a str,
    /// The doctor who gets the offer to choose a time in the window.
    pub(crate) doctor_id: &'a str,
    pub(crate) window_start: i64,
    pub(crate) window_end: i64,
    /// The offer's deadline.
    pub(crate) deadline: i64,
    pub(crate) now: i64,
}

/// A patient's move request: records the new window and offers it to the doctor, atomically,
/// while the confirmed time holds. `None` when the appointment is not confirmed or a move is
/// already pending.
///
/// # Errors
/// [`StoreError::Conflict`] when an offer to the doctor is already pending.
pub(crate) async fn request_change(
    db: &Db,
    m: &MoveRequest<'_>,
    events: Events<'_>,
) -> Result<Option<AppointmentRow>, StoreError> {
    let MoveRequest {
        id,
        doctor_id,
        window_start,
        window_end,
        deadline,
        now,
    } = *m;
    let upd = sql(format!(
        "UPDATE appointments SET change_by = 'patient', change_window_start = $1, change_window_end = $2,
             version = version + 1, updated_at = $3
         WHERE id = $4 AND status = 'confirmed' AND change_by IS NULL RETURNING {APPT_COLS}"
    ));
    write_tx!(db, tx => {
        let row: Option<AppointmentRow> = sqlx::query_as(upd).bind(window_start).bind(window_end).bind(now).bind(id)
            .fetch_optional(&mut *tx).await?;
        let Some(row) = row else { return Ok(None) };
        sqlx::query("INSERT INTO offers (id, appointment_id, doctor_id, status, deadline, created_at) VALUES ($1, $2, $3, 'pending', $4, $5)")
            .bind(uuid::Uuid::now_v7().to_string()).bind(id).bind(doctor_id).bind(deadline).bind(now)
            .execute(&mut *tx).await?;
        for e in events(&row)? {
            enqueue!(&mut *tx, e)?;
        }
        Ok::<_, StoreError>(Some(row))
    })
}

/// A doctor's proposed time: recorded while the confirmed time holds. `None` when not
/// confirmed or a move is already pending.
///
/// # Errors
/// On storage failure.
pub(crate) async fn propose_change(
    db: &Db,
    id: &str,
    start: i64,
    end: i64,
    now: i64,
    events: Events<'_>,
) -> Result<Option<AppointmentRow>, StoreError> {
    let upd = sql(format!(
        "UPDATE appointments SET change_by = 'doctor', change_start = $1, change_end = $2, version = version + 1, updated_at = $3
         WHERE id = $4 AND status = 'confirmed' AND change_by IS NULL RETURNING {APPT_COLS}"
    ));
    write_tx!(db, tx => {
        let row: Option<AppointmentRow> = sqlx::query_as(upd).bind(start).bind(end).bind(now).bind(id).fetch_optional(&mut *tx).await?;
        if let Some(row) = &row {
            for e in events(row)? {
                enqueue!(&mut *tx, e)?;
            }
        }
        Ok::<_, StoreError>(row)
    })
}

/// The answer to a pending move.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MoveAnswer<'a> {
    pub(crate) id: &'a str,
    /// Who asked for the move: `patient` or `doctor`.
    pub(crate) by: &'a str,
    /// For a patient's move: the doctor whose pending offer the answer closes.
    pub(crate) offer_doctor: Option<&'a str>,
    /// Why it was declined (stored on the doctor's offer).
    pub(crate) reason: Option<&'a str>,
    pub(crate) now: i64,
}

/// What the answer to a pending move does.
#[derive(Debug, Clone, Copy)]
pub(crate) enum MoveOutcome {
    /// The new time replaces the old in one update (the overlap guard checks it against every
    /// other confirmed appointment); for a patient's move, the doctor's offer is accepted.
    Apply { start: i64, end: i64 },
    /// The confirmed time stands; for a patient's move, the doctor's offer is declined.
    Decline,
}

/// Answers a pending move, in one transaction (see [`MoveOutcome`]). `None` when no such move
/// (or, for a patient's move, no such open offer) is pending.
///
/// # Errors
/// [`StoreError::Conflict`] when an applied time overlaps another confirmed appointment.
pub(crate) async fn answer_change(
    db: &Db,
    m: &MoveAnswer<'_>,
    outcome: MoveOutcome,
    events: Events<'_>,
) -> Result<Option<AppointmentRow>, StoreError> {
    let MoveAnswer {
        id,
        by,
        offer_doctor,
        reason,
        now,
    } = *m;
    let apply = sql(format!(
        "UPDATE appointments SET start_at = $1, end_at = $2,
             window_start = COALESCE(change_window_start, $1), window_end = COALESCE(change_window_end, $2),
             change_by = NULL, change_window_start = NULL, change_window_end = NULL, change_start = NULL, change_end = NULL,
             version = version + 1, updated_at = $3
         WHERE id = $4 AND status = 'confirmed' AND change_by = $5 RETURNING {APPT_COLS}"
    ));
    let decline = sql(format!(
        "UPDATE appointments SET change_by = NULL, change_window_start = NULL, change_window_end = NULL, change_start = NULL, change_end = NULL,
             version = version + 1, updated_at = $1
         WHERE id = $2 AND status = 'confirmed' AND change_by = $3 RETURNING {APPT_COLS}"
    ));
    write_tx!(db, tx => {
        if let Some(d) = offer_doctor {
            let offer = match outcome {
                MoveOutcome::Apply { .. } => sqlx::query("UPDATE offers SET status = 'accepted', decided_at = $1 WHERE appointment_id = $2 AND doctor_id = $3 AND status = 'pending' AND deadline > $1")
                    .bind(now).bind(id).bind(d),
                MoveOutcome::Decline => sqlx::query("UPDATE offers SET status = 'declined', reason = $1, decided_at = $2 WHERE appointment_id = $3 AND doctor_id = $4 AND status = 'pending'")
                    .bind(reason).bind(now).bind(id).bind(d),
            };
            if offer.execute(&mut *tx).await?.rows_affected() != 1 {
                return Ok(None);
            }
        }
        let update = match outcome {
            MoveOutcome::Apply { start, end } => sqlx::query_as(apply).bind(start).bind(end).bind(now).bind(id).bind(by),
            MoveOutcome::Decline => sqlx::query_as(decline).bind(now).bind(id).bind(by),
        };
        let row: Option<AppointmentRow> = update.fetch_optional(&mut *tx).await?;
        let Some(row) = row else { return Ok(None) };
        for e in events(&row)? {
            enqueue!(&mut *tx, e)?;
        }
        Ok::<_, StoreError>(Some(row))
    })
}
