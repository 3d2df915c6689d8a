//! Typed request/reply: a request type names its subject, endpoint and reply type ([`Rpc`]), and
//! every call carries a [`CallContext`] in NATS headers (request id, verified caller, client address).
//!
//! Every identity-carrying request subject starts with `carehub.api.<service>.`. Deployment
//! permissions let only the gateway and the hub publish there, which is what lets services trust
//! the identity in a request's headers.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::time::Duration;

/// A request type on the bus. Pairing a request with its reply here means a call site cannot
/// send one type and decode another.
pub trait Rpc: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The reply decoded on success.
    type Reply: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// The subject the request is published on.
    const SUBJECT: &'static str;
    /// The micro service endpoint name (what `nats micro info` lists).
    const ENDPOINT: &'static str;
    /// How long a caller waits before reporting a timeout.
    const TIMEOUT: Duration = Duration::from_secs(5);
}

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Patient,
    Doctor,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Patient => "patient",
            Self::Doctor => "doctor",
            Self::Admin => "admin",
        }
    }
    /// Parses a stored or configured role name.
    ///
    /// # Errors
    /// When the name is not one of `patient`, `doctor`, `admin`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "patient" => Ok(Self::Patient),
            "doctor" => Ok(Self::Doctor),
            "admin" => Ok(Self::Admin),
            other => Err(format!(
                "unknown role '{other}' (expected patient, doctor or admin)"
            )),
        }
    }
}

/// An account's status. Doctors start `pending` until an admin approves them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    Active,
    Pending,
    Rejected,
    Disabled,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Pending => "pending",
            Self::Rejected => "rejected",
            Self::Disabled => "disabled",
        }
    }
    /// Parses a stored status name.
    ///
    /// # Errors
    /// When the name is not a known status.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "active" => Ok(Self::Active),
            "pending" => Ok(Self::Pending),
            "rejected" => Ok(Self::Rejected),
            "disabled" => Ok(Self::Disabled),
            other => Err(format!("unknown user status '{other}'")),
        }
    }
}

/// A verified caller, as the auth service vouches for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub user_id: String,
    pub role: Role,
    pub status: UserStatus,
    /// The access token's id; revoking it ends this principal.
    pub jti: String,
    /// The refresh-token family (login session) the token belongs to.
    pub session_id: String,
    /// Token expiry, seconds since the Unix epoch.
    pub expires_at: i64,
}

/// Header names used on every request.
pub mod headers {
    pub const REQUEST_ID: &str = "Carehub-Request-Id";
    pub const PRINCIPAL: &str = "Carehub-Principal";
    pub const CLIENT_IP: &str = "Carehub-Client-Ip";
    /// Stable error code of an error reply (beside the micro protocol's `Nats-Service-Error*`).
    pub const ERROR_CODE: &str = "Carehub-Error";
    pub const RETRY_AFTER: &str = "Carehub-Retry-After";
}

/// Whether `id` may be taken as a request id from outside: 1..=64 characters of
/// `[A-Za-z0-9-_.]`, so it is safe to log and to put in headers.
pub fn is_sane_request_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Who is calling and on whose behalf. Travels in NATS headers so request bodies stay pure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallContext {
    pub request_id: String,
    /// Present on calls the gateway or hub made for an authenticated user.
    pub principal: Option<Principal>,
    /// The end client's address as the gateway determined it.
    pub client_ip: Option<String>,
}

impl CallContext {
    /// The signed-in caller, or `unauthorized` when the call carries no identity.
    ///
    /// # Errors
    /// `unauthorized` ("sign in first").
    pub fn caller(&self) -> Result<&Principal, crate::WireError> {
        self.principal
            .as_ref()
            .ok_or_else(|| crate::WireError::unauthorized("sign in first"))
    }

    /// A context for an internal call with a fresh request id.
    pub fn internal() -> Self {
        Self {
            request_id: uuid::Uuid::now_v7().to_string(),
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_statuses_parse_their_own_names() {
        for r in [Role::Patient, Role::Doctor, Role::Admin] {
            assert_eq!(Role::parse(r.as_str()), Ok(r));
        }
        for s in [
            UserStatus::Active,
            UserStatus::Pending,
            UserStatus::Rejected,
            UserStatus::Disabled,
        ] {
            assert_eq!(UserStatus::parse(s.as_str()), Ok(s));
        }
        assert!(Role::parse("root").is_err());
    }
}
