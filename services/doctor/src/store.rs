//! Every SQL statement of the doctor service. The same text runs on SQLite and PostgreSQL.
//!
//! Every change runs in one transaction that bumps the doctor's `version` (compare-and-set
//! against the caller's expected version when given), applies the change, and writes the
//! event describing the doctor after it to the outbox.

use carehub_nats::auth::UserEvent;
use carehub_runtime::db::{Db, StoreError};
use carehub_runtime::outbox::Pending;
use carehub_runtime::{account_copy, enqueue, with_db, write_tx};

/// A row of `doctors`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct DoctorRow {
    pub(crate) id: String,
    pub(crate) display_name: String,
    pub(crate) account_status: String,
    /// JSON array of slugs.
    pub(crate) specialties: String,
    /// JSON array of ISO 639-1 codes.
    pub(crate) languages: String,
    pub(crate) bio: String,
    pub(crate) time_zone: String,
    /// JSON array of wire `WeeklyHours`.
    pub(crate) weekly: String,
    pub(crate) slot_minutes: i64,
    pub(crate) auto_accept: bool,
    pub(crate) version: i64,
}

const DOCTOR_COLS: &str = "id, display_name, account_status, specialties, languages, bio, time_zone, weekly, slot_minutes, auto_accept, version";

/// A row of `time_off`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct TimeOffRow {
    pub(crate) id: String,
    pub(crate) start_at: i64,
    pub(crate) end_at: i64,
    pub(crate) reason: String,
}

/// A doctor and the time off that has not ended yet.
#[derive(Debug, Clone)]
pub(crate) struct Doctor {
    pub(crate) row: DoctorRow,
    pub(crate) time_off: Vec<TimeOffRow>,
}

const UPCOMING_TIME_OFF: &str = "SELECT id, start_at, end_at, reason FROM time_off
     WHERE doctor_id = $1 AND end_at > $2 ORDER BY start_at, id";

/// One doctor.
///
/// # Errors
/// On storage failure.
pub(crate) async fn doctor(db: &Db, id: &str) -> Result<Option<DoctorRow>, StoreError> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {DOCTOR_COLS} FROM doctors WHERE id = $1"));
    Ok(with_db!(db, p => sqlx::query_as::<_, DoctorRow>(sql).bind(id).fetch_optional(p).await?))
}

/// One doctor with the time off that ends after `now`.
///
/// # Errors
/// On storage failure.
pub(crate) async fn doctor_with_time_off(
    db: &Db,
    id: &str,
    now: i64,
) -> Result<Option<Doctor>, StoreError> {
    // Both reads at once: a free-slot query waits for the slower one, not for their sum.
    let time_off = async {
        Ok::<_, StoreError>(
            with_db!(db, p => sqlx::query_as::<_, TimeOffRow>(UPCOMING_TIME_OFF)
            .bind(id).bind(now).fetch_all(p).await?),
        )
    };
    let (row, time_off) = tokio::try_join!(doctor(db, id), time_off)?;
    Ok(row.map(|row| Doctor { row, time_off }))
}

/// The `(id, version)` of up to `limit` doctors after `after` (all of them for `""`), ordered
/// by id (the version list the admin service's copy is reconciled with).
///
/// # Errors
/// On storage failure.
pub(crate) async fn doctor_versions(
    db: &Db,
    after: &str,
    limit: i64,
) -> Result<Vec<(String, i64)>, StoreError> {
    let sql = "SELECT id, version FROM doctors WHERE id > $1 ORDER BY id LIMIT $2";
    Ok(with_db!(db, p => sqlx::query_as::<_, (String, i64)>(sql)
        .bind(after).bind(limit).fetch_all(p).await?))
}

/// The doctors among `ids` (unknown ids are left out), each with the time off that ends after
/// `now`, ordered by id.
///
/// # Errors
/// On storage failure.
pub(crate) async fn doctors_with_time_off(
    db: &Db,
    ids: &[String],
    now: i64,
) -> Result<Vec<Doctor>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let (rows, time_off): (Vec<DoctorRow>, Vec<(String, TimeOffRow)>) = with_db!(db, p => {
        let mut qb = sqlx::QueryBuilder::new(format!("SELECT {DOCTOR_COLS} FROM doctors WHERE id IN ("));
        let mut list = qb.separated(", ");
        for id in ids {
            list.push_bind(id);
        }
        qb.push(") ORDER BY id");
        let rows = qb.build_query_as::<DoctorRow>().fetch_all(p).await?;
        let mut qb = sqlx::QueryBuilder::new("SELECT doctor_id, id, start_at, end_at, reason FROM time_off WHERE end_at > ");
        qb.push_bind(now);
        qb.push(" AND doctor_id IN (");
        let mut list = qb.separated(", ");
        for id in ids {
            list.push_bind(id);
        }
        qb.push(") ORDER BY doctor_id, start_at, id");
        let time_off = qb.build_query_as::<(String, String, i64, i64, String)>().fetch_all(p).await?
            .into_iter()
            .map(|(doctor, id, start_at, end_at, reason)| (doctor, TimeOffRow { id, start_at, end_at, reason }))
            .collect();
        (rows, time_off)
    });
    let mut by_doctor: std::collections::HashMap<String, Vec<TimeOffRow>> =
        std::collections::HashMap::new();
    for (doctor, t) in time_off {
        by_doctor.entry(doctor).or_default().push(t);
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let time_off = by_doctor.remove(&row.id).unwrap_or_default();
            Doctor { row, time_off }
        })
        .collect())
}

/// Directory filters.
#[derive(Debug, Default)]
pub(crate) struct DirectoryFilter<'a> {
    /// `%"slug"%`, matched against the JSON array.
    pub(crate) specialty_pattern: Option<String>,
    /// `%"code"%`, matched against the JSON array of languages.
    pub(crate) language_pattern: Option<String>,
    /// Lowercased, LIKE-escaped, wrapped in `%`.
    pub(crate) name_pattern: Option<String>,
    pub(crate) after_id: Option<&'a str>,
    pub(crate) limit: i64,
}

/// Approved doctors ordered by id, keyset-paginated.
///
/// # Errors
/// On storage failure.
pub(crate) async fn directory(
    db: &Db,
    f: &DirectoryFilter<'_>,
) -> Result<Vec<DoctorRow>, StoreError> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {DOCTOR_COLS} FROM doctors
         WHERE account_status = 'active'
           AND ($1 IS NULL OR specialties LIKE $1)
           AND ($2 IS NULL OR display_name_lower LIKE $2 ESCAPE '\\')
           AND ($3 IS NULL OR id > $3)
           AND ($5 IS NULL OR languages LIKE $5)
         ORDER BY id LIMIT $4"
    ));
    Ok(with_db!(db, p => sqlx::query_as::<_, DoctorRow>(sql)
        .bind(f.specialty_pattern.as_deref()).bind(f.name_pattern.as_deref())
        .bind(f.after_id).bind(f.limit).bind(f.language_pattern.as_deref())
        .fetch_all(p).await?))
}

/// What a doctor changes about themself.
#[derive(Debug)]
pub(crate) enum Change<'a> {
    Profile {
        specialties: &'a str,
        /// `None` keeps the stored languages.
        languages: Option<&'a str>,
        bio: &'a str,
    },
    Availability {
        time_zone: &'a str,
        weekly: &'a str,
        slot_minutes: i64,
        auto_accept: bool,
    },
    AddTimeOff {
        id: &'a str,
        start_at: i64,
        end_at: i64,
        reason: &'a str,
        /// Refused (conflict) when the doctor already has this many upcoming periods.
        max_upcoming: i64,
    },
    RemoveTimeOff {
        id: &'a str,
    },
}

/// Why a change was not applied.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChangeError {
    #[error("no such doctor")]
    NoDoctor,
    #[error("version is {current}")]
    VersionMismatch { current: i64 },
    #[error("no such time off")]
    NoTimeOff,
    #[error("too many upcoming time off periods")]
    TooManyTimeOff,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ChangeError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

/// Applies `change` to doctor `id` if its version is `expected` (or always, for `None`), bumps
/// the version and writes the event `event` makes from the doctor after the change, in one
/// transaction. Returns the doctor after the change.
///
/// # Errors
/// [`ChangeError`] says why nothing was changed.
pub(crate) async fn change(
    db: &Db,
    id: &str,
    expected: Option<i64>,
    change: &Change<'_>,
    now: i64,
    event: impl FnOnce(&Doctor) -> Result<Pending, StoreError>,
) -> Result<Doctor, ChangeError> {
    let bump = "UPDATE doctors SET version = version + 1, updated_at = $1
                WHERE id = $2 AND ($3 IS NULL OR version = $3)";
    let current = "SELECT version FROM doctors WHERE id = $1";
    let row_sql = sqlx::AssertSqlSafe(format!("SELECT {DOCTOR_COLS} FROM doctors WHERE id = $1"));
    write_tx!(db, tx => {
        let n = sqlx::query(bump).bind(now).bind(id).bind(expected)
            .execute(&mut *tx).await?.rows_affected();
        if n != 1 {
            let v: Option<i64> = sqlx::query_scalar(current).bind(id).fetch_optional(&mut *tx).await?;
            return Err(v.map_or(ChangeError::NoDoctor, |current| ChangeError::VersionMismatch { current }));
        }
        match change {
            Change::Profile { specialties, languages, bio } => {
                sqlx::query("UPDATE doctors SET specialties = $1, bio = $2, languages = COALESCE($3, languages) WHERE id = $4")
                    .bind(*specialties).bind(*bio).bind(*languages).bind(id).execute(&mut *tx).await?;
            }
            Change::Availability { time_zone, weekly, slot_minutes, auto_accept } => {
                sqlx::query("UPDATE doctors SET time_zone = $1, weekly = $2, slot_minutes = $3, auto_accept = $4 WHERE id = $5")
                    .bind(*time_zone).bind(*weekly).bind(*slot_minutes).bind(*auto_accept).bind(id)
                    .execute(&mut *tx).await?;
            }
            Change::AddTimeOff { id: off_id, start_at, end_at, reason, max_upcoming } => {
                let upcoming: i64 = sqlx::query_scalar(
                    "SELECT CAST(COUNT(*) AS BIGINT) FROM time_off WHERE doctor_id = $1 AND end_at > $2")
                    .bind(id).bind(now).fetch_one(&mut *tx).await?;
                if upcoming >= *max_upcoming {
                    return Err(ChangeError::TooManyTimeOff);
                }
                sqlx::query("INSERT INTO time_off (id, doctor_id, start_at, end_at, reason, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(*off_id).bind(id).bind(*start_at).bind(*end_at).bind(*reason).bind(now)
                    .execute(&mut *tx).await?;
            }
            Change::RemoveTimeOff { id: off_id } => {
                let n = sqlx::query("DELETE FROM time_off WHERE id = $1 AND doctor_id = $2")
                    .bind(*off_id).bind(id).execute(&mut *tx).await?.rows_affected();
                if n != 1 {
                    return Err(ChangeError::NoTimeOff);
                }
            }
        }
        let row = sqlx::query_as::<_, DoctorRow>(row_sql).bind(id).fetch_one(&mut *tx).await?;
        let time_off = sqlx::query_as::<_, TimeOffRow>(UPCOMING_TIME_OFF).bind(id).bind(now)
            .fetch_all(&mut *tx).await?;
        let doctor = Doctor { row, time_off };
        enqueue!(&mut *tx, event(&doctor)?)?;
        Ok::<Doctor, ChangeError>(doctor)
    })
}

/// Applies an account event once: creates the doctor on first sight, or updates the display
/// name and status when they differ, bumping the version and writing the event `event` makes.
/// A repeated `event_id`, an event older than the copy ([`account_copy`]: a late or replayed
/// one), or facts that change nothing write nothing else. Returns whether the doctor changed.
///
/// # Errors
/// On storage failure.
pub(crate) async fn apply_account(
    db: &Db,
    e: &UserEvent,
    now: i64,
    event: impl FnOnce(&Doctor) -> Result<Pending, StoreError>,
) -> Result<bool, StoreError> {
    let seen = "INSERT INTO applied_events (event_id, applied_at) VALUES ($1, $2) ON CONFLICT (event_id) DO NOTHING";
    let row_text = format!("SELECT {DOCTOR_COLS} FROM doctors WHERE id = $1");
    let held = "SELECT account_version, account_event_at FROM doctors WHERE id = $1";
    let keep = "UPDATE doctors SET account_version = CASE WHEN $1 = 0 THEN account_version ELSE $1 END, account_event_at = $2 WHERE id = $3";
    let a = &e.user;
    let display_name_lower = a.display_name.to_lowercase();
    // Every outcome leaves the block by value: `write_tx!` commits only what its body evaluates
    // to, and the event id and the version seen must stay even when nothing else changes.
    write_tx!(db, tx => {
        let changed = 'apply: {
            let fresh = sqlx::query(seen).bind(&e.event_id).bind(now).execute(&mut *tx).await?.rows_affected();
            if fresh != 1 {
                break 'apply false;
            }
            let existing = sqlx::query_as::<_, DoctorRow>(sqlx::AssertSqlSafe(row_text.clone())).bind(&a.id).fetch_optional(&mut *tx).await?;
            match existing {
                None => {
                    sqlx::query("INSERT INTO doctors (id, display_name, display_name_lower, account_status, version, created_at, updated_at, account_version, account_event_at)
                                 VALUES ($1, $2, $3, $4, 1, $5, $5, $6, $7)")
                        .bind(&a.id).bind(&a.display_name).bind(&display_name_lower).bind(a.status.as_str()).bind(now)
                        .bind(e.version).bind(e.at)
                        .execute(&mut *tx).await?;
                }
                Some(r) => {
                    let (held_version, held_at): (i64, i64) = sqlx::query_as(held).bind(&a.id).fetch_one(&mut *tx).await?;
                    if !account_copy::is_newer(held_version, held_at, e.version, e.at) {
                        // Older than what the copy holds (late, or replayed): it changes nothing.
                        break 'apply false;
                    }
                    sqlx::query(keep).bind(e.version).bind(e.at).bind(&a.id).execute(&mut *tx).await?;
                    if r.display_name == a.display_name && r.account_status == a.status.as_str() {
                        break 'apply false;
                    }
                    sqlx::query("UPDATE doctors SET display_name = $1, display_name_lower = $2, account_status = $3,
                                 version = version + 1, updated_at = $4 WHERE id = $5")
                        .bind(&a.display_name).bind(&display_name_lower).bind(a.status.as_str()).bind(now).bind(&a.id)
                        .execute(&mut *tx).await?;
                }
            }
            true
        };
        if changed {
            let row = sqlx::query_as::<_, DoctorRow>(sqlx::AssertSqlSafe(row_text.clone())).bind(&a.id).fetch_one(&mut *tx).await?;
            let time_off = sqlx::query_as::<_, TimeOffRow>(UPCOMING_TIME_OFF).bind(&a.id).bind(now)
                .fetch_all(&mut *tx).await?;
            enqueue!(&mut *tx, event(&Doctor { row, time_off })?)?;
        }
        Ok::<bool, StoreError>(changed)
    })
}
