//! Appointments, offers, doctor groups and the audit trail: each handler checks the caller's
//! role where that is simple, then forwards one request to the admin service, which owns
//! appointments and checks ownership (someone else's appointment is 404 there).
//!
//! Bodies mirror the wire types of [`carehub_nats::appointment`] with the limits stated, so the
//! OpenAPI document says what is accepted; the same limits are checked here before the call.
//! Idempotency keys come from the `Idempotency-Key` header, group versions from `If-Match`.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{AdminCtx, ApiJson, ApiPath, ApiQuery, AuthCtx};
use crate::state::{AppState, Forwarded};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use carehub_nats::appointment::{
    AcceptOffer, AdminDecline, AdminReroute, AnswerProposal, Appointment, AppointmentDetail,
    AppointmentPage, AppointmentStatus, AuditPage, BookSlot, CancelAppointment,
    CompleteAppointment, DeclineOffer, GetAppointment, Group, GroupList, ListAppointments,
    ListAudit, ListGroups, ListMyOffers, MarkNoShow, OfferList, ProposeTime, RequestAppointment,
    RequestReschedule, SaveGroup, Strategy, Target,
};
use carehub_nats::{CallContext, ErrorCode, Role, UserStatus};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

/// Longest reason: of a request or booking, a decline, a cancellation or an admin decline.
const MAX_REASON: usize = 1000;
/// Longest visit notes.
const MAX_NOTES: usize = 5000;
/// Longest group name.
const MAX_GROUP_NAME: usize = 100;
/// Most members of one group.
const MAX_MEMBERS: usize = 50;
/// Longest accept deadline of a group: one week.
const MAX_ACCEPT_DEADLINE_SECS: i64 = 7 * 86_400;

/// One line of text: not only spaces, no control characters (what [`text`] accepts on one line).
const LINE: &str = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$";

/// The schema of every `reason` field: one [`LINE`] of 1 to [`MAX_REASON`] characters. Only a
/// schema (`#[schema(value_type = ReasonText, inline)]`); the field stays a `String`.
struct ReasonText;

impl utoipa::PartialSchema for ReasonText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_REASON))
            .pattern(Some(LINE))
            .description(Some(format!(
                "1 to {MAX_REASON} characters on one line, not only spaces."
            )))
            .into()
    }
}

impl utoipa::ToSchema for ReasonText {}

/// A patient asks for an appointment with a doctor, a group or a specialty inside a preferred
/// window, saying why they come (`reason`). Repeating the call with the same `Idempotency-Key`
/// returns the first result.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct RequestBody {
    #[schema(schema_with = target_schema)]
    pub(crate) target: Target,
    /// RFC 3339; the window must end in the future and be at most 31 days long.
    #[schema(format = DateTime)]
    pub(crate) window_start: String,
    /// RFC 3339, after `window_start`.
    #[schema(format = DateTime)]
    pub(crate) window_end: String,
    #[schema(value_type = ReasonText, inline)]
    pub(crate) reason: String,
}

/// A patient books a free slot of a doctor who lets patients book directly.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct BookBody {
    /// An approved doctor who takes direct bookings (`auto_accept` in their profile); any
    /// other id is 422.
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,100}$")]
    pub(crate) doctor_id: String,
    /// RFC 3339; must lie in the future and be a slot start of the doctor's availability
    /// (see `GET /api/doctors/{id}/slots`) that is still free.
    #[schema(format = DateTime)]
    pub(crate) start: String,
    #[schema(value_type = ReasonText, inline)]
    pub(crate) reason: String,
}

/// A doctor accepts their offer and fixes the time.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct AcceptBody {
    /// RFC 3339; must lie in the future and be a slot start of the caller's availability
    /// (inside the patient's window, when accepting).
    #[schema(format = DateTime)]
    pub(crate) start: String,
}

/// A new preferred window for a confirmed appointment.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct RescheduleBody {
    /// RFC 3339; the window must end in the future and be at most 31 days long.
    #[schema(format = DateTime)]
    pub(crate) window_start: String,
    /// RFC 3339, after `window_start`.
    #[schema(format = DateTime)]
    pub(crate) window_end: String,
}

/// The patient's answer to a proposed time.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ProposalAnswerBody {
    pub(crate) accept: bool,
}

/// Why (kept with the appointment and told to the people concerned).
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ReasonBody {
    #[schema(value_type = ReasonText, inline)]
    pub(crate) reason: String,
}

/// The doctor's notes on a visit.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct NotesBody {
    /// 1 to 5000 characters; may span lines.
    #[schema(
        min_length = 1,
        max_length = 5000,
        pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
    )]
    pub(crate) notes: String,
}

/// Where an admin sends an open request instead.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct RerouteBody {
    #[schema(schema_with = target_schema)]
    pub(crate) target: Target,
}

/// A doctor group and its routing rule.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct GroupBody {
    /// 1 to 100 characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub(crate) name: String,
    /// The specialty this group routes (a lowercase slug such as `family-medicine`); at most
    /// one group per specialty.
    #[serde(default)]
    #[schema(max_length = 64, pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$")]
    pub(crate) specialty: Option<String>,
    pub(crate) strategy: Strategy,
    /// Seconds a member has to accept an offer, 1 to 604800 (a week).
    #[schema(minimum = 1, maximum = 604_800)]
    pub(crate) accept_deadline_secs: i64,
    /// Member doctor ids in order (the order breaks least-loaded ties); 1 to 50, no repeats.
    #[schema(schema_with = member_ids)]
    pub(crate) members: Vec<String>,
}

/// The schema of a [`Target`]: an object with exactly one of `doctor`, `group` (ids) or
/// `specialty` (a slug).
fn target_schema() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::AdditionalProperties;
    use utoipa::openapi::{ObjectBuilder, OneOfBuilder, Type};
    let one = |key: &str, max: usize, pattern: &str, description: &str| {
        ObjectBuilder::new()
            .property(
                key,
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .max_length(Some(max))
                    .pattern(Some(pattern))
                    .description(Some(description)),
            )
            .required(key)
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
    };
    OneOfBuilder::new()
        .item(one(
            "doctor",
            100,
            r"^[A-Za-z0-9_-]{1,100}$",
            "A doctor's user id",
        ))
        .item(one("group", 100, r"^[A-Za-z0-9_-]{1,100}$", "A group id"))
        .item(one(
            "specialty",
            64,
            r"^[a-z0-9]+(-[a-z0-9]+)*$",
            "A specialty slug such as `cardiology`",
        ))
        .description(Some("Exactly one of a doctor, a group or a specialty"))
        .build()
        .into()
}

/// The schema of [`GroupBody::members`] (the derive cannot state `uniqueItems`).
fn member_ids() -> utoipa::openapi::Array {
    use utoipa::openapi::{ArrayBuilder, ObjectBuilder, Type};
    let id = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(r"^[A-Za-z0-9_-]{1,100}$"))
        .description(Some("A doctor's user id"));
    ArrayBuilder::new()
        .items(id)
        .min_items(Some(1))
        .max_items(Some(MAX_MEMBERS))
        .unique_items(true)
        .build()
}

/// Filters and paging for the appointment list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    #[param(inline)]
    pub(crate) status: Option<AppointmentStatus>,
    /// Page size, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub(crate) limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = r"^[A-Za-z0-9_-]{1,100}$")]
    pub(crate) cursor: Option<String>,
}

/// Filters and paging for the audit trail.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// Entries about this user's data.
    #[param(pattern = r"^[A-Za-z0-9_-]{1,100}$")]
    pub(crate) subject_id: Option<String>,
    /// Entries by this user.
    #[param(pattern = r"^[A-Za-z0-9_-]{1,100}$")]
    pub(crate) actor_id: Option<String>,
    /// Page size, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub(crate) limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = r"^[A-Za-z0-9_-]{1,100}$")]
    pub(crate) cursor: Option<String>,
}

/// The appointment an `{id}` route names.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct AppointmentPath {
    /// Appointment id
    #[param(pattern = r"^[A-Za-z0-9_-]{1,100}$")]
    id: String,
}

impl AppointmentPath {
    /// The id; anything that cannot be an id names nothing (404).
    fn id(self) -> Result<String, ApiError> {
        path_id(self.id)
    }
}

// ---- Checks at the edge -------------------------------------------------------------------

/// Lets only active users of `role` through; anyone else gets 403 `forbidden`.
fn require(ctx: &CallContext, role: Role, what: &str) -> Result<(), ApiError> {
    match &ctx.principal {
        Some(p) if p.role == role && p.status == UserStatus::Active => Ok(()),
        _ => Err(ApiError::forbidden(format!("only {what} may do this"))),
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::ValidationFailed, message)
}

/// A typed text: 1..=`max` characters, not only spaces, no control characters (but line
/// breaks and tabs where `multiline`): what the bodies' `pattern`s and lengths state.
fn text(field: &str, s: &str, max: usize, multiline: bool) -> Result<(), ApiError> {
    let allowed = |c: char| !c.is_control() || (multiline && matches!(c, '\n' | '\r' | '\t'));
    let ok =
        s.chars().count() <= max && s.chars().all(allowed) && s.chars().any(|c| !c.is_whitespace());
    ok.then_some(()).ok_or_else(|| {
        invalid(format!(
            "{field}: 1 to {max} characters, not only spaces, no control characters"
        ))
    })
}

/// Whether `s` is an id, cursor or key: 1 to 100 of `A-Za-z0-9_-`.
fn is_token(s: &str) -> bool {
    (1..=100).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// An id from the path: anything that cannot be an id names nothing.
fn path_id(id: String) -> Result<String, ApiError> {
    if is_token(&id) {
        Ok(id)
    } else {
        Err(ApiError::not_found())
    }
}

/// An id, cursor or key from a query or body; malformed ones are 400 `bad_request`.
fn token(field: &str, s: Option<String>) -> Result<Option<String>, ApiError> {
    match s {
        Some(v) if !is_token(&v) => Err(ApiError::bad_request(format!(
            "{field}: 1 to 100 letters, digits, '_' or '-'"
        ))),
        other => Ok(other),
    }
}

fn limit(l: Option<u32>) -> Result<Option<u32>, ApiError> {
    match l {
        Some(n) if !(1..=100).contains(&n) => Err(invalid("limit: 1 to 100")),
        other => Ok(other),
    }
}

fn target(t: &Target) -> Result<(), ApiError> {
    match t {
        Target::Doctor(id) | Target::Group(id) if !is_token(id) => {
            Err(invalid("target: not a doctor or group id"))
        }
        Target::Specialty(s) if !is_slug(s) => {
            Err(invalid("target: a specialty is a lowercase slug"))
        }
        _ => Ok(()),
    }
}

fn is_slug(s: &str) -> bool {
    s.len() <= 64
        && !s.is_empty()
        && s.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// The `Idempotency-Key` header: `None` when absent, 400 when malformed.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => match v.to_str() {
            Ok(s) if is_token(s) => Ok(Some(s.to_owned())),
            _ => Err(ApiError::bad_request(
                "Idempotency-Key: 1 to 100 letters, digits, '_' or '-'",
            )),
        },
    }
}

/// The `Idempotency-Key` header where it is required.
fn required_idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    idempotency_key(headers)?.ok_or_else(|| {
        ApiError::bad_request("Idempotency-Key header required: a key unique to this request")
    })
}

/// The version from `If-Match: "<version>"` (400 when absent or malformed).
fn if_match_version(headers: &HeaderMap) -> Result<i64, ApiError> {
    let bad = || ApiError::bad_request("If-Match header required: the group's version, e.g. \"3\"");
    let v = headers.get("if-match").ok_or_else(bad)?;
    let s = v.to_str().map_err(|_| bad())?.trim();
    let inner = s
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .ok_or_else(bad)?;
    if inner.is_empty() || inner.len() > 15 || !inner.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    inner.parse().map_err(|_| bad())
}

fn save_group(
    body: GroupBody,
    id: Option<String>,
    expected_version: Option<i64>,
) -> Result<SaveGroup, ApiError> {
    text("name", &body.name, MAX_GROUP_NAME, false)?;
    if body.specialty.as_deref().is_some_and(|s| !is_slug(s)) {
        return Err(invalid(
            "specialty: a lowercase slug such as family-medicine",
        ));
    }
    if !(1..=MAX_ACCEPT_DEADLINE_SECS).contains(&body.accept_deadline_secs) {
        return Err(invalid("accept_deadline_secs: 1 to 604800"));
    }
    let members = body.members;
    if members.is_empty() || members.len() > MAX_MEMBERS {
        return Err(invalid("members: 1 to 50 doctor ids"));
    }
    if members.iter().any(|m| !is_token(m)) {
        return Err(invalid("members: not a doctor id"));
    }
    let mut seen = std::collections::HashSet::new();
    if !members.iter().all(|m| seen.insert(m.as_str())) {
        return Err(invalid("members: a doctor is listed twice"));
    }
    Ok(SaveGroup {
        id,
        name: body.name,
        specialty: body.specialty,
        strategy: body.strategy,
        accept_deadline_secs: body.accept_deadline_secs,
        members,
        expected_version,
    })
}

// ---- Patients -----------------------------------------------------------------------------

/// Request an appointment (patients). The request is routed to the doctor, the group or the
/// specialty's group; it reads `requested` or `offered` until a doctor accepts.
#[utoipa::path(post, path = "/api/appointments", tag = "appointments", security(("bearer" = [])),
    params(("Idempotency-Key" = String, Header, description = "A key unique to this request; repeating it returns the first result",
        pattern = r"^[A-Za-z0-9_-]{1,100}$")),
    request_body(content = inline(RequestBody), description = "The request"),
    responses((status = 201, description = "The appointment as requested", body = Appointment),
        (status = 400, description = "Malformed JSON, or `Idempotency-Key` missing or malformed", body = ErrorBody),
        (status = 403, description = "Not an active patient", body = ErrorBody),
        (status = 409, description = "`conflict`: the first request with this key is still being processed; retry shortly", body = ErrorBody),
        (status = 422, description = "`validation_failed`: a field is invalid (the window is reversed, in the past, too long or too soon, or the doctor, group or specialty is unknown); `idempotency_key_reused`: the key was used for a different request", body = ErrorBody)))]
pub(crate) async fn request(
    State(s): State<AppState>,
    AuthCtx(ctx): AuthCtx,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RequestBody>,
) -> Result<(StatusCode, Json<Appointment>), ApiError> {
    require(&ctx, Role::Patient, "patients")?;
    let idempotency_key = Some(required_idempotency_key(&headers)?);
    target(&body.target)?;
    text("reason", &body.reason, MAX_REASON, false)?;
    let req = RequestAppointment {
        target: body.target,
        window_start: body.window_start,
        window_end: body.window_end,
        reason: body.reason,
        idempotency_key,
    };
    Ok((StatusCode::CREATED, Json(s.bus.request(&ctx, &req).await?)))
}

/// Book a free slot of a doctor who lets patients book directly (patients): confirmed at once.
#[utoipa::path(post, path = "/api/appointments/book", tag = "appointments", security(("bearer" = [])),
    params(("Idempotency-Key" = String, Header, description = "A key unique to this booking; repeating it returns the first result",
        pattern = r"^[A-Za-z0-9_-]{1,100}$")),
    request_body(content = inline(BookBody), description = "The slot"),
    responses((status = 201, description = "The confirmed appointment", body = Appointment),
        (status = 400, description = "Malformed JSON, or `Idempotency-Key` missing or malformed", body = ErrorBody),
        (status = 403, description = "Not an active patient", body = ErrorBody),
        (status = 409, description = "`slot_taken`: another appointment holds the time; `patient_busy`: the caller has a confirmed appointment at that time; `conflict`: the first request with this key is still being processed", body = ErrorBody),
        (status = 422, description = "`validation_failed`: an unknown doctor, one who does not take direct bookings, or a time outside their hours; `off_slot_grid`: not a slot start of the doctor's availability that day; `idempotency_key_reused`: the key was used for a different booking", body = ErrorBody)))]
pub(crate) async fn book(
    State(s): State<AppState>,
    AuthCtx(ctx): AuthCtx,
    headers: HeaderMap,
    ApiJson(body): ApiJson<BookBody>,
) -> Result<(StatusCode, Json<Appointment>), ApiError> {
    require(&ctx, Role::Patient, "patients")?;
    let idempotency_key = Some(required_idempotency_key(&headers)?);
    if !is_token(&body.doctor_id) {
        return Err(invalid("doctor_id: unknown doctor"));
    }
    text("reason", &body.reason, MAX_REASON, false)?;
    let req = BookSlot {
        doctor_id: body.doctor_id,
        start: body.start,
        reason: body.reason,
        idempotency_key,
    };
    Ok((StatusCode::CREATED, Json(s.bus.request(&ctx, &req).await?)))
}

// ---- Everyone signed in -------------------------------------------------------------------

/// The caller's appointments, newest first: a patient's own, a doctor's own and those offered
/// to them; admins see all.
#[utoipa::path(get, path = "/api/appointments", tag = "appointments", security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, description = "A page of appointments", body = AppointmentPage),
        (status = 422, description = "`limit` outside 1..=100", body = ErrorBody)))]
pub(crate) async fn list(
    State(s): State<AppState>,
    AuthCtx(ctx): AuthCtx,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Forwarded<AppointmentPage>, ApiError> {
    let req = ListAppointments {
        status: q.status,
        limit: limit(q.limit)?,
        cursor: token("cursor", q.cursor)?,
    };
    s.forward(&ctx, &req).await
}

/// One appointment with its offers. Someone else's appointment is 404.
#[utoipa::path(get, path = "/api/appointments/{id}", tag = "appointments", security(("bearer" = [])),
    params(AppointmentPath),
    responses((status = 200, description = "The appointment and its offers", body = AppointmentDetail),
        (status = 404, description = "No such appointment, or not the caller's", body = ErrorBody)))]
pub(crate) async fn get(
    State(s): State<AppState>,
    AuthCtx(ctx): AuthCtx,
    ApiPath(path): ApiPath<AppointmentPath>,
) -> Result<Json<AppointmentDetail>, ApiError> {
    let req = GetAppointment { id: path.id()? };
    Ok(Json(s.bus.request(&ctx, &req).await?))
}

/// Cancel an open appointment (its patient or doctor before the start; admins any time).
#[utoipa::path(post, path = "/api/appointments/{id}/cancel", tag = "appointments", security(("bearer" = [])),
    params(AppointmentPath),
    request_body(content = inline(ReasonBody), description = "Why"),
    responses((status = 200, description = "The cancelled appointment", body = Appointment),
        (status = 404, description = "No such appointment, or not the caller's", body = ErrorBody),
        (status = 409, description = "Not cancellable any more (closed, started, or changed meanwhile)", body = ErrorBody)))]
pub(crate) async fn cancel(
    State(s): State<AppState>,
    AuthCtx(ctx): AuthCtx,
    ApiPath(path): ApiPath<AppointmentPath>,
    ApiJson(body): ApiJson<ReasonBody>,
) -> Result<Json<Appointment>, ApiError> {
    let id = path.id()?;
    text("reason", &body.reason, MAX_REASON, false)?;
    let req = CancelAppointment {
        id,
        reason: body.reason,
    };
    Ok(Json(s.bus.request(&ctx, &req).await?))
}

// ---- Doctors ------------------------------------------------------------------------------

/// The caller's pending offers, oldest deadline first (doctors).
#[utoipa::path(get, path = "/api/offers", tag = "appointments", security(("bearer" = [])),
    responses((status = 200, description = "Pending offers with their appointments", body = OfferList),
        (status = 403, description = "Not an active doctor", body = ErrorBody)))]
pub(crate) async fn offers(
    State(s): State<AppState>,
    AuthCtx(ctx): AuthCtx,
) -> Result<Json<OfferList>, ApiError> {
    require(&ctx, Role::Doctor, "doctors")?;
    Ok(Json(s.bus.request(&ctx, &ListMyOffers {}).await?))
}

/// Accept an offer and fix the time (doctors). The first accept of a broadcast wins; the
/// other offers are withdrawn.
#[utoipa::path(post, path = "/api/appointments/{id}/accept", tag = "appointments", security(("bearer" = [])),
    params(AppointmentPath,
        ("Idempotency-Key" = Option<String>, Header, nullable = false, description = "Repeating an accept with the same key returns the first result",
        pattern = r"^[A-Za-z0-9_-]{1,100}$")),
    request_body(content = inline(AcceptBody), description = "The start"),
    responses((status = 200, description = "The confirmed appointment", body = Appointment),
        (status = 400, description = "Malformed JSON, or a malformed `Idempotency-Key`", body = ErrorBody),
        (status = 403, description = "Not an active doctor", body = ErrorBody),
        (status = 404, description = "No such appointment offered to the caller", body = ErrorBody),
        (status = 409, description = "`conflict`: the offer is no longer pending (another doctor accepted, it timed out or was withdrawn); `slot_taken`: the time is taken; `patient_busy`: the patient has another confirmed appointment then", body = ErrorBody),
        (status = 422, description = "`validation_failed`: the start is outside the caller's hours or the patient's window; `off_slot_grid`: not a slot start of the caller's availability that day; `idempotency_key_reused`: the key was used for a different accept", body = ErrorBody)))]
pub(crate) async fn accept(
    State(s): State<AppState>,
    AuthCtx(ctx): AuthCtx,
    ApiPath(path): ApiPath<AppointmentPath>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<AcceptBody>,
) -> Result<Json<Appointment>, ApiError> {
    require(&ctx, Role::Doctor, "doctors")?;
    let req = AcceptOffer {
        appointment_id: path.id()?,
        start: body.start,
        idempotency_key: idempotency_key(&headers)?,
    };
    Ok(Json(s.bus.request(&ctx, &req).await?))
}

/// Decline an offer with a reason (doctors); the request moves on to the next doctor.
#[utoipa::path(post, path = "/api/appointments/{id}/decline", tag = "appointments", security(("bearer" = [])),
    params(AppointmentPath),
    request_body(content = inline(ReasonBody), description = "Why"),
    responses((status = 200, description = "The appointment after the decline", body = Appointment),
        (status = 403, description = "Not an active doctor", body = ErrorBody),
        (status = 404, description = "No such appointment offered to the caller", body = ErrorBody),
        (status = 409, description = "The offer is no longer pending", body = ErrorBody)))]
pub(crate) async fn decline(
    State(s): State<AppState>,
    AuthCtx(ctx): AuthCtx,
    ApiPath(path): ApiPath<AppointmentPath>,
    ApiJson(body): ApiJson<ReasonBody>,
) -> Result<Json<Appointment>, ApiError> {
    require(&ctx, Role::Doctor, "doctors")?;
    let appointment_id = path.id()?;
    text("reason", &body.reason, MAX_REASON, false)?;
    let req = DeclineOffer {
        appointment_id,
        reason: body.reason,
    };
    Ok(Json(s.bus.request(&ctx, &req).await?))
}

/// Ask to move a confirmed appointment into a new window (its patient). The doctor gets an
/// offer and accepts it (`POST …/accept` with a start in the new window) or declines it; the
/// current time holds until then.
#[utoipa::path(post, path = "/api/appointments/{id}/reschedule", tag = "appointments", security(("bearer" = [])),
    params(AppointmentPath),
    request_body(content = inline(RescheduleBody), description = "The new preferred window"),
    responses((status = 200, description = "The appointment with its pending move", body = Appointment),
        (status = 403, description = "Not an active patient", body = ErrorBody),
        (status = 404, description = "No such appointment of the caller", body = ErrorBody),
        (status = 409, description = "Not confirmed, already started, or a move is pending", body = ErrorBody),
        (status = 422, description = "The window is malformed, in the past, too long or starts too soon", body = ErrorBody)))]
pub(crate) async fn reschedule(
    State(s): State<AppState>,
    AuthCtx(ctx): AuthCtx,
    ApiPath(path): ApiPath<AppointmentPath>,
    ApiJson(body): ApiJson<RescheduleBody>,
) -> Result<Json<Appointment>, ApiError> {
    require(&ctx, Role::Patient, "patients")?;
    let req = RequestReschedule {
        id: path.id()?,
        window_start: body.window_start,
        window_end: body.window_end,
    };
    Ok(Json(s.bus.request(&ctx, &req).await?))
}

/// Propose a new time for a confirmed appointment (its doctor); the patient answers.
#[utoipa::path(post, path = "/api/appointments/{id}/propose", tag = "appointments", security(("bearer" = [])),
    params(AppointmentPath),
    request_body(content = inline(AcceptBody), description = "The proposed start"),
    responses((status = 200, description = "The appointment with its pending move", body = Appointment),
        (status = 403, description = "Not an active doctor", body = ErrorBody),
        (status = 404, description = "No such appointment of the caller", body = ErrorBody),
        (status = 409, description = "`conflict`: not confirmed, or a move is pending; `slot_taken` / `patient_busy`: the time is held by another appointment of the doctor or the patient", body = ErrorBody),
        (status = 422, description = "`validation_failed`: not a future time inside the doctor's working hours; `off_slot_grid`: not a slot start of the doctor's availability that day", body = ErrorBody)))]
pub(crate) async fn propose(
    State(s): State<AppState>,
    AuthCtx(ctx): AuthCtx,
    ApiPath(path): ApiPath<AppointmentPath>,
    ApiJson(body): ApiJson<AcceptBody>,
) -> Result<Json<Appointment>, ApiError> {
    require(&ctx, Role::Doctor, "doctors")?;
    let req = ProposeTime {
        id: path.id()?,
        start: body.start,
    };
    Ok(Json(s.bus.request(&ctx, &req).await?))
}

/// Accept or decline the doctor's proposed time (the appointment's patient). Accepting swaps
/// the times in one step.
#[utoipa::path(post, path = "/api/appointments/{id}/proposal", tag = "appointments", security(("bearer" = [])),
    params(AppointmentPath),
    request_body(content = inline(ProposalAnswerBody), description = "Accept or decline"),
    responses((status = 200, description = "The appointment after the answer", body = Appointment),
        (status = 403, description = "Not an active patient", body = ErrorBody),
        (status = 404, description = "No such appointment of the caller", body = ErrorBody),
        (status = 409, description = "`conflict`: no proposal to answer; `slot_taken` / `patient_busy`: the proposed time was taken meanwhile", body = ErrorBody)))]
pub(crate) async fn answer_proposal(
    State(s): State<AppState>,
    AuthCtx(ctx): AuthCtx,
    ApiPath(path): ApiPath<AppointmentPath>,
    ApiJson(body): ApiJson<ProposalAnswerBody>,
) -> Result<Json<Appointment>, ApiError> {
    require(&ctx, Role::Patient, "patients")?;
    let req = AnswerProposal {
        id: path.id()?,
        accept: body.accept,
    };
    Ok(Json(s.bus.request(&ctx, &req).await?))
}

/// Complete a confirmed appointment with notes (its doctor, once it has started).
#[utoipa::path(post, path = "/api/appointments/{id}/complete", tag = "appointments", security(("bearer" = [])),
    params(AppointmentPath),
    request_body(content = inline(NotesBody), description = "Visit notes"),
    responses((status = 200, description = "The completed appointment", body = Appointment),
        (status = 403, description = "Not an active doctor", body = ErrorBody),
        (status = 404, description = "No such appointment of the caller", body = ErrorBody),
        (status = 409, description = "Not confirmed, not started yet, or changed meanwhile", body = ErrorBody)))]
pub(crate) async fn complete(
    State(s): State<AppState>,
    AuthCtx(ctx): AuthCtx,
    ApiPath(path): ApiPath<AppointmentPath>,
    ApiJson(body): ApiJson<NotesBody>,
) -> Result<Json<Appointment>, ApiError> {
    require(&ctx, Role::Doctor, "doctors")?;
    let id = path.id()?;
    text("notes", &body.notes, MAX_NOTES, true)?;
    let req = CompleteAppointment {
        id,
        notes: body.notes,
    };
    Ok(Json(s.bus.request(&ctx, &req).await?))
}

/// Mark a confirmed appointment a no-show (its doctor, once it has started).
#[utoipa::path(post, path = "/api/appointments/{id}/no-show", tag = "appointments", security(("bearer" = [])),
    params(AppointmentPath),
    responses((status = 200, description = "The appointment marked a no-show", body = Appointment),
        (status = 403, description = "Not an active doctor", body = ErrorBody),
        (status = 404, description = "No such appointment of the caller", body = ErrorBody),
        (status = 409, description = "Not confirmed, not started yet, or changed meanwhile", body = ErrorBody)))]
pub(crate) async fn no_show(
    State(s): State<AppState>,
    AuthCtx(ctx): AuthCtx,
    ApiPath(path): ApiPath<AppointmentPath>,
) -> Result<Json<Appointment>, ApiError> {
    require(&ctx, Role::Doctor, "doctors")?;
    let req = MarkNoShow { id: path.id()? };
    Ok(Json(s.bus.request(&ctx, &req).await?))
}

// ---- Admins -------------------------------------------------------------------------------

/// Decline an open request, e.g. one waiting in the admin queue (admins).
#[utoipa::path(post, path = "/api/admin/appointments/{id}/decline", tag = "admin", security(("bearer" = [])),
    params(AppointmentPath),
    request_body(content = inline(ReasonBody), description = "Why"),
    responses((status = 200, description = "The declined appointment", body = Appointment),
        (status = 403, description = "Not an active admin", body = ErrorBody),
        (status = 404, description = "No such appointment", body = ErrorBody),
        (status = 409, description = "Not open any more", body = ErrorBody)))]
pub(crate) async fn admin_decline(
    State(s): State<AppState>,
    AdminCtx(ctx): AdminCtx,
    ApiPath(path): ApiPath<AppointmentPath>,
    ApiJson(body): ApiJson<ReasonBody>,
) -> Result<Json<Appointment>, ApiError> {
    let id = path.id()?;
    text("reason", &body.reason, MAX_REASON, false)?;
    let req = AdminDecline {
        id,
        reason: body.reason,
    };
    Ok(Json(s.bus.request(&ctx, &req).await?))
}

/// Send an open request to another doctor, group or specialty; pending offers are withdrawn
/// (admins).
#[utoipa::path(post, path = "/api/admin/appointments/{id}/reroute", tag = "admin", security(("bearer" = [])),
    params(AppointmentPath),
    request_body(content = inline(RerouteBody), description = "The new target"),
    responses((status = 200, description = "The appointment after re-routing", body = Appointment),
        (status = 403, description = "Not an active admin", body = ErrorBody),
        (status = 404, description = "No such appointment", body = ErrorBody),
        (status = 409, description = "Not open any more", body = ErrorBody),
        (status = 422, description = "The doctor, group or specialty is unknown", body = ErrorBody)))]
pub(crate) async fn admin_reroute(
    State(s): State<AppState>,
    AdminCtx(ctx): AdminCtx,
    ApiPath(path): ApiPath<AppointmentPath>,
    ApiJson(body): ApiJson<RerouteBody>,
) -> Result<Json<Appointment>, ApiError> {
    let id = path.id()?;
    target(&body.target)?;
    let req = AdminReroute {
        id,
        target: body.target,
    };
    Ok(Json(s.bus.request(&ctx, &req).await?))
}

/// Every doctor group (admins).
#[utoipa::path(get, path = "/api/admin/groups", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "The groups", body = GroupList),
        (status = 403, description = "Not an active admin", body = ErrorBody)))]
pub(crate) async fn list_groups(
    State(s): State<AppState>,
    AdminCtx(ctx): AdminCtx,
) -> Result<Json<GroupList>, ApiError> {
    Ok(Json(s.bus.request(&ctx, &ListGroups {}).await?))
}

/// Every doctor group, for anyone signed in: patients book a group by its id.
#[utoipa::path(get, path = "/api/groups", tag = "appointments", security(("bearer" = [])),
    responses((status = 200, description = "The groups", body = GroupList),
        (status = 401, description = "No or bad token", body = ErrorBody)))]
pub(crate) async fn list_groups_public(
    State(s): State<AppState>,
    AuthCtx(ctx): AuthCtx,
) -> Result<Json<GroupList>, ApiError> {
    Ok(Json(s.bus.request(&ctx, &ListGroups {}).await?))
}

/// Create a doctor group (admins).
#[utoipa::path(post, path = "/api/admin/groups", tag = "admin", security(("bearer" = [])),
    request_body(content = inline(GroupBody), description = "The group"),
    responses((status = 201, description = "The new group (version 1)", body = Group),
        (status = 403, description = "Not an active admin", body = ErrorBody),
        (status = 409, description = "Another group already routes the specialty", body = ErrorBody),
        (status = 422, description = "A field is invalid, or a member is not a known doctor", body = ErrorBody)))]
pub(crate) async fn create_group(
    State(s): State<AppState>,
    AdminCtx(ctx): AdminCtx,
    ApiJson(body): ApiJson<GroupBody>,
) -> Result<(StatusCode, Json<Group>), ApiError> {
    let req = save_group(body, None, None)?;
    Ok((StatusCode::CREATED, Json(s.bus.request(&ctx, &req).await?)))
}

/// Replace a doctor group, if it is still at the version read (admins).
#[utoipa::path(put, path = "/api/admin/groups/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "Group id", pattern = r"^[A-Za-z0-9_-]{1,100}$"),
        ("If-Match" = String, Header, description = "The version read, quoted: `\"3\"`", pattern = r#"^"[0-9]{1,15}"$"#)),
    request_body(content = inline(GroupBody), description = "The group"),
    responses((status = 200, description = "The group after the change", body = Group),
        (status = 400, description = "Malformed JSON, or `If-Match` missing or malformed", body = ErrorBody),
        (status = 403, description = "Not an active admin", body = ErrorBody),
        (status = 404, description = "No such group", body = ErrorBody),
        (status = 409, description = "The group changed since it was read, or another group routes the specialty", body = ErrorBody),
        (status = 422, description = "A field is invalid, or a member is not a known doctor", body = ErrorBody)))]
pub(crate) async fn replace_group(
    State(s): State<AppState>,
    AdminCtx(ctx): AdminCtx,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<GroupBody>,
) -> Result<Json<Group>, ApiError> {
    let id = path_id(id)?;
    let version = if_match_version(&headers)?;
    let req = save_group(body, Some(id), Some(version))?;
    Ok(Json(s.bus.request(&ctx, &req).await?))
}

/// The audit trail, newest first (admins).
#[utoipa::path(get, path = "/api/admin/audit", tag = "admin", security(("bearer" = [])),
    params(AuditQuery),
    responses((status = 200, description = "A page of audit entries", body = AuditPage),
        (status = 403, description = "Not an active admin", body = ErrorBody),
        (status = 422, description = "`limit` outside 1..=100", body = ErrorBody)))]
pub(crate) async fn audit(
    State(s): State<AppState>,
    AdminCtx(ctx): AdminCtx,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let req = ListAudit {
        subject_id: token("subject_id", q.subject_id)?,
        actor_id: token("actor_id", q.actor_id)?,
        limit: limit(q.limit)?,
        cursor: token("cursor", q.cursor)?,
    };
    Ok(Json(s.bus.request(&ctx, &req).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    /// Printable text that may span lines, with at least one non-space character.
    const TEXT: &str = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$";
    /// Ids, cursors and keys: the characters of UUIDs and opaque tokens.
    const TOKEN: &str = r"^[A-Za-z0-9_-]{1,100}$";
    /// A specialty slug, as the doctor service normalizes them.
    const SLUG: &str = r"^[a-z0-9]+(-[a-z0-9]+)*$";

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn texts_need_a_visible_character_and_no_control_characters() {
        assert!(text("reason", "checkup", 10, false).is_ok());
        assert!(text("reason", "   ", 10, false).is_err());
        assert!(text("reason", "", 10, false).is_err());
        assert!(text("reason", "a\nb", 10, false).is_err());
        assert!(text("notes", "a\nb", 10, true).is_ok());
        assert!(text("notes", "a\u{0}b", 10, true).is_err());
        assert!(text("reason", &"é".repeat(10), 10, false).is_ok());
        assert!(text("reason", &"é".repeat(11), 10, false).is_err());
    }

    #[test]
    fn if_match_carries_a_quoted_version() {
        assert_eq!(if_match_version(&headers("if-match", "\"3\"")).unwrap(), 3);
        for bad in [
            "3",
            "\"\"",
            "W/\"3\"",
            "*",
            "\"-1\"",
            "\"1234567890123456\"",
        ] {
            let e = if_match_version(&headers("if-match", bad)).unwrap_err();
            assert_eq!(e.code, ErrorCode::BadRequest, "{bad}");
        }
        assert!(if_match_version(&HeaderMap::new()).is_err());
    }

    #[test]
    fn idempotency_keys_are_short_tokens() {
        assert_eq!(idempotency_key(&HeaderMap::new()).unwrap(), None);
        assert_eq!(
            idempotency_key(&headers("idempotency-key", "a-b_C9")).unwrap(),
            Some("a-b_C9".into())
        );
        assert!(idempotency_key(&headers("idempotency-key", "a b")).is_err());
        assert!(idempotency_key(&headers("idempotency-key", &"k".repeat(101))).is_err());
        assert!(required_idempotency_key(&HeaderMap::new()).is_err());
    }

    #[test]
    fn slugs_and_targets_are_checked() {
        assert!(is_slug("family-medicine"));
        assert!(!is_slug("Family Medicine"));
        assert!(!is_slug("a--b"));
        assert!(!is_slug("-a"));
        assert!(target(&Target::Specialty("cardiology".into())).is_ok());
        assert!(target(&Target::Doctor("0190-abc".into())).is_ok());
        assert!(target(&Target::Group("a/b".into())).is_err());
    }

    #[test]
    fn group_members_must_be_distinct_ids() {
        let body = |members: &[&str]| GroupBody {
            name: "Cardiology".into(),
            specialty: Some("cardiology".into()),
            strategy: Strategy::Broadcast,
            accept_deadline_secs: 60,
            members: members.iter().map(|m| (*m).to_owned()).collect(),
        };
        let ok = save_group(body(&["a", "b"]), None, None).unwrap();
        assert_eq!(ok.members, ["a", "b"]);
        assert!(save_group(body(&["a", "a"]), None, None).is_err());
        assert!(save_group(body(&[]), None, None).is_err());
        assert!(save_group(body(&["a b"]), None, None).is_err());
    }

    #[test]
    fn the_schema_patterns_are_the_checked_rules() {
        // The patterns are written out in the attributes too; keep them equal.
        let doc = serde_json::to_value(crate::openapi::openapi()).unwrap();
        let text = doc.to_string();
        for p in [LINE, TEXT, TOKEN, SLUG] {
            let quoted = serde_json::to_string(p).unwrap();
            assert!(text.contains(&quoted), "{p} not in the document");
        }
    }
}
