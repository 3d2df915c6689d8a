//! Every SQL statement of the admin service. The same text runs on SQLite and PostgreSQL; the
//! overlap guards (triggers / exclusion constraints) live in the per-backend migrations and
//! surface here as [`StoreError::Conflict`].

use crate::lifecycle::Stored;
use carehub_nats::appointment::{AppointmentStatus, OfferStatus, Strategy};
use carehub_runtime::db::{Db, StoreError};
use carehub_runtime::outbox::Pending;
use carehub_runtime::{enqueue, with_db, write_tx};

/// A row of `appointments`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AppointmentRow {
    pub id: String,
    /// The admin instance that routes it while it is open.
    pub owner: Option<String>,
    pub patient_id: String,
    pub doctor_id: Option<String>,
    pub group_id: Option<String>,
    pub specialty: Option<String>,
    pub target_kind: String,
    #[sqlx(try_from = "Stored")]
    pub status: AppointmentStatus,
    pub window_start: i64,
    pub window_end: i64,
    pub start_at: Option<i64>,
    pub end_at: Option<i64>,
    pub reason: String,
    pub closed_by: Option<String>,
    pub close_reason: Option<String>,
    pub in_admin_queue: bool,
    pub final_deadline: i64,
    pub created_at: i64,
    pub version: i64,
    /// A pending move: who asked (`patient`: a new window; `doctor`: a proposed time).
    pub change_by: Option<String>,
    pub change_window_start: Option<i64>,
    pub change_window_end: Option<i64>,
    pub change_start: Option<i64>,
    pub change_end: Option<i64>,
    pub last_call_started: Option<i64>,
    pub last_call_ended: Option<i64>,
    pub call_seconds: i64,
}

const APPT_COLS: &str = "id, owner, patient_id, doctor_id, group_id, specialty, target_kind, status, window_start, window_end, start_at, end_at, reason, closed_by, close_reason, in_admin_queue, final_deadline, created_at, version, change_by, change_window_start, change_window_end, change_start, change_end, last_call_started, last_call_ended, call_seconds";

/// A row of `offers`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OfferRow {
    pub id: String,
    pub appointment_id: String,
    pub doctor_id: String,
    #[sqlx(try_from = "Stored")]
    pub status: OfferStatus,
    pub deadline: i64,
    pub created_at: i64,
    pub decided_at: Option<i64>,
    pub reason: Option<String>,
}

const OFFER_COLS: &str =
    "id, appointment_id, doctor_id, status, deadline, created_at, decided_at, reason";

/// The local copy of a doctor.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DoctorRow {
    pub doctor_id: String,
    pub display_name: String,
    pub specialties: String,
    pub approved: bool,
    pub auto_accept: bool,
    pub availability: String,
    pub version: i64,
}

/// A row of `doctor_groups`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GroupRow {
    pub id: String,
    pub name: String,
    pub specialty: Option<String>,
    #[sqlx(try_from = "Stored")]
    pub strategy: Strategy,
    pub accept_deadline_secs: i64,
    pub rr_cursor: i64,
    pub version: i64,
}

/// Builds the outbox events for a row just written, inside the same transaction.
pub type Events<'a> =
    &'a (dyn Fn(&AppointmentRow) -> Result<Vec<Pending>, StoreError> + Send + Sync);

fn sql(s: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(s)
}

/// A request about to be stored.
#[derive(Debug)]
pub struct NewAppointment<'a> {
    pub id: &'a str,
    pub owner: &'a str,
    pub patient_id: &'a str,
    pub doctor_id: Option<&'a str>,
    pub group_id: Option<&'a str>,
    pub specialty: Option<&'a str>,
    pub target_kind: &'a str,
    pub status: AppointmentStatus,
    pub window_start: i64,
    pub window_end: i64,
    pub start_at: Option<i64>,
    pub end_at: Option<i64>,
    pub reason: &'a str,
    pub final_deadline: i64,
    pub idempotency_key: Option<&'a str>,
    pub now: i64,
}

/// Stores a new appointment with its events. With an idempotency key already used by this
/// patient, stores nothing and returns the earlier appointment (`false`).
///
/// # Errors
/// [`StoreError::Conflict`] when a confirmed booking overlaps another (the database guard).
pub async fn insert_appointment(
    db: &Db,
    a: &NewAppointment<'_>,
    events: Events<'_>,
) -> Result<(AppointmentRow, bool), StoreError> {
    let insert = sql(format!(
        "INSERT INTO appointments (id, patient_id, doctor_id, group_id, specialty, target_kind, status, window_start, window_end,
             start_at, end_at, reason, final_deadline, idempotency_key, created_at, updated_at, version, in_admin_queue, owner)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15, 1, FALSE, $16)
         ON CONFLICT (patient_id, idempotency_key) DO NOTHING RETURNING {APPT_COLS}"
    ));
    let existing = sql(format!(
        "SELECT {APPT_COLS} FROM appointments WHERE patient_id = $1 AND idempotency_key = $2"
    ));
    write_tx!(db, tx => {
        let row: Option<AppointmentRow> = sqlx::query_as(insert)
            .bind(a.id).bind(a.patient_id).bind(a.doctor_id).bind(a.group_id).bind(a.specialty)
            .bind(a.target_kind).bind(a.status.as_str()).bind(a.window_start).bind(a.window_end)
            .bind(a.start_at).bind(a.end_at).bind(a.reason).bind(a.final_deadline)
            .bind(a.idempotency_key).bind(a.now).bind(a.owner)
            .fetch_optional(&mut *tx).await?;
        match row {
            Some(row) => {
                for e in events(&row)? {
                    enqueue!(&mut *tx, e)?;
                }
                Ok::<_, StoreError>((row, true))
            }
            None => {
                let row: AppointmentRow = sqlx::query_as(existing)
                    .bind(a.patient_id).bind(a.idempotency_key).fetch_one(&mut *tx).await?;
                Ok((row, false))
            }
        }
    })
}

/// # Errors
/// On storage failure.
pub async fn appointment(db: &Db, id: &str) -> Result<Option<AppointmentRow>, StoreError> {
    let q = sql(format!(
        "SELECT {APPT_COLS} FROM appointments WHERE id = $1"
    ));
    Ok(with_db!(db, p => sqlx::query_as(q).bind(id).fetch_optional(p).await?))
}

/// # Errors
/// On storage failure.
pub async fn offers_of(db: &Db, appointment_id: &str) -> Result<Vec<OfferRow>, StoreError> {
    let q = sql(format!(
        "SELECT {OFFER_COLS} FROM offers WHERE appointment_id = $1 ORDER BY id"
    ));
    Ok(with_db!(db, p => sqlx::query_as(q).bind(appointment_id).fetch_all(p).await?))
}

/// Pending offers of a doctor, oldest first.
///
/// # Errors
/// On storage failure.
pub async fn pending_offers_for(db: &Db, doctor_id: &str) -> Result<Vec<OfferRow>, StoreError> {
    let q = sql(format!(
        "SELECT {OFFER_COLS} FROM offers WHERE doctor_id = $1 AND status = 'pending' ORDER BY id"
    ));
    Ok(with_db!(db, p => sqlx::query_as(q).bind(doctor_id).fetch_all(p).await?))
}

/// Whose appointments a listing covers.
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    Patient(&'a str),
    Doctor(&'a str),
    Anyone,
}

/// Appointments newest first, keyset-paginated by id.
///
/// # Errors
/// On storage failure.
pub async fn list_appointments(
    db: &Db,
    owner: Owner<'_>,
    status: Option<AppointmentStatus>,
    before_id: Option<&str>,
    limit: i64,
) -> Result<Vec<AppointmentRow>, StoreError> {
    let status = status.map(AppointmentStatus::as_str);
    let (patient, doctor) = match owner {
        Owner::Patient(p) => (Some(p), None),
        Owner::Doctor(d) => (None, Some(d)),
        Owner::Anyone => (None, None),
    };
    // A doctor also sees requests offered to them.
    let q = sql(format!(
        "SELECT {APPT_COLS} FROM appointments a
         WHERE ($1 IS NULL OR a.patient_id = $1)
           AND ($2 IS NULL OR a.doctor_id = $2 OR EXISTS (SELECT 1 FROM offers o WHERE o.appointment_id = a.id AND o.doctor_id = $2))
           AND ($3 IS NULL OR a.status = $3)
           AND ($4 IS NULL OR a.id < $4)
         ORDER BY a.id DESC LIMIT $5"
    ));
    Ok(
        with_db!(db, p => sqlx::query_as(q).bind(patient).bind(doctor).bind(status).bind(before_id).bind(limit).fetch_all(p).await?),
    )
}

/// Open requests (requested or offered) with their final deadlines, for the router's rebuild.
///
/// # Errors
/// On storage failure.
pub async fn open_appointments(db: &Db) -> Result<Vec<AppointmentRow>, StoreError> {
    let q = sql(format!(
        "SELECT {APPT_COLS} FROM appointments WHERE status IN ('requested', 'offered') ORDER BY id"
    ));
    Ok(with_db!(db, p => sqlx::query_as(q).fetch_all(p).await?))
}

/// Doctors an appointment was ever offered to.
///
/// # Errors
/// On storage failure.
pub async fn tried_doctors(db: &Db, appointment_id: &str) -> Result<Vec<String>, StoreError> {
    let q = "SELECT doctor_id FROM offers WHERE appointment_id = $1";
    Ok(with_db!(db, p => sqlx::query_scalar(q).bind(appointment_id).fetch_all(p).await?))
}

/// A doctor's load in a window: open offers plus confirmed appointments overlapping it.
///
/// # Errors
/// On storage failure.
pub async fn load(db: &Db, doctor_id: &str, from: i64, to: i64) -> Result<i64, StoreError> {
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
pub async fn busy(
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
pub struct NewOffers<'a> {
    pub appointment_id: &'a str,
    /// The version the router read; the step applies only if nothing changed since.
    pub expected_version: i64,
    pub doctors: &'a [String],
    pub deadline: i64,
    pub now: i64,
    /// Round robin: the group and the cursor to store with the offers.
    pub rr_cursor: Option<(&'a str, i64)>,
}

/// Offers the appointment to `doctors` (one new pending offer each), moves it to `offered`,
/// advances a group's round-robin cursor, and writes the events, atomically. `None` when the
/// appointment changed meanwhile (another owner routed it).
///
/// # Errors
/// [`StoreError::Conflict`] when an offer to one of the doctors is already pending.
pub async fn create_offers(
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
pub enum Accepted {
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
pub struct Acceptance<'a> {
    pub appointment_id: &'a str,
    pub doctor_id: &'a str,
    pub start: i64,
    pub end: i64,
    pub now: i64,
}

/// Accepts a doctor's pending offer and confirms the appointment at [start, end), withdrawing
/// every other pending offer, atomically.
///
/// # Errors
/// [`StoreError::Conflict`] when the time overlaps another confirmed appointment of the doctor
/// or the patient (the database guard).
pub async fn accept_offer(
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
pub struct CloseOffer<'a> {
    pub appointment_id: &'a str,
    pub doctor_id: &'a str,
    /// `Declined` or `TimedOut`.
    pub to: OfferStatus,
    pub reason: Option<&'a str>,
    /// Only once its deadline passed (a time-out).
    pub due_only: bool,
    pub now: i64,
}

/// Closes a doctor's pending offer as `declined` or `timed_out` (for a time-out only once its
/// deadline passed). When it was the last pending offer the appointment goes back to
/// `requested` so routing moves on. `None` when there was no such pending offer.
///
/// # Errors
/// On storage failure.
pub async fn close_offer(
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
pub async fn due_offers(
    db: &Db,
    owner: &str,
    now: i64,
) -> Result<Vec<(String, String)>, StoreError> {
    let q = "SELECT o.appointment_id, o.doctor_id FROM offers o JOIN appointments a ON a.id = o.appointment_id
             WHERE o.status = 'pending' AND o.deadline <= $1 AND a.owner = $2 ORDER BY o.deadline";
    Ok(with_db!(db, p => sqlx::query_as(q).bind(now).bind(owner).fetch_all(p).await?))
}

/// Open requests past their final deadline.
///
/// # Errors
/// On storage failure.
pub async fn due_expiries(db: &Db, owner: &str, now: i64) -> Result<Vec<String>, StoreError> {
    let q = "SELECT id FROM appointments WHERE status IN ('requested', 'offered') AND final_deadline <= $1 AND owner = $2 ORDER BY final_deadline";
    Ok(with_db!(db, p => sqlx::query_scalar(q).bind(now).bind(owner).fetch_all(p).await?))
}

/// A status change to apply by compare-and-set.
#[derive(Debug, Clone, Copy)]
pub struct StatusChange<'a> {
    pub id: &'a str,
    /// The statuses it may start from (see [`crate::lifecycle::step`]).
    pub from: &'a [AppointmentStatus],
    pub to: AppointmentStatus,
    pub closed_by: Option<&'a str>,
    pub close_reason: Option<&'a str>,
    /// Only once the appointment started by this time.
    pub started_by: Option<i64>,
    pub now: i64,
}

/// A status change by compare-and-set: from one of `from` to `to`, optionally only once the
/// appointment started (`started_by`), withdrawing pending offers, with its events. `None`
/// when the appointment is not in an allowed state.
///
/// # Errors
/// On storage failure.
pub async fn transition(
    db: &Db,
    c: &StatusChange<'_>,
    events: Events<'_>,
) -> Result<Option<AppointmentRow>, StoreError> {
    let StatusChange {
        id,
        from,
        to,
        closed_by,
        close_reason,
        started_by,
        now,
    } = *c;
    if from.is_empty() {
        return Ok(None);
    }
    let from_params = (7..7 + from.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let upd = sql(format!(
        "UPDATE appointments SET status = $1, closed_by = COALESCE($2, closed_by), close_reason = COALESCE($3, close_reason),
             in_admin_queue = FALSE, version = version + 1, updated_at = $4,
             change_by = NULL, change_window_start = NULL, change_window_end = NULL, change_start = NULL, change_end = NULL
         WHERE id = $5 AND ($6 IS NULL OR start_at <= $6) AND status IN ({from_params}) RETURNING {APPT_COLS}"
    ));
    write_tx!(db, tx => {
        let mut q = sqlx::query_as(upd)
            .bind(to.as_str()).bind(closed_by).bind(close_reason).bind(now).bind(id).bind(started_by);
        for s in from {
            q = q.bind(s.as_str());
        }
        let row: Option<AppointmentRow> = q.fetch_optional(&mut *tx).await?;
        let Some(row) = row else { return Ok(None) };
        sqlx::query("UPDATE offers SET status = 'withdrawn', decided_at = $1 WHERE appointment_id = $2 AND status = 'pending'")
            .bind(now).bind(id).execute(&mut *tx).await?;
        for e in events(&row)? {
            enqueue!(&mut *tx, e)?;
        }
        Ok::<_, StoreError>(Some(row))
    })
}

/// Puts an unrouteable request into the admin queue (once).
///
/// # Errors
/// On storage failure.
pub async fn escalate(
    db: &Db,
    id: &str,
    now: i64,
    events: Events<'_>,
) -> Result<Option<AppointmentRow>, StoreError> {
    let upd = sql(format!(
        "UPDATE appointments SET in_admin_queue = TRUE, version = version + 1, updated_at = $1
         WHERE id = $2 AND status = 'requested' AND in_admin_queue = FALSE RETURNING {APPT_COLS}"
    ));
    write_tx!(db, tx => {
        let row: Option<AppointmentRow> = sqlx::query_as(upd).bind(now).bind(id).fetch_optional(&mut *tx).await?;
        if let Some(row) = &row {
            for e in events(row)? {
                enqueue!(&mut *tx, e)?;
            }
        }
        Ok::<_, StoreError>(row)
    })
}

/// Where a request is routed: `kind` is `doctor`, `group` or `specialty`, with its id or name.
#[derive(Debug, Clone, Copy)]
pub struct Routing<'a> {
    pub kind: &'a str,
    pub doctor_id: Option<&'a str>,
    pub group_id: Option<&'a str>,
    pub specialty: Option<&'a str>,
}

/// Points an open request at a new target (admin re-route), withdrawing pending offers and
/// taking it out of the admin queue. `None` when it is no longer open.
///
/// # Errors
/// On storage failure.
pub async fn retarget(
    db: &Db,
    id: &str,
    target: &Routing<'_>,
    now: i64,
) -> Result<Option<AppointmentRow>, StoreError> {
    let Routing {
        kind,
        doctor_id,
        group_id,
        specialty,
    } = *target;
    let upd = sql(format!(
        "UPDATE appointments SET target_kind = $1, doctor_id = $2, group_id = $3, specialty = $4, status = 'requested',
             in_admin_queue = FALSE, version = version + 1, updated_at = $5
         WHERE id = $6 AND status IN ('requested', 'offered') RETURNING {APPT_COLS}"
    ));
    write_tx!(db, tx => {
        let row: Option<AppointmentRow> = sqlx::query_as(upd).bind(kind).bind(doctor_id).bind(group_id).bind(specialty).bind(now).bind(id)
            .fetch_optional(&mut *tx).await?;
        if row.is_some() {
            sqlx::query("UPDATE offers SET status = 'withdrawn', decided_at = $1 WHERE appointment_id = $2 AND status = 'pending'")
                .bind(now).bind(id).execute(&mut *tx).await?;
        }
        Ok::<_, StoreError>(row)
    })
}

/// Stores a newer copy of a doctor; older or equal versions change nothing.
///
/// # Errors
/// On storage failure.
pub async fn upsert_doctor(db: &Db, d: &DoctorRow) -> Result<(), StoreError> {
    let q = "INSERT INTO doctors (doctor_id, display_name, specialties, approved, auto_accept, availability, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (doctor_id) DO UPDATE SET display_name = excluded.display_name, specialties = excluded.specialties,
                 approved = excluded.approved, auto_accept = excluded.auto_accept, availability = excluded.availability,
                 version = excluded.version
             WHERE doctors.version < excluded.version";
    with_db!(db, p => sqlx::query(q).bind(&d.doctor_id).bind(&d.display_name).bind(&d.specialties).bind(d.approved)
        .bind(d.auto_accept).bind(&d.availability).bind(d.version).execute(p).await?.rows_affected());
    Ok(())
}

/// # Errors
/// On storage failure.
pub async fn doctor(db: &Db, id: &str) -> Result<Option<DoctorRow>, StoreError> {
    let q = "SELECT doctor_id, display_name, specialties, approved, auto_accept, availability, version FROM doctors WHERE doctor_id = $1";
    Ok(with_db!(db, p => sqlx::query_as(q).bind(id).fetch_optional(p).await?))
}

/// Approved doctors of a specialty, in id order.
///
/// # Errors
/// On storage failure.
pub async fn doctors_of_specialty(db: &Db, specialty: &str) -> Result<Vec<DoctorRow>, StoreError> {
    let q = "SELECT doctor_id, display_name, specialties, approved, auto_accept, availability, version FROM doctors
             WHERE approved = TRUE AND specialties LIKE $1 ORDER BY doctor_id";
    let pattern = format!("%,{specialty},%");
    Ok(with_db!(db, p => sqlx::query_as(q).bind(pattern).fetch_all(p).await?))
}

const GROUP_COLS: &str = "id, name, specialty, strategy, accept_deadline_secs, rr_cursor, version";

/// A group and its members in order.
///
/// # Errors
/// On storage failure.
pub async fn group(db: &Db, id: &str) -> Result<Option<(GroupRow, Vec<String>)>, StoreError> {
    let q = sql(format!(
        "SELECT {GROUP_COLS} FROM doctor_groups WHERE id = $1"
    ));
    let row: Option<GroupRow> =
        with_db!(db, p => sqlx::query_as(q).bind(id).fetch_optional(p).await?);
    let Some(row) = row else { return Ok(None) };
    let members = members(db, &row.id).await?;
    Ok(Some((row, members)))
}

async fn members(db: &Db, group_id: &str) -> Result<Vec<String>, StoreError> {
    let q = "SELECT doctor_id FROM group_members WHERE group_id = $1 ORDER BY position";
    Ok(with_db!(db, p => sqlx::query_scalar(q).bind(group_id).fetch_all(p).await?))
}

/// The routing group of a specialty, if any.
///
/// # Errors
/// On storage failure.
pub async fn group_of_specialty(db: &Db, specialty: &str) -> Result<Option<String>, StoreError> {
    let q = "SELECT id FROM doctor_groups WHERE specialty = $1";
    Ok(with_db!(db, p => sqlx::query_scalar(q).bind(specialty).fetch_optional(p).await?))
}

/// Every group with its members.
///
/// # Errors
/// On storage failure.
pub async fn groups(db: &Db) -> Result<Vec<(GroupRow, Vec<String>)>, StoreError> {
    let q = sql(format!(
        "SELECT {GROUP_COLS} FROM doctor_groups ORDER BY name, id"
    ));
    let rows: Vec<GroupRow> = with_db!(db, p => sqlx::query_as(q).fetch_all(p).await?);
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let m = members(db, &r.id).await?;
        out.push((r, m));
    }
    Ok(out)
}

/// A group as saved.
#[derive(Debug)]
pub struct SaveGroupRow<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub specialty: Option<&'a str>,
    pub strategy: Strategy,
    pub accept_deadline_secs: i64,
    pub members: &'a [String],
    /// `None` inserts; `Some(v)` replaces only if the stored version is `v`.
    pub expected_version: Option<i64>,
}

/// Creates or replaces a group and its members. `false` when the expected version was stale.
///
/// # Errors
/// [`StoreError::Conflict`] when another group already routes the specialty.
pub async fn save_group(db: &Db, g: &SaveGroupRow<'_>, now: i64) -> Result<bool, StoreError> {
    write_tx!(db, tx => {
        let n = match g.expected_version {
            None => sqlx::query("INSERT INTO doctor_groups (id, name, specialty, strategy, accept_deadline_secs, rr_cursor, version, created_at) VALUES ($1, $2, $3, $4, $5, 0, 1, $6)")
                .bind(g.id).bind(g.name).bind(g.specialty).bind(g.strategy.as_str()).bind(g.accept_deadline_secs).bind(now)
                .execute(&mut *tx).await?.rows_affected(),
            Some(v) => sqlx::query("UPDATE doctor_groups SET name = $1, specialty = $2, strategy = $3, accept_deadline_secs = $4, version = version + 1 WHERE id = $5 AND version = $6")
                .bind(g.name).bind(g.specialty).bind(g.strategy.as_str()).bind(g.accept_deadline_secs).bind(g.id).bind(v)
                .execute(&mut *tx).await?.rows_affected(),
        };
        if n != 1 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM group_members WHERE group_id = $1").bind(g.id).execute(&mut *tx).await?;
        for (i, d) in g.members.iter().enumerate() {
            sqlx::query("INSERT INTO group_members (group_id, doctor_id, position) VALUES ($1, $2, $3)")
                .bind(g.id).bind(d).bind(i64::try_from(i).unwrap_or(i64::MAX)).execute(&mut *tx).await?;
        }
        Ok::<_, StoreError>(true)
    })
}

/// What relation a doctor has with a patient: (open offer, confirmed, end of the last
/// completed appointment).
///
/// # Errors
/// On storage failure.
pub async fn care_relation(
    db: &Db,
    doctor_id: &str,
    patient_id: &str,
) -> Result<(bool, bool, Option<i64>), StoreError> {
    let q = "SELECT
               CAST(CASE WHEN EXISTS (SELECT 1 FROM offers o JOIN appointments a ON a.id = o.appointment_id
                    WHERE o.doctor_id = $1 AND a.patient_id = $2 AND o.status = 'pending') THEN 1 ELSE 0 END AS BIGINT),
               CAST(CASE WHEN EXISTS (SELECT 1 FROM appointments WHERE doctor_id = $1 AND patient_id = $2 AND status = 'confirmed') THEN 1 ELSE 0 END AS BIGINT),
               (SELECT MAX(end_at) FROM appointments WHERE doctor_id = $1 AND patient_id = $2 AND status = 'completed')";
    let (o, c, last): (i64, i64, Option<i64>) =
        with_db!(db, p => sqlx::query_as(q).bind(doctor_id).bind(patient_id).fetch_one(p).await?);
    Ok((o == 1, c == 1, last))
}

/// A stored audit entry (from any service).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub event_id: String,
    pub at: i64,
    pub service: String,
    pub actor_id: String,
    pub actor_role: String,
    pub subject_id: Option<String>,
    pub action: String,
    pub reason: Option<String>,
}

/// Appends an audit entry; the same entry twice is stored once.
///
/// # Errors
/// On storage failure.
pub async fn insert_audit(db: &Db, a: &AuditRow) -> Result<(), StoreError> {
    let q = "INSERT INTO audit_log (event_id, at, service, actor_id, actor_role, subject_id, action, reason)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id) DO NOTHING";
    with_db!(db, p => sqlx::query(q).bind(&a.event_id).bind(a.at).bind(&a.service).bind(&a.actor_id).bind(&a.actor_role)
        .bind(&a.subject_id).bind(&a.action).bind(&a.reason).execute(p).await?.rows_affected());
    Ok(())
}

/// Audit entries newest first.
///
/// # Errors
/// On storage failure.
pub async fn list_audit(
    db: &Db,
    subject_id: Option<&str>,
    actor_id: Option<&str>,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<AuditRow>, StoreError> {
    let q = "SELECT event_id, at, service, actor_id, actor_role, subject_id, action, reason FROM audit_log
             WHERE ($1 IS NULL OR subject_id = $1) AND ($2 IS NULL OR actor_id = $2) AND ($3 IS NULL OR event_id < $3)
             ORDER BY event_id DESC LIMIT $4";
    Ok(
        with_db!(db, p => sqlx::query_as(q).bind(subject_id).bind(actor_id).bind(before).bind(limit).fetch_all(p).await?),
    )
}

/// Open requests owned by `owner` (for its router's rebuild).
///
/// # Errors
/// On storage failure.
pub async fn owned_open_appointments(
    db: &Db,
    owner: &str,
) -> Result<Vec<AppointmentRow>, StoreError> {
    let q = sql(format!(
        "SELECT {APPT_COLS} FROM appointments WHERE owner = $1 AND status IN ('requested', 'offered') ORDER BY id"
    ));
    Ok(with_db!(db, p => sqlx::query_as(q).bind(owner).fetch_all(p).await?))
}

/// Requests of `owner` waiting for routing: requested, not in the admin queue, no pending offer.
///
/// # Errors
/// On storage failure.
pub async fn owned_waiting(db: &Db, owner: &str) -> Result<Vec<String>, StoreError> {
    let q = "SELECT id FROM appointments a WHERE owner = $1 AND status = 'requested' AND in_admin_queue = FALSE
             AND NOT EXISTS (SELECT 1 FROM offers o WHERE o.appointment_id = a.id AND o.status = 'pending') ORDER BY id";
    Ok(with_db!(db, p => sqlx::query_scalar(q).bind(owner).fetch_all(p).await?))
}

/// Renews an instance's lease (creating its row on first call).
///
/// # Errors
/// On storage failure.
pub async fn renew_lease(db: &Db, id: &str, until: i64, now: i64) -> Result<(), StoreError> {
    let q = "INSERT INTO admin_instances (id, lease_until, started_at) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET lease_until = excluded.lease_until";
    with_db!(db, p => sqlx::query(q).bind(id).bind(until).bind(now).execute(p).await?.rows_affected());
    Ok(())
}

/// Gives up an instance's lease at a clean shutdown, so others adopt its requests at once.
///
/// # Errors
/// On storage failure.
pub async fn release_lease(db: &Db, id: &str) -> Result<(), StoreError> {
    with_db!(db, p => sqlx::query("UPDATE admin_instances SET lease_until = 0 WHERE id = $1").bind(id).execute(p).await?.rows_affected());
    Ok(())
}

/// Moves the open requests of instances whose lease ran out (or of no instance) to `me`,
/// compare-and-set per request, and forgets those instances. Returns the adopted ids.
///
/// # Errors
/// On storage failure.
pub async fn adopt_orphans(db: &Db, me: &str, now: i64) -> Result<Vec<String>, StoreError> {
    write_tx!(db, tx => {
        let dead: Vec<String> = sqlx::query_scalar("SELECT id FROM admin_instances WHERE lease_until < $1 AND id <> $2")
            .bind(now).bind(me).fetch_all(&mut *tx).await?;
        let mut adopted: Vec<String> = sqlx::query_scalar(
            "UPDATE appointments SET owner = $1 WHERE status IN ('requested', 'offered')
               AND (owner IS NULL OR owner NOT IN (SELECT id FROM admin_instances WHERE lease_until >= $2 OR id = $1))
             RETURNING id")
            .bind(me).bind(now).fetch_all(&mut *tx).await?;
        for d in &dead {
            sqlx::query("DELETE FROM admin_instances WHERE id = $1 AND lease_until < $2").bind(d).bind(now).execute(&mut *tx).await?;
        }
        adopted.sort();
        Ok::<_, StoreError>(adopted)
    })
}

/// A doctor's confirmed appointments overlapping `[from, to)` (`to` = `None`: from `from` on).
///
/// # Errors
/// On storage failure.
pub async fn confirmed_overlapping(
    db: &Db,
    doctor_id: &str,
    from: i64,
    to: Option<i64>,
) -> Result<Vec<AppointmentRow>, StoreError> {
    let q = sql(format!(
        "SELECT {APPT_COLS} FROM appointments WHERE doctor_id = $1 AND status = 'confirmed'
           AND end_at > $2 AND ($3 IS NULL OR start_at < $3) ORDER BY start_at"
    ));
    Ok(with_db!(db, p => sqlx::query_as(q).bind(doctor_id).bind(from).bind(to).fetch_all(p).await?))
}

/// A patient's request to move a confirmed appointment into a new window.
#[derive(Debug, Clone, Copy)]
pub struct MoveRequest<'a> {
    pub id: &'a str,
    /// The doctor who gets the offer to choose a time in the window.
    pub doctor_id: &'a str,
    pub window_start: i64,
    pub window_end: i64,
    /// The offer's deadline.
    pub deadline: i64,
    pub now: i64,
}

/// A patient's move request: records the new window and offers it to the doctor, atomically,
/// while the confirmed time holds. `None` when the appointment is not confirmed or a move is
/// already pending.
///
/// # Errors
/// [`StoreError::Conflict`] when an offer to the doctor is already pending.
pub async fn request_change(
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
pub async fn propose_change(
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
pub struct MoveAnswer<'a> {
    pub id: &'a str,
    /// Who asked for the move: `patient` or `doctor`.
    pub by: &'a str,
    /// For a patient's move: the doctor whose pending offer the answer closes.
    pub offer_doctor: Option<&'a str>,
    /// Why it was declined (stored on the doctor's offer).
    pub reason: Option<&'a str>,
    pub now: i64,
}

/// Applies a pending move: the new time replaces the old in one update (the overlap guard
/// checks it against every other confirmed appointment). For a patient's move, the doctor's
/// offer is accepted in the same transaction. `None` when no such move is pending.
///
/// # Errors
/// [`StoreError::Conflict`] when the new time overlaps another confirmed appointment.
pub async fn apply_change(
    db: &Db,
    m: &MoveAnswer<'_>,
    start: i64,
    end: i64,
    events: Events<'_>,
) -> Result<Option<AppointmentRow>, StoreError> {
    let MoveAnswer {
        id,
        by,
        offer_doctor,
        now,
        ..
    } = *m;
    let upd = sql(format!(
        "UPDATE appointments SET start_at = $1, end_at = $2,
             window_start = COALESCE(change_window_start, $1), window_end = COALESCE(change_window_end, $2),
             change_by = NULL, change_window_start = NULL, change_window_end = NULL, change_start = NULL, change_end = NULL,
             version = version + 1, updated_at = $3
         WHERE id = $4 AND status = 'confirmed' AND change_by = $5 RETURNING {APPT_COLS}"
    ));
    write_tx!(db, tx => {
        if let Some(d) = offer_doctor {
            let n = sqlx::query("UPDATE offers SET status = 'accepted', decided_at = $1 WHERE appointment_id = $2 AND doctor_id = $3 AND status = 'pending' AND deadline > $1")
                .bind(now).bind(id).bind(d).execute(&mut *tx).await?.rows_affected();
            if n != 1 {
                return Ok(None);
            }
        }
        let row: Option<AppointmentRow> = sqlx::query_as(upd).bind(start).bind(end).bind(now).bind(id).bind(by).fetch_optional(&mut *tx).await?;
        let Some(row) = row else { return Ok(None) };
        for e in events(&row)? {
            enqueue!(&mut *tx, e)?;
        }
        Ok::<_, StoreError>(Some(row))
    })
}

/// Drops a pending move (declined): the confirmed time stands; a doctor's pending offer for
/// it is declined. `None` when no such move is pending.
///
/// # Errors
/// On storage failure.
pub async fn drop_change(
    db: &Db,
    m: &MoveAnswer<'_>,
    events: Events<'_>,
) -> Result<Option<AppointmentRow>, StoreError> {
    let MoveAnswer {
        id,
        by,
        offer_doctor,
        reason,
        now,
    } = *m;
    let upd = sql(format!(
        "UPDATE appointments SET change_by = NULL, change_window_start = NULL, change_window_end = NULL, change_start = NULL, change_end = NULL,
             version = version + 1, updated_at = $1
         WHERE id = $2 AND status = 'confirmed' AND change_by = $3 RETURNING {APPT_COLS}"
    ));
    write_tx!(db, tx => {
        if let Some(d) = offer_doctor {
            let n = sqlx::query("UPDATE offers SET status = 'declined', reason = $1, decided_at = $2 WHERE appointment_id = $3 AND doctor_id = $4 AND status = 'pending'")
                .bind(reason).bind(now).bind(id).bind(d).execute(&mut *tx).await?.rows_affected();
            if n != 1 {
                return Ok(None);
            }
        }
        let row: Option<AppointmentRow> = sqlx::query_as(upd).bind(now).bind(id).bind(by).fetch_optional(&mut *tx).await?;
        let Some(row) = row else { return Ok(None) };
        for e in events(&row)? {
            enqueue!(&mut *tx, e)?;
        }
        Ok::<_, StoreError>(Some(row))
    })
}

/// Records a finished call of an appointment: once per call id. Returns the appointment when
/// this call was new, `None` when it was recorded before or the appointment does not exist.
///
/// # Errors
/// On storage failure.
pub async fn record_call(
    db: &Db,
    call_id: &str,
    appointment_id: &str,
    started: i64,
    ended: i64,
    events: Events<'_>,
) -> Result<Option<AppointmentRow>, StoreError> {
    let upd = sql(format!(
        "UPDATE appointments SET last_call_started = $1, last_call_ended = $2,
             call_seconds = call_seconds + $3, version = version + 1, updated_at = $2
         WHERE id = $4 RETURNING {APPT_COLS}"
    ));
    write_tx!(db, tx => {
        let n = sqlx::query("INSERT INTO calls (call_id, appointment_id, started_at, ended_at) VALUES ($1, $2, $3, $4) ON CONFLICT (call_id) DO NOTHING")
            .bind(call_id).bind(appointment_id).bind(started).bind(ended).execute(&mut *tx).await?.rows_affected();
        if n != 1 {
            return Ok(None);
        }
        let seconds = (ended - started) / 1000;
        let row: Option<AppointmentRow> = sqlx::query_as(upd).bind(started).bind(ended).bind(seconds).bind(appointment_id).fetch_optional(&mut *tx).await?;
        if let Some(row) = &row {
            for e in events(row)? {
                enqueue!(&mut *tx, e)?;
            }
        }
        Ok::<_, StoreError>(row)
    })
}

/// The times in `[from, to)` no slot query lists as free: the doctor's confirmed appointments,
/// the new times the doctor proposed for a move (held until the patient answers), and, with
/// `patient_id`, that patient's own confirmed appointments. Sorted by start.
///
/// # Errors
/// On storage failure.
pub async fn taken(
    db: &Db,
    doctor_id: &str,
    from: i64,
    to: i64,
    patient_id: Option<&str>,
) -> Result<Vec<(i64, i64)>, StoreError> {
    let q = "SELECT start_at, end_at FROM appointments
               WHERE doctor_id = $1 AND status = 'confirmed' AND start_at < $3 AND $2 < end_at
             UNION ALL
             SELECT change_start, change_end FROM appointments
               WHERE doctor_id = $1 AND status = 'confirmed' AND change_by = 'doctor'
                 AND change_start < $3 AND $2 < change_end
             UNION ALL
             SELECT start_at, end_at FROM appointments
               WHERE patient_id = $4 AND status = 'confirmed' AND start_at < $3 AND $2 < end_at
             ORDER BY 1";
    Ok(
        with_db!(db, p => sqlx::query_as(q).bind(doctor_id).bind(from).bind(to).bind(patient_id).fetch_all(p).await?),
    )
}

/// Whether the patient has a confirmed appointment overlapping `[start, end)`, other than
/// `except` (the appointment being moved).
///
/// # Errors
/// On storage failure.
pub async fn patient_busy(
    db: &Db,
    patient_id: &str,
    start: i64,
    end: i64,
    except: Option<&str>,
) -> Result<bool, StoreError> {
    let q = "SELECT COUNT(*) FROM appointments WHERE patient_id = $1 AND status = 'confirmed'
               AND start_at < $3 AND $2 < end_at AND ($4 IS NULL OR id <> $4)";
    let n: i64 = with_db!(db, p => sqlx::query_scalar(q).bind(patient_id).bind(start).bind(end).bind(except).fetch_one(p).await?);
    Ok(n > 0)
}

/// Whether a time the doctor proposed for a move (still unanswered) overlaps `[start, end)`,
/// other than on `except`.
///
/// # Errors
/// On storage failure.
pub async fn held_by_proposal(
    db: &Db,
    doctor_id: &str,
    start: i64,
    end: i64,
    except: Option<&str>,
) -> Result<bool, StoreError> {
    let q = "SELECT COUNT(*) FROM appointments WHERE doctor_id = $1 AND status = 'confirmed'
               AND change_by = 'doctor' AND change_start < $3 AND $2 < change_end
               AND ($4 IS NULL OR id <> $4)";
    let n: i64 = with_db!(db, p => sqlx::query_scalar(q).bind(doctor_id).bind(start).bind(end).bind(except).fetch_one(p).await?);
    Ok(n > 0)
}
