//! Account names, fed by the auth service's `CAREHUB_USERS` stream, so appointments and the
//! audit log can name people. An event older than the stored one changes nothing, so replays
//! and redeliveries are safe; what the stream lost is repaired from the auth service's
//! versions ([`carehub_runtime::reconcile`]).

use crate::feeds::feed;
use crate::routing::Core;
use crate::store;
use async_nats::jetstream;
use carehub_bus::Bus;
use carehub_nats::auth::UserEvent;
use carehub_runtime::db::{Db, StoreError};
use carehub_runtime::reconcile::{self, Accounts, Trigger};
use carehub_runtime::service::Running;

/// Starts the account-name consumer and its reconciliation with the auth service.
pub(crate) fn spawn(running: &Running, js: &jetstream::Context, bus: &Bus, core: &Core) {
    let trigger = Trigger::default();
    let db = core.db.clone();
    feed(
        running,
        js,
        core,
        &carehub_nats::streams::USERS,
        "admin-users",
        Some(trigger.clone()),
        move |e: UserEvent| {
            let db = db.clone();
            async move { apply(&db, &e).await }
        },
    );
    let db = core.db.clone();
    let copy = Accounts {
        bus: bus.clone(),
        db: core.db.clone(),
        role: None,
        held: "SELECT id, account_version FROM people WHERE id IN (",
        apply: move |e: UserEvent| {
            let db = db.clone();
            async move { apply(&db, &e).await }
        },
    };
    running.spawn(reconcile::run(
        crate::SPEC.name,
        "accounts",
        copy,
        core.cfg.relay.copies_every,
        trigger,
        running.stop_token(),
    ));
}

/// Stores the account's name unless the copy holds a newer one.
async fn apply(db: &Db, e: &UserEvent) -> Result<(), StoreError> {
    let u = &e.user;
    store::upsert_person(db, &u.id, &u.display_name, u.role.as_str(), e.at, e.version).await
}
