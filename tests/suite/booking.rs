//! Booking truth: free slots leave out every taken time (read-your-writes, across instances),
//! every confirmed time sits on the doctor's slot grid, a patient never holds two times at once,
//! and a repeated `Idempotency-Key` gets the first answer back.

use crate::appointments::{As, Window, doctors_with, patient, rfc3339, wait_offered};
use crate::both_backends;
use crate::harness::{Backend, Clinic, error_code};
use carehub::system::Component;
use futures::StreamExt as _;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

both_backends!(
    booked_and_held_times_are_not_listed_as_free_and_come_back_when_freed,
    a_start_off_the_slot_grid_is_refused_and_stores_nothing,
    a_repeated_idempotency_key_gets_the_first_answer,
    a_patient_cannot_hold_two_appointments_at_the_same_time,
    slot_queries_never_list_a_slot_already_booked_during_a_race_across_instances,
    a_change_of_hours_or_time_off_is_in_the_next_query_without_the_doctor_stream,
    the_previous_releases_slot_subject_still_answers_the_same,
);

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;
const MIN_MS: i64 = 60_000;

/// Midnight UTC, `days` days from today.
fn midnight_in(days: i64) -> i64 {
    (chrono::Utc::now().timestamp_millis() / DAY_MS + days) * DAY_MS
}

fn key() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn ms(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t)
        .unwrap()
        .timestamp_millis()
}

async fn free_at(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    doctor: &str,
    from: i64,
    to: i64,
) -> Vec<i64> {
    let r = http
        .get(format!(
            "{base}/api/doctors/{doctor}/slots?from={}&to={}",
            rfc3339(from),
            rfc3339(to)
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "slots: {}", r.text().await.unwrap());
    let v: Value = r.json().await.unwrap();
    v["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| ms(s["start"].as_str().unwrap()))
        .collect()
}

/// The free slot starts `who` is shown for `doctor` in `[from, to)`.
async fn free(who: &As<'_>, doctor: &str, from: i64, to: i64) -> Vec<i64> {
    free_at(
        &who.clinic.http,
        &who.clinic.base,
        &who.token,
        doctor,
        from,
        to,
    )
    .await
}

fn booking(doctor: &str, start: i64) -> Value {
    json!({"doctor_id": doctor, "start": rfc3339(start), "reason": "a check-up"})
}

async fn book(who: &As<'_>, doctor: &str, start: i64, key: &str) -> reqwest::Response {
    who.send(
        reqwest::Method::POST,
        "/api/appointments/book",
        &booking(doctor, start),
        &[("Idempotency-Key", key)],
    )
    .await
}

/// Books and returns the appointment id; panics unless 201.
async fn booked(who: &As<'_>, doctor: &str, start: i64) -> String {
    let r = book(who, doctor, start, &key()).await;
    assert_eq!(r.status(), 201, "book: {}", r.text().await.unwrap());
    let a: Value = r.json().await.unwrap();
    assert_eq!(a["status"], "confirmed");
    a["id"].as_str().unwrap().to_owned()
}

async fn booking_rows(clinic: &Clinic) -> i64 {
    let db = clinic.service_db("admin").await;
    let q = "SELECT COUNT(*) FROM appointments";
    carehub_runtime::with_db!(&db, p => sqlx::query_scalar::<_, i64>(q).fetch_one(p).await.unwrap())
}

async fn booked_and_held_times_are_not_listed_as_free_and_come_back_when_freed(backend: Backend) {
    let clinic = Clinic::start(backend).await;
    let docs = doctors_with(&clinic, 2, 15, true).await;
    let (d, d2) = (&docs[0], &docs[1]);
    let (p1, p2) = (patient(&clinic).await, patient(&clinic).await);
    let day = midnight_in(2);
    let (from, to) = (day + 8 * HOUR_MS, day + 10 * HOUR_MS);
    let all: Vec<i64> = (0..8).map(|i| from + i * 15 * MIN_MS).collect();
    assert_eq!(free(&p2, &d.id, from, to).await, all);

    // Each booking is gone from the very next query, for everyone.
    let mut ids = Vec::new();
    for &start in &all[..3] {
        ids.push(booked(&p1, &d.id, start).await);
        assert!(!free(&p2, &d.id, from, to).await.contains(&start));
    }
    let rest = all[3..].to_vec();
    assert_eq!(free(&p2, &d.id, from, to).await, rest);
    assert_eq!(
        free(d, &d.id, from, to).await,
        rest,
        "the doctor sees it too"
    );
    assert_eq!(free(&p1, &d.id, from, to).await, rest);
    // A patient is not offered another doctor's slots at times they are booked.
    assert_eq!(free(&p1, &d2.id, from, to).await, rest);
    assert_eq!(
        free(&p2, &d2.id, from, to).await,
        all,
        "nobody else is affected"
    );

    // A cancelled time is free again at once.
    let r = p1
        .post(
            &format!("/api/appointments/{}/cancel", ids[0]),
            &json!({"reason": "plans changed"}),
        )
        .await;
    assert_eq!(r.status(), 200, "cancel: {}", r.text().await.unwrap());
    let mut expected = vec![all[0]];
    expected.extend(&rest);
    assert_eq!(free(&p2, &d.id, from, to).await, expected);

    // A new time the doctor proposes is held until the patient answers.
    let proposed = all[5];
    let r = d
        .post(
            &format!("/api/appointments/{}/propose", ids[1]),
            &json!({"start": rfc3339(proposed)}),
        )
        .await;
    assert_eq!(r.status(), 200, "propose: {}", r.text().await.unwrap());
    assert!(!free(&p2, &d.id, from, to).await.contains(&proposed));
    let r = book(&p2, &d.id, proposed, &key()).await;
    assert_eq!(r.status(), 409, "a held time cannot be booked");
    assert_eq!(error_code(r).await, "slot_taken");
    let r = p1
        .post(
            &format!("/api/appointments/{}/proposal", ids[1]),
            &json!({"accept": false}),
        )
        .await;
    assert_eq!(r.status(), 200, "decline: {}", r.text().await.unwrap());
    assert!(free(&p2, &d.id, from, to).await.contains(&proposed));

    // A fully booked morning lists nothing.
    for start in free(&p2, &d.id, from, to).await {
        booked(&p2, &d.id, start).await;
    }
    assert_eq!(free(&p2, &d.id, from, to).await, Vec::<i64>::new());
}

/// A doctor's change of time off or slot length is in the very next slot query and booking
/// with no help from the `CAREHUB_DOCTORS` stream: the doctor service hands the new state to
/// the admin service before it answers. The admin service's durable on that stream is deleted
/// first, so nothing else could bring it.
async fn a_change_of_hours_or_time_off_is_in_the_next_query_without_the_doctor_stream(
    backend: Backend,
) {
    let clinic = Clinic::start(backend).await;
    let docs = doctors_with(&clinic, 1, 15, true).await;
    let d = &docs[0];
    let p = patient(&clinic).await;
    let js = async_nats::jetstream::new(clinic.harness_nats_client().await);
    js.get_stream("CAREHUB_DOCTORS")
        .await
        .expect("the doctors stream")
        .delete_consumer("admin-doctors")
        .await
        .expect("delete the admin service's durable");
    let day = midnight_in(2);
    let (from, to) = (day + 8 * HOUR_MS, day + 10 * HOUR_MS);
    let quarters: Vec<i64> = (0..8).map(|i| from + i * 15 * MIN_MS).collect();
    assert_eq!(free(&p, &d.id, from, to).await, quarters);

    // Time off over the first hour.
    let r = d
        .post(
            "/api/doctors/me/time-off",
            &json!({"start": rfc3339(from), "end": rfc3339(from + HOUR_MS), "reason": "training"}),
        )
        .await;
    assert_eq!(r.status(), 201, "time off: {}", r.text().await.unwrap());
    let off: Value = r.json().await.unwrap();
    assert_eq!(free(&p, &d.id, from, to).await, quarters[4..].to_vec());

    // 30-minute slots: listed, and bookings are checked against the new grid.
    let v = d.json("/api/doctors/me/availability").await["version"].clone();
    let hours = json!({"expected_version": v, "time_zone": "UTC",
        "weekly": crate::harness::every_day("00:00", "23:30"), "slot_minutes": 30, "auto_accept": true});
    let r = d
        .send(
            reqwest::Method::PUT,
            "/api/doctors/me/availability",
            &hours,
            &[],
        )
        .await;
    assert_eq!(r.status(), 200, "hours: {}", r.text().await.unwrap());
    let (nine, nine_thirty) = (from + HOUR_MS, from + HOUR_MS + 30 * MIN_MS);
    assert_eq!(free(&p, &d.id, from, to).await, [nine, nine_thirty]);
    let r = book(&p, &d.id, nine + 15 * MIN_MS, &key()).await;
    assert_eq!(r.status(), 422, "09:15 is off the new grid");
    assert_eq!(error_code(r).await, "off_slot_grid");
    booked(&p, &d.id, nine_thirty).await;

    // The time off removed: the first hour is back, on the new grid.
    let id = off["time_off"]["id"].as_str().unwrap();
    let r = clinic
        .http
        .delete(clinic.url(&format!("/api/doctors/me/time-off/{id}")))
        .bearer_auth(&d.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        free(&p, &d.id, from, to).await,
        [from, from + 30 * MIN_MS, nine]
    );
}

/// A gateway of the previous release asks the doctor service for slots
/// (`carehub.api.doctor.slots`); during a rolling upgrade that subject still answers, with the
/// list the admin service gives today's gateways.
async fn the_previous_releases_slot_subject_still_answers_the_same(backend: Backend) {
    use carehub_bus::ContextHeaders as _;
    let clinic = Clinic::start(backend).await;
    let docs = doctors_with(&clinic, 1, 15, true).await;
    let d = &docs[0];
    let p = patient(&clinic).await;
    let day = midnight_in(2);
    let (from, to) = (day + 8 * HOUR_MS, day + 10 * HOUR_MS);
    booked(&p, &d.id, from + 15 * MIN_MS).await;
    let today = free(&p, &d.id, from, to).await;
    assert_eq!(today.len(), 7, "{today:?}");

    // As the previous gateway sends it: the patient's identity in the headers.
    let ctx = carehub_nats::CallContext {
        request_id: "previous-gateway".into(),
        principal: Some(carehub_nats::Principal {
            user_id: p.id.clone(),
            role: carehub_nats::Role::Patient,
            status: carehub_nats::UserStatus::Active,
            jti: "previous-gateway".into(),
            session_id: "previous-gateway".into(),
            expires_at: chrono::Utc::now().timestamp() + 600,
        }),
        client_ip: None,
    };
    let body = json!({"doctor_id": d.id, "from": rfc3339(from), "to": rfc3339(to)});
    let nc = clinic.nats_client_as("gateway").await;
    let reply = nc
        .request_with_headers(
            "carehub.api.doctor.slots",
            ctx.to_headers(),
            body.to_string().into(),
        )
        .await
        .expect("the doctor service answers");
    let list: Value = serde_json::from_slice(&reply.payload).unwrap();
    let starts: Vec<i64> = list["slots"]
        .as_array()
        .unwrap_or_else(|| panic!("a slot list: {list}"))
        .iter()
        .map(|s| ms(s["start"].as_str().unwrap()))
        .collect();
    assert_eq!(starts, today);
}

async fn a_start_off_the_slot_grid_is_refused_and_stores_nothing(backend: Backend) {
    let clinic = Clinic::start(backend).await;
    let instant = doctors_with(&clinic, 1, 15, true).await;
    let d = &instant[0];
    let p = patient(&clinic).await;
    let day = midnight_in(2);
    let eight = day + 8 * HOUR_MS;

    let before = booking_rows(&clinic).await;
    let r = book(&p, &d.id, eight + 7 * MIN_MS, &key()).await;
    assert_eq!(r.status(), 422, "08:07 is not a slot start");
    assert_eq!(error_code(r).await, "off_slot_grid");
    assert_eq!(booking_rows(&clinic).await, before, "nothing stored");
    let free_now = free(&p, &d.id, eight, eight + HOUR_MS).await;
    assert!(free_now.contains(&eight) && free_now.contains(&(eight + 15 * MIN_MS)));
    booked(&p, &d.id, eight).await;
    booked(&p, &d.id, eight + 15 * MIN_MS).await;

    // Accepting a request, and proposing a move, off the grid are refused the same way.
    let by_request = doctors_with(&clinic, 1, 30, false).await;
    let doc = &by_request[0];
    let (ws, we) = (day + 10 * HOUR_MS, day + 13 * HOUR_MS);
    let window = Window {
        start: rfc3339(ws),
        end: rfc3339(we),
    };
    let id = p.requested(json!({"doctor": doc.id}), &window).await;
    wait_offered(doc, &id).await;
    let accept = format!("/api/appointments/{id}/accept");
    let r = doc
        .post(&accept, &json!({"start": rfc3339(ws + 70 * MIN_MS)}))
        .await;
    assert_eq!(r.status(), 422, "11:10 is not a slot start");
    assert_eq!(error_code(r).await, "off_slot_grid");
    let r = doc
        .post(&accept, &json!({"start": rfc3339(ws + 60 * MIN_MS)}))
        .await;
    assert_eq!(r.status(), 200, "accept: {}", r.text().await.unwrap());
    let a: Value = r.json().await.unwrap();
    assert_eq!(a["end"], rfc3339(ws + 90 * MIN_MS));
    let r = doc
        .post(
            &format!("/api/appointments/{id}/propose"),
            &json!({"start": rfc3339(ws + 125 * MIN_MS)}),
        )
        .await;
    assert_eq!(r.status(), 422, "a proposal must be a slot start too");
    assert_eq!(error_code(r).await, "off_slot_grid");
}

async fn a_repeated_idempotency_key_gets_the_first_answer(backend: Backend) {
    let clinic = Clinic::start(backend).await;
    let docs = doctors_with(&clinic, 1, 15, true).await;
    let d = &docs[0];
    let (p1, p2) = (patient(&clinic).await, patient(&clinic).await);
    let eight = midnight_in(2) + 8 * HOUR_MS;

    // A retry after a lost answer is told it holds the slot, with the first answer.
    let k = key();
    let r = book(&p1, &d.id, eight, &k).await;
    assert_eq!(r.status(), 201);
    let first: Value = r.json().await.unwrap();
    let r = book(&p1, &d.id, eight, &k).await;
    assert_eq!(r.status(), 201, "a retry is not told it lost");
    assert_eq!(r.json::<Value>().await.unwrap(), first);
    // The same request spelt differently (key order, whitespace) is the same request.
    let raw = format!(
        "{{ \"reason\" : \"a check-up\",\n  \"start\":\"{}\", \"doctor_id\": \"{}\" }}",
        rfc3339(eight),
        d.id
    );
    let r = clinic
        .http
        .post(clinic.url("/api/appointments/book"))
        .bearer_auth(&p1.token)
        .header("Idempotency-Key", &k)
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().await.unwrap(), first);

    // The same key with another body is refused, and books nothing.
    let later = eight + 15 * MIN_MS;
    let r = book(&p1, &d.id, later, &k).await;
    assert_eq!(r.status(), 422);
    assert_eq!(error_code(r).await, "idempotency_key_reused");
    assert!(
        free(&p2, &d.id, eight, eight + HOUR_MS)
            .await
            .contains(&later)
    );

    // Keys belong to their caller: another patient's identical request is their own.
    let r = book(&p2, &d.id, eight, &k).await;
    assert_eq!(r.status(), 409);
    assert_eq!(error_code(r).await, "slot_taken");

    // A 4xx answer is kept too: the retry gets the same refusal even after the slot is free.
    let k2 = key();
    let r = book(&p2, &d.id, eight, &k2).await;
    assert_eq!(error_code(r).await, "slot_taken");
    let id = first["id"].as_str().unwrap();
    let r = p1
        .post(
            &format!("/api/appointments/{id}/cancel"),
            &json!({"reason": "plans changed"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = book(&p2, &d.id, eight, &k2).await;
    assert_eq!(r.status(), 409, "the stored answer, not a new booking");
    assert_eq!(error_code(r).await, "slot_taken");
    assert!(
        free(&p2, &d.id, eight, eight + HOUR_MS)
            .await
            .contains(&eight)
    );

    // Two copies racing: both get the one booking, neither is told the slot was taken.
    let k3 = key();
    let nine = eight + HOUR_MS;
    let (a, b) = tokio::join!(book(&p2, &d.id, nine, &k3), book(&p2, &d.id, nine, &k3));
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (201, 201));
    let (a, b): (Value, Value) = (a.json().await.unwrap(), b.json().await.unwrap());
    assert_eq!(a, b);
    let mine = p2.json("/api/appointments?status=confirmed").await;
    let at_nine = mine["appointments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["start"] == rfc3339(nine))
        .count();
    assert_eq!(at_nine, 1, "one appointment for the two copies");

    // Requests: the same key and body give the same request; another body is refused.
    let window = json!({"target": {"doctor": d.id}, "window_start": rfc3339(eight + 2 * DAY_MS),
        "window_end": rfc3339(eight + 2 * DAY_MS + 3 * HOUR_MS), "reason": "a check-up"});
    let k4 = key();
    let send = |body: Value| {
        let k4 = k4.clone();
        let p1 = &p1;
        async move {
            p1.send(
                reqwest::Method::POST,
                "/api/appointments",
                &body,
                &[("Idempotency-Key", &k4)],
            )
            .await
        }
    };
    let r1 = send(window.clone()).await;
    assert_eq!(r1.status(), 201);
    let r1: Value = r1.json().await.unwrap();
    let r2 = send(window.clone()).await;
    assert_eq!(r2.status(), 201);
    assert_eq!(r2.json::<Value>().await.unwrap()["id"], r1["id"]);
    let mut other = window.clone();
    other["reason"] = json!("something else");
    let r3 = send(other).await;
    assert_eq!(r3.status(), 422);
    assert_eq!(error_code(r3).await, "idempotency_key_reused");
}

async fn a_patient_cannot_hold_two_appointments_at_the_same_time(backend: Backend) {
    let clinic = Clinic::start(backend).await;
    let docs = doctors_with(&clinic, 2, 15, true).await;
    let (d1, d2) = (&docs[0], &docs[1]);
    let (p, other) = (patient(&clinic).await, patient(&clinic).await);
    let eight = midnight_in(3) + 8 * HOUR_MS;

    booked(&p, &d1.id, eight).await;
    let r = book(&p, &d2.id, eight, &key()).await;
    assert_eq!(r.status(), 409);
    assert_eq!(error_code(r).await, "patient_busy");
    assert!(
        free(&other, &d2.id, eight, eight + HOUR_MS)
            .await
            .contains(&eight),
        "the other doctor's slot stays free"
    );
    booked(&p, &d2.id, eight + 15 * MIN_MS).await;
    let r = book(&other, &d2.id, eight + 15 * MIN_MS, &key()).await;
    assert_eq!(error_code(r).await, "slot_taken");

    // A doctor accepting a request at a time the patient is booked elsewhere is told so.
    let by_request = doctors_with(&clinic, 1, 15, false).await;
    let doc = &by_request[0];
    let window = Window {
        start: rfc3339(eight),
        end: rfc3339(eight + 2 * HOUR_MS),
    };
    let id = p.requested(json!({"doctor": doc.id}), &window).await;
    wait_offered(doc, &id).await;
    let accept = format!("/api/appointments/{id}/accept");
    let r = doc.post(&accept, &json!({"start": rfc3339(eight)})).await;
    assert_eq!(r.status(), 409);
    assert_eq!(error_code(r).await, "patient_busy");
    let r = doc
        .post(&accept, &json!({"start": rfc3339(eight + HOUR_MS)}))
        .await;
    assert_eq!(r.status(), 200, "accept: {}", r.text().await.unwrap());
}

/// 200 patients book a doctor's 20 slots at once through two gateways, two doctor and two
/// admin instances, while 20 others keep listing the slots: no query sent after a 201 for a
/// slot lists that slot, every slot has exactly one winner, and nothing answers 5xx.
async fn slot_queries_never_list_a_slot_already_booked_during_a_race_across_instances(
    backend: Backend,
) {
    const BOOKERS: usize = 200;
    const LISTERS: usize = 20;
    const SLOTS: i64 = 20;
    let mut clinic = Clinic::start(backend).await;
    let second = clinic
        .start_more(
            &[
                ("CAREHUB_GATEWAY_ADDR", "127.0.0.1:0"),
                ("CAREHUB_HUB_ADDR", "127.0.0.1:0"),
            ],
            &[Component::Doctor, Component::Admin, Component::Gateway],
        )
        .await
        .expect("a second gateway");
    let clinic = clinic;
    let docs = doctors_with(&clinic, 1, 15, true).await;
    let doctor = docs[0].id.clone();
    let from = midnight_in(2) + 6 * HOUR_MS;
    let to = from + SLOTS * 15 * MIN_MS;
    // A few sign-ups at a time: each is two argon2 computations in auth.
    let people: Vec<_> = futures::stream::iter((0..BOOKERS + LISTERS).map(|_| patient(&clinic)))
        .buffer_unordered(6)
        .collect()
        .await;
    let mut bookers: Vec<String> = people.into_iter().map(|p| p.token).collect();
    let listers = bookers.split_off(BOOKERS);
    let bases = [clinic.base.clone(), second];
    let won: Arc<Mutex<HashMap<i64, Vec<Instant>>>> = Arc::default();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let http = clinic.http.clone();

    let mut listing = Vec::new();
    for (i, token) in listers.into_iter().enumerate() {
        let (http, base, doctor) = (http.clone(), bases[i % 2].clone(), doctor.clone());
        let (won, done) = (won.clone(), done.clone());
        listing.push(tokio::spawn(async move {
            let (mut queries, mut defects) = (0, Vec::new());
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let sent = Instant::now();
                let free = free_at(&http, &base, &token, &doctor, from, to).await;
                queries += 1;
                let won = won.lock().unwrap();
                for s in free {
                    if won.get(&s).is_some_and(|t| t.iter().any(|&t| t < sent)) {
                        defects.push(s);
                    }
                }
            }
            (queries, defects)
        }));
    }
    // Every booker races at once; at most 32 of their requests are in flight together, so a
    // debug build on two cores answers each well inside the bus timeout.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(32));
    let mut racing = Vec::new();
    for (i, token) in bookers.into_iter().enumerate() {
        let (http, base, doctor) = (http.clone(), bases[i % 2].clone(), doctor.clone());
        let (won, in_flight) = (won.clone(), in_flight.clone());
        racing.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for k in 0..SLOTS {
                let start = from + ((i64::try_from(i).unwrap() + k) % SLOTS) * 15 * MIN_MS;
                let _permit = in_flight.acquire().await.unwrap();
                let r = http
                    .post(format!("{base}/api/appointments/book"))
                    .bearer_auth(&token)
                    .header("Idempotency-Key", key())
                    .json(&booking(&doctor, start))
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                statuses.push(status);
                if status == 201 {
                    let at = Instant::now();
                    won.lock().unwrap().entry(start).or_default().push(at);
                    break;
                }
            }
            statuses
        }));
    }
    let mut statuses = Vec::new();
    for b in racing {
        statuses.extend(b.await.unwrap());
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (mut queries, mut defects) = (0, Vec::new());
    for l in listing {
        let (q, d) = l.await.unwrap();
        queries += q;
        defects.extend(d);
    }
    assert!(queries > 0, "the listers ran");
    let unexpected: Vec<u16> = statuses
        .iter()
        .copied()
        .filter(|&s| s != 201 && s != 409)
        .collect();
    assert!(
        unexpected.is_empty(),
        "only 201 and 409, also got: {unexpected:?}"
    );
    let won = won.lock().unwrap().clone();
    assert_eq!(
        won.len(),
        usize::try_from(SLOTS).unwrap(),
        "every slot booked"
    );
    assert!(won.values().all(|w| w.len() == 1), "one winner per slot");
    assert!(
        defects.is_empty(),
        "{} queries listed a slot already booked: {defects:?}",
        defects.len()
    );
    let http = &clinic.http;
    let token = &docs[0].token;
    assert!(
        free_at(http, &bases[1], token, &doctor, from, to)
            .await
            .is_empty()
    );
}
