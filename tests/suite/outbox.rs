//! The outbox keeps what it published: each relayed row moves to `outbox_sent` with the stream
//! position JetStream acknowledged, stays there for `CAREHUB_OUTBOX_RETENTION`, and
//! `carehub ops replay` publishes it again with its original id, which the stream stores once
//! inside its duplicate window (`CAREHUB_STREAM_DUPLICATE_WINDOW`) and again after it.

use crate::both_backends;
use crate::harness::{Backend, Clinic, unique_email};
use crate::support::wait;
use carehub::system::Component;
use carehub_runtime::{Db, with_db};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(20);

both_backends!(
    a_published_event_is_kept_with_the_position_the_stream_acknowledged,
    a_replay_inside_the_duplicate_window_stores_nothing_and_after_it_delivers_again,
    published_rows_past_the_retention_are_purged_and_younger_ones_kept,
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
    let out = clinic.run_carehub(
        &["ops", "replay", "--service", service, "--since", since],
        &[],
    );
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
