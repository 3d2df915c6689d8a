//! Account administration. Only active admins pass the edge check ([`AdminCtx`]); auth checks
//! again, since it trusts nobody's claims but its own.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{AdminCtx, ApiPath, ApiQuery, OptionalJson};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use carehub_nats::auth::{
    AdminGetUser, AdminListUsers, AdminSetUserStatus, StatusAction, User, UserPage,
};
use carehub_nats::{CallContext, Role, UserStatus};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

/// A role to filter by.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RoleFilter {
    Patient,
    Doctor,
    Admin,
}

/// A status to filter by.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StatusFilter {
    Active,
    Pending,
    Rejected,
    Disabled,
}

/// Filters and paging for the user list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListUsersQuery {
    #[param(inline)]
    pub(crate) role: Option<RoleFilter>,
    #[param(inline)]
    pub(crate) status: Option<StatusFilter>,
    /// Case-insensitive substring of email or display name.
    pub(crate) q: Option<String>,
    /// Page size, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub(crate) limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub(crate) cursor: Option<String>,
}

impl From<ListUsersQuery> for AdminListUsers {
    fn from(q: ListUsersQuery) -> Self {
        Self {
            role: q.role.map(|r| match r {
                RoleFilter::Patient => Role::Patient,
                RoleFilter::Doctor => Role::Doctor,
                RoleFilter::Admin => Role::Admin,
            }),
            status: q.status.map(|s| match s {
                StatusFilter::Active => UserStatus::Active,
                StatusFilter::Pending => UserStatus::Pending,
                StatusFilter::Rejected => UserStatus::Rejected,
                StatusFilter::Disabled => UserStatus::Disabled,
            }),
            q: q.q,
            limit: q.limit,
            cursor: q.cursor,
        }
    }
}

/// Why an admin changed an account's status (kept in the audit trail).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub(crate) struct ReasonBody {
    #[serde(default)]
    #[schema(max_length = 500)]
    pub(crate) reason: Option<String>,
    /// Disable a doctor even with confirmed appointments, cancelling them.
    #[serde(default)]
    pub(crate) force: Option<bool>,
}

/// List accounts, newest first.
#[utoipa::path(get, path = "/api/admin/users", tag = "admin", security(("bearer" = [])),
    params(ListUsersQuery),
    responses((status = 200, description = "A page of accounts", body = UserPage),
        (status = 403, description = "Not an active admin", body = ErrorBody),
        (status = 422, description = "`limit` outside 1..=200", body = ErrorBody)))]
pub(crate) async fn list_users(
    State(s): State<AppState>,
    AdminCtx(ctx): AdminCtx,
    ApiQuery(q): ApiQuery<ListUsersQuery>,
) -> Result<Json<UserPage>, ApiError> {
    Ok(Json(s.bus.request(&ctx, &AdminListUsers::from(q)).await?))
}

/// One account.
#[utoipa::path(get, path = "/api/admin/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, description = "The account", body = User),
        (status = 403, description = "Not an active admin", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody)))]
pub(crate) async fn get_user(
    State(s): State<AppState>,
    AdminCtx(ctx): AdminCtx,
    ApiPath(user_id): ApiPath<String>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(s.bus.request(&ctx, &AdminGetUser { user_id }).await?))
}

async fn set_status(
    s: &AppState,
    ctx: &CallContext,
    user_id: String,
    action: StatusAction,
    body: Option<ReasonBody>,
) -> Result<Json<User>, ApiError> {
    let (reason, force) = body.map_or((None, false), |b| (b.reason, b.force.unwrap_or(false)));
    let req = AdminSetUserStatus {
        user_id,
        action,
        reason,
        force,
    };
    Ok(Json(s.bus.request(ctx, &req).await?))
}

/// Generates one documented handler per status action (they differ only in the action).
macro_rules! status_route {
    ($name:ident, $path:literal, $action:expr, $summary:literal) => {
        #[doc = $summary]
        #[utoipa::path(post, path = $path, tag = "admin", security(("bearer" = [])),
            params(("id" = String, Path, description = "User id")),
            request_body(content = Option<ReasonBody>, description = "Optional reason"),
            responses((status = 200, description = "The account after the change", body = User),
                (status = 403, description = "Not an active admin", body = ErrorBody),
                (status = 404, description = "No such account", body = ErrorBody),
                (status = 409, description = "`conflict`: not allowed from the account's current status; `appointments_affected` (disable): the doctor has confirmed appointments, listed in `error.details.appointments` (send `force: true` to cancel them)", body = ErrorBody),
                (status = 503, description = "The admin service, which checks a doctor's appointments, is unavailable", body = ErrorBody),
                (status = 504, description = "The admin service did not answer in time", body = ErrorBody)))]
        pub(crate) async fn $name(
            State(s): State<AppState>,
            AdminCtx(ctx): AdminCtx,
            ApiPath(user_id): ApiPath<String>,
            OptionalJson(body): OptionalJson<ReasonBody>,
        ) -> Result<Json<User>, ApiError> {
            set_status(&s, &ctx, user_id, $action, body).await
        }
    };
}

status_route!(
    approve,
    "/api/admin/users/{id}/approve",
    StatusAction::Approve,
    "Approve a pending doctor."
);
status_route!(
    reject,
    "/api/admin/users/{id}/reject",
    StatusAction::Reject,
    "Reject a pending doctor."
);
status_route!(
    disable,
    "/api/admin/users/{id}/disable",
    StatusAction::Disable,
    "Disable an account; every session it holds ends."
);
status_route!(
    enable,
    "/api/admin/users/{id}/enable",
    StatusAction::Enable,
    "Re-enable a disabled account."
);
