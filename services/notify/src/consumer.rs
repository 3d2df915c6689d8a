//! A durable JetStream pull consumer that hands each decoded event to a handler and
//! acknowledges it only after the handler's transaction committed. Handlers are idempotent, so a
//! redelivery (after a crash, or a lost acknowledgement) changes nothing.

use async_nats::jetstream::{self, AckKind, consumer::pull};
use carehub_runtime::StoreError;
use futures::StreamExt as _;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long the server waits for an acknowledgement before redelivering.
const ACK_WAIT: Duration = Duration::from_secs(30);
/// How long a failed event waits before it is delivered again.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Consumes `stream` as durable consumer `durable` until `stop` is cancelled, reconnecting
/// after errors. An event that does not decode is logged and terminated (never redelivered).
pub async fn run<T, F, Fut>(
    js: jetstream::Context,
    stream: &'static str,
    durable: &'static str,
    stop: CancellationToken,
    handle: F,
) where
    T: DeserializeOwned,
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<(), StoreError>>,
{
    loop {
        if let Err(e) = consume(&js, stream, durable, &stop, &handle).await {
            tracing::warn!(error = %e, stream, durable, "event consumer failed; restarting");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(RETRY_DELAY) => {}
        }
    }
}

async fn consume<T, F, Fut>(
    js: &jetstream::Context,
    stream: &'static str,
    durable: &'static str,
    stop: &CancellationToken,
    handle: &F,
) -> Result<(), String>
where
    T: DeserializeOwned,
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<(), StoreError>>,
{
    let s = js.get_stream(stream).await.map_err(|e| e.to_string())?;
    let consumer = s
        .get_or_create_consumer(
            durable,
            pull::Config {
                durable_name: Some(durable.to_owned()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    loop {
        let next = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            next = messages.next() => next,
        };
        let msg = match next {
            None => return Err("message stream ended".into()),
            Some(Err(e)) => return Err(e.to_string()),
            Some(Ok(m)) => m,
        };
        let ack = match serde_json::from_slice::<T>(&msg.payload) {
            Err(e) => {
                tracing::error!(error = %e, subject = %msg.subject, "undecodable event skipped");
                AckKind::Term
            }
            Ok(event) => match carehub_bus::context::handling_event(
                &msg.subject,
                msg.headers.as_ref(),
                handle(event),
            )
            .await
            {
                Ok(()) => AckKind::Ack,
                Err(e) => {
                    tracing::warn!(error = %e, subject = %msg.subject, "event not applied; will retry");
                    AckKind::Nak(Some(RETRY_DELAY))
                }
            },
        };
        if let Err(e) = msg.ack_with(ack).await {
            tracing::debug!(error = %e, "acknowledgement not sent; the event will come again");
        }
    }
}
