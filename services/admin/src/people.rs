//! Account names, fed by the auth service's `CAREHUB_USERS` stream, so appointments and the
//! audit log can name people. An event older than the stored one changes nothing, so replays
//! and redeliveries are safe.

use crate::feeds::{consume, durable};
use crate::routing::Core;
use crate::store;
use async_nats::jetstream;
use carehub_nats::auth::UserEvent;
use carehub_runtime::service::Running;

/// Starts the account-name consumer.
///
/// # Errors
/// When the durable consumer cannot be created.
pub async fn spawn(running: &Running, js: &jetstream::Context, core: &Core) -> anyhow::Result<()> {
    let consumer = durable(
        js,
        carehub_nats::streams::USERS.name,
        "admin-users",
        "carehub.events.user.>",
    )
    .await?;
    let db = core.db.clone();
    running.spawn(consume(consumer, running.stop_token(), move |payload| {
        let db = db.clone();
        async move {
            let e: UserEvent =
                serde_json::from_slice(&payload).map_err(|e| format!("decode: {e}"))?;
            let u = &e.user;
            store::upsert_person(&db, &u.id, &u.display_name, u.role.as_str(), e.at)
                .await
                .map_err(|e| e.to_string())
        }
    }));
    Ok(())
}
