//! Refresh rotation with reuse detection, and forged access tokens.

use crate::both_backends;
use crate::harness::{Backend, Clinic, error_code, refresh_token, token, unique_email};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

both_backends!(
    refresh_rotates_and_reusing_an_old_token_revokes_the_whole_family,
    a_renewal_whose_answer_was_lost_is_retried_and_its_undelivered_token_ends_the_session,
    without_a_grace_every_second_use_ends_the_session,
    forged_and_expired_tokens_are_rejected_with_401,
    the_refresh_cookie_is_httponly_strict_and_scoped_to_auth_routes,
);

async fn refresh(clinic: &Clinic, rt: &str) -> reqwest::Response {
    clinic
        .http
        .post(clinic.url("/api/auth/refresh"))
        .json(&json!({"refresh_token": rt, "refresh_token_in": "body"}))
        .send()
        .await
        .unwrap()
}

async fn refresh_rotates_and_reusing_an_old_token_revokes_the_whole_family(b: Backend) {
    let clinic = Clinic::start(b).await;
    let s0 = clinic.patient(&unique_email("rot")).await;
    let r = refresh(&clinic, &refresh_token(&s0)).await;
    assert_eq!(r.status(), 200);
    let s1: Value = r.json().await.unwrap();
    assert_ne!(refresh_token(&s1), refresh_token(&s0), "refresh rotates");
    let r = refresh(&clinic, &refresh_token(&s1)).await;
    assert_eq!(r.status(), 200);
    let s2: Value = r.json().await.unwrap();
    assert_eq!(clinic.me_at(&clinic.base, &token(&s2)).await.status(), 200);

    // Replaying s0's token: reuse detected, the family dies.
    let reuse = refresh(&clinic, &refresh_token(&s0)).await;
    assert_eq!(reuse.status(), 401);
    assert_eq!(error_code(reuse).await, "unauthorized");
    assert_eq!(
        refresh(&clinic, &refresh_token(&s2)).await.status(),
        401,
        "the newest refresh token died too"
    );
    clinic
        .wait_status(
            &clinic.base,
            "/api/me",
            Some(&token(&s2)),
            401,
            "family's access token rejected",
        )
        .await;

    // Another login is a new family and unaffected.
    let other = clinic
        .login(
            s0["user"]["email"].as_str().unwrap(),
            crate::harness::PASSWORD,
        )
        .await;
    assert_eq!(
        clinic.me_at(&clinic.base, &token(&other)).await.status(),
        200
    );
}

/// A client that never heard the answer to a renewal presents its old token again: within the
/// grace it is renewed (as often as answers get lost), and every token it never received is
/// retired, so presenting one later ends the session.
async fn a_renewal_whose_answer_was_lost_is_retried_and_its_undelivered_token_ends_the_session(
    b: Backend,
) {
    let clinic = Clinic::start(b).await;
    let s0 = clinic.patient(&unique_email("lost")).await;
    let t0 = refresh_token(&s0);
    let mut undelivered = Vec::new();
    for _ in 0..2 {
        let r = refresh(&clinic, &t0).await;
        assert_eq!(r.status(), 200, "a renewal whose answer is lost");
        undelivered.push(refresh_token(&r.json::<Value>().await.unwrap()));
    }
    let r = refresh(&clinic, &t0).await;
    assert_eq!(
        r.status(),
        200,
        "the old token, presented again within the grace"
    );
    let s1: Value = r.json().await.unwrap();
    assert!(!undelivered.contains(&refresh_token(&s1)));
    assert_eq!(clinic.me_at(&clinic.base, &token(&s1)).await.status(), 200);
    let r = refresh(&clinic, &refresh_token(&s1)).await;
    assert_eq!(r.status(), 200, "the delivered token renews as usual");
    let s2: Value = r.json().await.unwrap();

    // The old token's last successor is used now: presenting the old one again is a reuse.
    let reuse = refresh(&clinic, &t0).await;
    assert_eq!(reuse.status(), 401);
    assert_eq!(
        refresh(&clinic, &refresh_token(&s2)).await.status(),
        401,
        "a reuse ends the session"
    );

    // On a fresh session: a retired (undelivered) token ends the session when presented.
    let s0 = clinic
        .login(
            s0["user"]["email"].as_str().unwrap(),
            crate::harness::PASSWORD,
        )
        .await;
    let t0 = refresh_token(&s0);
    let r = refresh(&clinic, &t0).await;
    assert_eq!(r.status(), 200);
    let lost = refresh_token(&r.json::<Value>().await.unwrap());
    let r = refresh(&clinic, &t0).await;
    assert_eq!(r.status(), 200);
    let s1: Value = r.json().await.unwrap();
    let stray = refresh(&clinic, &lost).await;
    assert_eq!(stray.status(), 401);
    assert_eq!(error_code(stray).await, "unauthorized");
    assert_eq!(
        refresh(&clinic, &refresh_token(&s1)).await.status(),
        401,
        "the undelivered token's use ended the session"
    );
    clinic
        .wait_status(
            &clinic.base,
            "/api/me",
            Some(&token(&s1)),
            401,
            "the session's access token rejected",
        )
        .await;
}

async fn without_a_grace_every_second_use_ends_the_session(b: Backend) {
    let clinic = Clinic::start_with(
        b,
        &[("CAREHUB_REFRESH_REUSE_GRACE", "0")],
        &carehub::system::Component::ALL,
    )
    .await;
    let s0 = clinic.patient(&unique_email("nograce")).await;
    let r = refresh(&clinic, &refresh_token(&s0)).await;
    assert_eq!(r.status(), 200);
    let s1: Value = r.json().await.unwrap();
    assert_eq!(refresh(&clinic, &refresh_token(&s0)).await.status(), 401);
    assert_eq!(refresh(&clinic, &refresh_token(&s1)).await.status(), 401);
}

fn segments(t: &str) -> (Value, Value, String) {
    let parts: Vec<&str> = t.split('.').collect();
    let h = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let c = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    (h, c, parts[2].to_owned())
}

fn enc(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

/// Signs `claims` with the clinic's real key (read from its key file), as an insider could.
fn sign_with_real_key(clinic: &Clinic, header: &Value, claims: &Value) -> String {
    let file: Value =
        serde_json::from_slice(&std::fs::read(clinic.dir.join("auth-signing-keys.json")).unwrap())
            .unwrap();
    let secret = URL_SAFE_NO_PAD
        .decode(file["keys"][0]["secret"].as_str().unwrap())
        .unwrap();
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    h.kid = header["kid"].as_str().map(str::to_owned);
    jsonwebtoken::encode(&h, claims, &jsonwebtoken::EncodingKey::from_secret(&secret)).unwrap()
}

async fn forged_and_expired_tokens_are_rejected_with_401(b: Backend) {
    let clinic = Clinic::start(b).await;
    let s = clinic.patient(&unique_email("forge")).await;
    let real = token(&s);
    assert_eq!(
        clinic.me_at(&clinic.base, &real).await.status(),
        200,
        "the genuine token works"
    );
    let (header, claims, sig) = segments(&real);

    let mut none_header = header.clone();
    none_header["alg"] = json!("none");
    let alg_none = format!("{}.{}.", enc(&none_header), enc(&claims));

    let mut admin_claims = claims.clone();
    admin_claims["role"] = json!("admin");
    let tampered = format!("{}.{}.{sig}", enc(&header), enc(&admin_claims));

    let wrong_key = {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        h.kid = header["kid"].as_str().map(str::to_owned);
        jsonwebtoken::encode(
            &h,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&[7u8; 32]),
        )
        .unwrap()
    };
    let now = claims["iat"].as_i64().unwrap();
    let mut expired = claims.clone();
    expired["iat"] = json!(now - 3600);
    expired["exp"] = json!(now - 1800);
    let mut wrong_aud = claims.clone();
    wrong_aud["aud"] = json!("someone-else");
    let mut wrong_iss = claims.clone();
    wrong_iss["iss"] = json!("evil");

    let cases = [
        ("alg none", alg_none, "unauthorized"),
        ("tampered payload", tampered, "unauthorized"),
        ("wrong key", wrong_key, "unauthorized"),
        (
            "expired",
            sign_with_real_key(&clinic, &header, &expired),
            "token_expired",
        ),
        (
            "wrong audience",
            sign_with_real_key(&clinic, &header, &wrong_aud),
            "unauthorized",
        ),
        (
            "wrong issuer",
            sign_with_real_key(&clinic, &header, &wrong_iss),
            "unauthorized",
        ),
        ("garbage", "not.a.jwt".to_owned(), "unauthorized"),
    ];
    for (what, t, code) in cases {
        let r = clinic.me_at(&clinic.base, &t).await;
        assert_eq!(r.status(), 401, "{what}");
        assert_eq!(error_code(r).await, code, "{what}");
    }
    let r = clinic.http.get(clinic.url("/api/me")).send().await.unwrap();
    assert_eq!(r.status(), 401, "no token");
}

async fn the_refresh_cookie_is_httponly_strict_and_scoped_to_auth_routes(b: Backend) {
    let clinic = Clinic::start(b).await;
    let email = unique_email("cookie");
    clinic.patient(&email).await;
    let r = clinic
        .http
        .post(clinic.url("/api/auth/login"))
        .json(&json!({"email": email, "password": crate::harness::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r
        .headers()
        .get("set-cookie")
        .expect("refresh cookie set")
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["refresh_token"], "",
        "page scripts never see the refresh token"
    );
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/api/auth"] {
        assert!(cookie.contains(attr), "{attr} in {cookie}");
    }
    let pair = cookie.split(';').next().unwrap().to_owned();
    let r = clinic
        .http
        .post(clinic.url("/api/auth/refresh"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the cookie refreshes");
    let rotated = r
        .headers()
        .get("set-cookie")
        .expect("rotated cookie")
        .to_str()
        .unwrap()
        .to_owned();
    let rotated = rotated.split(';').next().unwrap().to_owned();
    assert_ne!(rotated, pair);
    // Once the rotated cookie was used, the old value is used up for good (no lost answer to
    // retry: see a_renewal_whose_answer_was_lost_…).
    let r = clinic
        .http
        .post(clinic.url("/api/auth/refresh"))
        .header("cookie", &rotated)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the rotated cookie refreshes");
    let again = clinic
        .http
        .post(clinic.url("/api/auth/refresh"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 401, "the old cookie value is used up");
}
