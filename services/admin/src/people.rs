//! Account names, fed by the auth service's `CAREHUB_USERS` stream, so appointments and the
//! audit log can name people. An event older than the stored one changes nothing, so replays
//! and redeliveries are safe.

use crate::feeds::feed;
use crate::routing::Core;
use crate::store;
use async_nats::jetstream;
use carehub_nats::auth::UserEvent;
use carehub_runtime::service::Running;

/// Starts the account-name consumer.
pub(crate) fn spawn(running: &Running, js: &jetstream::Context, core: &Core) {
    let db = core.db.clone();
    feed(
        running,
        js,
        core,
        &carehub_nats::streams::USERS,
        "admin-users",
        move |e: UserEvent| {
            let db = db.clone();
            async move {
                let u = &e.user;
                store::upsert_person(
                    &db,
                    &u.id,
                    &u.display_name,
                    u.role.as_str(),
                    e.at,
                    e.version,
                )
                .await
            }
        },
    );
}
