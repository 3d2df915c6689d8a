//! Router tests against a real nats-server started for each test (never the machine's NATS),
//! with a small stand-in auth service on the bus where a test needs one.

use crate::{Gateway, GatewayConfig};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use carehub_bus::{Bus, BusConfig, MicroService, ServiceSpec};
use carehub_nats::auth::{Login, Me, Revocation, Revoked, Session, User, Verify};
use carehub_nats::{CallContext, ErrorCode, Principal, Role, UserStatus, WireError};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tower::ServiceExt;

/// A nats-server with carehub's NATS users and permissions (`nats/conf/permissions.conf`) and
/// fresh passwords, so the gateway is tested with exactly the rights it has when deployed.
struct Nats {
    child: carehub_natsd::ChildNats,
}

impl Nats {
    async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "carehub-gateway-nats-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let child = carehub_natsd::Launch::carehub(
            &dir,
            carehub_natsd::conf::SINGLE,
            carehub_natsd::NatsCredentials::generate(),
        )
        .start()
        .await
        .unwrap();
        Self { child }
    }

    /// A connection as carehub's NATS user `user`, with its inbox prefix.
    async fn bus(&self, user: &str) -> Bus {
        let mut cfg = BusConfig::new(self.child.url(), format!("{user}-test"));
        cfg.user = Some(user.to_owned());
        cfg.password = self
            .child
            .credentials()
            .and_then(|c| c.password(user))
            .map(str::to_owned);
        cfg.inbox_prefix = Some(format!("_INBOX_{user}"));
        Bus::connect(&cfg, Duration::from_secs(10)).await.unwrap()
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.child.kill();
        let _ = std::fs::remove_dir_all(self.child.dir());
    }
}

fn principal(token: &str) -> Option<Principal> {
    let (role, status) = match token {
        "admin" => (Role::Admin, UserStatus::Active),
        "pending" => (Role::Doctor, UserStatus::Pending),
        "patient" => (Role::Patient, UserStatus::Active),
        _ => return None,
    };
    Some(Principal {
        user_id: format!("user-{token}"),
        role,
        status,
        jti: format!("jti-{token}"),
        session_id: format!("session-{token}"),
        expires_at: 4_000_000_000,
    })
}

fn user(id: &str) -> User {
    User {
        id: id.into(),
        email: "someone@example.test".into(),
        display_name: "Someone".into(),
        role: Role::Patient,
        status: UserStatus::Active,
        created_at: "2026-01-01T00:00:00Z".into(),
        time_zone: "UTC".into(),
    }
}

/// A stand-in auth service: verifies the fixed tokens above, answers `Me` and `Login`, and
/// counts verifications.
async fn fake_auth(bus: &Bus) -> (MicroService, Arc<AtomicUsize>) {
    let spec = ServiceSpec {
        name: "auth",
        version: "0.0.1",
        description: "test stand-in",
    };
    let svc = MicroService::start(bus, spec, 16).await.unwrap();
    let verified = Arc::new(AtomicUsize::new(0));
    svc.serve::<Verify, _, _, _>(verified.clone(), |n, _ctx, req| async move {
        n.fetch_add(1, Ordering::SeqCst);
        if req.token == "expired" {
            return Err(WireError::new(ErrorCode::TokenExpired, "token expired"));
        }
        principal(&req.token).ok_or_else(|| WireError::unauthorized("bad token"))
    })
    .await
    .unwrap();
    svc.serve::<Me, _, _, _>((), |(), ctx: CallContext, _req| async move {
        let p = ctx
            .principal
            .ok_or_else(|| WireError::unauthorized("anonymous"))?;
        Ok(user(&p.user_id))
    })
    .await
    .unwrap();
    svc.serve::<Login, _, _, _>((), |(), ctx: CallContext, req: Login| async move {
        if req.password != "right" {
            return Err(WireError::new(
                ErrorCode::InvalidCredentials,
                "wrong email or password",
            ));
        }
        Ok(Session {
            access_token: "access".into(),
            token_type: "Bearer".into(),
            expires_in: 900,
            // The client address auth saw, so tests can check what the gateway passed on.
            refresh_token: format!("refresh-{}", ctx.client_ip.unwrap_or_default()),
            refresh_expires_in: 3600,
            user: user("u1"),
        })
    })
    .await
    .unwrap();
    bus.client().flush().await.unwrap();
    (svc, verified)
}

struct Harness {
    nats: Nats,
    gateway: Gateway,
    /// Connected as `auth`: the stand-in auth service serves and publishes on it.
    bus: Bus,
}

async fn harness(cfg: GatewayConfig) -> Harness {
    let nats = Nats::start().await;
    let gateway = Gateway::new(cfg, nats.bus("gateway").await).await.unwrap();
    let bus = nats.bus("auth").await;
    Harness { nats, gateway, bus }
}

fn cfg() -> GatewayConfig {
    GatewayConfig {
        // These tests fake the auth service only.
        required_services: vec!["auth".into()],
        rate_limit_per_sec: 1_000,
        rate_limit_burst: 1_000,
        ..GatewayConfig::default()
    }
}

fn from(peer: &str, req: axum::http::request::Builder) -> axum::http::request::Builder {
    req.extension(ConnectInfo(peer.parse::<SocketAddr>().unwrap()))
}

fn get(uri: &str) -> Request<Body> {
    from("192.0.2.10:5000", Request::get(uri))
        .body(Body::empty())
        .unwrap()
}

fn get_as(uri: &str, token: &str) -> Request<Body> {
    from("192.0.2.10:5000", Request::get(uri))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

fn post_json(uri: &str, body: &str) -> Request<Body> {
    from("192.0.2.10:5000", Request::post(uri))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

async fn send(h: &Harness, req: Request<Body>) -> (Response, Value) {
    let res = h.gateway.router().oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (Response::from_parts(parts, Body::empty()), json)
}

/// Asserts the one error body and that its request id matches the header.
fn assert_error(res: &Response, body: &Value, status: u16, code: &str) {
    assert_eq!(res.status().as_u16(), status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    let header_id = res.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(body["error"]["request_id"], header_id);
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "application/json",
        "{body}"
    );
}

#[tokio::test]
async fn framework_rejections_all_use_the_one_error_body() {
    let h = harness(GatewayConfig {
        body_limit: 64,
        ..cfg()
    })
    .await;

    let (res, body) = send(&h, get("/api/nothing-here")).await;
    assert_error(&res, &body, 404, "not_found");

    let (res, body) = send(&h, get("/api/auth/login")).await;
    assert_error(&res, &body, 405, "method_not_allowed");
    assert!(res.headers().contains_key(header::ALLOW));

    let (res, body) = send(&h, post_json("/api/auth/login", "{not json")).await;
    assert_error(&res, &body, 400, "bad_request");

    let (res, body) = send(&h, post_json("/api/auth/login", r#"{"email":"a@b.c"}"#)).await;
    assert_error(&res, &body, 422, "validation_failed");

    let plain = from("192.0.2.10:5000", Request::post("/api/auth/login"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(r#"{"email":"a","password":"b"}"#))
        .unwrap();
    let (res, body) = send(&h, plain).await;
    assert_error(&res, &body, 415, "unsupported_media_type");

    let huge = format!(r#"{{"email":"{}","password":"x"}}"#, "a".repeat(200));
    let (res, body) = send(&h, post_json("/api/auth/login", &huge)).await;
    assert_error(&res, &body, 413, "payload_too_large");

    let (res, body) = send(&h, get("/api/me")).await;
    assert_error(&res, &body, 401, "unauthorized");
}

#[tokio::test]
async fn a_call_to_a_service_that_is_not_running_is_a_503_that_says_nothing_internal() {
    let h = harness(cfg()).await;
    let (res, body) = send(
        &h,
        post_json("/api/auth/login", r#"{"email":"a@b.c","password":"x"}"#),
    )
    .await;
    assert_error(&res, &body, 503, "service_unavailable");
    assert!(!body.to_string().contains("carehub.api"), "{body}");

    let (res, body) = send(&h, get("/readyz")).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        json!({"status":"unavailable","nats":"connected","missing":["auth"]})
    );
}

#[tokio::test]
async fn readiness_follows_the_required_services() {
    let h = harness(cfg()).await;
    let (_auth, _) = fake_auth(&h.bus).await;
    let (res, body) = send(&h, get("/readyz")).await;
    assert_eq!(res.status(), StatusCode::OK, "{body}");
    assert_eq!(body["missing"], json!([]));
    let (res, body) = send(&h, get("/healthz")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body, json!({"status":"ok"}));
}

#[tokio::test]
async fn request_ids_are_echoed_when_sane_and_replaced_when_not() {
    let h = harness(cfg()).await;
    let mut req = get("/api/missing");
    req.headers_mut()
        .insert("x-request-id", "trace-42.a_b".parse().unwrap());
    let (res, body) = send(&h, req).await;
    assert_eq!(res.headers()["x-request-id"], "trace-42.a_b");
    assert_eq!(body["error"]["request_id"], "trace-42.a_b");

    let mut req = get("/api/missing");
    req.headers_mut()
        .insert("x-request-id", "<script>".parse().unwrap());
    let (res, _) = send(&h, req).await;
    let id = res.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(id, "<script>");
    assert!(uuid::Uuid::parse_str(id).is_ok());
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let h = harness(cfg()).await;
    let (res, _) = send(&h, get("/api/docs")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let hd = res.headers();
    assert_eq!(hd["x-content-type-options"], "nosniff");
    assert_eq!(hd["x-frame-options"], "DENY");
    assert_eq!(hd["referrer-policy"], "no-referrer");
    assert_eq!(hd["cross-origin-opener-policy"], "same-origin");
    assert!(
        hd["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(hd["cache-control"], "no-store");
    assert!(hd.contains_key("strict-transport-security"));

    let (res, _) = send(&h, get("/healthz")).await;
    assert!(!res.headers().contains_key("cache-control"));

    let plain = harness(GatewayConfig {
        cookie_secure: false,
        ..cfg()
    })
    .await;
    let (res, _) = send(&plain, get("/healthz")).await;
    assert!(!res.headers().contains_key("strict-transport-security"));
}

#[tokio::test]
async fn the_openapi_document_is_served() {
    let h = harness(cfg()).await;
    let (res, body) = send(&h, get("/api/openapi.json")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(body["paths"]["/api/auth/login"]["post"].is_object());
}

#[tokio::test]
async fn positive_token_checks_are_cached_until_a_revocation_covers_them() {
    let h = harness(cfg()).await;
    let (_auth, verified) = fake_auth(&h.bus).await;

    for _ in 0..3 {
        let (res, body) = send(&h, get_as("/api/me", "patient")).await;
        assert_eq!(res.status(), StatusCode::OK, "{body}");
        assert_eq!(body["id"], "user-patient");
    }
    assert_eq!(verified.load(Ordering::SeqCst), 1);

    let revoked = Revoked {
        what: Revocation::User {
            user_id: "user-patient".into(),
        },
        reason: "disabled".into(),
        at: 0,
    };
    h.bus
        .publish(carehub_nats::auth::subject::REVOKED, &revoked)
        .await
        .unwrap();
    h.bus.client().flush().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while h.gateway.tokens().contains_for_test("patient").await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "revocation not applied"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (res, _) = send(&h, get_as("/api/me", "patient")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(verified.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn with_a_zero_ttl_every_request_is_verified() {
    let h = harness(GatewayConfig {
        verify_cache_ttl: Duration::ZERO,
        ..cfg()
    })
    .await;
    let (_auth, verified) = fake_auth(&h.bus).await;
    for _ in 0..2 {
        let (res, _) = send(&h, get_as("/api/me", "patient")).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(verified.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn auth_verdicts_pass_through_and_admin_routes_check_role_and_status() {
    let h = harness(cfg()).await;
    let (_auth, _) = fake_auth(&h.bus).await;

    let (res, body) = send(&h, get_as("/api/me", "expired")).await;
    assert_error(&res, &body, 401, "token_expired");

    // A pending doctor is a valid caller, just not an admin.
    let (res, body) = send(&h, get_as("/api/me", "pending")).await;
    assert_eq!(res.status(), StatusCode::OK, "{body}");
    let (res, body) = send(&h, get_as("/api/admin/users", "pending")).await;
    assert_error(&res, &body, 403, "forbidden");

    // An admin gets past the edge; a malformed query is then a 400 in the same body.
    let (res, body) = send(&h, get_as("/api/admin/users?limit=-1", "admin")).await;
    assert_error(&res, &body, 400, "bad_request");
    let (res, body) = send(&h, get_as("/api/admin/users?role=root", "admin")).await;
    assert_error(&res, &body, 400, "bad_request");
}

#[tokio::test]
async fn login_puts_the_refresh_token_in_a_cookie_unless_asked_for_the_body() {
    let h = harness(GatewayConfig {
        trusted_proxies: vec![crate::config::IpNet::parse("10.0.0.0/8").unwrap()],
        ..cfg()
    })
    .await;
    let (_auth, _) = fake_auth(&h.bus).await;

    // An untrusted peer's X-Forwarded-For is ignored: auth sees the TCP peer.
    let mut req = post_json("/api/auth/login", r#"{"email":"a@b.c","password":"right"}"#);
    req.headers_mut()
        .insert("x-forwarded-for", "6.6.6.6".parse().unwrap());
    let (res, body) = send(&h, req).await;
    assert_eq!(res.status(), StatusCode::OK, "{body}");
    assert_eq!(body["refresh_token"], "");
    let cookie = res.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(
        cookie.starts_with("carehub_refresh=refresh-192.0.2.10;"),
        "{cookie}"
    );
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));

    // Through a trusted proxy, the forwarded address is the client.
    let req = from("10.0.0.1:80", Request::post("/api/auth/login"))
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-forwarded-for", "198.51.100.4")
        .body(Body::from(
            r#"{"email":"a@b.c","password":"right","refresh_token_in":"body"}"#,
        ))
        .unwrap();
    let (res, body) = send(&h, req).await;
    assert_eq!(res.status(), StatusCode::OK, "{body}");
    assert!(!res.headers().contains_key(header::SET_COOKIE));
    assert_eq!(body["refresh_token"], "refresh-198.51.100.4");

    let (res, body) = send(
        &h,
        post_json("/api/auth/login", r#"{"email":"a@b.c","password":"wrong"}"#),
    )
    .await;
    assert_error(&res, &body, 401, "invalid_credentials");
}

#[tokio::test]
async fn refresh_without_any_token_is_unauthorized() {
    let h = harness(cfg()).await;
    let req = from("192.0.2.10:5000", Request::post("/api/auth/refresh"))
        .body(Body::empty())
        .unwrap();
    let (res, body) = send(&h, req).await;
    assert_error(&res, &body, 401, "unauthorized");
    // An explicit JSON null is the same as no body.
    let (res, body) = send(&h, post_json("/api/auth/refresh", "null")).await;
    assert_error(&res, &body, 401, "unauthorized");
}

#[tokio::test]
async fn api_routes_are_rate_limited_per_client_but_probes_are_not() {
    let h = harness(GatewayConfig {
        rate_limit_per_sec: 1,
        rate_limit_burst: 2,
        ..cfg()
    })
    .await;
    for _ in 0..2 {
        let (res, _) = send(&h, get("/api/openapi.json")).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    let (res, body) = send(&h, get("/api/openapi.json")).await;
    assert_error(&res, &body, 429, "rate_limited");
    assert!(
        res.headers()[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );

    let other = from("192.0.2.99:1", Request::get("/api/openapi.json"))
        .body(Body::empty())
        .unwrap();
    let (res, _) = send(&h, other).await;
    assert_eq!(res.status(), StatusCode::OK);
    for _ in 0..5 {
        let (res, _) = send(&h, get("/healthz")).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn serve_stops_when_shutdown_is_cancelled() {
    let h = harness(cfg()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let Harness { nats, gateway, .. } = h;
    let server = tokio::spawn(gateway.serve(listener, shutdown.clone(), Duration::from_secs(2)));

    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    drop(nats);
}

#[tokio::test]
async fn revocations_drop_exactly_the_matching_cache_entries() {
    let nats = Nats::start().await;
    let tokens = crate::tokens::Tokens::new(nats.bus("gateway").await, Duration::from_secs(30));
    let p = |user: &str, jti: &str, session: &str| Principal {
        user_id: user.into(),
        role: Role::Patient,
        status: UserStatus::Active,
        jti: jti.into(),
        session_id: session.into(),
        expires_at: 4_000_000_000,
    };
    tokens.insert_for_test("t1", p("u1", "j1", "s1")).await;
    tokens.insert_for_test("t2", p("u1", "j2", "s2")).await;
    tokens.insert_for_test("t3", p("u2", "j3", "s3")).await;
    tokens.insert_for_test("t4", p("u3", "j4", "s4")).await;

    tokens
        .revoke(&Revocation::Token {
            jti: "j1".into(),
            user_id: "u1".into(),
        })
        .await;
    assert!(!tokens.contains_for_test("t1").await);
    assert!(tokens.contains_for_test("t2").await);

    tokens
        .revoke(&Revocation::Session {
            session_id: "s3".into(),
            user_id: "u2".into(),
        })
        .await;
    assert!(!tokens.contains_for_test("t3").await);
    assert!(tokens.contains_for_test("t4").await);

    tokens
        .revoke(&Revocation::User {
            user_id: "u1".into(),
        })
        .await;
    assert!(!tokens.contains_for_test("t2").await);
    assert!(tokens.contains_for_test("t4").await);
    assert_eq!(tokens.cached().await, 1);

    tokens.clear();
    assert!(!tokens.contains_for_test("t4").await);
}

#[tokio::test]
async fn an_expired_principal_is_never_served_from_the_cache() {
    let nats = Nats::start().await;
    let tokens = crate::tokens::Tokens::new(nats.bus("gateway").await, Duration::from_secs(30));
    let mut p = principal("patient").unwrap();
    p.expires_at = 1;
    tokens.insert_for_test("old", p).await;
    assert!(!tokens.contains_for_test("old").await);
}

#[tokio::test]
async fn cors_allows_only_the_configured_origins_with_credentials() {
    let h = harness(GatewayConfig {
        cors_origins: vec!["https://app.example".into()],
        ..cfg()
    })
    .await;
    let preflight = |origin: &str| {
        from("192.0.2.10:5000", Request::options("/api/auth/login"))
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type")
            .body(Body::empty())
            .unwrap()
    };
    let (res, _) = send(&h, preflight("https://app.example")).await;
    assert_eq!(
        res.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example"
    );
    assert_eq!(
        res.headers()[header::ACCESS_CONTROL_ALLOW_CREDENTIALS],
        "true"
    );
    let (res, _) = send(&h, preflight("https://evil.example")).await;
    assert!(
        !res.headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
}

#[tokio::test]
async fn static_files_are_served_with_a_single_page_app_fallback_but_not_under_api() {
    let dir = std::env::temp_dir().join(format!("carehub-web-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "<!doctype html><p>app</p>").unwrap();
    std::fs::write(dir.join("app.js"), "console.log(1)").unwrap();
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    std::fs::write(dir.join("assets/index-3f2a1b.js"), "export {}").unwrap();
    let h = harness(GatewayConfig {
        web_dir: Some(dir.clone()),
        ..cfg()
    })
    .await;
    let read = |res: Response| async move {
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    };
    let res = h.gateway.router().oneshot(get("/app.js")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(read(res).await, "console.log(1)");
    let res = h
        .gateway
        .router()
        .oneshot(get("/patients/42/appointments"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().contains_key("content-security-policy"));
    assert!(read(res).await.contains("<p>app</p>"));
    // The page itself: revalidated on every visit, under the strict policy.
    let res = h.gateway.router().oneshot(get("/")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-cache");
    let csp = res.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(read(res).await.contains("<p>app</p>"));
    // A hashed asset: cached for good, same policy.
    let res = h
        .gateway
        .router()
        .oneshot(get("/assets/index-3f2a1b.js"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert!(
        res.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("default-src 'self'")
    );
    assert_eq!(read(res).await, "export {}");
    // A missing asset is not the page.
    let res = h
        .gateway
        .router()
        .oneshot(get("/assets/missing-000.js"))
        .await
        .unwrap();
    assert_ne!(
        res.headers()[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    let (res, body) = send(&h, get("/api/unknown")).await;
    assert_error(&res, &body, 404, "not_found");
    let _ = std::fs::remove_dir_all(&dir);
}
