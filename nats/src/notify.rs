//! Wire types of the notify service: a user's in-app notifications (requests under
//! `carehub.api.notify.`, each acting on the caller's own notifications only) and the live push
//! event the websocket hub forwards (`carehub.push.user.<user_id>`, core NATS).
//!
//! Every type ignores unknown fields, so a newer peer may add fields during a rolling upgrade.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Subjects of the notify domain.
pub mod subject {
    /// Micro service name of the notify service.
    pub const SERVICE: &str = "notify";
    pub(crate) const LIST: &str = "carehub.api.notify.list";
    pub(crate) const UNREAD_COUNT: &str = "carehub.api.notify.unread_count";
    pub(crate) const MARK_READ: &str = "carehub.api.notify.mark_read";
    pub(crate) const MARK_UNREAD: &str = "carehub.api.notify.mark_unread";
    pub(crate) const MARK_ALL_READ: &str = "carehub.api.notify.mark_all_read";
    pub(crate) const DELETE: &str = "carehub.api.notify.delete";
    /// Live pushes to one user: `carehub.push.user.<user_id>` (core NATS).
    pub(crate) const PUSH_USER_PREFIX: &str = "carehub.push.user";
}

/// The subject a user's live pushes are published on.
pub fn push_subject(user_id: &str) -> String {
    format!("{}.{user_id}", subject::PUSH_USER_PREFIX)
}

/// One in-app notification. Times are RFC 3339 UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, schemars::JsonSchema)]
pub struct Notification {
    pub id: String,
    /// What it is about, e.g. `appointment_confirmed`, `appointment_cancelled`,
    /// `appointment_reminder`.
    pub kind: String,
    pub title: String,
    pub body: String,
    /// The appointment it concerns, if any.
    #[serde(default)]
    pub appointment_id: Option<String>,
    pub created_at: String,
    /// When the user read it; `null` while unread.
    #[serde(default)]
    pub read_at: Option<String>,
}

/// The caller's notifications, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ListNotifications {
    /// Only unread ones.
    #[serde(default)]
    pub unread_only: bool,
    /// 1..=100, default 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// A page of notifications.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NotificationPage {
    pub notifications: Vec<Notification>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// How many of the caller's notifications are unread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct GetUnreadCount {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UnreadCount {
    pub unread: i64,
}

/// Marks one of the caller's notifications read (idempotent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkRead {
    pub id: String,
}

/// Marks one of the caller's notifications unread again (idempotent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkUnread {
    pub id: String,
}

/// Marks every notification of the caller read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MarkAllRead {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MarkedAllRead {
    /// How many were unread before.
    pub updated: i64,
}

/// Deletes one of the caller's notifications.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteNotification {
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    pub ok: bool,
}

rpc!(ListNotifications => NotificationPage, subject::LIST, "list");
rpc!(GetUnreadCount => UnreadCount, subject::UNREAD_COUNT, "unread_count");
rpc!(MarkRead => Notification, subject::MARK_READ, "mark_read");
rpc!(MarkUnread => Notification, subject::MARK_UNREAD, "mark_unread");
rpc!(MarkAllRead => MarkedAllRead, subject::MARK_ALL_READ, "mark_all_read");
rpc!(DeleteNotification => Deleted, subject::DELETE, "delete");

/// Published on [`push_subject`] after a notification was stored, for the websocket hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationPushed {
    pub user_id: String,
    pub notification: Notification,
    /// The user's unread count including this notification.
    pub unread_count: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pushed_notification_has_a_stable_shape() {
        let pushed = NotificationPushed {
            user_id: "u".into(),
            notification: Notification {
                id: "n".into(),
                kind: "appointment_confirmed".into(),
                title: "t".into(),
                body: "b".into(),
                appointment_id: Some("a".into()),
                created_at: "2026-01-01T00:00:00Z".into(),
                read_at: None,
            },
            unread_count: 3,
        };
        let snapshot = json!({"user_id":"u","notification":{"id":"n","kind":"appointment_confirmed",
            "title":"t","body":"b","appointment_id":"a","created_at":"2026-01-01T00:00:00Z",
            "read_at":null},"unread_count":3});
        assert_eq!(serde_json::to_value(&pushed).unwrap(), snapshot);
        assert_eq!(
            serde_json::from_value::<NotificationPushed>(snapshot).unwrap(),
            pushed
        );
        assert_eq!(push_subject("u1"), "carehub.push.user.u1");
    }

    #[test]
    fn list_requests_default_to_everything() {
        let r: ListNotifications = serde_json::from_value(json!({})).unwrap();
        assert_eq!(r, ListNotifications::default());
        assert_eq!(
            serde_json::to_value(ListNotifications {
                unread_only: true,
                limit: Some(5),
                cursor: None
            })
            .unwrap(),
            json!({"unread_only": true, "limit": 5})
        );
    }
}
