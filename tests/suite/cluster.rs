//! carehub on a three-node NATS cluster (the compose deployment run locally) survives losing
//! nodes while bookings flow: the stream leader of `CAREHUB_APPOINTMENTS` is SIGKILLed, then the
//! node the gateway is connected to. Every booking answered 2xx is in the database and in the
//! stream exactly once, and bookings succeed again after each loss.

use crate::deploy::{Deployment, NatsCluster};
use crate::harness::{PASSWORD, unique_email};
use crate::support::wait;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const RECOVER: Duration = Duration::from_secs(30);

/// Bookings sent by the load task: `(status, appointment id if 2xx)`.
type Outcomes = Arc<Mutex<Vec<(u16, Option<String>)>>>;

pub(crate) async fn login(http: &reqwest::Client, base: &str, email: &str) -> String {
    let session: Value = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD, "refresh_token_in": "body"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    session["access_token"].as_str().unwrap().to_owned()
}

/// A doctor with hours every day, created as `carehub admin create-user` does; returns the id
/// and an access token.
pub(crate) async fn doctor(d: &Deployment, http: &reqwest::Client) -> (String, String) {
    let email = unique_email("doc");
    let db = carehub_runtime::Db::connect("auth", Some(&d.database_url), &d.dir)
        .await
        .unwrap();
    let user =
        carehub_auth::create_user(&db, &email, PASSWORD, "Doc Tor", carehub_nats::Role::Doctor)
            .await
            .unwrap();
    db.close().await;
    let token = login(http, &d.base, &email).await;
    let url = format!("{}/api/doctors/me/availability", d.base);
    let version = wait::until("the doctor service knows the doctor", RECOVER, || async {
        let r = http.get(&url).bearer_auth(&token).send().await.ok()?;
        let v: Value = r.json().await.ok()?;
        v["version"].as_i64()
    })
    .await;
    let weekly = crate::harness::every_day("00:00", "23:30");
    let r = http
        .put(&url)
        .bearer_auth(&token)
        .json(
            &json!({"expected_version": version, "time_zone": "UTC", "weekly": weekly,
            "slot_minutes": 30, "auto_accept": false}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "availability: {}", r.text().await.unwrap());
    (user.id, token)
}

async fn book(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    doctor: &str,
) -> (u16, Option<String>) {
    let w = crate::appointments::window_in(3);
    let (start, end) = (w.start, w.end);
    let r = http
        .post(format!("{base}/api/appointments"))
        .bearer_auth(token)
        .header("Idempotency-Key", uuid::Uuid::new_v4().simple().to_string())
        .json(&json!({"target": {"doctor": doctor}, "window_start": start,
            "window_end": end, "reason": "a check-up"}))
        .send()
        .await;
    match r {
        Err(_) => (0, None),
        Ok(r) => {
            let status = r.status().as_u16();
            let id = if r.status().is_success() {
                let v: Value = r.json().await.unwrap_or_default();
                v["id"].as_str().map(str::to_owned)
            } else {
                None
            };
            (status, id)
        }
    }
}

/// Waits until a booking made after now is answered 2xx.
async fn bookings_succeed(outcomes: &Outcomes, what: &str) {
    let from = outcomes.lock().unwrap().len();
    wait::until(what, RECOVER, || async {
        let o = outcomes.lock().unwrap();
        o[from..]
            .iter()
            .any(|(s, id)| (200..300).contains(s) && id.is_some())
            .then_some(())
    })
    .await;
}

async fn leader(nc: &async_nats::Client) -> Option<usize> {
    let js = async_nats::jetstream::new(nc.clone());
    let mut stream = js.get_stream("CAREHUB_APPOINTMENTS").await.ok()?;
    let info = stream.info().await.ok()?;
    NatsCluster::index_of(info.cluster.as_ref()?.leader.as_deref()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_survive_losing_the_stream_leader_and_the_gateways_nats_node() {
    let mut d = Deployment::start().await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let base = d.base.clone();
    let email = unique_email("clustered");
    let r = http
        .post(format!("{base}/api/auth/register"))
        .json(&json!({"email": email, "password": PASSWORD, "display_name": "Pat Ient"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let token = login(&http, &base, &email).await;
    let (doctor, _) = doctor(&d, &http).await;

    // Bookings flow from two clients for the whole test.
    let outcomes: Outcomes = Arc::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let mut load = Vec::new();
    for _ in 0..2 {
        let (http, base, token, doctor, outcomes, stop) = (
            http.clone(),
            base.clone(),
            token.clone(),
            doctor.clone(),
            outcomes.clone(),
            stop.clone(),
        );
        load.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                let o = book(&http, &base, &token, &doctor).await;
                let failed = !(200..300).contains(&o.0);
                outcomes.lock().unwrap().push(o);
                if failed {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }));
    }
    bookings_succeed(&outcomes, "bookings flow").await;

    // 1. The stream leader dies.
    let ops = d.nats.client_as("ops").await;
    let first = wait::until("the stream leader", RECOVER, || leader(&ops)).await;
    d.nats.nodes[first].kill();
    let next = wait::until("a new stream leader", RECOVER, || async {
        leader(&ops).await.filter(|l| *l != first)
    })
    .await;
    assert_ne!(next, first);
    bookings_succeed(&outcomes, "bookings after losing the stream leader").await;
    d.nats.nodes[first].restart().await;
    d.nats.wait_jetstream().await;

    // 2. The node the gateway is connected to dies (never two at once: a quorum stays).
    let gateway_node = wait::until("the gateway's NATS node", RECOVER, || {
        d.nats.node_of_connection("carehub-gateway")
    })
    .await;
    // The restarted node must have caught up before another one goes.
    wait::until("three current replicas", RECOVER, || async {
        let js = async_nats::jetstream::new(ops.clone());
        let mut s = js.get_stream("CAREHUB_APPOINTMENTS").await.ok()?;
        let info = s.info().await.ok()?;
        let c = info.cluster.as_ref()?;
        (c.replicas.len() == 2 && c.replicas.iter().all(|r| r.current)).then_some(())
    })
    .await;
    d.nats.nodes[gateway_node].kill();
    bookings_succeed(&outcomes, "bookings after losing the gateway's node").await;
    let moved = wait::until("the gateway on another node", RECOVER, || async {
        d.nats
            .node_of_connection("carehub-gateway")
            .await
            .filter(|n| *n != gateway_node)
    })
    .await;
    assert_ne!(moved, gateway_node);
    d.nats.nodes[gateway_node].restart().await;
    bookings_succeed(&outcomes, "bookings with every node back").await;

    stop.cancel();
    for t in load {
        t.await.unwrap();
    }
    assert!(d.exited().is_empty(), "crashed: {:?}", d.exited());
    let outcomes = outcomes.lock().unwrap().clone();
    let ok: Vec<String> = outcomes.iter().filter_map(|(_, id)| id.clone()).collect();
    assert!(ok.len() >= 4, "too few bookings went through: {outcomes:?}");

    // Every acknowledged booking is stored...
    for id in &ok {
        // The gateway's per-address rate limit may ask to slow down; that is not an answer.
        let status = wait::until("an answer about the booking", RECOVER, || async {
            let r = http
                .get(format!("{base}/api/appointments/{id}"))
                .bearer_auth(&token)
                .send()
                .await
                .ok()?;
            if r.status() == 429 {
                tokio::time::sleep(Duration::from_millis(200)).await;
                return None;
            }
            Some(r.status().as_u16())
        })
        .await;
        assert_eq!(status, 200, "acknowledged booking {id} is missing");
    }
    // ...and in the stream exactly once (its `requested` event).
    let js = async_nats::jetstream::new(ops.clone());
    let counts = wait::until("every booking's event in the stream", RECOVER, || {
        let (js, ok) = (js.clone(), ok.clone());
        async move {
            let counts = requested_events(&js).await?;
            ok.iter()
                .all(|id| counts.contains_key(id))
                .then_some(counts)
        }
    })
    .await;
    for id in &ok {
        assert_eq!(
            counts[id], 1,
            "booking {id} is in the stream {} times",
            counts[id]
        );
    }
    assert!(
        counts.values().all(|n| *n == 1),
        "a duplicate event: {counts:?}"
    );
}

/// How often each appointment's `requested` event is in the stream.
async fn requested_events(js: &async_nats::jetstream::Context) -> Option<HashMap<String, usize>> {
    event_counts(
        js,
        "CAREHUB_APPOINTMENTS",
        "carehub.events.appointment.requested",
        |e| e["appointment"]["id"].as_str(),
    )
    .await
}

/// How many events on `filter` of `stream` name each id (`id_of` an event), read through an
/// ephemeral consumer; `None` while the stream cannot be read whole.
async fn event_counts(
    js: &async_nats::jetstream::Context,
    stream: &str,
    filter: &str,
    id_of: impl Fn(&Value) -> Option<&str>,
) -> Option<HashMap<String, usize>> {
    message_counts(js, stream, filter, |m| {
        let e: Value = serde_json::from_slice(&m.payload).ok()?;
        id_of(&e).map(str::to_owned)
    })
    .await
}

/// How many messages on `filter` of `stream` (all of it when empty) have each key (`key_of` a
/// message), read through an ephemeral consumer; `None` while the stream cannot be read whole
/// or a message has no key.
pub(crate) async fn message_counts(
    js: &async_nats::jetstream::Context,
    stream: &str,
    filter: &str,
    key_of: impl Fn(&async_nats::jetstream::Message) -> Option<String>,
) -> Option<HashMap<String, usize>> {
    use async_nats::jetstream::consumer::pull;
    use futures::StreamExt as _;
    let stream = js.get_stream(stream).await.ok()?;
    let consumer = stream
        .create_consumer(pull::Config {
            filter_subject: filter.into(),
            ack_policy: async_nats::jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .ok()?;
    let pending = consumer.cached_info().num_pending;
    let mut counts = HashMap::new();
    let mut seen = 0u64;
    while seen < pending {
        let mut batch = consumer
            .fetch()
            .max_messages(500)
            .expires(Duration::from_secs(1))
            .messages()
            .await
            .ok()?;
        let mut got = 0;
        while let Some(Ok(m)) = batch.next().await {
            got += 1;
            *counts.entry(key_of(&m)?).or_insert(0) += 1;
        }
        if got == 0 {
            return None;
        }
        seen += got;
    }
    Some(counts)
}
