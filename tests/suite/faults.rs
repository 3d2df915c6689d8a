//! Crashes at the worst moments of the outbox (the `fault-injection` feature): after the
//! transaction committed but before the event was published, and after it was published but
//! before the outbox row was deleted. Either way, after a restart there is exactly one event in
//! the stream, one notification and one mail (delivered by a real SMTP server that refuses the
//! first attempt).

use crate::appointments::{DEADLINE, doctors, patient, window_in};
use crate::both_backends;
use crate::harness::{Backend, Clinic, SmtpSink};
use crate::support::wait;
use carehub::system::Component;
use serde_json::{Value, json};

both_backends!(
    a_crash_after_commit_before_publish_still_gives_one_event_one_notification_and_one_mail,
    a_crash_after_publish_before_cleanup_still_gives_one_event_one_notification_and_one_mail,
);

async fn a_crash_after_commit_before_publish_still_gives_one_event_one_notification_and_one_mail(
    b: Backend,
) {
    crash_then_recover(b, "outbox_before_publish").await;
}

async fn a_crash_after_publish_before_cleanup_still_gives_one_event_one_notification_and_one_mail(
    b: Backend,
) {
    crash_then_recover(b, "outbox_after_publish").await;
}

async fn crash_then_recover(b: Backend, point: &str) {
    let sink = SmtpSink::start(1).await;
    let url = sink.url();
    let components: Vec<Component> = Component::ALL
        .iter()
        .copied()
        .filter(|c| *c != Component::Admin)
        .collect();
    let clinic = Clinic::start_with(
        b,
        &[("CAREHUB_SMTP_URL", &url), ("CAREHUB_ADMIN_LEASE", "5")],
        &components,
    )
    .await;
    let setup = clinic.spawn_child("admin", &[]);
    clinic
        .wait_status(&clinic.base, "/readyz", None, 200, "ready")
        .await;
    let docs = doctors(&clinic, 1).await;
    let pat = patient(&clinic).await;
    clinic.kill_child(setup);

    let faulty = clinic.spawn_child("admin", &[("CAREHUB_FAULT", point)]);
    clinic
        .wait_status(
            &clinic.base,
            "/readyz",
            None,
            200,
            "the faulty instance is up",
        )
        .await;
    // The answer may or may not make it out before the crash; the request is committed either way.
    let _ = pat
        .request(json!({"doctor": docs[0].id}), &window_in(3))
        .await;
    wait::until(
        "the admin service crashed at the fault point",
        DEADLINE,
        || async { clinic.child_exited(faulty).then_some(()) },
    )
    .await;

    clinic.spawn_child("admin", &[]);
    let requested = wait::until("the request's event in the stream", DEADLINE, || async {
        let e = clinic
            .stream_messages(
                "CAREHUB_APPOINTMENTS",
                "carehub.events.appointment.requested",
            )
            .await;
        let mine: Vec<Value> = e
            .into_iter()
            .filter(|e| e["appointment"]["patient_id"] == pat.id.as_str())
            .collect();
        (!mine.is_empty()).then_some(mine)
    })
    .await;
    let id = requested[0]["appointment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The router moves on after the restart: once the offer is out, the requested event
    // has long been relayed (and deduplicated, for the second fault point).
    wait::until("the offer to the doctor", DEADLINE, || async {
        // The admin service may still be starting (503) on the first polls.
        let r = docs[0].get("/api/offers").await;
        let offers: Value = if r.status() == 200 {
            r.json().await.ok()?
        } else {
            return None;
        };
        offers["offers"]
            .as_array()?
            .iter()
            .any(|o| o["appointment"]["id"] == id.as_str())
            .then_some(())
    })
    .await;
    let requested: Vec<Value> = clinic
        .stream_messages(
            "CAREHUB_APPOINTMENTS",
            "carehub.events.appointment.requested",
        )
        .await
        .into_iter()
        .filter(|e| e["appointment"]["id"] == id.as_str())
        .collect();
    assert_eq!(
        requested.len(),
        1,
        "exactly one event after the crash at {point}"
    );

    let notifications = wait::until("the patient's notification", DEADLINE, || async {
        let n: Value = pat.json("/api/notifications").await;
        let mine: Vec<Value> = n["notifications"]
            .as_array()?
            .iter()
            .filter(|n| n["appointment_id"] == id.as_str())
            .cloned()
            .collect();
        (!mine.is_empty()).then_some(mine)
    })
    .await;
    assert_eq!(notifications.len(), 1, "exactly one notification");

    let email = pat.json("/api/me").await["email"]
        .as_str()
        .unwrap()
        .to_owned();
    let mails = wait::until(
        "the patient's mail, after one refusal",
        DEADLINE,
        || async {
            let m: Vec<String> = sink
                .mails()
                .into_iter()
                .filter(|m| m.contains(&email))
                .collect();
            (!m.is_empty()).then_some(m)
        },
    )
    .await;
    assert!(sink.refusals() >= 1, "the first delivery was refused");
    assert_eq!(mails.len(), 1, "exactly one mail");
}
