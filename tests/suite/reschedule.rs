//! Moving a confirmed appointment: the old time holds until the other side accepts, then the
//! times swap in one step (the database's overlap guard applies to the new time).

use crate::absence::confirmed;
use crate::appointments::{As, DEADLINE, doctors, events, wait_offered, window_in};
use crate::both_backends;
use crate::harness::{Backend, Clinic, error_code};
use crate::support::wait;
use serde_json::{Value, json};

both_backends!(
    a_patients_move_keeps_the_old_time_until_the_doctor_accepts_a_time_in_the_new_window,
    a_doctor_declining_a_move_keeps_the_old_time,
    a_proposed_time_must_be_free_and_swaps_in_when_the_patient_accepts_unless_taken_meanwhile,
);

async fn detail(who: &As<'_>, id: &str) -> Value {
    who.json(&format!("/api/appointments/{id}")).await["appointment"].clone()
}

async fn one_event(clinic: &Clinic, kind: &str, id: &str) -> Value {
    let e = wait::until(kind, DEADLINE, || async {
        let e = events(clinic, kind, id).await;
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert_eq!(e.len(), 1, "exactly one {kind} event");
    e[0].clone()
}

async fn a_patients_move_keeps_the_old_time_until_the_doctor_accepts_a_time_in_the_new_window(
    b: Backend,
) {
    let clinic = Clinic::start(b).await;
    let docs = doctors(&clinic, 1).await;
    let (pat, id, old_start) = confirmed(&clinic, &docs[0]).await;
    let w = window_in(6);
    let r = pat
        .post(
            &format!("/api/appointments/{id}/reschedule"),
            &json!({"window_start": w.start, "window_end": w.end}),
        )
        .await;
    assert_eq!(r.status(), 200, "reschedule: {}", r.text().await.unwrap());
    let a = detail(&pat, &id).await;
    assert_eq!(a["status"], "confirmed");
    assert_eq!(a["start"], old_start.as_str(), "the old time holds");
    assert_eq!(a["pending_change"]["by"], "patient");
    let again = pat
        .post(
            &format!("/api/appointments/{id}/reschedule"),
            &json!({"window_start": w.start, "window_end": w.end}),
        )
        .await;
    assert_eq!(again.status(), 409, "one move at a time");
    one_event(&clinic, "change_requested", &id).await;
    assert!(
        docs[0].offered().await.contains(&id),
        "the doctor has the move as an offer"
    );

    let outside = docs[0]
        .post(
            &format!("/api/appointments/{id}/accept"),
            &json!({"start": old_start}),
        )
        .await;
    assert_eq!(
        outside.status(),
        422,
        "the new time must lie in the new window"
    );
    let r = docs[0]
        .post(
            &format!("/api/appointments/{id}/accept"),
            &json!({"start": w.start}),
        )
        .await;
    assert_eq!(
        r.status(),
        200,
        "accept the move: {}",
        r.text().await.unwrap()
    );
    let a = detail(&pat, &id).await;
    assert_eq!(a["start"], w.start.as_str());
    assert!(a["pending_change"].is_null());
    let e = one_event(&clinic, "rescheduled", &id).await;
    assert!(e["notify"].as_array().unwrap().contains(&json!(pat.id)));
}

async fn a_doctor_declining_a_move_keeps_the_old_time(b: Backend) {
    let clinic = Clinic::start(b).await;
    let docs = doctors(&clinic, 1).await;
    let (pat, id, old_start) = confirmed(&clinic, &docs[0]).await;
    let w = window_in(6);
    let r = pat
        .post(
            &format!("/api/appointments/{id}/reschedule"),
            &json!({"window_start": w.start, "window_end": w.end}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = docs[0]
        .post(
            &format!("/api/appointments/{id}/decline"),
            &json!({"reason": "away that week"}),
        )
        .await;
    assert_eq!(
        r.status(),
        200,
        "decline the move: {}",
        r.text().await.unwrap()
    );
    let a = detail(&pat, &id).await;
    assert_eq!(a["status"], "confirmed");
    assert_eq!(a["start"], old_start.as_str());
    assert!(a["pending_change"].is_null());
    let e = one_event(&clinic, "change_declined", &id).await;
    assert_eq!(e["reason"], "away that week");
    assert!(events(&clinic, "rescheduled", &id).await.is_empty());
}

async fn a_proposed_time_must_be_free_and_swaps_in_when_the_patient_accepts_unless_taken_meanwhile(
    b: Backend,
) {
    let clinic = Clinic::start(b).await;
    let docs = doctors(&clinic, 2).await;
    let (pat, id, _) = confirmed(&clinic, &docs[0]).await;
    let new_start = window_in(6).start;
    let r = docs[0]
        .post(
            &format!("/api/appointments/{id}/propose"),
            &json!({"start": new_start}),
        )
        .await;
    assert_eq!(r.status(), 200, "propose: {}", r.text().await.unwrap());
    assert_eq!(detail(&pat, &id).await["pending_change"]["by"], "doctor");
    let r = pat
        .post(
            &format!("/api/appointments/{id}/proposal"),
            &json!({"accept": true}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(detail(&pat, &id).await["start"], new_start.as_str());
    one_event(&clinic, "rescheduled", &id).await;

    // A second appointment of the same doctor. The first one's time is taken, so proposing it
    // is refused and nothing is pending.
    let (pat2, id2, start2) = confirmed(&clinic, &docs[0]).await;
    let r = docs[0]
        .post(
            &format!("/api/appointments/{id2}/propose"),
            &json!({"start": new_start}),
        )
        .await;
    assert_eq!(r.status(), 409, "propose a taken time");
    assert_eq!(error_code(r).await, "slot_taken");
    assert!(detail(&pat2, &id2).await["pending_change"].is_null());

    // A free time is proposed; meanwhile the patient confirms another doctor at that time, so
    // accepting is refused and the old time stays.
    let later = window_in(7);
    let r = docs[0]
        .post(
            &format!("/api/appointments/{id2}/propose"),
            &json!({"start": later.start}),
        )
        .await;
    assert_eq!(r.status(), 200, "propose: {}", r.text().await.unwrap());
    let other = pat2.requested(json!({"doctor": docs[1].id}), &later).await;
    wait_offered(&docs[1], &other).await;
    let r = docs[1]
        .post(
            &format!("/api/appointments/{other}/accept"),
            &json!({"start": later.start}),
        )
        .await;
    assert_eq!(r.status(), 200, "accept: {}", r.text().await.unwrap());
    let r = pat2
        .post(
            &format!("/api/appointments/{id2}/proposal"),
            &json!({"accept": true}),
        )
        .await;
    assert_eq!(r.status(), 409);
    assert_eq!(error_code(r).await, "patient_busy");
    let a = detail(&pat2, &id2).await;
    assert_eq!(a["start"], start2.as_str(), "the old time stays");
    let r = pat2
        .post(
            &format!("/api/appointments/{id2}/proposal"),
            &json!({"accept": false}),
        )
        .await;
    assert_eq!(r.status(), 200, "declining the proposal clears it");
    assert!(detail(&pat2, &id2).await["pending_change"].is_null());
}
