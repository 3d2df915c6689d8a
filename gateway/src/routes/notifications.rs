//! The caller's in-app notifications. Any signed-in user; the notify service acts on the
//! caller's own notifications only, so someone else's id answers 404.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiPath, ApiQuery, AuthCtx};
use crate::state::{AppState, Forwarded};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use carehub_nats::notify::{
    DeleteNotification, GetUnreadCount, ListNotifications, MarkAllRead, MarkRead, MarkUnread,
    MarkedAllRead, Notification, NotificationPage, UnreadCount,
};
use serde::Deserialize;
use utoipa::IntoParams;

/// Filter and paging for the notification list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only unread notifications.
    pub(crate) unread: Option<bool>,
    /// Page size, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub(crate) limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub(crate) cursor: Option<String>,
}

/// The notification an `{id}` route names.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct NotificationPath {
    /// Notification id
    id: String,
}

/// The caller's notifications, newest first.
#[utoipa::path(get, path = "/api/notifications", tag = "notifications", security(("bearer" = [])),
    operation_id = "list_notifications",
    params(ListQuery),
    responses((status = 200, description = "A page of notifications", body = NotificationPage),
        (status = 422, description = "`limit` outside 1..=100", body = ErrorBody)))]
pub(crate) async fn list(
    State(s): State<AppState>,
    AuthCtx(ctx): AuthCtx,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Forwarded<NotificationPage>, ApiError> {
    let req = ListNotifications {
        unread_only: q.unread.unwrap_or(false),
        limit: q.limit,
        cursor: q.cursor,
    };
    s.forward(&ctx, &req).await
}

/// How many of the caller's notifications are unread.
#[utoipa::path(get, path = "/api/notifications/unread-count", tag = "notifications",
    security(("bearer" = [])),
    responses((status = 200, description = "The unread count", body = UnreadCount)))]
pub(crate) async fn unread_count(
    State(s): State<AppState>,
    AuthCtx(ctx): AuthCtx,
) -> Result<Forwarded<UnreadCount>, ApiError> {
    s.forward(&ctx, &GetUnreadCount {}).await
}

/// Marks one notification read.
#[utoipa::path(post, path = "/api/notifications/{id}/read", tag = "notifications",
    security(("bearer" = [])),
    params(NotificationPath),
    responses((status = 200, description = "The notification after the change", body = Notification),
        (status = 404, description = "The caller has no such notification", body = ErrorBody)))]
pub(crate) async fn mark_read(
    State(s): State<AppState>,
    AuthCtx(ctx): AuthCtx,
    ApiPath(NotificationPath { id }): ApiPath<NotificationPath>,
) -> Result<Json<Notification>, ApiError> {
    Ok(Json(s.bus.request(&ctx, &MarkRead { id }).await?))
}

/// Marks one notification unread again.
#[utoipa::path(post, path = "/api/notifications/{id}/unread", tag = "notifications",
    security(("bearer" = [])),
    params(NotificationPath),
    responses((status = 200, description = "The notification after the change", body = Notification),
        (status = 404, description = "The caller has no such notification", body = ErrorBody)))]
pub(crate) async fn mark_unread(
    State(s): State<AppState>,
    AuthCtx(ctx): AuthCtx,
    ApiPath(NotificationPath { id }): ApiPath<NotificationPath>,
) -> Result<Json<Notification>, ApiError> {
    Ok(Json(s.bus.request(&ctx, &MarkUnread { id }).await?))
}

/// Marks every notification of the caller read.
#[utoipa::path(post, path = "/api/notifications/read-all", tag = "notifications",
    security(("bearer" = [])),
    responses((status = 200, description = "How many were unread", body = MarkedAllRead)))]
pub(crate) async fn mark_all_read(
    State(s): State<AppState>,
    AuthCtx(ctx): AuthCtx,
) -> Result<Json<MarkedAllRead>, ApiError> {
    Ok(Json(s.bus.request(&ctx, &MarkAllRead {}).await?))
}

/// Deletes one notification.
#[utoipa::path(delete, path = "/api/notifications/{id}", tag = "notifications",
    security(("bearer" = [])),
    params(NotificationPath),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "The caller has no such notification", body = ErrorBody)))]
pub(crate) async fn delete(
    State(s): State<AppState>,
    AuthCtx(ctx): AuthCtx,
    ApiPath(NotificationPath { id }): ApiPath<NotificationPath>,
) -> Result<StatusCode, ApiError> {
    s.bus.request(&ctx, &DeleteNotification { id }).await?;
    Ok(StatusCode::NO_CONTENT)
}
