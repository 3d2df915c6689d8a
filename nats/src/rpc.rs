//! Typed request/reply: a request type names its subject, endpoint and reply type ([`Rpc`]), and
//! every call carries a [`CallContext`] in NATS headers (request id, verified caller, client address).

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::future::Future;
use std::time::Duration;
use tracing::Instrument;

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

tokio::task_local! {
    static CURRENT_REQUEST_ID: String;
}

/// Runs `fut` with `request_id` as the [`current_request_id`]. Request handlers and event
/// consumers run inside it, so what they record on the way (an outbox event) carries the id on.
pub async fn with_request_id<F: Future>(request_id: Option<String>, fut: F) -> F::Output {
    match request_id {
        Some(id) => CURRENT_REQUEST_ID.scope(id, fut).await,
        None => fut.await,
    }
}

/// The request id of the call or event this task is handling, if it has one.
pub fn current_request_id() -> Option<String> {
    CURRENT_REQUEST_ID.try_with(Clone::clone).ok()
}

/// The request id a message carries in its headers, when it is a sane one.
pub fn request_id_in(h: Option<&async_nats::HeaderMap>) -> Option<String> {
    h?.get(headers::REQUEST_ID)
        .map(|v| v.as_str().to_owned())
        .filter(|id| is_sane_request_id(id))
}

/// Handles an event that arrived on `subject` with `headers`: `fut` runs in an `event` span
/// carrying the request id that caused the event (logged as `request_id`, like a call's), with
/// that id current for anything it records.
pub async fn handling_event<F: Future>(
    subject: &str,
    headers: Option<&async_nats::HeaderMap>,
    fut: F,
) -> F::Output {
    let request_id = request_id_in(headers);
    let span = tracing::info_span!(
        "event",
        subject,
        request_id = request_id.as_deref().unwrap_or(""),
    );
    async move {
        tracing::debug!("handling event");
        with_request_id(request_id, fut).await
    }
    .instrument(span)
    .await
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
    /// A context for an internal call with a fresh request id.
    pub fn internal() -> Self {
        Self {
            request_id: uuid::Uuid::now_v7().to_string(),
            ..Self::default()
        }
    }

    /// Writes the context into NATS headers.
    pub fn to_headers(&self) -> async_nats::HeaderMap {
        let mut h = async_nats::HeaderMap::new();
        h.insert(headers::REQUEST_ID, self.request_id.as_str());
        if let Some(json) = self
            .principal
            .as_ref()
            .and_then(|p| serde_json::to_string(p).ok())
        {
            h.insert(headers::PRINCIPAL, json.as_str());
        }
        if let Some(ip) = &self.client_ip {
            h.insert(headers::CLIENT_IP, ip.as_str());
        }
        h
    }

    /// Reads a context from NATS headers; a malformed principal header is treated as absent.
    pub fn from_headers(h: Option<&async_nats::HeaderMap>) -> Self {
        let Some(h) = h else { return Self::internal() };
        let get = |name: &str| h.get(name).map(|v| v.as_str().to_owned());
        Self {
            request_id: get(headers::REQUEST_ID)
                .unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
            principal: get(headers::PRINCIPAL).and_then(|s| serde_json::from_str(&s).ok()),
            client_ip: get(headers::CLIENT_IP),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_request_id_is_current_inside_a_handler_and_only_there() {
        assert_eq!(current_request_id(), None);
        let inside = with_request_id(Some("req-1".into()), async {
            // Still current after an await point, and in nested handling.
            tokio::task::yield_now().await;
            let nested =
                with_request_id(Some("req-2".into()), async { current_request_id() }).await;
            (current_request_id(), nested)
        })
        .await;
        assert_eq!(inside, (Some("req-1".into()), Some("req-2".into())));
        assert_eq!(
            with_request_id(None, async { current_request_id() }).await,
            None
        );
        assert_eq!(current_request_id(), None);
    }

    #[test]
    fn only_a_sane_request_id_is_taken_from_headers() {
        let mut h = async_nats::HeaderMap::new();
        assert_eq!(request_id_in(Some(&h)), None);
        assert_eq!(request_id_in(None), None);
        h.insert(headers::REQUEST_ID, "abc-123");
        assert_eq!(request_id_in(Some(&h)), Some("abc-123".into()));
        h.insert(headers::REQUEST_ID, "has space");
        assert_eq!(request_id_in(Some(&h)), None);
    }

    #[test]
    fn context_survives_a_trip_through_headers() {
        let ctx = CallContext {
            request_id: "r-1".into(),
            principal: Some(Principal {
                user_id: "u".into(),
                role: Role::Doctor,
                status: UserStatus::Pending,
                jti: "j".into(),
                session_id: "s".into(),
                expires_at: 10,
            }),
            client_ip: Some("127.0.0.2".into()),
        };
        assert_eq!(CallContext::from_headers(Some(&ctx.to_headers())), ctx);
    }

    #[test]
    fn a_garbled_principal_header_is_no_principal() {
        let mut h = async_nats::HeaderMap::new();
        h.insert(headers::PRINCIPAL, "{not json");
        assert!(CallContext::from_headers(Some(&h)).principal.is_none());
    }

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
