//! A doctor's absence over confirmed appointments: time off and disabling the account answer
//! 409 `appointments_affected` listing the appointments as data, unless forced, which cancels
//! them and tells the patients.

use crate::appointments::{As, DEADLINE, admin, doctors, events, patient, wait_offered, window_in};
use crate::both_backends;
use crate::harness::{Backend, Clinic};
use crate::support::wait;
use serde_json::{Value, json};

both_backends!(
    time_off_over_a_confirmed_appointment_is_refused_listing_it_unless_forced_which_cancels_it,
    disabling_a_doctor_with_confirmed_appointments_is_refused_unless_forced_which_cancels_them,
);

/// A confirmed appointment between a new patient and `doctor`; returns (patient, id, start).
pub(crate) async fn confirmed<'a>(clinic: &'a Clinic, doctor: &As<'_>) -> (As<'a>, String, String) {
    let pat = patient(clinic).await;
    let w = window_in(3);
    let id = pat.requested(json!({"doctor": doctor.id}), &w).await;
    wait_offered(doctor, &id).await;
    let r = doctor
        .post(
            &format!("/api/appointments/{id}/accept"),
            &json!({"start": w.start}),
        )
        .await;
    assert_eq!(r.status(), 200, "accept: {}", r.text().await.unwrap());
    (pat, id, w.start)
}

/// Asserts `err` is the `appointments_affected` body listing exactly appointment `id` of `pat`,
/// with its times, the patient's name and its status, as the patient's own view has them.
async fn assert_lists_only(err: &Value, pat: &As<'_>, id: &str) {
    assert_eq!(err["error"]["code"], "appointments_affected", "{err}");
    assert!(err["error"]["request_id"].is_string(), "{err}");
    let listed = err["error"]["details"]["appointments"]
        .as_array()
        .unwrap_or_else(|| panic!("details.appointments in {err}"));
    assert_eq!(listed.len(), 1, "{err}");
    let a = &listed[0];
    let stored = &pat.json(&format!("/api/appointments/{id}")).await["appointment"];
    assert_eq!(a["id"], id);
    assert_eq!(a["patient_id"], pat.id.as_str());
    assert_eq!(a["patient_name"], pat.display_name().await.as_str());
    assert_eq!(a["start"], stored["start"], "{err}");
    assert_eq!(a["end"], stored["end"], "{err}");
    assert_eq!(a["status"], "confirmed");
}

/// Waits until the admin service knows `pat`'s name (it learns names from account events), so
/// the listed appointment can carry it.
async fn wait_named(doctor: &As<'_>, pat: &As<'_>, id: &str) {
    let name = pat.display_name().await;
    let path = format!("/api/appointments/{id}");
    wait::until("the appointment names its patient", DEADLINE, || async {
        let a = doctor.json(&path).await;
        (a["appointment"]["patient_name"] == name.as_str()).then_some(())
    })
    .await;
}

pub(crate) async fn status_of(who: &As<'_>, id: &str) -> String {
    who.json(&format!("/api/appointments/{id}")).await["appointment"]["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn time_off_over_a_confirmed_appointment_is_refused_listing_it_unless_forced_which_cancels_it(
    b: Backend,
) {
    let clinic = Clinic::start(b).await;
    let docs = doctors(&clinic, 1).await;
    let (pat, id, start) = confirmed(&clinic, &docs[0]).await;
    let day = &start[..10];
    let body = json!({"start": format!("{day}T00:00:00Z"), "end": format!("{day}T23:59:00Z"), "reason": "conference"});
    wait_named(&docs[0], &pat, &id).await;
    let r = docs[0].post("/api/doctors/me/time-off", &body).await;
    assert_eq!(r.status(), 409);
    let err: Value = r.json().await.unwrap();
    assert_lists_only(&err, &pat, &id).await;
    assert!(
        err["error"]["message"].as_str().unwrap().contains(&id),
        "the message names it too: {err}"
    );
    assert_eq!(status_of(&pat, &id).await, "confirmed", "nothing changed");
    let view = docs[0].json("/api/doctors/me/availability").await;
    assert_eq!(view["time_off"], json!([]), "nothing added");

    // Other 409s of the operation keep `conflict` and carry no details.
    let elsewhere = json!({"start": "2030-01-01T00:00:00Z", "end": "2030-01-02T00:00:00Z",
        "reason": "x", "expected_version": view["version"].as_i64().unwrap() + 7});
    let r = docs[0].post("/api/doctors/me/time-off", &elsewhere).await;
    assert_eq!(r.status(), 409);
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["error"]["code"], "conflict", "{err}");
    assert!(err["error"].get("details").is_none(), "{err}");

    let mut forced = body.clone();
    forced["force"] = json!(true);
    let r = docs[0].post("/api/doctors/me/time-off", &forced).await;
    assert_eq!(r.status(), 201, "forced: {}", r.text().await.unwrap());
    assert_eq!(status_of(&pat, &id).await, "cancelled");
    let cancelled = wait::until("the cancellation event", DEADLINE, || async {
        let e = events(&clinic, "cancelled", &id).await;
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0]["reason"], "conference");
    assert_eq!(cancelled[0]["actor"]["user_id"], docs[0].id.as_str());
    assert!(
        cancelled[0]["notify"]
            .as_array()
            .unwrap()
            .contains(&json!(pat.id)),
        "the patient is told"
    );
}

async fn disabling_a_doctor_with_confirmed_appointments_is_refused_unless_forced_which_cancels_them(
    b: Backend,
) {
    let clinic = Clinic::start(b).await;
    let admin = admin(&clinic).await;
    let docs = doctors(&clinic, 1).await;
    let (pat, id, _) = confirmed(&clinic, &docs[0]).await;
    wait_named(&docs[0], &pat, &id).await;
    let path = format!("/api/admin/users/{}/disable", docs[0].id);
    let r = admin
        .post(&path, &json!({"reason": "left the clinic"}))
        .await;
    assert_eq!(r.status(), 409);
    // The same body as for time off: the list as data.
    assert_lists_only(&r.json().await.unwrap(), &pat, &id).await;
    assert_eq!(status_of(&pat, &id).await, "confirmed");
    let r = admin
        .post(&path, &json!({"reason": "left the clinic", "force": true}))
        .await;
    assert_eq!(r.status(), 200, "forced: {}", r.text().await.unwrap());
    assert_eq!(status_of(&pat, &id).await, "cancelled");
    let cancelled = wait::until("the cancellation event", DEADLINE, || async {
        let e = events(&clinic, "cancelled", &id).await;
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert!(
        cancelled[0]["reason"]
            .as_str()
            .unwrap()
            .contains("left the clinic")
    );
    assert_eq!(cancelled[0]["actor"]["user_id"], admin.id.as_str());
}
