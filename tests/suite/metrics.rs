//! Prometheus metrics and JSON logs, on the built binary: `carehub up` with
//! `CAREHUB_METRICS_ADDR` exposes every component's metrics on one listener that serves
//! nothing else, and they move with real traffic (HTTP requests by route template, service
//! endpoints, error codes, websockets, the outbox, NATS reconnects); `carehub serve` processes
//! each bind their own `CAREHUB_<COMPONENT>_METRICS_ADDR`; and one request's id shows up in the
//! JSON log lines of both the gateway and the service that handled it.

use crate::harness::{Backend, Clinic, PASSWORD, token, unique_email};
use crate::support::{net::free_port, wait};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

const DEADLINE: Duration = Duration::from_secs(30);

/// One sample of the Prometheus text format.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text exposition format: `name{k="v",…} value`, with `\\`, `\"` and `\n`
/// escapes in label values; comments and blank lines are skipped.
fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| parse_line(l).unwrap_or_else(|| panic!("unparsable metrics line: {l}")))
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_owned();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            if c == '}' {
                break i;
            }
            if c == ',' {
                continue;
            }
            // A key, up to `="`.
            let mut key = String::from(c);
            loop {
                let (_, c) = chars.next()?;
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            if chars.next()?.1 != '"' {
                return None;
            }
            let mut value = String::new();
            loop {
                match chars.next()?.1 {
                    '"' => break,
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    other => value.push(other),
                }
            }
            labels.insert(key, value);
        };
        rest = &body[end + 1..];
    }
    let value = match rest.split_whitespace().next()? {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// A scrape: the samples of one `GET /metrics`.
pub(crate) struct Scrape(Vec<Sample>);

impl Scrape {
    pub(crate) async fn of(url: &str) -> Self {
        let r = reqwest::get(url).await.expect("scrape");
        assert_eq!(r.status(), 200);
        let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with("text/plain"), "content type {ct}");
        Self(parse(&r.text().await.expect("metrics text")))
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.0.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The sum of the samples named `name` carrying `labels` (0 when there is none).
    pub(crate) fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// The one sample named `name` with `labels`, if present.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<_> = self.matching(name, labels).collect();
        assert!(found.len() <= 1, "several samples match {name} {labels:?}");
        found.first().map(|s| s.value)
    }

    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|s| s.name == name)
    }
}

/// Waits until a scrape satisfies `ok`.
async fn until_scrape(url: &str, what: &str, ok: impl Fn(&Scrape) -> bool) {
    let ok = &ok;
    wait::until(what, DEADLINE, || async move {
        let s = Scrape::of(url).await;
        ok(&s).then_some(())
    })
    .await;
}

async fn ready(clinic: &Clinic, base: &str) {
    clinic
        .wait_status(base, "/readyz", None, 200, "carehub to be ready")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_off_unless_an_address_is_configured() {
    let clinic = Clinic::start(Backend::Sqlite).await;
    assert_eq!(clinic.system.metrics_addr, None);
    assert!(!carehub_runtime::metrics::enabled());
    // The API still answers; no listener was bound for metrics.
    let r = clinic
        .http
        .get(clinic.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carehub_up_exposes_every_components_metrics_on_a_listener_of_their_own() {
    let mut clinic = Clinic::start_with(Backend::Sqlite, &[], &[]).await;
    let (gw, hub, mx) = (free_port(), free_port(), free_port());
    let gw_addr = format!("127.0.0.1:{gw}");
    let hub_addr = format!("127.0.0.1:{hub}");
    let mx_addr = format!("127.0.0.1:{mx}");
    clinic.spawn_carehub(
        &["up"],
        &[
            ("CAREHUB_GATEWAY_ADDR", gw_addr.as_str()),
            ("CAREHUB_HUB_ADDR", hub_addr.as_str()),
            ("CAREHUB_METRICS_ADDR", mx_addr.as_str()),
        ],
    );
    clinic.base = format!("http://{gw_addr}");
    let base = clinic.base.clone();
    ready(&clinic, &base).await;
    let metrics = format!("http://{mx_addr}/metrics");

    // Only GET /metrics: no API route, health check or anything else on this listener.
    for path in ["/api/me", "/healthz", "/readyz", "/", "/metrics/x"] {
        let r = reqwest::get(format!("http://{mx_addr}{path}"))
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path} on the metrics listener");
    }

    // Every component is connected to NATS and says so.
    until_scrape(&metrics, "every component connected", |s| {
        [
            "auth", "doctor", "patient", "notify", "admin", "hub", "gateway",
        ]
        .iter()
        .all(|c| s.get("carehub_nats_connected", &[("component", c)]) == Some(1.0))
    })
    .await;

    let email = unique_email("metrics");
    let session = clinic.patient(&email).await;
    let t = token(&session);

    // HTTP requests by route template and status class, and the service endpoint behind them.
    let me = [
        ("component", "gateway"),
        ("route", "/api/me"),
        ("method", "GET"),
        ("status", "2xx"),
    ];
    let auth_me = [("component", "auth"), ("endpoint", "me"), ("outcome", "ok")];
    let before = Scrape::of(&metrics).await;
    for _ in 0..5 {
        let r = clinic.me_at(&base, &t).await;
        assert_eq!(r.status(), 200);
    }
    let after = Scrape::of(&metrics).await;
    let delta =
        |name: &str, labels: &[(&str, &str)]| after.sum(name, labels) - before.sum(name, labels);
    assert_eq!(delta("carehub_http_requests_total", &me), 5.0);
    assert_eq!(
        delta("carehub_http_request_duration_seconds_count", &me),
        5.0
    );
    let buckets: Vec<_> = after
        .matching("carehub_http_request_duration_seconds_bucket", &me)
        .collect();
    assert!(buckets.len() > 5, "latency buckets: {buckets:?}");
    let inf = buckets
        .iter()
        .find(|b| b.labels["le"] == "+Inf")
        .expect("+Inf bucket");
    assert_eq!(
        inf.value,
        after.sum("carehub_http_request_duration_seconds_count", &me)
    );
    assert_eq!(delta("carehub_rpc_requests_total", &auth_me), 5.0);
    assert_eq!(
        delta(
            "carehub_rpc_duration_seconds_count",
            &[("component", "auth"), ("endpoint", "me")]
        ),
        5.0
    );
    // Route templates, not raw paths: an id in the path does not make a new label value.
    let unknown = format!("/api/doctors/{}", uuid::Uuid::new_v4());
    clinic
        .http
        .get(clinic.url(&unknown))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    let s = Scrape::of(&metrics).await;
    assert!(
        s.0.iter().all(|x| !x
            .labels
            .get("route")
            .is_some_and(|r| r.contains(&unknown[13..]))),
        "a raw path became a label"
    );

    // Errors by stable code.
    let bad = [
        ("component", "auth"),
        ("endpoint", "login"),
        ("code", "invalid_credentials"),
    ];
    let before = Scrape::of(&metrics)
        .await
        .sum("carehub_rpc_errors_total", &bad);
    let r = clinic
        .try_login(&clinic.http, &email, "wrong password")
        .await;
    assert_eq!(r.status(), 401);
    let after = Scrape::of(&metrics)
        .await
        .sum("carehub_rpc_errors_total", &bad);
    assert_eq!(after - before, 1.0);

    // The outbox: the registration's event was published, and the backlog is reported.
    until_scrape(&metrics, "auth's outbox metrics", |s| {
        s.sum("carehub_outbox_published_total", &[("component", "auth")]) >= 1.0
            && s.get("carehub_outbox_backlog", &[("component", "auth")]) == Some(0.0)
    })
    .await;
    // Actor mailboxes of the admin service.
    until_scrape(&metrics, "the router's mailbox gauge", |s| {
        s.get(
            "carehub_actor_mailbox_depth",
            &[("component", "admin"), ("actor", "router")],
        )
        .is_some_and(|v| v >= 0.0)
    })
    .await;

    // Websockets: one through the gateway is open at the gateway and at the hub, then neither.
    let gw_ws = [("component", "gateway")];
    let hub_ws = [("component", "hub")];
    let ws_url = format!("ws://{gw_addr}/ws");
    let mut ws = crate::hub::Ws::signed_in(&ws_url, &t).await;
    until_scrape(&metrics, "one open websocket", |s| {
        s.get("carehub_websockets_open", &gw_ws) == Some(1.0)
            && s.get("carehub_websockets_open", &hub_ws) == Some(1.0)
            && s.sum("carehub_hub_frames_total", &[("direction", "out")]) >= 1.0
    })
    .await;
    ws.send(json!({"type": "ping_not_a_frame"})).await;
    ws.next_of("error").await;
    let s = Scrape::of(&metrics).await;
    assert!(s.sum("carehub_hub_frames_total", &[("direction", "in")]) >= 1.0);
    ws.socket.close(None).await.unwrap();
    until_scrape(&metrics, "no open websocket", |s| {
        s.get("carehub_websockets_open", &gw_ws) == Some(0.0)
            && s.get("carehub_websockets_open", &hub_ws) == Some(0.0)
            && s.sum("carehub_hub_disconnects_total", &[("component", "hub")]) >= 1.0
    })
    .await;

    // A backlog: with the users stream gone, a registration's event cannot be published.
    let js = async_nats::jetstream::new(clinic.harness_nats_client().await);
    js.delete_stream("CAREHUB_USERS")
        .await
        .expect("delete stream");
    clinic.patient(&unique_email("stuck")).await;
    until_scrape(&metrics, "a backlog in auth's outbox", |s| {
        s.get("carehub_outbox_backlog", &[("component", "auth")]) >= Some(1.0)
            && s.sum(
                "carehub_outbox_publish_failures_total",
                &[("component", "auth")],
            ) >= 1.0
    })
    .await;

    // NATS restarts: every component counts a reconnect and is connected again.
    clinic.nats.restart().await;
    until_scrape(&metrics, "reconnects counted", |s| {
        ["auth", "admin", "hub", "gateway"].iter().all(|c| {
            s.sum("carehub_nats_reconnects_total", &[("component", c)]) >= 1.0
                && s.sum("carehub_nats_disconnects_total", &[("component", c)]) >= 1.0
                && s.get("carehub_nats_connected", &[("component", c)]) == Some(1.0)
        })
    })
    .await;
    ready(&clinic, &base).await;
}

/// Every non-empty line of a log file, as JSON (panics on a line that is not a JSON object
/// with unique keys).
fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let keys: UniqueKeys =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON object ({e}): {l}"));
            assert!(keys.0, "a key appears twice: {l}");
            serde_json::from_str(l).unwrap()
        })
        .collect()
}

/// Whether a JSON object's top-level keys are unique (`serde_json::Value` would keep the last).
struct UniqueKeys(bool);

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = UniqueKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<UniqueKeys, A::Error> {
                let mut seen = std::collections::HashSet::new();
                let mut unique = true;
                while let Some((k, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                    unique &= seen.insert(k);
                }
                Ok(UniqueKeys(unique))
            }
        }
        d.deserialize_map(Keys)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_reaches_the_json_logs_of_the_gateway_and_the_service_in_other_processes() {
    let mut clinic = Clinic::start_with(Backend::Sqlite, &[], &[]).await;
    let (gw, gm, am, hub) = (free_port(), free_port(), free_port(), free_port());
    let gw_addr = format!("127.0.0.1:{gw}");
    let hub_addr = format!("127.0.0.1:{hub}");
    let hub_url = format!("ws://{hub_addr}/ws");
    let gm_addr = format!("127.0.0.1:{gm}");
    let am_addr = format!("127.0.0.1:{am}");
    // Both processes get the same variables; each binds the metrics address of its component.
    let vars = [
        ("CAREHUB_LOG_JSON", "true"),
        ("RUST_LOG", "info,carehub_bus=debug"),
        ("CAREHUB_GATEWAY_ADDR", gw_addr.as_str()),
        ("CAREHUB_REQUIRED_SERVICES", "auth"),
        ("CAREHUB_GATEWAY_METRICS_ADDR", gm_addr.as_str()),
        ("CAREHUB_AUTH_METRICS_ADDR", am_addr.as_str()),
        ("CAREHUB_HUB_ADDR", hub_addr.as_str()),
        ("CAREHUB_HUB_URL", hub_url.as_str()),
    ];
    let (_, auth_log) = clinic.spawn_carehub(&["serve", "auth"], &vars);
    let (_, gateway_log) = clinic.spawn_carehub(&["serve", "gateway"], &vars);
    clinic.spawn_carehub(&["serve", "hub"], &vars);
    let (_, patient_log) = clinic.spawn_carehub(&["serve", "patient"], &vars);
    clinic.base = format!("http://{gw_addr}");
    let base = clinic.base.clone();
    ready(&clinic, &base).await;

    let id = format!("trace-{}", uuid::Uuid::new_v4().simple());
    let r = clinic
        .http
        .post(format!("{base}/api/auth/login"))
        .header("x-request-id", &id)
        .json(&json!({"email": unique_email("nobody"), "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["x-request-id"].to_str().unwrap(), id);

    let carrying = |path: &Path| -> Vec<Value> {
        json_lines(path)
            .into_iter()
            .filter(|l| l["request_id"] == id.as_str())
            .collect()
    };
    let service_lines = wait::until("the auth service to log the request", DEADLINE, || {
        let lines = carrying(&auth_log);
        async move { (!lines.is_empty()).then_some(lines) }
    })
    .await;
    assert!(
        service_lines
            .iter()
            .any(|l| l["service"] == "auth" && l["endpoint"] == "login"),
        "auth's lines for the request: {service_lines:?}"
    );
    let gateway_lines = wait::until("the gateway to log the request", DEADLINE, || {
        let lines = carrying(&gateway_log);
        async move { (!lines.is_empty()).then_some(lines) }
    })
    .await;
    assert!(
        gateway_lines
            .iter()
            .any(|l| l["route"] == "/api/auth/login" && l["status"] == 401),
        "the gateway's lines for the request: {gateway_lines:?}"
    );
    for line in service_lines.iter().chain(&gateway_lines) {
        assert!(line["timestamp"].is_string() && line["level"].is_string());
        assert!(line["message"].is_string(), "{line}");
    }

    // A websocket through the gateway: the hub verifies its token under the /ws request's id.
    let session = clinic.patient(&unique_email("ws")).await;
    let ws_id = format!("ws-{}", uuid::Uuid::new_v4().simple());
    let mut req = format!("ws://{gw_addr}/ws").into_client_request().unwrap();
    req.headers_mut()
        .insert("x-request-id", ws_id.parse().unwrap());
    let (socket, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let mut ws = crate::hub::Ws { socket };
    ws.send(json!({"type": "auth", "token": token(&session)}))
        .await;
    ws.next_of("welcome").await;
    wait::until(
        "the hub's verify call under the /ws request id",
        DEADLINE,
        || {
            let found = json_lines(&auth_log)
                .iter()
                .any(|l| l["request_id"] == ws_id.as_str() && l["endpoint"] == "verify");
            async move { found.then_some(()) }
        },
    )
    .await;
    assert!(
        json_lines(&gateway_log)
            .iter()
            .any(|l| l["request_id"] == ws_id.as_str() && l["route"] == "/ws"),
        "the gateway logs the /ws request under its id"
    );

    // An event carries the id on: auth records `user.registered` while handling the request,
    // and the patient service, another process, handles that event under the same id.
    let reg_id = format!("reg-{}", uuid::Uuid::new_v4().simple());
    let r = clinic
        .http
        .post(format!("{base}/api/auth/register"))
        .header("x-request-id", &reg_id)
        .json(&json!({"email": unique_email("traced"), "password": PASSWORD, "display_name": "Traced"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let handled = wait::until(
        "the patient service to handle the registration event",
        DEADLINE,
        || {
            let lines: Vec<Value> = json_lines(&patient_log)
                .into_iter()
                .filter(|l| l["request_id"] == reg_id.as_str())
                .collect();
            async move { (!lines.is_empty()).then_some(lines) }
        },
    )
    .await;
    assert!(
        handled.iter().any(|l| l["subject"]
            .as_str()
            .is_some_and(|s| s.starts_with("carehub.events.user."))),
        "the patient service's lines for the event: {handled:?}"
    );

    // Each process serves its own component's metrics.
    let auth = Scrape::of(&format!("http://{am_addr}/metrics")).await;
    assert!(
        auth.sum(
            "carehub_rpc_errors_total",
            &[
                ("component", "auth"),
                ("endpoint", "login"),
                ("code", "invalid_credentials")
            ]
        ) >= 1.0
    );
    assert!(!auth.has("carehub_http_requests_total"));
    let gateway = Scrape::of(&format!("http://{gm_addr}/metrics")).await;
    assert!(
        gateway.sum(
            "carehub_http_requests_total",
            &[("route", "/api/auth/login"), ("status", "4xx")]
        ) >= 1.0
    );
    assert!(!gateway.has("carehub_rpc_requests_total"));
}
