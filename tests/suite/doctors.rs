//! Doctors: approval through the account stream, the directory, availability with DST-correct
//! free slots, validation, optimistic concurrency, ownership, and one event per change.

use crate::both_backends;
use crate::harness::{Backend, Clinic, PASSWORD, error_code, token, unique_email};
use crate::support::wait;
use carehub_nats::Role;
use chrono::Datelike as _;
use serde_json::{Value, json};
use std::time::Duration;

both_backends!(
    an_approved_doctor_is_listed_and_offers_slots_that_respect_daylight_saving,
    the_me_routes_only_ever_touch_the_caller_and_patients_cannot_write,
);

const DEADLINE: Duration = Duration::from_secs(20);

/// A small client for one signed-in person.
struct As<'a> {
    clinic: &'a Clinic,
    token: String,
}

impl As<'_> {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.clinic
            .http
            .get(self.clinic.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }
    async fn send(&self, method: reqwest::Method, path: &str, body: &Value) -> reqwest::Response {
        self.clinic
            .http
            .request(method, self.clinic.url(path))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap()
    }
    async fn json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }
    async fn delete(&self, path: &str) -> reqwest::Response {
        self.clinic
            .http
            .delete(self.clinic.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }
}

async fn signed_in<'a>(clinic: &'a Clinic, email: &str) -> As<'a> {
    As {
        clinic,
        token: token(&clinic.login(email, PASSWORD).await),
    }
}

/// Waits until the doctor service knows the caller (the account event went through the stream).
async fn profile_of(doctor: &As<'_>) -> Value {
    wait::until("the doctor profile exists", DEADLINE, || async {
        let r = doctor.get("/api/doctors/me/profile").await;
        if r.status() == 200 {
            r.json::<Value>().await.ok()
        } else {
            None
        }
    })
    .await
}

/// The last Sunday of `month` in `year`: the day Europe's clocks change in March and October.
fn last_sunday(year: i32, month: u32) -> chrono::NaiveDate {
    let first_of_next = chrono::NaiveDate::from_ymd_opt(year, month + 1, 1).unwrap();
    let last = first_of_next.pred_opt().unwrap();
    let back = last.weekday().num_days_from_sunday();
    last - chrono::Duration::days(i64::from(back))
}

fn starts(slots: &Value) -> Vec<String> {
    slots["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["start"].as_str().unwrap().to_owned())
        .collect()
}

fn listed(page: &Value, id: &str) -> bool {
    page["doctors"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["id"] == id)
}

async fn an_approved_doctor_is_listed_and_offers_slots_that_respect_daylight_saving(b: Backend) {
    let clinic = Clinic::start(b).await;
    let admin = clinic
        .create_user(Role::Admin, &unique_email("admin"))
        .await;
    let admin = signed_in(&clinic, admin["email"].as_str().unwrap()).await;
    let patient = As {
        clinic: &clinic,
        token: token(&clinic.patient(&unique_email("pat")).await),
    };
    let email = unique_email("doc");
    let name = format!(
        "Dr. Zed {}",
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    let r = clinic
        .http
        .post(clinic.url("/api/auth/register"))
        .json(
            &json!({"email": email, "password": PASSWORD, "display_name": name, "role": "doctor"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let pending = signed_in(&clinic, &email).await;
    let profile = profile_of(&pending).await;
    let id = profile["id"].as_str().unwrap().to_owned();
    assert_eq!(profile["approved"], false);
    assert_eq!(profile["display_name"], name.as_str());

    // Pending: not listed, not visible, cannot edit.
    assert!(!listed(&patient.json("/api/doctors?limit=100").await, &id));
    assert_eq!(
        patient.get(&format!("/api/doctors/{id}")).await.status(),
        404
    );
    let r = pending
        .send(
            reqwest::Method::PUT,
            "/api/doctors/me/profile",
            &json!({"specialties": ["cardiology"]}),
        )
        .await;
    assert_eq!(r.status(), 403);

    let r = admin
        .send(
            reqwest::Method::POST,
            &format!("/api/admin/users/{id}/approve"),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    wait::until("the approved doctor is listed", DEADLINE, || async {
        listed(&patient.json("/api/doctors?limit=100").await, &id).then_some(())
    })
    .await;

    // A fresh sign-in carries the active status.
    let doctor = signed_in(&clinic, &email).await;
    let r = doctor
        .send(
            reqwest::Method::PUT,
            "/api/doctors/me/profile",
            &json!({"specialties": ["Cardiology", "Family Medicine"], "bio": "Hearts."}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["specialties"], json!(["cardiology", "family-medicine"]));
    assert!(listed(
        &patient
            .json("/api/doctors?specialty=cardiology&limit=100")
            .await,
        &id
    ));
    assert!(listed(
        &patient
            .json("/api/doctors?specialty=Family%20Medicine&limit=100")
            .await,
        &id
    ));
    assert!(!listed(
        &patient
            .json("/api/doctors?specialty=dermatology&limit=100")
            .await,
        &id
    ));
    let part = name[4..].to_lowercase();
    assert!(listed(
        &patient
            .json(&format!("/api/doctors?q={}", part.replace(' ', "%20")))
            .await,
        &id
    ));
    let public = patient.json(&format!("/api/doctors/{id}")).await;
    assert_eq!(public["bio"], "Hearts.");
    assert_eq!(public["languages"], json!([]), "none until the doctor says");

    // Languages: ISO 639-1 codes, searchable; a profile save without them keeps them.
    let profile = |body: Value| {
        let doctor = &doctor;
        async move {
            doctor
                .send(reqwest::Method::PUT, "/api/doctors/me/profile", &body)
                .await
        }
    };
    let r = profile(
        json!({"specialties": ["cardiology"], "bio": "Hearts.", "languages": ["de", "en", "de"]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["languages"],
        json!(["de", "en"])
    );
    let r = profile(json!({"specialties": ["cardiology"], "bio": "Hearts, again."})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["languages"],
        json!(["de", "en"])
    );
    for bad in [
        json!(["deu"]),
        json!(["DE"]),
        json!(["xx"]),
        json!([""]),
        json!([
            "aa", "ab", "af", "ak", "am", "an", "ar", "as", "av", "ay", "az"
        ]),
    ] {
        let r = profile(json!({"specialties": ["cardiology"], "languages": bad})).await;
        assert_eq!(r.status(), 422, "{bad}");
        assert_eq!(error_code(r).await, "validation_failed");
    }
    let public = patient.json(&format!("/api/doctors/{id}")).await;
    assert_eq!(
        public["languages"],
        json!(["de", "en"]),
        "the refused saves changed nothing"
    );
    assert_eq!(public["bio"], "Hearts, again.");
    let by_language = patient.json("/api/doctors?language=de&limit=100").await;
    assert!(listed(&by_language, &id));
    let entry = by_language["doctors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(entry["languages"], json!(["de", "en"]));
    assert!(!listed(
        &patient.json("/api/doctors?language=fr&limit=100").await,
        &id
    ));
    for bad in ["xx", "", "%20de", "DE"] {
        let r = patient.get(&format!("/api/doctors?language={bad}")).await;
        assert_eq!(r.status(), 422, "language={bad}");
        assert_eq!(error_code(r).await, "validation_failed");
    }

    // Berlin working hours 01:00–04:00, across both daylight-saving changes of next year (the
    // last Sundays of March and October; slots that have started are never listed).
    let year = chrono::Utc::now().year() + 1;
    let (spring_day, autumn_day) = (last_sunday(year, 3), last_sunday(year, 10));
    let at = |d: chrono::NaiveDate, hms: &str| format!("{d}T{hms}Z");
    let day_before = |d: chrono::NaiveDate| d.pred_opt().unwrap();
    let v = doctor.json("/api/doctors/me/availability").await["version"]
        .as_i64()
        .unwrap();
    let night = json!({"expected_version": v, "time_zone": "Europe/Berlin",
        "weekly": crate::harness::every_day("01:00", "04:00"), "slot_minutes": 30, "auto_accept": false});
    let r = doctor
        .send(reqwest::Method::PUT, "/api/doctors/me/availability", &night)
        .await;
    assert_eq!(r.status(), 200);
    let after: Value = r.json().await.unwrap();
    assert_eq!(after["version"], v + 1);
    let v = v + 1;

    let spring = format!(
        "/api/doctors/{id}/slots?from={}&to={}",
        at(day_before(spring_day), "23:00:00"),
        at(spring_day, "22:00:00")
    );
    let slots = patient.json(&spring).await;
    assert_eq!(slots["time_zone"], "Europe/Berlin");
    assert_eq!(
        starts(&slots),
        ["00:00:00", "00:30:00", "01:00:00", "01:30:00"].map(|t| at(spring_day, t)),
        "two hours: 01:00-02:00 CET and 03:00-04:00 CEST"
    );
    let autumn = patient
        .json(&format!(
            "/api/doctors/{id}/slots?from={}&to={}",
            at(day_before(autumn_day), "22:00:00"),
            at(autumn_day, "23:00:00")
        ))
        .await;
    let s = starts(&autumn);
    assert_eq!(s.len(), 8, "four hours: {s:?}");
    assert_eq!(s[0], at(day_before(autumn_day), "23:00:00"));
    assert_eq!(s[7], at(autumn_day, "02:30:00"));

    // Bad input: 422 with a stable code, and nothing changes.
    let mut unknown_zone = night.clone();
    unknown_zone["expected_version"] = json!(v);
    unknown_zone["time_zone"] = json!("Mars/Olympus_Mons");
    let mut backwards = night.clone();
    backwards["expected_version"] = json!(v);
    backwards["weekly"] = json!([{"weekday": "monday", "start": "10:00", "end": "09:00"}]);
    for bad in [&unknown_zone, &backwards] {
        let r = doctor
            .send(reqwest::Method::PUT, "/api/doctors/me/availability", bad)
            .await;
        assert_eq!(r.status(), 422);
        assert_eq!(error_code(r).await, "validation_failed");
    }
    for window in [
        "from=2026-01-01T00:00:00Z&to=2026-06-01T00:00:00Z",
        "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
        "from=yesterday&to=2026-01-01T00:00:00Z",
    ] {
        let r = patient
            .get(&format!("/api/doctors/{id}/slots?{window}"))
            .await;
        assert_eq!(r.status(), 422, "{window}");
        assert_eq!(error_code(r).await, "validation_failed");
    }
    let now = doctor.json("/api/doctors/me/availability").await;
    assert_eq!(now["version"], v);
    assert_eq!(now["time_zone"], "Europe/Berlin");

    // A stale version loses.
    let mut stale = night.clone();
    stale["expected_version"] = json!(v - 1);
    stale["slot_minutes"] = json!(60);
    let r = doctor
        .send(reqwest::Method::PUT, "/api/doctors/me/availability", &stale)
        .await;
    assert_eq!(r.status(), 409);
    assert_eq!(error_code(r).await, "conflict");

    // Time off removes slots until it is removed.
    let r = doctor
        .send(
            reqwest::Method::POST,
            "/api/doctors/me/time-off",
            &json!({"start": at(spring_day, "00:00:00"), "end": at(spring_day, "01:00:00"), "reason": "conference"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let added: Value = r.json().await.unwrap();
    assert_eq!(added["version"], v + 1);
    let off_id = added["time_off"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        starts(&patient.json(&spring).await),
        [at(spring_day, "01:00:00"), at(spring_day, "01:30:00")]
    );
    let r = doctor
        .delete(&format!("/api/doctors/me/time-off/{off_id}"))
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(starts(&patient.json(&spring).await).len(), 4);

    // One event per change, versions 1 (profile created) to 8, in order; the refused saves
    // wrote none.
    let expected: Vec<i64> = (1..=8).collect();
    let versions = wait::until("every doctor event is in the stream", DEADLINE, || async {
        let versions: Vec<i64> = clinic
            .stream_messages("CAREHUB_DOCTORS", "carehub.events.doctor.>")
            .await
            .iter()
            .filter(|e| e["doctor"]["id"] == id.as_str())
            .map(|e| e["doctor"]["version"].as_i64().unwrap())
            .collect();
        (versions.last() == Some(&8)).then_some(versions)
    })
    .await;
    assert_eq!(versions, expected);
    let events = clinic
        .stream_messages("CAREHUB_DOCTORS", "carehub.events.doctor.>")
        .await;
    let last = events
        .iter()
        .rfind(|e| e["doctor"]["id"] == id.as_str())
        .unwrap();
    assert_eq!(last["kind"], "availability_changed");
    assert_eq!(last["doctor"]["approved"], true);
    assert_eq!(last["doctor"]["time_zone"], "Europe/Berlin");
}

async fn the_me_routes_only_ever_touch_the_caller_and_patients_cannot_write(b: Backend) {
    let clinic = Clinic::start(b).await;
    let a = clinic
        .create_user(Role::Doctor, &unique_email("doc-a"))
        .await;
    let other = clinic
        .create_user(Role::Doctor, &unique_email("doc-b"))
        .await;
    let a = signed_in(&clinic, a["email"].as_str().unwrap()).await;
    let other = signed_in(&clinic, other["email"].as_str().unwrap()).await;
    let patient = As {
        clinic: &clinic,
        token: token(&clinic.patient(&unique_email("pat")).await),
    };
    profile_of(&a).await;
    profile_of(&other).await;

    let r = a
        .send(
            reqwest::Method::POST,
            "/api/doctors/me/time-off",
            &json!({"start": "2030-05-01T00:00:00Z", "end": "2030-05-02T00:00:00Z"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let off_id = r.json::<Value>().await.unwrap()["time_off"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = a.json("/api/doctors/me/availability").await;

    // Patients cannot use the doctor routes at all.
    let body = json!({"expected_version": before["version"], "time_zone": "Asia/Tokyo",
        "weekly": crate::harness::every_day("09:00", "12:00"), "slot_minutes": 15});
    let r = patient
        .send(reqwest::Method::PUT, "/api/doctors/me/availability", &body)
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(r).await, "forbidden");
    assert_eq!(patient.get("/api/doctors/me/profile").await.status(), 403);
    assert_eq!(
        patient
            .delete(&format!("/api/doctors/me/time-off/{off_id}"))
            .await
            .status(),
        403
    );

    // Another doctor's writes land on their own record only, even with this doctor's version.
    let r = other
        .send(reqwest::Method::PUT, "/api/doctors/me/availability", &body)
        .await;
    assert!(matches!(r.status().as_u16(), 200 | 409), "{}", r.status());
    let r = other
        .delete(&format!("/api/doctors/me/time-off/{off_id}"))
        .await;
    assert_eq!(r.status(), 404);
    let after = a.json("/api/doctors/me/availability").await;
    assert_eq!(after, before);
    assert_eq!(after["time_off"].as_array().unwrap().len(), 1);
}
