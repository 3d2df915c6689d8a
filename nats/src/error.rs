//! Stable error codes and the two error types: [`WireError`] (what a service answers) and
//! [`BusError`] (what a caller gets: a remote error, or a transport failure), with the
//! structured [`ErrorDetails`] some codes carry.

use crate::appointment::AffectedAppointment;
use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;

/// A stable, machine-readable error code. The wire form is the snake_case name; clients match on
/// it, so a rename is a protocol change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed (bad JSON, bad path or query).
    BadRequest,
    /// The request is well-formed but a field is invalid.
    ValidationFailed,
    /// No or invalid credentials or token.
    Unauthorized,
    /// The access token has expired; refresh it.
    TokenExpired,
    /// Email or password is wrong (never says which).
    InvalidCredentials,
    /// The account is disabled or was rejected.
    AccountDisabled,
    /// Authenticated, but not allowed to do this.
    Forbidden,
    NotFound,
    /// A concurrent change won, or a version check failed.
    Conflict,
    /// The time is taken: another confirmed appointment, or a held time, overlaps it.
    SlotTaken,
    /// The patient already has a confirmed appointment overlapping this time.
    PatientBusy,
    /// The change (time off, disabling a doctor) would cancel confirmed appointments; they are
    /// listed in [`ErrorDetails::appointments`], and the same request with `force` cancels them.
    AppointmentsAffected,
    /// A start that is not a slot start of the doctor's availability on that day.
    OffSlotGrid,
    /// An `Idempotency-Key` used before by this caller for a different request.
    IdempotencyKeyReused,
    /// A versioned update came without the version it expects (`If-Match`).
    PreconditionRequired,
    /// The version an update expects (`If-Match`) is no longer current; nothing changed.
    PreconditionFailed,
    /// Too many attempts; see `retry_after_secs`.
    RateLimited,
    PayloadTooLarge,
    UnsupportedMediaType,
    MethodNotAllowed,
    /// The owning service is not running (no responders on the bus).
    ServiceUnavailable,
    /// The owning service did not answer in time.
    Timeout,
    /// Anything else; details are in the logs, never in the message.
    Internal,
    /// A code this build does not know (sent by a newer peer).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The HTTP status the gateway answers with; also the numeric `Nats-Service-Error-Code`.
    pub fn http_status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::ValidationFailed | Self::OffSlotGrid | Self::IdempotencyKeyReused => 422,
            Self::Unauthorized | Self::TokenExpired | Self::InvalidCredentials => 401,
            Self::AccountDisabled | Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Conflict | Self::SlotTaken | Self::PatientBusy | Self::AppointmentsAffected => {
                409
            }
            Self::PreconditionRequired => 428,
            Self::PreconditionFailed => 412,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::RateLimited => 429,
            Self::Internal | Self::Unknown => 500,
            Self::ServiceUnavailable => 503,
            Self::Timeout => 504,
        }
    }

    /// The wire name, e.g. `invalid_credentials`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::ValidationFailed => "validation_failed",
            Self::Unauthorized => "unauthorized",
            Self::TokenExpired => "token_expired",
            Self::InvalidCredentials => "invalid_credentials",
            Self::AccountDisabled => "account_disabled",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::SlotTaken => "slot_taken",
            Self::PatientBusy => "patient_busy",
            Self::AppointmentsAffected => "appointments_affected",
            Self::OffSlotGrid => "off_slot_grid",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::PreconditionRequired => "precondition_required",
            Self::PreconditionFailed => "precondition_failed",
            Self::RateLimited => "rate_limited",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::ServiceUnavailable => "service_unavailable",
            Self::Timeout => "timeout",
            Self::Internal => "internal",
            Self::Unknown => "unknown",
        }
    }

    /// Parses a wire name; unknown names become [`ErrorCode::Unknown`].
    pub fn parse(s: &str) -> Self {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).unwrap_or(Self::Unknown)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an error says beyond its code and message, as data a client can show: present only
/// with the codes that document it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetails {
    /// With `appointments_affected`: the confirmed appointments the change would cancel,
    /// earliest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub appointments: Vec<AffectedAppointment>,
}

/// An error a service answers with: a stable code and a message safe to show a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct WireError {
    pub code: ErrorCode,
    pub message: String,
    /// For [`ErrorCode::RateLimited`]: seconds until a retry can succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
    /// Structured details, for the codes that document them (on the bus: the error reply's
    /// body, which is otherwise empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<ErrorDetails>,
}

impl WireError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_secs: None,
            details: None,
        }
    }
    /// This error with structured `details`.
    #[must_use]
    pub fn with_details(mut self, details: ErrorDetails) -> Self {
        self.details = Some(details);
        self
    }
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationFailed, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }
    /// A 5xx-class error whose message says nothing internal.
    pub fn internal() -> Self {
        Self::new(ErrorCode::Internal, "internal error")
    }
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self {
            code: ErrorCode::RateLimited,
            message: "too many attempts, try again later".into(),
            retry_after_secs: Some(retry_after_secs.max(1)),
            details: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip_through_their_wire_names() {
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::ValidationFailed,
            ErrorCode::Unauthorized,
            ErrorCode::TokenExpired,
            ErrorCode::InvalidCredentials,
            ErrorCode::AccountDisabled,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::Conflict,
            ErrorCode::SlotTaken,
            ErrorCode::PatientBusy,
            ErrorCode::AppointmentsAffected,
            ErrorCode::OffSlotGrid,
            ErrorCode::IdempotencyKeyReused,
            ErrorCode::PreconditionRequired,
            ErrorCode::PreconditionFailed,
            ErrorCode::RateLimited,
            ErrorCode::PayloadTooLarge,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::MethodNotAllowed,
            ErrorCode::ServiceUnavailable,
            ErrorCode::Timeout,
            ErrorCode::Internal,
        ] {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, serde_json::Value::String(code.as_str().into()));
            assert_eq!(ErrorCode::parse(code.as_str()), code);
        }
    }

    #[test]
    fn an_unknown_error_code_from_a_newer_peer_is_tolerated() {
        let e: WireError =
            serde_json::from_str(r#"{"code":"brand_new","message":"m","extra":1}"#).unwrap();
        assert_eq!(e.code, ErrorCode::Unknown);
        assert_eq!(e.code.http_status(), 500);
    }

    #[test]
    fn wire_error_snapshot() {
        let e = WireError::rate_limited(7);
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"code":"rate_limited","message":"too many attempts, try again later","retry_after_secs":7})
        );
    }

    #[test]
    fn appointments_affected_snapshot() {
        let e = WireError::new(ErrorCode::AppointmentsAffected, "the time off overlaps 1")
            .with_details(ErrorDetails {
                appointments: vec![AffectedAppointment {
                    id: "a1".into(),
                    patient_id: "p1".into(),
                    patient_name: Some("Ana Lima".into()),
                    start: "2026-03-02T09:00:00Z".into(),
                    end: "2026-03-02T09:30:00Z".into(),
                    status: crate::appointment::AppointmentStatus::Confirmed,
                }],
            });
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"code":"appointments_affected","message":"the time off overlaps 1",
                "details":{"appointments":[{"id":"a1","patient_id":"p1","patient_name":"Ana Lima",
                    "start":"2026-03-02T09:00:00Z","end":"2026-03-02T09:30:00Z","status":"confirmed"}]}})
        );
        assert_eq!(e.code.http_status(), 409);
        assert_eq!(serde_json::from_value::<WireError>(json).unwrap(), e);
    }
}
