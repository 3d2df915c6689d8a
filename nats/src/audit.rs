//! The audit trail: who read or changed whose data, and every admin action. Services publish
//! entries through their outbox to `carehub.events.audit.<service>` (stream `CAREHUB_AUDIT`);
//! the admin service stores them for admins to list.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `carehub.events.audit.<service>`.
pub fn subject(service: &str) -> String {
    format!("carehub.events.audit.{service}")
}

/// One audit entry. Append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// Unique; the `Nats-Msg-Id`.
    pub event_id: String,
    /// Unix milliseconds.
    pub at: i64,
    /// The service that recorded it.
    pub service: String,
    pub actor_id: String,
    pub actor_role: String,
    /// Whose data (a user id), if any.
    pub subject_id: Option<String>,
    /// What was done, e.g. `medical_record.read`, `user.disable`.
    pub action: String,
    /// Why, when the actor gave a reason or the rule that allowed it.
    pub reason: Option<String>,
    /// The actor's and the subject's account names, in the audit-log API (events leave them
    /// out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_name: Option<String>,
}
