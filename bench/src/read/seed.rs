//! The fixed data the hot reads run on, written through the API as the booking bench does
//! (accounts, availability, bookings), except the notifications topped up in the notify
//! service's database; and the checks, through both paths, that it is what the figures say.

use crate::booking::system::Carehub;
use crate::booking::{
    Signed, autovacuum_pass, book_spread, doctor_email, rfc3339, set_availability, sign_in,
    sign_in_patients, today_ms, wait_doctors_applied,
};
use anyhow::Context as _;
use carehub_runtime::Db;
use serde_json::{Value, json};
use std::time::Duration;

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;
/// The reader's appointments.
pub(super) const READER_APPOINTMENTS: usize = 50;
/// The doctor's confirmed appointments over [`WEEKS`] weeks (the reader's among them).
pub(super) const DOCTOR_APPOINTMENTS: usize = 500;
const WEEKS: i64 = 4;
/// The reader's notifications, and how many of them are unread.
pub(super) const NOTIFICATIONS: usize = 200;
pub(super) const UNREAD: usize = 20;
/// The page size of both lists.
pub(super) const PAGE: usize = 20;
/// Patients besides the reader who hold the doctor's other appointments (ten each).
const OTHER_PATIENTS: usize = 45;
/// Every patient account the bench writes: the reader is patient 0.
pub(super) const PATIENTS: usize = 1 + OTHER_PATIENTS;
/// The booked weeks start this many days after today's midnight (UTC): the 24-hour reminders
/// of the first appointments are then due a day after the run at the earliest, so no reminder
/// adds a notification while it runs.
const FIRST_DAY: i64 = 3;
/// How long the seeding may wait for what the bookings set in motion (events, notifications,
/// mails) to be done.
const SETTLE_DEADLINE: Duration = Duration::from_secs(60);

/// The data every read is asked for.
#[derive(Debug, Clone)]
pub(super) struct Fixture {
    /// The patient with 50 appointments and 200 notifications (20 unread).
    pub(super) reader: Signed,
    /// The doctor with 500 confirmed appointments over four weeks.
    pub(super) doctor: String,
    /// The 7-day slot window (the second of the four weeks), in Unix milliseconds.
    pub(super) window: (i64, i64),
}

/// Sets the doctor's hours (instant booking), signs the patients in, books the doctor's 500
/// appointments (every tenth by the reader) over four weeks, fills in the reader's profile,
/// tops the reader's notifications up to 200 with 20 unread, and brings the tables to the
/// state autovacuum keeps them in. The accounts must have been written before the services
/// started (`booking::create_accounts` with [`PATIENTS`]).
///
/// # Errors
/// When a step is refused or the notify service produced more notifications than the fixture
/// holds.
pub(super) async fn seed(http: &reqwest::Client, carehub: &Carehub) -> anyhow::Result<Fixture> {
    let base = carehub.base.as_str();
    let doctor = sign_in(http, base, &doctor_email(0)).await?;
    let version = set_availability(http, base, &doctor, true).await?;
    wait_doctors_applied(&carehub.nats_url, &[(doctor.id.clone(), version)]).await?;
    let patients = sign_in_patients(http, base, PATIENTS).await?;
    let reader = patients[0].clone();
    fill_profile(http, base, &reader).await?;
    let start = today_ms() + FIRST_DAY * DAY_MS;
    let weeks = (start, start + WEEKS * 7 * DAY_MS);
    let bookers = bookers(
        &reader,
        &patients[1..],
        DOCTOR_APPOINTMENTS,
        DOCTOR_APPOINTMENTS / READER_APPOINTMENTS,
    );
    book_spread(http, base, &reader, &doctor.id, weeks, &bookers).await?;
    // The bookings' events become notifications and mails after their answers.
    if carehub.rig.settle(SETTLE_DEADLINE).await?.is_none() {
        tracing::warn!("still busy a minute after the bookings; counting notifications anyway");
    }
    top_up_notifications(carehub, &reader.id).await?;
    for (service, tables) in [
        ("admin", "appointments, doctors, people"),
        ("notify", "notifications"),
        ("patient", "patients, accounts"),
    ] {
        autovacuum_pass(carehub, service, tables, true).await?;
    }
    Ok(Fixture {
        reader,
        doctor: doctor.id,
        window: (start + 7 * DAY_MS, start + 14 * DAY_MS),
    })
}

/// Who makes each of `n` bookings: every `every`-th the reader, the others in turn by the
/// rest, so each of them holds a few appointments of the doctor too.
fn bookers<'a>(reader: &'a Signed, rest: &'a [Signed], n: usize, every: usize) -> Vec<&'a Signed> {
    let mut others = rest.iter().cycle();
    (0..n)
        .map(|i| {
            if i % every.max(1) == 0 {
                reader
            } else {
                others.next().unwrap_or(reader)
            }
        })
        .collect()
}

/// Gives the reader a filled-in profile, so the profile read answers what a patient's does.
async fn fill_profile(http: &reqwest::Client, base: &str, reader: &Signed) -> anyhow::Result<()> {
    let body = json!({
        "date_of_birth": "1980-04-02",
        "phone": "+44 20 7946 0958",
        "address": {"line1": "1 Bench Street", "city": "London", "postal_code": "N1 9GU",
            "country": "United Kingdom"},
        "emergency_contact": {"name": "Bench Relative", "phone": "+44 20 7946 0000",
            "relationship": "sibling"},
    });
    let r = http
        .put(format!("{base}/api/patients/me/profile"))
        .bearer_auth(&reader.token)
        .header("If-Match", "*")
        .json(&body)
        .send()
        .await?;
    let status = r.status();
    anyhow::ensure!(
        status.is_success(),
        "filling in the reader's profile: {status} {}",
        r.text().await.unwrap_or_default()
    );
    Ok(())
}

/// Brings the reader's notifications to [`NOTIFICATIONS`], the newest [`UNREAD`] of them unread.
///
/// The bookings gave the reader one notification each; the rest are written straight into the
/// notify service's database, because producing them through the API would take 150 more
/// appointment events (bookings, cancellations), which would change the appointments the
/// other reads list. They copy the bookings' notifications (kind, title, body, appointment)
/// in the service's own format: UUID v7 ids, which sort by creation time, and Unix
/// milliseconds, dated an hour apart before the oldest one, read a minute after.
async fn top_up_notifications(carehub: &Carehub, reader: &str) -> anyhow::Result<()> {
    let db = carehub.db("notify").await?;
    let Db::Postgres(pool) = &db else {
        anyhow::bail!("the read benchmark runs on PostgreSQL only");
    };
    let existing: Vec<(String, String, String, Option<String>, i64)> = sqlx::query_as(
        "SELECT kind, title, body, appointment_id, created_at FROM notifications
         WHERE user_id = $1 ORDER BY id",
    )
    .bind(reader)
    .fetch_all(pool)
    .await
    .context("reading the reader's notifications")?;
    anyhow::ensure!(
        !existing.is_empty() && existing.len() <= NOTIFICATIONS,
        "the bookings gave the reader {} notifications, expected 1 to {NOTIFICATIONS}",
        existing.len()
    );
    let oldest = existing[0].4;
    let mut tx = pool.begin().await?;
    for k in 0..NOTIFICATIONS - existing.len() {
        let (kind, title, body, appointment, _) = &existing[k % existing.len()];
        let at = oldest - i64::try_from(k + 1)? * HOUR_MS;
        sqlx::query(
            "INSERT INTO notifications (id, user_id, event_id, kind, title, body, appointment_id, created_at, read_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(uuid_v7(at)?)
        .bind(reader)
        .bind(format!("bench-read-{k}"))
        .bind(kind)
        .bind(title)
        .bind(body)
        .bind(appointment)
        .bind(at)
        .bind(at + 60_000)
        .execute(&mut *tx)
        .await
        .context("writing a notification")?;
    }
    sqlx::query(
        "UPDATE notifications SET read_at = created_at + 60000 WHERE user_id = $1 AND read_at IS NULL",
    )
    .bind(reader)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE notifications SET read_at = NULL WHERE id IN
           (SELECT id FROM notifications WHERE user_id = $1 ORDER BY id DESC LIMIT $2)",
    )
    .bind(reader)
    .bind(i64::try_from(UNREAD)?)
    .execute(&mut *tx)
    .await?;
    tx.commit().await.context("committing the notifications")?;
    db.close().await;
    Ok(())
}

/// A UUID v7 (the notify service's id format) for Unix milliseconds `ms`.
fn uuid_v7(ms: i64) -> anyhow::Result<String> {
    let ms = u64::try_from(ms).context("a time before 1970")?;
    let nanos = u32::try_from(ms % 1000)? * 1_000_000;
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, ms / 1000, nanos);
    Ok(uuid::Uuid::new_v7(ts).to_string())
}

/// The gateway URL of each read, in [`super::Read`] order.
pub(super) fn gateway_url(base: &str, read: super::Read, f: &Fixture) -> String {
    use super::Read;
    match read {
        Read::Profile => format!("{base}/api/patients/me/profile"),
        Read::Appointments => format!("{base}/api/appointments?limit={PAGE}"),
        Read::Notifications => format!("{base}/api/notifications?limit={PAGE}"),
        Read::UnreadCount => format!("{base}/api/notifications/unread-count"),
        Read::Slots => format!(
            "{base}/api/doctors/{}/slots?from={}&to={}",
            f.doctor,
            rfc3339(f.window.0),
            rfc3339(f.window.1)
        ),
    }
}

/// The floor URL of each read: the same ids and parameters, the caller's id in the path.
pub(super) fn floor_url(base: &str, read: super::Read, f: &Fixture) -> String {
    use super::Read;
    let me = &f.reader.id;
    match read {
        Read::Profile => format!("{base}/profile/{me}"),
        Read::Appointments => format!("{base}/appointments/{me}?limit={PAGE}"),
        Read::Notifications => format!("{base}/notifications/{me}?limit={PAGE}"),
        Read::UnreadCount => format!("{base}/unread-count/{me}"),
        Read::Slots => format!(
            "{base}/slots/{}?from={}&to={}&patient={me}",
            f.doctor,
            rfc3339(f.window.0),
            rfc3339(f.window.1)
        ),
    }
}

/// GET `url` (with `token` when given): the JSON answer of a 2xx.
async fn get_json(http: &reqwest::Client, url: &str, token: Option<&str>) -> anyhow::Result<Value> {
    let mut req = http.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.with_context(|| format!("GET {url}"))?;
    let status = r.status();
    let body = r.text().await?;
    anyhow::ensure!(status.is_success(), "GET {url}: {status} {body:.300}");
    serde_json::from_str(&body).with_context(|| format!("GET {url}: not JSON: {body:.300}"))
}

/// How many items a list holds across its pages of [`PAGE`], following `next_cursor`; fails
/// unless the first page is full.
async fn count_pages(
    http: &reqwest::Client,
    first: &str,
    token: &str,
    items: &str,
) -> anyhow::Result<usize> {
    let mut total = 0;
    let mut url = first.to_owned();
    for n in 0.. {
        let page = get_json(http, &url, Some(token)).await?;
        let len = page[items].as_array().map_or(0, Vec::len);
        anyhow::ensure!(
            n > 0 || len == PAGE,
            "the first page of {first} holds {len} {items}"
        );
        total += len;
        match page["next_cursor"].as_str() {
            Some(cursor) => url = format!("{first}&cursor={cursor}"),
            None => break,
        }
    }
    Ok(total)
}

/// Checks through the gateway that the fixture is what the figures say: the reader's profile,
/// 50 appointments and 200 notifications across pages of 20, 20 unread, free slots in the
/// window.
///
/// # Errors
/// When any of it differs.
pub(super) async fn verify_gateway(
    http: &reqwest::Client,
    base: &str,
    f: &Fixture,
) -> anyhow::Result<()> {
    use super::Read;
    let token = f.reader.token.as_str();
    let profile = get_json(http, &gateway_url(base, Read::Profile, f), Some(token)).await?;
    anyhow::ensure!(
        profile["patient_id"] == f.reader.id.as_str() && profile["phone"].is_string(),
        "the reader's profile: {profile}"
    );
    let appointments = count_pages(
        http,
        &gateway_url(base, Read::Appointments, f),
        token,
        "appointments",
    )
    .await?;
    anyhow::ensure!(
        appointments == READER_APPOINTMENTS,
        "the reader has {appointments} appointments, not {READER_APPOINTMENTS}"
    );
    let notifications = count_pages(
        http,
        &gateway_url(base, Read::Notifications, f),
        token,
        "notifications",
    )
    .await?;
    anyhow::ensure!(
        notifications == NOTIFICATIONS,
        "the reader has {notifications} notifications, not {NOTIFICATIONS}"
    );
    let unread = get_json(http, &gateway_url(base, Read::UnreadCount, f), Some(token)).await?;
    anyhow::ensure!(
        unread["unread"].as_u64() == Some(UNREAD as u64),
        "the reader's unread count: {unread}, not {UNREAD}"
    );
    let slots = get_json(http, &gateway_url(base, Read::Slots, f), Some(token)).await?;
    let free = slots["slots"].as_array().map_or(0, Vec::len);
    anyhow::ensure!(free > 0, "no free slots in the window: {slots:.300}");
    Ok(())
}

/// Checks that the floor answers the same data: the reader's row, full first pages, 20
/// unread, the doctor with taken times in the window.
///
/// # Errors
/// When any of it differs.
pub(super) async fn verify_floor(
    http: &reqwest::Client,
    base: &str,
    f: &Fixture,
) -> anyhow::Result<()> {
    use super::Read;
    let profile = get_json(http, &floor_url(base, Read::Profile, f), None).await?;
    anyhow::ensure!(
        profile["id"] == f.reader.id.as_str(),
        "the floor's profile: {profile}"
    );
    for (read, items) in [
        (Read::Appointments, "appointments"),
        (Read::Notifications, "notifications"),
    ] {
        let page = get_json(http, &floor_url(base, read, f), None).await?;
        let len = page[items].as_array().map_or(0, Vec::len);
        anyhow::ensure!(
            len == PAGE && page["next_cursor"].is_string(),
            "the floor's first page of {items} holds {len}"
        );
    }
    let unread = get_json(http, &floor_url(base, Read::UnreadCount, f), None).await?;
    anyhow::ensure!(
        unread["unread"].as_u64() == Some(UNREAD as u64),
        "the floor's unread count: {unread}"
    );
    let slots = get_json(http, &floor_url(base, Read::Slots, f), None).await?;
    anyhow::ensure!(
        slots["doctor_id"] == f.doctor.as_str() && slots["taken"].is_string(),
        "the floor's slot rows: {slots:.300}"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(i: usize) -> Signed {
        Signed {
            token: String::new(),
            id: format!("p{i}"),
        }
    }

    #[test]
    fn every_tenth_booking_is_the_readers_and_the_others_share_the_rest() {
        let patients: Vec<Signed> = (0..PATIENTS).map(signed).collect();
        let b = bookers(&patients[0], &patients[1..], DOCTOR_APPOINTMENTS, 10);
        assert_eq!(b.len(), DOCTOR_APPOINTMENTS);
        let count = |id: &str| b.iter().filter(|p| p.id == id).count();
        assert_eq!(count("p0"), READER_APPOINTMENTS);
        for i in 1..PATIENTS {
            assert_eq!(count(&format!("p{i}")), 10);
        }
    }

    #[test]
    fn a_uuid_v7_starts_with_its_milliseconds_so_ids_sort_by_time() {
        let a = uuid_v7(1_700_000_000_000).unwrap();
        let b = uuid_v7(1_700_000_000_001).unwrap();
        assert!(a.starts_with("018bcfe5-6800-7"), "{a}");
        assert!(a < b);
        assert!(uuid_v7(-1).is_err());
    }
}
