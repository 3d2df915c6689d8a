//! The outbox keeps what it published: each relayed row moves to `outbox_sent` with the stream
//! position JetStream acknowledged, stays there for `CAREHUB_OUTBOX_RETENTION`, and
//! `carehub ops replay` publishes it again with its original id, which the stream stores once
//! inside its duplicate window (`CAREHUB_STREAM_DUPLICATE_WINDOW`) and again after it. A relay
//! publishes again what a stream lost; a consumer whose stream went back re-creates its durable.

use crate::both_backends;
use crate::harness::{Backend, Clinic, unique_email};
use crate::support::wait;
use carehub::system::Component;
use carehub_runtime::{Db, with_db};
use futures::StreamExt as _;
use serde_json::{Value, json};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(20);

both_backends!(
    a_published_event_is_kept_with_the_position_the_stream_acknowledged,
    a_replay_inside_the_duplicate_window_stores_nothing_and_after_it_delivers_again,
    published_rows_past_the_retention_are_purged_and_younger_ones_kept,
    an_older_account_event_arriving_after_a_newer_one_changes_no_copy,
    events_a_stream_lost_after_acknowledging_them_are_published_again,
    a_consumer_ahead_of_its_restored_stream_still_gets_the_new_events,
    a_deleted_durable_is_created_again_from_its_last_applied_event,
    a_replay_of_every_service_after_the_window_changes_no_derived_row_and_sends_no_mail,
    an_event_waiting_out_its_back_off_goes_out_as_soon_as_nats_is_back,
);

/// One row of `outbox_sent`.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Sent {
    id: String,
    subject: String,
    payload: String,
    stream: String,
    stream_seq: i64,
}

async fn sent_rows(db: &Db) -> Vec<Sent> {
    let sql = "SELECT id, subject, payload, stream, stream_seq FROM outbox_sent ORDER BY id";
    with_db!(db, p => sqlx::query_as(sql).fetch_all(p).await).expect("outbox_sent")
}

async fn unpublished(db: &Db) -> i64 {
    let sql = "SELECT CAST(COUNT(*) AS BIGINT) FROM outbox";
    with_db!(db, p => sqlx::query_scalar(sql).fetch_one(p).await).expect("outbox")
}

/// Registers a patient and waits until auth's outbox has published everything; returns the
/// rows auth keeps for the registration.
async fn register_and_wait(clinic: &Clinic, db: &Db) -> (String, Vec<Sent>) {
    let email = unique_email("outbox");
    let session = clinic.patient(&email).await;
    let user_id = session["user"]["id"]
        .as_str()
        .expect("the session names its user")
        .to_owned();
    let rows = wait::until(
        "auth's registration event published and kept",
        DEADLINE,
        || async {
            let rows: Vec<Sent> = sent_rows(db)
                .await
                .into_iter()
                .filter(|r| r.payload.contains(&user_id))
                .collect();
            (unpublished(db).await == 0 && !rows.is_empty()).then_some(rows)
        },
    )
    .await;
    (user_id, rows)
}

/// The `last_seq` of `stream`.
async fn last_seq(clinic: &Clinic, stream: &str) -> u64 {
    let js = async_nats::jetstream::new(clinic.harness_nats_client().await);
    let mut s = js.get_stream(stream).await.expect("stream");
    s.info().await.expect("stream info").state.last_sequence
}

/// The `carehub ops replay` summary line, after checking the command succeeded.
fn replay(clinic: &Clinic, service: &str, since: &str) -> (u64, u64) {
    replay_summary(&clinic.run_carehub(
        &["ops", "replay", "--service", service, "--since", since],
        &[],
    ))
}

/// (republished, duplicates) of a `carehub ops replay` run, after checking it succeeded.
pub(crate) fn replay_summary(out: &std::process::Output) -> (u64, u64) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ops replay: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "auth: republished N events created since …; the streams reported D as duplicates …"
    let number_after = |word: &str| -> u64 {
        stdout
            .split(word)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no number after '{word}' in {stdout}"))
    };
    (number_after("republished "), number_after("reported "))
}

async fn a_published_event_is_kept_with_the_position_the_stream_acknowledged(b: Backend) {
    let clinic = Clinic::start(b).await;
    let db = clinic.service_db("auth").await;
    let (_, rows) = register_and_wait(&clinic, &db).await;
    let js = async_nats::jetstream::new(clinic.harness_nats_client().await);
    for row in &rows {
        assert!(
            row.subject.starts_with("carehub.events.user."),
            "{}",
            row.subject
        );
        assert_eq!(row.stream, carehub_nats::streams::USERS.name);
        // The stored position holds this very event: its id and its payload.
        let stream = js.get_stream(&row.stream).await.expect("stream");
        let seq = u64::try_from(row.stream_seq).expect("a positive sequence");
        let msg = stream
            .get_raw_message(seq)
            .await
            .expect("the message at the stored position");
        let msg_id = msg
            .headers
            .get("Nats-Msg-Id")
            .map(|v| v.as_str().to_owned());
        assert_eq!(msg_id.as_deref(), Some(row.id.as_str()), "the id at {seq}");
        assert_eq!(msg.payload.as_ref(), row.payload.as_bytes());
        assert_eq!(msg.subject.as_str(), row.subject);
    }
    // Each id is kept once, and nothing waits in the outbox itself.
    let all = sent_rows(&db).await;
    let mut ids: Vec<&str> = all.iter().map(|r| r.id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), all.len());
    assert_eq!(unpublished(&db).await, 0);
}

async fn a_replay_inside_the_duplicate_window_stores_nothing_and_after_it_delivers_again(
    b: Backend,
) {
    let window = 3;
    let clinic = Clinic::start_with(
        b,
        &[("CAREHUB_STREAM_DUPLICATE_WINDOW", &format!("{window}s"))],
        &Component::ALL,
    )
    .await;
    let users = carehub_nats::streams::USERS.name;
    let js = async_nats::jetstream::new(clinic.harness_nats_client().await);
    let info = js
        .get_stream(users)
        .await
        .expect("stream")
        .info()
        .await
        .expect("info")
        .clone();
    assert_eq!(
        info.config.duplicate_window,
        Duration::from_secs(window),
        "the setting reaches the stream"
    );
    let db = clinic.service_db("auth").await;
    // What an operator would type: an RFC 3339 time before the test's events.
    let started = (chrono::Utc::now() - chrono::Duration::minutes(10)).to_rfc3339();
    let (_, rows) = register_and_wait(&clinic, &db).await;
    let kept = sent_rows(&db).await.len() as u64;
    assert!(kept >= rows.len() as u64);

    // Inside the window: every event goes out again and the stream recognises each one.
    let before = last_seq(&clinic, users).await;
    let (republished, duplicates) = replay(&clinic, "auth", &started);
    assert_eq!(republished, kept, "every kept event is republished");
    assert_eq!(duplicates, kept, "the stream already held every one");
    assert_eq!(
        last_seq(&clinic, users).await,
        before,
        "nothing stored twice"
    );

    // After the window the stream no longer remembers the ids: the replay stores them again,
    // which is what re-delivers events a stream lost.
    tokio::time::sleep(Duration::from_secs(window + 1)).await;
    let before = last_seq(&clinic, users).await;
    let (republished, duplicates) = replay(&clinic, "auth", &started);
    assert_eq!((republished, duplicates), (kept, 0));
    let stored = last_seq(&clinic, users).await - before;
    // Auth's events go to two streams (accounts and audit); those on the account stream all
    // arrive again.
    let on_users = sent_rows(&db)
        .await
        .iter()
        .filter(|r| r.stream == users)
        .count() as u64;
    assert_eq!(stored, on_users);

    // A service without an outbox is refused, in a sentence.
    let out = clinic.run_carehub(
        &["ops", "replay", "--service", "notify", "--since", "1h"],
        &[],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no outbox"));
}

async fn published_rows_past_the_retention_are_purged_and_younger_ones_kept(b: Backend) {
    let mut clinic = Clinic::start(b).await;
    let db = clinic.service_db("patient").await;
    let day = 86_400_000_i64;
    let now = carehub_runtime::db::now_ms();
    let insert = "INSERT INTO outbox_sent (id, subject, payload, created_at, request_id, published_at, stream, stream_seq) VALUES ($1, 'carehub.events.audit.test', '{}', $2, NULL, $2, 'CAREHUB_AUDIT', 1)";
    for (id, at) in [
        ("aged-8-days", now - 8 * day),
        ("aged-6-days", now - 6 * day),
    ] {
        with_db!(&db, p => sqlx::query(insert).bind(id).bind(at).execute(p).await.map(|r| r.rows_affected()))
            .expect("insert");
    }
    // The relay purges when it starts and every minute after: a second patient instance
    // starting now purges at once, with the default retention of 7 days.
    clinic.start_more(&[], &[Component::Patient]).await;
    wait::until("the row older than 7 days purged", DEADLINE, || async {
        let ids: Vec<String> = sent_rows(&db).await.into_iter().map(|r| r.id).collect();
        (!ids.iter().any(|i| i == "aged-8-days")).then_some(())
    })
    .await;
    let ids: Vec<String> = sent_rows(&db).await.into_iter().map(|r| r.id).collect();
    assert!(ids.iter().any(|i| i == "aged-6-days"), "{ids:?}");
}

/// Every service's copy of the account `id`: (service, display name, status, account version).
/// The admin service keeps no status; it reads as "-".
pub(crate) async fn copies(clinic: &Clinic, id: &str) -> Vec<(&'static str, String, String, i64)> {
    let reads = [
        (
            "doctor",
            "SELECT display_name, account_status, account_version FROM doctors WHERE id = $1",
        ),
        (
            "patient",
            "SELECT display_name, status, account_version FROM accounts WHERE id = $1",
        ),
        (
            "notify",
            "SELECT display_name, status, account_version FROM users WHERE id = $1",
        ),
        (
            "admin",
            "SELECT display_name, '-', account_version FROM people WHERE id = $1",
        ),
    ];
    let mut out = Vec::new();
    for (service, sql) in reads {
        let db = clinic.service_db(service).await;
        let row: Option<(String, String, i64)> =
            with_db!(&db, p => sqlx::query_as(sql).bind(id).fetch_optional(p).await)
                .expect("read the copy");
        db.close().await;
        if let Some((name, status, version)) = row {
            out.push((service, name, status, version));
        }
    }
    out
}

/// Waits until every durable consumer of the account stream has acknowledged everything.
pub(crate) async fn account_consumers_caught_up(clinic: &Clinic) {
    wait::until("every account consumer caught up", DEADLINE, || async {
        let js = async_nats::jetstream::new(clinic.harness_nats_client().await);
        let stream = js
            .get_stream(carehub_nats::streams::USERS.name)
            .await
            .ok()?;
        let last = stream.cached_info().state.last_sequence;
        let mut infos = stream.consumers();
        let mut n = 0;
        while let Some(info) = infos.next().await {
            let info = info.ok()?;
            if info.config.durable_name.is_none() {
                continue;
            }
            n += 1;
            let done = info.num_pending == 0
                && info.num_ack_pending == 0
                && info.delivered.stream_sequence >= last;
            if !done {
                return None;
            }
        }
        // doctor, patient, notify and admin.
        (n >= 4).then_some(())
    })
    .await;
}

/// Publishes an account event as the auth service's relay would, with a fresh event id.
async fn publish_account_event(clinic: &Clinic, kind: &str, user: &Value, version: i64, at: i64) {
    let js = async_nats::jetstream::new(clinic.harness_nats_client().await);
    let id = uuid::Uuid::now_v7().to_string();
    let event = json!({"event_id": id, "kind": kind, "at": at, "user": user, "version": version});
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", id.as_str());
    js.publish_with_headers(
        format!("carehub.events.user.{kind}"),
        headers,
        serde_json::to_vec(&event).unwrap().into(),
    )
    .await
    .expect("publish")
    .await
    .expect("stored");
}

/// A doctor account at version 2 (created, then its time zone set), once every copy holds that
/// version: the account and a session of it.
pub(crate) async fn doctor_at_version_two(clinic: &Clinic) -> (Value, Value) {
    let email = unique_email("versions");
    let user = clinic.create_user(carehub_nats::Role::Doctor, &email).await;
    let id = user["id"].as_str().expect("id").to_owned();
    let session = clinic.login(&email, crate::harness::PASSWORD).await;
    let r = clinic
        .http
        .patch(clinic.url("/api/me"))
        .bearer_auth(crate::harness::token(&session))
        .json(&json!({"time_zone": "Europe/Berlin"}))
        .send()
        .await
        .expect("PATCH /api/me");
    assert_eq!(r.status(), 200);
    wait::until("every copy at version 2", DEADLINE, || async {
        let c = copies(clinic, &id).await;
        (c.len() == 4 && c.iter().all(|(_, _, _, v)| *v == 2)).then_some(())
    })
    .await;
    (user, session)
}

/// The case of a stream that lost an account's first event and got it back later (a replay):
/// each copy holds the newer state already, and the older event, even stamped with a later
/// clock (another auth instance), must not set it back. A newer event still applies.
async fn an_older_account_event_arriving_after_a_newer_one_changes_no_copy(b: Backend) {
    let clinic = Clinic::start(b).await;
    let (user, session) = doctor_at_version_two(&clinic).await;
    let id = user["id"].as_str().expect("id").to_owned();
    let name = user["display_name"].as_str().expect("name").to_owned();

    // The registration again, under a new event id, pending and with another name, stamped a
    // minute later than now.
    let later = carehub_runtime::db::now_ms() + 60_000;
    let mut stale = user.clone();
    stale["status"] = json!("pending");
    stale["display_name"] = json!("Stale Copy");
    publish_account_event(&clinic, "registered", &stale, 1, later).await;
    account_consumers_caught_up(&clinic).await;
    for (service, n, status, version) in copies(&clinic, &id).await {
        assert_eq!(n, name, "{service} kept the name");
        assert!(
            status == "active" || status == "-",
            "{service} kept the status: {status}"
        );
        assert_eq!(version, 2, "{service} kept the version");
    }
    let listed: Value = clinic
        .http
        .get(clinic.url(&format!("/api/doctors/{id}")))
        .bearer_auth(crate::harness::token(&session))
        .send()
        .await
        .expect("doctor profile")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["display_name"], name.as_str(), "{listed}");

    // A newer event applies everywhere: the consumers did read the stale one and chose to ignore it.
    let mut newer = user.clone();
    newer["display_name"] = json!("Dr. Renamed");
    publish_account_event(&clinic, "updated", &newer, 3, later).await;
    wait::until("every copy at version 3", DEADLINE, || async {
        let c = copies(&clinic, &id).await;
        (c.len() == 4 && c.iter().all(|(_, n, _, v)| *v == 3 && n == "Dr. Renamed")).then_some(())
    })
    .await;
}

/// Copies the directory tree `from` into `to` (which must not exist).
pub(crate) fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    for entry in std::fs::read_dir(from).expect("read the store") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}

/// Waits until an instance of `service` answers `$SRV.PING` (after a start or a reconnect).
pub(crate) async fn until_serving(clinic: &Clinic, service: &str) {
    wait::until(&format!("{service} answering"), DEADLINE, || async {
        (!clinic.srv("PING", service, 1).await.is_empty()).then_some(())
    })
    .await;
}

/// The patient service's durable on the account stream, as the server describes it now.
async fn patient_durable(clinic: &Clinic) -> async_nats::jetstream::consumer::Info {
    let js = async_nats::jetstream::new(clinic.harness_nats_client().await);
    js.get_stream(carehub_nats::streams::USERS.name)
        .await
        .expect("stream")
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>("patient-service")
        .await
        .expect("the durable")
        .info()
        .await
        .expect("info")
        .clone()
}

/// Whether a durable was created to start at a time (re-created from a stored position).
fn created_from_a_time(info: &async_nats::jetstream::consumer::Info) -> bool {
    matches!(
        info.config.deliver_policy,
        async_nats::jetstream::consumer::DeliverPolicy::ByStartTime { .. }
    )
}

/// Whether the patient service's account copy holds `id`.
async fn patient_copy_has(db: &Db, id: &str) -> bool {
    let sql = "SELECT CAST(COUNT(*) AS BIGINT) FROM accounts WHERE id = $1";
    let n: i64 =
        with_db!(db, p => sqlx::query_scalar(sql).bind(id).fetch_one(p).await).expect("accounts");
    n == 1
}

/// A single-node version of a power loss before JetStream synced: the stream's store goes back
/// to a copy taken earlier, so two acknowledged registrations are gone from it (and the patient
/// service, stopped meanwhile, never saw them). Auth's relay finds that at start, from the
/// positions kept in `outbox_sent`, and publishes them again; the patient copy gets them.
async fn events_a_stream_lost_after_acknowledging_them_are_published_again(b: Backend) {
    let in_process: Vec<Component> = Component::ALL
        .iter()
        .copied()
        .filter(|c| !matches!(c, Component::Auth | Component::Patient))
        .collect();
    let mut clinic =
        Clinic::start_with(b, &[("CAREHUB_RECONCILE_INTERVAL", "1s")], &in_process).await;
    let auth = clinic.spawn_child("auth", &[]);
    let patient = clinic.spawn_child("patient", &[]);
    until_serving(&clinic, "auth").await;
    until_serving(&clinic, "patient").await;
    let auth_db = clinic.service_db("auth").await;
    let patient_db = clinic.service_db("patient").await;
    let (first, _) = register_and_wait(&clinic, &auth_db).await;
    wait::until(
        "the patient copy has the first account",
        DEADLINE,
        || async { patient_copy_has(&patient_db, &first).await.then_some(()) },
    )
    .await;

    // The store as it is now, copied while the server is down.
    let copy = clinic.dir.join("nats-store-copy");
    clinic.nats.kill();
    copy_tree(&clinic.nats.store_dir(), &copy);
    clinic.nats.restart().await;

    clinic.kill_child(patient);
    until_serving(&clinic, "auth").await;
    let (second, _) = register_and_wait(&clinic, &auth_db).await;
    let (third, _) = register_and_wait(&clinic, &auth_db).await;
    let users = carehub_nats::streams::USERS.name;
    let acknowledged = last_seq(&clinic, users).await;
    clinic.kill_child(auth);

    // The power loss: the store goes back to the copy.
    clinic.nats.kill();
    let store = clinic.nats.store_dir();
    std::fs::remove_dir_all(&store).expect("remove the store");
    copy_tree(&copy, &store);
    clinic.nats.restart().await;
    let restored = last_seq(&clinic, users).await;
    assert!(
        restored < acknowledged,
        "the stream lost its tail: {restored} < {acknowledged}"
    );
    let registered = |id: String| {
        let clinic = &clinic;
        async move {
            clinic
                .stream_messages(users, "carehub.events.user.registered")
                .await
                .into_iter()
                .filter(|e: &Value| e["user"]["id"] == id.as_str())
                .count()
        }
    };
    assert_eq!(registered(second.clone()).await, 0, "lost from the stream");
    assert_eq!(registered(third.clone()).await, 0, "lost from the stream");

    let metrics = format!("127.0.0.1:{}", crate::support::net::free_port());
    clinic.spawn_child("auth", &[("CAREHUB_METRICS_ADDR", &metrics)]);
    clinic.spawn_child("patient", &[]);
    wait::until(
        "the lost accounts reach the patient copy",
        Duration::from_secs(60),
        || async {
            (patient_copy_has(&patient_db, &second).await
                && patient_copy_has(&patient_db, &third).await)
                .then_some(())
        },
    )
    .await;
    for id in [&first, &second, &third] {
        assert_eq!(
            registered(id.clone()).await,
            1,
            "one registration of {id} in the stream"
        );
    }
    // The repair is counted: the rewind of the account stream, and what went out again (the
    // two registrations at least).
    let scrape = crate::metrics::Scrape::of(&format!("http://{metrics}/metrics")).await;
    let auth = ("component", "auth");
    assert!(
        scrape.sum(
            "carehub_stream_rewind_detected_total",
            &[auth, ("stream", "CAREHUB_USERS")]
        ) >= 1.0
    );
    assert!(scrape.sum("carehub_outbox_republished_total", &[auth]) >= 2.0);
    // The kept positions are the new ones.
    let rows = sent_rows(&auth_db).await;
    let js = async_nats::jetstream::new(clinic.harness_nats_client().await);
    let stream = js.get_stream(users).await.expect("stream");
    for row in rows.iter().filter(|r| r.stream == users) {
        let msg = stream
            .get_raw_message(u64::try_from(row.stream_seq).unwrap())
            .await
            .expect("the kept position holds a message");
        let id = msg
            .headers
            .get("Nats-Msg-Id")
            .map(|v| v.as_str().to_owned());
        assert_eq!(id.as_deref(), Some(row.id.as_str()));
    }
}

/// The consumer is ahead of its stream: the stream's messages went back to an older copy while
/// the consumers' state stayed, so new events reuse sequences the durables believe done. Auth's
/// own repair is off here, so only the consumers' position checks are at work.
async fn a_consumer_ahead_of_its_restored_stream_still_gets_the_new_events(b: Backend) {
    let in_process: Vec<Component> = Component::ALL
        .iter()
        .copied()
        .filter(|c| *c != Component::Auth)
        .collect();
    // The copies' reconciliation is off too: only the consumers' checks can bring new accounts.
    let mut clinic = Clinic::start_with(
        b,
        &[
            ("CAREHUB_RECONCILE_INTERVAL", "1s"),
            ("CAREHUB_RECONCILE_COPIES_INTERVAL", "off"),
        ],
        &in_process,
    )
    .await;
    clinic.spawn_child("auth", &[("CAREHUB_RECONCILE", "off")]);
    until_serving(&clinic, "auth").await;
    let auth_db = clinic.service_db("auth").await;
    let patient_db = clinic.service_db("patient").await;
    let has_all = |ids: Vec<String>| {
        let db = &patient_db;
        async move {
            for id in &ids {
                if !patient_copy_has(db, id).await {
                    return None;
                }
            }
            Some(())
        }
    };
    let (first, _) = register_and_wait(&clinic, &auth_db).await;
    wait::until("the first account in the patient copy", DEADLINE, || {
        has_all(vec![first.clone()])
    })
    .await;

    let copy = clinic.dir.join("nats-store-copy");
    clinic.nats.kill();
    copy_tree(&clinic.nats.store_dir(), &copy);
    clinic.nats.restart().await;
    until_serving(&clinic, "auth").await;
    let mut applied = Vec::new();
    for _ in 0..5 {
        applied.push(register_and_wait(&clinic, &auth_db).await.0);
    }
    wait::until("five more accounts in the patient copy", DEADLINE, || {
        has_all(applied.clone())
    })
    .await;
    let users = carehub_nats::streams::USERS.name;
    let before = last_seq(&clinic, users).await;

    // Only the stream's messages go back; every consumer keeps its state (delivered up to
    // `before`).
    clinic.nats.kill();
    let relative = |root: &std::path::Path| {
        let mut found = None;
        for account in std::fs::read_dir(root.join("jetstream")).expect("jetstream dir") {
            let dir = account.expect("account").path().join("streams").join(users);
            if dir.is_dir() {
                found = Some(dir);
            }
        }
        found.expect("the account stream's directory")
    };
    let live = relative(&clinic.nats.store_dir());
    let old = relative(&copy);
    std::fs::remove_dir_all(live.join("msgs")).expect("remove the messages");
    copy_tree(&old.join("msgs"), &live.join("msgs"));
    clinic.nats.restart().await;
    until_serving(&clinic, "auth").await;
    assert!(
        last_seq(&clinic, users).await < before,
        "the stream went back"
    );

    // New accounts: their events take sequences the durables already passed.
    let mut fresh = Vec::new();
    for _ in 0..5 {
        fresh.push(register_and_wait(&clinic, &auth_db).await.0);
    }
    wait::until(
        "the new accounts in the patient copy",
        Duration::from_secs(60),
        || has_all(fresh.clone()),
    )
    .await;
    // The patient service's durable was re-created from a start time.
    let info = patient_durable(&clinic).await;
    assert!(
        created_from_a_time(&info),
        "{:?}",
        info.config.deliver_policy
    );
}

/// Someone deletes a service's durable while it runs: the service creates it again, from a
/// minute before the last event it applied (not from the stream's start), and misses nothing.
async fn a_deleted_durable_is_created_again_from_its_last_applied_event(b: Backend) {
    // The copies' reconciliation is off: only the re-created durable can bring the next account.
    let clinic = Clinic::start_with(
        b,
        &[
            ("CAREHUB_RECONCILE_INTERVAL", "1s"),
            ("CAREHUB_RECONCILE_COPIES_INTERVAL", "off"),
        ],
        &Component::ALL,
    )
    .await;
    let auth_db = clinic.service_db("auth").await;
    let patient_db = clinic.service_db("patient").await;
    let (first, _) = register_and_wait(&clinic, &auth_db).await;
    wait::until(
        "the first account in the patient copy",
        DEADLINE,
        || async { patient_copy_has(&patient_db, &first).await.then_some(()) },
    )
    .await;
    let stored =
        "SELECT CAST(COUNT(*) AS BIGINT) FROM consumer_positions WHERE durable = 'patient-service'";
    wait::until(
        "the patient consumer's position stored",
        DEADLINE,
        || async {
            let n: i64 =
                with_db!(&patient_db, p => sqlx::query_scalar(stored).fetch_one(p).await).ok()?;
            (n == 1).then_some(())
        },
    )
    .await;

    let js = async_nats::jetstream::new(clinic.harness_nats_client().await);
    let users = carehub_nats::streams::USERS.name;
    js.get_stream(users)
        .await
        .expect("stream")
        .delete_consumer("patient-service")
        .await
        .expect("delete the durable");
    let (second, _) = register_and_wait(&clinic, &auth_db).await;
    wait::until("the next account in the patient copy", DEADLINE, || async {
        patient_copy_has(&patient_db, &second).await.then_some(())
    })
    .await;
    let info = patient_durable(&clinic).await;
    assert!(
        created_from_a_time(&info),
        "created again from the last applied event, not the stream's start: {:?}",
        info.config.deliver_policy
    );
    assert_eq!(info.num_pending, 0, "nothing left behind");
}

/// Every row that events made or changed, one string per row, table by table: notifications
/// (with their read state), applied deliveries, reminders and the mail queue in notify; the
/// audit log, account names, doctor copies and appointments in admin; the account copies in
/// patient and doctor.
async fn derived_rows(clinic: &Clinic) -> Vec<String> {
    let mut dbs = Vec::new();
    for service in ["notify", "admin", "patient", "doctor"] {
        dbs.push((service, clinic.service_db(service).await));
    }
    let rows = derived_rows_of(&dbs).await;
    for (_, db) in dbs {
        db.close().await;
    }
    rows
}

/// [`derived_rows`] of the services' databases `dbs` (notify, admin, patient, doctor).
pub(crate) async fn derived_rows_of(dbs: &[(&str, Db)]) -> Vec<String> {
    let reads = [
        (
            "notify",
            "SELECT id || '|' || user_id || '|' || event_id || '|' || COALESCE(CAST(read_at AS TEXT), '-') FROM notifications",
        ),
        (
            "notify",
            "SELECT event_id || '|' || user_id FROM applied_deliveries",
        ),
        (
            "notify",
            "SELECT appointment_id || '|' || CAST(version AS TEXT) FROM appointment_versions",
        ),
        (
            "notify",
            "SELECT id || '|' || CAST(due_at AS TEXT) FROM reminders",
        ),
        ("notify", "SELECT id FROM mail_outbox"),
        (
            "notify",
            "SELECT id || '|' || display_name || '|' || status || '|' || CAST(account_version AS TEXT) FROM users",
        ),
        ("admin", "SELECT event_id FROM audit_log"),
        (
            "admin",
            "SELECT id || '|' || display_name || '|' || CAST(account_version AS TEXT) FROM people",
        ),
        (
            "admin",
            "SELECT doctor_id || '|' || CAST(version AS TEXT) FROM doctors",
        ),
        (
            "admin",
            "SELECT id || '|' || status || '|' || CAST(version AS TEXT) FROM appointments",
        ),
        (
            "patient",
            "SELECT id || '|' || status || '|' || CAST(account_version AS TEXT) FROM accounts",
        ),
        (
            "doctor",
            "SELECT id || '|' || CAST(version AS TEXT) || '|' || CAST(account_version AS TEXT) FROM doctors",
        ),
    ];
    let mut out = Vec::new();
    for (service, sql) in reads {
        let (_, db) = dbs
            .iter()
            .find(|(s, _)| *s == service)
            .expect("the service's database");
        let mut rows: Vec<String> =
            with_db!(db, p => sqlx::query_scalar(sql).fetch_all(p).await).expect("derived rows");
        rows.sort();
        out.extend(rows.into_iter().map(|r| format!("{service}: {sql}: {r}")));
    }
    out
}

/// The rows in only one of `before` and `after` (derived rows, [`derived_rows`]).
pub(crate) fn changed_rows<'a>(before: &'a [String], after: &'a [String]) -> Vec<&'a String> {
    after
        .iter()
        .filter(|r| !before.contains(r))
        .chain(before.iter().filter(|r| !after.contains(r)))
        .collect()
}

/// Waits until every durable of every stream has acknowledged everything it was given.
async fn every_consumer_caught_up(clinic: &Clinic) {
    wait::until("every consumer caught up", DEADLINE, || async {
        let js = async_nats::jetstream::new(clinic.harness_nats_client().await);
        for s in carehub_nats::streams::ALL.iter().map(|s| s.name) {
            let stream = js.get_stream(s).await.ok()?;
            let mut infos = stream.consumers();
            while let Some(info) = infos.next().await {
                let info = info.ok()?;
                let done = info.num_pending == 0 && info.num_ack_pending == 0;
                if info.config.durable_name.is_some() && !done {
                    return None;
                }
            }
        }
        Some(())
    })
    .await;
}

/// An operator replays every service's history after the duplicate window, so the streams
/// store every event again: a deleted notification stays deleted, a cancelled appointment's
/// older confirmation brings back neither the appointment nor its reminders, every copy stays
/// as it is, and no mail goes out.
async fn a_replay_of_every_service_after_the_window_changes_no_derived_row_and_sends_no_mail(
    b: Backend,
) {
    use crate::appointments::{doctors_with, patient};
    let clinic = Clinic::start_with(
        b,
        &[("CAREHUB_STREAM_DUPLICATE_WINDOW", "2s")],
        &Component::ALL,
    )
    .await;
    let started = (chrono::Utc::now() - chrono::Duration::seconds(1)).to_rfc3339();
    let doctor = doctors_with(&clinic, 1, 30, true).await.remove(0);
    let p = patient(&clinic).await;
    let day = (carehub_runtime::db::now_ms() / 86_400_000 + 3) * 86_400_000;
    let r = p
        .send(
            reqwest::Method::POST,
            "/api/appointments/book",
            &json!({"doctor_id": doctor.id, "start": crate::appointments::rfc3339(day + 9 * 3_600_000),
                "reason": "a replay"}),
            &[("Idempotency-Key", &uuid::Uuid::new_v4().simple().to_string())],
        )
        .await;
    assert_eq!(r.status(), 201, "book: {}", r.text().await.unwrap());
    let a: Value = r.json().await.unwrap();
    let id = a["id"].as_str().unwrap().to_owned();
    // The doctor reads the patient's record (audited by the patient service), then the patient
    // cancels and deletes the notification of the confirmation.
    let r = doctor.get(&format!("/api/patients/{}/record", p.id)).await;
    assert_eq!(r.status(), 200, "record: {}", r.text().await.unwrap());
    let r = p
        .post(
            &format!("/api/appointments/{id}/cancel"),
            &json!({"reason": "plans changed"}),
        )
        .await;
    assert_eq!(r.status(), 200, "cancel: {}", r.text().await.unwrap());
    let confirmed = wait::until("the patient's two notifications", DEADLINE, || async {
        let v: Value = p.get("/api/notifications").await.json().await.ok()?;
        let list = v["notifications"].as_array()?.clone();
        (list.len() >= 2).then_some(())?;
        list.into_iter()
            .find(|n| n["kind"].as_str().is_some_and(|k| k.contains("confirmed")))
    })
    .await;
    let r = clinic
        .http
        .delete(clinic.url(&format!(
            "/api/notifications/{}",
            confirmed["id"].as_str().unwrap()
        )))
        .bearer_auth(&p.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    every_consumer_caught_up(&clinic).await;
    let mail_dir = clinic.dir.join("mail");
    let mails = wait::until("every mail written", DEADLINE, || async {
        let queued = derived_rows(&clinic)
            .await
            .iter()
            .any(|r| r.contains("FROM mail_outbox:"));
        (!queued).then(|| crate::harness::eml_files(&mail_dir).len())
    })
    .await;
    let before = derived_rows(&clinic).await;
    assert!(
        before
            .iter()
            .any(|r| r.starts_with("admin: SELECT event_id FROM audit_log"))
    );
    assert!(
        mails >= 2,
        "the confirmation and the cancellation were mailed"
    );

    // Past the window, every producer's history goes out again and is stored again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for service in ["auth", "doctor", "patient", "admin"] {
        let (republished, duplicates) = replay(&clinic, service, &started);
        assert!(republished > 0, "{service} had events to replay");
        assert_eq!(duplicates, 0, "{service}: the window has passed");
    }
    every_consumer_caught_up(&clinic).await;
    let after = derived_rows(&clinic).await;
    let changed = crate::outbox::changed_rows(&before, &after);
    assert!(changed.is_empty(), "rows the replay changed: {changed:#?}");
    assert_eq!(
        crate::harness::eml_files(&mail_dir).len(),
        mails,
        "no mail sent"
    );
}

/// An event whose publishing failed for a while waits out a back-off of up to 51 s; once the
/// relay is connected to NATS again it goes out at once. Here the row waits ten minutes, so
/// only the reset on reconnect publishes it within the deadline.
async fn an_event_waiting_out_its_back_off_goes_out_as_soon_as_nats_is_back(b: Backend) {
    let mut clinic = Clinic::start(b).await;
    let db = clinic.service_db("auth").await;
    register_and_wait(&clinic, &db).await;
    let id = uuid::Uuid::now_v7().to_string();
    let now = carehub_runtime::db::now_ms();
    let entry = json!({"event_id": id, "at": now, "service": "auth", "actor_id": "ops",
        "actor_role": "admin", "subject_id": null, "action": "backoff.test", "reason": null});
    let insert = "INSERT INTO outbox (id, subject, payload, created_at, attempts, next_attempt_at) VALUES ($1, $2, $3, $4, 8, $5)";
    with_db!(&db, p => sqlx::query(insert)
        .bind(&id).bind("carehub.events.audit.auth").bind(entry.to_string()).bind(now).bind(now + 600_000)
        .execute(p).await.map(|r| r.rows_affected()))
    .expect("a row waiting out its back-off");
    clinic.nats.kill();
    clinic.nats.restart().await;
    wait::until(
        "the waiting event published after the reconnect",
        DEADLINE,
        || async {
            sent_rows(&db)
                .await
                .iter()
                .any(|r| r.id == id)
                .then_some(())
        },
    )
    .await;
    assert_eq!(unpublished(&db).await, 0);
}
