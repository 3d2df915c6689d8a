//! Sign-up, sessions and passwords: each handler forwards one request to the auth service.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, AuthCtx, Ctx, OptionalJson};
use crate::session::{self, TokenTransport};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use carehub_nats::auth::{
    Accepted, ChangePassword, Done, Login, Logout, Me, PasswordResetConfirm, PasswordResetRequest,
    Refresh, Register, Session, SignupRole, UpdateMe, User,
};
use serde::Deserialize;
use utoipa::ToSchema;

/// Sign up. The wire type is [`Register`]; this mirrors it with the limits auth enforces, so the
/// OpenAPI document states them.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct RegisterBody {
    #[schema(format = Email, max_length = 254)]
    pub(crate) email: String,
    /// 10 to 128 characters, not the email address.
    #[schema(min_length = 10, max_length = 128)]
    pub(crate) password: String,
    /// 1 to 100 printable characters, not only spaces.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub(crate) display_name: String,
    /// Default `patient`; doctors wait for an admin's approval.
    #[serde(default)]
    pub(crate) role: Option<SignupRole>,
    /// The IANA time zone the account's mails and reminders are written in (the web client
    /// sends the browser's); default `UTC`. An unknown zone is a 422 `validation_failed`.
    #[serde(default, deserialize_with = "zone_name")]
    #[schema(schema_with = carehub_nats::time::time_zone_schema)]
    pub(crate) time_zone: Option<String>,
}

impl From<RegisterBody> for Register {
    fn from(b: RegisterBody) -> Self {
        Self {
            email: b.email,
            password: b.password,
            display_name: b.display_name,
            role: b.role.unwrap_or(SignupRole::Patient),
            time_zone: b.time_zone,
        }
    }
}

/// Change the caller's own account; a field left out stays as it is.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct UpdateMeBody {
    /// The IANA time zone the account's mails and reminders are written in.
    #[serde(default, deserialize_with = "zone_name")]
    #[schema(schema_with = carehub_nats::time::time_zone_schema)]
    pub(crate) time_zone: Option<String>,
}

/// A time zone field that may be left out but, when present, is a name: `null` is refused like
/// any other value the document does not allow (it states a string).
fn zone_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

/// Ask for a password reset mail.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ResetRequestBody {
    #[expect(
        dead_code,
        reason = "the OpenAPI document's schema of the body; the handler reads it as PasswordResetRequest"
    )]
    #[schema(format = Email, max_length = 254)]
    pub(crate) email: String,
}

/// Set a new password with the token from the reset mail.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ResetConfirmBody {
    pub(crate) token: String,
    #[schema(min_length = 10, max_length = 128)]
    pub(crate) new_password: String,
}

/// Log in with email and password.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct LoginBody {
    pub(crate) email: String,
    pub(crate) password: String,
    /// Where to put the refresh token; default `cookie`.
    #[serde(default)]
    pub(crate) refresh_token_in: TokenTransport,
}

/// Exchange a refresh token (from this body or the `carehub_refresh` cookie) for a new session.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub(crate) struct RefreshBody {
    #[serde(default)]
    pub(crate) refresh_token: Option<String>,
    #[serde(default)]
    pub(crate) refresh_token_in: TokenTransport,
}

/// Optionally name the refresh token whose session ends (else the cookie's).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub(crate) struct LogoutBody {
    #[serde(default)]
    pub(crate) refresh_token: Option<String>,
}

/// Change the caller's password; the answer is a new session.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ChangePasswordBody {
    pub(crate) current_password: String,
    #[schema(min_length = 10, max_length = 128)]
    pub(crate) new_password: String,
    #[serde(default)]
    pub(crate) refresh_token_in: TokenTransport,
}

/// Sign up as a patient or a doctor (doctors wait for an admin's approval).
#[utoipa::path(post, path = "/api/auth/register", tag = "auth",
    request_body(content = inline(RegisterBody), description = "The new account"),
    responses((status = 202, description = "Accepted (the same whether or not the email is known)", body = Accepted)))]
pub(crate) async fn register(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    ApiJson(body): ApiJson<RegisterBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let req = Register::from(body);
    Ok((StatusCode::ACCEPTED, Json(s.bus.request(&ctx, &req).await?)))
}

/// Log in. The refresh token goes in an HttpOnly cookie unless `refresh_token_in` is `body`.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth",
    request_body(content = inline(LoginBody), description = "Credentials"),
    responses((status = 200, description = "Logged in", body = Session),
        (status = 401, description = "Wrong email or password", body = ErrorBody)))]
pub(crate) async fn login(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Response, ApiError> {
    let req = Login {
        email: body.email,
        password: body.password,
    };
    let session = s.bus.request(&ctx, &req).await?;
    session::respond(session, body.refresh_token_in, s.cfg.cookie_secure)
}

/// Exchange a refresh token (cookie or body) for a new session; the old token is used up.
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth",
    request_body(content = Option<RefreshBody>, description = "Optional when the cookie is sent"),
    responses((status = 200, description = "A new session", body = Session),
        (status = 401, description = "Missing, unknown, expired or reused refresh token", body = ErrorBody)))]
pub(crate) async fn refresh(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<RefreshBody>,
) -> Result<Response, ApiError> {
    let body = body.unwrap_or_default();
    let refresh_token = body
        .refresh_token
        .filter(|t| !t.is_empty())
        .or_else(|| session::read_cookie(&headers))
        .ok_or_else(|| ApiError::unauthorized("missing refresh token"))?;
    let session = s.bus.request(&ctx, &Refresh { refresh_token }).await?;
    session::respond(session, body.refresh_token_in, s.cfg.cookie_secure)
}

/// End the caller's session and clear the refresh cookie.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", security(("bearer" = [])),
    request_body(content = Option<LogoutBody>, description = "Optional"),
    responses((status = 200, description = "Logged out", body = Done)))]
pub(crate) async fn logout(
    State(s): State<AppState>,
    AuthCtx(ctx): AuthCtx,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<LogoutBody>,
) -> Result<Response, ApiError> {
    let refresh_token = body
        .and_then(|b| b.refresh_token)
        .filter(|t| !t.is_empty())
        .or_else(|| session::read_cookie(&headers));
    let done = s.bus.request(&ctx, &Logout { refresh_token }).await?;
    let clear = session::clear_cookie(s.cfg.cookie_secure)?;
    Ok(([(header::SET_COOKIE, clear)], Json(done)).into_response())
}

/// The caller's own account.
#[utoipa::path(get, path = "/api/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, description = "The caller's account", body = User)))]
pub(crate) async fn me(
    State(s): State<AppState>,
    AuthCtx(ctx): AuthCtx,
) -> Result<Json<User>, ApiError> {
    Ok(Json(s.bus.request(&ctx, &Me {}).await?))
}

/// Change the caller's own account: its time zone, which mails and reminders are written in.
/// Other services learn of it from the `updated` account event.
#[utoipa::path(patch, path = "/api/me", tag = "auth", security(("bearer" = [])),
    request_body = UpdateMeBody,
    responses((status = 200, description = "The account as changed", body = User),
        (status = 422, description = "`validation_failed`: `time_zone` is not a known IANA time zone", body = ErrorBody)))]
pub(crate) async fn update_me(
    State(s): State<AppState>,
    AuthCtx(ctx): AuthCtx,
    ApiJson(body): ApiJson<UpdateMeBody>,
) -> Result<Json<User>, ApiError> {
    let req = UpdateMe {
        time_zone: body.time_zone,
    };
    Ok(Json(s.bus.request(&ctx, &req).await?))
}

/// Change the caller's password; every other session ends and a new one is issued.
#[utoipa::path(post, path = "/api/auth/password/change", tag = "auth", security(("bearer" = [])),
    request_body = ChangePasswordBody,
    responses((status = 200, description = "Changed; a new session", body = Session)))]
pub(crate) async fn change_password(
    State(s): State<AppState>,
    AuthCtx(ctx): AuthCtx,
    ApiJson(body): ApiJson<ChangePasswordBody>,
) -> Result<Response, ApiError> {
    let req = ChangePassword {
        current_password: body.current_password,
        new_password: body.new_password,
    };
    let session = s.bus.request(&ctx, &req).await?;
    session::respond(session, body.refresh_token_in, s.cfg.cookie_secure)
}

/// Ask for a password reset mail (the answer does not reveal whether the email is known).
#[utoipa::path(post, path = "/api/auth/password/reset-request", tag = "auth",
    request_body = ResetRequestBody,
    responses((status = 202, description = "Accepted", body = Accepted)))]
pub(crate) async fn reset_request(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    ApiJson(body): ApiJson<PasswordResetRequest>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    Ok((
        StatusCode::ACCEPTED,
        Json(s.bus.request(&ctx, &body).await?),
    ))
}

/// Set a new password with the token from the reset mail.
#[utoipa::path(post, path = "/api/auth/password/reset-confirm", tag = "auth",
    request_body = ResetConfirmBody,
    responses((status = 200, description = "Password set", body = Accepted),
        (status = 401, description = "Unknown, used or expired reset token", body = ErrorBody)))]
pub(crate) async fn reset_confirm(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    ApiJson(body): ApiJson<ResetConfirmBody>,
) -> Result<Json<Accepted>, ApiError> {
    let req = PasswordResetConfirm {
        token: body.token,
        new_password: body.new_password,
    };
    Ok(Json(s.bus.request(&ctx, &req).await?))
}
