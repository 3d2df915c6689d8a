//! The audit log.

use carehub_nats::audit::AuditEntry;
use carehub_runtime::db::{Db, StoreError};
use carehub_runtime::with_db;

/// The columns of `audit_log`, in the order the statements below name them.
type AuditCols = (
    String,
    i64,
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
);

/// Appends an audit entry (from any service; the names are not stored); the same entry twice
/// is stored once.
///
/// # Errors
/// On storage failure.
pub(crate) async fn insert_audit(db: &Db, a: &AuditEntry) -> Result<(), StoreError> {
    let q = "INSERT INTO audit_log (event_id, at, service, actor_id, actor_role, subject_id, action, reason)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id) DO NOTHING";
    with_db!(db, p => sqlx::query(q).bind(&a.event_id).bind(a.at).bind(&a.service).bind(&a.actor_id).bind(&a.actor_role)
        .bind(&a.subject_id).bind(&a.action).bind(&a.reason).execute(p).await?.rows_affected());
    Ok(())
}

/// Audit entries newest first, without names.
///
/// # Errors
/// On storage failure.
pub(crate) async fn list_audit(
    db: &Db,
    subject_id: Option<&str>,
    actor_id: Option<&str>,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<AuditEntry>, StoreError> {
    let q = "SELECT event_id, at, service, actor_id, actor_role, subject_id, action, reason FROM audit_log
             WHERE ($1 IS NULL OR subject_id = $1) AND ($2 IS NULL OR actor_id = $2) AND ($3 IS NULL OR event_id < $3)
             ORDER BY event_id DESC LIMIT $4";
    let rows: Vec<AuditCols> = with_db!(db, p => sqlx::query_as(q).bind(subject_id).bind(actor_id).bind(before).bind(limit).fetch_all(p).await?);
    Ok(rows
        .into_iter()
        .map(
            |(event_id, at, service, actor_id, actor_role, subject_id, action, reason)| {
                AuditEntry {
                    event_id,
                    at,
                    service,
                    actor_id,
                    actor_role,
                    subject_id,
                    action,
                    reason,
                    actor_name: None,
                    subject_name: None,
                }
            },
        )
        .collect())
}
