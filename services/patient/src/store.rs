//! Every SQL statement of the patient service. The same text runs on SQLite and PostgreSQL.
//!
//! Lists and nested objects of a profile or record are stored as JSON text: they are only ever
//! read and replaced whole, together with their row's version.

use carehub_nats::Role;
use carehub_nats::audit::AuditEntry;
use carehub_nats::auth::UserEvent;
use carehub_runtime::db::{Db, StoreError};
use carehub_runtime::outbox::Pending;
use carehub_runtime::{account_copy, enqueue, with_db, write_tx};

/// A row of `patients`, with the account's display name when known.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct PatientRow {
    pub(crate) id: String,
    pub(crate) display_name: Option<String>,
    pub(crate) profile_version: i64,
    pub(crate) profile_updated_at: i64,
    pub(crate) date_of_birth: Option<String>,
    pub(crate) phone: Option<String>,
    pub(crate) address: Option<String>,
    pub(crate) emergency_contact: Option<String>,
    /// JSON array of policies, or NULL for none.
    pub(crate) insurance: Option<String>,
    pub(crate) record_version: i64,
    pub(crate) record_updated_at: i64,
    pub(crate) allergies: String,
    pub(crate) conditions: String,
    pub(crate) medications: String,
    pub(crate) blood_type: String,
    pub(crate) notes: String,
}

const SELECT_PATIENT: &str = "SELECT p.id, a.display_name, p.profile_version, p.profile_updated_at,
        p.date_of_birth, p.phone, p.address, p.emergency_contact, p.insurance, p.record_version,
        p.record_updated_at, p.allergies, p.conditions, p.medications, p.blood_type, p.notes
    FROM patients p LEFT JOIN accounts a ON a.id = p.id WHERE p.id = $1";

const INSERT_PATIENT: &str =
    "INSERT INTO patients (id, created_at, profile_version, profile_updated_at,
        record_version, record_updated_at, allergies, conditions, medications, blood_type, notes)
    VALUES ($1, $2, 1, $2, 1, $2, '[]', '[]', '[]', 'unknown', '') ON CONFLICT (id) DO NOTHING";

/// Creates the empty profile and record of a patient unless they exist.
///
/// # Errors
/// On storage failure.
pub(crate) async fn ensure_patient(db: &Db, id: &str, now: i64) -> Result<(), StoreError> {
    with_db!(db, p => sqlx::query(INSERT_PATIENT).bind(id).bind(now).execute(p).await?.rows_affected());
    Ok(())
}

/// # Errors
/// On storage failure.
pub(crate) async fn patient(db: &Db, id: &str) -> Result<Option<PatientRow>, StoreError> {
    Ok(
        with_db!(db, p => sqlx::query_as::<_, PatientRow>(SELECT_PATIENT).bind(id).fetch_optional(p).await?),
    )
}

/// Profile columns as stored (JSON text for the nested objects).
#[derive(Debug)]
pub(crate) struct ProfileCols {
    pub(crate) date_of_birth: Option<String>,
    pub(crate) phone: Option<String>,
    pub(crate) address: Option<String>,
    pub(crate) emergency_contact: Option<String>,
    pub(crate) insurance: Option<String>,
}

/// Record columns as stored (JSON text for the lists).
#[derive(Debug)]
pub(crate) struct RecordCols {
    pub(crate) allergies: String,
    pub(crate) conditions: String,
    pub(crate) medications: String,
    pub(crate) blood_type: &'static str,
    pub(crate) notes: String,
}

/// What a versioned update came to.
#[derive(Debug)]
pub(crate) enum Update {
    /// Applied; the row after the change.
    Done(PatientRow),
    /// The stored version differs from the expected one; nothing changed. The current row.
    Stale(PatientRow),
}

/// The part of a patient's row an update replaces, each with its own version.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Part<'a> {
    Profile(&'a ProfileCols),
    Record(&'a RecordCols),
}

/// Replaces one part of a patient's row if that part's version is still `expected` (any
/// version when `None`), bumping it.
///
/// # Errors
/// `NotFound` when the patient has no row; otherwise on storage failure.
pub(crate) async fn update(
    db: &Db,
    id: &str,
    expected: Option<i64>,
    part: Part<'_>,
    now: i64,
) -> Result<Update, StoreError> {
    let profile =
        "UPDATE patients SET date_of_birth = $1, phone = $2, address = $3, emergency_contact = $4,
                   insurance = $5, profile_version = profile_version + 1, profile_updated_at = $6
               WHERE id = $7 AND ($8 IS NULL OR profile_version = $8)";
    let record =
        "UPDATE patients SET allergies = $1, conditions = $2, medications = $3, blood_type = $4,
                   notes = $5, record_version = record_version + 1, record_updated_at = $6
               WHERE id = $7 AND ($8 IS NULL OR record_version = $8)";
    write_tx!(db, tx => {
        let replace = match part {
            Part::Profile(c) => sqlx::query(profile)
                .bind(&c.date_of_birth).bind(&c.phone).bind(&c.address).bind(&c.emergency_contact)
                .bind(&c.insurance),
            Part::Record(c) => sqlx::query(record)
                .bind(&c.allergies).bind(&c.conditions).bind(&c.medications).bind(c.blood_type)
                .bind(&c.notes),
        };
        let n = replace.bind(now).bind(id).bind(expected)
            .execute(&mut *tx).await?.rows_affected();
        let row = sqlx::query_as::<_, PatientRow>(SELECT_PATIENT).bind(id).fetch_one(&mut *tx).await?;
        Ok::<Update, StoreError>(if n == 1 { Update::Done(row) } else { Update::Stale(row) })
    })
}

/// Reads the row of the patient `audit` is about (its subject) for someone else and, when it
/// exists, records the read in `audit_log` and the outbox in the same transaction. `None` (and
/// no audit) when the patient is unknown.
///
/// # Errors
/// On storage failure.
pub(crate) async fn read_audited(
    db: &Db,
    audit: &AuditEntry,
    event: &Pending,
) -> Result<Option<PatientRow>, StoreError> {
    let insert = "INSERT INTO audit_log (id, at, actor_id, actor_role, subject_id, action, reason)
                  VALUES ($1, $2, $3, $4, $5, $6, $7)";
    write_tx!(db, tx => {
        let row = sqlx::query_as::<_, PatientRow>(SELECT_PATIENT)
            .bind(&audit.subject_id).fetch_optional(&mut *tx).await?;
        if row.is_some() {
            sqlx::query(insert)
                .bind(&audit.event_id).bind(audit.at).bind(&audit.actor_id).bind(&audit.actor_role)
                .bind(&audit.subject_id).bind(&audit.action).bind(&audit.reason)
                .execute(&mut *tx).await?;
            enqueue!(&mut *tx, event)?;
        }
        Ok::<Option<PatientRow>, StoreError>(row)
    })
}

/// Whether a patient row exists.
///
/// # Errors
/// On storage failure.
pub(crate) async fn patient_exists(db: &Db, id: &str) -> Result<bool, StoreError> {
    let sql = "SELECT CAST(COUNT(*) AS BIGINT) FROM patients WHERE id = $1";
    let n = with_db!(db, p => sqlx::query_scalar::<_, i64>(sql).bind(id).fetch_one(p).await?);
    Ok(n > 0)
}

/// Applies an account event: keeps the newest facts (an older event, late or replayed, changes
/// nothing: [`account_copy`]) and gives a patient account its empty profile and record. Idempotent.
///
/// # Errors
/// On storage failure.
pub(crate) async fn apply_account(db: &Db, event: &UserEvent) -> Result<(), StoreError> {
    static UPSERT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "INSERT INTO accounts (id, role, status, display_name, event_at, account_version) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (id) DO UPDATE SET role = excluded.role, status = excluded.status,
                 display_name = excluded.display_name, event_at = excluded.event_at, account_version = {}
             WHERE {}",
            account_copy::version_sql("accounts"),
            account_copy::newer_sql("accounts", "event_at")
        )
    });
    let a = &event.user;
    write_tx!(db, tx => {
        sqlx::query(sqlx::AssertSqlSafe(UPSERT.as_str()))
            .bind(&a.id).bind(a.role.as_str()).bind(a.status.as_str()).bind(&a.display_name).bind(event.at)
            .bind(event.version)
            .execute(&mut *tx).await?;
        if a.role == Role::Patient {
            sqlx::query(INSERT_PATIENT).bind(&a.id).bind(event.at).execute(&mut *tx).await?;
        }
        Ok::<(), StoreError>(())
    })
}
