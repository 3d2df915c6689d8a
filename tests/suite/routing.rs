//! Routing across admin restarts, crashes and several admin instances. The admin service runs
//! as child processes of the built binary here, so it can be SIGKILLed and started again.

use crate::appointments::{
    DEADLINE, admin, doctors, events, group, patient, wait_offered, window_in,
};
use crate::both_backends;
use crate::harness::{Backend, Clinic};
use crate::support::wait;
use carehub::system::Component;
use carehub_runtime::Db;
use serde_json::json;

both_backends!(
    two_admin_instances_both_own_requests_and_one_takes_over_the_others_when_it_is_killed,
    an_offer_whose_deadline_passes_while_admin_is_down_escalates_exactly_once_after_restart,
    round_robin_stays_fair_across_an_admin_restart,
);

/// Every component in-process except the admin service, which the test runs as children.
async fn clinic_without_admin(b: Backend) -> Clinic {
    let components: Vec<Component> = Component::ALL
        .iter()
        .copied()
        .filter(|c| *c != Component::Admin)
        .collect();
    Clinic::start_with(b, &[("CAREHUB_ADMIN_LEASE", "5")], &components).await
}

async fn admin_db(clinic: &Clinic) -> Db {
    clinic.service_db("admin").await
}

/// Runs a query returning rows of (text, bigint) on either backend.
async fn rows(db: &Db, sql: &'static str) -> Vec<(String, i64)> {
    match db {
        Db::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
        Db::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
    }
}

async fn ready(clinic: &Clinic) {
    clinic
        .wait_status(&clinic.base, "/readyz", None, 200, "every service ready")
        .await;
}

async fn two_admin_instances_both_own_requests_and_one_takes_over_the_others_when_it_is_killed(
    b: Backend,
) {
    let clinic = clinic_without_admin(b).await;
    let first = clinic.spawn_child("admin", &[]);
    clinic.spawn_child("admin", &[]);
    ready(&clinic).await;
    wait::until(
        "both admin instances answer $SRV.PING",
        DEADLINE,
        || async { (clinic.srv("PING", "admin", 2).await.len() == 2).then_some(()) },
    )
    .await;
    let admin = admin(&clinic).await;
    let docs = doctors(&clinic, 3).await;
    let g = group(
        &admin,
        "round_robin",
        3600,
        &docs.iter().collect::<Vec<_>>(),
    )
    .await;
    let pat = patient(&clinic).await;
    let w = window_in(4);
    let mut ids = Vec::new();
    for _ in 0..100 {
        ids.push(pat.requested(json!({"group": g}), &w).await);
    }
    wait::until("a hundred offers", DEADLINE, || async {
        let mut n = 0;
        for d in &docs {
            n += d.offered().await.len();
        }
        (n == 100).then_some(())
    })
    .await;
    let db = admin_db(&clinic).await;
    let owners = rows(
        &db,
        "SELECT owner, CAST(COUNT(*) AS BIGINT) FROM appointments GROUP BY owner",
    )
    .await;
    assert_eq!(owners.len(), 2, "both instances own requests: {owners:?}");

    clinic.kill_child(first);
    let survivor = wait::until("the survivor owns every open request", DEADLINE, || async {
        let o = rows(&db, "SELECT owner, CAST(COUNT(*) AS BIGINT) FROM appointments WHERE status IN ('requested', 'offered') GROUP BY owner").await;
        (o.len() == 1 && o[0].1 == 100).then(|| o[0].0.clone())
    })
    .await;
    assert!(owners.iter().any(|(o, _)| *o == survivor));

    // The adopted requests keep moving: a decline is routed on by the survivor.
    let mut declined = 0;
    for d in &docs {
        for id in d.offered().await.into_iter().take(1) {
            let r = d
                .post(
                    &format!("/api/appointments/{id}/decline"),
                    &json!({"reason": "fully booked"}),
                )
                .await;
            assert_eq!(r.status(), 200);
            declined += 1;
            let next = wait::until("re-offered to another member", DEADLINE, || async {
                for other in docs.iter().filter(|o| o.id != d.id) {
                    if other.offered().await.contains(&id) {
                        return Some(other.id.clone());
                    }
                }
                None
            })
            .await;
            assert_ne!(next, d.id);
        }
    }
    assert_eq!(declined, 3);
    let dup = rows(&db, "SELECT appointment_id, CAST(COUNT(*) AS BIGINT) FROM offers WHERE status = 'pending' GROUP BY appointment_id, doctor_id HAVING COUNT(*) > 1").await;
    assert!(
        dup.is_empty(),
        "at most one open offer per (request, doctor): {dup:?}"
    );
    db.close().await;
}

async fn an_offer_whose_deadline_passes_while_admin_is_down_escalates_exactly_once_after_restart(
    b: Backend,
) {
    let clinic = clinic_without_admin(b).await;
    let child = clinic.spawn_child("admin", &[]);
    ready(&clinic).await;
    let admin = admin(&clinic).await;
    let docs = doctors(&clinic, 1).await;
    let g = group(&admin, "round_robin", 2, &[&docs[0]]).await;
    let pat = patient(&clinic).await;
    let id = pat.requested(json!({"group": g}), &window_in(4)).await;
    wait_offered(&docs[0], &id).await;
    let db = admin_db(&clinic).await;
    let deadline = rows(&db, "SELECT doctor_id, deadline FROM offers").await[0].1;

    clinic.kill_child(child);
    wait::until(
        "the offer deadline passes while admin is down",
        DEADLINE,
        || async { (carehub_runtime::db::now_ms() > deadline + 200).then_some(()) },
    )
    .await;
    assert!(
        events(&clinic, "offer_timed_out", &id).await.is_empty(),
        "nothing happened while it was down"
    );

    clinic.spawn_child("admin", &[]);
    wait::until(
        "the request escalates after the restart",
        DEADLINE,
        || async { (!events(&clinic, "escalated", &id).await.is_empty()).then_some(()) },
    )
    .await;
    // One more sweep period must not escalate again: wait until the new instance has renewed
    // its lease after the escalation, then count.
    let seen = carehub_runtime::db::now_ms();
    wait::until("a later lease renewal", DEADLINE, || async {
        let leases = rows(&db, "SELECT id, lease_until FROM admin_instances").await;
        leases
            .iter()
            .any(|(_, until)| *until > seen + 5_000)
            .then_some(())
    })
    .await;
    assert_eq!(events(&clinic, "offer_timed_out", &id).await.len(), 1);
    assert_eq!(events(&clinic, "escalated", &id).await.len(), 1);
    db.close().await;
}

async fn round_robin_stays_fair_across_an_admin_restart(b: Backend) {
    let clinic = clinic_without_admin(b).await;
    let child = clinic.spawn_child("admin", &[]);
    ready(&clinic).await;
    let admin = admin(&clinic).await;
    let docs = doctors(&clinic, 3).await;
    let g = group(
        &admin,
        "round_robin",
        3600,
        &docs.iter().collect::<Vec<_>>(),
    )
    .await;
    let pat = patient(&clinic).await;
    let w = window_in(5);
    let offers = |n: usize| {
        let docs = &docs;
        async move {
            wait::until("offers made", DEADLINE, || async {
                let mut counts = Vec::new();
                for d in docs {
                    counts.push(d.offered().await.len());
                }
                (counts.iter().sum::<usize>() == n).then_some(counts)
            })
            .await
        }
    };
    for _ in 0..15 {
        pat.requested(json!({"group": g}), &w).await;
    }
    assert_eq!(offers(15).await, [5, 5, 5]);
    clinic.kill_child(child);
    clinic.spawn_child("admin", &[]);
    ready(&clinic).await;
    for _ in 0..15 {
        pat.requested(json!({"group": g}), &w).await;
    }
    assert_eq!(
        offers(30).await,
        [10, 10, 10],
        "the rotation continues where it stopped"
    );
}
