//! Account names, from the account events (see `crate::people`).

use carehub_runtime::db::{Db, StoreError};
use carehub_runtime::with_db;
use std::collections::HashMap;

/// Stores an account's name unless a newer event already did.
///
/// # Errors
/// On storage failure.
pub(crate) async fn upsert_person(
    db: &Db,
    id: &str,
    display_name: &str,
    role: &str,
    at: i64,
    version: i64,
) -> Result<(), StoreError> {
    static UPSERT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "INSERT INTO people (id, display_name, role, updated_at, account_version) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name,
                 role = excluded.role, updated_at = excluded.updated_at, account_version = {}
             WHERE {}",
            carehub_runtime::account_copy::version_sql("people"),
            carehub_runtime::account_copy::newer_sql("people", "updated_at")
        )
    });
    with_db!(db, p => sqlx::query(sqlx::AssertSqlSafe(UPSERT.as_str())).bind(id).bind(display_name).bind(role).bind(at)
        .bind(version)
        .execute(p).await?.rows_affected());
    Ok(())
}

/// The names of the accounts among `ids` (at most a few hundred; unknown ids are left out).
/// An account not yet known from its events falls back to the doctor copy's name.
///
/// # Errors
/// On storage failure.
pub(crate) async fn names(db: &Db, ids: &[&str]) -> Result<HashMap<String, String>, StoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, String, i32)> = with_db!(db, p => {
        let mut qb = sqlx::QueryBuilder::new(
            "SELECT doctor_id, display_name, 0 AS source FROM doctors WHERE doctor_id IN (",
        );
        let mut list = qb.separated(", ");
        for id in ids {
            list.push_bind(*id);
        }
        qb.push(") UNION ALL SELECT id, display_name, 1 AS source FROM people WHERE id IN (");
        let mut list = qb.separated(", ");
        for id in ids {
            list.push_bind(*id);
        }
        qb.push(") ORDER BY 3");
        qb.build_query_as().fetch_all(p).await?
    });
    // People rows come last, so an account's own name wins over the doctor copy's.
    Ok(rows.into_iter().map(|(id, name, _)| (id, name)).collect())
}
