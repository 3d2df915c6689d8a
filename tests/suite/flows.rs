//! Whole flows across the services, as a patient, doctors and an admin live them: a request
//! routed to a broadcast group, confirmed by the first doctor to accept, told to the patient
//! in the app and by mail through a real SMTP server, and cancelled by the doctor.

use crate::appointments::{
    As, DEADLINE, admin, doctors, events, group, offer_status, signed_in, wait_offered, window_in,
};
use crate::both_backends;
use crate::harness::{Backend, Clinic, SmtpSink, unique_email};
use crate::support::wait;
use carehub::system::Component;
use serde_json::{Value, json};

both_backends!(
    a_broadcast_request_is_confirmed_once_and_told_to_the_patient_in_the_app_and_by_one_mail,
);

/// The patient's notifications, newest first.
async fn notifications(patient: &As<'_>) -> Vec<Value> {
    patient.json("/api/notifications").await["notifications"]
        .as_array()
        .unwrap()
        .clone()
}

async fn unread(patient: &As<'_>) -> i64 {
    patient.json("/api/notifications/unread-count").await["unread"]
        .as_i64()
        .unwrap()
}

/// Mails at the sink addressed to `to` whose subject is `subject`.
fn mails_to(sink: &SmtpSink, to: &str, subject: &str) -> Vec<String> {
    sink.mails()
        .into_iter()
        .filter(|m| m.contains(&format!("To: {to}")) && m.contains(&format!("Subject: {subject}")))
        .collect()
}

/// Mail the notify service still has to deliver.
async fn mail_backlog(clinic: &Clinic) -> i64 {
    let db = carehub::provision::notify_db(&clinic.env(&[]))
        .await
        .unwrap();
    let n = carehub_notify::store::mail_backlog(&db).await.unwrap();
    db.close().await;
    n
}

async fn a_broadcast_request_is_confirmed_once_and_told_to_the_patient_in_the_app_and_by_one_mail(
    b: Backend,
) {
    let sink = SmtpSink::start(0).await;
    let smtp = sink.url();
    let clinic = Clinic::start_with(
        b,
        &[
            ("CAREHUB_SMTP_URL", smtp.as_str()),
            ("CAREHUB_MAIL_RETRY_BASE", "0.2"),
        ],
        &Component::ALL,
    )
    .await;
    let admin = admin(&clinic).await;
    let docs = doctors(&clinic, 3).await;
    let g = group(&admin, "broadcast", 3600, &[&docs[0], &docs[1], &docs[2]]).await;
    let email = unique_email("flow");
    let session = clinic.patient(&email).await;
    let pat = signed_in(&clinic, &session).await;

    let w = window_in(2);
    let id = pat.requested(json!({"group": g}), &w).await;
    for d in &docs {
        wait_offered(d, &id).await;
        let listed = d.json("/api/offers").await;
        let mine: Vec<&Value> = listed["offers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["appointment"]["id"] == id.as_str())
            .collect();
        assert_eq!(mine.len(), 1, "each doctor sees the offer once");
        assert_eq!(mine[0]["offer"]["status"], "pending");
        assert_eq!(mine[0]["appointment"]["patient_id"], pat.id.as_str());
    }
    // The request itself is told to the patient; read it, so what follows is the confirmation.
    wait::until("the request's notification", DEADLINE, || async {
        notifications(&pat)
            .await
            .iter()
            .any(|n| n["kind"] == "appointment_requested")
            .then_some(())
    })
    .await;
    let r = pat.post("/api/notifications/read-all", &json!({})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(unread(&pat).await, 0);

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
    let (start, end) = (a["start"].as_str().unwrap(), a["end"].as_str().unwrap());
    assert!(
        w.start.as_str() <= start && end <= w.end.as_str() && start < end,
        "the time {start}..{end} lies inside the window {}..{}",
        w.start,
        w.end
    );

    let detail = admin.json(&format!("/api/appointments/{id}")).await;
    assert_eq!(offer_status(&detail, &docs[0].id), ["accepted"]);
    assert_eq!(offer_status(&detail, &docs[1].id), ["withdrawn"]);
    assert_eq!(offer_status(&detail, &docs[2].id), ["withdrawn"]);
    for d in &docs[1..] {
        assert!(
            !d.offered().await.contains(&id),
            "withdrawn offers leave the list"
        );
    }

    // In the app: the confirmation, unread, and nothing else new.
    let confirmation = wait::until("the confirmation in the app", DEADLINE, || async {
        notifications(&pat)
            .await
            .into_iter()
            .find(|n| n["kind"] == "appointment_confirmed")
    })
    .await;
    assert_eq!(confirmation["appointment_id"], id.as_str());
    assert!(confirmation["read_at"].is_null());
    assert_eq!(unread(&pat).await, 1);

    // By mail: exactly one confirmation reaches the SMTP server, once the outbox is empty.
    wait::until(
        "the confirmation mail at the SMTP server",
        DEADLINE,
        || async {
            (!mails_to(&sink, &email, "carehub: Appointment confirmed").is_empty()).then_some(())
        },
    )
    .await;
    wait::until("the mail outbox to empty", DEADLINE, || async {
        (mail_backlog(&clinic).await == 0).then_some(())
    })
    .await;
    let mails = mails_to(&sink, &email, "carehub: Appointment confirmed");
    assert_eq!(mails.len(), 1, "exactly one confirmation mail: {mails:?}");

    // The stream: exactly one confirmed event, for this appointment and this doctor.
    wait::until("the confirmed event", DEADLINE, || async {
        (!events(&clinic, "confirmed", &id).await.is_empty()).then_some(())
    })
    .await;
    let all_confirmed = clinic
        .stream_messages(
            "CAREHUB_APPOINTMENTS",
            "carehub.events.appointment.confirmed",
        )
        .await;
    assert_eq!(all_confirmed.len(), 1, "exactly one confirmed event");
    assert_eq!(all_confirmed[0]["appointment"]["id"], id.as_str());
    assert_eq!(
        all_confirmed[0]["appointment"]["doctor_id"],
        docs[0].id.as_str()
    );

    // The doctor cancels: the patient reads who did it and why.
    let reason = "called away to an emergency";
    let r = docs[0]
        .post(
            &format!("/api/appointments/{id}/cancel"),
            &json!({"reason": reason}),
        )
        .await;
    assert_eq!(r.status(), 200, "cancel: {}", r.text().await.unwrap());
    let cancelled: Value = r.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["closed_by"], docs[0].id.as_str());
    let notice = wait::until("the cancellation in the app", DEADLINE, || async {
        notifications(&pat)
            .await
            .into_iter()
            .find(|n| n["kind"] == "appointment_cancelled")
    })
    .await;
    let body = notice["body"].as_str().unwrap();
    assert!(
        body.contains(&format!("cancelled by Dr. Test Person: {reason}")),
        "{body}"
    );
    assert_eq!(unread(&pat).await, 2);
    assert_eq!(events(&clinic, "cancelled", &id).await.len(), 1);
}
