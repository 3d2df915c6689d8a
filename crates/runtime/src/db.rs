//! A service's database: a SQLite file of its own by default, or a PostgreSQL schema of its own.
//!
//! SQL is written once with `$1` placeholders and portable types (TEXT, BIGINT, BOOLEAN), and run
//! on either typed pool through [`with_db!`](crate::with_db) and [`write_tx!`](crate::write_tx).
//! SQLite writes use `BEGIN IMMEDIATE`, so two writers queue on the lock (bounded by
//! `busy_timeout`) instead of failing mid-transaction. Only one machine may use the SQLite files;
//! services on several machines must share PostgreSQL.

use carehub_nats::{ErrorCode, WireError};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, PgPool, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// A pooled PostgreSQL connection idle this long is pinged before it is handed out, so one
/// that died with a server restart or a dropped network path during a quiet spell is
/// replaced rather than failing a request. Under load connections are handed out again
/// within milliseconds and a ping would be a round trip to the server for every query; a
/// connection that breaks while busy fails the query it was running either way.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Which engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A pool on one of the two supported engines. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to whichever typed pool `$db` holds.
#[macro_export]
macro_rules! with_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($pool) => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` inside a write transaction bound to `$tx` and commits it if `$body` evaluates to
/// `Ok`. An early `?` return (or an `Err` value) rolls back, and so does any early `return`,
/// even of `Ok`: a body whose writes must stay leaves by value (a labelled block and `break`).
/// SQLite uses `BEGIN IMMEDIATE`.
#[macro_export]
macro_rules! write_tx {
    ($db:expr, $tx:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite(pool) => {
                let mut $tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let out = $body;
                if out.is_ok() {
                    $tx.commit().await?;
                }
                out
            }
            $crate::db::Db::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                let out = $body;
                if out.is_ok() {
                    $tx.commit().await?;
                }
                out
            }
        }
    };
}

/// Storage failures, classified for callers.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint, a serialization failure or a busy database: a concurrent change won.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Other(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::RowNotFound = e {
            return Self::NotFound;
        }
        if let Some(db) = e.as_database_error() {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            // PostgreSQL: serialization_failure, deadlock_detected, exclusion_violation.
            // SQLite: BUSY, LOCKED (+extended), and a trigger's RAISE(ABORT) (constraint guards).
            let lost_race = matches!(
                code.as_str(),
                "40001" | "40P01" | "23P01" | "5" | "6" | "517" | "261" | "262" | "1811"
            );
            if db.is_unique_violation() || lost_race {
                return Self::Conflict(db.message().to_owned());
            }
        }
        Self::Other(e)
    }
}

/// Whether `e` says the database could not be reached or the connection broke (a server
/// restart, a dropped network path, a pool that could not hand out a connection in time)
/// rather than anything about the request: the caller may retry.
fn unreachable_database(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // PostgreSQL's classes 08 (connection exception) and 57P (operator intervention:
        // admin_shutdown, crash_shutdown, cannot_connect_now).
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

impl From<StoreError> for WireError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(_) => WireError::new(
                ErrorCode::Conflict,
                "the record was changed concurrently; reload and try again",
            ),
            StoreError::NotFound => WireError::not_found("not found"),
            StoreError::Other(e) if unreachable_database(&e) => {
                tracing::warn!(error = %e, "database unavailable");
                WireError {
                    retry_after_secs: Some(1),
                    ..WireError::new(
                        ErrorCode::ServiceUnavailable,
                        "the database is unavailable; try again shortly",
                    )
                }
            }
            StoreError::Other(e) => {
                tracing::error!(error = %e, "storage error");
                WireError::internal()
            }
        }
    }
}

impl Db {
    /// Opens the database of `service`. With no URL, a SQLite file `<data_dir>/<service>.db`
    /// (WAL, `busy_timeout` 5 s, foreign keys on). A `postgres://` URL uses the schema named
    /// after the service (created if missing) so services sharing one database never see each
    /// other's tables. `sqlite:` URLs are accepted too.
    ///
    /// # Errors
    /// When the URL is malformed or the database cannot be reached.
    pub async fn connect(
        service: &str,
        url: Option<&str>,
        data_dir: &Path,
    ) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        match url {
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                let schema = schema_name(service);
                let base = PgConnectOptions::from_str(u)
                    .with_context(|| format!("invalid PostgreSQL URL for the {service} service"))?
                    .log_statements(tracing::log::LevelFilter::Trace);
                create_schema(&base, &schema).await?;
                let opts = base.options([("search_path", schema.as_str())]);
                let pool = PgPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(5))
                    .test_before_acquire(false)
                    .before_acquire(|conn, meta| {
                        Box::pin(async move {
                            if meta.idle_for >= PING_AFTER_IDLE {
                                conn.ping().await?;
                            }
                            Ok(true)
                        })
                    })
                    .connect_with(opts)
                    .await
                    .with_context(|| format!("connecting the {service} service to PostgreSQL"))?;
                Ok(Self::Postgres(pool))
            }
            Some(u) if u.starts_with("sqlite:") => {
                let opts = SqliteConnectOptions::from_str(u)
                    .with_context(|| format!("invalid SQLite URL for the {service} service"))?;
                Self::open_sqlite(service, opts).await
            }
            Some(u) => anyhow::bail!(
                "CAREHUB_DATABASE_URL (or CAREHUB_{}_DATABASE_URL): unsupported scheme in '{}'; use postgres:// or sqlite:",
                service.to_ascii_uppercase(),
                u.split(':').next().unwrap_or_default()
            ),
            None => {
                std::fs::create_dir_all(data_dir)
                    .with_context(|| format!("creating data directory {}", data_dir.display()))?;
                let opts =
                    SqliteConnectOptions::new().filename(data_dir.join(format!("{service}.db")));
                Self::open_sqlite(service, opts).await
            }
        }
    }

    async fn open_sqlite(service: &str, opts: SqliteConnectOptions) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let opts = opts
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            .log_statements(tracing::log::LevelFilter::Trace);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            // The connection is a handle in this process, served by its own thread: there is
            // no far end that could have gone away, and a ping is a round trip to that thread.
            .test_before_acquire(false)
            .connect_with(opts)
            .await
            .with_context(|| format!("opening the {service} service's SQLite database"))?;
        Ok(Self::Sqlite(pool))
    }

    /// Runs the service's migrations (idempotent; PostgreSQL serializes concurrent runners).
    ///
    /// Migrations that a newer version applied and this build does not know are left alone:
    /// migrations only expand the schema while two versions may run (docs/OPERATIONS.md), so an
    /// instance of the previous version must still start, e.g. when it restarts in the middle
    /// of a rolling upgrade or after a rollback.
    ///
    /// # Errors
    /// When a migration fails or an applied one was edited.
    pub async fn migrate(&self, migrator: &Migrator) -> anyhow::Result<()> {
        use anyhow::Context as _;
        let mut migrator = Migrator::with_migrations(migrator.iter().cloned().collect());
        migrator.set_ignore_missing(true);
        let migrator = &migrator;
        match self {
            // PostgreSQL: sqlx holds an advisory lock, so concurrent runners take turns.
            Self::Postgres(pool) => migrator.run(pool).await.context("running migrations"),
            // SQLite has no such lock, so instances starting together take turns on an
            // advisory lock file beside the database (`<file>.migrate.lock`). Instances of an
            // older build do not take it; for them a lost race rolls back and running again
            // sees the winner's work and skips it.
            Self::Sqlite(pool) => {
                let _turn = sqlite_migration_lock(pool).await?;
                let mut attempt = 0;
                loop {
                    match migrator.run(pool).await {
                        Ok(()) => return Ok(()),
                        Err(e) if attempt < 5 => {
                            attempt += 1;
                            tracing::info!(error = %e, attempt, "migration raced another instance; retrying");
                            tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                        }
                        Err(e) => return Err(e).context("running migrations"),
                    }
                }
            }
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        with_db!(self, pool => pool.close().await);
    }
}

/// Takes the exclusive advisory lock of the SQLite file behind `pool`, waiting for another
/// process that holds it. Released when the returned file is dropped (or the process exits).
/// An in-memory database needs no lock.
async fn sqlite_migration_lock(pool: &SqlitePool) -> anyhow::Result<Option<std::fs::File>> {
    use anyhow::Context as _;
    let db = pool.connect_options().get_filename().to_path_buf();
    if db.as_os_str().is_empty() || db.as_os_str() == ":memory:" {
        return Ok(None);
    }
    let mut path = db.into_os_string();
    path.push(".migrate.lock");
    let path = std::path::PathBuf::from(path);
    tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        file.lock()
            .with_context(|| format!("locking {}", path.display()))?;
        Ok(Some(file))
    })
    .await
    .context("waiting for the migration lock")?
}

fn schema_name(service: &str) -> String {
    service
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect::<String>()
        .to_ascii_lowercase()
}

async fn create_schema(opts: &PgConnectOptions, schema: &str) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let mut conn = sqlx::PgConnection::connect_with(opts)
        .await
        .context("connecting to PostgreSQL")?;
    let sql = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
    if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
    {
        // Two instances starting together may race on the catalog; the loser sees the schema.
        match StoreError::from(e) {
            StoreError::Conflict(_) => {}
            other => return Err(other).context("creating the service schema"),
        }
    }
    conn.close().await.ok();
    Ok(())
}

impl StoreError {
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict(_))
    }
}

/// Current time in Unix milliseconds, the one timestamp representation stored by services.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The `LIKE … ESCAPE '\'` pattern of every text that contains `q` lowercased (to compare with a
/// lowercased column); `%`, `_` and `\` in `q` match only themselves.
pub fn like_contains(q: &str) -> String {
    let mut pattern = String::with_capacity(q.len() + 2);
    pattern.push('%');
    for c in q.to_lowercase().chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Cuts `rows`, read with `LIMIT limit + 1` for keyset paging, to one page of `limit`; the cursor
/// of the next page (the `key` of the page's last row) when there is one.
pub fn next_page<T>(
    rows: &mut Vec<T>,
    limit: i64,
    key: impl FnOnce(&T) -> String,
) -> Option<String> {
    let page = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = rows.len() > page;
    rows.truncate(page);
    if more { rows.last().map(key) } else { None }
}

#[cfg(test)]
mod tests {
    use super::{StoreError, like_contains, next_page};
    use carehub_nats::{ErrorCode, WireError};

    #[test]
    fn a_lost_database_answers_503_with_a_retry_and_anything_else_stays_internal() {
        let lost = WireError::from(StoreError::Other(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        ))));
        assert_eq!(lost.code, ErrorCode::ServiceUnavailable);
        assert_eq!(lost.retry_after_secs, Some(1));
        let busy = WireError::from(StoreError::Other(sqlx::Error::PoolTimedOut));
        assert_eq!(busy.code, ErrorCode::ServiceUnavailable);
        let bug = WireError::from(StoreError::Other(sqlx::Error::ColumnNotFound("x".into())));
        assert_eq!(bug.code, ErrorCode::Internal);
        assert_eq!(bug.retry_after_secs, None);
    }

    #[test]
    fn a_page_is_cut_to_its_limit_and_names_the_next_one() {
        let mut rows = vec![1, 2, 3];
        assert_eq!(next_page(&mut rows, 2, i32::to_string), Some("2".into()));
        assert_eq!(rows, [1, 2]);
        let mut last = vec![1, 2];
        assert_eq!(next_page(&mut last, 2, i32::to_string), None);
        assert_eq!(last, [1, 2]);
    }

    #[test]
    fn like_patterns_are_lowercased_and_escaped() {
        assert_eq!(like_contains("Novák"), "%novák%");
        assert_eq!(like_contains(r"50%_a\b"), r"%50\%\_a\\b%");
    }
}
