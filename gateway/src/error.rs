//! The one error type of the HTTP edge and the one JSON body it becomes.
//!
//! Handlers, extractors and middleware return [`ApiError`]; the status comes from
//! [`ErrorCode::http_status`] and nowhere else. The body is finished by the edge middleware,
//! which knows the request id (see [`crate::edge`]); responses made by axum or tower layers
//! themselves (404, 405, 408, 413, ...) are rewritten into the same body there too.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use carehub_bus::BusError;
use carehub_nats::{ErrorCode, ErrorDetails, WireError};
use serde::Serialize;
use utoipa::ToSchema;

/// An error answered to an HTTP client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
    /// Sent as `Retry-After` (seconds).
    pub(crate) retry_after_secs: Option<u64>,
    /// Sent as the body's `details` (never with a 5xx).
    pub(crate) details: Option<ErrorDetails>,
}

/// Made with the contract's constructors ([`WireError`]) where it has one.
impl ApiError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        WireError::new(code, message).into()
    }
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }
    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        WireError::unauthorized(message).into()
    }
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        WireError::forbidden(message).into()
    }
    pub(crate) fn not_found() -> Self {
        WireError::not_found("no such resource").into()
    }
    pub(crate) fn rate_limited(retry_after_secs: u64) -> Self {
        Self {
            message: "too many requests, try again later".into(),
            ..WireError::rate_limited(retry_after_secs).into()
        }
    }

    /// The error for a response some layer produced with only a status code.
    pub(crate) fn from_status(status: StatusCode) -> Self {
        let (code, message) = match status.as_u16() {
            400 => (ErrorCode::BadRequest, "the request is malformed"),
            401 => (ErrorCode::Unauthorized, "authentication required"),
            403 => (ErrorCode::Forbidden, "not allowed"),
            404 => (ErrorCode::NotFound, "no such resource"),
            405 => (
                ErrorCode::MethodNotAllowed,
                "method not allowed on this resource",
            ),
            408 | 504 => (ErrorCode::Timeout, "the request took too long"),
            409 => (ErrorCode::Conflict, "conflict"),
            412 => (
                ErrorCode::PreconditionFailed,
                "the version you sent is no longer current",
            ),
            413 => (ErrorCode::PayloadTooLarge, "the request body is too large"),
            415 => (
                ErrorCode::UnsupportedMediaType,
                "expected a body of type application/json",
            ),
            422 => (ErrorCode::ValidationFailed, "the request is invalid"),
            429 => (ErrorCode::RateLimited, "too many requests, try again later"),
            503 => (ErrorCode::ServiceUnavailable, "temporarily unavailable"),
            s if s < 500 => (ErrorCode::BadRequest, "the request is malformed"),
            _ => (ErrorCode::Internal, "internal error"),
        };
        Self::new(code, message)
    }

    pub(crate) fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The JSON body for this error. 5xx messages are fixed texts and carry no details, so
    /// nothing internal leaks even when a service put details in its message.
    pub(crate) fn body(&self, request_id: &str) -> ErrorBody {
        let server_side = self.status().is_server_error();
        let message = match self.code {
            ErrorCode::Internal | ErrorCode::Unknown => "internal error".to_owned(),
            ErrorCode::ServiceUnavailable => {
                "a required service is unavailable, try again shortly".to_owned()
            }
            ErrorCode::Timeout => "a required service did not answer in time".to_owned(),
            _ => self.message.clone(),
        };
        ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str().to_owned(),
                message,
                request_id: request_id.to_owned(),
                details: self.details.clone().filter(|_| !server_side),
            },
        }
    }

    /// The full response, with the request id filled in.
    pub(crate) fn to_response(&self, request_id: &str) -> Response {
        let mut res = (self.status(), axum::Json(self.body(request_id))).into_response();
        if let Some(secs) = self.retry_after_secs {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<WireError> for ApiError {
    fn from(e: WireError) -> Self {
        Self {
            code: e.code,
            message: e.message,
            retry_after_secs: e.retry_after_secs,
            details: e.details,
        }
    }
}

impl From<BusError> for ApiError {
    fn from(e: BusError) -> Self {
        match &e {
            BusError::Remote(_) => {}
            other => tracing::warn!(error = %other, "bus call failed"),
        }
        e.to_wire().into()
    }
}

/// Renders without a request id; the edge middleware replaces the body with one that has it
/// (the error travels in the response extensions).
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = self.to_response("");
        res.extensions_mut().insert(self);
        res
    }
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub(crate) struct ErrorBody {
    pub(crate) error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub(crate) struct ErrorDetail {
    /// Stable machine-readable code, e.g. `unauthorized`, `validation_failed`, `rate_limited`.
    #[schema(example = "unauthorized")]
    pub(crate) code: String,
    /// Human-readable text, safe to show a user.
    pub(crate) message: String,
    /// The request id, also in the `x-request-id` response header.
    pub(crate) request_id: String,
    /// Structured details, only with the codes that have them: `appointments_affected` lists
    /// the confirmed appointments in `details.appointments`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) details: Option<ErrorDetails>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_come_from_the_error_code() {
        assert_eq!(
            ApiError::from_status(StatusCode::METHOD_NOT_ALLOWED).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            ApiError::from_status(StatusCode::REQUEST_TIMEOUT).status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        let e: ApiError = BusError::NoResponders {
            subject: "carehub.api.auth.login".into(),
        }
        .into();
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn server_errors_say_nothing_internal() {
        let e = ApiError::from(WireError::new(
            ErrorCode::Internal,
            "db at 10.0.0.5 refused",
        ));
        let body = e.body("r1");
        assert_eq!(body.error.message, "internal error");
        assert_eq!(body.error.code, "internal");
        assert_eq!(body.error.request_id, "r1");
    }

    #[test]
    fn a_remote_retry_after_becomes_a_header() {
        let e = ApiError::from(WireError::rate_limited(7));
        let res = e.to_response("r");
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[header::RETRY_AFTER], "7");
    }

    #[test]
    fn details_reach_the_body_only_when_present_and_never_with_a_5xx() {
        let details = ErrorDetails {
            appointments: vec![carehub_nats::appointment::AffectedAppointment {
                id: "a1".into(),
                patient_id: "p1".into(),
                patient_name: None,
                start: "2026-03-02T09:00:00Z".into(),
                end: "2026-03-02T09:30:00Z".into(),
                status: carehub_nats::appointment::AppointmentStatus::Confirmed,
            }],
        };
        let e = ApiError::from(
            WireError::new(ErrorCode::AppointmentsAffected, "overlaps")
                .with_details(details.clone()),
        );
        assert_eq!(e.status(), StatusCode::CONFLICT);
        let body = serde_json::to_value(e.body("r")).unwrap();
        assert_eq!(body["error"]["code"], "appointments_affected");
        assert_eq!(body["error"]["details"]["appointments"][0]["id"], "a1");
        let plain = serde_json::to_value(ApiError::not_found().body("r")).unwrap();
        assert!(plain["error"].get("details").is_none(), "{plain}");
        let internal = ApiError::from(WireError::internal().with_details(details));
        assert!(internal.body("r").error.details.is_none());
    }
}
