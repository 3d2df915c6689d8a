//! What other services ask about appointments (care relations, taken times, confirmed
//! appointments in a period) and the calls the hub records, plus the overlap checks.

use super::{APPT_COLS, AppointmentRow, DoctorRow, Events, sql};
use carehub_runtime::db::{Db, StoreError};
use carehub_runtime::{enqueue, with_db, write_tx};

/// What relation a doctor has with a patient: (open offer, confirmed, end of the last
/// completed appointment).
///
/// # Errors
/// On storage failure.
pub(crate) async fn care_relation(
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

/// A doctor's confirmed appointments overlapping `[from, to)` (`to` = `None`: from `from` on).
///
/// # Errors
/// On storage failure.
pub(crate) async fn confirmed_overlapping(
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

/// Records a finished call of an appointment: once per call id. Returns the appointment when
/// this call was new, `None` when it was recorded before or the appointment does not exist.
///
/// # Errors
/// On storage failure.
pub(crate) async fn record_call(
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

/// No appointment is longer than this: each is one slot of its doctor, and slots are at most
/// four hours. [`taken`] uses it as a lower bound on the start, so it reads the index range of
/// its window rather than every appointment the doctor ever had before it.
const LONGEST_APPOINTMENT_MS: i64 = 24 * 3_600_000;

/// The taken times of [`taken`] as one text of "start end" pairs, or NULL when there are none.
/// Parameters: $1 doctor, $2 from, $3 to, $4 patient (or NULL), $5 the earliest start that can
/// still reach into the window. Each part reads one partial index (`appointments_doctor_taken`,
/// `appointments_doctor_proposed`, `appointments_patient_taken`) between $5 and $3. One
/// text rather than a row per time: a week of a busy diary is a hundred rows or more, and the
/// SQLite driver hands each row over between threads on its own, which cost more than the
/// query itself.
macro_rules! taken_pairs {
    () => {
        "SELECT string_agg(s || ' ' || e, ' ') FROM (
           SELECT start_at AS s, end_at AS e FROM appointments
             WHERE doctor_id = $1 AND status = 'confirmed'
               AND start_at > $5 AND start_at < $3 AND $2 < end_at
           UNION ALL
           SELECT change_start, change_end FROM appointments
             WHERE doctor_id = $1 AND status = 'confirmed' AND change_by = 'doctor'
               AND change_start > $5 AND change_start < $3 AND $2 < change_end
           UNION ALL
           SELECT start_at, end_at FROM appointments
             WHERE patient_id = $4 AND status = 'confirmed'
               AND start_at > $5 AND start_at < $3 AND $2 < end_at
         ) AS taken"
    };
}

/// The times in `[from, to)` no slot query lists as free: the doctor's confirmed appointments,
/// the new times the doctor proposed for a move (held until the patient answers), and, with
/// `patient_id`, that patient's own confirmed appointments. Sorted by start.
///
/// # Errors
/// On storage failure.
pub(crate) async fn taken(
    db: &Db,
    doctor_id: &str,
    from: i64,
    to: i64,
    patient_id: Option<&str>,
) -> Result<Vec<(i64, i64)>, StoreError> {
    let q = taken_pairs!();
    let earliest = from - LONGEST_APPOINTMENT_MS;
    let pairs: Option<String> = with_db!(db, p => sqlx::query_scalar(q)
        .bind(doctor_id).bind(from).bind(to).bind(patient_id).bind(earliest)
        .fetch_one(p).await?);
    time_pairs(pairs.as_deref().unwrap_or_default())
}

/// A doctor's copy and the times [`taken`] in `[from, to)`, read by one statement (so in one
/// transaction); `None` when the doctor is unknown.
///
/// # Errors
/// On storage failure.
pub(crate) async fn doctor_and_taken(
    db: &Db,
    doctor_id: &str,
    from: i64,
    to: i64,
    patient_id: Option<&str>,
) -> Result<Option<(DoctorRow, Vec<(i64, i64)>)>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        doctor: DoctorRow,
        taken: Option<String>,
    }
    let q = concat!(
        "SELECT doctor_id, display_name, specialties, approved, auto_accept, availability, version, (",
        taken_pairs!(),
        ") AS taken FROM doctors WHERE doctor_id = $1"
    );
    let earliest = from - LONGEST_APPOINTMENT_MS;
    let row: Option<Row> = with_db!(db, p => sqlx::query_as(q)
        .bind(doctor_id).bind(from).bind(to).bind(patient_id).bind(earliest)
        .fetch_optional(p).await?);
    row.map(|r| {
        Ok((
            r.doctor,
            time_pairs(r.taken.as_deref().unwrap_or_default())?,
        ))
    })
    .transpose()
}

/// Reads "start end start end …" (Unix milliseconds) into pairs, sorted by start.
fn time_pairs(text: &str) -> Result<Vec<(i64, i64)>, StoreError> {
    let bad = || {
        StoreError::Other(sqlx::Error::Decode(
            format!("unreadable taken times: {text:.80}").into(),
        ))
    };
    let mut numbers = text.split_ascii_whitespace().map(str::parse::<i64>);
    let mut out = Vec::new();
    while let Some(start) = numbers.next() {
        let end = numbers.next().ok_or_else(bad)?;
        out.push((start.map_err(|_| bad())?, end.map_err(|_| bad())?));
    }
    out.sort_unstable();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::time_pairs;

    #[test]
    fn taken_times_are_read_in_pairs_sorted_and_anything_else_is_refused() {
        assert_eq!(time_pairs("").unwrap(), []);
        assert_eq!(time_pairs("10 20 -5 7").unwrap(), [(-5, 7), (10, 20)]);
        assert!(time_pairs("10").is_err());
        assert!(time_pairs("10 x").is_err());
    }
}

/// Whether the patient has a confirmed appointment overlapping `[start, end)`, other than
/// `except` (the appointment being moved).
///
/// # Errors
/// On storage failure.
pub(crate) async fn patient_busy(
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

/// Who already holds `[start, end)`, other than the appointment `except` (the one being moved
/// or swapped): the patient with a confirmed appointment, and the doctor with a confirmed
/// appointment or a time they proposed for a move that is still unanswered. One read, so a
/// booking that lost its slot is refused before it writes anything.
///
/// # Errors
/// On storage failure.
pub(crate) async fn holders(
    db: &Db,
    patient_id: &str,
    doctor_id: &str,
    start: i64,
    end: i64,
    except: Option<&str>,
) -> Result<Holders, StoreError> {
    let q = "SELECT
               (SELECT COUNT(*) FROM appointments WHERE patient_id = $1 AND status = 'confirmed'
                  AND start_at < $4 AND $3 < end_at AND ($5 IS NULL OR id <> $5)),
               (SELECT COUNT(*) FROM appointments WHERE doctor_id = $2 AND status = 'confirmed'
                  AND (start_at < $4 AND $3 < end_at
                       OR change_by = 'doctor' AND change_start < $4 AND $3 < change_end)
                  AND ($5 IS NULL OR id <> $5))";
    let (patient, doctor): (i64, i64) = with_db!(db, p => sqlx::query_as(q)
        .bind(patient_id).bind(doctor_id).bind(start).bind(end).bind(except).fetch_one(p).await?);
    Ok(Holders {
        patient: patient > 0,
        doctor: doctor > 0,
    })
}

/// The answer of [`holders`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Holders {
    pub(crate) patient: bool,
    pub(crate) doctor: bool,
}
