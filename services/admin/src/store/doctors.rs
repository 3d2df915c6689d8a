//! The local copy of doctors (fed by the doctor service's events).

use super::DoctorRow;
use carehub_runtime::db::{Db, StoreError};
use carehub_runtime::{with_db, write_tx};

/// Stores a newer copy of a doctor; older or equal versions change nothing. Returns the version
/// stored afterwards.
///
/// # Errors
/// On storage failure.
pub(crate) async fn upsert_doctor(db: &Db, d: &DoctorRow) -> Result<i64, StoreError> {
    let q = "INSERT INTO doctors (doctor_id, display_name, specialties, approved, auto_accept, availability, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (doctor_id) DO UPDATE SET display_name = excluded.display_name, specialties = excluded.specialties,
                 approved = excluded.approved, auto_accept = excluded.auto_accept, availability = excluded.availability,
                 version = excluded.version
             WHERE doctors.version < excluded.version";
    let stored = "SELECT version FROM doctors WHERE doctor_id = $1";
    write_tx!(db, tx => {
        sqlx::query(q).bind(&d.doctor_id).bind(&d.display_name).bind(&d.specialties).bind(d.approved)
            .bind(d.auto_accept).bind(&d.availability).bind(d.version).execute(&mut *tx).await?;
        let v: i64 = sqlx::query_scalar(stored).bind(&d.doctor_id).fetch_one(&mut *tx).await?;
        Ok::<_, StoreError>(v)
    })
}

/// # Errors
/// On storage failure.
pub(crate) async fn doctor(db: &Db, id: &str) -> Result<Option<DoctorRow>, StoreError> {
    let q = "SELECT doctor_id, display_name, specialties, approved, auto_accept, availability, version FROM doctors WHERE doctor_id = $1";
    Ok(with_db!(db, p => sqlx::query_as(q).bind(id).fetch_optional(p).await?))
}

/// Approved doctors of a specialty, in id order.
///
/// # Errors
/// On storage failure.
pub(crate) async fn doctors_of_specialty(
    db: &Db,
    specialty: &str,
) -> Result<Vec<DoctorRow>, StoreError> {
    let q = "SELECT doctor_id, display_name, specialties, approved, auto_accept, availability, version FROM doctors
             WHERE approved = TRUE AND specialties LIKE $1 ORDER BY doctor_id";
    let pattern = format!("%,{specialty},%");
    Ok(with_db!(db, p => sqlx::query_as(q).bind(pattern).fetch_all(p).await?))
}
