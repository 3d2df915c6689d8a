//! The transactional outbox: an event is written to the service's `outbox` table in the same
//! transaction as the change it describes, and a relay publishes it to JetStream afterwards,
//! with the event id as `Nats-Msg-Id`. A crash between commit and publish loses nothing (the row
//! waits), and a publish repeated after a crash is stored once (the stream's duplicate window).
//! An event recorded while handling a call or another event keeps that request id and is
//! published with it (`Carehub-Request-Id`), so consumers log under the id that caused it.
//!
//! Each service creates the table in its own migrations:
//!
//! ```sql
//! CREATE TABLE outbox (
//!     id TEXT PRIMARY KEY, subject TEXT NOT NULL, payload TEXT NOT NULL,
//!     created_at BIGINT NOT NULL, attempts BIGINT NOT NULL DEFAULT 0, next_attempt_at BIGINT NOT NULL
//! );
//! ALTER TABLE outbox ADD COLUMN request_id TEXT;
//! ```

use crate::db::{Db, StoreError, now_ms};
use crate::with_db;
use async_nats::jetstream;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Insert statement for one pending event; bind `id`, `subject`, `payload`, `created_at`,
/// `request_id`.
pub const INSERT: &str = "INSERT INTO outbox (id, subject, payload, created_at, attempts, next_attempt_at, request_id) VALUES ($1, $2, $3, $4, 0, $4, $5)";

/// An event ready to be written to the outbox.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: String,
    pub subject: String,
    pub payload: String,
    pub created_at: i64,
    /// The request being handled when the event was recorded, if any.
    pub request_id: Option<String>,
}

impl Pending {
    /// The event, with the current request id ([`carehub_bus::context::current_request_id`]).
    ///
    /// # Errors
    /// When the event cannot be encoded as JSON.
    pub fn new<T: Serialize>(subject: &str, id: &str, event: &T) -> Result<Self, StoreError> {
        let payload = serde_json::to_string(event)
            .map_err(|e| StoreError::Other(sqlx::Error::Encode(Box::new(e))))?;
        Ok(Self {
            id: id.to_owned(),
            subject: subject.to_owned(),
            payload,
            created_at: now_ms(),
            request_id: carehub_bus::context::current_request_id(),
        })
    }
}

/// Writes a [`Pending`] event inside the caller's transaction: `enqueue!(&mut *tx, pending)`.
#[macro_export]
macro_rules! enqueue {
    ($executor:expr, $pending:expr) => {{
        let p: &$crate::outbox::Pending = &$pending;
        sqlx::query($crate::outbox::INSERT)
            .bind(&p.id)
            .bind(&p.subject)
            .bind(&p.payload)
            .bind(p.created_at)
            .bind(&p.request_id)
            .execute($executor)
            .await
    }};
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    subject: String,
    payload: String,
    attempts: i64,
    request_id: Option<String>,
}

/// Publishes outbox rows to JetStream in order, deleting each once the stream acknowledged it.
///
/// With metrics on, it reports `carehub_outbox_backlog` (sampled at most once a second),
/// `carehub_outbox_published_total` and `carehub_outbox_publish_failures_total`.
#[derive(Clone)]
pub struct Relay {
    /// The owning service: the `component` label of the relay's metrics.
    service: &'static str,
    db: Db,
    js: jetstream::Context,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").finish_non_exhaustive()
    }
}

const BATCH: i64 = 100;
const IDLE_POLL: Duration = Duration::from_millis(500);
const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// The backlog gauge is refreshed at most this often.
const BACKLOG_EVERY: Duration = Duration::from_secs(1);

impl Relay {
    /// The relay of `service`'s outbox.
    pub fn new(service: &'static str, db: Db, js: jetstream::Context) -> Self {
        Self {
            service,
            db,
            js,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Tells the relay a new row is there, so it does not wait for its next poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs until `stop` is cancelled.
    pub fn spawn(self, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut sampled: Option<tokio::time::Instant> = None;
            loop {
                if crate::metrics::enabled()
                    && sampled.is_none_or(|at| at.elapsed() >= BACKLOG_EVERY)
                {
                    sampled = Some(tokio::time::Instant::now());
                    self.report_backlog().await;
                }
                let sent = match self.drain_once().await {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(error = %e, "outbox relay");
                        0
                    }
                };
                if sent > 0 {
                    continue;
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(IDLE_POLL) => {}
                }
            }
        })
    }

    /// Publishes what is due, in id order, stopping at the first failure so order holds.
    /// Returns how many rows were published.
    ///
    /// # Errors
    /// On storage failure.
    pub(crate) async fn drain_once(&self) -> Result<usize, StoreError> {
        let now = now_ms();
        let sql = "SELECT id, subject, payload, attempts, request_id FROM outbox WHERE next_attempt_at <= $1 ORDER BY id LIMIT $2";
        let rows: Vec<Row> =
            with_db!(&self.db, p => sqlx::query_as(sql).bind(now).bind(BATCH).fetch_all(p).await?);
        let mut sent = 0;
        for row in rows {
            crate::fault::hit("outbox_before_publish");
            if let Err(e) = self.publish(&row).await {
                ::metrics::counter!("carehub_outbox_publish_failures_total", "component" => self.service)
                    .increment(1);
                let backoff = 200i64 * (1i64 << row.attempts.clamp(0, 8));
                tracing::warn!(error = %e, event_id = %row.id, attempts = row.attempts + 1, "event publish failed; will retry");
                let retry =
                    "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1 WHERE id = $2";
                with_db!(&self.db, p => sqlx::query(retry).bind(now + backoff).bind(&row.id).execute(p).await?.rows_affected());
                break;
            }
            crate::fault::hit("outbox_after_publish");
            with_db!(&self.db, p => sqlx::query("DELETE FROM outbox WHERE id = $1").bind(&row.id).execute(p).await?.rows_affected());
            sent += 1;
        }
        if sent > 0 {
            ::metrics::counter!("carehub_outbox_published_total", "component" => self.service)
                .increment(sent as u64);
        }
        Ok(sent)
    }

    async fn publish(&self, row: &Row) -> Result<(), String> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", row.id.as_str());
        if let Some(id) = &row.request_id {
            headers.insert(carehub_nats::rpc::headers::REQUEST_ID, id.as_str());
        }
        let ack = self
            .js
            .publish_with_headers(row.subject.clone(), headers, row.payload.clone().into())
            .await
            .map_err(|e| e.to_string())?;
        tokio::time::timeout(ACK_TIMEOUT, ack)
            .await
            .map_err(|_| "no acknowledgement from JetStream".to_owned())?
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    async fn report_backlog(&self) {
        match self.backlog().await {
            Ok(n) => {
                ::metrics::gauge!("carehub_outbox_backlog", "component" => self.service)
                    .set(n as f64);
            }
            Err(e) => tracing::debug!(error = %e, "outbox backlog count"),
        }
    }

    /// Rows waiting to be published (for metrics and tests).
    ///
    /// # Errors
    /// On storage failure.
    pub(crate) async fn backlog(&self) -> Result<i64, StoreError> {
        Ok(
            with_db!(&self.db, p => sqlx::query_scalar::<_, i64>("SELECT CAST(COUNT(*) AS BIGINT) FROM outbox").fetch_one(p).await?),
        )
    }
}
