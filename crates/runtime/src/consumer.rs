//! The one way a service reads a JetStream stream as a durable consumer: [`run`] decodes each
//! event into the handler's type, applies it, and acknowledges it according to the outcome.
//!
//! | outcome | acknowledgement | also |
//! |---|---|---|
//! | applied | `double_ack` (confirmed by the server) | |
//! | undecodable (the payload is not a `T`) | `Term`: never delivered again | error log with the stream sequence; `carehub_events_undecodable_total{consumer}` |
//! | apply failed | `Nak` with a delay that doubles per delivery (1 s, 2 s, 4 s, … capped at 5 min) | warning log |
//! | apply failed on delivery [`MAX_DELIVER`] (20, about an hour after the first) | `Term` | error log with the stream sequence; `carehub_events_retries_exhausted_total{consumer}` |
//!
//! Handlers must be idempotent: an event is acknowledged only after it was applied, so a crash
//! (or a lost acknowledgement) delivers it again. The durable's `max_deliver` is
//! [`MAX_DELIVER`] too, so an event that kills its consumer each time is dropped by the server
//! after that many deliveries instead of forever.
//!
//! Each event is handled inside [`carehub_bus::context::handling_event`], so its request id
//! travels on. [`run`] reopens the consumer after a failure (a lost connection, a deleted
//! durable) and returns once its stop token is cancelled, abandoning (`Nak`, no delay) an event
//! being applied at that moment so another instance takes it at once.
//!
//! Opening creates the durable, or updates an existing one (a durable from an earlier release,
//! created without `max_deliver`) to this configuration: it keeps its position. A durable's
//! name, stream and filter subject must never change: a new name or an emptied position would
//! apply every stored event again.
//!
//! **Positions are checked, not trusted** ([`Durable::positions`]). After each applied event the
//! consumer stores, in its service's database (`consumer_positions`), the stream sequence,
//! `Nats-Msg-Id` and stream timestamp of that event. At open, after every NATS reconnect and
//! every check interval it verifies that the stream still holds that event at that sequence
//! and that the durable has not been delivered past the stream's last sequence. A stream that
//! lost acknowledged messages (restored or rewound store) fails one of the two: the durable is
//! then deleted and created again from the stored timestamp minus a minute, so events published
//! since (which may reuse sequences the durable believes done) are delivered. Handlers are
//! idempotent, so the overlap is harmless.

use crate::db::{Db, now_ms};
use crate::with_db;
use async_nats::jetstream::{
    self, AckKind, consumer::DeliverPolicy, consumer::PullConsumer, consumer::pull,
};
use futures::StreamExt as _;
use serde::de::DeserializeOwned;
use std::fmt::Display;
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Deliveries of one event before it is terminated (the durable's `max_deliver`).
pub const MAX_DELIVER: i64 = 20;
/// How long the server waits for an acknowledgement before delivering an event again.
pub(crate) const ACK_WAIT: Duration = Duration::from_secs(30);
/// How long [`run`] waits before reopening a consumer that failed.
const REOPEN_DELAY: Duration = Duration::from_secs(1);
/// How soon a position check that failed is tried again.
const CHECK_RETRY: Duration = Duration::from_secs(5);
/// How far before the last applied event a re-created durable starts.
const RESET_OVERLAP_MS: i64 = 60_000;

/// Where a consumer stores and checks its position (see the module documentation).
#[derive(Debug, Clone)]
pub struct Positions {
    db: Db,
    /// How often the position is checked besides at open and after a reconnect; `None`: never
    /// (`CAREHUB_RECONCILE=off`), positions are still stored.
    check_every: Option<Duration>,
    /// Woken after the durable was re-created, so the copy it feeds is reconciled at once.
    after_reset: Option<crate::reconcile::Trigger>,
}

/// How a failed event is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Deliveries before the event is terminated; also the durable's `max_deliver`.
    pub max_deliver: i64,
    /// The delay after the first failed delivery; it doubles with each further one.
    pub first_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            max_deliver: MAX_DELIVER,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
        }
    }
}

impl Retry {
    /// The delay before delivery `delivered + 1`, after delivery `delivered` (1-based) failed.
    pub(crate) fn delay(&self, delivered: i64) -> Duration {
        let doublings = u32::try_from(delivered.saturating_sub(1).clamp(0, 31)).unwrap_or(31);
        self.first_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay)
    }

    /// Whether delivery `delivered` (1-based) is the last one.
    pub(crate) fn is_last(&self, delivered: i64) -> bool {
        self.max_deliver > 0 && delivered >= self.max_deliver
    }
}

/// A durable pull consumer: where it reads and how it retries.
#[derive(Debug, Clone)]
pub struct Durable {
    /// The component that consumes (the `component` label of the metrics).
    pub(crate) component: &'static str,
    /// The stream read.
    pub(crate) stream: String,
    /// The durable name, shared by every instance of the component.
    pub(crate) name: String,
    /// Only subjects matching this filter; empty reads the whole stream.
    pub(crate) filter_subject: String,
    /// One event in flight at a time (`max_ack_pending = 1`), so events apply in stream order
    /// even while one is retried; otherwise the server's default (1000).
    pub(crate) in_order: bool,
    pub(crate) retry: Retry,
    pub(crate) positions: Option<Positions>,
}

impl Durable {
    /// The durable `name` on `stream`, reading all of it, unordered, with the default [`Retry`].
    pub fn new(component: &'static str, stream: &str, name: &str) -> Self {
        Self {
            component,
            stream: stream.to_owned(),
            name: name.to_owned(),
            filter_subject: String::new(),
            in_order: false,
            retry: Retry::default(),
            positions: None,
        }
    }

    /// Stores the position of each applied event in `db` (its `consumer_positions` table) and
    /// checks it at open, after a reconnect and every `check_every` (`None`: never).
    #[must_use]
    pub fn positions(mut self, db: Db, check_every: Option<Duration>) -> Self {
        self.positions = Some(Positions {
            db,
            check_every,
            after_reset: None,
        });
        self
    }

    /// Wakes `trigger` whenever the durable was re-created (after [`Durable::positions`]), so
    /// the copy this consumer feeds runs its reconciliation pass at once.
    #[must_use]
    pub fn reconcile_after_reset(mut self, trigger: crate::reconcile::Trigger) -> Self {
        if let Some(p) = &mut self.positions {
            p.after_reset = Some(trigger);
        }
        self
    }

    /// Reads only subjects matching `filter`.
    #[must_use]
    pub fn filter(mut self, filter: &str) -> Self {
        filter.clone_into(&mut self.filter_subject);
        self
    }

    /// One event in flight at a time, so events apply in stream order.
    #[must_use]
    pub fn in_order(mut self) -> Self {
        self.in_order = true;
        self
    }

    /// Retries failed events with `retry` instead of the default.
    #[must_use]
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// The consumer's configuration on the server.
    pub(crate) fn config(&self) -> pull::Config {
        pull::Config {
            durable_name: Some(self.name.clone()),
            filter_subject: self.filter_subject.clone(),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: ACK_WAIT,
            max_deliver: self.retry.max_deliver,
            max_ack_pending: if self.in_order { 1 } else { 0 },
            ..Default::default()
        }
    }
}

/// Creates the durable, or updates an existing one to [`Durable::config`] (it keeps its
/// position). When the server refuses the update, the existing durable is used as it is.
///
/// # Errors
/// When the stream is missing or JetStream does not answer.
pub(crate) async fn open(
    js: &jetstream::Context,
    durable: &Durable,
) -> anyhow::Result<PullConsumer> {
    let stream = js.get_stream(&durable.stream).await?;
    let mut config = durable.config();
    match stream.get_consumer::<pull::Config>(&durable.name).await {
        Ok(mut existing) => {
            if let Ok(info) = existing.info().await {
                // A durable re-created from a start time keeps it: the server refuses to change it.
                config.deliver_policy = info.config.deliver_policy;
            }
        }
        // Missing (deleted by someone, or a stream restored without it): it starts again a
        // minute before the last event this service applied, not from the stream's start.
        Err(_) => {
            if let Some(positions) = &durable.positions
                && let Some(ms) = stored_time(durable, positions).await?
            {
                tracing::warn!(stream = %durable.stream, consumer = %durable.name,
                    "the durable consumer is missing; creating it again from the last applied event");
                config.deliver_policy = start_at(ms - RESET_OVERLAP_MS)?;
                if let Some(trigger) = &positions.after_reset {
                    trigger.wake();
                }
            }
        }
    }
    match stream.create_consumer(config).await {
        Ok(consumer) => Ok(consumer),
        Err(update) => match stream.get_consumer::<pull::Config>(&durable.name).await {
            Ok(consumer) => {
                tracing::warn!(error = %update, stream = %durable.stream, consumer = %durable.name,
                    "the durable consumer kept its older settings");
                Ok(consumer)
            }
            Err(_) => Err(update.into()),
        },
    }
}

/// Consumes `durable` until `stop` is cancelled: each event is decoded into a `T` and given to
/// `apply`, and acknowledged as the module documentation says. Reopens the consumer after a
/// failure.
pub async fn run<T, F, Fut, E>(
    js: jetstream::Context,
    durable: Durable,
    stop: CancellationToken,
    apply: F,
) where
    T: DeserializeOwned,
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    loop {
        match consume(&js, &durable, &stop, &apply).await {
            Ok(()) => return,
            Err(e) => tracing::warn!(error = %e, stream = %durable.stream,
                consumer = %durable.name, "event consumer failed; reopening"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(REOPEN_DELAY) => {}
        }
    }
}

/// Reads until `stop` (`Ok`) or until the consumer fails (`Err`).
async fn consume<T, F, Fut, E>(
    js: &jetstream::Context,
    durable: &Durable,
    stop: &CancellationToken,
    apply: &F,
) -> anyhow::Result<()>
where
    T: DeserializeOwned,
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let mut consumer = tokio::select! {
        () = stop.cancelled() => return Ok(()),
        c = open(js, durable) => c?,
    };
    let checks = durable
        .positions
        .as_ref()
        .and_then(|p| p.check_every.map(|every| (p, every)));
    let connects = js.client().statistics();
    let mut seen_connects = connects.connects.load(std::sync::atomic::Ordering::Relaxed);
    if let Some((positions, _)) = checks {
        match check_position(js, durable, positions).await {
            Ok(Some(fresh)) => consumer = fresh,
            Ok(None) => {}
            // Consuming goes on without the check (NATS busy, or a permission missing: see
            // docs/OPERATIONS.md); it is tried again at the next interval or reconnect.
            Err(e) => {
                tracing::warn!(error = %e, consumer = %durable.name, "consumer position check failed");
            }
        }
    }
    let mut messages = consumer.messages().await?;
    // Reconnects are looked for every second; the full check runs at its interval.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut next_check = checks.map(|(_, every)| tokio::time::Instant::now() + every);
    loop {
        let msg = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            _ = tick.tick(), if checks.is_some() => {
                let (Some((positions, every)), Some(due)) = (checks, next_check) else { continue };
                let now_connects = connects.connects.load(std::sync::atomic::Ordering::Relaxed);
                if now_connects == seen_connects && tokio::time::Instant::now() < due {
                    continue;
                }
                seen_connects = now_connects;
                let retry = match check_position(js, durable, positions).await {
                    Ok(Some(fresh)) => {
                        messages = fresh.messages().await?;
                        every
                    }
                    Ok(None) => every,
                    // Right after a reconnect JetStream may not answer yet: again shortly.
                    Err(e) => {
                        tracing::warn!(error = %e, consumer = %durable.name, "consumer position check failed");
                        CHECK_RETRY.min(every)
                    }
                };
                next_check = Some(tokio::time::Instant::now() + retry);
                continue;
            }
            next = messages.next() => match next {
                Some(m) => m?,
                None => anyhow::bail!("the message stream ended"),
            },
        };
        let handled = carehub_bus::context::handling_event(
            &msg.subject,
            msg.headers.as_ref(),
            handle(durable, &msg, apply),
        );
        tokio::select! {
            biased;
            () = stop.cancelled() => {
                if let Err(e) = msg.ack_with(AckKind::Nak(None)).await {
                    tracing::debug!(error = %e, "abandoned event not released; it comes again after the ack wait");
                }
                return Ok(());
            }
            () = handled => {}
        }
    }
}

/// What became of one delivery.
#[derive(Debug)]
enum Outcome<E> {
    Applied,
    Undecodable(serde_json::Error),
    Failed(E),
}

/// The acknowledgement for `outcome` on delivery `delivered`.
fn ack_for<E>(outcome: &Outcome<E>, delivered: i64, retry: &Retry) -> AckKind {
    match outcome {
        Outcome::Applied => AckKind::Ack,
        Outcome::Undecodable(_) => AckKind::Term,
        Outcome::Failed(_) if retry.is_last(delivered) => AckKind::Term,
        Outcome::Failed(_) => AckKind::Nak(Some(retry.delay(delivered))),
    }
}

async fn handle<T, F, Fut, E>(durable: &Durable, msg: &jetstream::Message, apply: &F)
where
    T: DeserializeOwned,
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let (stream_sequence, delivered) = match msg.info() {
        Ok(info) => (info.stream_sequence, info.delivered),
        Err(_) => (0, 1),
    };
    let outcome = match serde_json::from_slice::<T>(&msg.payload) {
        Err(e) => Outcome::Undecodable(e),
        // Boxed: a handler's future (a database transaction) is large, and would otherwise
        // make every consumer's task as large.
        Ok(event) => match Box::pin(apply(event)).await {
            Ok(()) => Outcome::Applied,
            Err(e) => Outcome::Failed(e),
        },
    };
    let ack = ack_for(&outcome, delivered, &durable.retry);
    let consumer = durable.name.as_str();
    match &outcome {
        Outcome::Applied => {
            if let Some(positions) = &durable.positions
                && let Err(e) = store_position(durable, positions, msg).await
            {
                // Only the check's precision suffers: the event is applied.
                tracing::warn!(error = %e, consumer, stream_sequence, "consumer position not stored");
            }
        }
        Outcome::Undecodable(e) => {
            tracing::error!(error = %e, consumer, stream_sequence, subject = %msg.subject,
                "undecodable event terminated");
            ::metrics::counter!("carehub_events_undecodable_total",
                "component" => durable.component, "consumer" => consumer.to_owned())
            .increment(1);
        }
        Outcome::Failed(e) if matches!(ack, AckKind::Term) => {
            tracing::error!(error = %e, consumer, stream_sequence, delivered, subject = %msg.subject,
                "event still not applied after its last delivery; terminated");
            ::metrics::counter!("carehub_events_retries_exhausted_total",
                "component" => durable.component, "consumer" => consumer.to_owned())
            .increment(1);
        }
        Outcome::Failed(e) => {
            tracing::warn!(error = %e, consumer, stream_sequence, delivered, subject = %msg.subject,
                "event not applied; it will be delivered again");
        }
    }
    let sent = match ack {
        AckKind::Ack => msg.double_ack().await,
        other => msg.ack_with(other).await,
    };
    if let Err(e) = sent {
        // Harmless: the server delivers the event again after the ack wait.
        tracing::warn!(error = %e, consumer, stream_sequence, "acknowledgement not sent");
    }
}

/// Records `msg` as the last event `durable` applied.
async fn store_position(
    durable: &Durable,
    positions: &Positions,
    msg: &jetstream::Message,
) -> anyhow::Result<()> {
    let info = msg.info().map_err(|e| anyhow::anyhow!("{e}"))?;
    let seq = i64::try_from(info.stream_sequence).unwrap_or(i64::MAX);
    let published_ms =
        i64::try_from(info.published.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    let msg_id = msg
        .headers
        .as_ref()
        .and_then(|h| h.get("Nats-Msg-Id"))
        .map(|v| v.as_str().to_owned());
    let sql = "INSERT INTO consumer_positions (durable, stream, stream_seq, msg_id, stream_ts, updated_at)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (durable) DO UPDATE SET stream = excluded.stream, stream_seq = excluded.stream_seq,
                   msg_id = excluded.msg_id, stream_ts = excluded.stream_ts, updated_at = excluded.updated_at";
    with_db!(&positions.db, p => sqlx::query(sql)
        .bind(&durable.name).bind(&durable.stream).bind(seq).bind(&msg_id).bind(published_ms).bind(now_ms())
        .execute(p).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Checks `durable`'s position (see the module documentation); when the stream no longer holds
/// it, or the durable is past the stream's end, re-creates the durable from the stored time
/// minus a minute and returns it.
///
/// # Errors
/// When JetStream or the database does not answer (the consumer is then reopened).
async fn check_position(
    js: &jetstream::Context,
    durable: &Durable,
    positions: &Positions,
) -> anyhow::Result<Option<PullConsumer>> {
    ::metrics::counter!("carehub_reconcile_runs_total", "component" => durable.component, "kind" => "consumer_positions")
        .increment(1);
    let mut stream = js.get_stream(&durable.stream).await?;
    let last = stream.info().await?.state.last_sequence;
    let delivered = match stream.get_consumer::<pull::Config>(&durable.name).await {
        Ok(mut c) => c.info().await?.delivered.stream_sequence,
        Err(_) => 0,
    };
    let sql = "SELECT stream_seq, msg_id, stream_ts FROM consumer_positions WHERE durable = $1 AND stream = $2";
    let stored: Option<(i64, Option<String>, i64)> = with_db!(&positions.db, p => sqlx::query_as(sql)
        .bind(&durable.name).bind(&durable.stream).fetch_optional(p).await)?;
    let ahead = delivered > last;
    let lost = match &stored {
        Some((seq, Some(id), _)) => match u64::try_from(*seq) {
            Ok(seq) => match stream.get_raw_message(seq).await {
                Ok(m) => m
                    .headers
                    .get("Nats-Msg-Id")
                    .is_none_or(|v| v.as_str() != id),
                Err(e)
                    if matches!(
                        e.kind(),
                        jetstream::stream::LastRawMessageErrorKind::NoMessageFound
                    ) =>
                {
                    true
                }
                Err(e) => return Err(e.into()),
            },
            Err(_) => true,
        },
        _ => false,
    };
    if !ahead && !lost {
        return Ok(None);
    }
    ::metrics::counter!("carehub_stream_rewind_detected_total", "component" => durable.component, "stream" => durable.stream.clone())
        .increment(1);
    ::metrics::counter!("carehub_consumer_reset_total", "component" => durable.component, "durable" => durable.name.clone())
        .increment(1);
    let start_ms = stored.as_ref().map(|(_, _, ts)| ts - RESET_OVERLAP_MS);
    tracing::warn!(
        stream = %durable.stream,
        consumer = %durable.name,
        stream_last_seq = last,
        delivered,
        stored_seq = stored.as_ref().map(|s| s.0),
        ahead,
        lost,
        "the stream no longer holds what this consumer applied; re-creating the durable from its last applied time"
    );
    if let Some(trigger) = &positions.after_reset {
        trigger.wake();
    }
    if let Err(e) = stream.delete_consumer(&durable.name).await {
        tracing::debug!(error = %e, consumer = %durable.name, "deleting the durable (may be gone)");
    }
    let mut config = durable.config();
    config.deliver_policy = match start_ms {
        Some(ms) => start_at(ms)?,
        None => DeliverPolicy::All,
    };
    Ok(Some(stream.create_consumer(config).await?))
}

/// Delivery from `ms` (Unix milliseconds) on.
fn start_at(ms: i64) -> anyhow::Result<DeliverPolicy> {
    Ok(DeliverPolicy::ByStartTime {
        start_time: time::OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(ms.max(0)) * 1_000_000,
        )?,
    })
}

/// The stream time of the last event `durable` applied, if one is stored.
async fn stored_time(durable: &Durable, positions: &Positions) -> anyhow::Result<Option<i64>> {
    let sql = "SELECT stream_ts FROM consumer_positions WHERE durable = $1 AND stream = $2";
    Ok(with_db!(&positions.db, p => sqlx::query_scalar(sql)
        .bind(&durable.name).bind(&durable.stream).fetch_optional(p).await)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_per_delivery_up_to_the_cap() {
        let r = Retry::default();
        let secs: Vec<u64> = (1..=12).map(|d| r.delay(d).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        // Out-of-range delivery counts neither panic nor overflow.
        assert_eq!(r.delay(0), Duration::from_secs(1));
        assert_eq!(r.delay(i64::MAX), Duration::from_secs(300));
    }

    #[test]
    fn the_default_retries_last_about_an_hour() {
        let r = Retry::default();
        let waited: Duration = (1..r.max_deliver).map(|d| r.delay(d)).sum();
        assert!(
            waited >= Duration::from_secs(45 * 60) && waited <= Duration::from_secs(75 * 60),
            "{waited:?}"
        );
    }

    #[test]
    fn each_outcome_gets_its_acknowledgement() {
        let r = Retry {
            max_deliver: 3,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        let undecodable = || {
            Outcome::<String>::Undecodable(
                serde_json::from_slice::<u8>(b"{")
                    .err()
                    .unwrap_or_else(|| unreachable!()),
            )
        };
        let failed = || Outcome::Failed("database down".to_owned());
        assert!(matches!(
            ack_for(&Outcome::<String>::Applied, 1, &r),
            AckKind::Ack
        ));
        assert!(matches!(ack_for(&undecodable(), 1, &r), AckKind::Term));
        assert!(
            matches!(ack_for(&failed(), 1, &r), AckKind::Nak(Some(d)) if d == Duration::from_millis(100))
        );
        assert!(
            matches!(ack_for(&failed(), 2, &r), AckKind::Nak(Some(d)) if d == Duration::from_millis(200))
        );
        assert!(matches!(ack_for(&failed(), 3, &r), AckKind::Term));
        // Unlimited deliveries never terminate a failed event.
        let unlimited = Retry {
            max_deliver: -1,
            ..r
        };
        assert!(matches!(
            ack_for(&failed(), 1000, &unlimited),
            AckKind::Nak(Some(_))
        ));
    }

    #[test]
    fn the_config_keeps_names_and_adds_max_deliver() {
        let d =
            Durable::new("admin", "CAREHUB_USERS", "admin-users").filter("carehub.events.user.>");
        let c = d.config();
        assert_eq!(c.durable_name.as_deref(), Some("admin-users"));
        assert_eq!(c.filter_subject, "carehub.events.user.>");
        assert_eq!(c.max_deliver, MAX_DELIVER);
        assert_eq!(c.max_ack_pending, 0);
        assert_eq!(c.ack_wait, ACK_WAIT);
        assert_eq!(d.in_order().config().max_ack_pending, 1);
    }
}
