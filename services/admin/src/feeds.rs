//! Durable consumers: the audit trail of every service (`CAREHUB_AUDIT`) into `audit_log`,
//! the doctor copies (`CAREHUB_DOCTORS`) and the account names (`CAREHUB_USERS`). Each runs on
//! [`carehub_runtime::consumer`] (decoding, acknowledgement, retries).

use crate::routing::Core;
use crate::store;
use async_nats::jetstream;
use carehub_bus::Bus;
use carehub_nats::audit::AuditEntry;
use carehub_nats::streams::StreamSpec;
use carehub_runtime::consumer::Durable;
use carehub_runtime::reconcile::Trigger;
use carehub_runtime::service::Running;
use serde::de::DeserializeOwned;
use std::fmt::Display;
use std::future::Future;

/// Starts the consumers as tasks of `running`.
pub(crate) fn spawn(running: &Running, js: &jetstream::Context, bus: &Bus, core: &Core) {
    let db = core.db.clone();
    feed(
        running,
        js,
        core,
        &carehub_nats::streams::AUDIT,
        "admin-audit",
        None,
        move |e: AuditEntry| {
            let db = db.clone();
            async move { store::insert_audit(&db, &e).await }
        },
    );
    crate::doctors::spawn(running, js, bus, core);
    crate::people::spawn(running, js, bus, core);
}

/// Runs the admin service's durable consumer `name` of the whole of `stream` as a task of
/// `running`, applying each event with `apply`; its position is kept in the admin database, and
/// `reconcile` (when given) is woken whenever the durable was re-created.
pub(crate) fn feed<T, F, Fut, E>(
    running: &Running,
    js: &jetstream::Context,
    core: &Core,
    stream: &StreamSpec,
    name: &str,
    reconcile: Option<Trigger>,
    apply: F,
) where
    T: DeserializeOwned + Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Display + Send + 'static,
{
    let mut durable = Durable::new(crate::SPEC.name, stream.name, name)
        .filter(stream.subjects)
        .positions(core.db.clone(), core.cfg.relay.check_every);
    if let Some(trigger) = reconcile {
        durable = durable.reconcile_after_reset(trigger);
    }
    running.spawn(carehub_runtime::consumer::run(
        js.clone(),
        durable,
        running.stop_token(),
        apply,
    ));
}
