//! Revocations reach every gateway: through the event, and through the cache flush when a
//! gateway's NATS connection comes back after missing the event.

use crate::both_backends;
use crate::harness::{Backend, Clinic, PASSWORD, token, unique_email};
use crate::support::net::TcpProxy;
use carehub::system::Component;
use carehub_nats::Role;
use serde_json::{Value, json};

both_backends!(
    logout_disable_and_password_change_reach_a_second_gateway,
    a_gateway_that_missed_a_revocation_while_disconnected_rejects_the_token_after_reconnecting,
);

/// Logs in and warms the second gateway's cache with a successful call.
async fn warmed(clinic: &Clinic, second: &str, email: &str) -> Value {
    let s = clinic.login(email, PASSWORD).await;
    assert_eq!(clinic.me_at(second, &token(&s)).await.status(), 200);
    s
}

async fn logout_disable_and_password_change_reach_a_second_gateway(b: Backend) {
    let mut clinic = Clinic::start(b).await;
    let second = clinic
        .start_more(&[], &[Component::Gateway])
        .await
        .expect("second gateway");
    let admin = clinic
        .create_user(Role::Admin, &unique_email("admin"))
        .await;
    let admin_s = clinic
        .login(admin["email"].as_str().unwrap(), PASSWORD)
        .await;

    // Logout on the first gateway.
    let email = unique_email("rev");
    clinic.patient(&email).await;
    let s = warmed(&clinic, &second, &email).await;
    let r = clinic
        .http
        .post(clinic.url("/api/auth/logout"))
        .bearer_auth(token(&s))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    clinic
        .wait_status(
            &second,
            "/api/me",
            Some(&token(&s)),
            401,
            "logout reaches gateway 2",
        )
        .await;

    // Password change.
    let s = warmed(&clinic, &second, &email).await;
    let r = clinic
        .http
        .post(clinic.url("/api/auth/password/change"))
        .bearer_auth(token(&s))
        .json(&json!({"current_password": PASSWORD, "new_password": PASSWORD.to_owned() + "!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    clinic
        .wait_status(
            &second,
            "/api/me",
            Some(&token(&s)),
            401,
            "password change reaches gateway 2",
        )
        .await;

    // Disabling the user.
    let s = clinic.login(&email, &(PASSWORD.to_owned() + "!")).await;
    assert_eq!(clinic.me_at(&second, &token(&s)).await.status(), 200);
    let id = s["user"]["id"].as_str().unwrap();
    let r = clinic
        .http
        .post(clinic.url(&format!("/api/admin/users/{id}/disable")))
        .bearer_auth(token(&admin_s))
        .json(&json!({"reason": "left the clinic"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    clinic
        .wait_status(
            &second,
            "/api/me",
            Some(&token(&s)),
            401,
            "disable reaches gateway 2",
        )
        .await;
}

async fn a_gateway_that_missed_a_revocation_while_disconnected_rejects_the_token_after_reconnecting(
    b: Backend,
) {
    let mut clinic = Clinic::start(b).await;
    let proxy = TcpProxy::start(clinic.nats.addr());
    let proxied = format!("nats://{}", proxy.addr());
    // Long cache so only the reconnect flush can explain a rejection.
    let second = clinic
        .start_more(
            &[
                ("CAREHUB_NATS_URL", &proxied),
                ("CAREHUB_VERIFY_CACHE_TTL", "600"),
            ],
            &[Component::Gateway],
        )
        .await
        .expect("second gateway");
    let email = unique_email("cut");
    clinic.patient(&email).await;
    let s = warmed(&clinic, &second, &email).await;

    proxy.cut();
    let r = clinic
        .http
        .post(clinic.url("/api/auth/logout"))
        .bearer_auth(token(&s))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "logout through the first gateway while the second is cut off"
    );
    proxy.restore();
    clinic
        .wait_status(
            &second,
            "/api/me",
            Some(&token(&s)),
            401,
            "rejected after reconnect",
        )
        .await;
}
