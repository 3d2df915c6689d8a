//! The durable consumer of account events (stream `CAREHUB_USERS`, durable name
//! [`DURABLE`]): it keeps each account's role, status and display name, and gives every
//! patient account its empty profile and record. An event is acknowledged only after its
//! transaction committed, and applying one twice changes nothing, so redelivery is harmless.

use crate::store::{self, AccountFacts};
use async_nats::jetstream::{self, AckKind, consumer::pull};
use carehub_nats::auth::UserEvent;
use carehub_nats::streams;
use carehub_runtime::Db;
use futures::StreamExt as _;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The consumer's durable name, shared by every patient service instance.
pub const DURABLE: &str = "patient-service";

const RETRY: Duration = Duration::from_secs(1);

/// Consumes account events until `stop` is cancelled, reattaching after any failure.
pub async fn run(db: Db, js: jetstream::Context, stop: CancellationToken) {
    loop {
        let outcome = tokio::select! {
            () = stop.cancelled() => return,
            r = consume(&db, &js, &stop) => r,
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "account event consumer stopped; reattaching");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(RETRY) => {}
        }
    }
}

async fn consume(db: &Db, js: &jetstream::Context, stop: &CancellationToken) -> anyhow::Result<()> {
    let stream = js.get_stream(streams::USERS.name).await?;
    let consumer: jetstream::consumer::PullConsumer = stream
        .get_or_create_consumer(
            DURABLE,
            pull::Config {
                durable_name: Some(DURABLE.into()),
                filter_subject: format!("{}.>", carehub_nats::auth::subject::USER_EVENT_PREFIX),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
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
        let Some(msg) = next else {
            anyhow::bail!("the message stream ended");
        };
        let msg = msg?;
        let event: UserEvent = match serde_json::from_slice(&msg.payload) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, subject = %msg.subject, "undecodable account event skipped");
                msg.ack_with(AckKind::Term)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                continue;
            }
        };
        let facts = AccountFacts {
            id: &event.user.id,
            role: event.user.role.as_str(),
            status: event.user.status.as_str(),
            display_name: &event.user.display_name,
            event_at: event.at,
        };
        let applied = carehub_bus::context::handling_event(
            &msg.subject,
            msg.headers.as_ref(),
            store::apply_account(db, &facts),
        )
        .await;
        match applied {
            Ok(()) => msg.double_ack().await.map_err(|e| anyhow::anyhow!("{e}"))?,
            Err(e) => {
                tracing::warn!(error = %e, event_id = %event.event_id, "account event not applied; will retry");
                msg.ack_with(AckKind::Nak(Some(RETRY)))
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
        }
    }
}
