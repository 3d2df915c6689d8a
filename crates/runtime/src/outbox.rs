//! The transactional outbox: an event is written to the service's `outbox` table in the same
//! transaction as the change it describes, and a relay publishes it to JetStream afterwards,
//! with the event id as `Nats-Msg-Id`. A crash between commit and publish loses nothing (the row
//! waits), and a publish repeated after a crash is stored once (the stream's duplicate window).
//! A failed publish is tried again after 200 ms, doubling per attempt up to 51 s; once NATS is
//! reconnected every waiting row is due at once, with its back-off started over.
//! An event recorded while handling a call or another event keeps that request id and is
//! published with it (`Carehub-Request-Id`), so consumers log under the id that caused it.
//!
//! A published row is not forgotten: in the transaction that deletes it from `outbox` it moves
//! to `outbox_sent` with the stream and sequence JetStream acknowledged, and stays there for the
//! retention (`CAREHUB_OUTBOX_RETENTION`, 7 days by default). That history is what re-delivers an
//! event the stream lost after acknowledging it ([`replay`], `carehub ops replay`). An instance
//! of an older version running beside a migrated one only reads `outbox`, so it never
//! republishes a retained row.
//!
//! Each service creates the tables in its own migrations:
//!
//! ```sql
//! CREATE TABLE outbox (
//!     id TEXT PRIMARY KEY, subject TEXT NOT NULL, payload TEXT NOT NULL,
//!     created_at BIGINT NOT NULL, attempts BIGINT NOT NULL DEFAULT 0, next_attempt_at BIGINT NOT NULL
//! );
//! ALTER TABLE outbox ADD COLUMN request_id TEXT;
//! CREATE TABLE outbox_sent (
//!     id TEXT PRIMARY KEY, subject TEXT NOT NULL, payload TEXT NOT NULL,
//!     created_at BIGINT NOT NULL, request_id TEXT, published_at BIGINT NOT NULL,
//!     stream TEXT NOT NULL, stream_seq BIGINT NOT NULL
//! );
//! CREATE INDEX outbox_sent_created_at ON outbox_sent (created_at);
//! CREATE INDEX outbox_sent_stream ON outbox_sent (stream, id);
//! ```

use crate::db::{Db, StoreError, now_ms};
use crate::{with_db, write_tx};
use async_nats::jetstream;
use async_nats::jetstream::publish::PublishAck;
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

/// One stored event, as the relay and a replay publish it.
#[derive(sqlx::FromRow)]
struct StoredEvent {
    id: String,
    subject: String,
    payload: String,
    request_id: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Row {
    #[sqlx(flatten)]
    event: StoredEvent,
    attempts: i64,
}

/// Moves a published row to `outbox_sent`; bind `id`, `published_at`, `stream`, `stream_seq`.
/// A row already there (published again after a crash between publish and commit) keeps its
/// first position.
const MOVE_TO_SENT: &str = "INSERT INTO outbox_sent (id, subject, payload, created_at, request_id, published_at, stream, stream_seq) \
     SELECT id, subject, payload, created_at, request_id, $2, $3, $4 FROM outbox WHERE id = $1 \
     ON CONFLICT (id) DO NOTHING";

/// How a relay keeps and checks what it published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayOptions {
    /// How long published rows stay in `outbox_sent` (`CAREHUB_OUTBOX_RETENTION`).
    pub retention: Duration,
    /// How often the relay checks that its streams still hold what they acknowledged, besides
    /// at start and after every NATS reconnect (`CAREHUB_RECONCILE_INTERVAL`); `None` turns the
    /// checks off (`CAREHUB_RECONCILE=off`).
    pub check_every: Option<Duration>,
    /// How often a service compares its copies of other services' records with their owners'
    /// versions ([`crate::reconcile`]; `CAREHUB_RECONCILE_COPIES_INTERVAL`, by default the check
    /// interval); `None`: never.
    pub copies_every: Option<Duration>,
}

impl Default for RelayOptions {
    fn default() -> Self {
        Self {
            retention: crate::config::OUTBOX_RETENTION,
            check_every: Some(crate::config::RECONCILE_INTERVAL),
            copies_every: Some(crate::config::RECONCILE_INTERVAL),
        }
    }
}

/// Published rows deleted per statement when the retention is purged.
const PURGE_BATCH: i64 = 1000;
/// How soon a position check that failed is tried again.
const CHECK_RETRY: Duration = Duration::from_secs(5);
/// How often published rows past the retention are purged.
const PURGE_EVERY: Duration = Duration::from_secs(60);

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
    options: RelayOptions,
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
            options: RelayOptions::default(),
        }
    }

    /// Keeps and checks published rows as `options` says.
    #[must_use]
    pub fn with_options(mut self, options: RelayOptions) -> Self {
        self.options = options;
        self
    }

    /// Tells the relay a new row is there, so it does not wait for its next poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs until `stop` is cancelled.
    pub fn spawn(self, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut sampled: Option<tokio::time::Instant> = None;
            let mut purged: Option<tokio::time::Instant> = None;
            let connects = self.js.client().statistics();
            let mut seen_connects = connects.connects.load(std::sync::atomic::Ordering::Relaxed);
            let mut next_check = tokio::time::Instant::now();
            loop {
                if purged.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
                    purged = Some(tokio::time::Instant::now());
                    if let Err(e) = self.purge_sent().await {
                        tracing::warn!(error = %e, "purging published outbox rows");
                    }
                }
                let now_connects = connects.connects.load(std::sync::atomic::Ordering::Relaxed);
                let reconnected = now_connects != seen_connects;
                seen_connects = now_connects;
                if reconnected {
                    // Rows that failed while NATS was away go out now, not after their back-off.
                    match self.reset_backoff().await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(
                            rows = n,
                            "NATS reconnected; publishing waiting events now"
                        ),
                        Err(e) => tracing::warn!(error = %e, "resetting the outbox back-off"),
                    }
                }
                if let Some(every) = self.options.check_every
                    && (tokio::time::Instant::now() >= next_check || reconnected)
                {
                    next_check = match self.check_positions().await {
                        Ok(_) => tokio::time::Instant::now() + every,
                        // NATS away, or a permission missing (docs/OPERATIONS.md): publishing
                        // goes on, and the check is tried again a little later.
                        Err(e) => {
                            tracing::warn!(error = %e, "outbox position check failed; trying again shortly");
                            tokio::time::Instant::now() + CHECK_RETRY.min(every)
                        }
                    };
                }
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

    /// Makes every row waiting out a back-off due now, its attempts counted from zero again.
    /// Returns how many rows it changed.
    ///
    /// # Errors
    /// On storage failure.
    pub(crate) async fn reset_backoff(&self) -> Result<u64, StoreError> {
        let sql = "UPDATE outbox SET attempts = 0, next_attempt_at = $1 WHERE next_attempt_at > $1";
        let now = now_ms();
        Ok(with_db!(&self.db, p => sqlx::query(sql).bind(now).execute(p).await?.rows_affected()))
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
            let ack = match publish(&self.js, &row.event).await {
                Ok(ack) => ack,
                Err(e) => {
                    ::metrics::counter!("carehub_outbox_publish_failures_total", "component" => self.service)
                        .increment(1);
                    let backoff = 200i64 * (1i64 << row.attempts.clamp(0, 8));
                    tracing::warn!(error = %e, event_id = %row.event.id, attempts = row.attempts + 1, "event publish failed; will retry");
                    let retry = "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1 WHERE id = $2";
                    with_db!(&self.db, p => sqlx::query(retry).bind(now + backoff).bind(&row.event.id).execute(p).await?.rows_affected());
                    break;
                }
            };
            crate::fault::hit("outbox_after_publish");
            self.record_sent(&row.event.id, &ack).await?;
            sent += 1;
        }
        if sent > 0 {
            ::metrics::counter!("carehub_outbox_published_total", "component" => self.service)
                .increment(sent as u64);
        }
        Ok(sent)
    }

    /// Moves the published row `id` from `outbox` to `outbox_sent`, in one transaction.
    async fn record_sent(&self, id: &str, ack: &PublishAck) -> Result<(), StoreError> {
        let seq = i64::try_from(ack.sequence).unwrap_or(i64::MAX);
        let published_at = now_ms();
        write_tx!(&self.db, tx => {
            sqlx::query(MOVE_TO_SENT)
                .bind(id)
                .bind(published_at)
                .bind(&ack.stream)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM outbox WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            Ok::<(), StoreError>(())
        })
    }

    /// Deletes the published rows older than the retention, a batch at a time. Returns how many.
    ///
    /// # Errors
    /// On storage failure.
    pub(crate) async fn purge_sent(&self) -> Result<u64, StoreError> {
        let cutoff = now_ms()
            .saturating_sub(i64::try_from(self.options.retention.as_millis()).unwrap_or(i64::MAX));
        let sql = "DELETE FROM outbox_sent WHERE id IN (SELECT id FROM outbox_sent WHERE created_at < $1 ORDER BY created_at LIMIT $2)";
        let mut total = 0;
        loop {
            let n = with_db!(&self.db, p => sqlx::query(sql).bind(cutoff).bind(PURGE_BATCH).execute(p).await?.rows_affected());
            total += n;
            if n < PURGE_BATCH as u64 {
                break;
            }
        }
        if total > 0 {
            tracing::debug!(
                rows = total,
                "purged published outbox rows past the retention"
            );
        }
        Ok(total)
    }

    /// Checks, per stream, that the newest row of `outbox_sent` is where the stream acknowledged
    /// it (same sequence, same `Nats-Msg-Id`). When a stream lost acknowledged messages (a
    /// restored store, a power loss before a sync), finds the newest row it still holds by
    /// binary search and publishes every later row again with its original id, recording the
    /// new positions. Returns how many rows were published again.
    ///
    /// # Errors
    /// On storage failure, or when JetStream does not answer (the check is tried again later).
    pub async fn check_positions(&self) -> anyhow::Result<u64> {
        ::metrics::counter!("carehub_reconcile_runs_total", "component" => self.service, "kind" => "outbox_positions")
            .increment(1);
        let streams: Vec<String> = with_db!(&self.db, p => sqlx::query_scalar("SELECT DISTINCT stream FROM outbox_sent").fetch_all(p).await)?;
        let mut republished = 0;
        for name in streams {
            republished += self.check_stream(&name).await?;
        }
        Ok(republished)
    }

    async fn check_stream(&self, name: &str) -> anyhow::Result<u64> {
        let stream = self.js.get_stream(name).await?;
        let count: i64 = with_db!(&self.db, p => sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM outbox_sent WHERE stream = $1").bind(name).fetch_one(p).await)?;
        if count == 0 || self.row_is_held(&stream, name, count - 1).await? {
            return Ok(0);
        }
        ::metrics::counter!("carehub_stream_rewind_detected_total", "component" => self.service, "stream" => name.to_owned())
            .increment(1);
        // Rows the stream holds come first (it lost a tail): the newest one it holds is found
        // by binary search; -1 when it holds none of them.
        let (mut held, mut lost) = (-1i64, count - 1);
        while lost - held > 1 {
            let mid = held + (lost - held) / 2;
            if self.row_is_held(&stream, name, mid).await? {
                held = mid;
            } else {
                lost = mid;
            }
        }
        let after: String = if held < 0 {
            String::new()
        } else {
            self.sent_at_offset(name, held).await?.0
        };
        let mut again = 0u64;
        let mut named: Vec<String> = Vec::new();
        let mut cursor = after;
        loop {
            let sql = "SELECT id, subject, payload, request_id FROM outbox_sent WHERE stream = $1 AND id > $2 ORDER BY id LIMIT $3";
            let rows: Vec<StoredEvent> = with_db!(&self.db, p => sqlx::query_as(sql).bind(name).bind(&cursor).bind(BATCH).fetch_all(p).await)?;
            let Some(last) = rows.last() else { break };
            cursor.clone_from(&last.id);
            for row in &rows {
                let ack = publish(&self.js, row)
                    .await
                    .map_err(|e| anyhow::anyhow!("republishing event {}: {e}", row.id))?;
                let seq = i64::try_from(ack.sequence).unwrap_or(i64::MAX);
                let moved = "UPDATE outbox_sent SET stream = $1, stream_seq = $2, published_at = $3 WHERE id = $4";
                with_db!(&self.db, p => sqlx::query(moved).bind(&ack.stream).bind(seq).bind(now_ms()).bind(&row.id).execute(p).await.map(|r| r.rows_affected()))?;
                again += 1;
                if named.len() < 20 {
                    named.push(row.id.clone());
                }
            }
            if (rows.len() as i64) < BATCH {
                break;
            }
        }
        ::metrics::counter!("carehub_outbox_republished_total", "component" => self.service)
            .increment(again);
        tracing::warn!(
            stream = name,
            republished = again,
            event_ids = %named.join(","),
            "the stream lost events it had acknowledged; published them again from outbox_sent"
        );
        Ok(again)
    }

    /// The id and stream sequence of the row at `offset` of `stream`'s rows in id order.
    async fn sent_at_offset(&self, stream: &str, offset: i64) -> anyhow::Result<(String, i64)> {
        let sql = "SELECT id, stream_seq FROM outbox_sent WHERE stream = $1 ORDER BY id LIMIT 1 OFFSET $2";
        Ok(
            with_db!(&self.db, p => sqlx::query_as(sql).bind(stream).bind(offset).fetch_one(p).await)?,
        )
    }

    /// Whether the stream holds the row at `offset` where it acknowledged it.
    async fn row_is_held(
        &self,
        stream: &jetstream::stream::Stream,
        name: &str,
        offset: i64,
    ) -> anyhow::Result<bool> {
        let (id, seq) = self.sent_at_offset(name, offset).await?;
        let Ok(seq) = u64::try_from(seq) else {
            return Ok(false);
        };
        match stream.get_raw_message(seq).await {
            Ok(msg) => Ok(msg
                .headers
                .get("Nats-Msg-Id")
                .is_some_and(|v| v.as_str() == id)),
            Err(e)
                if matches!(
                    e.kind(),
                    jetstream::stream::LastRawMessageErrorKind::NoMessageFound
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
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

    /// Rows waiting to be published (for metrics and tests); published rows kept in
    /// `outbox_sent` do not count.
    ///
    /// # Errors
    /// On storage failure.
    pub(crate) async fn backlog(&self) -> Result<i64, StoreError> {
        Ok(
            with_db!(&self.db, p => sqlx::query_scalar::<_, i64>("SELECT CAST(COUNT(*) AS BIGINT) FROM outbox").fetch_one(p).await?),
        )
    }
}

/// Publishes one event with its id as `Nats-Msg-Id` (and its request id) and waits for the
/// stream's acknowledgement.
async fn publish(js: &jetstream::Context, event: &StoredEvent) -> Result<PublishAck, String> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", event.id.as_str());
    if let Some(request_id) = &event.request_id {
        headers.insert(carehub_nats::rpc::headers::REQUEST_ID, request_id.as_str());
    }
    let ack = js
        .publish_with_headers(event.subject.clone(), headers, event.payload.clone().into())
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::timeout(ACK_TIMEOUT, ack)
        .await
        .map_err(|_| "no acknowledgement from JetStream".to_owned())?
        .map_err(|e| e.to_string())
}

/// What [`replay`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Events published again, in their original order with their original ids.
    pub republished: u64,
    /// Of those, how many the stream recognised as duplicates (inside its duplicate window) and
    /// did not store again.
    pub duplicates: u64,
}

/// Publishes again every event in `outbox_sent` created at or after `since_ms` (milliseconds
/// since the epoch), oldest first, with its original id, so consumers that lost it apply it and
/// those that have it ignore it. Stops at the first publish that fails.
///
/// # Errors
/// On storage failure (for example a database not migrated to `outbox_sent` yet), or when
/// JetStream does not acknowledge an event.
pub async fn replay(
    db: &Db,
    js: &jetstream::Context,
    since_ms: i64,
) -> anyhow::Result<ReplayReport> {
    const PAGE: i64 = 500;
    let mut report = ReplayReport::default();
    let mut after = String::new();
    loop {
        let sql = "SELECT id, subject, payload, request_id FROM outbox_sent WHERE created_at >= $1 AND id > $2 ORDER BY id LIMIT $3";
        let rows: Vec<StoredEvent> = with_db!(db, p => sqlx::query_as(sql).bind(since_ms).bind(&after).bind(PAGE).fetch_all(p).await)
            .map_err(|e| anyhow::anyhow!("reading outbox_sent: {e}"))?;
        let Some(last) = rows.last() else { break };
        after.clone_from(&last.id);
        for row in &rows {
            let ack = publish(js, row)
                .await
                .map_err(|e| anyhow::anyhow!("republishing event {}: {e}", row.id))?;
            report.republished += 1;
            if ack.duplicate {
                report.duplicates += 1;
            }
        }
        if (rows.len() as i64) < PAGE {
            break;
        }
    }
    Ok(report)
}
