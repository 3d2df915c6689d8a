//! Durable consumers: the audit trail of every service (`CAREHUB_AUDIT`) into `audit_log`,
//! the doctor copies (`CAREHUB_DOCTORS`) and the account names (`CAREHUB_USERS`). Each runs on
//! [`carehub_runtime::consumer`] (decoding, acknowledgement, retries).

use crate::routing::Core;
use crate::store::{self, AuditRow};
use async_nats::jetstream;
use carehub_nats::audit::AuditEntry;
use carehub_runtime::consumer::Durable;
use carehub_runtime::service::Running;

/// Starts the consumers as tasks of `running`.
pub fn spawn(running: &Running, js: &jetstream::Context, core: &Core) {
    let audit = durable(
        carehub_nats::streams::AUDIT.name,
        "admin-audit",
        carehub_nats::streams::AUDIT.subjects,
    );
    let db = core.db.clone();
    running.spawn(carehub_runtime::consumer::run(
        js.clone(),
        audit,
        running.stop_token(),
        move |e: AuditEntry| {
            let db = db.clone();
            async move {
                let row = AuditRow {
                    event_id: e.event_id,
                    at: e.at,
                    service: e.service,
                    actor_id: e.actor_id,
                    actor_role: e.actor_role,
                    subject_id: e.subject_id,
                    action: e.action,
                    reason: e.reason,
                };
                store::insert_audit(&db, &row).await
            }
        },
    ));
    crate::doctors::spawn(running, js, core);
    crate::people::spawn(running, js, core);
}

/// The admin service's durable consumer `name` of `filter` on `stream`.
pub fn durable(stream: &str, name: &str, filter: &str) -> Durable {
    Durable::new(crate::SPEC.name, stream, name).filter(filter)
}
