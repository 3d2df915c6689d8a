//! Doctor groups and their members.

use super::{GroupRow, sql};
use carehub_nats::appointment::Strategy;
use carehub_runtime::db::{Db, StoreError};
use carehub_runtime::{with_db, write_tx};

const GROUP_COLS: &str = "id, name, specialty, strategy, accept_deadline_secs, rr_cursor, version";

/// A group and its members in order.
///
/// # Errors
/// On storage failure.
pub(crate) async fn group(
    db: &Db,
    id: &str,
) -> Result<Option<(GroupRow, Vec<String>)>, StoreError> {
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
pub(crate) async fn group_of_specialty(
    db: &Db,
    specialty: &str,
) -> Result<Option<String>, StoreError> {
    let q = "SELECT id FROM doctor_groups WHERE specialty = $1";
    Ok(with_db!(db, p => sqlx::query_scalar(q).bind(specialty).fetch_optional(p).await?))
}

/// Every group with its members.
///
/// # Errors
/// On storage failure.
pub(crate) async fn groups(db: &Db) -> Result<Vec<(GroupRow, Vec<String>)>, StoreError> {
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
pub(crate) struct SaveGroupRow<'a> {
    pub(crate) id: &'a str,
    pub(crate) name: &'a str,
    pub(crate) specialty: Option<&'a str>,
    pub(crate) strategy: Strategy,
    pub(crate) accept_deadline_secs: i64,
    pub(crate) members: &'a [String],
    /// `None` inserts; `Some(v)` replaces only if the stored version is `v`.
    pub(crate) expected_version: Option<i64>,
}

/// Creates or replaces a group and its members. `false` when the expected version was stale.
///
/// # Errors
/// [`StoreError::Conflict`] when another group already routes the specialty.
pub(crate) async fn save_group(
    db: &Db,
    g: &SaveGroupRow<'_>,
    now: i64,
) -> Result<bool, StoreError> {
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
