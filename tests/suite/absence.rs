//! A doctor's absence over confirmed appointments: time off and disabling the account answer
//! 409 listing the appointments, unless forced, which cancels them and tells the patients.

use crate::appointments::{As, DEADLINE, admin, doctors, events, patient, wait_offered, window_in};
use crate::both_backends;
use crate::harness::{Backend, Clinic, error_code};
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
    let r = docs[0].post("/api/doctors/me/time-off", &body).await;
    assert_eq!(r.status(), 409);
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["error"]["code"], "conflict");
    assert!(
        err["error"]["message"].as_str().unwrap().contains(&id),
        "the 409 lists the appointment: {err}"
    );
    assert_eq!(status_of(&pat, &id).await, "confirmed", "nothing changed");

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
    let path = format!("/api/admin/users/{}/disable", docs[0].id);
    let r = admin
        .post(&path, &json!({"reason": "left the clinic"}))
        .await;
    assert_eq!(r.status(), 409);
    assert_eq!(error_code(r).await, "conflict");
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
