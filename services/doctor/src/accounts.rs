//! The durable consumer of account events (`CAREHUB_USERS`, `carehub.events.user.>`): a doctor
//! account gets a profile row when registered, and `approved` follows the account status
//! (active = approved and listed; pending, rejected, disabled = not listed).
//!
//! One message in flight at a time (`max_ack_pending = 1`), so events apply in stream order;
//! each is acknowledged only after its transaction committed, and applying one twice changes
//! nothing (see [`crate::store::apply_account`]). Decoding, acknowledgement and retries are
//! [`carehub_runtime::consumer`]'s; [`reconcile`] repairs what the stream lost.

use crate::service::DoctorService;
use async_nats::jetstream;
use carehub_nats::Role;
use carehub_nats::auth::UserEvent;
use carehub_runtime::StoreError;
use carehub_runtime::consumer::Durable;
use carehub_runtime::reconcile::{self, Accounts, Trigger};
use tokio_util::sync::CancellationToken;

/// Runs until `stop` is cancelled, reconnecting the consumer after failures.
pub(crate) async fn consume(
    svc: DoctorService,
    js: jetstream::Context,
    durable: String,
    check_every: Option<std::time::Duration>,
    reconcile: Trigger,
    stop: CancellationToken,
) {
    let durable = Durable::new(
        crate::SPEC.name,
        carehub_nats::streams::USERS.name,
        &durable,
    )
    .filter(&format!(
        "{}.>",
        carehub_nats::auth::subject::USER_EVENT_PREFIX
    ))
    .in_order()
    .positions(svc.db().clone(), check_every)
    .reconcile_after_reset(reconcile);
    carehub_runtime::consumer::run(js, durable, stop, move |event: UserEvent| {
        let svc = svc.clone();
        async move { apply(&svc, &event).await }
    })
    .await;
}

async fn apply(svc: &DoctorService, event: &UserEvent) -> Result<(), StoreError> {
    if event.user.role != Role::Doctor {
        return Ok(());
    }
    svc.apply_account(event).await?;
    Ok(())
}

/// Reconciles the doctor accounts' copy with the auth service's versions (see
/// [`carehub_runtime::reconcile`]) every `every` and whenever `trigger` is woken.
pub(crate) async fn reconcile(
    svc: DoctorService,
    bus: carehub_bus::Bus,
    every: Option<std::time::Duration>,
    trigger: Trigger,
    stop: CancellationToken,
) {
    let copy = Accounts {
        bus,
        db: svc.db().clone(),
        role: Some(Role::Doctor),
        held: "SELECT id, account_version FROM doctors WHERE id IN (",
        apply: move |event: UserEvent| {
            let svc = svc.clone();
            async move { apply(&svc, &event).await }
        },
    };
    reconcile::run(crate::SPEC.name, "accounts", copy, every, trigger, stop).await;
}
