//! What JetStream may lose, on the three-node cluster of the compose deployment (PostgreSQL,
//! `CAREHUB_RECONCILE_INTERVAL=5s`, a real SMTP server):
//! - Jepsen's lost tail, for every kind of event carehub derives state from: all three nodes are
//!   frozen and their stores copied; accounts, approvals, availability changes, bookings,
//!   cancellations and a deleted notification are acknowledged (and published by the outboxes);
//!   then every node is SIGKILLed and comes back from its copy. The relays publish the lost
//!   events again and every copy and every record made from an event ends up there once; the
//!   deleted notification stays deleted.
//! - A consumer ahead of its stream: only the streams' data goes back, the consumers' state
//!   stays; new events still reach every copy, each with one notification and one mail.
//! - Durables deleted while the services run come back from their last applied event, and a
//!   replay of every producer after the duplicate window changes nothing and mails nobody.

use crate::cluster::{doctor, login, message_counts};
use crate::deploy::Deployment;
use crate::harness::{PASSWORD, SmtpSink, unique_email};
use crate::support::wait;
use serde_json::{Value, json};
use sqlx::PgPool;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

const RECOVER: Duration = Duration::from_secs(30);
const REPAIR: Duration = Duration::from_secs(60);
const STREAMS: [&str; 4] = [
    "CAREHUB_USERS",
    "CAREHUB_DOCTORS",
    "CAREHUB_APPOINTMENTS",
    "CAREHUB_AUDIT",
];

/// The PostgreSQL pool of `service`'s schema in the deployment.
async fn pool(d: &Deployment, service: &str) -> PgPool {
    match carehub_runtime::Db::connect(service, Some(&d.database_url), &d.dir)
        .await
        .unwrap()
    {
        carehub_runtime::Db::Postgres(p) => p,
        carehub_runtime::Db::Sqlite(_) => panic!("the deployment runs on PostgreSQL"),
    }
}

/// The id of the account registered as `email` (from the auth database).
async fn account_id(auth: &PgPool, email: &str) -> String {
    sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
        .bind(email)
        .fetch_one(auth)
        .await
        .expect("the account")
}

/// The HTTP client of the test: requests during a node loss time out instead of hanging.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap()
}

/// Sends until the answer has `status` (a node may be electing a leader); returns the body.
async fn until_status(
    http: &reqwest::Client,
    what: &str,
    status: u16,
    send: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
) -> Value {
    wait::until(what, RECOVER, || async {
        let r = send(http).send().await.ok()?;
        (r.status().as_u16() == status).then_some(())?;
        Some(r.json::<Value>().await.unwrap_or(Value::Null))
    })
    .await
}

async fn register(d: &Deployment, http: &reqwest::Client, role: &str) -> String {
    let email = unique_email(role);
    let url = format!("{}/api/auth/register", d.base);
    let body =
        json!({"email": email, "password": PASSWORD, "display_name": "Lost Tail", "role": role});
    until_status(http, "a registration answered 202", 202, |h| {
        h.post(&url).json(&body)
    })
    .await;
    email
}

/// Sets the doctor's hours to every day 00:00–`end` UTC, 30-minute slots patients book directly.
async fn set_hours(http: &reqwest::Client, base: &str, token: &str, end: &str) {
    let url = format!("{base}/api/doctors/me/availability");
    let current = until_status(http, "the availability", 200, |h| {
        h.get(&url).bearer_auth(token)
    })
    .await;
    let body = json!({"expected_version": current["version"], "time_zone": "UTC",
        "weekly": crate::harness::every_day("00:00", end), "slot_minutes": 30, "auto_accept": true});
    until_status(http, "an availability change", 200, |h| {
        h.put(&url).bearer_auth(token).json(&body)
    })
    .await;
}

/// Books `doctor` at `start` (Unix ms) directly; returns the confirmed appointment's id.
async fn book(http: &reqwest::Client, base: &str, token: &str, doctor: &str, start: i64) -> String {
    let body = json!({"doctor_id": doctor, "start": crate::appointments::rfc3339(start), "reason": "lost tail"});
    let key = uuid::Uuid::new_v4().simple().to_string();
    let a = until_status(http, "a booking answered 201", 201, |h| {
        h.post(format!("{base}/api/appointments/book"))
            .bearer_auth(token)
            .header("Idempotency-Key", &key)
            .json(&body)
    })
    .await;
    assert_eq!(a["status"], "confirmed", "{a}");
    a["id"].as_str().unwrap().to_owned()
}

/// Waits until no outbox of `pools` holds an unpublished row.
async fn published(pools: &[&PgPool]) {
    wait::until("every outbox published", RECOVER, || async {
        for p in pools {
            let n: i64 = sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM outbox")
                .fetch_one(*p)
                .await
                .ok()?;
            if n > 0 {
                return None;
            }
        }
        Some(())
    })
    .await;
}

/// Every event `pool`'s service published since `since` (Unix ms): (id, subject, payload).
async fn sent(pool: &PgPool, since: i64) -> Vec<(String, String, Value)> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT id, subject, payload FROM outbox_sent WHERE created_at >= $1 ORDER BY id",
    )
    .bind(since)
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(id, subject, payload)| (id, subject, serde_json::from_str(&payload).unwrap()))
        .collect()
}

async fn last_seqs(js: &async_nats::jetstream::Context) -> Option<BTreeMap<&'static str, u64>> {
    let mut out = BTreeMap::new();
    for s in STREAMS {
        let mut stream = js.get_stream(s).await.ok()?;
        out.insert(s, stream.info().await.ok()?.state.last_sequence);
    }
    Some(out)
}

/// The `Nats-Msg-Id`s the four streams hold now, with how often each; `None` while a stream
/// cannot be read whole.
async fn stored_ids(js: &async_nats::jetstream::Context) -> Option<HashMap<String, usize>> {
    let mut all = HashMap::new();
    for s in STREAMS {
        let counts = message_counts(js, s, "", |m| {
            Some(m.headers.as_ref()?.get("Nats-Msg-Id")?.as_str().to_owned())
        })
        .await?;
        all.extend(counts);
    }
    Some(all)
}

/// Waits until every consumer of the four streams has acknowledged all it was given.
async fn caught_up(js: &async_nats::jetstream::Context) {
    wait::until("every durable caught up", RECOVER, || async {
        use futures::StreamExt as _;
        for s in STREAMS {
            let stream = js.get_stream(s).await.ok()?;
            let mut consumers = stream.consumers();
            while let Some(info) = consumers.next().await {
                let info = info.ok()?;
                if info.num_pending > 0 || info.num_ack_pending > 0 {
                    return None;
                }
            }
        }
        Some(())
    })
    .await;
}

/// Freezes the three nodes, copies each store, and lets them go on.
fn freeze_and_copy(d: &Deployment) -> Vec<PathBuf> {
    for n in &d.nats.nodes {
        n.signal("STOP");
    }
    let copies = d
        .nats
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let copy = d.dir.join(format!("nats-{i}-copy"));
            crate::outbox::copy_tree(&n.store_dir(), &copy);
            copy
        })
        .collect();
    for n in &d.nats.nodes {
        n.signal("CONT");
    }
    copies
}

/// SIGKILLs the three nodes, puts the copies back and starts them again.
async fn lose_the_tail(d: &mut Deployment, copies: &[PathBuf]) {
    for n in &mut d.nats.nodes {
        n.kill();
    }
    for (n, copy) in d.nats.nodes.iter().zip(copies) {
        let store = n.store_dir();
        std::fs::remove_dir_all(&store).expect("remove the store");
        crate::outbox::copy_tree(copy, &store);
    }
    for n in &mut d.nats.nodes {
        n.restart().await;
    }
    d.nats.wait_jetstream().await;
}

/// Every mail the SMTP server accepted so far: (event id, recipient address) → how many.
fn mails(smtp: &SmtpSink) -> HashMap<(String, String), usize> {
    let mut out = HashMap::new();
    for text in smtp.mails() {
        let header = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
        };
        if let (Some(event), Some(to)) = (header("X-Carehub-Event:"), header("To:")) {
            *out.entry((event, to)).or_insert(0) += 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_event_a_cluster_lost_after_acknowledging_it_reaches_every_copy_once() {
    let smtp = SmtpSink::start(0).await;
    let smtp_url = smtp.url();
    let metrics: Vec<(&str, String)> = ["auth", "doctor", "admin", "patient", "notify"]
        .into_iter()
        .map(|s| (s, format!("127.0.0.1:{}", crate::support::net::free_port())))
        .collect();
    let mut per_service: Vec<(&str, &str, &str)> = metrics
        .iter()
        .map(|(s, addr)| (*s, "CAREHUB_METRICS_ADDR", addr.as_str()))
        .collect();
    per_service.push(("notify", "CAREHUB_SMTP_URL", &smtp_url));
    let mut d =
        Deployment::start_configured(&[("CAREHUB_RECONCILE_INTERVAL", "5s")], &per_service).await;
    let http = client();
    let base = d.base.clone();
    let auth = pool(&d, "auth").await;
    let doctor_db = pool(&d, "doctor").await;
    let patient_db = pool(&d, "patient").await;
    let notify_db = pool(&d, "notify").await;
    let admin_db = pool(&d, "admin").await;

    // Before the freeze: an admin, and a doctor who has hours every day.
    let admin_email = unique_email("admin");
    let auth_db = carehub_runtime::Db::connect("auth", Some(&d.database_url), &d.dir)
        .await
        .unwrap();
    carehub_auth::create_user(
        &auth_db,
        &admin_email,
        PASSWORD,
        "Ad Min",
        carehub_nats::Role::Admin,
    )
    .await
    .unwrap();
    auth_db.close().await;
    let admin = login(&http, &base, &admin_email).await;
    let (d0, d0_token) = doctor(&d, &http).await;
    let start = carehub_runtime::db::now_ms();

    let copies = freeze_and_copy(&d);
    d.nats.wait_jetstream().await;

    // Five availability changes; the last lets patients book a time directly.
    for i in 0..5 {
        set_hours(
            &http,
            &base,
            &d0_token,
            if i % 2 == 0 { "23:00" } else { "23:30" },
        )
        .await;
    }

    // Patients book; the first deletes the notification of their booking.
    let day = (carehub_runtime::db::now_ms() / 86_400_000 + 3) * 86_400_000;
    let mut bookings = Vec::new();
    let mut patients = Vec::new();
    for p in 0..5 {
        let email = register(&d, &http, "patient").await;
        let token = login(&http, &base, &email).await;
        for b in 0..2 {
            let slot = day + i64::from(p * 2 + b) * 30 * 60_000 + 8 * 3_600_000;
            let id = book(&http, &base, &token, &d0, slot).await;
            bookings.push((id, token.clone()));
        }
        patients.push((email, token));
    }
    let (deleted_event, deleted_user) = {
        let token = &patients[0].1;
        let user = account_id(&auth, &patients[0].0).await;
        let list = wait::until("the first patient's notification", RECOVER, || async {
            let v: Value = http
                .get(format!("{base}/api/notifications"))
                .bearer_auth(token)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let items = v["notifications"].as_array()?.clone();
            (!items.is_empty()).then_some(items)
        })
        .await;
        let id = list[0]["id"].as_str().unwrap();
        let event: String = sqlx::query_scalar("SELECT event_id FROM notifications WHERE id = $1")
            .bind(id)
            .fetch_one(&notify_db)
            .await
            .unwrap();
        let r = http
            .delete(format!("{base}/api/notifications/{id}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "delete: {}", r.text().await.unwrap());
        let left: i64 =
            sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM notifications WHERE id = $1")
                .bind(id)
                .fetch_one(&notify_db)
                .await
                .unwrap();
        assert_eq!(left, 0, "the notification is deleted");
        (event, user)
    };

    // The rest reaches the patient and notify services only after the loss.
    d.signal("patient", "STOP");
    d.signal("notify", "STOP");
    let mut doctors = Vec::new();
    for _ in 0..3 {
        let email = register(&d, &http, "doctor").await;
        let id = account_id(&auth, &email).await;
        until_status(&http, "an approval", 200, |h| {
            h.post(format!("{base}/api/admin/users/{id}/approve"))
                .bearer_auth(&admin)
        })
        .await;
        doctors.push(id);
    }
    for (id, token) in bookings.iter().skip(1).take(3) {
        until_status(&http, "a cancellation", 200, |h| {
            h.post(format!("{base}/api/appointments/{id}/cancel"))
                .bearer_auth(token)
                .json(&json!({"reason": "plans changed"}))
        })
        .await;
    }
    published(&[&auth, &doctor_db, &admin_db]).await;
    let js = async_nats::jetstream::new(d.nats.client_as("ops").await);
    let acknowledged = wait::until("the streams' ends", RECOVER, || last_seqs(&js)).await;
    let mut producers = Vec::new();
    for p in [&auth, &doctor_db, &admin_db, &patient_db] {
        producers.extend(sent(p, start).await);
    }
    let kinds: BTreeSet<&str> = producers.iter().map(|(_, s, _)| s.as_str()).collect();
    for kind in [
        "carehub.events.user.registered",
        "carehub.events.user.status_changed",
        "carehub.events.appointment.confirmed",
        "carehub.events.appointment.cancelled",
        "carehub.events.audit.auth",
    ] {
        assert!(kinds.contains(kind), "{kind} among {kinds:?}");
    }
    assert!(
        kinds
            .iter()
            .any(|k| k.starts_with("carehub.events.doctor.")),
        "{kinds:?}"
    );

    // The power loss; the producers wait meanwhile, so the loss can be seen before they repair it.
    for service in ["auth", "doctor", "admin"] {
        d.signal(service, "STOP");
    }
    lose_the_tail(&mut d, &copies).await;
    let js = async_nats::jetstream::new(d.nats.client_as("ops").await);
    let restored = wait::until("the streams after the restart", RECOVER, || last_seqs(&js)).await;
    for s in STREAMS {
        assert!(
            restored[s] < acknowledged[s],
            "{s} lost its tail: {} < {}",
            restored[s],
            acknowledged[s]
        );
    }
    let held = wait::until("the streams read whole", RECOVER, || stored_ids(&js)).await;
    let missing: BTreeSet<&str> = producers
        .iter()
        .filter(|(id, _, _)| !held.contains_key(id))
        .map(|(_, s, _)| s.as_str())
        .collect();
    assert_eq!(
        missing, kinds,
        "an event of every kind is gone from its stream"
    );

    for service in ["auth", "doctor", "admin", "patient", "notify"] {
        d.signal(service, "CONT");
    }

    // Every event is in its stream again, once.
    wait::until("every lost event in its stream again", REPAIR, || async {
        let held = stored_ids(&js).await?;
        producers
            .iter()
            .all(|(id, _, _)| held.contains_key(id))
            .then_some(())
    })
    .await;
    let held = wait::until("the streams read whole", RECOVER, || stored_ids(&js)).await;
    for (id, subject, _) in &producers {
        assert_eq!(held.get(id), Some(&1), "{subject} {id} is stored once");
    }

    // Accounts: every copy holds each account at its current version.
    let accounts: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT id, role, version FROM users")
            .fetch_all(&auth)
            .await
            .unwrap();
    let copies_of = [
        (
            &patient_db,
            "SELECT id, account_version FROM accounts",
            "patient",
        ),
        (
            &notify_db,
            "SELECT id, account_version FROM users",
            "notify",
        ),
        (&admin_db, "SELECT id, account_version FROM people", "admin"),
        (
            &doctor_db,
            "SELECT id, account_version FROM doctors",
            "doctor",
        ),
    ];
    wait::until(
        "every account in every copy at its version",
        REPAIR,
        || async {
            for (db, sql, service) in &copies_of {
                let rows: HashMap<String, i64> = sqlx::query_as::<_, (String, i64)>(*sql)
                    .fetch_all(*db)
                    .await
                    .ok()?
                    .into_iter()
                    .collect();
                for (id, role, version) in &accounts {
                    if *service == "doctor" && role != "doctor" {
                        continue;
                    }
                    if rows.get(id) != Some(version) {
                        return None;
                    }
                }
            }
            Some(())
        },
    )
    .await;
    // The admin service's doctors are the doctor service's.
    wait::until(
        "the admin doctor copy equals the doctor service",
        REPAIR,
        || async {
            let own: BTreeMap<String, i64> = sqlx::query_as("SELECT id, version FROM doctors")
                .fetch_all(&doctor_db)
                .await
                .ok()?
                .into_iter()
                .collect();
            let copy: BTreeMap<String, i64> =
                sqlx::query_as("SELECT doctor_id, version FROM doctors")
                    .fetch_all(&admin_db)
                    .await
                    .ok()?
                    .into_iter()
                    .collect();
            (own == copy).then_some(())
        },
    )
    .await;
    for id in &doctors {
        let approved: bool =
            sqlx::query_scalar("SELECT approved FROM doctors WHERE doctor_id = $1")
                .bind(id)
                .fetch_one(&admin_db)
                .await
                .unwrap();
        assert!(approved, "the approval of {id} reached the admin service");
    }

    // Notifications and mails: one per (appointment event, recipient); the deleted one stays
    // deleted, and its mail was sent once, before.
    let emails: HashMap<String, String> = sqlx::query_as("SELECT id, email FROM users")
        .fetch_all(&auth)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let deliveries: Vec<(String, String)> = producers
        .iter()
        .filter(|(_, s, _)| s.starts_with("carehub.events.appointment."))
        .flat_map(|(id, _, e)| {
            e["notify"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|u| (id.clone(), u.as_str().unwrap().to_owned()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(deliveries.len() >= 11, "{deliveries:?}");
    wait::until("a notification and a mail per delivery", REPAIR, || async {
        let stored: HashMap<(String, String), i64> = sqlx::query_as::<_, (String, String, i64)>(
            "SELECT event_id, user_id, CAST(COUNT(*) AS BIGINT) FROM notifications GROUP BY event_id, user_id",
        )
        .fetch_all(&notify_db)
        .await
        .ok()?
        .into_iter()
        .map(|(e, u, n)| ((e, u), n))
        .collect();
        let sent = mails(&smtp);
        for (event, user) in &deliveries {
            let is_deleted = *event == deleted_event && *user == deleted_user;
            let want = i64::from(!is_deleted);
            if stored.get(&(event.clone(), user.clone())).copied().unwrap_or(0) != want {
                return None;
            }
            let to = emails.get(user)?;
            let n: usize = sent
                .iter()
                .filter(|((e, t), _)| e == event && t.contains(to.as_str()))
                .map(|(_, n)| *n)
                .sum();
            if n != 1 {
                return None;
            }
        }
        Some(())
    })
    .await;
    let deleted: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM notifications WHERE event_id = $1 AND user_id = $2",
    )
    .bind(&deleted_event)
    .bind(&deleted_user)
    .fetch_one(&notify_db)
    .await
    .unwrap();
    assert_eq!(deleted, 0, "the deleted notification stays deleted");

    // The audit log holds every audited event.
    let audited: Vec<&String> = producers
        .iter()
        .filter(|(_, s, _)| s.starts_with("carehub.events.audit."))
        .map(|(id, _, _)| id)
        .collect();
    wait::until("every audited event in the audit log", REPAIR, || async {
        let ids: BTreeSet<String> = sqlx::query_scalar("SELECT event_id FROM audit_log")
            .fetch_all(&admin_db)
            .await
            .ok()?
            .into_iter()
            .collect();
        audited.iter().all(|id| ids.contains(*id)).then_some(())
    })
    .await;

    // No booking lost or doubled.
    let (booked, cancelled): (i64, i64) = sqlx::query_as(
        "SELECT CAST(COUNT(*) AS BIGINT), CAST(COUNT(*) FILTER (WHERE status = 'cancelled') AS BIGINT)
         FROM appointments WHERE doctor_id = $1",
    )
    .bind(&d0)
    .fetch_one(&admin_db)
    .await
    .unwrap();
    assert_eq!((booked, cancelled), (10, 3));

    // The repairs were counted: every producer found its streams gone back and published again,
    // and every service checked its positions.
    for (service, addr) in &metrics {
        let scrape = crate::metrics::Scrape::of(&format!("http://{addr}/metrics")).await;
        let sum = |name: &str| scrape.sum(name, &[("component", service)]);
        // A consumer whose last applied event came back at the same sequence (republished in
        // its original order) needs no reset; one whose event did not is reset.
        let rose: &[&str] = match *service {
            "auth" | "doctor" | "admin" => &[
                "carehub_stream_rewind_detected_total",
                "carehub_outbox_republished_total",
            ],
            _ => &[],
        };
        for name in rose {
            assert!(sum(name) >= 1.0, "{service}: {name} rose");
        }
        assert!(
            sum("carehub_reconcile_runs_total") >= 1.0,
            "{service} checked"
        );
    }
}

/// Puts back, from `copy`, only what a node stores of the streams (each stream's `msgs` and the
/// streams' raft groups `_js_/S-*`), keeping the consumers' state (`obs`, `_js_/C-*`) and the
/// meta group: the streams go back while every durable still believes it delivered more.
fn restore_streams_only(live: &std::path::Path, copy: &std::path::Path) -> (usize, usize) {
    fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let parent = dir.file_name().map(|n| n.to_string_lossy().into_owned());
            let in_stream = dir
                .parent()
                .and_then(|p| p.file_name())
                .is_some_and(|n| n == "streams");
            if (name == "msgs" && in_stream)
                || (name.starts_with("S-") && parent.as_deref() == Some("_js_"))
            {
                out.push(path);
            } else {
                walk(&path, out);
            }
        }
    }
    let mut found = Vec::new();
    walk(copy, &mut found);
    let (mut msgs, mut groups) = (0, 0);
    for old in found {
        let rel = old.strip_prefix(copy).expect("inside the copy");
        let target = live.join(rel);
        if target.exists() {
            std::fs::remove_dir_all(&target).expect("remove the live stream data");
        }
        crate::outbox::copy_tree(&old, &target);
        if old.ends_with("msgs") {
            msgs += 1;
        } else {
            groups += 1;
        }
    }
    (msgs, groups)
}

/// The durables whose delivered stream sequence is past their stream's last sequence.
async fn ahead(js: &async_nats::jetstream::Context) -> Option<Vec<String>> {
    use futures::StreamExt as _;
    let mut out = Vec::new();
    for s in STREAMS {
        let mut stream = js.get_stream(s).await.ok()?;
        let last = stream.info().await.ok()?.state.last_sequence;
        let mut consumers = stream.consumers();
        while let Some(info) = consumers.next().await {
            let info = info.ok()?;
            if info.config.durable_name.is_some() && info.delivered.stream_sequence > last {
                out.push(format!("{s}/{}", info.name));
            }
        }
    }
    Some(out)
}

/// Jepsen's consumer ahead of its stream, on the cluster: after twenty events every durable
/// applied, the three nodes lose the streams' newest data but keep the consumers' state, so
/// new events take sequences the durables believe delivered. Five new accounts and five new
/// bookings still reach every copy, each with one notification and one mail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_ahead_of_its_restored_stream_on_the_cluster_still_gets_every_new_event() {
    let smtp = SmtpSink::start(0).await;
    let smtp_url = smtp.url();
    let mut d = Deployment::start_configured(
        &[("CAREHUB_RECONCILE_INTERVAL", "5s")],
        &[("notify", "CAREHUB_SMTP_URL", &smtp_url)],
    )
    .await;
    let http = client();
    let base = d.base.clone();
    let auth = pool(&d, "auth").await;
    let patient_db = pool(&d, "patient").await;
    let notify_db = pool(&d, "notify").await;
    let admin_db = pool(&d, "admin").await;
    let (d0, d0_token) = doctor(&d, &http).await;
    set_hours(&http, &base, &d0_token, "23:30").await;
    let day = (carehub_runtime::db::now_ms() / 86_400_000 + 3) * 86_400_000;
    let start = carehub_runtime::db::now_ms();
    let copies = freeze_and_copy(&d);
    d.nats.wait_jetstream().await;

    // Twenty events every consumer applies: five accounts, five changes of hours, five bookings
    // and their five cancellations.
    let mut slot = 0;
    for i in 0..5 {
        let email = register(&d, &http, "patient").await;
        let token = login(&http, &base, &email).await;
        set_hours(
            &http,
            &base,
            &d0_token,
            if i % 2 == 0 { "23:00" } else { "23:30" },
        )
        .await;
        let id = book(&http, &base, &token, &d0, day + slot * 30 * 60_000).await;
        slot += 1;
        until_status(&http, "a cancellation", 200, |h| {
            h.post(format!("{base}/api/appointments/{id}/cancel"))
                .bearer_auth(&token)
                .json(&json!({"reason": "plans changed"}))
        })
        .await;
    }
    let js = async_nats::jetstream::new(d.nats.client_as("ops").await);
    caught_up(&js).await;

    // Every service waits while the nodes lose the streams' tail and keep the consumers'.
    for service in ["auth", "doctor", "admin", "patient", "notify"] {
        d.signal(service, "STOP");
    }
    for n in &mut d.nats.nodes {
        n.kill();
    }
    for (n, copy) in d.nats.nodes.iter().zip(&copies) {
        let (msgs, groups) = restore_streams_only(&n.store_dir(), copy);
        assert!(
            msgs >= STREAMS.len() && groups >= 1,
            "stream data put back: {msgs} msgs, {groups} raft groups"
        );
    }
    for n in &mut d.nats.nodes {
        n.restart().await;
    }
    d.nats.wait_jetstream().await;
    let js = async_nats::jetstream::new(d.nats.client_as("ops").await);
    let past_the_end = wait::until("the streams after the restart", RECOVER, || ahead(&js)).await;
    assert!(
        !past_the_end.is_empty(),
        "a durable is ahead of its stream after the restore"
    );
    for service in ["auth", "doctor", "admin", "patient", "notify"] {
        d.signal(service, "CONT");
    }

    // New events take the sequences the durables already passed.
    let mut fresh = Vec::new();
    let mut booked = Vec::new();
    for _ in 0..5 {
        let email = register(&d, &http, "patient").await;
        let token = login(&http, &base, &email).await;
        booked.push(book(&http, &base, &token, &d0, day + slot * 30 * 60_000).await);
        slot += 1;
        fresh.push(email);
    }
    let mut ids = Vec::new();
    for email in &fresh {
        ids.push(
            sqlx::query_scalar::<_, String>("SELECT id FROM users WHERE email = $1")
                .bind(email)
                .fetch_one(&auth)
                .await
                .unwrap(),
        );
    }
    let in_copy = |db: PgPool, sql: &'static str, ids: Vec<String>| async move {
        let n: i64 = sqlx::query_scalar(sql)
            .bind(&ids)
            .fetch_one(&db)
            .await
            .ok()?;
        (usize::try_from(n).ok()? == ids.len()).then_some(())
    };
    for (db, sql) in [
        (
            &patient_db,
            "SELECT CAST(COUNT(*) AS BIGINT) FROM accounts WHERE id = ANY($1)",
        ),
        (
            &notify_db,
            "SELECT CAST(COUNT(*) AS BIGINT) FROM users WHERE id = ANY($1)",
        ),
        (
            &admin_db,
            "SELECT CAST(COUNT(*) AS BIGINT) FROM people WHERE id = ANY($1)",
        ),
    ] {
        wait::until("the new accounts in every copy", REPAIR, || {
            in_copy(db.clone(), sql, ids.clone())
        })
        .await;
    }
    // Each new booking's confirmation: one notification and one mail for the patient.
    let emails: HashMap<String, String> = ids.iter().cloned().zip(fresh.iter().cloned()).collect();
    let confirmations: Vec<(String, String)> = sent(&admin_db, start)
        .await
        .into_iter()
        .filter(|(_, s, e)| {
            s == "carehub.events.appointment.confirmed"
                && booked.iter().any(|b| e["appointment"]["id"] == b.as_str())
        })
        .map(|(id, _, e)| {
            (
                id,
                e["appointment"]["patient_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(confirmations.len(), 5, "{confirmations:?}");
    wait::until("a notification and a mail per new booking", REPAIR, || async {
        let sent_mails = mails(&smtp);
        for (event, patient) in &confirmations {
            let n: i64 = sqlx::query_scalar(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM notifications WHERE event_id = $1 AND user_id = $2",
            )
            .bind(event)
            .bind(patient)
            .fetch_one(&notify_db)
            .await
            .ok()?;
            let to = emails.get(patient)?;
            let m: usize = sent_mails
                .iter()
                .filter(|((e, t), _)| e == event && t.contains(to.as_str()))
                .map(|(_, n)| *n)
                .sum();
            if n != 1 || m != 1 {
                return None;
            }
        }
        Some(())
    })
    .await;
}

/// What the notify, admin, patient and doctor databases hold that events made.
async fn derived(d: &Deployment) -> Vec<String> {
    let mut dbs = Vec::new();
    for service in ["notify", "admin", "patient", "doctor"] {
        let db = carehub_runtime::Db::connect(service, Some(&d.database_url), &d.dir)
            .await
            .unwrap();
        dbs.push((service, db));
    }
    let rows = crate::outbox::derived_rows_of(&dbs).await;
    for (_, db) in dbs {
        db.close().await;
    }
    rows
}

/// On the cluster while every service runs: someone deletes the notify service's appointment
/// durable and the patient service's account durable; each is created again from the last event
/// it applied and new events arrive once (the copies' own reconciliation is off, so only the
/// durables can bring them). Then, past a 2 s duplicate window, `carehub ops replay` of every
/// producer stores every event again, and no derived row changes and no mail goes out: not the
/// notification the patient deleted, not the cancelled appointment's confirmation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_cluster_deleted_durables_come_back_and_a_replay_changes_nothing() {
    let smtp = SmtpSink::start(0).await;
    let smtp_url = smtp.url();
    let d = Deployment::start_configured(
        &[
            ("CAREHUB_RECONCILE_INTERVAL", "5s"),
            ("CAREHUB_RECONCILE_COPIES_INTERVAL", "off"),
            ("CAREHUB_STREAM_DUPLICATE_WINDOW", "2s"),
        ],
        &[("notify", "CAREHUB_SMTP_URL", &smtp_url)],
    )
    .await;
    let started = (chrono::Utc::now() - chrono::Duration::seconds(1)).to_rfc3339();
    let http = client();
    let base = d.base.clone();
    let auth = pool(&d, "auth").await;
    let patient_db = pool(&d, "patient").await;
    let notify_db = pool(&d, "notify").await;
    let admin_db = pool(&d, "admin").await;
    let (d0, d0_token) = doctor(&d, &http).await;
    set_hours(&http, &base, &d0_token, "23:30").await;
    let day = (carehub_runtime::db::now_ms() / 86_400_000 + 3) * 86_400_000;

    // A booking the doctor looks into (an audited record read), cancelled; the patient deletes
    // the notification of its confirmation.
    let email = register(&d, &http, "patient").await;
    let token = login(&http, &base, &email).await;
    let patient = account_id(&auth, &email).await;
    let first = book(&http, &base, &token, &d0, day + 9 * 3_600_000).await;
    until_status(&http, "the record read", 200, |h| {
        h.get(format!("{base}/api/patients/{patient}/record"))
            .bearer_auth(&d0_token)
    })
    .await;
    until_status(&http, "a cancellation", 200, |h| {
        h.post(format!("{base}/api/appointments/{first}/cancel"))
            .bearer_auth(&token)
            .json(&json!({"reason": "plans changed"}))
    })
    .await;
    let confirmation = wait::until("the confirmation's notification", RECOVER, || async {
        let v: Value = http
            .get(format!("{base}/api/notifications"))
            .bearer_auth(&token)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        v["notifications"]
            .as_array()?
            .iter()
            .find(|n| n["kind"].as_str().is_some_and(|k| k.contains("confirmed")))
            .and_then(|n| n["id"].as_str())
            .map(str::to_owned)
    })
    .await;
    let r = http
        .delete(format!("{base}/api/notifications/{confirmation}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    // Someone deletes two durables while the services run.
    let js = async_nats::jetstream::new(d.nats.nodes[0].harness_client().await);
    caught_up(&js).await;
    for (stream, durable) in [
        ("CAREHUB_USERS", "patient-service"),
        ("CAREHUB_APPOINTMENTS", "notify-appointments"),
    ] {
        js.get_stream(stream)
            .await
            .expect("stream")
            .delete_consumer(durable)
            .await
            .expect("delete the durable");
    }
    let email = register(&d, &http, "patient").await;
    let token = login(&http, &base, &email).await;
    let second_patient = account_id(&auth, &email).await;
    let second = book(&http, &base, &token, &d0, day + 10 * 3_600_000).await;
    wait::until("the new account in the patient copy", REPAIR, || async {
        let n: i64 =
            sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM accounts WHERE id = $1")
                .bind(&second_patient)
                .fetch_one(&patient_db)
                .await
                .ok()?;
        (n == 1).then_some(())
    })
    .await;
    let confirmed: String =
        wait::until("the new booking's confirmation event", RECOVER, || async {
            sent(&admin_db, 0)
                .await
                .into_iter()
                .find(|(_, s, e)| {
                    s == "carehub.events.appointment.confirmed"
                        && e["appointment"]["id"] == second.as_str()
                })
                .map(|(id, _, _)| id)
        })
        .await;
    wait::until("the new booking's notification and mail", REPAIR, || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM notifications WHERE event_id = $1 AND user_id = $2",
        )
        .bind(&confirmed)
        .bind(&second_patient)
        .fetch_one(&notify_db)
        .await
        .ok()?;
        let m: usize = mails(&smtp)
            .iter()
            .filter(|((e, t), _)| *e == confirmed && t.contains(email.as_str()))
            .map(|(_, n)| *n)
            .sum();
        (n == 1 && m == 1).then_some(())
    })
    .await;
    for (stream, durable) in [
        ("CAREHUB_USERS", "patient-service"),
        ("CAREHUB_APPOINTMENTS", "notify-appointments"),
    ] {
        let mut c = js
            .get_stream(stream)
            .await
            .expect("stream")
            .get_consumer::<async_nats::jetstream::consumer::pull::Config>(durable)
            .await
            .expect("the durable is back");
        let info = c.info().await.expect("info");
        assert!(
            matches!(
                info.config.deliver_policy,
                async_nats::jetstream::consumer::DeliverPolicy::ByStartTime { .. }
            ),
            "{durable} starts at its last applied event: {:?}",
            info.config.deliver_policy
        );
    }
    caught_up(&js).await;
    // Every mail went out once: the overlap a re-created durable delivers again sent nothing.
    wait::until("the mail queue empty", RECOVER, || async {
        let n: i64 = sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM mail_outbox")
            .fetch_one(&notify_db)
            .await
            .ok()?;
        (n == 0).then_some(())
    })
    .await;
    let before_mails = mails(&smtp);
    assert!(before_mails.values().all(|n| *n == 1), "{before_mails:?}");

    // The replay, past the window.
    let before = derived(&d).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for service in ["auth", "doctor", "patient", "admin"] {
        let (republished, duplicates) = crate::outbox::replay_summary(&d.run_as(
            service,
            &["ops", "replay", "--service", service, "--since", &started],
        ));
        assert!(republished > 0, "{service} had events to replay");
        assert_eq!(duplicates, 0, "{service}: the window has passed");
    }
    caught_up(&js).await;
    let after = derived(&d).await;
    let changed = crate::outbox::changed_rows(&before, &after);
    assert!(changed.is_empty(), "rows the replay changed: {changed:#?}");
    assert_eq!(mails(&smtp), before_mails, "no mail sent");
}
