//! Losing and regaining a service, and sharing load between instances.

use crate::both_backends;
use crate::harness::{Backend, Clinic, error_code, token, unique_email};
use carehub::system::Component;
use serde_json::Value;
use std::time::{Duration, Instant};

both_backends!(
    with_auth_killed_calls_answer_503_promptly_and_recover_when_it_returns,
    two_auth_instances_share_the_verify_load,
);

/// PostgreSQL ends every connection carehub holds (as a server restart or a dropped network
/// path does). Requests that meet a broken connection answer 503 `service_unavailable` with
/// `Retry-After`, never 500; once the connections have been idle a second they are checked
/// before use and replaced, so every request succeeds again without restarting anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_ended_answer_503_then_are_replaced() {
    let clinic = Clinic::start(Backend::Postgres).await;
    let s = clinic.patient(&unique_email("pgkill")).await;
    let t = token(&s);
    clinic
        .wait_status(
            &clinic.base,
            "/api/patients/me/profile",
            Some(&t),
            200,
            "profile",
        )
        .await;
    let profile = || async {
        clinic
            .http
            .get(clinic.url("/api/patients/me/profile"))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap()
    };
    // Every pooled connection of the patient service has just been used.
    for _ in 0..10 {
        assert_eq!(profile().await.status(), 200);
    }
    let carehub_runtime::Db::Postgres(pool) = clinic.service_db("patient").await else {
        unreachable!("a PostgreSQL clinic");
    };
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert!(ended.iter().any(|&e| e), "carehub's connections were ended");

    let mut unavailable = 0;
    for _ in 0..10 {
        let r = profile().await;
        match r.status().as_u16() {
            200 => {}
            503 => {
                unavailable += 1;
                assert_eq!(r.headers()["retry-after"], "1");
                assert_eq!(error_code(r).await, "service_unavailable");
            }
            other => panic!(
                "a broken connection answered {other}: {}",
                r.text().await.unwrap()
            ),
        }
    }
    assert!(
        unavailable > 0,
        "the connections used within the last second were handed out unchecked"
    );

    tokio::time::sleep(Duration::from_millis(1500)).await;
    for _ in 0..10 {
        let r = profile().await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
}

async fn with_auth_killed_calls_answer_503_promptly_and_recover_when_it_returns(b: Backend) {
    // Only auth runs (as a child), so readiness asks for auth alone.
    let clinic = Clinic::start_with(
        b,
        &[("CAREHUB_REQUIRED_SERVICES", "auth")],
        &[Component::Gateway],
    )
    .await;
    let auth = clinic.spawn_child("auth", &[]);
    clinic
        .wait_status(&clinic.base, "/readyz", None, 200, "auth child ready")
        .await;
    let s = clinic.patient(&unique_email("kill")).await;
    assert_eq!(clinic.me_at(&clinic.base, &token(&s)).await.status(), 200);

    clinic.kill_child(auth);
    clinic
        .wait_status(
            &clinic.base,
            "/api/me",
            Some(&token(&s)),
            503,
            "503 without auth",
        )
        .await;
    let started = Instant::now();
    let r = clinic.me_at(&clinic.base, &token(&s)).await;
    assert_eq!(r.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered promptly, not after a hang"
    );
    assert_eq!(error_code(r).await, "service_unavailable");
    let ready = clinic.http.get(clinic.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert!(
        body.to_string().contains("auth"),
        "readyz names the missing service: {body}"
    );

    clinic.spawn_child("auth", &[]);
    clinic
        .wait_status(
            &clinic.base,
            "/api/me",
            Some(&token(&s)),
            200,
            "recovered without restarting the gateway",
        )
        .await;
    clinic
        .wait_status(&clinic.base, "/readyz", None, 200, "ready again")
        .await;
}

async fn two_auth_instances_share_the_verify_load(b: Backend) {
    let mut clinic = Clinic::start_with(
        b,
        &[("CAREHUB_VERIFY_CACHE_TTL", "0")],
        &[Component::Auth, Component::Gateway],
    )
    .await;
    clinic.start_more(&[], &[Component::Auth]).await;
    let s = clinic.patient(&unique_email("share")).await;
    let t = token(&s);
    let before: u64 = clinic
        .endpoint_requests("auth", "verify", 2)
        .await
        .iter()
        .sum();
    for _ in 0..200 {
        assert_eq!(clinic.me_at(&clinic.base, &t).await.status(), 200);
    }
    let counts = clinic.endpoint_requests("auth", "verify", 2).await;
    assert_eq!(counts.len(), 2, "both instances answer $SRV.STATS");
    let total: u64 = counts.iter().sum::<u64>() - before;
    assert!(total >= 200, "every call verified (cache off): {counts:?}");
    for c in &counts {
        assert!(
            *c >= 40,
            "each instance handled at least 20% of 200 verify calls: {counts:?}"
        );
    }
}
