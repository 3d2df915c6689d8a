//! Every SQL statement of the notify service. The same text runs on SQLite and PostgreSQL.

use carehub_runtime::db::{Db, StoreError};
use carehub_runtime::{with_db, write_tx};

/// A row of `users` (the directory kept from account events).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub(crate) id: String,
    pub(crate) email: String,
    pub(crate) display_name: String,
    pub(crate) role: String,
    pub(crate) status: String,
    /// An IANA name; `UTC` until an event names one.
    pub time_zone: String,
}

/// Stores what an account event says of a user, unless a newer event was applied already.
///
/// # Errors
/// On storage failure.
pub(crate) async fn upsert_user(
    db: &Db,
    u: &UserRow,
    at: i64,
    version: i64,
) -> Result<(), StoreError> {
    static UPSERT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "INSERT INTO users (id, email, display_name, role, status, updated_at, time_zone, account_version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (id) DO UPDATE SET email = excluded.email, display_name = excluded.display_name,
                 role = excluded.role, status = excluded.status, updated_at = excluded.updated_at,
                 time_zone = excluded.time_zone, account_version = {}
             WHERE {}",
            carehub_runtime::account_copy::version_sql("users"),
            carehub_runtime::account_copy::newer_sql("users", "updated_at")
        )
    });
    with_db!(db, p => sqlx::query(sqlx::AssertSqlSafe(UPSERT.as_str()))
        .bind(&u.id).bind(&u.email).bind(&u.display_name).bind(&u.role).bind(&u.status).bind(at)
        .bind(&u.time_zone).bind(version)
        .execute(p).await?.rows_affected());
    Ok(())
}

/// # Errors
/// On storage failure.
pub async fn user(db: &Db, id: &str) -> Result<Option<UserRow>, StoreError> {
    let sql = "SELECT id, email, display_name, role, status, time_zone FROM users WHERE id = $1";
    Ok(with_db!(db, p => sqlx::query_as::<_, UserRow>(sql).bind(id).fetch_optional(p).await?))
}

/// A row of `notifications`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NotificationRow {
    pub(crate) id: String,
    pub user_id: String,
    pub(crate) kind: String,
    pub(crate) title: String,
    pub(crate) body: String,
    pub(crate) appointment_id: Option<String>,
    pub(crate) created_at: i64,
    pub(crate) read_at: Option<i64>,
}

const COLS: &str = "id, user_id, kind, title, body, appointment_id, created_at, read_at";

/// A notification to store, with the mail that goes with it.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub(crate) notification: NotificationRow,
    /// The event it comes from; (event_id, user) is unique.
    pub(crate) event_id: String,
    pub(crate) mail: Option<NewMail>,
}

/// A mail to queue.
#[derive(Debug, Clone)]
pub(crate) struct NewMail {
    pub(crate) id: String,
    pub(crate) to_addr: Option<String>,
    pub user_id: Option<String>,
    pub(crate) kind: String,
    pub(crate) subject: String,
    pub(crate) body: String,
    pub(crate) now: i64,
    pub(crate) expires_at: Option<i64>,
    /// The event the mail tells of (its `X-Carehub-Event` header), if any.
    pub(crate) event_id: Option<String>,
}

const INSERT_MAIL: &str = "INSERT INTO mail_outbox (id, to_addr, user_id, kind, subject, body, created_at, attempts, next_attempt_at, expires_at, lease_until, event_id)
                           VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $7, $8, 0, $9)";

macro_rules! insert_mail {
    ($tx:expr, $m:expr) => {
        sqlx::query(INSERT_MAIL)
            .bind(&$m.id)
            .bind(&$m.to_addr)
            .bind(&$m.user_id)
            .bind(&$m.kind)
            .bind(&$m.subject)
            .bind(&$m.body)
            .bind($m.now)
            .bind($m.expires_at)
            .bind(&$m.event_id)
            .execute($tx)
            .await
    };
}

const INSERT_NOTIFICATION: &str = "INSERT INTO notifications (id, user_id, event_id, kind, title, body, appointment_id, created_at, read_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (event_id, user_id) DO NOTHING";

macro_rules! insert_notification {
    ($tx:expr, $d:expr) => {
        sqlx::query(INSERT_NOTIFICATION)
            .bind(&$d.notification.id)
            .bind(&$d.notification.user_id)
            .bind(&$d.event_id)
            .bind(&$d.notification.kind)
            .bind(&$d.notification.title)
            .bind(&$d.notification.body)
            .bind(&$d.notification.appointment_id)
            .bind($d.notification.created_at)
            .bind($d.notification.read_at)
            .execute($tx)
            .await
    };
}

/// What an appointment event does to its reminders.
#[derive(Debug, Clone)]
pub(crate) enum ReminderChange {
    Keep,
    /// Drop unsent reminders, then add these (empty: only drop).
    Replace {
        appointment_id: String,
        version: i64,
        reminders: Vec<NewReminder>,
    },
}

/// A reminder to store.
#[derive(Debug, Clone)]
pub(crate) struct NewReminder {
    pub(crate) id: String,
    pub user_id: String,
    pub(crate) offset_ms: i64,
    pub(crate) starts_at: String,
    pub(crate) due_at: i64,
    /// The text as planned (sent as it is by an instance of the previous version).
    pub(crate) title: String,
    pub(crate) body: String,
    /// The other person's name for the text written at sending ('' when unknown).
    pub(crate) with_name: String,
}

/// Stores the notifications of one event of appointment `appointment_id` at `version`, their
/// mail, and the reminder change, atomically. A recipient who had this event applied before
/// (`applied_deliveries`: also when they deleted its notification since) gets nothing again.
/// An event older than the newest applied for the appointment is stored already read, with no
/// mail. Returns the notifications to push live.
///
/// # Errors
/// On storage failure.
pub(crate) async fn apply_event(
    db: &Db,
    deliveries: &[Delivery],
    reminders: &ReminderChange,
    appointment_id: &str,
    version: i64,
    now: i64,
) -> Result<Vec<NotificationRow>, StoreError> {
    let claim = "INSERT INTO applied_deliveries (event_id, user_id, applied_at) VALUES ($1, $2, $3)
                 ON CONFLICT (event_id, user_id) DO NOTHING";
    write_tx!(db, tx => {
        let newest: Option<i64> = sqlx::query_scalar("SELECT version FROM appointment_versions WHERE appointment_id = $1")
            .bind(appointment_id).fetch_optional(&mut *tx).await?;
        let stale = newest.is_some_and(|v| v > version);
        if !stale {
            sqlx::query("INSERT INTO appointment_versions (appointment_id, version) VALUES ($1, $2)
                         ON CONFLICT (appointment_id) DO UPDATE SET version = excluded.version
                         WHERE appointment_versions.version < excluded.version")
                .bind(appointment_id).bind(version).execute(&mut *tx).await?;
        }
        let mut fresh = Vec::new();
        for d in deliveries {
            let claimed = sqlx::query(claim).bind(&d.event_id).bind(&d.notification.user_id).bind(now)
                .execute(&mut *tx).await?.rows_affected();
            if claimed != 1 {
                continue;
            }
            if stale {
                let mut history = d.clone();
                history.notification.read_at = Some(now);
                insert_notification!(&mut *tx, history)?;
                continue;
            }
            let n = insert_notification!(&mut *tx, d)?.rows_affected();
            if n == 1 {
                if let Some(m) = &d.mail {
                    insert_mail!(&mut *tx, m)?;
                }
                fresh.push(d.notification.clone());
            }
        }
        if let ReminderChange::Replace { appointment_id, version, reminders } = reminders {
            let newer = sqlx::query(
                "INSERT INTO reminder_versions (appointment_id, version) VALUES ($1, $2)
                 ON CONFLICT (appointment_id) DO UPDATE SET version = excluded.version
                 WHERE reminder_versions.version < excluded.version")
                .bind(appointment_id).bind(version).execute(&mut *tx).await?.rows_affected();
            if newer == 1 {
                sqlx::query("DELETE FROM reminders WHERE appointment_id = $1 AND sent_at IS NULL")
                    .bind(appointment_id).execute(&mut *tx).await?;
                for r in reminders {
                    sqlx::query("INSERT INTO reminders (id, appointment_id, user_id, offset_ms, starts_at, due_at, title, body, sent_at, with_name)
                                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9)
                                 ON CONFLICT (appointment_id, user_id, offset_ms, starts_at) DO NOTHING")
                        .bind(&r.id).bind(appointment_id).bind(&r.user_id).bind(r.offset_ms).bind(&r.starts_at)
                        .bind(r.due_at).bind(&r.title).bind(&r.body).bind(&r.with_name)
                        .execute(&mut *tx).await?;
                }
            }
        }
        Ok::<Vec<NotificationRow>, StoreError>(fresh)
    })
}

/// # Errors
/// On storage failure.
pub(crate) async fn unread_count(db: &Db, user_id: &str) -> Result<i64, StoreError> {
    let sql =
        "SELECT CAST(COUNT(*) AS BIGINT) FROM notifications WHERE user_id = $1 AND read_at IS NULL";
    Ok(with_db!(db, p => sqlx::query_scalar::<_, i64>(sql).bind(user_id).fetch_one(p).await?))
}

/// A user's notifications, newest first, older than `before_id` if given.
///
/// # Errors
/// On storage failure.
pub(crate) async fn list(
    db: &Db,
    user_id: &str,
    unread_only: bool,
    before_id: Option<&str>,
    limit: i64,
) -> Result<Vec<NotificationRow>, StoreError> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLS} FROM notifications
         WHERE user_id = $1 AND ($2 = FALSE OR read_at IS NULL) AND ($3 IS NULL OR id < $3)
         ORDER BY id DESC LIMIT $4"
    ));
    Ok(with_db!(db, p => sqlx::query_as::<_, NotificationRow>(sql)
        .bind(user_id).bind(unread_only).bind(before_id).bind(limit)
        .fetch_all(p).await?))
}

/// Marks one of the user's notifications read (keeping the first read time). `None` when the
/// user has no such notification.
///
/// # Errors
/// On storage failure.
pub(crate) async fn mark_read(
    db: &Db,
    user_id: &str,
    id: &str,
    now: i64,
) -> Result<Option<NotificationRow>, StoreError> {
    let sql = sqlx::AssertSqlSafe(format!(
        "UPDATE notifications SET read_at = COALESCE(read_at, $3) WHERE id = $1 AND user_id = $2 RETURNING {COLS}"
    ));
    Ok(with_db!(db, p => sqlx::query_as::<_, NotificationRow>(sql)
        .bind(id).bind(user_id).bind(now).fetch_optional(p).await?))
}

/// Marks one of the user's notifications unread. `None` when the user has no such notification.
///
/// # Errors
/// On storage failure.
pub(crate) async fn mark_unread(
    db: &Db,
    user_id: &str,
    id: &str,
) -> Result<Option<NotificationRow>, StoreError> {
    let sql = sqlx::AssertSqlSafe(format!(
        "UPDATE notifications SET read_at = NULL WHERE id = $1 AND user_id = $2 RETURNING {COLS}"
    ));
    Ok(with_db!(db, p => sqlx::query_as::<_, NotificationRow>(sql)
        .bind(id).bind(user_id).fetch_optional(p).await?))
}

/// Marks every unread notification of the user read; returns how many.
///
/// # Errors
/// On storage failure.
pub(crate) async fn mark_all_read(db: &Db, user_id: &str, now: i64) -> Result<u64, StoreError> {
    let sql = "UPDATE notifications SET read_at = $2 WHERE user_id = $1 AND read_at IS NULL";
    Ok(
        with_db!(db, p => sqlx::query(sql).bind(user_id).bind(now).execute(p).await?.rows_affected()),
    )
}

/// Deletes one of the user's notifications; whether it existed.
///
/// # Errors
/// On storage failure.
pub(crate) async fn delete(db: &Db, user_id: &str, id: &str) -> Result<bool, StoreError> {
    let sql = "DELETE FROM notifications WHERE id = $1 AND user_id = $2";
    let n = with_db!(db, p => sqlx::query(sql).bind(id).bind(user_id).execute(p).await?.rows_affected());
    Ok(n == 1)
}

/// Queues one mail on its own.
///
/// # Errors
/// On storage failure.
pub(crate) async fn queue_mail(db: &Db, m: &NewMail) -> Result<(), StoreError> {
    with_db!(db, p => insert_mail!(p, m)?.rows_affected());
    Ok(())
}

/// A claimed mail, with its address resolved.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct MailRow {
    pub(crate) id: String,
    pub(crate) kind: String,
    pub user_id: Option<String>,
    pub(crate) address: Option<String>,
    pub(crate) subject: String,
    pub(crate) body: String,
    pub(crate) attempts: i64,
    pub(crate) event_id: Option<String>,
}

/// Ids of mail due now that nobody holds.
///
/// # Errors
/// On storage failure.
pub(crate) async fn due_mail(db: &Db, now: i64, limit: i64) -> Result<Vec<String>, StoreError> {
    let sql = "SELECT id FROM mail_outbox WHERE next_attempt_at <= $1 AND lease_until <= $1
                 AND (expires_at IS NULL OR expires_at > $1) ORDER BY next_attempt_at, id LIMIT $2";
    Ok(
        with_db!(db, p => sqlx::query_scalar::<_, String>(sql).bind(now).bind(limit).fetch_all(p).await?),
    )
}

/// Takes a mail for `owner` until `lease_until` if it is still due and unheld (compare-and-set),
/// and returns it with its address. `None` when another sender took it first.
///
/// # Errors
/// On storage failure.
pub(crate) async fn claim_mail(
    db: &Db,
    id: &str,
    owner: &str,
    now: i64,
    lease_until: i64,
) -> Result<Option<MailRow>, StoreError> {
    let claim = "UPDATE mail_outbox SET lease_until = $3, lease_owner = $4
                 WHERE id = $1 AND lease_until <= $2 AND next_attempt_at <= $2";
    let read = "SELECT m.id, m.kind, m.user_id, COALESCE(m.to_addr, u.email) AS address, m.subject, m.body, m.attempts, m.event_id
                FROM mail_outbox m LEFT JOIN users u ON u.id = m.user_id WHERE m.id = $1 AND m.lease_owner = $2";
    let n = with_db!(db, p => sqlx::query(claim).bind(id).bind(now).bind(lease_until).bind(owner)
        .execute(p).await?.rows_affected());
    if n != 1 {
        return Ok(None);
    }
    Ok(
        with_db!(db, p => sqlx::query_as::<_, MailRow>(read).bind(id).bind(owner).fetch_optional(p).await?),
    )
}

/// Removes a mail that was delivered or given up on.
///
/// # Errors
/// On storage failure.
pub(crate) async fn remove_mail(db: &Db, id: &str) -> Result<(), StoreError> {
    with_db!(db, p => sqlx::query("DELETE FROM mail_outbox WHERE id = $1").bind(id).execute(p).await?.rows_affected());
    Ok(())
}

/// Releases a mail after a failed attempt, to be tried again at `next_attempt_at`.
///
/// # Errors
/// On storage failure.
pub(crate) async fn retry_mail(
    db: &Db,
    id: &str,
    owner: &str,
    next_attempt_at: i64,
) -> Result<(), StoreError> {
    let sql = "UPDATE mail_outbox SET attempts = attempts + 1, next_attempt_at = $3, lease_until = 0, lease_owner = NULL
               WHERE id = $1 AND lease_owner = $2";
    with_db!(db, p => sqlx::query(sql).bind(id).bind(owner).bind(next_attempt_at).execute(p).await?.rows_affected());
    Ok(())
}

/// Deletes mail that outlived its secret.
///
/// # Errors
/// On storage failure.
pub(crate) async fn purge_expired_mail(db: &Db, now: i64) -> Result<u64, StoreError> {
    let sql = "DELETE FROM mail_outbox WHERE expires_at IS NOT NULL AND expires_at <= $1";
    Ok(with_db!(db, p => sqlx::query(sql).bind(now).execute(p).await?.rows_affected()))
}

/// Mail waiting (for metrics and tests).
///
/// # Errors
/// On storage failure.
pub async fn mail_backlog(db: &Db) -> Result<i64, StoreError> {
    let sql = "SELECT CAST(COUNT(*) AS BIGINT) FROM mail_outbox";
    Ok(with_db!(db, p => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await?))
}

/// A reminder that is due.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct ReminderRow {
    pub(crate) id: String,
    pub(crate) appointment_id: String,
    pub user_id: String,
    pub(crate) offset_ms: i64,
    pub(crate) starts_at: String,
    pub(crate) title: String,
    pub(crate) body: String,
    /// `None` on a reminder planned before texts were written at sending: send `body` as it is.
    pub(crate) with_name: Option<String>,
    /// The recipient's zone, if the directory knows them.
    pub(crate) time_zone: Option<String>,
}

/// Unsent reminders due now.
///
/// # Errors
/// On storage failure.
pub(crate) async fn due_reminders(
    db: &Db,
    now: i64,
    limit: i64,
) -> Result<Vec<ReminderRow>, StoreError> {
    let sql = "SELECT r.id, r.appointment_id, r.user_id, r.offset_ms, r.starts_at, r.title, r.body, r.with_name,
                      u.time_zone
               FROM reminders r LEFT JOIN users u ON u.id = r.user_id
               WHERE r.sent_at IS NULL AND r.due_at <= $1 ORDER BY r.due_at, r.id LIMIT $2";
    Ok(
        with_db!(db, p => sqlx::query_as::<_, ReminderRow>(sql).bind(now).bind(limit).fetch_all(p).await?),
    )
}

/// Marks a reminder sent (compare-and-set) and stores its notification and mail in the same
/// transaction. `None` when another instance sent it first.
///
/// # Errors
/// On storage failure.
pub(crate) async fn send_reminder(
    db: &Db,
    reminder_id: &str,
    now: i64,
    delivery: &Delivery,
) -> Result<Option<NotificationRow>, StoreError> {
    write_tx!(db, tx => {
        let n = sqlx::query("UPDATE reminders SET sent_at = $2 WHERE id = $1 AND sent_at IS NULL")
            .bind(reminder_id).bind(now).execute(&mut *tx).await?.rows_affected();
        if n != 1 {
            return Ok(None);
        }
        let stored = insert_notification!(&mut *tx, delivery)?.rows_affected();
        if stored == 1 && let Some(m) = &delivery.mail {
            insert_mail!(&mut *tx, m)?;
        }
        Ok::<Option<NotificationRow>, StoreError>((stored == 1).then(|| delivery.notification.clone()))
    })
}
