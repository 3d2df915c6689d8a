//! Appointments over HTTP: routing through doctor groups (broadcast, round robin, least
//! loaded), declines, deadlines that escalate and expire, bad input, who may see and do what,
//! and the database's own guard against overlapping confirmed appointments.

use crate::both_backends;
use crate::harness::{Backend, Clinic, PASSWORD, error_code, token, unique_email};
use crate::support::wait;
use carehub::system::Component;
use carehub_nats::Role;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

both_backends!(
    the_first_doctor_of_a_broadcast_group_to_accept_wins_and_the_other_offers_are_withdrawn,
    round_robin_spreads_nine_requests_evenly_over_three_doctors,
    least_loaded_offers_to_the_doctor_with_the_fewest_open_offers,
    a_declined_offer_moves_the_request_on_to_the_next_member,
    a_request_nobody_accepts_escalates_and_then_expires,
    bad_requests_are_refused_with_a_stable_code_and_nothing_is_stored,
    only_the_people_concerned_see_an_appointment_and_only_doctors_accept,
    the_database_refuses_overlapping_confirmed_appointments_of_one_doctor,
    an_admin_declining_a_request_closes_it_and_is_kept_in_the_audit_trail,
    appointments_name_their_patient_and_doctor_to_each_side,
);

pub(crate) const DEADLINE: Duration = Duration::from_secs(30);
const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// One signed-in person.
pub(crate) struct As<'a> {
    pub(crate) clinic: &'a Clinic,
    pub(crate) token: String,
    pub(crate) id: String,
}

impl As<'_> {
    /// The account's display name, as `/api/me` gives it.
    pub(crate) async fn display_name(&self) -> String {
        let me = self.json("/api/me").await;
        me["display_name"].as_str().unwrap().to_owned()
    }

    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        self.clinic
            .http
            .get(self.clinic.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }
    pub(crate) async fn json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }
    pub(crate) async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.send(reqwest::Method::POST, path, body, &[]).await
    }
    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self
            .clinic
            .http
            .request(method, self.clinic.url(path))
            .bearer_auth(&self.token)
            .json(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    /// `POST /api/appointments` with a fresh idempotency key.
    pub(crate) async fn request(&self, target: Value, window: &Window) -> reqwest::Response {
        let key = uuid::Uuid::new_v4().simple().to_string();
        let body = json!({"target": target, "window_start": window.start, "window_end": window.end,
            "reason": "a check-up"});
        self.send(
            reqwest::Method::POST,
            "/api/appointments",
            &body,
            &[("Idempotency-Key", &key)],
        )
        .await
    }

    /// Requests and expects 201; returns the appointment id.
    pub(crate) async fn requested(&self, target: Value, window: &Window) -> String {
        let r = self.request(target, window).await;
        assert_eq!(r.status(), 201, "request: {}", r.text().await.unwrap());
        let a: Value = r.json().await.unwrap();
        assert_eq!(a["patient_id"], self.id.as_str());
        a["id"].as_str().unwrap().to_owned()
    }

    /// The appointment ids of the caller's pending offers.
    pub(crate) async fn offered(&self) -> Vec<String> {
        self.json("/api/offers").await["offers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                assert_eq!(o["offer"]["status"], "pending");
                assert_eq!(o["offer"]["doctor_id"], self.id.as_str());
                o["appointment"]["id"].as_str().unwrap().to_owned()
            })
            .collect()
    }
}

pub(crate) async fn signed_in<'a>(clinic: &'a Clinic, session: &Value) -> As<'a> {
    As {
        clinic,
        token: token(session),
        id: session["user"]["id"].as_str().unwrap().to_owned(),
    }
}

pub(crate) async fn patient<'a>(clinic: &'a Clinic) -> As<'a> {
    let s = clinic.patient(&unique_email("pat")).await;
    signed_in(clinic, &s).await
}

pub(crate) async fn admin<'a>(clinic: &'a Clinic) -> As<'a> {
    let email = unique_email("admin");
    clinic.create_user(Role::Admin, &email).await;
    let s = clinic.login(&email, PASSWORD).await;
    signed_in(clinic, &s).await
}

/// `n` approved doctors working every day 00:00–23:30 UTC in 30-minute slots, once the admin
/// service has applied their availability (its consumer of `CAREHUB_DOCTORS` caught up).
pub(crate) async fn doctors<'a>(clinic: &'a Clinic, n: usize) -> Vec<As<'a>> {
    doctors_with(clinic, n, 30, false).await
}

/// As [`doctors`], with `slot_minutes` and whether patients may book them directly.
pub(crate) async fn doctors_with<'a>(
    clinic: &'a Clinic,
    n: usize,
    slot_minutes: u32,
    auto_accept: bool,
) -> Vec<As<'a>> {
    let mut out = Vec::new();
    for _ in 0..n {
        let email = unique_email("doc");
        clinic.create_user(Role::Doctor, &email).await;
        let s = clinic.login(&email, PASSWORD).await;
        out.push(signed_in(clinic, &s).await);
    }
    let weekly = crate::harness::every_day("00:00", "23:30");
    let mut versions = HashMap::new();
    for d in &out {
        let v = wait::until("the doctor service knows the doctor", DEADLINE, || async {
            let r = d.get("/api/doctors/me/availability").await;
            if r.status() == 200 {
                r.json::<Value>().await.ok()?["version"].as_i64()
            } else {
                None
            }
        })
        .await;
        let body = json!({"expected_version": v, "time_zone": "UTC", "weekly": weekly,
            "slot_minutes": slot_minutes, "auto_accept": auto_accept});
        let r = d
            .send(
                reqwest::Method::PUT,
                "/api/doctors/me/availability",
                &body,
                &[],
            )
            .await;
        assert_eq!(r.status(), 200, "availability: {}", r.text().await.unwrap());
        let after: Value = r.json().await.unwrap();
        versions.insert(d.id.clone(), after["version"].as_i64().unwrap());
    }
    wait::until(
        "the availability events in the stream",
        DEADLINE,
        || async {
            let events = clinic
                .stream_messages("CAREHUB_DOCTORS", "carehub.events.doctor.>")
                .await;
            versions
                .iter()
                .all(|(id, v)| {
                    events
                        .iter()
                        .any(|e| e["doctor"]["id"] == id.as_str() && e["doctor"]["version"] == *v)
                })
                .then_some(())
        },
    )
    .await;
    wait::until(
        "the admin service applied the doctors",
        DEADLINE,
        || async {
            let js = async_nats::jetstream::new(clinic.nats_client_as("ops").await);
            let stream = js.get_stream("CAREHUB_DOCTORS").await.ok()?;
            let mut c = stream
                .get_consumer::<async_nats::jetstream::consumer::pull::Config>("admin-doctors")
                .await
                .ok()?;
            let info = c.info().await.ok()?;
            (info.num_pending == 0 && info.num_ack_pending == 0).then_some(())
        },
    )
    .await;
    out
}

/// Creates a group of `members` with `strategy`; returns its id.
pub(crate) async fn group(
    admin: &As<'_>,
    strategy: &str,
    deadline_secs: i64,
    members: &[&As<'_>],
) -> String {
    let ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
    let body = json!({"name": format!("Group {}", &uuid::Uuid::new_v4().simple().to_string()[..6]),
        "strategy": strategy, "accept_deadline_secs": deadline_secs, "members": ids});
    let r = admin.post("/api/admin/groups", &body).await;
    assert_eq!(r.status(), 201, "group: {}", r.text().await.unwrap());
    let g: Value = r.json().await.unwrap();
    assert_eq!(g["strategy"], strategy);
    assert_eq!(g["version"], 1);
    assert_eq!(g["members"], json!(ids));
    g["id"].as_str().unwrap().to_owned()
}

/// A preferred window, as RFC 3339 strings.
pub(crate) struct Window {
    pub(crate) start: String,
    pub(crate) end: String,
}

/// 10:00–13:00 UTC, `days` days from now.
pub(crate) fn window_in(days: i64) -> Window {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let today = i64::try_from(now).unwrap() / DAY_MS * DAY_MS;
    let start = today + days * DAY_MS + 10 * HOUR_MS;
    Window {
        start: rfc3339(start),
        end: rfc3339(start + 3 * HOUR_MS),
    }
}

/// Unix milliseconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Appointment events of `kind` about appointment `id`.
pub(crate) async fn events(clinic: &Clinic, kind: &str, id: &str) -> Vec<Value> {
    clinic
        .stream_messages(
            "CAREHUB_APPOINTMENTS",
            &format!("carehub.events.appointment.{kind}"),
        )
        .await
        .into_iter()
        .filter(|e| e["appointment"]["id"] == id)
        .collect()
}

/// Waits until `doctor` has a pending offer for appointment `id`.
pub(crate) async fn wait_offered(doctor: &As<'_>, id: &str) {
    wait::until("the offer reaches the doctor", DEADLINE, || async {
        doctor.offered().await.iter().any(|a| a == id).then_some(())
    })
    .await;
}

pub(crate) fn offer_status(detail: &Value, doctor_id: &str) -> Vec<String> {
    detail["offers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["doctor_id"] == doctor_id)
        .map(|o| o["status"].as_str().unwrap().to_owned())
        .collect()
}

async fn the_first_doctor_of_a_broadcast_group_to_accept_wins_and_the_other_offers_are_withdrawn(
    b: Backend,
) {
    let clinic = Clinic::start(b).await;
    let admin = admin(&clinic).await;
    let docs = doctors(&clinic, 3).await;
    let g = group(&admin, "broadcast", 3600, &docs.iter().collect::<Vec<_>>()).await;
    let pat = patient(&clinic).await;
    let w = window_in(2);
    let id = pat.requested(json!({"group": g}), &w).await;
    for d in &docs {
        wait_offered(d, &id).await;
    }

    let r = docs[0]
        .post(
            &format!("/api/appointments/{id}/accept"),
            &json!({"start": w.start}),
        )
        .await;
    assert_eq!(r.status(), 200, "accept: {}", r.text().await.unwrap());
    let a: Value = r.json().await.unwrap();
    assert_eq!(a["status"], "confirmed");
    assert_eq!(a["doctor_id"], docs[0].id.as_str());
    assert_eq!(a["start"], w.start.as_str());

    let late = docs[1]
        .post(
            &format!("/api/appointments/{id}/accept"),
            &json!({"start": w.start}),
        )
        .await;
    assert_eq!(late.status(), 409, "a withdrawn offer cannot be accepted");
    assert_eq!(error_code(late).await, "conflict");

    let detail = admin.json(&format!("/api/appointments/{id}")).await;
    assert_eq!(detail["appointment"]["status"], "confirmed");
    assert_eq!(offer_status(&detail, &docs[0].id), ["accepted"]);
    assert_eq!(offer_status(&detail, &docs[1].id), ["withdrawn"]);
    assert_eq!(offer_status(&detail, &docs[2].id), ["withdrawn"]);
    for d in &docs[1..] {
        assert!(
            !d.offered().await.contains(&id),
            "withdrawn offers leave the list"
        );
    }
    let mine = pat.json(&format!("/api/appointments/{id}")).await;
    assert_eq!(mine["appointment"]["status"], "confirmed");
    assert_eq!(mine["offers"], json!([]), "patients do not see the offers");

    wait::until("the confirmed event", DEADLINE, || async {
        (!events(&clinic, "confirmed", &id).await.is_empty()).then_some(())
    })
    .await;
    let confirmed = events(&clinic, "confirmed", &id).await;
    assert_eq!(confirmed.len(), 1, "exactly one confirmed event");
    assert_eq!(
        confirmed[0]["appointment"]["doctor_id"],
        docs[0].id.as_str()
    );
}

async fn round_robin_spreads_nine_requests_evenly_over_three_doctors(b: Backend) {
    let clinic = Clinic::start(b).await;
    let admin = admin(&clinic).await;
    let docs = doctors(&clinic, 3).await;
    let g = group(
        &admin,
        "round_robin",
        3600,
        &docs.iter().collect::<Vec<_>>(),
    )
    .await;
    let pat = patient(&clinic).await;
    let w = window_in(3);
    let mut ids = Vec::new();
    for _ in 0..9 {
        ids.push(pat.requested(json!({"group": g}), &w).await);
    }
    let counts = wait::until("nine offers", DEADLINE, || async {
        let mut counts = Vec::new();
        for d in &docs {
            counts.push(d.offered().await.len());
        }
        (counts.iter().sum::<usize>() == 9).then_some(counts)
    })
    .await;
    assert_eq!(counts, [3, 3, 3], "each doctor gets a third");
    let mut all: Vec<String> = Vec::new();
    for d in &docs {
        all.extend(d.offered().await);
    }
    all.sort();
    ids.sort();
    assert_eq!(all, ids, "every request offered exactly once");
}

async fn least_loaded_offers_to_the_doctor_with_the_fewest_open_offers(b: Backend) {
    let clinic = Clinic::start(b).await;
    let admin = admin(&clinic).await;
    let docs = doctors(&clinic, 3).await;
    let pat = patient(&clinic).await;
    let w = window_in(2);
    // Loads 3 / 1 / 2: the member with one open offer gets the request.
    for (d, n) in [(&docs[0], 3), (&docs[1], 1), (&docs[2], 2)] {
        for _ in 0..n {
            let id = pat.requested(json!({"doctor": d.id}), &w).await;
            wait_offered(d, &id).await;
        }
    }
    let g = group(
        &admin,
        "least_loaded",
        3600,
        &docs.iter().collect::<Vec<_>>(),
    )
    .await;

    let first = pat.requested(json!({"group": g}), &w).await;
    wait_offered(&docs[1], &first).await;
    let detail = admin.json(&format!("/api/appointments/{first}")).await;
    assert_eq!(
        detail["offers"].as_array().unwrap().len(),
        1,
        "one doctor at a time"
    );

    // Now 3 / 2 / 2: the tie goes to the member listed first.
    let second = pat.requested(json!({"group": g}), &w).await;
    wait_offered(&docs[1], &second).await;
    assert!(!docs[0].offered().await.contains(&second));
    assert!(!docs[2].offered().await.contains(&second));
}

async fn a_declined_offer_moves_the_request_on_to_the_next_member(b: Backend) {
    let clinic = Clinic::start(b).await;
    let admin = admin(&clinic).await;
    let docs = doctors(&clinic, 2).await;
    let g = group(&admin, "round_robin", 3600, &[&docs[0], &docs[1]]).await;
    let pat = patient(&clinic).await;
    let id = pat.requested(json!({"group": g}), &window_in(2)).await;
    let (first, next) = wait::until("the first offer", DEADLINE, || async {
        if docs[0].offered().await.contains(&id) {
            Some((&docs[0], &docs[1]))
        } else if docs[1].offered().await.contains(&id) {
            Some((&docs[1], &docs[0]))
        } else {
            None
        }
    })
    .await;

    let r = first
        .post(
            &format!("/api/appointments/{id}/decline"),
            &json!({"reason": "fully booked that week"}),
        )
        .await;
    assert_eq!(r.status(), 200, "decline: {}", r.text().await.unwrap());
    let a: Value = r.json().await.unwrap();
    assert!(
        matches!(a["status"].as_str(), Some("requested" | "offered")),
        "a decline does not end the request: {a}"
    );
    wait_offered(next, &id).await;
    assert!(!first.offered().await.contains(&id));

    let detail = admin.json(&format!("/api/appointments/{id}")).await;
    assert_eq!(detail["appointment"]["status"], "offered");
    assert_eq!(offer_status(&detail, &first.id), ["declined"]);
    assert_eq!(offer_status(&detail, &next.id), ["pending"]);
    let declined = detail["offers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["doctor_id"] == first.id.as_str())
        .unwrap()
        .clone();
    assert_eq!(declined["reason"], "fully booked that week");

    let again = first
        .post(
            &format!("/api/appointments/{id}/decline"),
            &json!({"reason": "twice"}),
        )
        .await;
    assert!(
        matches!(again.status().as_u16(), 404 | 409),
        "a decided offer cannot be declined again: {}",
        again.status()
    );
    wait::until("the offer_declined event", DEADLINE, || async {
        (events(&clinic, "offer_declined", &id).await.len() == 1).then_some(())
    })
    .await;
}

async fn a_request_nobody_accepts_escalates_and_then_expires(b: Backend) {
    let clinic = Clinic::start_with(
        b,
        &[
            ("CAREHUB_REQUEST_MAX_WAIT", "6"),
            ("CAREHUB_DEADLINE_SWEEP", "1"),
        ],
        &Component::ALL,
    )
    .await;
    let admin = admin(&clinic).await;
    let docs = doctors(&clinic, 1).await;
    let g = group(&admin, "broadcast", 1, &[&docs[0]]).await;
    let pat = patient(&clinic).await;
    let id = pat.requested(json!({"group": g}), &window_in(2)).await;

    wait::until(
        "the offer times out and the request escalates",
        DEADLINE,
        || async { (!events(&clinic, "escalated", &id).await.is_empty()).then_some(()) },
    )
    .await;
    assert_eq!(events(&clinic, "offer_timed_out", &id).await.len(), 1);
    let detail = admin.json(&format!("/api/appointments/{id}")).await;
    assert_eq!(offer_status(&detail, &docs[0].id), ["timed_out"]);
    assert!(!docs[0].offered().await.contains(&id));

    wait::until("the request expires", DEADLINE, || async {
        (!events(&clinic, "expired", &id).await.is_empty()).then_some(())
    })
    .await;
    assert_eq!(events(&clinic, "expired", &id).await.len(), 1);
    let mine = pat.json(&format!("/api/appointments/{id}")).await;
    assert_eq!(mine["appointment"]["status"], "expired");
    let r = pat
        .post(
            &format!("/api/appointments/{id}/cancel"),
            &json!({"reason": "too late"}),
        )
        .await;
    assert_eq!(r.status(), 409, "an expired request cannot be cancelled");
}

async fn bad_requests_are_refused_with_a_stable_code_and_nothing_is_stored(b: Backend) {
    let clinic = Clinic::start(b).await;
    let admin = admin(&clinic).await;
    let docs = doctors(&clinic, 1).await;
    let g = group(&admin, "broadcast", 3600, &[&docs[0]]).await;
    let pat = patient(&clinic).await;
    let good = window_in(2);
    let past = Window {
        start: "2020-01-01T10:00:00Z".into(),
        end: "2020-01-01T12:00:00Z".into(),
    };
    let reversed = Window {
        start: good.end.clone(),
        end: good.start.clone(),
    };
    let cases = [
        ("a window in the past", json!({"doctor": docs[0].id}), &past),
        (
            "an end before the start",
            json!({"doctor": docs[0].id}),
            &reversed,
        ),
        (
            "an unknown doctor",
            json!({"doctor": uuid::Uuid::new_v4().to_string()}),
            &good,
        ),
        (
            "an unknown group",
            json!({"group": uuid::Uuid::new_v4().to_string()}),
            &good,
        ),
    ];
    for (what, target, window) in cases {
        let r = pat.request(target, window).await;
        assert_eq!(r.status(), 422, "{what}");
        assert_eq!(error_code(r).await, "validation_failed", "{what}");
    }
    // Without an idempotency key, or with a malformed one.
    let body = json!({"target": {"group": g}, "window_start": good.start,
        "window_end": good.end, "reason": "x"});
    let r = pat.post("/api/appointments", &body).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "bad_request");
    let r = pat
        .send(
            reqwest::Method::POST,
            "/api/appointments",
            &body,
            &[("Idempotency-Key", "not a key")],
        )
        .await;
    assert_eq!(r.status(), 400);
    // A blank reason.
    let blank = json!({"target": {"group": g}, "window_start": good.start,
        "window_end": good.end, "reason": "   "});
    let r = pat
        .send(
            reqwest::Method::POST,
            "/api/appointments",
            &blank,
            &[("Idempotency-Key", "k1")],
        )
        .await;
    assert_eq!(r.status(), 422);
    assert_eq!(error_code(r).await, "validation_failed");

    let page = pat.json("/api/appointments").await;
    assert_eq!(page["appointments"], json!([]), "nothing was stored");
    assert!(
        clinic
            .stream_messages("CAREHUB_APPOINTMENTS", "carehub.events.appointment.>")
            .await
            .is_empty(),
        "no event was written"
    );

    // The same key twice is one appointment.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = pat
            .send(
                reqwest::Method::POST,
                "/api/appointments",
                &body,
                &[("Idempotency-Key", "same-key")],
            )
            .await;
        assert_eq!(r.status(), 201);
        ids.push(r.json::<Value>().await.unwrap()["id"].clone());
    }
    let (first, second) = (&ids[0], &ids[1]);
    assert_eq!(first, second, "the same key is the same appointment");
    let page = pat.json("/api/appointments").await;
    assert_eq!(page["appointments"].as_array().unwrap().len(), 1);
}

async fn only_the_people_concerned_see_an_appointment_and_only_doctors_accept(b: Backend) {
    let clinic = Clinic::start(b).await;
    let docs = doctors(&clinic, 2).await;
    let (doc, other_doc) = (&docs[0], &docs[1]);
    let pat = patient(&clinic).await;
    let other_pat = patient(&clinic).await;
    let w = window_in(2);
    let id = pat.requested(json!({"doctor": doc.id}), &w).await;
    wait_offered(doc, &id).await;
    let path = format!("/api/appointments/{id}");

    assert_eq!(pat.get(&path).await.status(), 200);
    let seen = doc.json(&path).await;
    assert_eq!(offer_status(&seen, &doc.id), ["pending"]);
    for (who, caller) in [
        ("another patient", &other_pat),
        ("another doctor", other_doc),
    ] {
        let r = caller.get(&path).await;
        assert_eq!(r.status(), 404, "{who} reads it");
        assert_eq!(error_code(r).await, "not_found");
        let r = caller
            .post(&format!("{path}/cancel"), &json!({"reason": "mine now"}))
            .await;
        assert_eq!(r.status(), 404, "{who} cancels it");
        let listed = caller.json("/api/appointments").await;
        assert_eq!(listed["appointments"], json!([]), "{who} lists it");
    }
    let r = other_doc
        .post(&format!("{path}/accept"), &json!({"start": w.start}))
        .await;
    assert_eq!(r.status(), 404, "a doctor without an offer accepts");

    let r = clinic.http.get(clinic.url(&path)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(error_code(r).await, "unauthorized");

    for action in ["accept", "decline", "complete", "no-show"] {
        let body = json!({"start": w.start, "reason": "r", "notes": "n"});
        let r = pat.post(&format!("{path}/{action}"), &body).await;
        assert_eq!(r.status(), 403, "a patient calls {action}");
        assert_eq!(error_code(r).await, "forbidden");
    }
    assert_eq!(pat.get("/api/offers").await.status(), 403);
    let r = doc
        .send(
            reqwest::Method::POST,
            "/api/appointments",
            &json!({"target": {"doctor": doc.id}, "window_start": w.start,
                "window_end": w.end, "reason": "self"}),
            &[("Idempotency-Key", "k")],
        )
        .await;
    assert_eq!(r.status(), 403, "doctors do not request appointments");
    for admin_path in ["/api/admin/groups", "/api/admin/audit"] {
        assert_eq!(pat.get(admin_path).await.status(), 403);
        assert_eq!(doc.get(admin_path).await.status(), 403);
    }

    // The untouched appointment is still the patient's and still offered.
    let mine = pat.json(&path).await;
    assert_eq!(mine["appointment"]["status"], "offered");
    let r = pat
        .post(
            &format!("{path}/cancel"),
            &json!({"reason": "feeling better"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let a: Value = r.json().await.unwrap();
    assert_eq!(a["status"], "cancelled");
    assert_eq!(a["closed_by"], pat.id.as_str());
    assert_eq!(a["close_reason"], "feeling better");
}

async fn the_database_refuses_overlapping_confirmed_appointments_of_one_doctor(b: Backend) {
    let clinic = Clinic::start(b).await;
    let db = clinic.service_db("admin").await;
    let doctor = uuid::Uuid::new_v4().to_string();
    let t0 = 4_102_444_800_000_i64; // 2100-01-01
    let min = 60_000;
    // 30 minutes, then 45 minutes starting 15 minutes in, then back to back with the first.
    let rows = [
        (t0, t0 + 30 * min),
        (t0 + 15 * min, t0 + 60 * min),
        (t0 + 30 * min, t0 + 75 * min),
    ];
    let mut results = Vec::new();
    for (start, end) in rows {
        let sql = "INSERT INTO appointments (id, patient_id, doctor_id, target_kind, status,
                window_start, window_end, start_at, end_at, reason, final_deadline, created_at,
                updated_at, version)
             VALUES ($1, $2, $3, 'doctor', 'confirmed', $4, $5, $4, $5, 'raw', $4, $4, $4, 1)";
        let id = uuid::Uuid::new_v4().to_string();
        let patient = uuid::Uuid::new_v4().to_string();
        let r = match &db {
            carehub_runtime::Db::Sqlite(p) => sqlx::query(sql)
                .bind(&id)
                .bind(&patient)
                .bind(&doctor)
                .bind(start)
                .bind(end)
                .execute(p)
                .await
                .map(|_| ()),
            carehub_runtime::Db::Postgres(p) => sqlx::query(sql)
                .bind(&id)
                .bind(&patient)
                .bind(&doctor)
                .bind(start)
                .bind(end)
                .execute(p)
                .await
                .map(|_| ()),
        };
        results.push(r);
    }
    db.close().await;
    assert!(results[0].is_ok(), "the first: {:?}", results[0]);
    assert!(
        results[1].is_err(),
        "an overlapping confirmed appointment of the same doctor is refused"
    );
    assert!(
        results[2].is_ok(),
        "back to back is not an overlap: {:?}",
        results[2]
    );
}

async fn an_admin_declining_a_request_closes_it_and_is_kept_in_the_audit_trail(b: Backend) {
    let clinic = Clinic::start(b).await;
    let admin = admin(&clinic).await;
    let docs = doctors(&clinic, 1).await;
    let pat = patient(&clinic).await;
    let id = pat
        .requested(json!({"doctor": docs[0].id}), &window_in(2))
        .await;
    wait_offered(&docs[0], &id).await;

    let path = format!("/api/admin/appointments/{id}/decline");
    let r = admin
        .post(&path, &json!({"reason": "not a case for this clinic"}))
        .await;
    assert_eq!(r.status(), 200, "decline: {}", r.text().await.unwrap());
    let a: Value = r.json().await.unwrap();
    assert_eq!(a["status"], "declined");
    assert_eq!(a["closed_by"], admin.id.as_str());
    let again = admin.post(&path, &json!({"reason": "twice"})).await;
    assert_eq!(again.status(), 409, "a closed request cannot be declined");
    assert_eq!(error_code(again).await, "conflict");
    let mine = pat.json(&format!("/api/appointments/{id}")).await;
    assert_eq!(mine["appointment"]["status"], "declined");
    assert!(!docs[0].offered().await.contains(&id), "the offer is gone");

    let audit = format!(
        "/api/admin/audit?subject_id={}&actor_id={}",
        pat.id, admin.id
    );
    let entry = wait::until("the audit entry", DEADLINE, || async {
        let page = admin.json(&audit).await;
        page["entries"]
            .as_array()?
            .iter()
            .find(|e| e["action"] == "appointment.declined")
            .cloned()
    })
    .await;
    assert_eq!(entry["actor_role"], "admin");
    assert_eq!(entry["reason"], "not a case for this clinic");
    // The entry names both people (from the account events the admin service keeps).
    let (admin_name, pat_name) = (admin.display_name().await, pat.display_name().await);
    wait::until("the audit entry with names", DEADLINE, || async {
        let page = admin.json(&audit).await;
        let e = page["entries"].as_array()?.first()?.clone();
        (e["actor_name"] == admin_name.as_str() && e["subject_name"] == pat_name.as_str())
            .then_some(())
    })
    .await;
    let page = admin
        .json(&format!("/api/admin/audit?actor_id={}", pat.id))
        .await;
    assert_eq!(
        page["entries"],
        json!([]),
        "the patient did nothing audited"
    );
    let r = admin.get("/api/admin/audit?limit=0").await;
    assert_eq!(r.status(), 422);
}

async fn appointments_name_their_patient_and_doctor_to_each_side(b: Backend) {
    let clinic = Clinic::start(b).await;
    let docs = doctors(&clinic, 1).await;
    let (pat, id, _) = crate::absence::confirmed(&clinic, &docs[0]).await;
    let (pat_name, doc_name) = (pat.display_name().await, docs[0].display_name().await);
    assert_ne!(pat_name, doc_name);
    let path = format!("/api/appointments/{id}");
    // The doctor's view names the patient: the detail and the list.
    wait::until("the doctor sees the patient's name", DEADLINE, || async {
        let a = docs[0].json(&path).await;
        (a["appointment"]["patient_name"] == pat_name.as_str()).then_some(())
    })
    .await;
    let list = docs[0].json("/api/appointments").await;
    let row = list["appointments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(row["patient_name"], pat_name.as_str(), "{row}");
    assert_eq!(row["doctor_name"], doc_name.as_str(), "{row}");
    // The patient's view names the doctor.
    let mine = pat.json(&path).await;
    assert_eq!(mine["appointment"]["doctor_name"], doc_name.as_str());
    assert_eq!(mine["appointment"]["patient_name"], pat_name.as_str());
}
