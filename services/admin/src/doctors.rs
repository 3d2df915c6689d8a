//! The local copy of doctors, fed by the doctor service's `CAREHUB_DOCTORS` stream, so routing
//! and accepting check working hours and time off inside the admin service's own transaction.
//! A snapshot older than the stored one changes nothing, so replays and redeliveries are safe.

use crate::feeds::feed;
use crate::routing::Core;
use crate::store::{self, DoctorRow};
use async_nats::jetstream;
use carehub_nats::doctor::DoctorEvent;
use carehub_runtime::db::{Db, StoreError};
use carehub_runtime::service::Running;

/// Starts the doctor-copy consumer.
pub(crate) fn spawn(running: &Running, js: &jetstream::Context, core: &Core) {
    let db = core.db.clone();
    feed(
        running,
        js,
        core,
        &carehub_nats::streams::DOCTORS,
        "admin-doctors",
        move |e: DoctorEvent| {
            let db = db.clone();
            async move {
                apply(&db, &e).await?;
                anyhow::Ok(())
            }
        },
    );
}

/// Stores the event's snapshot unless the copy already holds a newer version; returns the
/// version the copy holds afterwards.
///
/// # Errors
/// On storage failure.
pub(crate) async fn apply(db: &Db, e: &DoctorEvent) -> Result<i64, StoreError> {
    let d = &e.doctor;
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
