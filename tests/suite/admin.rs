//! Admin user management: doctor approval, disabling, listing.

use crate::both_backends;
use crate::harness::{Backend, Clinic, PASSWORD, error_code, token, unique_email};
use carehub_nats::Role;
use serde_json::{Value, json};

both_backends!(
    a_doctor_signs_up_pending_and_an_admin_approves_them,
    admins_list_and_filter_users_with_paging_and_others_cannot,
    a_disabled_user_cannot_sign_in_until_enabled,
);

async fn a_doctor_signs_up_pending_and_an_admin_approves_them(b: Backend) {
    let clinic = Clinic::start(b).await;
    let admin = clinic
        .create_user(Role::Admin, &unique_email("admin"))
        .await;
    let admin_s = clinic
        .login(admin["email"].as_str().unwrap(), PASSWORD)
        .await;
    let email = unique_email("doc");
    let r = clinic
        .http
        .post(clinic.url("/api/auth/register"))
        .json(&json!({"email": email, "password": PASSWORD, "display_name": "Dr. Pending", "role": "doctor"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let doc = clinic.login(&email, PASSWORD).await;
    assert_eq!(doc["user"]["status"], "pending");
    let id = doc["user"]["id"].as_str().unwrap().to_owned();

    let act = |action: &str| {
        clinic
            .http
            .post(clinic.url(&format!("/api/admin/users/{id}/{action}")))
            .bearer_auth(token(&admin_s))
            .json(&json!({}))
            .send()
    };
    let r = act("enable").await.unwrap();
    assert_eq!(r.status(), 409, "enable applies to disabled accounts only");
    let r = act("approve").await.unwrap();
    assert_eq!(r.status(), 200);
    let user: Value = r.json().await.unwrap();
    assert_eq!(user["status"], "active");
    let me: Value = clinic
        .me_at(&clinic.base, &token(&doc))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["status"], "active");
    assert_eq!(
        act("approve").await.unwrap().status(),
        409,
        "approving twice conflicts"
    );

    // Exactly one durable event per change reached the account stream.
    let events = crate::support::wait::until(
        "account events in the stream",
        std::time::Duration::from_secs(10),
        || async {
            let all = clinic
                .stream_messages("CAREHUB_USERS", "carehub.events.user.>")
                .await;
            let mine: Vec<Value> = all
                .into_iter()
                .filter(|e| e["user"]["id"] == id.as_str())
                .collect();
            (mine.len() >= 2).then_some(mine)
        },
    )
    .await;
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["registered", "status_changed"]);
    assert_eq!(events[0]["user"]["status"], "pending");
    assert_eq!(events[1]["user"]["status"], "active");
}

async fn admins_list_and_filter_users_with_paging_and_others_cannot(b: Backend) {
    let clinic = Clinic::start(b).await;
    let admin = clinic
        .create_user(Role::Admin, &unique_email("admin"))
        .await;
    let admin_s = clinic
        .login(admin["email"].as_str().unwrap(), PASSWORD)
        .await;
    for i in 0..5 {
        clinic
            .create_user(Role::Patient, &format!("listme{i}-{}", unique_email("p")))
            .await;
    }
    let list = |q: String| {
        clinic
            .http
            .get(clinic.url(&format!("/api/admin/users?{q}")))
            .bearer_auth(token(&admin_s))
            .send()
    };
    let page1: Value = list("q=LISTME&limit=3".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page1["users"].as_array().unwrap().len(), 3);
    let cursor = page1["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let page2: Value = list(format!("q=listme&limit=3&cursor={cursor}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page2["users"].as_array().unwrap().len(), 2);
    assert!(page2["next_cursor"].is_null());
    let admins: Value = list("role=admin".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        admins["users"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["role"] == "admin")
    );
    let r = list("limit=0".into()).await.unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(error_code(r).await, "validation_failed");

    let patient = clinic.patient(&unique_email("nosy")).await;
    let r = clinic
        .http
        .get(clinic.url("/api/admin/users"))
        .bearer_auth(token(&patient))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(r).await, "forbidden");
}

async fn a_disabled_user_cannot_sign_in_until_enabled(b: Backend) {
    let clinic = Clinic::start(b).await;
    let admin = clinic
        .create_user(Role::Admin, &unique_email("admin"))
        .await;
    let admin_s = clinic
        .login(admin["email"].as_str().unwrap(), PASSWORD)
        .await;
    let email = unique_email("dis");
    let s = clinic.patient(&email).await;
    let id = s["user"]["id"].as_str().unwrap().to_owned();
    let act = |action: &str| {
        clinic
            .http
            .post(clinic.url(&format!("/api/admin/users/{id}/{action}")))
            .bearer_auth(token(&admin_s))
            .send()
    };
    assert_eq!(act("disable").await.unwrap().status(), 200);
    let r = clinic.try_login(&clinic.http, &email, PASSWORD).await;
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(r).await, "account_disabled");
    let r = clinic
        .http
        .post(clinic.url("/api/auth/refresh"))
        .json(&json!({"refresh_token": s["refresh_token"], "refresh_token_in": "body"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the disabled user's refresh token is dead");
    assert_eq!(act("enable").await.unwrap().status(), 200);
    clinic.login(&email, PASSWORD).await;
    let own = admin["id"].as_str().unwrap();
    let r = clinic
        .http
        .post(clinic.url(&format!("/api/admin/users/{own}/disable")))
        .bearer_auth(token(&admin_s))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "an admin cannot disable themselves");
}
