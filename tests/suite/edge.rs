//! The gateway's edge behaviour: health, error bodies, limits, headers, OpenAPI.

use crate::both_backends;
use crate::harness::{Backend, Clinic, error_code, token, unique_email};
use serde_json::{Value, json};

both_backends!(
    health_and_readiness_answer_when_everything_runs,
    bad_input_gets_one_json_error_body_and_never_a_5xx,
    the_openapi_document_and_docs_page_are_served,
    the_body_limit_fits_the_bus_and_one_byte_more_is_413,
);

async fn health_and_readiness_answer_when_everything_runs(b: Backend) {
    let clinic = Clinic::start(b).await;
    let r = clinic
        .http
        .get(clinic.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    clinic
        .wait_status(&clinic.base, "/readyz", None, 200, "ready")
        .await;
    let r = clinic
        .http
        .get(clinic.url("/healthz"))
        .send()
        .await
        .unwrap();
    for h in [
        "x-content-type-options",
        "x-frame-options",
        "content-security-policy",
        "x-request-id",
    ] {
        assert!(r.headers().contains_key(h), "{h} present");
    }
}

async fn bad_input_gets_one_json_error_body_and_never_a_5xx(b: Backend) {
    let clinic = Clinic::start(b).await;
    let post = |path: &str, body: String| {
        clinic
            .http
            .post(clinic.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for not_an_object in ["[null, null]", "\"text\"", "42"] {
        let r = post("/api/auth/login", not_an_object.into()).await.unwrap();
        assert_eq!(r.status(), 400, "{not_an_object} is not an object");
        assert_eq!(error_code(r).await, "bad_request");
    }
    let r = post("/api/auth/login", "{not json".into()).await.unwrap();
    assert_eq!(r.status(), 400);
    let rid = r
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request");
    assert_eq!(body["error"]["request_id"], rid.as_str());
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );

    // The gateway refuses this body without reading all of it and closes the connection; on
    // its own connection, so the next request cannot be sent down the closing one.
    let r = clinic
        .http
        .post(clinic.url("/api/auth/register"))
        .header("content-type", "application/json")
        .header("connection", "close")
        .body(format!(
            r#"{{"email":"a@b.org","password":"{}","display_name":"x"}}"#,
            "x".repeat(200_000)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(error_code(r).await, "payload_too_large");

    let r = post(
        "/api/auth/register",
        r#"{"email":"not-an-email","password":"long enough pass","display_name":"x"}"#.into(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(error_code(r).await, "validation_failed");

    let r = clinic
        .http
        .post(clinic.url("/api/auth/login"))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = clinic
        .http
        .get(clinic.url("/api/no/such/route"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "not_found");
    let r = clinic
        .http
        .delete(clinic.url("/api/auth/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);

    let s = clinic.patient(&unique_email("edge")).await;
    let r = clinic
        .http
        .get(clinic.url("/api/admin/users?limit=abc"))
        .bearer_auth(token(&s))
        .send()
        .await
        .unwrap();
    assert!(
        r.status() == 400 || r.status() == 403,
        "bad query or forbidden, never 5xx: {}",
        r.status()
    );
    let r = clinic
        .http
        .get(clinic.url("/api/admin/users"))
        .bearer_auth(token(&s))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "patients are not admins");
}

async fn the_openapi_document_and_docs_page_are_served(b: Backend) {
    let clinic = Clinic::start(b).await;
    let doc: Value = clinic
        .http
        .get(clinic.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/auth/register",
        "/api/auth/login",
        "/api/auth/refresh",
        "/api/auth/logout",
        "/api/me",
        "/api/admin/users",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
    }
    let page = clinic
        .http
        .get(clinic.url("/api/docs"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("/api/auth/login"));
    assert!(
        !html.contains("cdn"),
        "the docs page loads nothing from elsewhere"
    );
}

/// A body of exactly `CAREHUB_BODY_LIMIT` bytes reaches the service and one byte more is 413;
/// a limit larger than one NATS message can carry stops the gateway at start.
async fn the_body_limit_fits_the_bus_and_one_byte_more_is_413(b: Backend) {
    const LIMIT: usize = 65_536;
    let clinic = Clinic::start(b).await;
    let s = clinic.patient(&unique_email("limit")).await;
    let small = json!({"blood_type": "O+"}).to_string();
    let put = |body: String| {
        clinic
            .http
            .put(clinic.url("/api/patients/me/record"))
            .bearer_auth(token(&s))
            .header("content-type", "application/json")
            .header("if-match", "*")
            .body(body)
            .send()
    };
    // JSON allows trailing whitespace: the padded body is the same record.
    let exact = format!("{small}{}", " ".repeat(LIMIT - small.len()));
    assert_eq!(exact.len(), LIMIT);
    let r = put(exact.clone()).await.unwrap();
    assert_eq!(
        r.status(),
        200,
        "exactly the limit: {}",
        r.text().await.unwrap()
    );
    let r = put(format!("{exact} ")).await.unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(error_code(r).await, "payload_too_large");

    let out = clinic.run_carehub(
        &["serve", "gateway"],
        &[
            ("CAREHUB_BODY_LIMIT", "2000000"),
            ("CAREHUB_GATEWAY_ADDR", "127.0.0.1:0"),
        ],
    );
    assert!(!out.status.success(), "the gateway must not start");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("CAREHUB_BODY_LIMIT is 2000000") && said.contains("1048576"),
        "names both values: {said}"
    );
}
