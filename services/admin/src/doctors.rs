//! The local copy of doctors, fed by the doctor service's `CAREHUB_DOCTORS` stream, so routing
//! and accepting check working hours and time off inside the admin service's own transaction.
//! A snapshot older than the stored one changes nothing, so replays and redeliveries are safe;
//! what the stream lost is repaired from the doctor service's versions ([`reconcile`]).

use crate::feeds::feed;
use crate::routing::Core;
use crate::store::{self, DoctorRow};
use async_nats::jetstream;
use carehub_bus::Bus;
use carehub_nats::CallContext;
use carehub_nats::doctor::{DoctorEvent, DoctorSnapshot};
use carehub_nats::sync::{DoctorVersions, GetDoctors, IdVersion};
use carehub_runtime::db::{Db, StoreError};
use carehub_runtime::reconcile::{self, Trigger};
use carehub_runtime::service::Running;
use std::collections::HashMap;

/// Starts the doctor-copy consumer and its reconciliation with the doctor service.
pub(crate) fn spawn(running: &Running, js: &jetstream::Context, bus: &Bus, core: &Core) {
    let db = core.db.clone();
    let trigger = Trigger::default();
    feed(
        running,
        js,
        core,
        &carehub_nats::streams::DOCTORS,
        "admin-doctors",
        Some(trigger.clone()),
        move |e: DoctorEvent| {
            let db = db.clone();
            async move {
                apply(&db, &e.doctor).await?;
                anyhow::Ok(())
            }
        },
    );
    let copy = DoctorCopy {
        bus: bus.clone(),
        db: core.db.clone(),
    };
    running.spawn(reconcile::run(
        crate::SPEC.name,
        "doctors",
        copy,
        core.cfg.relay.copies_every,
        trigger,
        running.stop_token(),
    ));
}

/// The doctor copy as [`reconcile`] sees it: the doctor service's versions against the
/// `version` column, repaired from its current snapshots.
struct DoctorCopy {
    bus: Bus,
    db: Db,
}

impl reconcile::Reconciled for DoctorCopy {
    async fn page(&self, after: Option<String>) -> anyhow::Result<Vec<IdVersion>> {
        let req = DoctorVersions { after, limit: None };
        Ok(self
            .bus
            .request(&CallContext::internal(), &req)
            .await?
            .items)
    }

    async fn held(&self, ids: &[String]) -> anyhow::Result<HashMap<String, i64>> {
        let select = "SELECT doctor_id, version FROM doctors WHERE doctor_id IN (";
        Ok(reconcile::held_versions(&self.db, select, ids).await?)
    }

    async fn repair(&self, ids: Vec<String>) -> anyhow::Result<Vec<String>> {
        let found = self
            .bus
            .request(&CallContext::internal(), &GetDoctors { ids })
            .await?;
        let mut applied = Vec::with_capacity(found.doctors.len());
        for d in &found.doctors {
            apply(&self.db, d).await?;
            applied.push(d.id.clone());
        }
        Ok(applied)
    }
}

/// Stores the snapshot unless the copy already holds a newer version; returns the version the
/// copy holds afterwards.
///
/// # Errors
/// On storage failure.
pub(crate) async fn apply(db: &Db, d: &DoctorSnapshot) -> Result<i64, StoreError> {
    let row = DoctorRow {
        doctor_id: d.id.clone(),
        display_name: d.display_name.clone(),
        specialties: format!(",{},", d.specialties.join(",")),
        approved: d.approved,
        auto_accept: d.availability.auto_accept,
        availability: serde_json::to_string(d)
            .map_err(|e| StoreError::Other(sqlx::Error::Encode(e.into())))?,
        version: d.version,
    };
    store::upsert_doctor(db, &row).await
}
