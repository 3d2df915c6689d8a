//! The doctor directory, public profiles, free slots, and a doctor's own profile and
//! availability. Each handler forwards one request to the doctor service.
//!
//! `/api/doctors/me/...` always acts on the caller (the service takes the id from the verified
//! principal, never from the request), and only doctors pass the edge check ([`DoctorCtx`]).
//! The directory, profiles and slots are for any signed-in user.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, AuthCtx};
use crate::state::{AppState, Forwarded};
use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::{StatusCode, request::Parts};
use carehub_nats::appointment::ListFreeSlots;
use carehub_nats::doctor::{
    AddTimeOff, AvailabilityView, DoctorPage, DoctorProfile, GetAvailability, GetProfile,
    GetPublicProfile, PublicProfile, RemoveTimeOff, ReplaceAvailability, SearchDoctors, SlotList,
    TimeOffAdded, UpdateProfile,
};
use carehub_nats::{CallContext, Role};
use serde::Deserialize;
use utoipa::IntoParams;

/// The context of a call by a doctor (any account status; the service requires an active one
/// for changes). Anyone else gets 403 `forbidden`.
#[derive(Debug, Clone)]
pub(crate) struct DoctorCtx(pub CallContext);

impl FromRequestParts<AppState> for DoctorCtx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let AuthCtx(ctx) = AuthCtx::from_request_parts(parts, state).await?;
        match &ctx.principal {
            Some(p) if p.role == Role::Doctor => Ok(Self(ctx)),
            _ => Err(ApiError::forbidden("doctors only")),
        }
    }
}

/// The window of a free-slot search.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SlotsQuery {
    /// RFC 3339 start of the window.
    #[param(value_type = String, format = DateTime, example = "2026-03-29T00:00:00Z")]
    pub(crate) from: String,
    /// RFC 3339 end of the window: after `from`, at most 62 days later.
    #[param(value_type = String, format = DateTime, example = "2026-03-30T00:00:00Z")]
    pub(crate) to: String,
}

/// An optional version check for a removal.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct VersionQuery {
    /// Remove only if the doctor is still at this version.
    pub(crate) expected_version: Option<i64>,
}

/// Approved doctors, by specialty and name.
#[utoipa::path(get, path = "/api/doctors", tag = "doctors", security(("bearer" = [])),
    params(SearchDoctors),
    responses((status = 200, description = "A page of approved doctors", body = DoctorPage),
        (status = 422, description = "`limit` outside 1..=100, or `language` not an ISO 639-1 code", body = ErrorBody)))]
pub(crate) async fn search(
    State(s): State<AppState>,
    AuthCtx(ctx): AuthCtx,
    ApiQuery(req): ApiQuery<SearchDoctors>,
) -> Result<Json<DoctorPage>, ApiError> {
    Ok(Json(s.bus.request(&ctx, &req).await?))
}

/// An approved doctor's public profile.
#[utoipa::path(get, path = "/api/doctors/{id}", tag = "doctors", security(("bearer" = [])),
    params(("id" = String, Path, description = "Doctor id")),
    responses((status = 200, description = "The doctor", body = PublicProfile),
        (status = 404, description = "No such approved doctor", body = ErrorBody)))]
pub(crate) async fn get_doctor(
    State(s): State<AppState>,
    AuthCtx(ctx): AuthCtx,
    ApiPath(doctor_id): ApiPath<String>,
) -> Result<Json<PublicProfile>, ApiError> {
    Ok(Json(
        s.bus.request(&ctx, &GetPublicProfile { doctor_id }).await?,
    ))
}

/// Free slots of an approved doctor in `[from, to)`: working hours minus time off minus every
/// taken time (confirmed appointments, a time the doctor proposed for a move) and, for a
/// patient, minus their own confirmed appointments. A slot that has started is not listed. A
/// query sent after a booking, cancel or change of hours was answered sees it.
#[utoipa::path(get, path = "/api/doctors/{id}/slots", tag = "doctors", security(("bearer" = [])),
    params(("id" = String, Path, description = "Doctor id"), SlotsQuery),
    responses((status = 200, description = "The free slots, in time order", body = SlotList),
        (status = 404, description = "No such approved doctor", body = ErrorBody),
        (status = 422, description = "A time is not RFC 3339, `to` is not after `from`, or the window is longer than 62 days", body = ErrorBody)))]
pub(crate) async fn slots(
    State(s): State<AppState>,
    AuthCtx(ctx): AuthCtx,
    ApiPath(doctor_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<SlotsQuery>,
) -> Result<Forwarded<SlotList>, ApiError> {
    let req = ListFreeSlots {
        doctor_id,
        from: q.from,
        to: q.to,
    };
    s.forward(&ctx, &req).await
}

/// The caller's doctor profile.
#[utoipa::path(get, path = "/api/doctors/me/profile", tag = "doctors", security(("bearer" = [])),
    responses((status = 200, description = "The caller's profile", body = DoctorProfile),
        (status = 403, description = "Not a doctor", body = ErrorBody),
        (status = 404, description = "The profile does not exist yet", body = ErrorBody)))]
pub(crate) async fn get_profile(
    State(s): State<AppState>,
    DoctorCtx(ctx): DoctorCtx,
) -> Result<Json<DoctorProfile>, ApiError> {
    Ok(Json(s.bus.request(&ctx, &GetProfile::default()).await?))
}

/// Replace the caller's specialties and bio.
#[utoipa::path(put, path = "/api/doctors/me/profile", tag = "doctors", security(("bearer" = [])),
    request_body = UpdateProfile,
    responses((status = 200, description = "The profile after the change", body = DoctorProfile),
        (status = 403, description = "Not an active doctor", body = ErrorBody),
        (status = 404, description = "The profile does not exist yet", body = ErrorBody),
        (status = 409, description = "`expected_version` is not the current version", body = ErrorBody),
        (status = 422, description = "Invalid specialties or bio", body = ErrorBody)))]
pub(crate) async fn put_profile(
    State(s): State<AppState>,
    DoctorCtx(ctx): DoctorCtx,
    ApiJson(body): ApiJson<UpdateProfile>,
) -> Result<Json<DoctorProfile>, ApiError> {
    Ok(Json(s.bus.request(&ctx, &body).await?))
}

/// The caller's availability: zone, weekly hours, slot length, time off that has not ended.
#[utoipa::path(get, path = "/api/doctors/me/availability", tag = "doctors", security(("bearer" = [])),
    responses((status = 200, description = "The caller's availability", body = AvailabilityView),
        (status = 403, description = "Not a doctor", body = ErrorBody),
        (status = 404, description = "The profile does not exist yet", body = ErrorBody)))]
pub(crate) async fn get_availability(
    State(s): State<AppState>,
    DoctorCtx(ctx): DoctorCtx,
) -> Result<Json<AvailabilityView>, ApiError> {
    Ok(Json(
        s.bus.request(&ctx, &GetAvailability::default()).await?,
    ))
}

/// Replace the caller's weekly hours, zone, slot length and booking mode. `expected_version`
/// must be the current version.
#[utoipa::path(put, path = "/api/doctors/me/availability", tag = "doctors", security(("bearer" = [])),
    request_body = ReplaceAvailability,
    responses((status = 200, description = "The availability after the change", body = AvailabilityView),
        (status = 403, description = "Not an active doctor", body = ErrorBody),
        (status = 404, description = "The profile does not exist yet", body = ErrorBody),
        (status = 409, description = "`expected_version` is not the current version", body = ErrorBody),
        (status = 422, description = "Unknown time zone, a range whose end is not after its start, overlapping ranges, or a bad slot length", body = ErrorBody)))]
pub(crate) async fn put_availability(
    State(s): State<AppState>,
    DoctorCtx(ctx): DoctorCtx,
    ApiJson(body): ApiJson<ReplaceAvailability>,
) -> Result<Json<AvailabilityView>, ApiError> {
    Ok(Json(s.bus.request(&ctx, &body).await?))
}

/// Add a time off period: `end` after `start`, at most 366 days later.
#[utoipa::path(post, path = "/api/doctors/me/time-off", tag = "doctors", security(("bearer" = [])),
    request_body = AddTimeOff,
    responses((status = 201, description = "The period added and the new version", body = TimeOffAdded),
        (status = 403, description = "Not an active doctor", body = ErrorBody),
        (status = 404, description = "The profile does not exist yet", body = ErrorBody),
        (status = 409, description = "`conflict`: `expected_version` is not the current version, or too many upcoming periods; `appointments_affected`: the period overlaps confirmed appointments, listed in `error.details.appointments` (send `force: true` to cancel them)", body = ErrorBody),
        (status = 422, description = "A time is not RFC 3339, the end is not after the start or more than 366 days later, or the reason is too long", body = ErrorBody),
        (status = 503, description = "The admin service, which checks appointments, is unavailable", body = ErrorBody),
        (status = 504, description = "The admin service did not answer in time", body = ErrorBody)))]
pub(crate) async fn add_time_off(
    State(s): State<AppState>,
    DoctorCtx(ctx): DoctorCtx,
    ApiJson(body): ApiJson<AddTimeOff>,
) -> Result<(StatusCode, Json<TimeOffAdded>), ApiError> {
    Ok((StatusCode::CREATED, Json(s.bus.request(&ctx, &body).await?)))
}

/// Remove one of the caller's time off periods.
#[utoipa::path(delete, path = "/api/doctors/me/time-off/{id}", tag = "doctors", security(("bearer" = [])),
    params(("id" = String, Path, description = "Time off id"), VersionQuery),
    responses((status = 204, description = "Removed"),
        (status = 403, description = "Not an active doctor", body = ErrorBody),
        (status = 404, description = "No such time off period of the caller", body = ErrorBody),
        (status = 409, description = "`expected_version` is not the current version", body = ErrorBody)))]
pub(crate) async fn remove_time_off(
    State(s): State<AppState>,
    DoctorCtx(ctx): DoctorCtx,
    ApiPath(time_off_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<VersionQuery>,
) -> Result<StatusCode, ApiError> {
    let req = RemoveTimeOff {
        time_off_id,
        expected_version: q.expected_version,
    };
    s.bus.request(&ctx, &req).await?;
    Ok(StatusCode::NO_CONTENT)
}
