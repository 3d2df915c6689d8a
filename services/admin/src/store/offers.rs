//! Offers: creating them for a routing step, accepting, closing (declined or timed out), and
//! what routing reads about them (tried doctors, loads, busy times, due deadlines).

use super::{APPT_COLS, AppointmentRow, Events, OFFER_COLS, OfferRow, sql};
use carehub_nats::appointment::OfferStatus;
use carehub_runtime::db::{Db, StoreError};
use carehub_runtime::{enqueue, with_db, write_tx};

/// # Errors
/// On storage failure.
pub(crate) async fn offers_of(db: &Db, appointment_id: &str) -> Result<Vec<OfferRow>, StoreError> {
    let q = sql(format!(
        "SELECT {OFFER_COLS} FROM offers WHERE appointment_id = $1 ORDER BY id"
    ));
    Ok(with_db!(db, p => sqlx::query_as(q).bind(appointment_id).fetch_all(p).await?))
}

/// Pending offers of a doctor, oldest first.
///
/// # Errors
/// On storage failure.
pub(crate) async fn pending_offers_for(
    db: &Db,
    doctor_id: &str,
) -> Result<Vec<OfferRow>, StoreError> {
    let q = sql(format!(
        "SELECT {OFFER_COLS} FROM offers WHERE doctor_id = $1 AND status = 'pending' ORDER BY id"
    ));
    Ok(with_db!(db, p => sqlx::query_as(q).bind(doctor_id).fetch_all(p).await?))
}

/// Doctors an appointment was ever offered to.
///
/// # Errors
/// On storage failure.
pub(crate) async fn tried_doctors(
    db: &Db,
    appointment_id: &str,
) -> Result<Vec<String>, StoreError> {
    let q = "SELECT doctor_id FROM offers WHERE appointment_id = $1";
    Ok(with_db!(db, p => sqlx::query_scalar(q).bind(appointment_id).fetch_all(p).await?))
}

/// A doctor's load in a window: open offers plus confirmed appointments overlapping it.
///
/// # Errors
/// On storage failure.
pub(crate) async fn load(db: &Db, doctor_id: &str, from: i64, to: i64) -> Result<i64, StoreError> {
    let q = "SELECT CAST((SELECT COUNT(*) FROM offers WHERE doctor_id = $1 AND status = 'pending')
                      + (SELECT COUNT(*) FROM appointments WHERE doctor_id = $1 AND status = 'confirmed'
                           AND start_at < $3 AND $2 < end_at) AS BIGINT)";
    Ok(
        with_db!(db, p => sqlx::query_scalar(q).bind(doctor_id).bind(from).bind(to).fetch_one(p).await?),
    )
}

/// Confirmed intervals of a doctor overlapping [from, to).
///
/// # Errors
/// On storage failure.
pub(crate) async fn busy(
    db: &Db,
    doctor_id: &str,
    from: i64,
    to: i64,
) -> Result<Vec<(i64, i64)>, StoreError> {
    let q = "SELECT start_at, end_at FROM appointments WHERE doctor_id = $1 AND status = 'confirmed' AND start_at < $3 AND $2 < end_at ORDER BY start_at";
    Ok(with_db!(db, p => sqlx::query_as(q).bind(doctor_id).bind(from).bind(to).fetch_all(p).await?))
}

/// One routing step: offers of a request to some doctors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewOffers<'a> {
    pub(crate) appointment_id: &'a str,
    /// The version the router read; the step applies only if nothing changed since.
    pub(crate) expected_version: i64,
    pub(crate) doctors: &'a [String],
    pub(crate) deadline: i64,
    pub(crate) now: i64,
    /// Round robin: the group and the cursor to store with the offers.
    pub(crate) rr_cursor: Option<(&'a str, i64)>,
}

/// Offers the appointment to `doctors` (one new pending offer each), moves it to `offered`,
/// advances a group's round-robin cursor, and writes the events, atomically. `None` when the
/// appointment changed meanwhile (another owner routed it).
///
/// # Errors
/// [`StoreError::Conflict`] when an offer to one of the doctors is already pending.
pub(crate) async fn create_offers(
    db: &Db,
    o: &NewOffers<'_>,
    events: Events<'_>,
) -> Result<Option<AppointmentRow>, StoreError> {
    let NewOffers {
        appointment_id,
        expected_version,
        doctors,
        deadline,
        now,
        rr_cursor: rr,
    } = *o;
    let upd = sql(format!(
        "UPDATE appointments SET status = 'offered', in_admin_queue = FALSE, version = version + 1, updated_at = $1
         WHERE id = $2 AND version = $3 AND status IN ('requested', 'offered') RETURNING {APPT_COLS}"
    ));
    write_tx!(db, tx => {
        let row: Option<AppointmentRow> = sqlx::query_as(upd).bind(now).bind(appointment_id).bind(expected_version).fetch_optional(&mut *tx).await?;
        let Some(row) = row else { return Ok(None) };
        for d in doctors {
            sqlx::query("INSERT INTO offers (id, appointment_id, doctor_id, status, deadline, created_at) VALUES ($1, $2, $3, 'pending', $4, $5)")
                .bind(uuid::Uuid::now_v7().to_string()).bind(appointment_id).bind(d).bind(deadline).bind(now)
                .execute(&mut *tx).await?;
        }
        if let Some((group_id, cursor)) = rr {
            sqlx::query("UPDATE doctor_groups SET rr_cursor = $1 WHERE id = $2").bind(cursor).bind(group_id).execute(&mut *tx).await?;
        }
        for e in events(&row)? {
            enqueue!(&mut *tx, e)?;
        }
        Ok::<_, StoreError>(Some(row))
    })
}

/// How an accept ended.
#[derive(Debug)]
pub(crate) enum Accepted {
    Confirmed(Box<AppointmentRow>),
    /// The doctor has no pending offer for it (never had, already decided, timed out, or
    /// another doctor won).
    NoOffer,
    /// The offer was still open but the request was no longer `offered` (re-routed, declined
    /// or cancelled meanwhile); nothing was written.
    RequestChanged,
}

/// A doctor's accept of their offer at `[start, end)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Acceptance<'a> {
    pub(crate) appointment_id: &'a str,
    pub(crate) doctor_id: &'a str,
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) now: i64,
}

/// Accepts a doctor's pending offer and confirms the appointment at [start, end), withdrawing
/// every other pending offer, atomically.
///
/// # Errors
/// [`StoreError::Conflict`] when the time overlaps another confirmed appointment of the doctor
/// or the patient (the database guard).
pub(crate) async fn accept_offer(
    db: &Db,
    a: &Acceptance<'_>,
    events: Events<'_>,
) -> Result<Accepted, StoreError> {
    let Acceptance {
        appointment_id,
        doctor_id,
        start,
        end,
        now,
    } = *a;
    let upd = sql(format!(
        "UPDATE appointments SET status = 'confirmed', doctor_id = $1, start_at = $2, end_at = $3, in_admin_queue = FALSE,
             version = version + 1, updated_at = $4
         WHERE id = $5 AND status = 'offered' RETURNING {APPT_COLS}"
    ));
    write_tx!(db, tx => {
        let claimed = sqlx::query("UPDATE offers SET status = 'accepted', decided_at = $1 WHERE appointment_id = $2 AND doctor_id = $3 AND status = 'pending' AND deadline > $1")
            .bind(now).bind(appointment_id).bind(doctor_id).execute(&mut *tx).await?.rows_affected();
        if claimed != 1 {
            return Ok(Accepted::NoOffer);
        }
        let row: Option<AppointmentRow> = sqlx::query_as(upd).bind(doctor_id).bind(start).bind(end).bind(now).bind(appointment_id).fetch_optional(&mut *tx).await?;
        // Returning before the commit rolls the claimed offer back.
        let Some(row) = row else { return Ok(Accepted::RequestChanged) };
        sqlx::query("UPDATE offers SET status = 'withdrawn', decided_at = $1 WHERE appointment_id = $2 AND status = 'pending'")
            .bind(now).bind(appointment_id).execute(&mut *tx).await?;
        for e in events(&row)? {
            enqueue!(&mut *tx, e)?;
        }
        Ok::<_, StoreError>(Accepted::Confirmed(Box::new(row)))
    })
}

/// A doctor's pending offer to close.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CloseOffer<'a> {
    pub(crate) appointment_id: &'a str,
    pub(crate) doctor_id: &'a str,
    /// `Declined` or `TimedOut`.
    pub(crate) to: OfferStatus,
    pub(crate) reason: Option<&'a str>,
    /// Only once its deadline passed (a time-out).
    pub(crate) due_only: bool,
    pub(crate) now: i64,
}

/// Closes a doctor's pending offer as `declined` or `timed_out` (for a time-out only once its
/// deadline passed). When it was the last pending offer the appointment goes back to
/// `requested` so routing moves on. `None` when there was no such pending offer.
///
/// # Errors
/// On storage failure.
pub(crate) async fn close_offer(
    db: &Db,
    c: &CloseOffer<'_>,
    events: Events<'_>,
) -> Result<Option<AppointmentRow>, StoreError> {
    let CloseOffer {
        appointment_id,
        doctor_id,
        to,
        reason,
        due_only,
        now,
    } = *c;
    let back = sql(format!(
        "UPDATE appointments SET status = CASE WHEN status = 'offered' AND NOT EXISTS
               (SELECT 1 FROM offers o WHERE o.appointment_id = appointments.id AND o.status = 'pending') THEN 'requested' ELSE status END,
             change_by = CASE WHEN status = 'confirmed' THEN NULL ELSE change_by END,
             change_window_start = CASE WHEN status = 'confirmed' THEN NULL ELSE change_window_start END,
             change_window_end = CASE WHEN status = 'confirmed' THEN NULL ELSE change_window_end END,
             version = version + 1, updated_at = $1
         WHERE id = $2 RETURNING {APPT_COLS}"
    ));
    write_tx!(db, tx => {
        let n = sqlx::query("UPDATE offers SET status = $1, reason = $2, decided_at = $3 WHERE appointment_id = $4 AND doctor_id = $5 AND status = 'pending' AND ($6 = FALSE OR deadline <= $3)")
            .bind(to.as_str()).bind(reason).bind(now).bind(appointment_id).bind(doctor_id).bind(due_only)
            .execute(&mut *tx).await?.rows_affected();
        if n != 1 {
            return Ok(None);
        }
        let row: AppointmentRow = sqlx::query_as(back).bind(now).bind(appointment_id).fetch_one(&mut *tx).await?;
        for e in events(&row)? {
            enqueue!(&mut *tx, e)?;
        }
        Ok::<_, StoreError>(Some(row))
    })
}

/// Pending offers whose deadline has passed: (appointment id, doctor id).
///
/// # Errors
/// On storage failure.
pub(crate) async fn due_offers(
    db: &Db,
    owner: &str,
    now: i64,
) -> Result<Vec<(String, String)>, StoreError> {
    let q = "SELECT o.appointment_id, o.doctor_id FROM offers o JOIN appointments a ON a.id = o.appointment_id
             WHERE o.status = 'pending' AND o.deadline <= $1 AND a.owner = $2 ORDER BY o.deadline";
    Ok(with_db!(db, p => sqlx::query_as(q).bind(now).bind(owner).fetch_all(p).await?))
}
