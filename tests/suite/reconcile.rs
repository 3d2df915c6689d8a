//! Copies reconciled with their owners' version lists: what no event can repair any more (a copy
//! row lost with a restored database, an event gone from the stream and from its producer's
//! `outbox_sent`) is found by comparing versions and repaired from the owner's current state.

use crate::both_backends;
use crate::harness::{Backend, Clinic, unique_email};
use crate::outbox::{account_consumers_caught_up, copies, doctor_at_version_two, until_serving};
use crate::support::wait;
use carehub::system::Component;
use carehub_runtime::with_db;
use std::time::Duration;

both_backends!(
    copies_that_lost_or_went_back_on_accounts_and_doctors_are_repaired_from_the_owners,
    with_reconcile_off_a_lost_copy_stays_lost,
);

/// Runs `sql` with `bind` on `service`'s database; returns the rows it changed.
async fn damage(clinic: &Clinic, service: &str, sql: &'static str, bind: &str) -> u64 {
    let db = clinic.service_db(service).await;
    let n =
        with_db!(&db, p => sqlx::query(sql).bind(bind).execute(p).await.map(|r| r.rows_affected()))
            .expect("damage the copy");
    db.close().await;
    n
}

/// The admin service's copy of a doctor: (display name, version).
async fn admin_doctor(clinic: &Clinic, id: &str) -> Option<(String, i64)> {
    let db = clinic.service_db("admin").await;
    let sql = "SELECT display_name, version FROM doctors WHERE doctor_id = $1";
    let row = with_db!(&db, p => sqlx::query_as(sql).bind(id).fetch_optional(p).await)
        .expect("admin doctor copy");
    db.close().await;
    row
}

/// The doctor service's version of a doctor.
async fn doctor_version(clinic: &Clinic, id: &str) -> i64 {
    let db = clinic.service_db("doctor").await;
    let sql = "SELECT version FROM doctors WHERE id = $1";
    let v = with_db!(&db, p => sqlx::query_scalar(sql).bind(id).fetch_one(p).await)
        .expect("doctor row");
    db.close().await;
    v
}

/// A patient and a doctor (with a time zone set, so at account version 2) whose every copy
/// caught up.
async fn two_accounts(clinic: &Clinic) -> (String, String, String) {
    let patient = clinic.patient(&unique_email("recon-patient")).await;
    let patient_id = patient["user"]["id"]
        .as_str()
        .expect("patient id")
        .to_owned();
    let (doctor, _) = doctor_at_version_two(clinic).await;
    let doctor_id = doctor["id"].as_str().expect("doctor id").to_owned();
    let name = doctor["display_name"].as_str().expect("name").to_owned();
    wait::until(
        "the admin service's doctor copy",
        Duration::from_secs(20),
        || async { admin_doctor(clinic, &doctor_id).await.map(|_| ()) },
    )
    .await;
    account_consumers_caught_up(clinic).await;
    (patient_id, doctor_id, name)
}

/// Deletes the patient from the patient and admin copies and sets the doctor back to version 1
/// under another name in the doctor and notify copies; deletes the admin service's doctor copy.
async fn lose_copies(clinic: &Clinic, patient_id: &str, doctor_id: &str) {
    let changed = [
        damage(clinic, "patient", "DELETE FROM accounts WHERE id = $1", patient_id).await,
        damage(clinic, "admin", "DELETE FROM people WHERE id = $1", patient_id).await,
        damage(clinic, "doctor",
            "UPDATE doctors SET display_name = 'Lost Name', display_name_lower = 'lost name', account_version = 1 WHERE id = $1",
            doctor_id).await,
        damage(clinic, "notify",
            "UPDATE users SET display_name = 'Lost Name', account_version = 1 WHERE id = $1",
            doctor_id).await,
        damage(clinic, "admin", "DELETE FROM doctors WHERE doctor_id = $1", doctor_id).await,
    ];
    assert_eq!(changed, [1; 5], "every copy was damaged");
}

/// Every kind of copy loses a record or goes back a version behind the stream's back; within
/// the deadline each is what its owner holds again, and the repairs are counted.
async fn copies_that_lost_or_went_back_on_accounts_and_doctors_are_repaired_from_the_owners(
    b: Backend,
) {
    let in_process: Vec<Component> = Component::ALL
        .iter()
        .copied()
        .filter(|c| !matches!(c, Component::Patient))
        .collect();
    let clinic = Clinic::start_with(b, &[("CAREHUB_RECONCILE_INTERVAL", "1s")], &in_process).await;
    let metrics = format!("127.0.0.1:{}", crate::support::net::free_port());
    clinic.spawn_child("patient", &[("CAREHUB_METRICS_ADDR", &metrics)]);
    until_serving(&clinic, "patient").await;
    let (patient_id, doctor_id, name) = two_accounts(&clinic).await;
    lose_copies(&clinic, &patient_id, &doctor_id).await;

    wait::until("every copy repaired", Duration::from_secs(60), || async {
        let patient = copies(&clinic, &patient_id).await;
        let doctor = copies(&clinic, &doctor_id).await;
        let admin = admin_doctor(&clinic, &doctor_id).await?;
        let owner = doctor_version(&clinic, &doctor_id).await;
        let done = patient.len() == 3 // patient, notify, admin: the doctor service copies doctors only
            && patient.iter().all(|(_, _, _, v)| *v == 1)
            && doctor.len() == 4
            && doctor.iter().all(|(_, n, _, v)| *v == 2 && *n == name)
            && admin == (name.clone(), owner);
        done.then_some(())
    })
    .await;
    let scrape = crate::metrics::Scrape::of(&format!("http://{metrics}/metrics")).await;
    let labels = [("component", "patient"), ("kind", "accounts")];
    assert!(scrape.sum("carehub_reconcile_repaired_total", &labels) >= 1.0);
    assert!(scrape.sum("carehub_reconcile_runs_total", &labels) >= 1.0);
}

/// The same loss with `CAREHUB_RECONCILE=off`: nothing repairs it (what the other test sees is
/// the reconciliation's doing, not a side effect of something else).
async fn with_reconcile_off_a_lost_copy_stays_lost(b: Backend) {
    let clinic = Clinic::start_with(
        b,
        &[
            ("CAREHUB_RECONCILE", "off"),
            ("CAREHUB_RECONCILE_INTERVAL", "1s"),
        ],
        &Component::ALL,
    )
    .await;
    let (patient_id, doctor_id, _) = two_accounts(&clinic).await;
    lose_copies(&clinic, &patient_id, &doctor_id).await;
    // Longer than several passes would take.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let left: Vec<&str> = copies(&clinic, &patient_id)
        .await
        .iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(left, ["notify"], "the patient and admin copies stay lost");
    assert!(admin_doctor(&clinic, &doctor_id).await.is_none());
}
