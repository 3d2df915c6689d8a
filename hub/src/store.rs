//! Every SQL statement of the hub. The same text runs on SQLite and PostgreSQL.

use carehub_nats::hub::ChatMessage;
use carehub_runtime::db::{Db, StoreError};
use carehub_runtime::{with_db, write_tx};

#[derive(Debug, Clone, sqlx::FromRow)]
struct MessageRow {
    room: String,
    seq: i64,
    sender_id: String,
    client_id: String,
    body: String,
    sent_at: i64,
}

impl From<MessageRow> for ChatMessage {
    fn from(r: MessageRow) -> Self {
        Self {
            room: r.room,
            seq: r.seq,
            sender_id: r.sender_id,
            client_id: r.client_id,
            body: r.body,
            sent_at: r.sent_at,
        }
    }
}

const MESSAGE_COLS: &str = "room, seq, sender_id, client_id, body, sent_at";

/// The outcome of storing a chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Appended {
    /// Stored just now with the next sequence number of its room.
    Stored(ChatMessage),
    /// The sender had already sent this `client_id`: the first copy, nothing stored.
    Duplicate(ChatMessage),
}

/// Stores a message with the next sequence number of its room, in one transaction, unless its
/// sender already stored one with this `client_id`. A concurrent writer taking the same
/// sequence number makes this attempt fail with a conflict; the caller retries.
///
/// # Errors
/// [`StoreError::Conflict`] when a concurrent writer won; other storage failures.
pub(crate) async fn append(
    db: &Db,
    room: &str,
    sender_id: &str,
    client_id: &str,
    body: &str,
    now: i64,
) -> Result<Appended, StoreError> {
    let existing = sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE_COLS} FROM chat_messages WHERE room = $1 AND sender_id = $2 AND client_id = $3"
    ));
    let next =
        "SELECT CAST(COALESCE(MAX(seq), 0) + 1 AS BIGINT) FROM chat_messages WHERE room = $1";
    let insert = "INSERT INTO chat_messages (room, seq, sender_id, client_id, body, sent_at)
                  VALUES ($1, $2, $3, $4, $5, $6)";
    write_tx!(db, tx => {
        let found = sqlx::query_as::<_, MessageRow>(existing)
            .bind(room).bind(sender_id).bind(client_id)
            .fetch_optional(&mut *tx).await?;
        if let Some(row) = found {
            return Ok(Appended::Duplicate(row.into()));
        }
        let seq: i64 = sqlx::query_scalar(next).bind(room).fetch_one(&mut *tx).await?;
        sqlx::query(insert)
            .bind(room).bind(seq).bind(sender_id).bind(client_id).bind(body).bind(now)
            .execute(&mut *tx).await?;
        Ok::<_, StoreError>(Appended::Stored(ChatMessage {
            room: room.to_owned(),
            seq,
            sender_id: sender_id.to_owned(),
            client_id: client_id.to_owned(),
            body: body.to_owned(),
            sent_at: now,
        }))
    })
}

/// Up to `limit` messages of `room` before `before_seq` (the newest when `None`), oldest first,
/// and whether older ones exist.
///
/// # Errors
/// On storage failure.
pub(crate) async fn history(
    db: &Db,
    room: &str,
    before_seq: Option<i64>,
    limit: u32,
) -> Result<(Vec<ChatMessage>, bool), StoreError> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE_COLS} FROM chat_messages WHERE room = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
    ));
    let before = before_seq.unwrap_or(i64::MAX);
    let fetch = i64::from(limit) + 1;
    let mut rows = with_db!(db, p => sqlx::query_as::<_, MessageRow>(sql).bind(room).bind(before).bind(fetch).fetch_all(p).await?);
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    rows.reverse();
    Ok((rows.into_iter().map(Into::into).collect(), has_more))
}

/// Up to `limit` messages of `room` after `after_seq`, oldest first, and whether more follow.
///
/// # Errors
/// On storage failure.
pub(crate) async fn after(
    db: &Db,
    room: &str,
    after_seq: i64,
    limit: u32,
) -> Result<(Vec<ChatMessage>, bool), StoreError> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE_COLS} FROM chat_messages WHERE room = $1 AND seq > $2 ORDER BY seq ASC LIMIT $3"
    ));
    let fetch = i64::from(limit) + 1;
    let mut rows = with_db!(db, p => sqlx::query_as::<_, MessageRow>(sql).bind(room).bind(after_seq).bind(fetch).fetch_all(p).await?);
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    Ok((rows.into_iter().map(Into::into).collect(), has_more))
}

/// Moves `user_id`'s read position in `room` forward to `seq` (never backwards). Returns
/// whether it moved.
///
/// # Errors
/// On storage failure.
pub(crate) async fn mark_read(
    db: &Db,
    room: &str,
    user_id: &str,
    seq: i64,
    now: i64,
) -> Result<bool, StoreError> {
    let sql = "INSERT INTO chat_reads (room, user_id, seq, updated_at) VALUES ($1, $2, $3, $4)
               ON CONFLICT (room, user_id) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at
               WHERE chat_reads.seq < excluded.seq";
    let n = with_db!(db, p => sqlx::query(sql).bind(room).bind(user_id).bind(seq).bind(now).execute(p).await?.rows_affected());
    Ok(n > 0)
}

/// A row of `calls`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct CallRow {
    pub(crate) id: String,
    pub(crate) appointment_id: String,
    pub(crate) caller_id: String,
    pub(crate) state: String,
    pub(crate) created_at: i64,
    pub(crate) started_at: Option<i64>,
    pub(crate) ended_at: Option<i64>,
}

const CALL_COLS: &str = "id, appointment_id, caller_id, state, created_at, started_at, ended_at";

/// The appointment's open (not ended) call, if any.
///
/// # Errors
/// On storage failure.
pub(crate) async fn open_call(
    db: &Db,
    appointment_id: &str,
) -> Result<Option<CallRow>, StoreError> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {CALL_COLS} FROM calls WHERE appointment_id = $1 AND ended_at IS NULL"
    ));
    Ok(
        with_db!(db, p => sqlx::query_as::<_, CallRow>(sql).bind(appointment_id).fetch_optional(p).await?),
    )
}

/// Opens a ringing call, unless the appointment already has an open one; returns the open call
/// and whether it was created now.
///
/// # Errors
/// [`StoreError::Conflict`] when a concurrent invite opened one first; storage failures.
pub(crate) async fn open_or_join_call(
    db: &Db,
    id: &str,
    appointment_id: &str,
    caller_id: &str,
    now: i64,
) -> Result<(CallRow, bool), StoreError> {
    let find = sqlx::AssertSqlSafe(format!(
        "SELECT {CALL_COLS} FROM calls WHERE appointment_id = $1 AND ended_at IS NULL"
    ));
    write_tx!(db, tx => {
        if let Some(row) = sqlx::query_as::<_, CallRow>(find).bind(appointment_id).fetch_optional(&mut *tx).await? {
            return Ok((row, false));
        }
        sqlx::query("INSERT INTO calls (id, appointment_id, caller_id, state, created_at) VALUES ($1, $2, $3, 'ringing', $4)")
            .bind(id).bind(appointment_id).bind(caller_id).bind(now)
            .execute(&mut *tx).await?;
        Ok::<_, StoreError>((CallRow {
            id: id.to_owned(),
            appointment_id: appointment_id.to_owned(),
            caller_id: caller_id.to_owned(),
            state: "ringing".into(),
            created_at: now,
            started_at: None,
            ended_at: None,
        }, true))
    })
}

/// Marks a ringing call active (started now); an already active call keeps its start.
/// Returns whether the call was open.
///
/// # Errors
/// On storage failure.
pub(crate) async fn start_call(db: &Db, call_id: &str, now: i64) -> Result<bool, StoreError> {
    let sql = "UPDATE calls SET state = 'active', started_at = COALESCE(started_at, $2)
               WHERE id = $1 AND ended_at IS NULL";
    let n = with_db!(db, p => sqlx::query(sql).bind(call_id).bind(now).execute(p).await?.rows_affected());
    Ok(n > 0)
}

/// Ends an open call; returns the ended row, or `None` when it was not open (someone else
/// ended it first).
///
/// # Errors
/// On storage failure.
pub(crate) async fn end_call(
    db: &Db,
    call_id: &str,
    reason: &str,
    now: i64,
) -> Result<Option<CallRow>, StoreError> {
    let update = "UPDATE calls SET state = 'ended', ended_at = $2, end_reason = $3
                  WHERE id = $1 AND ended_at IS NULL";
    let find = sqlx::AssertSqlSafe(format!("SELECT {CALL_COLS} FROM calls WHERE id = $1"));
    write_tx!(db, tx => {
        let n = sqlx::query(update).bind(call_id).bind(now).bind(reason).execute(&mut *tx).await?.rows_affected();
        if n == 0 {
            return Ok(None);
        }
        let row = sqlx::query_as::<_, CallRow>(find).bind(call_id).fetch_optional(&mut *tx).await?;
        Ok::<_, StoreError>(row)
    })
}
