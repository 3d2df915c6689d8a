//! The gateway's `/ws`: a client through the gateway talks with clients connected to hub nodes
//! directly, the hub's Origin rule and close codes come through unchanged, and a gateway whose
//! first hub node is down uses the next.

use crate::harness::{Backend, Clinic, unique_email};
use crate::hub::{Ws, clinic, pair, session_of};
use carehub::system::Component;
use serde_json::json;
use tokio_tungstenite::tungstenite::Error as WsError;

fn gateway_ws(base: &str) -> String {
    format!("{}/ws", base.replacen("http://", "ws://", 1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_through_the_gateway_chats_with_a_client_on_a_hub_node() {
    let clinic = clinic(Backend::Sqlite, &[]).await;
    let p = pair(&clinic).await;
    let mut patient = Ws::signed_in(&gateway_ws(&clinic.base), &p.patient).await;
    let mut doctor = Ws::signed_in(&clinic.hub_url(), &p.doctor).await;

    let seq = patient
        .chat(&p.room, "g1", "Hello through the gateway")
        .await;
    let got = doctor.until_message(seq).await;
    assert_eq!(got[0]["body"], "Hello through the gateway");
    assert_eq!(got[0]["sender_id"], p.patient_id.as_str());

    let seq = doctor.chat(&p.room, "d1", "Hello back").await;
    let got = patient.until_message(seq).await;
    assert_eq!(got.last().unwrap()["body"], "Hello back");

    // The hub's close code reaches the client through the gateway.
    let r = clinic
        .http
        .post(clinic.url("/api/auth/logout"))
        .bearer_auth(&p.patient)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(patient.close_code().await, Some(4003));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_origin_through_the_gateway_is_refused_and_the_public_one_is_not() {
    let clinic = clinic(
        Backend::Sqlite,
        &[("CAREHUB_PUBLIC_URL", "https://care.example.org")],
    )
    .await;
    let url = gateway_ws(&clinic.base);
    match Ws::open(&url, Some("https://evil.example")).await {
        Err(WsError::Http(r)) => assert_eq!(r.status(), 403),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("a foreign origin was accepted through the gateway"),
    }
    let email = unique_email("pat");
    clinic.patient(&email).await;
    let (t, _) = session_of(&clinic, &email).await;
    let mut ws = Ws::open(&url, Some("https://care.example.org"))
        .await
        .unwrap();
    ws.send(json!({"type": "auth", "token": t})).await;
    ws.next_of("welcome").await;

    // A bad token: the hub's error frame and close code, unchanged.
    let mut ws = Ws::open(&url, None).await.unwrap();
    ws.send(json!({"type": "auth", "token": "not-a-token"}))
        .await;
    assert_eq!(ws.next_of("error").await["code"], "unauthorized");
    assert_eq!(ws.close_code().await, Some(4001));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_whose_first_hub_node_is_down_uses_the_next() {
    let mut clinic: Clinic = clinic(Backend::Sqlite, &[]).await;
    let dead = crate::support::net::free_port();
    let urls = format!("ws://127.0.0.1:{dead}/ws,{}", clinic.hub_url());
    let base = clinic
        .start_more(
            &[
                ("CAREHUB_HUB_URL", urls.as_str()),
                ("CAREHUB_GATEWAY_ADDR", "127.0.0.1:0"),
            ],
            &[Component::Gateway],
        )
        .await
        .unwrap();
    let email = unique_email("pat");
    clinic.patient(&email).await;
    let (t, _) = session_of(&clinic, &email).await;
    // Connections take the hub URLs in turn: both the one starting at the dead node and the
    // next one get through.
    for _ in 0..3 {
        Ws::signed_in(&gateway_ws(&base), &t).await;
    }

    let mut none = clinic;
    let only_dead = format!("ws://127.0.0.1:{dead}/ws");
    let base = none
        .start_more(
            &[
                ("CAREHUB_HUB_URL", only_dead.as_str()),
                ("CAREHUB_GATEWAY_ADDR", "127.0.0.1:0"),
            ],
            &[Component::Gateway],
        )
        .await
        .unwrap();
    match Ws::open(&gateway_ws(&base), None).await {
        Err(WsError::Http(r)) => assert_eq!(r.status(), 503),
        Err(other) => panic!("expected 503, got {other}"),
        Ok(_) => panic!("connected to a hub that is not there"),
    }
}
