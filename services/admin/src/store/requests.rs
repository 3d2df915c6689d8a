//! Storing requests and changing their status: insert, read, list, the compare-and-set status
//! change, escalation, re-routing, and what the router reads to rebuild.

use super::{APPT_COLS, AppointmentRow, Events, sql};
use carehub_nats::appointment::AppointmentStatus;
use carehub_runtime::db::{Db, StoreError};
use carehub_runtime::{enqueue, with_db, write_tx};

/// A request about to be stored.
#[derive(Debug)]
pub(crate) struct NewAppointment<'a> {
    pub(crate) id: &'a str,
    pub(crate) owner: &'a str,
    pub(crate) patient_id: &'a str,
    pub(crate) doctor_id: Option<&'a str>,
    pub(crate) group_id: Option<&'a str>,
    pub(crate) specialty: Option<&'a str>,
    pub(crate) target_kind: &'a str,
    pub(crate) status: AppointmentStatus,
    pub(crate) window_start: i64,
    pub(crate) window_end: i64,
    pub(crate) start_at: Option<i64>,
    pub(crate) end_at: Option<i64>,
    pub(crate) reason: &'a str,
    pub(crate) final_deadline: i64,
    pub(crate) idempotency_key: Option<&'a str>,
    pub(crate) now: i64,
}

/// Stores a new appointment with its events. With an idempotency key already used by this
/// patient, stores nothing and returns the earlier appointment (`false`).
///
/// # Errors
/// [`StoreError::Conflict`] when a confirmed booking overlaps another (the database guard).
pub(crate) async fn insert_appointment(
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
pub(crate) async fn appointment(db: &Db, id: &str) -> Result<Option<AppointmentRow>, StoreError> {
    let q = sql(format!(
        "SELECT {APPT_COLS} FROM appointments WHERE id = $1"
    ));
    Ok(with_db!(db, p => sqlx::query_as(q).bind(id).fetch_optional(p).await?))
}

/// Whose appointments a listing covers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Owner<'a> {
    Patient(&'a str),
    Doctor(&'a str),
    Anyone,
}

/// Appointments newest first, keyset-paginated by id.
///
/// # Errors
/// On storage failure.
pub(crate) async fn list_appointments(
    db: &Db,
    owner: Owner<'_>,
    status: Option<AppointmentStatus>,
    before_id: Option<&str>,
    limit: i64,
) -> Result<Vec<AppointmentRow>, StoreError> {
    let status = status.map(AppointmentStatus::as_str);
    // One statement per kind of caller, so that each prepared statement has a plan for its own
    // shape. For a catch-all `($1 IS NULL OR a.patient_id = $1)` PostgreSQL finds no generic plan
    // as good as a custom one and plans the statement again at every execution (0.09 ms of
    // planning for a 0.04 ms read over 50,000 appointments); this one keeps its generic plan on
    // the patient's index (0.01 ms).
    let (who, party) = match owner {
        Owner::Patient(p) => ("a.patient_id = $1 AND", Some(p)),
        // A doctor also sees requests offered to them.
        Owner::Doctor(d) => (
            "(a.doctor_id = $1 OR EXISTS (SELECT 1 FROM offers o WHERE o.appointment_id = a.id AND o.doctor_id = $1)) AND",
            Some(d),
        ),
        Owner::Anyone => ("", None),
    };
    let n = usize::from(party.is_some());
    let q = sql(format!(
        "SELECT {APPT_COLS} FROM appointments a
         WHERE {who} (${s} IS NULL OR a.status = ${s}) AND (${c} IS NULL OR a.id < ${c})
         ORDER BY a.id DESC LIMIT ${l}",
        s = n + 1,
        c = n + 2,
        l = n + 3,
    ));
    Ok(with_db!(db, p => {
        let mut q = sqlx::query_as(q);
        if let Some(party) = party {
            q = q.bind(party);
        }
        q.bind(status).bind(before_id).bind(limit).fetch_all(p).await?
    }))
}

/// Open requests (requested or offered) with their final deadlines, for the router's rebuild.
///
/// # Errors
/// On storage failure.
pub(crate) async fn open_appointments(db: &Db) -> Result<Vec<AppointmentRow>, StoreError> {
    let q = sql(format!(
        "SELECT {APPT_COLS} FROM appointments WHERE status IN ('requested', 'offered') ORDER BY id"
    ));
    Ok(with_db!(db, p => sqlx::query_as(q).fetch_all(p).await?))
}

/// Requests of `owner` waiting for routing: requested, not in the admin queue, no pending offer.
///
/// # Errors
/// On storage failure.
pub(crate) async fn owned_waiting(db: &Db, owner: &str) -> Result<Vec<String>, StoreError> {
    let q = "SELECT id FROM appointments a WHERE owner = $1 AND status = 'requested' AND in_admin_queue = FALSE
             AND NOT EXISTS (SELECT 1 FROM offers o WHERE o.appointment_id = a.id AND o.status = 'pending') ORDER BY id";
    Ok(with_db!(db, p => sqlx::query_scalar(q).bind(owner).fetch_all(p).await?))
}

/// Open requests past their final deadline.
///
/// # Errors
/// On storage failure.
pub(crate) async fn due_expiries(
    db: &Db,
    owner: &str,
    now: i64,
) -> Result<Vec<String>, StoreError> {
    let q = "SELECT id FROM appointments WHERE status IN ('requested', 'offered') AND final_deadline <= $1 AND owner = $2 ORDER BY final_deadline";
    Ok(with_db!(db, p => sqlx::query_scalar(q).bind(now).bind(owner).fetch_all(p).await?))
}

/// A status change to apply by compare-and-set.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StatusChange<'a> {
    pub(crate) id: &'a str,
    /// The statuses it may start from (see [`crate::lifecycle::step`]).
    pub(crate) from: &'a [AppointmentStatus],
    pub(crate) to: AppointmentStatus,
    pub(crate) closed_by: Option<&'a str>,
    pub(crate) close_reason: Option<&'a str>,
    /// Only once the appointment started by this time.
    pub(crate) started_by: Option<i64>,
    pub(crate) now: i64,
}

/// A status change by compare-and-set: from one of `from` to `to`, optionally only once the
/// appointment started (`started_by`), withdrawing pending offers, with its events. `None`
/// when the appointment is not in an allowed state.
///
/// # Errors
/// On storage failure.
pub(crate) async fn transition(
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
pub(crate) async fn escalate(
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
pub(crate) struct Routing<'a> {
    pub(crate) kind: &'a str,
    pub(crate) doctor_id: Option<&'a str>,
    pub(crate) group_id: Option<&'a str>,
    pub(crate) specialty: Option<&'a str>,
}

/// Points an open request at a new target (admin re-route), withdrawing pending offers and
/// taking it out of the admin queue. `None` when it is no longer open.
///
/// # Errors
/// On storage failure.
pub(crate) async fn retarget(
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
