//! A rolling restart: two instances of every service and two gateways as child processes on
//! PostgreSQL, under steady load from a few clients, each restarted in turn with SIGTERM (the
//! replacement answering `$SRV.PING` before the next goes). No answer may be anything but 2xx,
//! and every acknowledged write is stored exactly once.
//!
//! Clients alternate between the two gateways and retry on the other one only when a
//! connection is refused (a stopped gateway) or closed unanswered by a stopping one (see
//! [`closed_unanswered`]); requests to the services are never retried.

use crate::appointments::{doctors, signed_in, window_in};
use crate::both_backends;
use crate::harness::{Backend, Clinic, PASSWORD, token};
use crate::support::{net::free_port, wait};
use serde_json::{Value, json};
use sqlx::Connection as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A child: its component, its index in the harness, its extra variables.
type Child = (String, usize, Vec<(String, String)>);

const SERVICES: [&str; 6] = ["auth", "doctor", "patient", "notify", "admin", "hub"];

/// Two gateways; each call goes to the next one, and to the other on a refused connection.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    bases: Arc<[String; 2]>,
    turn: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
}

impl Client {
    /// Sends `build(base)`; returns the answer when 2xx, and records anything else.
    async fn call(
        &self,
        what: &str,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Option<Value> {
        let first = self.turn.fetch_add(1, Ordering::Relaxed);
        let mut last = String::new();
        for attempt in 0..2 {
            let base = &self.bases[(first + attempt) % 2];
            match build(base).send().await {
                Ok(r) if r.status().is_success() => {
                    return Some(r.json().await.unwrap_or(Value::Null));
                }
                Ok(r) => {
                    let status = r.status();
                    let body = r.text().await.unwrap_or_default();
                    self.failures
                        .lock()
                        .unwrap()
                        .push(format!("{what} at {base}: {status} {body}"));
                    return None;
                }
                Err(e) if e.is_connect() || closed_unanswered(&e) => {
                    last = format!("{what} at {base}: {e}");
                }
                Err(e) => {
                    self.failures
                        .lock()
                        .unwrap()
                        .push(format!("{what} at {base}: {e:?}"));
                    return None;
                }
            }
        }
        self.failures.lock().unwrap().push(last);
        None
    }
}

/// Whether the gateway closed the connection before any answer: a kept-alive connection that a
/// stopping gateway closed as the request went out on it. A stopping gateway answers every
/// request it has read, so this one was not handled, and browsers send it again (Chromium does
/// so on a reused connection, whatever the method); the exactly-once checks below would catch a
/// request that was handled after all.
fn closed_unanswered(e: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            return h.is_incomplete_message();
        }
        source = s.source();
    }
    false
}

#[tokio::test]
async fn a_connection_closed_before_any_answer_is_told_apart() {
    use tokio::io::AsyncReadExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = tcp.read(&mut buf).await.unwrap();
        // Closed with the request read and nothing answered.
    });
    let e = reqwest::Client::new()
        .post(format!("http://{addr}/api/auth/register"))
        .body("{}")
        .send()
        .await
        .unwrap_err();
    server.await.unwrap();
    assert!(closed_unanswered(&e), "{e:?}");
    assert!(!e.is_connect());
    // A refused connection is the other case, not this one: a port bound but not listening
    // (held, so that no other test can take it meanwhile).
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let closed = held.local_addr().unwrap();
    let refused = reqwest::Client::new()
        .get(format!("http://{closed}/"))
        .send()
        .await
        .unwrap_err();
    assert!(refused.is_connect() && !closed_unanswered(&refused));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_every_instance_in_turn_under_load_loses_and_duplicates_nothing() {
    // Nothing in-process: every component is a child process.
    let mut clinic = Clinic::start_with(
        Backend::Postgres,
        &[
            ("CAREHUB_SHUTDOWN_GRACE", "10"),
            ("CAREHUB_ADMIN_LEASE", "3"),
        ],
        &[],
    )
    .await;
    let mut children: Vec<Child> = Vec::new();
    for s in SERVICES {
        for _ in 0..2 {
            let vars = if s == "hub" {
                vec![(
                    "CAREHUB_HUB_ADDR".to_owned(),
                    format!("127.0.0.1:{}", free_port()),
                )]
            } else {
                Vec::new()
            };
            let refs: Vec<(&str, &str)> =
                vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            children.push((s.to_owned(), clinic.spawn_child(s, &refs), vars));
        }
    }
    let ports = [free_port(), free_port()];
    let bases: [String; 2] = ports.map(|p| format!("http://127.0.0.1:{p}"));
    for p in ports {
        let vars = vec![("CAREHUB_GATEWAY_ADDR".to_owned(), format!("127.0.0.1:{p}"))];
        let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        children.push(("gateway".into(), clinic.spawn_child("gateway", &refs), vars));
    }
    for s in SERVICES {
        wait_instances(&clinic, s, 2).await;
    }
    for b in &bases {
        clinic
            .wait_status(b, "/readyz", None, 200, "a gateway ready")
            .await;
    }
    clinic.base = bases[0].clone();

    // A doctor taking requests, and a patient who books.
    let doc = doctors(&clinic, 1).await.remove(0);
    let doctor_id = doc.id.clone();
    let patient = clinic.patient(&crate::harness::unique_email("roll")).await;
    let pat = signed_in(&clinic, &patient).await;
    let pat_token = token(&patient);

    let client = Client {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        bases: Arc::new(bases.clone()),
        turn: Arc::default(),
        failures: Arc::default(),
    };
    let registered: Arc<Mutex<Vec<String>>> = Arc::default();
    let booked: Arc<Mutex<Vec<String>>> = Arc::default();
    let reads = Arc::new(AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let mut load = Vec::new();
    for w in 0..2 {
        let (c, registered, stop) = (client.clone(), registered.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.is_cancelled() {
                n += 1;
                let email = format!("r{w}-{n}-{}@example.org", uuid::Uuid::new_v4().simple());
                let body = json!({"email": email, "password": PASSWORD, "display_name": "Pat"});
                if c.call("register", |b| {
                    c.http.post(format!("{b}/api/auth/register")).json(&body)
                })
                .await
                .is_some()
                {
                    registered.lock().unwrap().push(email);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    {
        let (c, booked, stop, t, doctor) = (
            client.clone(),
            booked.clone(),
            stop.clone(),
            pat_token.clone(),
            doctor_id.clone(),
        );
        load.push(tokio::spawn(async move {
            let mut day = 1;
            while !stop.is_cancelled() {
                day = day % 300 + 1;
                let w = window_in(day);
                let body = json!({"target": {"doctor": doctor}, "window_start": w.start,
                    "window_end": w.end, "reason": "rolling"});
                let key = uuid::Uuid::new_v4().simple().to_string();
                if let Some(a) = c
                    .call("book", |b| {
                        c.http
                            .post(format!("{b}/api/appointments"))
                            .bearer_auth(&t)
                            .header("Idempotency-Key", &key)
                            .json(&body)
                    })
                    .await
                {
                    booked
                        .lock()
                        .unwrap()
                        .push(a["id"].as_str().unwrap_or_default().to_owned());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    {
        let (c, reads, stop, t) = (
            client.clone(),
            reads.clone(),
            stop.clone(),
            pat_token.clone(),
        );
        load.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                for path in ["/api/me", "/api/appointments", "/api/doctors"] {
                    if c.call(path, |b| c.http.get(format!("{b}{path}")).bearer_auth(&t))
                        .await
                        .is_some()
                    {
                        reads.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }

    // One at a time: SIGTERM, exit, replacement, replacement answering, next.
    for child in &mut children {
        let (name, old, vars) = child.clone();
        let before = booked.lock().unwrap().len() + registered.lock().unwrap().len();
        assert!(
            clinic.stop_child(old).await,
            "{name} exits cleanly on SIGTERM"
        );
        let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let new = clinic.spawn_child(&name, &refs);
        child.1 = new;
        if name == "gateway" {
            let base = format!("http://{}", vars[0].1);
            clinic
                .wait_status(&base, "/readyz", None, 200, "the new gateway ready")
                .await;
        } else {
            wait_instances(&clinic, &name, 2).await;
        }
        // Writes kept flowing across this restart.
        wait::until(
            "writes after a restart",
            Duration::from_secs(20),
            || async {
                (booked.lock().unwrap().len() + registered.lock().unwrap().len() > before)
                    .then_some(())
            },
        )
        .await;
    }
    stop.cancel();
    for l in load {
        l.await.unwrap();
    }
    let failures = client.failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "non-2xx or failed calls: {failures:#?}"
    );
    let registered = registered.lock().unwrap().clone();
    let booked = booked.lock().unwrap().clone();
    assert!(reads.load(Ordering::Relaxed) > 0);
    assert!(!registered.is_empty() && !booked.is_empty());

    // Every acknowledged write, exactly once.
    let url = clinic
        .env(&[])
        .raw("CAREHUB_DATABASE_URL")
        .unwrap()
        .to_owned();
    let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
    for e in &registered {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM auth.users WHERE email = $1")
            .bind(e)
            .fetch_one(&mut db)
            .await
            .unwrap();
        assert_eq!(n, 1, "{e}");
    }
    for id in &booked {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM admin.appointments WHERE id = $1")
            .bind(id)
            .fetch_one(&mut db)
            .await
            .unwrap();
        assert_eq!(n, 1, "{id}");
    }
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM admin.appointments WHERE patient_id = $1")
            .bind(&pat.id)
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(
        usize::try_from(n).unwrap(),
        booked.len(),
        "no appointment stored that was not acknowledged"
    );
    db.close().await.unwrap();
}

/// Waits until `name` has `n` instances answering `$SRV.PING.<name>`.
async fn wait_instances(clinic: &Clinic, name: &str, n: usize) {
    wait::until(
        &format!("{n} instances of {name}"),
        Duration::from_secs(30),
        || async { (clinic.srv("PING", name, n).await.len() == n).then_some(()) },
    )
    .await;
}

both_backends!(an_instance_of_the_previous_version_starts_after_a_newer_one_migrated);

/// Mid-upgrade, an old instance restarts (or the upgrade is rolled back) after the new version
/// applied a migration the old build does not have: the old build must still migrate and start.
async fn an_instance_of_the_previous_version_starts_after_a_newer_one_migrated(b: Backend) {
    let mut clinic = Clinic::start(b).await;
    let db = clinic.service_db("auth").await;
    // What a newer version's migrator records for a migration of its own.
    let newer = "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (99990101000000, 'from a newer version', TRUE, $1, 0)";
    let checksum = vec![0u8; 48];
    match &db {
        carehub_runtime::Db::Sqlite(p) => {
            sqlx::query(newer).bind(&checksum).execute(p).await.unwrap();
        }
        carehub_runtime::Db::Postgres(p) => {
            sqlx::query(newer).bind(&checksum).execute(p).await.unwrap();
        }
    }
    db.migrate(&carehub_auth::MIGRATOR)
        .await
        .expect("this build migrates beside a newer version's migration");
    // And a second auth instance of this build starts and serves beside the first.
    clinic
        .start_more(&[], &[carehub::system::Component::Auth])
        .await;
    assert_eq!(clinic.srv("PING", "auth", 2).await.len(), 2);
}
