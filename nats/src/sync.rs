//! Reconciliation of copies: the owner of versioned records lists its `(id, version)` pairs a
//! page at a time, ordered by id, and hands out the current records of up to a page of ids, so
//! a service that keeps a copy finds what it missed (an event lost with a stream's tail) and
//! repairs it from the owner's current state.
//!
//! The subjects are outside `carehub.api.`: they carry no caller identity, and NATS permissions
//! allow them only to the services that keep the copy (docs/OPERATIONS.md, "Replaying lost
//! events").

use crate::auth::User;
use crate::doctor::DoctorSnapshot;
use crate::rpc::Role;
use serde::{Deserialize, Serialize};

/// Pairs per page, and ids per batch get: the most an owner answers with at once.
pub const PAGE: u32 = 500;

/// Subjects of the version lists and batch gets.
pub mod subject {
    /// Account versions, answered by the auth service.
    pub const ACCOUNT_VERSIONS: &str = "carehub.auth.account_versions";
    /// Current accounts by id, answered by the auth service.
    pub const ACCOUNTS: &str = "carehub.auth.accounts";
    /// Doctor versions, answered by the doctor service.
    pub const DOCTOR_VERSIONS: &str = "carehub.doctor.versions";
    /// Current doctor snapshots by id, answered by the doctor service.
    pub const DOCTORS: &str = "carehub.doctor.snapshots";
}

/// One record's id and the version its owner holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdVersion {
    pub id: String,
    pub version: i64,
}

/// A page of versions, ordered by id. A page shorter than the limit asked for is the last one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Versions {
    pub items: Vec<IdVersion>,
}

/// The versions of the accounts whose id is after `after` (from the first one without it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AccountVersions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// 1..=[`PAGE`]; [`PAGE`] when absent or larger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Only accounts of this role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

/// The current state of the accounts `ids` (at most [`PAGE`]; unknown ids are left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct GetAccounts {
    pub ids: Vec<String>,
}

/// An account as it is now, with its version and the time of its last change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountState {
    pub user: User,
    pub version: i64,
    /// Unix milliseconds of the account's last change.
    pub at: i64,
}

impl AccountState {
    /// The state as the account event a copy applies, kind `updated`, under a new id
    /// (`reconcile:<account>:<version>:<uuid>`): a copy that records the event ids it applied
    /// must apply each repair, even of a state it once held and then lost; the version rule
    /// alone keeps it from going back.
    pub fn into_event(self) -> crate::auth::UserEvent {
        crate::auth::UserEvent {
            event_id: format!(
                "reconcile:{}:{}:{}",
                self.user.id,
                self.version,
                uuid::Uuid::now_v7().simple()
            ),
            kind: crate::auth::UserEventKind::Updated,
            at: self.at,
            user: self.user,
            version: self.version,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Accounts {
    pub accounts: Vec<AccountState>,
}

/// The versions of the doctors whose id is after `after`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DoctorVersions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// 1..=[`PAGE`]; [`PAGE`] when absent or larger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// The current snapshots of the doctors `ids` (at most [`PAGE`]; unknown ids are left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct GetDoctors {
    pub ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Doctors {
    pub doctors: Vec<DoctorSnapshot>,
}

impl From<Vec<(String, i64)>> for Versions {
    fn from(rows: Vec<(String, i64)>) -> Self {
        Self {
            items: rows
                .into_iter()
                .map(|(id, version)| IdVersion { id, version })
                .collect(),
        }
    }
}

/// Refuses a batch get of more than [`PAGE`] ids.
///
/// # Errors
/// `validation_failed` naming the limit.
pub fn check_batch(ids: &[String]) -> Result<(), crate::WireError> {
    if ids.len() > PAGE as usize {
        return Err(crate::WireError::validation(format!(
            "ids: at most {PAGE} at once"
        )));
    }
    Ok(())
}

/// The page size a request asks for, within 1..=[`PAGE`].
pub fn page_limit(limit: Option<u32>) -> u32 {
    limit.unwrap_or(PAGE).clamp(1, PAGE)
}

rpc!(AccountVersions => Versions, subject::ACCOUNT_VERSIONS, "account_versions");
rpc!(GetAccounts => Accounts, subject::ACCOUNTS, "accounts");
rpc!(DoctorVersions => Versions, subject::DOCTOR_VERSIONS, "versions");
rpc!(GetDoctors => Doctors, subject::DOCTORS, "snapshots");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::round_trip;
    use serde_json::json;

    #[test]
    fn wire_shapes() {
        round_trip(
            &AccountVersions {
                after: Some("u1".into()),
                limit: Some(500),
                role: Some(Role::Doctor),
            },
            json!({"after": "u1", "limit": 500, "role": "doctor"}),
        );
        round_trip(&AccountVersions::default(), json!({}));
        round_trip(
            &Versions {
                items: vec![IdVersion {
                    id: "u1".into(),
                    version: 3,
                }],
            },
            json!({"items": [{"id": "u1", "version": 3}]}),
        );
        round_trip(
            &GetDoctors {
                ids: vec!["d1".into()],
            },
            json!({"ids": ["d1"]}),
        );
    }

    #[test]
    fn a_page_is_never_empty_nor_above_the_maximum() {
        assert_eq!(page_limit(None), PAGE);
        assert_eq!(page_limit(Some(0)), 1);
        assert_eq!(page_limit(Some(7)), 7);
        assert_eq!(page_limit(Some(100_000)), PAGE);
    }
}
