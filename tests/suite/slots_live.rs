//! Live free slots over real websockets: a socket watching a doctor's slots hears every change
//! in its range from any instance (a booking, a cancel, new hours), never who made it, and no
//! more than five doctors are watched per socket.

use crate::appointments::{doctors_with, patient, rfc3339};
use crate::both_backends;
use crate::harness::Backend;
use crate::hub::{Ws, clinic, second_hub};
use serde_json::{Value, json};

both_backends!(a_watched_doctors_slot_changes_are_pushed_without_saying_who,);

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

async fn a_watched_doctors_slot_changes_are_pushed_without_saying_who(b: Backend) {
    let mut clinic = clinic(b, &[]).await;
    let hub2 = second_hub(&mut clinic).await;
    let docs = doctors_with(&clinic, 1, 30, true).await;
    let d = &docs[0];
    let (booker, watcher) = (patient(&clinic).await, patient(&clinic).await);
    let day = (chrono::Utc::now().timestamp_millis() / DAY_MS + 2) * DAY_MS;
    let (from, to) = (rfc3339(day + 8 * HOUR_MS), rfc3339(day + 12 * HOUR_MS));

    let mut ws = Ws::signed_in(&hub2, &watcher.token).await;
    ws.send(json!({"type": "slots_watch", "doctor_id": d.id, "from": from, "to": to}))
        .await;
    let ok = ws.next_of("slots_watching").await;
    assert_eq!(
        (ok["doctor_id"].as_str(), ok["from"].as_str()),
        (Some(d.id.as_str()), Some(from.as_str()))
    );

    // A booking through the API reaches the watcher on the other hub node: the range only.
    let book =
        |start: i64| {
            let booker = &booker;
            let doctor = d.id.clone();
            async move {
                let r = booker
                .send(
                    reqwest::Method::POST,
                    "/api/appointments/book",
                    &json!({"doctor_id": doctor, "start": rfc3339(start), "reason": "a check-up"}),
                    &[("Idempotency-Key", &uuid::Uuid::new_v4().simple().to_string())],
                )
                .await;
                assert_eq!(r.status(), 201, "book: {}", r.text().await.unwrap());
                r.json::<Value>().await.unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
        };
    let nine = day + 9 * HOUR_MS;
    let id = book(nine).await;
    let f = ws.next_of("slots_changed").await;
    assert_eq!(
        f,
        json!({"type": "slots_changed", "doctor_id": d.id, "from": rfc3339(nine),
            "to": rfc3339(nine + HOUR_MS / 2)}),
        "the range that changed and nothing about who"
    );

    // A change outside the watched range says nothing; the cancel inside it does.
    book(day + 14 * HOUR_MS).await;
    let r = booker
        .post(
            &format!("/api/appointments/{id}/cancel"),
            &json!({"reason": "plans changed"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let f = ws.next_of("slots_changed").await;
    assert_eq!(
        f["from"],
        rfc3339(nine),
        "the 14:00 booking was not pushed: {f}"
    );

    // New hours change the whole watched range.
    let v = d.json("/api/doctors/me/availability").await["version"].clone();
    let body = json!({"expected_version": v, "time_zone": "UTC",
        "weekly": crate::harness::every_day("07:00", "20:00"), "slot_minutes": 30, "auto_accept": true});
    let r = d
        .send(
            reqwest::Method::PUT,
            "/api/doctors/me/availability",
            &body,
            &[],
        )
        .await;
    assert_eq!(r.status(), 200, "hours: {}", r.text().await.unwrap());
    let f = ws.next_of("slots_changed").await;
    assert_eq!(
        (f["from"].as_str(), f["to"].as_str()),
        (Some(from.as_str()), Some(to.as_str()))
    );

    // Five doctors per socket at most; watching one again only moves its range.
    for i in 0..4 {
        ws.send(json!({"type": "slots_watch", "doctor_id": format!("other-{i}"), "from": from, "to": to}))
            .await;
        ws.next_of("slots_watching").await;
    }
    ws.send(json!({"type": "slots_watch", "doctor_id": d.id, "from": from, "to": rfc3339(day + 10 * HOUR_MS)}))
        .await;
    ws.next_of("slots_watching").await;
    ws.send(json!({"type": "slots_watch", "doctor_id": "a-sixth", "from": from, "to": to}))
        .await;
    let e = ws.next_of("error").await;
    assert_eq!(
        (e["code"].as_str(), e["request"].as_str()),
        (Some("too_many_watches"), Some("slots_watch"))
    );
    ws.send(json!({"type": "slots_watch", "doctor_id": d.id, "from": to, "to": from}))
        .await;
    assert_eq!(ws.next_of("error").await["code"], "validation_failed");
    ws.send(json!({"type": "slots_unwatch", "doctor_id": d.id}))
        .await;
    assert_eq!(
        ws.next_of("slots_unwatched").await["doctor_id"],
        d.id.as_str()
    );
}
