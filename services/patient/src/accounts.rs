//! The durable consumer of account events (stream `CAREHUB_USERS`, durable name
//! [`DURABLE`]): it keeps each account's role, status and display name, and gives every
//! patient account its empty profile and record. An event is acknowledged only after its
//! transaction committed, and applying one twice changes nothing, so redelivery is harmless.
//! Decoding, acknowledgement and retries are [`carehub_runtime::consumer`]'s; [`reconcile`]
//! repairs what the stream lost.

use crate::store;
use async_nats::jetstream;
use carehub_nats::auth::UserEvent;
use carehub_nats::streams;
use carehub_runtime::Db;
use carehub_runtime::consumer::Durable;
use carehub_runtime::reconcile::{self, Accounts, Trigger};
use tokio_util::sync::CancellationToken;

/// The consumer's durable name, shared by every patient service instance.
pub(crate) const DURABLE: &str = "patient-service";

/// Consumes account events until `stop` is cancelled, reattaching after any failure.
pub(crate) async fn run(
    db: Db,
    js: jetstream::Context,
    check_every: Option<std::time::Duration>,
    reconcile: Trigger,
    stop: CancellationToken,
) {
    let durable = Durable::new(crate::SPEC.name, streams::USERS.name, DURABLE)
        .filter(&format!(
            "{}.>",
            carehub_nats::auth::subject::USER_EVENT_PREFIX
        ))
        .positions(db.clone(), check_every)
        .reconcile_after_reset(reconcile);
    carehub_runtime::consumer::run(js, durable, stop, move |event: UserEvent| {
        let db = db.clone();
        async move { store::apply_account(&db, &event).await }
    })
    .await;
}

/// Reconciles the account copy with the auth service's versions (see
/// [`carehub_runtime::reconcile`]) every `every` and whenever `trigger` is woken.
pub(crate) async fn reconcile(
    bus: carehub_bus::Bus,
    db: Db,
    every: Option<std::time::Duration>,
    trigger: Trigger,
    stop: CancellationToken,
) {
    let copy = Accounts {
        bus,
        db: db.clone(),
        role: None,
        held: "SELECT id, account_version FROM accounts WHERE id IN (",
        apply: move |event: UserEvent| {
            let db = db.clone();
            async move { store::apply_account(&db, &event).await }
        },
    };
    reconcile::run(crate::SPEC.name, "accounts", copy, every, trigger, stop).await;
}
