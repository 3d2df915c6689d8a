//! Patient profiles and medical records: each handler forwards one request to the patient
//! service, which holds the access rules.
//!
//! Versions travel as HTTP validators: a read answers `ETag: "<version>"`, and an update must
//! send it back as `If-Match` (missing: 428 `precondition_required`; not a quoted version or `*`:
//! 400 `bad_request`; no longer current, or weak: 412 `precondition_failed`, and nothing
//! changed; `*`: whatever the current version is). Only patients use the
//! `me` routes; a doctor or admin reads a patient's record by id, never edits it.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, AuthCtx};
use crate::state::AppState;
use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::{HeaderMap, HeaderValue, header, request::Parts};
use axum::response::{IntoResponse, Response};
use carehub_nats::patient::{
    GetMyProfile, GetMyRecord, MedicalRecord, PatientProfile, ProfileFields, ReadProfile,
    ReadRecord, RecordFields, UpdateMyProfile, UpdateMyRecord,
};
use carehub_nats::{CallContext, ErrorCode, Role, UserStatus};

/// The context of a call by an active patient; anyone else gets 403 `forbidden`.
#[derive(Debug, Clone)]
pub(crate) struct PatientCtx(pub CallContext);

impl FromRequestParts<AppState> for PatientCtx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let AuthCtx(ctx) = AuthCtx::from_request_parts(parts, state).await?;
        match &ctx.principal {
            Some(p) if p.role == Role::Patient && p.status == UserStatus::Active => Ok(Self(ctx)),
            _ => Err(ApiError::forbidden("patients only")),
        }
    }
}

/// The version an update expects, from `If-Match: "<version>"`; `None` for `If-Match: *`
/// (whatever the current version is, RFC 9110). Comparison is strong: a weak validator
/// (`W/"3"`) never matches, so it answers 412 like a stale version.
fn expected_version(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Err(ApiError::new(
            ErrorCode::PreconditionRequired,
            "send If-Match with the ETag of the version you read",
        ));
    };
    let bad = || ApiError::bad_request("If-Match: expected one quoted version such as \"3\", or *");
    let text = value.to_str().map_err(|_| bad())?.trim();
    if text == "*" {
        return Ok(None);
    }
    if text.starts_with("W/") {
        return Err(ApiError::new(
            ErrorCode::PreconditionFailed,
            "If-Match: a weak validator never matches; send the ETag as it was read",
        ));
    }
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|v| *v >= 1)
        .map(Some)
        .ok_or_else(bad)
}

/// A JSON body with its version as the `ETag`.
fn tagged<T: serde::Serialize>(version: i64, body: T) -> Response {
    with_etag(version, Json(body).into_response())
}

fn with_etag(version: i64, mut res: Response) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

/// The `version` of a reply; every other field is skipped unread.
#[derive(serde::Deserialize)]
struct Version {
    version: i64,
}

/// Asks the patient service for a versioned read and answers with its reply as it came (see
/// [`crate::state::Forwarded`]), with the reply's `version` as the `ETag`: only that one field is
/// decoded.
async fn forward_tagged<R: carehub_nats::Rpc>(
    s: &AppState,
    ctx: &CallContext,
    req: &R,
) -> Result<Response, ApiError> {
    let body = s.forward(ctx, req).await?;
    let Version { version } =
        serde_json::from_slice(body.json()).map_err(|e| carehub_bus::BusError::Decode {
            subject: R::SUBJECT.into(),
            message: e.to_string(),
        })?;
    Ok(with_etag(version, body.into_response()))
}

/// The caller's profile (created empty on first access).
#[utoipa::path(get, path = "/api/patients/me/profile", tag = "patients", security(("bearer" = [])),
    responses((status = 200, description = "The caller's profile", body = PatientProfile,
            headers(("ETag" = String, description = "The profile's version, quoted"))),
        (status = 403, description = "Not an active patient", body = ErrorBody)))]
pub(crate) async fn get_my_profile(
    State(s): State<AppState>,
    PatientCtx(ctx): PatientCtx,
) -> Result<Response, ApiError> {
    forward_tagged(&s, &ctx, &GetMyProfile {}).await
}

/// Replace the caller's profile (every field; absent ones are cleared).
#[utoipa::path(put, path = "/api/patients/me/profile", tag = "patients", security(("bearer" = [])),
    params(("If-Match" = String, Header, description = "The ETag of the version being replaced, e.g. \"3\" (strong comparison: a weak `W/` validator never matches, 412), or `*` for whatever version is current",
        pattern = r#"^(\*|(W/)?"\+?0*[1-9][0-9]{0,17}")$"#)),
    request_body = ProfileFields,
    responses((status = 200, description = "The profile after the change", body = PatientProfile,
            headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 400, description = "If-Match is neither one quoted version nor `*`", body = ErrorBody),
        (status = 403, description = "Not an active patient", body = ErrorBody),
        (status = 412, description = "The profile changed since that version (or a weak validator was sent); nothing was changed", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
        (status = 428, description = "If-Match is missing", body = ErrorBody)))]
pub(crate) async fn put_my_profile(
    State(s): State<AppState>,
    PatientCtx(ctx): PatientCtx,
    headers: HeaderMap,
    ApiJson(fields): ApiJson<ProfileFields>,
) -> Result<Response, ApiError> {
    let req = UpdateMyProfile {
        expected_version: expected_version(&headers)?,
        fields,
    };
    let p = s.bus.request(&ctx, &req).await?;
    Ok(tagged(p.version, p))
}

/// The caller's medical record (created empty on first access).
#[utoipa::path(get, path = "/api/patients/me/record", tag = "patients", security(("bearer" = [])),
    responses((status = 200, description = "The caller's medical record", body = MedicalRecord,
            headers(("ETag" = String, description = "The record's version, quoted"))),
        (status = 403, description = "Not an active patient", body = ErrorBody)))]
pub(crate) async fn get_my_record(
    State(s): State<AppState>,
    PatientCtx(ctx): PatientCtx,
) -> Result<Response, ApiError> {
    forward_tagged(&s, &ctx, &GetMyRecord {}).await
}

/// Replace the caller's medical record (every field; absent lists are emptied).
#[utoipa::path(put, path = "/api/patients/me/record", tag = "patients", security(("bearer" = [])),
    params(("If-Match" = String, Header, description = "The ETag of the version being replaced, e.g. \"3\" (strong comparison: a weak `W/` validator never matches, 412), or `*` for whatever version is current",
        pattern = r#"^(\*|(W/)?"\+?0*[1-9][0-9]{0,17}")$"#)),
    request_body = RecordFields,
    responses((status = 200, description = "The record after the change", body = MedicalRecord,
            headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 400, description = "If-Match is neither one quoted version nor `*`", body = ErrorBody),
        (status = 403, description = "Not an active patient", body = ErrorBody),
        (status = 412, description = "The record changed since that version (or a weak validator was sent); nothing was changed", body = ErrorBody),
        (status = 422, description = "A field is invalid (e.g. an unknown blood type, notes over 5000 characters)", body = ErrorBody),
        (status = 428, description = "If-Match is missing", body = ErrorBody)))]
pub(crate) async fn put_my_record(
    State(s): State<AppState>,
    PatientCtx(ctx): PatientCtx,
    headers: HeaderMap,
    ApiJson(fields): ApiJson<RecordFields>,
) -> Result<Response, ApiError> {
    let req = UpdateMyRecord {
        expected_version: expected_version(&headers)?,
        fields,
    };
    let r = s.bus.request(&ctx, &req).await?;
    Ok(tagged(r.version, r))
}

/// A patient's medical record, for an admin (read only) or a doctor with an open offer, a
/// confirmed appointment or a recently completed one with the patient. Every such read is
/// audited. Anyone else gets 404, as for an unknown patient.
#[utoipa::path(get, path = "/api/patients/{id}/record", tag = "patients", security(("bearer" = [])),
    params(("id" = String, Path, description = "The patient's user id")),
    responses((status = 200, description = "The patient's medical record", body = MedicalRecord,
            headers(("ETag" = String, description = "The record's version, quoted"))),
        (status = 404, description = "No such patient, or no access to their record", body = ErrorBody)))]
pub(crate) async fn read_record(
    State(s): State<AppState>,
    AuthCtx(ctx): AuthCtx,
    ApiPath(patient_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    forward_tagged(&s, &ctx, &ReadRecord { patient_id }).await
}

/// A patient's profile (date of birth, contact details, insurance) under the rule of the record:
/// for an admin (read only) or a doctor with an open offer, a confirmed appointment or a recently
/// completed one with the patient. Every such read is audited. Anyone else gets 404, as for an
/// unknown patient.
#[utoipa::path(get, path = "/api/patients/{id}/profile", tag = "patients", security(("bearer" = [])),
    params(("id" = String, Path, description = "The patient's user id")),
    responses((status = 200, description = "The patient's profile", body = PatientProfile,
            headers(("ETag" = String, description = "The profile's version, quoted"))),
        (status = 404, description = "No such patient, or no access to their profile", body = ErrorBody)))]
pub(crate) async fn read_profile(
    State(s): State<AppState>,
    AuthCtx(ctx): AuthCtx,
    ApiPath(patient_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    forward_tagged(&s, &ctx, &ReadProfile { patient_id }).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_if_match(v: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = v {
            h.insert(header::IF_MATCH, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn if_match_carries_one_quoted_version_or_a_star() {
        assert_eq!(
            expected_version(&with_if_match(Some("\"3\""))).unwrap(),
            Some(3)
        );
        assert_eq!(expected_version(&with_if_match(Some(" * "))).unwrap(), None);
        let weak = expected_version(&with_if_match(Some(" W/\"12\" "))).unwrap_err();
        assert_eq!(weak.code, ErrorCode::PreconditionFailed);
        assert_eq!(weak.status().as_u16(), 412);
        let missing = expected_version(&with_if_match(None)).unwrap_err();
        assert_eq!(missing.code, ErrorCode::PreconditionRequired);
        assert_eq!(missing.status().as_u16(), 428);
        for bad in ["3", "\"0\"", "\"-1\"", "\"1\", \"2\"", "\"x\"", "**"] {
            let e = expected_version(&with_if_match(Some(bad))).unwrap_err();
            assert_eq!(e.code, ErrorCode::BadRequest, "{bad}");
        }
    }
}
