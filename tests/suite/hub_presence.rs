//! Presence across nodes: the union of the nodes' sockets, pushed to the other participant; a
//! socket closing on one node leaves a user connected on another online; a node that stops
//! cleanly takes its users offline at once, one that dies without cleaning up after the presence
//! TTL (the suite's hubs use 2 s). A socket hears about the other participants of its user's
//! open appointments without naming them, from sign-in on and as appointments are confirmed.

use crate::both_backends;
use crate::harness::Backend;
use crate::hub::{DEADLINE, Ws, book, clinic, pair, people, second_hub};
use crate::support::wait;
use futures::StreamExt as _;
use serde_json::{Value, json};

both_backends!(
    a_socket_that_never_named_its_appointment_is_told_when_the_other_participant_comes_and_goes,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_hub_nodes_users_go_offline_after_the_presence_ttl() {
    let clinic = clinic(Backend::Sqlite, &[]).await;
    let p = pair(&clinic).await;
    let port = crate::support::net::free_port();
    let addr = format!("127.0.0.1:{port}");
    let child = clinic.spawn_child(
        "hub",
        &[
            ("CAREHUB_HUB_ADDR", addr.as_str()),
            ("CAREHUB_PRESENCE_TTL", "2"),
        ],
    );
    let child_url = format!("ws://{addr}/ws");
    wait::listening("the child hub node listens", port, DEADLINE).await;
    let _doctor = Ws::signed_in(&child_url, &p.doctor).await;

    let patient = tokio::sync::Mutex::new(Ws::signed_in(&clinic.hub_url(), &p.patient).await);
    let online = |want: bool| {
        let patient = &patient;
        let room = p.room.clone();
        async move {
            let mut ws = patient.lock().await;
            ws.send(json!({"type": "presence_get", "appointment_id": room}))
                .await;
            let f = ws.next_of("presence").await;
            (f["online"] == want).then_some(())
        }
    };
    wait::until("the doctor is online from the other node", DEADLINE, || {
        online(true)
    })
    .await;

    clinic.kill_child(child);
    assert!(clinic.child_exited(child));
    // The patient asked, so it watches: the change is pushed once the entry expired.
    let mut ws = patient.lock().await;
    loop {
        let f = pushed(&mut ws).await;
        if f["online"] == false {
            break;
        }
    }
    drop(ws);
    wait::until("the killed node's user is offline", DEADLINE, || {
        online(false)
    })
    .await;
}

/// Waits for the next announcement of a presence change of the user `sub` follows.
async fn announced(sub: &mut async_nats::Subscriber) {
    tokio::time::timeout(DEADLINE, sub.next())
        .await
        .expect("a presence change is announced")
        .expect("subscription open");
}

/// Asks once; the answer's `online`.
async fn ask(ws: &mut Ws, room: &str) -> bool {
    ws.send(json!({"type": "presence_get", "appointment_id": room}))
        .await;
    ws.next_of("presence").await["online"].as_bool().unwrap()
}

/// The next pushed `presence` frame (other frames are skipped).
async fn pushed(ws: &mut Ws) -> Value {
    let next = async {
        loop {
            let f = ws.next_any().await;
            if f["type"] == "presence" {
                return f;
            }
        }
    };
    tokio::time::timeout(DEADLINE, next)
        .await
        .expect("a presence push before the deadline")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_pushed_and_a_socket_closing_on_one_node_leaves_the_user_online_on_another() {
    let mut clinic = clinic(Backend::Sqlite, &[]).await;
    let hub2 = second_hub(&mut clinic).await;
    let p = pair(&clinic).await;
    let nc = clinic.harness_nats_client().await;
    let mut changes = nc
        .subscribe(format!("carehub.hub.presence.{}", p.doctor_id))
        .await
        .unwrap();
    nc.flush().await.unwrap();

    let mut patient = Ws::signed_in(&clinic.hub_url(), &p.patient).await;
    assert!(!ask(&mut patient, &p.room).await, "nobody there yet");

    // Online on node 1: pushed without asking.
    let doctor1 = Ws::signed_in(&clinic.hub_url(), &p.doctor).await;
    let f = pushed(&mut patient).await;
    assert_eq!(
        (
            f["appointment_id"].as_str(),
            f["user_id"].as_str(),
            f["online"].as_bool()
        ),
        (
            Some(p.room.as_str()),
            Some(p.doctor_id.as_str()),
            Some(true)
        )
    );
    announced(&mut changes).await;

    // A second socket opens and closes on node 2: the doctor stays online.
    let doctor2 = Ws::signed_in(&hub2, &p.doctor).await;
    announced(&mut changes).await;
    assert!(ask(&mut patient, &p.room).await);
    drop(doctor2);
    announced(&mut changes).await;
    assert!(
        ask(&mut patient, &p.room).await,
        "still connected on node 1"
    );

    // The last socket closes: offline, pushed.
    drop(doctor1);
    let f = pushed(&mut patient).await;
    assert_eq!(f["online"], false, "{f}");
    assert!(!ask(&mut patient, &p.room).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cleanly_stopped_hub_nodes_users_go_offline_at_once() {
    let clinic = clinic(Backend::Sqlite, &[]).await;
    let p = pair(&clinic).await;
    let port = crate::support::net::free_port();
    let addr = format!("127.0.0.1:{port}");
    let child = clinic.spawn_child("hub", &[("CAREHUB_HUB_ADDR", addr.as_str())]);
    wait::listening("the child hub node listens", port, DEADLINE).await;
    let mut patient = Ws::signed_in(&clinic.hub_url(), &p.patient).await;
    assert!(!ask(&mut patient, &p.room).await);
    let _doctor = Ws::signed_in(&format!("ws://{addr}/ws"), &p.doctor).await;
    assert_eq!(pushed(&mut patient).await["online"], true);

    assert!(clinic.stop_child(child).await, "the node stops cleanly");
    assert!(
        !ask(&mut patient, &p.room).await,
        "offline as soon as the node stopped"
    );
    assert_eq!(pushed(&mut patient).await["online"], false);
}

/// The next pushed `presence` frame, which must be about `room` and `user_id`; its `online`.
async fn pushed_about(ws: &mut Ws, room: &str, user_id: &str) -> bool {
    let f = pushed(ws).await;
    assert_eq!(
        (f["appointment_id"].as_str(), f["user_id"].as_str()),
        (Some(room), Some(user_id)),
        "{f}"
    );
    f["online"].as_bool().unwrap()
}

async fn a_socket_that_never_named_its_appointment_is_told_when_the_other_participant_comes_and_goes(
    b: Backend,
) {
    let mut clinic = clinic(b, &[]).await;
    let hub2 = second_hub(&mut clinic).await;
    let p = pair(&clinic).await;
    let (room, patient_id, doctor_id) = (p.room.as_str(), &p.patient_id, &p.doctor_id);

    // Neither socket sends a frame after auth: whatever comes is pushed unasked.
    let patient = Ws::signed_in(&clinic.hub_url(), &p.patient).await;
    let mut doctor = Ws::signed_in(&hub2, &p.doctor).await;
    // The patient was online when the doctor's socket started to follow them.
    assert!(pushed_about(&mut doctor, room, patient_id).await);
    // The patient's last socket closes: the doctor hears it.
    drop(patient);
    assert!(!pushed_about(&mut doctor, room, patient_id).await);

    let mut patient = Ws::signed_in(&clinic.hub_url(), &p.patient).await;
    assert!(pushed_about(&mut doctor, room, patient_id).await);
    assert!(pushed_about(&mut patient, room, doctor_id).await);
    // The doctor's last socket (on the other node) closes: the patient hears it.
    drop(doctor);
    assert!(!pushed_about(&mut patient, room, doctor_id).await);
    let _doctor = Ws::signed_in(&hub2, &p.doctor).await;
    assert!(pushed_about(&mut patient, room, doctor_id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_appointment_confirmed_while_both_are_connected_starts_pushes_without_reconnecting() {
    let mut clinic = clinic(Backend::Sqlite, &[]).await;
    let hub2 = second_hub(&mut clinic).await;
    let mut p = people(&clinic).await;
    let mut patient = Ws::signed_in(&clinic.hub_url(), &p.patient).await;
    let mut doctor = Ws::signed_in(&hub2, &p.doctor).await;
    // No appointment yet: the hub follows nobody for them. Then one is booked (confirmed).
    book(&clinic, &mut p).await;
    assert!(pushed_about(&mut patient, &p.room, &p.doctor_id).await);
    assert!(pushed_about(&mut doctor, &p.room, &p.patient_id).await);
    drop(doctor);
    assert!(!pushed_about(&mut patient, &p.room, &p.doctor_id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_tabs_on_one_node_share_one_sign_in_listing_and_each_is_told() {
    let clinic = clinic(Backend::Sqlite, &[]).await;
    let p = pair(&clinic).await;
    // A plain subscriber gets a copy of every listing request the hub sends.
    let nats = clinic.harness_nats_client().await;
    let mut requests = nats
        .subscribe(carehub_nats::appointment::subject::LIST_APPOINTMENTS)
        .await
        .expect("subscribe");
    nats.flush().await.expect("flush");
    let doctor = Ws::signed_in(&clinic.hub_url(), &p.doctor).await;

    // Eight tabs sign in at once (most while the first one's listing runs), then one more
    // once they are settled: each is told the doctor is online, without naming the room.
    let url = clinic.hub_url();
    let mut tabs = futures::future::join_all((0..8).map(|_| Ws::signed_in(&url, &p.patient))).await;
    for tab in &mut tabs {
        assert!(pushed_about(tab, &p.room, &p.doctor_id).await);
    }
    let mut late = Ws::signed_in(&url, &p.patient).await;
    assert!(pushed_about(&mut late, &p.room, &p.doctor_id).await);
    tabs.push(late);
    // Every tab keeps following: the doctor's last socket closes and each hears it.
    drop(doctor);
    for tab in &mut tabs {
        assert!(!pushed_about(tab, &p.room, &p.doctor_id).await);
    }

    // The patient's nine sockets cost one listing: one request per open status.
    let mut statuses = Vec::new();
    while let Ok(Some(m)) =
        tokio::time::timeout(std::time::Duration::from_millis(500), requests.next()).await
    {
        let principal: Value = m
            .headers
            .as_ref()
            .and_then(|h| h.get(carehub_nats::rpc::headers::PRINCIPAL))
            .and_then(|v| serde_json::from_str(v.as_str()).ok())
            .expect("a listing carries its principal");
        if principal["user_id"] == p.patient_id.as_str() {
            let body: Value = serde_json::from_slice(&m.payload).expect("a listing request");
            statuses.push(body["status"].as_str().unwrap_or_default().to_owned());
        }
    }
    assert_eq!(
        statuses,
        ["confirmed", "offered", "requested"],
        "one listing"
    );
}
