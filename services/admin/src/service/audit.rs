//! The audit trail: entries written with a change, entries recorded directly, and the listing.

use super::{AdminService, active, limit};
use crate::SPEC;
use crate::store;
use carehub_nats::appointment::*;
use carehub_nats::audit::AuditEntry;
use carehub_nats::{CallContext, Principal, Role, WireError};
use carehub_runtime::db::{Db, StoreError, next_page, now_ms};
use carehub_runtime::outbox::Pending;

/// An admin's action as an audit entry of this service.
fn entry(p: &Principal, subject: Option<&str>, action: &str, reason: Option<&str>) -> AuditEntry {
    AuditEntry {
        event_id: uuid::Uuid::now_v7().to_string(),
        at: now_ms(),
        service: SPEC.name.into(),
        actor_id: p.user_id.clone(),
        actor_role: p.role.as_str().into(),
        subject_id: subject.map(str::to_owned),
        action: action.into(),
        reason: reason.map(str::to_owned),
        actor_name: None,
        subject_name: None,
    }
}

/// The audit entry of an admin's change, written to the outbox together with it.
pub(super) fn audit(
    p: &Principal,
    subject: Option<&str>,
    action: &str,
    reason: Option<&str>,
) -> Result<Pending, StoreError> {
    let entry = entry(p, subject, action, reason);
    Pending::new(
        &carehub_nats::audit::subject(SPEC.name),
        &entry.event_id,
        &entry,
    )
}

/// Records an admin action in the audit log kept by this service.
pub(super) async fn record(
    db: &Db,
    p: &Principal,
    subject: Option<&str>,
    action: &str,
    reason: Option<&str>,
) -> Result<(), WireError> {
    Ok(store::insert_audit(db, &entry(p, subject, action, reason)).await?)
}

impl AdminService {
    /// The audit trail, newest first (admin).
    ///
    /// # Errors
    /// `forbidden`, `validation_failed` for a bad limit.
    pub(crate) async fn list_audit(
        &self,
        ctx: &CallContext,
        r: ListAudit,
    ) -> Result<AuditPage, WireError> {
        active(ctx, Role::Admin)?;
        let limit = limit(r.limit)?;
        let mut rows = store::list_audit(
            self.db(),
            r.subject_id.as_deref(),
            r.actor_id.as_deref(),
            r.cursor.as_deref(),
            limit + 1,
        )
        .await?;
        let next_cursor = next_page(&mut rows, limit, |a| a.event_id.clone());
        let ids: Vec<&str> = rows
            .iter()
            .flat_map(|a| [Some(a.actor_id.as_str()), a.subject_id.as_deref()])
            .flatten()
            .collect();
        let names = self.names(&ids).await;
        let name = |id: &str| names.get(id).cloned();
        let entries = rows
            .into_iter()
            .map(|a| AuditEntry {
                actor_name: name(&a.actor_id),
                subject_name: a.subject_id.as_deref().and_then(name),
                ..a
            })
            .collect();
        Ok(AuditPage {
            entries,
            next_cursor,
        })
    }
}
