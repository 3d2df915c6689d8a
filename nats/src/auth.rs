//! Wire types of the auth service: requests, replies and events.
//!
//! Every type ignores unknown fields, so a newer peer may add fields during a rolling upgrade.

use crate::rpc::{Principal, Role, UserStatus};
use serde::{Deserialize, Serialize};
use subject as s;
use utoipa::ToSchema;

/// Subjects of the auth service and of account events.
pub mod subject {
    /// Micro service name of the auth service.
    pub const SERVICE: &str = "auth";
    pub(crate) const REGISTER: &str = "carehub.api.auth.register";
    pub const LOGIN: &str = "carehub.api.auth.login";
    pub(crate) const REFRESH: &str = "carehub.api.auth.refresh";
    pub(crate) const LOGOUT: &str = "carehub.api.auth.logout";
    pub const ME: &str = "carehub.api.auth.me";
    pub(crate) const UPDATE_ME: &str = "carehub.api.auth.me.update";
    pub(crate) const CHANGE_PASSWORD: &str = "carehub.api.auth.password.change";
    pub(crate) const RESET_REQUEST: &str = "carehub.api.auth.password.reset_request";
    pub(crate) const RESET_CONFIRM: &str = "carehub.api.auth.password.reset_confirm";
    pub const ADMIN_LIST_USERS: &str = "carehub.api.auth.admin.users.list";
    pub(crate) const ADMIN_GET_USER: &str = "carehub.api.auth.admin.users.get";
    pub(crate) const ADMIN_SET_STATUS: &str = "carehub.api.auth.admin.users.set_status";
    /// Token verification: any trusted component may ask (gateway, hub).
    pub const VERIFY: &str = "carehub.auth.verify";
    /// Every revocation: logout, family revoke, user disabled, password change.
    /// Core NATS on purpose: a missed event is covered by clearing caches on reconnect.
    pub const REVOKED: &str = "carehub.events.auth.revoked";
    /// Password reset tokens for the notification side. Readable by the notify service alone;
    /// never stored in a stream, so the token does not outlive its delivery.
    pub const PASSWORD_RESET: &str = "carehub.notify.password_reset";
    /// Account events (durable, stream `CAREHUB_USERS`): `carehub.events.user.<kind>`.
    pub const USER_EVENT_PREFIX: &str = "carehub.events.user";
    /// The queue group the notify service's instances share for [`PASSWORD_RESET`].
    pub const PASSWORD_RESET_QUEUE: &str = "notify";
}

/// Roles a person may sign up for themselves; admins are made with `carehub admin create-user`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignupRole {
    Patient,
    Doctor,
}

impl From<SignupRole> for Role {
    fn from(r: SignupRole) -> Self {
        match r {
            SignupRole::Patient => Role::Patient,
            SignupRole::Doctor => Role::Doctor,
        }
    }
}

/// Sign up. The answer is the same whether or not the email is already registered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Register {
    pub email: String,
    pub password: String,
    pub display_name: String,
    #[serde(default = "default_signup_role")]
    pub role: SignupRole,
    /// The IANA time zone mails and reminders use (the browser's); UTC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

fn default_signup_role() -> SignupRole {
    SignupRole::Patient
}

/// A deliberately uninformative acknowledgement (does not reveal whether an email is known).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Login {
    pub email: String,
    pub password: String,
}

/// Exchange a refresh token for a new pair; the presented token is used up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Refresh {
    pub refresh_token: String,
}

/// End the caller's session: revokes the access token and its refresh family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, ToSchema)]
pub struct Logout {
    /// Also revoke this refresh token's family, if it belongs to the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Done {
    pub ok: bool,
}

/// Verify an access token and return who it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verify {
    pub token: String,
}

/// The caller's own account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Me {}

/// Change what the owner may change of their own account; absent fields stay as they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct UpdateMe {
    /// An IANA time zone name (`validation_failed` for an unknown one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChangePassword {
    pub current_password: String,
    pub new_password: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PasswordResetRequest {
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PasswordResetConfirm {
    pub token: String,
    pub new_password: String,
}

/// An account as its owner or an admin sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: String,
    pub email: String,
    pub display_name: String,
    #[schema(value_type = String, example = "patient")]
    pub role: Role,
    #[schema(value_type = String, example = "active")]
    pub status: UserStatus,
    /// RFC 3339.
    pub created_at: String,
    /// The IANA time zone the account's mails and reminders are written in, e.g.
    /// `Europe/Berlin`. An account made before zones were kept, or an event of an older
    /// auth instance, reads `UTC`.
    #[serde(default = "default_time_zone")]
    #[schema(example = "Europe/Berlin", required = true)]
    pub time_zone: String,
}

fn default_time_zone() -> String {
    crate::time::DEFAULT_TIME_ZONE.to_owned()
}

/// Tokens issued by login, refresh and password change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Session {
    pub access_token: String,
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    pub refresh_token: String,
    pub refresh_expires_in: i64,
    pub user: User,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, ToSchema)]
pub struct AdminListUsers {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub role: Option<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub status: Option<UserStatus>,
    /// Case-insensitive substring of email or display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    /// 1..=200, default 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UserPage {
    pub users: Vec<User>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AdminGetUser {
    pub user_id: String,
}

/// What an admin does to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusAction {
    /// pending doctor → active
    Approve,
    /// pending doctor → rejected
    Reject,
    /// any → disabled (revokes every session)
    Disable,
    /// disabled → active
    Enable,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AdminSetUserStatus {
    pub user_id: String,
    pub action: StatusAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Disabling a doctor with confirmed appointments answers 409 `appointments_affected`
    /// listing them (`error.details.appointments`) unless forced; forced, they are cancelled
    /// and each patient told why.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

rpc!(Register => Accepted, s::REGISTER, "register");
rpc!(Login => Session, s::LOGIN, "login");
rpc!(Refresh => Session, s::REFRESH, "refresh");
rpc!(Logout => Done, s::LOGOUT, "logout");
rpc!(Verify => Principal, s::VERIFY, "verify");
rpc!(Me => User, s::ME, "me");
rpc!(UpdateMe => User, s::UPDATE_ME, "me_update");
rpc!(ChangePassword => Session, s::CHANGE_PASSWORD, "password_change");
rpc!(PasswordResetRequest => Accepted, s::RESET_REQUEST, "password_reset_request");
rpc!(PasswordResetConfirm => Accepted, s::RESET_CONFIRM, "password_reset_confirm");
rpc!(AdminListUsers => UserPage, s::ADMIN_LIST_USERS, "admin_list_users");
rpc!(AdminGetUser => User, s::ADMIN_GET_USER, "admin_get_user");
rpc!(AdminSetUserStatus => User, s::ADMIN_SET_STATUS, "admin_set_user_status");

/// What a revocation covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum Revocation {
    /// One access token (logout).
    Token { jti: String, user_id: String },
    /// One login session: every access token of a refresh family.
    Session { session_id: String, user_id: String },
    /// Everything a user holds (disabled, password changed or reset).
    User { user_id: String },
}

/// Published on [`subject::REVOKED`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    #[serde(flatten)]
    pub what: Revocation,
    pub reason: String,
    /// Unix seconds.
    pub at: i64,
}

/// Published on [`subject::PASSWORD_RESET`] for the notification side to mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordResetIssued {
    pub user_id: String,
    pub email: String,
    pub display_name: String,
    /// The single-use secret; never log it.
    pub token: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// What happened to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserEventKind {
    Registered,
    StatusChanged,
    /// The owner changed their account (its time zone).
    Updated,
}

impl UserEventKind {
    /// The subject the event is published on (stream `CAREHUB_USERS`).
    pub fn subject(self) -> &'static str {
        match self {
            Self::Registered => "carehub.events.user.registered",
            Self::StatusChanged => "carehub.events.user.status_changed",
            Self::Updated => "carehub.events.user.updated",
        }
    }
}

/// A durable account event, so other services can keep the account facts they need (a doctor
/// directory lists approved doctors only; notifications need an address and a name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserEvent {
    /// Unique; also the `Nats-Msg-Id`, so a republished event is stored once.
    pub event_id: String,
    pub kind: UserEventKind,
    /// Unix milliseconds.
    pub at: i64,
    /// The account as it is after the event.
    pub user: User,
    /// The account's version after the event: 1 when created, bumped by every change. A copy
    /// applies an event only when its version is newer than the one it holds, so a late,
    /// repeated or replayed older event never sets it back. 0 in events of an auth instance
    /// that predates versions (the copies then compare `at`).
    #[serde(default)]
    pub version: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::round_trip;
    use serde_json::json;

    #[test]
    fn register_snapshot_and_default_role() {
        let r = Register {
            email: "a@b.c".into(),
            password: "pw".into(),
            display_name: "A".into(),
            role: SignupRole::Doctor,
            time_zone: Some("Asia/Tokyo".into()),
        };
        round_trip(
            &r,
            json!({"email":"a@b.c","password":"pw","display_name":"A","role":"doctor",
                "time_zone":"Asia/Tokyo"}),
        );
        let d: Register =
            serde_json::from_value(json!({"email":"x","password":"y","display_name":"z"})).unwrap();
        assert_eq!(d.role, SignupRole::Patient);
        assert_eq!(d.time_zone, None);
        round_trip(
            &UpdateMe {
                time_zone: Some("Europe/Berlin".into()),
            },
            json!({"time_zone":"Europe/Berlin"}),
        );
    }

    #[test]
    fn session_snapshot() {
        let s = Session {
            access_token: "a".into(),
            token_type: "Bearer".into(),
            expires_in: 900,
            refresh_token: "r".into(),
            refresh_expires_in: 2_592_000,
            user: User {
                id: "u1".into(),
                email: "a@b.c".into(),
                display_name: "A".into(),
                role: Role::Patient,
                status: UserStatus::Active,
                created_at: "2026-01-01T00:00:00Z".into(),
                time_zone: "Europe/Berlin".into(),
            },
        };
        round_trip(
            &s,
            json!({"access_token":"a","token_type":"Bearer","expires_in":900,"refresh_token":"r",
                "refresh_expires_in":2_592_000,"user":{"id":"u1","email":"a@b.c","display_name":"A",
                "role":"patient","status":"active","created_at":"2026-01-01T00:00:00Z",
                "time_zone":"Europe/Berlin"}}),
        );
    }

    #[test]
    fn principal_snapshot() {
        let p = Principal {
            user_id: "u".into(),
            role: Role::Admin,
            status: UserStatus::Active,
            jti: "j".into(),
            session_id: "f".into(),
            expires_at: 5,
        };
        round_trip(
            &p,
            json!({"user_id":"u","role":"admin","status":"active","jti":"j","session_id":"f","expires_at":5}),
        );
    }

    #[test]
    fn revocation_snapshots() {
        round_trip(
            &Revoked {
                what: Revocation::Token {
                    jti: "j".into(),
                    user_id: "u".into(),
                },
                reason: "logout".into(),
                at: 1,
            },
            json!({"scope":"token","jti":"j","user_id":"u","reason":"logout","at":1}),
        );
        round_trip(
            &Revoked {
                what: Revocation::User {
                    user_id: "u".into(),
                },
                reason: "disabled".into(),
                at: 2,
            },
            json!({"scope":"user","user_id":"u","reason":"disabled","at":2}),
        );
        round_trip(
            &Revoked {
                what: Revocation::Session {
                    session_id: "s".into(),
                    user_id: "u".into(),
                },
                reason: "refresh_reuse".into(),
                at: 3,
            },
            json!({"scope":"session","session_id":"s","user_id":"u","reason":"refresh_reuse","at":3}),
        );
    }

    #[test]
    fn admin_requests_snapshots() {
        round_trip(
            &AdminSetUserStatus {
                user_id: "u".into(),
                action: StatusAction::Approve,
                reason: None,
                force: false,
            },
            json!({"user_id":"u","action":"approve"}),
        );
        round_trip(
            &AdminListUsers {
                role: Some(Role::Doctor),
                limit: Some(10),
                ..Default::default()
            },
            json!({"role":"doctor","limit":10}),
        );
        round_trip(
            &PasswordResetIssued {
                user_id: "u".into(),
                email: "e".into(),
                display_name: "d".into(),
                token: "t".into(),
                expires_at: 9,
            },
            json!({"user_id":"u","email":"e","display_name":"d","token":"t","expires_at":9}),
        );
    }

    #[test]
    fn user_event_snapshot() {
        round_trip(
            &UserEvent {
                event_id: "e1".into(),
                kind: UserEventKind::StatusChanged,
                at: 7,
                user: User {
                    id: "u".into(),
                    email: "d@x.org".into(),
                    display_name: "D".into(),
                    role: Role::Doctor,
                    status: UserStatus::Active,
                    created_at: "2026-01-01T00:00:00Z".into(),
                    time_zone: "UTC".into(),
                },
                version: 3,
            },
            json!({"event_id":"e1","kind":"status_changed","at":7,"user":{"id":"u","email":"d@x.org",
                "display_name":"D","role":"doctor","status":"active","created_at":"2026-01-01T00:00:00Z",
                "time_zone":"UTC"},"version":3}),
        );
        // An event of an auth instance from before versions.
        let old: UserEvent = serde_json::from_value(json!({"event_id":"e0","kind":"registered","at":1,
            "user":{"id":"u","email":"d@x.org","display_name":"D","role":"doctor","status":"pending",
            "created_at":"2026-01-01T00:00:00Z"}}))
        .unwrap();
        assert_eq!(old.version, 0);
        assert_eq!(
            UserEventKind::Registered.subject(),
            "carehub.events.user.registered"
        );
        assert_eq!(
            UserEventKind::Updated.subject(),
            "carehub.events.user.updated"
        );
    }

    #[test]
    fn an_account_event_of_an_older_auth_instance_reads_utc() {
        let e: UserEvent = serde_json::from_value(json!({"event_id":"e0","kind":"registered",
            "at":1,"user":{"id":"u","email":"p@x.org","display_name":"P","role":"patient",
            "status":"active","created_at":"2026-01-01T00:00:00Z"}}))
        .unwrap();
        assert_eq!(e.user.time_zone, "UTC");
    }

    #[test]
    fn unknown_fields_are_ignored_for_mixed_version_upgrades() {
        let l: Login =
            serde_json::from_value(json!({"email":"e","password":"p","totp":"123456"})).unwrap();
        assert_eq!(l.email, "e");
        let p: Principal = serde_json::from_value(json!({"user_id":"u","role":"doctor",
            "status":"pending","jti":"j","session_id":"s","expires_at":1,"mfa":true}))
        .unwrap();
        assert_eq!(p.role, Role::Doctor);
    }
}
