//! Presence when a hub node dies without cleaning up: its users go offline after the presence
//! TTL (the suite's hubs use 2 s).

use crate::comms::{DEADLINE, Ws, clinic, pair};
use crate::harness::Backend;
use crate::support::wait;
use serde_json::json;

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
    wait::until("the child hub node listens", DEADLINE, || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
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
    wait::until("the killed node's user goes offline", DEADLINE, || {
        online(false)
    })
    .await;
}
