//! Registration, login, `/api/me`, password change and reset.

use crate::both_backends;
use crate::harness::{Backend, Clinic, PASSWORD, error_code, token, unique_email};
use futures::StreamExt as _;
use serde_json::{Value, json};
use std::time::Duration;

both_backends!(
    register_login_and_me_work_through_the_gateway_and_verify_is_counted,
    registering_a_known_email_answers_exactly_like_a_new_one,
    a_password_change_issues_a_new_session_and_kills_the_old_tokens,
    a_password_reset_token_works_once_and_ends_every_session,
    a_status_change_reaches_the_account_cache_of_every_auth_instance,
    an_account_keeps_the_time_zone_it_signed_up_with_and_its_owner_changes_it,
);

async fn register_login_and_me_work_through_the_gateway_and_verify_is_counted(b: Backend) {
    let clinic = Clinic::start(b).await;
    let email = unique_email("pat");
    let session = clinic.patient(&email).await;
    assert_eq!(session["token_type"], "Bearer");
    assert_eq!(session["user"]["email"], email.as_str());
    assert_eq!(session["user"]["role"], "patient");
    let r = clinic.me_at(&clinic.base, &token(&session)).await;
    assert_eq!(r.status(), 200);
    let me: Value = r.json().await.unwrap();
    assert_eq!(me["email"], email.as_str());
    assert_eq!(me["status"], "active");

    let stats = clinic.srv("STATS", "auth", 1).await;
    assert_eq!(stats.len(), 1, "one auth instance answers $SRV.STATS");
    let verify = stats[0]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "verify")
        .unwrap()
        .clone();
    assert!(
        verify["num_requests"].as_u64().unwrap() >= 1,
        "verify counted: {verify}"
    );
    // Every running service answers $SRV.PING.
    let services: Vec<&str> = carehub::system::Component::ALL
        .iter()
        .filter(|c| **c != carehub::system::Component::Gateway)
        .map(|c| c.name())
        .collect();
    let pings = clinic.srv("PING", "", services.len()).await;
    for name in &services {
        assert!(
            pings.iter().any(|p| p["name"] == *name),
            "{name} answers $SRV.PING: {pings:?}"
        );
    }
    let info = clinic.srv("INFO", "auth", 1).await;
    let endpoints: Vec<&str> = info[0]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for name in ["register", "login", "refresh", "logout", "verify", "me"] {
        assert!(
            endpoints.contains(&name),
            "{name} listed in $SRV.INFO: {endpoints:?}"
        );
    }
}

async fn registering_a_known_email_answers_exactly_like_a_new_one(b: Backend) {
    let clinic = Clinic::start(b).await;
    let email = unique_email("dup");
    let body = json!({"email": email, "password": PASSWORD, "display_name": "First"});
    let first = clinic
        .http
        .post(clinic.url("/api/auth/register"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let (s1, b1) = (first.status(), first.text().await.unwrap());
    let body2 = json!({"email": email.to_uppercase(), "password": "another long password", "display_name": "Second"});
    let second = clinic
        .http
        .post(clinic.url("/api/auth/register"))
        .json(&body2)
        .send()
        .await
        .unwrap();
    assert_eq!((s1, b1), (second.status(), second.text().await.unwrap()));
    // The original password still works and the second one does not.
    clinic.login(&email, PASSWORD).await;
    let r = clinic
        .try_login(&clinic.http, &email, "another long password")
        .await;
    assert_eq!(r.status(), 401);
}

async fn a_password_change_issues_a_new_session_and_kills_the_old_tokens(b: Backend) {
    let clinic = Clinic::start(b).await;
    let email = unique_email("chg");
    let old = clinic.patient(&email).await;
    let r = clinic
        .http
        .post(clinic.url("/api/auth/password/change"))
        .bearer_auth(token(&old))
        .json(
            &json!({"current_password": "not my password", "new_password": "a brand new password"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "wrong current password is refused");
    let r = clinic
        .http
        .post(clinic.url("/api/auth/password/change"))
        .bearer_auth(token(&old))
        .json(&json!({"current_password": PASSWORD, "new_password": "a brand new password", "refresh_token_in": "body"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let fresh: Value = r.json().await.unwrap();
    assert_eq!(
        clinic.me_at(&clinic.base, &token(&fresh)).await.status(),
        200
    );
    clinic
        .wait_status(
            &clinic.base,
            "/api/me",
            Some(&token(&old)),
            401,
            "old token rejected",
        )
        .await;
    assert_eq!(
        clinic
            .try_login(&clinic.http, &email, PASSWORD)
            .await
            .status(),
        401
    );
    clinic.login(&email, "a brand new password").await;
}

async fn a_password_reset_token_works_once_and_ends_every_session(b: Backend) {
    let clinic = Clinic::start(b).await;
    let email = unique_email("reset");
    let session = clinic.patient(&email).await;
    let (_nc, mut sub) = clinic.reset_subscription().await;
    let unknown = clinic
        .http
        .post(clinic.url("/api/auth/password/reset-request"))
        .json(&json!({"email": unique_email("nobody")}))
        .send()
        .await
        .unwrap();
    let known = clinic
        .http
        .post(clinic.url("/api/auth/password/reset-request"))
        .json(&json!({"email": email}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 202);
    assert_eq!(known.status(), 202);
    assert_eq!(
        unknown.text().await.unwrap(),
        known.text().await.unwrap(),
        "same answer for unknown emails"
    );
    let msg = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("reset token published")
        .unwrap();
    let issued: carehub_nats::auth::PasswordResetIssued =
        serde_json::from_slice(&msg.payload).unwrap();
    assert_eq!(issued.email, email);

    let confirm = |tok: String| {
        clinic
            .http
            .post(clinic.url("/api/auth/password/reset-confirm"))
            .json(&json!({"token": tok, "new_password": "reset to this password"}))
            .send()
    };
    assert_eq!(confirm("chp_forged".into()).await.unwrap().status(), 401);
    assert_eq!(confirm(issued.token.clone()).await.unwrap().status(), 200);
    let again = confirm(issued.token.clone()).await.unwrap();
    assert_eq!(again.status(), 401, "a reset token is single use");
    assert_eq!(error_code(again).await, "unauthorized");
    clinic
        .wait_status(
            &clinic.base,
            "/api/me",
            Some(&token(&session)),
            401,
            "sessions end on reset",
        )
        .await;
    clinic.login(&email, "reset to this password").await;
}

/// `me` answers from a per-instance account cache; a status change made through one auth
/// instance must reach the other's cache through the account events, long before the cache's
/// time to live (set far beyond the test's deadline here) would.
async fn a_status_change_reaches_the_account_cache_of_every_auth_instance(b: Backend) {
    let ttl = [("CAREHUB_AUTH_ACCOUNT_CACHE_TTL", "600")];
    let mut clinic = Clinic::start_with(
        b,
        &ttl,
        &[
            carehub::system::Component::Auth,
            carehub::system::Component::Gateway,
        ],
    )
    .await;
    clinic
        .start_more(&ttl, &[carehub::system::Component::Auth])
        .await;
    let admin = clinic
        .create_user(carehub_nats::Role::Admin, &unique_email("admin"))
        .await;
    let admin_s = clinic
        .login(admin["email"].as_str().unwrap(), PASSWORD)
        .await;
    let email = unique_email("doc");
    let r = clinic
        .http
        .post(clinic.url("/api/auth/register"))
        .json(&json!({"email": email, "password": PASSWORD, "display_name": "Dr. Cached", "role": "doctor"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let doc = clinic.login(&email, PASSWORD).await;
    let id = doc["user"]["id"].as_str().unwrap().to_owned();
    let me_status = || async {
        let r = clinic.me_at(&clinic.base, &token(&doc)).await;
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // Until both instances have answered `me` (and so cached the pending account).
    crate::support::wait::until(
        "both auth instances answered me",
        Duration::from_secs(20),
        || async {
            assert_eq!(me_status().await, "pending");
            let stats = clinic.srv("STATS", "auth", 2).await;
            let answered =
                stats
                    .iter()
                    .filter(|s| {
                        s["endpoints"].as_array().unwrap().iter().any(|e| {
                            e["name"] == "me" && e["num_requests"].as_u64().unwrap_or(0) > 0
                        })
                    })
                    .count();
            (answered == 2).then_some(())
        },
    )
    .await;

    let r = clinic
        .http
        .post(clinic.url(&format!("/api/admin/users/{id}/approve")))
        .bearer_auth(token(&admin_s))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    crate::support::wait::until("me shows the approval", Duration::from_secs(5), || async {
        (me_status().await == "active").then_some(())
    })
    .await;
    // Both instances now answer with the new status: none serves the stale entry.
    let before = clinic.endpoint_requests("auth", "me", 2).await;
    for _ in 0..40 {
        assert_eq!(me_status().await, "active");
    }
    let after = clinic.endpoint_requests("auth", "me", 2).await;
    assert!(
        before.iter().zip(&after).all(|(b, a)| a > b),
        "both instances answered some of the 40 calls: {before:?} -> {after:?}"
    );
}

async fn an_account_keeps_the_time_zone_it_signed_up_with_and_its_owner_changes_it(b: Backend) {
    let clinic = Clinic::start(b).await;
    let register = |email: String, zone: Value| {
        let mut body = json!({"email": email, "password": PASSWORD, "display_name": "Zo Ne"});
        if !zone.is_null() {
            body["time_zone"] = zone;
        }
        clinic
            .http
            .post(clinic.url("/api/auth/register"))
            .json(&body)
            .send()
    };
    // An unknown zone is refused, naming the field; nothing is registered.
    for bad in [
        json!("Mars/Olympus"),
        json!("asia/tokyo"),
        json!(""),
        json!(9),
    ] {
        let email = unique_email("tz-bad");
        let r = register(email.clone(), bad.clone()).await.unwrap();
        assert_eq!(r.status(), 422, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "validation_failed", "{bad}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("time_zone"),
            "{body}"
        );
        let r = clinic.try_login(&clinic.http, &email, PASSWORD).await;
        assert_eq!(r.status(), 401, "{bad}: no account was made");
    }
    // Without a zone the account is in UTC.
    let plain = unique_email("tz-none");
    assert_eq!(
        register(plain.clone(), Value::Null).await.unwrap().status(),
        202
    );
    let session = clinic.login(&plain, PASSWORD).await;
    assert_eq!(session["user"]["time_zone"], "UTC");

    // Account events carry the zone, so other services can keep it.
    let nc = clinic.nats_client_as("auth").await;
    let mut events = nc.subscribe("carehub.events.user.>").await.unwrap();
    nc.flush().await.unwrap();
    let email = unique_email("tz-tokyo");
    assert_eq!(
        register(email.clone(), json!("Asia/Tokyo"))
            .await
            .unwrap()
            .status(),
        202
    );
    let session = clinic.login(&email, PASSWORD).await;
    let user_id = session["user"]["id"].as_str().unwrap().to_owned();
    let access = token(&session);
    assert_eq!(session["user"]["time_zone"], "Asia/Tokyo");
    let me: Value = clinic
        .me_at(&clinic.base, &access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["time_zone"], "Asia/Tokyo");
    let (_, registered) = next_user_event(&mut events, &user_id, "registered").await;
    assert_eq!(registered["user"]["time_zone"], "Asia/Tokyo");

    // The owner changes it; the change is returned, stored and published.
    let patch = |token: String, body: Value| {
        clinic
            .http
            .patch(clinic.url("/api/me"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let r = patch(access.clone(), json!({"time_zone": "America/New_York"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let changed: Value = r.json().await.unwrap();
    assert_eq!(changed["time_zone"], "America/New_York");
    assert_eq!(changed["email"], email.as_str());
    let (subject, updated) = next_user_event(&mut events, &user_id, "updated").await;
    assert_eq!(subject, "carehub.events.user.updated");
    assert_eq!(updated["user"]["time_zone"], "America/New_York");
    let me: Value = clinic
        .me_at(&clinic.base, &access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["time_zone"], "America/New_York");
    let again = clinic.login(&email, PASSWORD).await;
    assert_eq!(again["user"]["time_zone"], "America/New_York");

    // Bad changes are refused and change nothing; an empty change answers the account.
    let r = patch(access.clone(), json!({"time_zone": "Europe/Atlantis"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(error_code(r).await, "validation_failed");
    // A zone may be left out, but null is not a zone.
    let r = patch(access.clone(), json!({"time_zone": null}))
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(error_code(r).await, "validation_failed");
    let r = patch(access.clone(), json!({})).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["time_zone"],
        "America/New_York"
    );
    let r = patch("not-a-token".into(), json!({"time_zone": "UTC"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Another account is untouched.
    let other = clinic.login(&plain, PASSWORD).await;
    assert_eq!(other["user"]["time_zone"], "UTC");
}

/// The next account event of `kind` about `user_id`: its subject and body.
async fn next_user_event(
    events: &mut async_nats::Subscriber,
    user_id: &str,
    kind: &str,
) -> (String, Value) {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let m = events.next().await.expect("event");
            let e: Value = serde_json::from_slice(&m.payload).unwrap();
            if e["user"]["id"] == user_id && e["kind"] == kind {
                return (m.subject.to_string(), e);
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {kind} event"))
}
