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

use async_nats::jetstream::{self, AckKind, consumer::PullConsumer, consumer::pull};
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
        }
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
    match stream.create_consumer(durable.config()).await {
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
    let consumer = tokio::select! {
        () = stop.cancelled() => return Ok(()),
        c = open(js, durable) => c?,
    };
    let mut messages = consumer.messages().await?;
    loop {
        let msg = tokio::select! {
            () = stop.cancelled() => return Ok(()),
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
        Outcome::Applied => {}
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
