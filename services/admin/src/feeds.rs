//! Durable consumers: the audit trail of every service (`CAREHUB_AUDIT`) into `audit_log`,
//! the doctor copies (`CAREHUB_DOCTORS`) and the account names (`CAREHUB_USERS`).

use crate::routing::Core;
use crate::store::{self, AuditRow};
use async_nats::jetstream::{self, consumer::pull};
use carehub_nats::audit::AuditEntry;
use carehub_runtime::service::Running;
use futures::StreamExt as _;
use std::time::Duration;

/// Starts the consumers as tasks of `running`.
///
/// # Errors
/// When a durable consumer cannot be created.
pub async fn spawn(running: &Running, js: &jetstream::Context, core: &Core) -> anyhow::Result<()> {
    let audit = durable(
        js,
        carehub_nats::streams::AUDIT.name,
        "admin-audit",
        "carehub.events.audit.>",
    )
    .await?;
    let db = core.db.clone();
    let stop = running.stop_token();
    running.spawn(consume(audit, stop, move |payload| {
        let db = db.clone();
        async move {
            let e: AuditEntry =
                serde_json::from_slice(&payload).map_err(|e| format!("decode: {e}"))?;
            let row = AuditRow {
                event_id: e.event_id,
                at: e.at,
                service: e.service,
                actor_id: e.actor_id,
                actor_role: e.actor_role,
                subject_id: e.subject_id,
                action: e.action,
                reason: e.reason,
            };
            store::insert_audit(&db, &row)
                .await
                .map_err(|e| e.to_string())
        }
    }));
    crate::doctors::spawn(running, js, core).await?;
    crate::people::spawn(running, js, core).await
}

/// A durable pull consumer (explicit ack) on `stream`, created if missing.
///
/// # Errors
/// When JetStream refuses it.
pub async fn durable(
    js: &jetstream::Context,
    stream: &str,
    name: &str,
    filter: &str,
) -> anyhow::Result<jetstream::consumer::Consumer<pull::Config>> {
    let stream = js.get_stream(stream).await?;
    let consumer = stream
        .get_or_create_consumer(
            name,
            pull::Config {
                durable_name: Some(name.into()),
                filter_subject: filter.into(),
                ack_wait: Duration::from_secs(30),
                ..Default::default()
            },
        )
        .await?;
    Ok(consumer)
}

/// Applies each message with `apply` and acknowledges it only after `apply` succeeded (so a
/// crash redelivers; `apply` must be idempotent). A message that cannot be decoded is logged
/// and acknowledged: retrying cannot fix it.
pub async fn consume<F, Fut>(
    consumer: jetstream::consumer::Consumer<pull::Config>,
    stop: tokio_util::sync::CancellationToken,
    apply: F,
) where
    F: Fn(bytes::Bytes) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    loop {
        let batch = tokio::select! {
            () = stop.cancelled() => return,
            b = consumer.fetch().max_messages(100).expires(Duration::from_secs(1)).messages() => b,
        };
        let mut batch = match batch {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "consumer fetch failed");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(500)) => continue,
                }
            }
        };
        while let Some(Ok(msg)) = batch.next().await {
            let applied = carehub_bus::context::handling_event(
                &msg.subject,
                msg.headers.as_ref(),
                apply(msg.payload.clone()),
            )
            .await;
            match applied {
                Ok(()) => {
                    if let Err(e) = msg.double_ack().await {
                        tracing::warn!(error = %e, "ack failed; the message will be redelivered");
                    }
                }
                Err(e) if e.starts_with("decode:") => {
                    tracing::error!(error = %e, subject = %msg.subject, "undecodable event skipped");
                    let _ = msg.ack().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, subject = %msg.subject, "applying an event failed; it will be redelivered");
                    let _ = msg
                        .ack_with(jetstream::AckKind::Nak(Some(Duration::from_secs(1))))
                        .await;
                }
            }
        }
    }
}
