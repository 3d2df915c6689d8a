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
