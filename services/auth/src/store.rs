//! Every SQL statement of the auth service. The same text runs on SQLite and PostgreSQL.

use carehub_runtime::db::{Db, StoreError};
use carehub_runtime::outbox::Pending;
use carehub_runtime::{enqueue, with_db, write_tx};

/// A row of `users`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct UserRow {
    pub(crate) id: String,
    pub(crate) email: String,
    pub(crate) display_name: String,
    pub(crate) password_hash: String,
    pub(crate) role: String,
    pub(crate) status: String,
    pub(crate) token_generation: i64,
    pub(crate) created_at: i64,
    pub time_zone: String,
    /// Bumped by every change of what account events carry; carried in them.
    pub(crate) version: i64,
    /// Unix milliseconds of the row's last change.
    pub(crate) updated_at: i64,
}

const USER_COLS: &str = "id, email, display_name, password_hash, role, status, token_generation, created_at, time_zone, version, updated_at";

/// A user about to be inserted.
#[derive(Debug)]
pub(crate) struct NewUser<'a> {
    pub(crate) id: &'a str,
    pub(crate) email: &'a str,
    pub(crate) display_name: &'a str,
    pub(crate) password_hash: &'a str,
    pub(crate) role: &'a str,
    pub(crate) status: &'a str,
    pub(crate) time_zone: &'a str,
    pub(crate) now: i64,
}

/// Inserts a user unless the email is taken, with its `registered` event in the same
/// transaction. Returns whether a row was inserted.
///
/// # Errors
/// On storage failure.
pub(crate) async fn insert_user(
    db: &Db,
    u: &NewUser<'_>,
    event: &Pending,
) -> Result<bool, StoreError> {
    let sql = "INSERT INTO users (id, email, display_name, password_hash, role, status, token_generation, created_at, updated_at, time_zone)
               VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7, $8) ON CONFLICT (email) DO NOTHING";
    write_tx!(db, tx => {
        let n = sqlx::query(sql)
            .bind(u.id).bind(u.email).bind(u.display_name).bind(u.password_hash)
            .bind(u.role).bind(u.status).bind(u.now).bind(u.time_zone)
            .execute(&mut *tx).await?.rows_affected();
        if n == 1 {
            enqueue!(&mut *tx, event)?;
        }
        Ok::<bool, StoreError>(n == 1)
    })
}

/// # Errors
/// On storage failure.
pub(crate) async fn user_by_email(db: &Db, email: &str) -> Result<Option<UserRow>, StoreError> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {USER_COLS} FROM users WHERE email = $1"));
    Ok(with_db!(db, p => sqlx::query_as::<_, UserRow>(sql).bind(email).fetch_optional(p).await?))
}

/// # Errors
/// On storage failure.
pub(crate) async fn user_by_id(db: &Db, id: &str) -> Result<Option<UserRow>, StoreError> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {USER_COLS} FROM users WHERE id = $1"));
    Ok(with_db!(db, p => sqlx::query_as::<_, UserRow>(sql).bind(id).fetch_optional(p).await?))
}

/// # Errors
/// On storage failure.
pub(crate) async fn count_users(db: &Db) -> Result<i64, StoreError> {
    Ok(
        with_db!(db, p => sqlx::query_scalar::<_, i64>("SELECT CAST(COUNT(*) AS BIGINT) FROM users").fetch_one(p).await?),
    )
}

/// Sets a user's time zone and writes the event made by `event` for the updated row, atomically.
/// A zone equal to the stored one changes nothing and writes no event. `None` when the user does
/// not exist.
///
/// # Errors
/// On storage failure, or what `event` fails with.
pub(crate) async fn set_time_zone(
    db: &Db,
    user_id: &str,
    time_zone: &str,
    now: i64,
    event: impl FnOnce(&UserRow) -> Result<Pending, StoreError>,
) -> Result<Option<UserRow>, StoreError> {
    let update = sqlx::AssertSqlSafe(format!(
        "UPDATE users SET version = version + 1, time_zone = $1, updated_at = $2 WHERE id = $3 AND time_zone <> $1 RETURNING {USER_COLS}"
    ));
    let read = sqlx::AssertSqlSafe(format!("SELECT {USER_COLS} FROM users WHERE id = $1"));
    write_tx!(db, tx => {
        let changed = sqlx::query_as::<_, UserRow>(update)
            .bind(time_zone).bind(now).bind(user_id)
            .fetch_optional(&mut *tx).await?;
        let row = match changed {
            Some(row) => {
                enqueue!(&mut *tx, event(&row)?)?;
                Some(row)
            }
            None => sqlx::query_as::<_, UserRow>(read).bind(user_id).fetch_optional(&mut *tx).await?,
        };
        Ok::<Option<UserRow>, StoreError>(row)
    })
}

/// Starts a login session with its first refresh token.
///
/// # Errors
/// On storage failure.
pub(crate) async fn create_session(
    db: &Db,
    session_id: &str,
    user_id: &str,
    token_hash: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), StoreError> {
    write_tx!(db, tx => {
        sqlx::query("INSERT INTO sessions (id, user_id, created_at) VALUES ($1, $2, $3)")
            .bind(session_id).bind(user_id).bind(now).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, issued_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(token_hash).bind(session_id).bind(now).bind(expires_at).execute(&mut *tx).await?;
        Ok::<(), StoreError>(())
    })
}

/// The outcome of presenting a refresh token.
#[derive(Debug)]
pub(crate) enum Rotation {
    /// The token was current: it is used up and `new_hash` is now the session's token.
    Rotated { session_id: String, user: UserRow },
    /// The token had been used before: the whole session was revoked just now.
    Reused { session_id: String, user_id: String },
    /// Unknown, expired, or its session is already revoked.
    Invalid,
}

#[derive(sqlx::FromRow)]
struct RefreshRow {
    session_id: String,
    user_id: String,
    expires_at: i64,
    used_at: Option<i64>,
    replaced_by: Option<String>,
    revoked_at: Option<i64>,
}

/// Uses up a refresh token and stores its successor, in one transaction. A second use of the
/// same token (a stolen copy, or a replay) revokes its session, with one exception: within
/// `grace` ms of its first use, while the successor it was exchanged for has never been used,
/// the token is exchanged again. That is a renewal whose answer never reached the client (a
/// page reload cancelled it in flight); the undelivered successor is retired, so presenting it
/// later counts as reuse and ends the session.
///
/// # Errors
/// On storage failure.
pub(crate) async fn rotate_refresh(
    db: &Db,
    old_hash: &str,
    new_hash: &str,
    now: i64,
    new_expires_at: i64,
    grace: i64,
) -> Result<Rotation, StoreError> {
    let lookup = "SELECT r.session_id, s.user_id, r.expires_at, r.used_at, r.replaced_by, s.revoked_at
                  FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.token_hash = $1";
    let claim = "UPDATE refresh_tokens SET used_at = $1, replaced_by = $2
                 WHERE token_hash = $3 AND used_at IS NULL";
    // Retires the successor only while it is unused; `replaced_by` stays empty on a retired
    // token, so it never gets a grace of its own.
    let retire = "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL";
    let pass_on = "UPDATE refresh_tokens SET replaced_by = $1 WHERE token_hash = $2";
    let user_sql = sqlx::AssertSqlSafe(format!("SELECT {USER_COLS} FROM users WHERE id = $1"));
    // Every outcome leaves the block by value: `write_tx!` commits only what its body evaluates
    // to, so an early `return` would roll the revocation back.
    write_tx!(db, tx => 'rotate: {
        let row = sqlx::query_as::<_, RefreshRow>(lookup).bind(old_hash).fetch_optional(&mut *tx).await?;
        let Some(mut row) = row else { break 'rotate Ok(Rotation::Invalid) };
        if row.revoked_at.is_some() || row.expires_at <= now {
            break 'rotate Ok(Rotation::Invalid);
        }
        let mut exchanged = false;
        if row.used_at.is_none() {
            let claimed = sqlx::query(claim)
                .bind(now).bind(new_hash).bind(old_hash).execute(&mut *tx).await?.rows_affected();
            exchanged = claimed == 1;
            if !exchanged {
                // A concurrent exchange of the same token won (PostgreSQL): judge it as a reuse.
                row = sqlx::query_as::<_, RefreshRow>(lookup).bind(old_hash).fetch_one(&mut *tx).await?;
            }
        }
        if !exchanged {
            let lost_answer = match (row.used_at, row.replaced_by.as_deref()) {
                (Some(used_at), Some(successor)) if now - used_at <= grace => {
                    sqlx::query(retire).bind(now).bind(successor).execute(&mut *tx).await?.rows_affected() == 1
                }
                _ => false,
            };
            if !lost_answer {
                sqlx::query("UPDATE sessions SET revoked_at = $1, revoked_reason = 'refresh_reuse' WHERE id = $2 AND revoked_at IS NULL")
                    .bind(now).bind(&row.session_id).execute(&mut *tx).await?;
                break 'rotate Ok(Rotation::Reused { session_id: row.session_id, user_id: row.user_id });
            }
            sqlx::query(pass_on).bind(new_hash).bind(old_hash).execute(&mut *tx).await?;
        }
        sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, issued_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(new_hash).bind(&row.session_id).bind(now).bind(new_expires_at).execute(&mut *tx).await?;
        let user = sqlx::query_as::<_, UserRow>(user_sql).bind(&row.user_id).fetch_one(&mut *tx).await?;
        Ok(Rotation::Rotated { session_id: row.session_id, user })
    })
}

/// The session a refresh token belongs to, if any.
///
/// # Errors
/// On storage failure.
pub(crate) async fn session_of_refresh(
    db: &Db,
    token_hash: &str,
) -> Result<Option<(String, String)>, StoreError> {
    let sql = "SELECT s.id, s.user_id FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.token_hash = $1";
    Ok(
        with_db!(db, p => sqlx::query_as::<_, (String, String)>(sql).bind(token_hash).fetch_optional(p).await?),
    )
}

/// Revokes a session. Returns whether it was still open.
///
/// # Errors
/// On storage failure.
pub(crate) async fn revoke_session(
    db: &Db,
    session_id: &str,
    reason: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let sql = "UPDATE sessions SET revoked_at = $1, revoked_reason = $2 WHERE id = $3 AND revoked_at IS NULL";
    let n = with_db!(db, p => sqlx::query(sql).bind(now).bind(reason).bind(session_id).execute(p).await?.rows_affected());
    Ok(n == 1)
}

/// Denylists one access token until it expires.
///
/// # Errors
/// On storage failure.
pub(crate) async fn deny_token(db: &Db, jti: &str, expires_at_ms: i64) -> Result<(), StoreError> {
    let sql =
        "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING";
    with_db!(db, p => sqlx::query(sql).bind(jti).bind(expires_at_ms).execute(p).await?.rows_affected());
    Ok(())
}

/// What verification needs to know beyond the signature.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct TokenState {
    pub(crate) role: String,
    pub(crate) status: String,
    pub(crate) token_generation: i64,
    pub(crate) session_revoked: i64,
    pub(crate) token_revoked: i64,
}

/// One round trip: the user's role, status and generation, and whether the session or the
/// token itself was revoked. `None` when the user or session does not exist.
///
/// # Errors
/// On storage failure.
pub(crate) async fn token_state(
    db: &Db,
    user_id: &str,
    session_id: &str,
    jti: &str,
) -> Result<Option<TokenState>, StoreError> {
    let sql = "SELECT u.role, u.status, u.token_generation,
                      CAST(CASE WHEN s.revoked_at IS NULL THEN 0 ELSE 1 END AS BIGINT) AS session_revoked,
                      CAST(CASE WHEN EXISTS (SELECT 1 FROM revoked_tokens t WHERE t.jti = $3) THEN 1 ELSE 0 END AS BIGINT) AS token_revoked
               FROM users u JOIN sessions s ON s.user_id = u.id AND s.id = $2
               WHERE u.id = $1";
    Ok(
        with_db!(db, p => sqlx::query_as::<_, TokenState>(sql).bind(user_id).bind(session_id).bind(jti).fetch_optional(p).await?),
    )
}

/// Revokes every open session of a user: bind `now`, `reason`, `user_id`.
const END_ALL_SESSIONS: &str = "UPDATE sessions SET revoked_at = $1, revoked_reason = $2 WHERE user_id = $3 AND revoked_at IS NULL";

/// Sets a new password hash, bumps the token generation and revokes every session, atomically.
///
/// # Errors
/// On storage failure.
pub(crate) async fn set_password(
    db: &Db,
    user_id: &str,
    hash: &str,
    reason: &str,
    now: i64,
) -> Result<(), StoreError> {
    write_tx!(db, tx => {
        sqlx::query("UPDATE users SET password_hash = $1, token_generation = token_generation + 1, updated_at = $2 WHERE id = $3")
            .bind(hash).bind(now).bind(user_id).execute(&mut *tx).await?;
        sqlx::query(END_ALL_SESSIONS).bind(now).bind(reason).bind(user_id).execute(&mut *tx).await?;
        Ok::<(), StoreError>(())
    })
}

/// Stores a password reset token hash; older unused ones of the user stop working.
///
/// # Errors
/// On storage failure.
pub(crate) async fn insert_reset(
    db: &Db,
    token_hash: &str,
    user_id: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), StoreError> {
    write_tx!(db, tx => {
        sqlx::query("UPDATE password_resets SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL")
            .bind(now).bind(user_id).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO password_resets (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(token_hash).bind(user_id).bind(now).bind(expires_at).execute(&mut *tx).await?;
        Ok::<(), StoreError>(())
    })
}

/// Uses up a reset token and sets the new password in one transaction. Returns the user id,
/// or `None` when the token is unknown, used or expired.
///
/// # Errors
/// On storage failure.
pub(crate) async fn reset_password(
    db: &Db,
    token_hash: &str,
    new_hash: &str,
    now: i64,
) -> Result<Option<String>, StoreError> {
    write_tx!(db, tx => {
        let user: Option<String> = sqlx::query_scalar(
            "UPDATE password_resets SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING user_id")
            .bind(now).bind(token_hash).fetch_optional(&mut *tx).await?;
        let Some(user_id) = user else { return Ok(None) };
        sqlx::query("UPDATE users SET password_hash = $1, token_generation = token_generation + 1, updated_at = $2 WHERE id = $3")
            .bind(new_hash).bind(now).bind(&user_id).execute(&mut *tx).await?;
        sqlx::query(END_ALL_SESSIONS).bind(now).bind("password_reset").bind(&user_id).execute(&mut *tx).await?;
        Ok::<Option<String>, StoreError>(Some(user_id))
    })
}

/// A throttle counter.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct ThrottleRow {
    pub(crate) failures: i64,
    pub(crate) window_start: i64,
    pub(crate) blocked_until: i64,
}

/// # Errors
/// On storage failure.
pub(crate) async fn throttle_rows(
    db: &Db,
    a: &str,
    b: &str,
) -> Result<Vec<ThrottleRow>, StoreError> {
    let sql =
        "SELECT failures, window_start, blocked_until FROM login_throttle WHERE key IN ($1, $2)";
    Ok(with_db!(db, p => sqlx::query_as::<_, ThrottleRow>(sql).bind(a).bind(b).fetch_all(p).await?))
}

/// Counts one failure under `key`, starting a new window when the old one is over. Returns the
/// row after the update. Atomic, so concurrent instances never lose a count.
///
/// # Errors
/// On storage failure.
pub(crate) async fn throttle_fail(
    db: &Db,
    key: &str,
    now: i64,
    window_ms: i64,
) -> Result<ThrottleRow, StoreError> {
    let sql = "INSERT INTO login_throttle (key, failures, window_start, blocked_until) VALUES ($1, 1, $2, 0)
               ON CONFLICT (key) DO UPDATE SET
                 failures = CASE WHEN login_throttle.window_start <= $3 THEN 1 ELSE login_throttle.failures + 1 END,
                 window_start = CASE WHEN login_throttle.window_start <= $3 THEN $2 ELSE login_throttle.window_start END,
                 blocked_until = CASE WHEN login_throttle.window_start <= $3 THEN 0 ELSE login_throttle.blocked_until END
               RETURNING failures, window_start, blocked_until";
    Ok(
        with_db!(db, p => sqlx::query_as::<_, ThrottleRow>(sql).bind(key).bind(now).bind(now - window_ms).fetch_one(p).await?),
    )
}

/// # Errors
/// On storage failure.
pub(crate) async fn throttle_block(db: &Db, key: &str, until: i64) -> Result<(), StoreError> {
    let sql = "UPDATE login_throttle SET blocked_until = $1 WHERE key = $2 AND blocked_until < $1";
    with_db!(db, p => sqlx::query(sql).bind(until).bind(key).execute(p).await?.rows_affected());
    Ok(())
}

/// # Errors
/// On storage failure.
pub(crate) async fn throttle_clear(db: &Db, a: &str, b: &str) -> Result<(), StoreError> {
    with_db!(db, p => sqlx::query("DELETE FROM login_throttle WHERE key IN ($1, $2)").bind(a).bind(b).execute(p).await?.rows_affected());
    Ok(())
}

/// Filters for the admin user list.
#[derive(Debug, Default)]
pub(crate) struct UserFilter<'a> {
    pub(crate) role: Option<&'a str>,
    pub(crate) status: Option<&'a str>,
    /// Already lowercased and LIKE-escaped, wrapped in `%`.
    pub(crate) pattern: Option<String>,
    pub(crate) after_id: Option<&'a str>,
    pub(crate) limit: i64,
}

/// The `(id, version)` of up to `limit` accounts after `after` (all of them for `""`), of one
/// role when `role` is given, ordered by id (the version list copies are reconciled with).
///
/// # Errors
/// On storage failure.
pub(crate) async fn account_versions(
    db: &Db,
    after: &str,
    role: Option<&str>,
    limit: i64,
) -> Result<Vec<(String, i64)>, StoreError> {
    let sql = "SELECT id, version FROM users WHERE id > $1 AND ($2 IS NULL OR role = $2) ORDER BY id LIMIT $3";
    Ok(with_db!(db, p => sqlx::query_as::<_, (String, i64)>(sql)
        .bind(after).bind(role).bind(limit).fetch_all(p).await?))
}

/// The accounts among `ids` (unknown ids are left out), ordered by id.
///
/// # Errors
/// On storage failure.
pub(crate) async fn users_by_ids(db: &Db, ids: &[String]) -> Result<Vec<UserRow>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(with_db!(db, p => {
        let mut qb = sqlx::QueryBuilder::new(format!("SELECT {USER_COLS} FROM users WHERE id IN ("));
        let mut list = qb.separated(", ");
        for id in ids {
            list.push_bind(id);
        }
        qb.push(") ORDER BY id");
        qb.build_query_as::<UserRow>().fetch_all(p).await?
    }))
}

/// Users ordered by id (UUID v7, so by creation time), keyset-paginated.
///
/// # Errors
/// On storage failure.
pub(crate) async fn list_users(db: &Db, f: &UserFilter<'_>) -> Result<Vec<UserRow>, StoreError> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLS} FROM users
         WHERE ($1 IS NULL OR role = $1) AND ($2 IS NULL OR status = $2)
           AND ($3 IS NULL OR lower(email) LIKE $3 ESCAPE '\\' OR lower(display_name) LIKE $3 ESCAPE '\\')
           AND ($4 IS NULL OR id > $4)
         ORDER BY id LIMIT $5"
    ));
    Ok(with_db!(db, p => sqlx::query_as::<_, UserRow>(sql)
        .bind(f.role).bind(f.status).bind(f.pattern.as_deref()).bind(f.after_id).bind(f.limit)
        .fetch_all(p).await?))
}

/// Moves a user from one of `from` to `to` (compare-and-set), optionally invalidating every
/// token and session, records the admin action in the audit log and writes the event made by
/// `event` for the updated row, atomically. `None` when the user does not exist or was not in
/// an allowed state.
///
/// # Errors
/// On storage failure.
#[expect(
    clippy::too_many_arguments,
    reason = "one audited transition, spelled out at the call"
)]
pub(crate) async fn transition_status(
    db: &Db,
    user_id: &str,
    from: &[&str],
    to: &str,
    end_sessions: bool,
    actor_id: &str,
    action: &str,
    reason: Option<&str>,
    now: i64,
    events: impl FnOnce(&UserRow) -> Result<Vec<Pending>, StoreError>,
) -> Result<Option<UserRow>, StoreError> {
    let (a, b) = (
        from.first().copied().unwrap_or(""),
        from.get(1).copied().unwrap_or(""),
    );
    let sql = sqlx::AssertSqlSafe(format!(
        "UPDATE users SET version = version + 1, status = $1, updated_at = $2,
             token_generation = token_generation + $3
         WHERE id = $4 AND status IN ($5, $6) RETURNING {USER_COLS}"
    ));
    write_tx!(db, tx => {
        let row = sqlx::query_as::<_, UserRow>(sql)
            .bind(to).bind(now).bind(i64::from(end_sessions)).bind(user_id).bind(a).bind(b)
            .fetch_optional(&mut *tx).await?;
        if let Some(row) = &row {
            for e in events(row)? {
                enqueue!(&mut *tx, e)?;
            }
            if end_sessions {
                sqlx::query(END_ALL_SESSIONS).bind(now).bind(action).bind(user_id).execute(&mut *tx).await?;
            }
            sqlx::query("INSERT INTO audit_log (id, at, actor_id, target_id, action, reason) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(uuid::Uuid::now_v7().to_string()).bind(now).bind(actor_id).bind(user_id).bind(action).bind(reason)
                .execute(&mut *tx).await?;
        }
        Ok::<Option<UserRow>, StoreError>(row)
    })
}

/// Deletes what can no longer matter: expired denylist entries, refresh tokens and reset
/// tokens, and throttle windows that are over.
///
/// # Errors
/// On storage failure.
pub(crate) async fn purge_expired(
    db: &Db,
    now: i64,
    throttle_window_ms: i64,
) -> Result<u64, StoreError> {
    let mut n = 0;
    with_db!(db, p => {
        n += sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < $1").bind(now).execute(p).await?.rows_affected();
        n += sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < $1").bind(now).execute(p).await?.rows_affected();
        n += sqlx::query("DELETE FROM password_resets WHERE expires_at < $1").bind(now).execute(p).await?.rows_affected();
        n += sqlx::query("DELETE FROM login_throttle WHERE window_start < $1 AND blocked_until < $2")
            .bind(now - throttle_window_ms).bind(now).execute(p).await?.rows_affected();
    });
    Ok(n)
}
