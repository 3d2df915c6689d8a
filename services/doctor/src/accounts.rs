//! The durable consumer of account events (`CAREHUB_USERS`, `carehub.events.user.>`): a doctor
//! account gets a profile row when registered, and `approved` follows the account status
//! (active = approved and listed; pending, rejected, disabled = not listed).
//!
//! One message in flight at a time (`max_ack_pending = 1`), so events apply in stream order;
//! each is acknowledged only after its transaction committed, and applying one twice changes
//! nothing (see [`crate::store::apply_account`]).

use crate::service::DoctorService;
use async_nats::jetstream::{self, AckKind, consumer::pull};
use carehub_nats::Role;
use carehub_nats::auth::UserEvent;
use futures::StreamExt as _;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const RETRY: Duration = Duration::from_secs(1);

/// Runs until `stop` is cancelled, reconnecting the consumer after failures.
pub async fn consume(
    svc: DoctorService,
    js: jetstream::Context,
    durable: String,
    stop: CancellationToken,
) {
    loop {
        let outcome = tokio::select! {
            () = stop.cancelled() => return,
            r = run(&svc, &js, &durable, &stop) => r,
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "account consumer failed; retrying");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(RETRY) => {}
        }
    }
}

async fn run(
    svc: &DoctorService,
    js: &jetstream::Context,
    durable: &str,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let stream = js.get_stream(carehub_nats::streams::USERS.name).await?;
    let consumer = stream
        .get_or_create_consumer(
            durable,
            pull::Config {
                durable_name: Some(durable.to_owned()),
                filter_subject: format!("{}.>", carehub_nats::auth::subject::USER_EVENT_PREFIX),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                max_ack_pending: 1,
                ..Default::default()
            },
        )
        .await?;
    let mut messages = consumer.messages().await?;
    loop {
        let next = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            m = messages.next() => m,
        };
        let Some(message) = next else {
            anyhow::bail!("the account event subscription ended");
        };
        let message = message?;
        carehub_bus::context::handling_event(
            &message.subject,
            message.headers.as_ref(),
            handle(svc, &message),
        )
        .await;
    }
}

async fn handle(svc: &DoctorService, message: &jetstream::Message) {
    let event: UserEvent = match serde_json::from_slice(&message.payload) {
        Ok(e) => e,
        Err(e) => {
            // A message this build cannot read will never become readable: drop it.
            tracing::error!(error = %e, "undecodable account event dropped");
            if let Err(e) = message.ack_with(AckKind::Term).await {
                tracing::warn!(error = %e, "terminating an account event");
            }
            return;
        }
    };
    if event.user.role != Role::Doctor {
        ack(message).await;
        return;
    }
    match svc.apply_account(&event.event_id, &event.user).await {
        Ok(_) => ack(message).await,
        Err(e) => {
            tracing::warn!(error = %e, event_id = %event.event_id, "applying an account event failed; will retry");
            if let Err(e) = message.ack_with(AckKind::Nak(Some(RETRY))).await {
                tracing::warn!(error = %e, "nak of an account event");
            }
        }
    }
}

async fn ack(message: &jetstream::Message) {
    if let Err(e) = message.double_ack().await {
        // Redelivery is harmless: applying an event twice changes nothing.
        tracing::warn!(error = %e, "acknowledging an account event");
    }
}
