//! Notifications and mail: password reset mail delivered to a real SMTP server (aiosmtpd, see
//! `tests/support/smtp_sink.py`), retried after a temporary refusal, written to the data
//! directory without SMTP; in-app notifications made from appointment events published on the
//! `CAREHUB_APPOINTMENTS` stream, and the notifications API.

use crate::harness::{Backend, Clinic, SmtpSink, eml_files, error_code, token, unique_email};
use crate::support::wait;
use carehub::system::Component;
use carehub_nats::Role;
use carehub_nats::appointment::{
    Actor, Appointment, AppointmentEvent, AppointmentEventKind, AppointmentStatus,
};
use serde_json::{Value, json};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);

/// Mail the notify service has not delivered yet.
async fn mail_backlog(clinic: &Clinic) -> i64 {
    let db = carehub::provision::notify_db(&clinic.env(&[]))
        .await
        .expect("notify db");
    let n = carehub_notify::store::mail_backlog(&db)
        .await
        .expect("backlog");
    db.close().await;
    n
}

async fn wait_for_empty_outbox(clinic: &Clinic) {
    wait::until("the mail outbox to empty", DEADLINE, || async {
        (mail_backlog(clinic).await == 0).then_some(())
    })
    .await;
}

async fn request_reset(clinic: &Clinic, email: &str) {
    let r = clinic
        .http
        .post(clinic.url("/api/auth/password/reset-request"))
        .json(&json!({ "email": email }))
        .send()
        .await
        .expect("reset request");
    assert_eq!(r.status(), 202);
}

/// The token of the reset link in a mail.
fn reset_token(mail: &str) -> String {
    let (_, rest) = mail
        .split_once("/reset-password#token=")
        .unwrap_or_else(|| panic!("no reset link in {mail}"));
    rest.split_whitespace().next().expect("token").to_owned()
}

async fn a_password_reset_mail_reaches_a_real_smtp_server_once_with_a_working_link(
    backend: Backend,
) {
    let sink = SmtpSink::start(0).await;
    let url = sink.url();
    let clinic = Clinic::start_with(
        backend,
        &[("CAREHUB_SMTP_URL", url.as_str())],
        &Component::ALL,
    )
    .await;
    let email = unique_email("reset-smtp");
    clinic.patient(&email).await;
    request_reset(&clinic, &email).await;
    wait::until("the reset mail at the SMTP server", DEADLINE, || async {
        (!sink.mails().is_empty()).then_some(())
    })
    .await;
    wait_for_empty_outbox(&clinic).await;
    let mails = sink.mails();
    assert_eq!(mails.len(), 1, "exactly one mail: {mails:?}");
    let mail = &mails[0];
    assert!(mail.contains(&format!("To: {email}")), "{mail}");
    assert!(
        mail.contains("http://127.0.0.1:8080/reset-password#token=chp_"),
        "{mail}"
    );
    let new_password = "a brand new passphrase 42";
    let r = clinic
        .http
        .post(clinic.url("/api/auth/password/reset-confirm"))
        .json(&json!({ "token": reset_token(mail), "new_password": new_password }))
        .send()
        .await
        .expect("reset confirm");
    assert_eq!(r.status(), 200, "the mailed token works");
    clinic.login(&email, new_password).await;
}

async fn a_mail_refused_with_451_is_retried_and_delivered_exactly_once(backend: Backend) {
    let sink = SmtpSink::start(1).await;
    let url = sink.url();
    let clinic = Clinic::start_with(
        backend,
        &[
            ("CAREHUB_SMTP_URL", url.as_str()),
            ("CAREHUB_MAIL_RETRY_BASE", "0.2"),
        ],
        &Component::ALL,
    )
    .await;
    let email = unique_email("reset-retry");
    clinic.patient(&email).await;
    request_reset(&clinic, &email).await;
    wait::until("the retried mail at the SMTP server", DEADLINE, || async {
        (!sink.mails().is_empty()).then_some(())
    })
    .await;
    wait_for_empty_outbox(&clinic).await;
    assert_eq!(sink.refusals(), 1, "the first attempt was refused");
    let mails = sink.mails();
    assert_eq!(mails.len(), 1, "exactly one delivered mail: {mails:?}");
    assert!(mails[0].contains(&format!("To: {email}")));
}

async fn without_smtp_settings_the_reset_mail_is_written_to_the_data_dir(backend: Backend) {
    let clinic = Clinic::start(backend).await;
    let email = unique_email("reset-file");
    clinic.patient(&email).await;
    request_reset(&clinic, &email).await;
    let dir = clinic.dir.join("mail");
    let mail = wait::until("the reset mail file", DEADLINE, || {
        let dir = dir.clone();
        let email = email.clone();
        async move {
            eml_files(&dir)
                .into_iter()
                .find(|m| m.contains(&format!("To: {email}")))
        }
    })
    .await;
    assert!(mail.contains("/reset-password#token=chp_"), "{mail}");
    wait_for_empty_outbox(&clinic).await;
}

fn appointment_event(
    kind: AppointmentEventKind,
    patient: &str,
    doctor: &str,
    reason: Option<&str>,
) -> AppointmentEvent {
    AppointmentEvent {
        event_id: uuid::Uuid::now_v7().to_string(),
        kind,
        at: 1,
        appointment: Appointment {
            id: "appt-1".into(),
            patient_id: patient.into(),
            patient_name: None,
            doctor_name: None,
            doctor_id: Some(doctor.into()),
            group_id: None,
            specialty: None,
            status: AppointmentStatus::Confirmed,
            window_start: "2030-03-04T09:00:00Z".into(),
            window_end: "2030-03-04T12:00:00Z".into(),
            start: Some("2030-03-04T10:30:00Z".into()),
            end: Some("2030-03-04T11:00:00Z".into()),
            reason: "check-up".into(),
            closed_by: None,
            close_reason: None,
            created_at: "2030-03-01T08:00:00Z".into(),
            version: 1,
            pending_change: None,
            last_call: None,
        },
        doctor_id: Some(doctor.into()),
        actor: Some(Actor {
            user_id: doctor.into(),
            role: Role::Doctor,
            display_name: Some("Kofi Mensah".into()),
        }),
        reason: reason.map(str::to_owned),
        notify: vec![patient.into()],
    }
}

/// Publishes onto the stream as the admin service's outbox does: with a `Nats-Msg-Id`.
async fn publish(js: &async_nats::jetstream::Context, e: &AppointmentEvent, msg_id: &str) {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", msg_id);
    js.publish_with_headers(
        e.kind.subject(),
        headers,
        serde_json::to_vec(e).unwrap().into(),
    )
    .await
    .expect("publish")
    .await
    .expect("stored");
}

async fn get(clinic: &Clinic, token: &str, path: &str) -> reqwest::Response {
    clinic
        .http
        .get(clinic.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("get")
}

async fn post(clinic: &Clinic, token: &str, path: &str) -> reqwest::Response {
    clinic
        .http
        .post(clinic.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("post")
}

async fn list(clinic: &Clinic, token: &str, query: &str) -> Value {
    let r = get(clinic, token, &format!("/api/notifications{query}")).await;
    assert_eq!(r.status(), 200);
    r.json().await.expect("page")
}

async fn unread(clinic: &Clinic, token: &str) -> i64 {
    let r = get(clinic, token, "/api/notifications/unread-count").await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("count");
    v["unread"].as_i64().expect("unread")
}

async fn appointment_events_become_notifications_once_and_the_api_manages_them(backend: Backend) {
    let clinic = Clinic::start_with(
        backend,
        &[("CAREHUB_MAIL_RETRY_BASE", "0.2")],
        &Component::ALL,
    )
    .await;
    let pat_email = unique_email("notified");
    let pat = clinic.patient(&pat_email).await;
    let pat_id = pat["user"]["id"].as_str().unwrap().to_owned();
    let pat_token = token(&pat);
    let other = token(&clinic.patient(&unique_email("nosy")).await);
    let doc = clinic.create_user(Role::Doctor, &unique_email("doc")).await;
    let doc_id = doc["id"].as_str().unwrap().to_owned();

    // Live pushes are for the hub; appointment events come from the admin service.
    let nc = clinic.nats_client_as("hub").await;
    let mut pushes = nc
        .subscribe(carehub_nats::notify::push_subject(&pat_id))
        .await
        .unwrap();
    nc.flush().await.unwrap();
    let js = async_nats::jetstream::new(clinic.nats_client_as("admin").await);
    let confirmed = appointment_event(AppointmentEventKind::Confirmed, &pat_id, &doc_id, None);
    publish(&js, &confirmed, &confirmed.event_id).await;
    publish(&js, &confirmed, &confirmed.event_id).await; // deduplicated by the stream
    let cancelled = appointment_event(
        AppointmentEventKind::Cancelled,
        &pat_id,
        &doc_id,
        Some("I am ill"),
    );
    publish(&js, &cancelled, &cancelled.event_id).await;
    publish(&js, &cancelled, "replayed-copy").await; // stored twice: a replay
    let completed = appointment_event(AppointmentEventKind::Completed, &pat_id, &doc_id, None);
    publish(&js, &completed, &completed.event_id).await;

    // The consumer applies events in order, so once the last is in, the copies were handled.
    wait::until("the last event's notification", DEADLINE, || async {
        let page = list(&clinic, &pat_token, "").await;
        page["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "appointment_completed")
            .then_some(())
    })
    .await;
    let page = list(&clinic, &pat_token, "").await;
    let items = page["notifications"].as_array().unwrap().clone();
    let kinds: Vec<&str> = items.iter().map(|n| n["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "appointment_completed",
            "appointment_cancelled",
            "appointment_confirmed"
        ],
        "one per event, newest first"
    );
    assert_eq!(unread(&clinic, &pat_token).await, 3);
    let cancel = &items[1];
    assert!(
        cancel["body"]
            .as_str()
            .unwrap()
            .contains("cancelled by Dr. Kofi Mensah: I am ill"),
        "{cancel}"
    );
    assert_eq!(cancel["appointment_id"], "appt-1");
    assert!(cancel["read_at"].is_null());
    let cancel_id = cancel["id"].as_str().unwrap().to_owned();

    let pushed = tokio::time::timeout(DEADLINE, futures::StreamExt::next(&mut pushes))
        .await
        .expect("a live push")
        .expect("push message");
    let pushed: Value = serde_json::from_slice(&pushed.payload).unwrap();
    assert_eq!(pushed["user_id"], pat_id.as_str());
    assert_eq!(pushed["notification"]["kind"], "appointment_confirmed");
    assert_eq!(pushed["unread_count"], 1);

    // Read, unread, and the unread filter.
    let r = post(
        &clinic,
        &pat_token,
        &format!("/api/notifications/{cancel_id}/read"),
    )
    .await;
    assert_eq!(r.status(), 200);
    let n: Value = r.json().await.unwrap();
    assert!(n["read_at"].is_string());
    assert_eq!(unread(&clinic, &pat_token).await, 2);
    let unread_page = list(&clinic, &pat_token, "?unread=true").await;
    assert_eq!(unread_page["notifications"].as_array().unwrap().len(), 2);
    let r = post(
        &clinic,
        &pat_token,
        &format!("/api/notifications/{cancel_id}/unread"),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(unread(&clinic, &pat_token).await, 3);

    // Paging.
    let first = list(&clinic, &pat_token, "?limit=2").await;
    assert_eq!(first["notifications"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let second = list(&clinic, &pat_token, &format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(second["notifications"].as_array().unwrap().len(), 1);
    assert!(second["next_cursor"].is_null());
    let r = get(&clinic, &pat_token, "/api/notifications?limit=0").await;
    assert_eq!(r.status(), 422);

    // Someone else's notification does not exist for them.
    assert_eq!(list(&clinic, &other, "").await["notifications"], json!([]));
    for path in ["read", "unread"] {
        let r = post(
            &clinic,
            &other,
            &format!("/api/notifications/{cancel_id}/{path}"),
        )
        .await;
        assert_eq!(r.status(), 404, "{path}");
        assert_eq!(error_code(r).await, "not_found");
    }
    let r = clinic
        .http
        .delete(clinic.url(&format!("/api/notifications/{cancel_id}")))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Read all, then delete.
    let r = post(&clinic, &pat_token, "/api/notifications/read-all").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["updated"], 3);
    assert_eq!(unread(&clinic, &pat_token).await, 0);
    let delete = || {
        clinic
            .http
            .delete(clinic.url(&format!("/api/notifications/{cancel_id}")))
            .bearer_auth(&pat_token)
            .send()
    };
    assert_eq!(delete().await.unwrap().status(), 204);
    assert_eq!(delete().await.unwrap().status(), 404);
    assert_eq!(
        list(&clinic, &pat_token, "").await["notifications"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let r = get(&clinic, "not-a-token", "/api/notifications").await;
    assert_eq!(r.status(), 401);

    // Each notification was mailed once, to the address the account events gave.
    let dir = clinic.dir.join("mail");
    wait::until("three appointment mails", DEADLINE, || {
        let dir = dir.clone();
        let email = pat_email.clone();
        async move {
            let mails: Vec<String> = eml_files(&dir)
                .into_iter()
                .filter(|m| {
                    m.contains(&format!("To: {email}"))
                        && m.contains("Subject: carehub: Appointment")
                })
                .collect();
            (mails.len() >= 3).then_some(mails)
        }
    })
    .await;
    wait_for_empty_outbox(&clinic).await;
    let mails: Vec<String> = eml_files(&dir)
        .into_iter()
        .filter(|m| m.contains(&format!("To: {pat_email}")))
        .collect();
    assert_eq!(mails.len(), 3, "{mails:?}");
    assert!(
        mails
            .iter()
            .any(|m| m.contains("cancelled by Dr. Kofi Mensah: I am ill"))
    );
}

/// The mails the file mailer wrote to `email` whose text contains `needle`.
fn mails_to(clinic: &Clinic, email: &str, needle: &str) -> Vec<String> {
    eml_files(&clinic.dir.join("mail"))
        .into_iter()
        .filter(|m| m.contains(&format!("To: {email}")) && m.contains(needle))
        .collect()
}

/// "Mon 4 Mar 2030 19:30" at `offset_mins` east of UTC: the wording of a mail, worked out here
/// with a fixed offset (the zones used have no clock changes).
fn wall_time(t: chrono::DateTime<chrono::Utc>, offset_mins: i32) -> String {
    let offset = chrono::FixedOffset::east_opt(offset_mins * 60).unwrap();
    t.with_timezone(&offset)
        .format("%a %-d %b %Y %H:%M")
        .to_string()
}

async fn mails_and_reminders_are_written_in_the_time_zone_of_each_recipient(backend: Backend) {
    // One reminder, a minute before the start.
    let clinic =
        Clinic::start_with(backend, &[("CAREHUB_REMINDERS", "60s")], &Component::ALL).await;
    let pat_email = unique_email("tokyo");
    let r = clinic
        .http
        .post(clinic.url("/api/auth/register"))
        .json(
            &json!({"email": pat_email, "password": crate::harness::PASSWORD,
            "display_name": "Aiko Tanaka", "time_zone": "Asia/Tokyo"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let pat = clinic.login(&pat_email, crate::harness::PASSWORD).await;
    let pat_id = pat["user"]["id"].as_str().unwrap().to_owned();
    let doc_email = unique_email("doc-utc");
    let doc = clinic.create_user(Role::Doctor, &doc_email).await;
    let doc_id = doc["id"].as_str().unwrap().to_owned();

    // A confirmation far ahead (no reminder is due): each side reads its own zone.
    let js = async_nats::jetstream::new(clinic.nats_client_as("admin").await);
    let mut confirmed = appointment_event(AppointmentEventKind::Confirmed, &pat_id, &doc_id, None);
    confirmed.notify = vec![pat_id.clone(), doc_id.clone()];
    publish(&js, &confirmed, &confirmed.event_id).await;
    let mail = wait::until("the patient's confirmation mail", DEADLINE, || async {
        mails_to(&clinic, &pat_email, "Appointment confirmed").pop()
    })
    .await;
    // 2030-03-04T10:30:00Z in Tokyo (UTC+9, no clock changes).
    assert!(mail.contains("Mon 4 Mar 2030 19:30 JST"), "{mail}");
    assert!(!mail.contains("10:30 UTC"), "{mail}");
    let doc_mail = wait::until("the doctor's confirmation mail", DEADLINE, || async {
        mails_to(&clinic, &doc_email, "Appointment confirmed").pop()
    })
    .await;
    assert!(doc_mail.contains("Mon 4 Mar 2030 10:30 UTC"), "{doc_mail}");

    // The patient moves to India; notify learns it from the account event.
    let r = clinic
        .http
        .patch(clinic.url("/api/me"))
        .bearer_auth(token(&pat))
        .json(&json!({"time_zone": "Asia/Kolkata"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let notify_db = carehub::provision::notify_db(&clinic.env(&[]))
        .await
        .expect("notify db");
    wait::until("the new zone in notify's directory", DEADLINE, || async {
        let row = carehub_notify::store::user(&notify_db, &pat_id)
            .await
            .unwrap();
        row.filter(|u| u.time_zone == "Asia/Kolkata").map(|_| ())
    })
    .await;
    notify_db.close().await;

    // An appointment soon: its reminder is written in the zone the patient has now.
    let start = chrono::Utc::now() + chrono::Duration::seconds(75);
    let start = start - chrono::Duration::nanoseconds(i64::from(start.timestamp_subsec_nanos()));
    let mut soon = appointment_event(AppointmentEventKind::Rescheduled, &pat_id, &doc_id, None);
    soon.appointment.version = 2;
    soon.appointment.start = Some(start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    soon.appointment.end = Some(
        (start + chrono::Duration::minutes(30)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    publish(&js, &soon, &soon.event_id).await;
    let moved = wait::until("the patient's moved mail", DEADLINE, || async {
        mails_to(&clinic, &pat_email, "Appointment moved").pop()
    })
    .await;
    let in_kolkata = format!("{} IST", wall_time(start, 5 * 60 + 30));
    assert!(moved.contains(&in_kolkata), "{in_kolkata} in {moved}");
    let reminder = wait::until(
        "the patient's reminder mail",
        Duration::from_secs(60),
        || async { mails_to(&clinic, &pat_email, "Reminder: appointment in 1 minute").pop() },
    )
    .await;
    assert!(
        reminder.contains(&format!("starts in 1 minute: {in_kolkata}.")),
        "{in_kolkata} in {reminder}"
    );
    let doc_reminder = wait::until("the doctor's reminder mail", DEADLINE, || async {
        mails_to(&clinic, &doc_email, "Reminder: appointment in 1 minute").pop()
    })
    .await;
    let in_utc = format!("{} UTC", wall_time(start, 0));
    assert!(doc_reminder.contains(&in_utc), "{in_utc} in {doc_reminder}");
}

crate::both_backends!(
    a_password_reset_mail_reaches_a_real_smtp_server_once_with_a_working_link,
    a_mail_refused_with_451_is_retried_and_delivered_exactly_once,
    without_smtp_settings_the_reset_mail_is_written_to_the_data_dir,
    appointment_events_become_notifications_once_and_the_api_manages_them,
    mails_and_reminders_are_written_in_the_time_zone_of_each_recipient,
    a_deleted_notification_stays_deleted_and_a_late_older_event_is_history_without_mail,
);

/// Events delivered again (a re-created durable, `carehub ops replay` after the duplicate
/// window) or late (a lost event replayed after the ones that followed it).
async fn a_deleted_notification_stays_deleted_and_a_late_older_event_is_history_without_mail(
    backend: Backend,
) {
    let sink = SmtpSink::start(0).await;
    let url = sink.url();
    let clinic = Clinic::start_with(
        backend,
        &[
            ("CAREHUB_SMTP_URL", url.as_str()),
            ("CAREHUB_MAIL_RETRY_BASE", "0.2"),
        ],
        &Component::ALL,
    )
    .await;
    let pat = clinic.patient(&unique_email("replayed")).await;
    let pat_id = pat["user"]["id"].as_str().unwrap().to_owned();
    let pat_token = token(&pat);
    let doc = clinic.create_user(Role::Doctor, &unique_email("doc")).await;
    let doc_id = doc["id"].as_str().unwrap().to_owned();
    let js = async_nats::jetstream::new(clinic.nats_client_as("admin").await);
    let with_version = |kind, version| {
        let mut e = appointment_event(kind, &pat_id, &doc_id, None);
        e.appointment.version = version;
        e
    };
    let mails_of = |event_id: &str| {
        let header = format!("X-Carehub-Event: {event_id}");
        sink.mails()
            .into_iter()
            .filter(|m| m.contains(&header))
            .count()
    };

    // Version 2: confirmed, told in the app and by mail; the patient deletes the notification.
    let confirmed = with_version(AppointmentEventKind::Confirmed, 2);
    publish(&js, &confirmed, &confirmed.event_id).await;
    let id = wait::until("the confirmation", DEADLINE, || async {
        let page = list(&clinic, &pat_token, "").await;
        page["notifications"].as_array()?.iter().find_map(|n| {
            (n["kind"] == "appointment_confirmed").then(|| n["id"].as_str().unwrap().to_owned())
        })
    })
    .await;
    wait::until(
        "the confirmation mail, named by its event",
        DEADLINE,
        || async { (mails_of(&confirmed.event_id) == 1).then_some(()) },
    )
    .await;
    let r = clinic
        .http
        .delete(clinic.url(&format!("/api/notifications/{id}")))
        .bearer_auth(&pat_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    // The same event again, as the stream stores it after the duplicate window; then the
    // request (version 1) that was lost and comes late; then a newer event to know both went by
    // (the consumer applies events in order).
    publish(&js, &confirmed, "delivered-again").await;
    let late = with_version(AppointmentEventKind::Requested, 1);
    publish(&js, &late, &late.event_id).await;
    let completed = with_version(AppointmentEventKind::Completed, 3);
    publish(&js, &completed, &completed.event_id).await;
    wait::until("the completion", DEADLINE, || async {
        let page = list(&clinic, &pat_token, "").await;
        page["notifications"]
            .as_array()?
            .iter()
            .any(|n| n["kind"] == "appointment_completed")
            .then_some(())
    })
    .await;
    wait_for_empty_outbox(&clinic).await;
    wait::until("the completion mail", DEADLINE, || async {
        (mails_of(&completed.event_id) == 1).then_some(())
    })
    .await;

    let page = list(&clinic, &pat_token, "").await;
    let items = page["notifications"].as_array().unwrap();
    let kinds: Vec<&str> = items.iter().map(|n| n["kind"].as_str().unwrap()).collect();
    assert!(
        !kinds.contains(&"appointment_confirmed"),
        "the deleted one stays deleted: {kinds:?}"
    );
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    let history = items
        .iter()
        .find(|n| n["kind"] != "appointment_completed")
        .expect("the late event is kept");
    assert!(
        !history["read_at"].is_null(),
        "the late event is history, already read: {history}"
    );
    assert_eq!(
        unread(&clinic, &pat_token).await,
        1,
        "only the completion is news"
    );
    assert_eq!(
        mails_of(&confirmed.event_id),
        1,
        "no second confirmation mail"
    );
    assert_eq!(mails_of(&late.event_id), 0, "no mail for the late event");
    assert_eq!(mails_of(&completed.event_id), 1);
}
