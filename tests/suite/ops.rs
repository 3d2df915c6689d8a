//! The operations guide's commands (docs/OPERATIONS.md), as the NATS requests the `nats` CLI
//! sends for them, against a running carehub; and `carehub ops status` as a child process.

use crate::appointments::{doctors, patient, window_in};
use crate::harness::{Backend, Clinic};
use crate::support::wait;
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use futures::StreamExt as _;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

const SERVICES: [&str; 6] = ["admin", "auth", "doctor", "hub", "notify", "patient"];
const STREAMS: [&str; 4] = [
    "CAREHUB_APPOINTMENTS",
    "CAREHUB_AUDIT",
    "CAREHUB_DOCTORS",
    "CAREHUB_USERS",
];

fn names(replies: &[Value]) -> BTreeSet<String> {
    replies
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect()
}

/// `nats request <subject> <body>` with a JSON answer.
async fn js_api(nc: &async_nats::Client, subject: String, body: Value) -> Value {
    let m = nc
        .request(subject.clone(), body.to_string().into())
        .await
        .unwrap_or_else(|e| panic!("{subject}: {e}"));
    let v: Value = serde_json::from_slice(&m.payload).unwrap();
    assert!(v.get("error").is_none(), "{subject}: {v}");
    v
}

fn requests_of(stats: &Value, endpoint: &str) -> u64 {
    stats["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == endpoint)
        .unwrap_or_else(|| panic!("no endpoint {endpoint} in {stats}"))["num_requests"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_nats_commands_show_services_streams_consumers_and_replay_events() {
    let clinic = Clinic::start(Backend::Sqlite).await;
    let nc = clinic.nats_client_as("ops").await;

    // nats micro ping / ls / info: every service answers, each with its endpoints.
    let pings = clinic.srv("PING", "", SERVICES.len()).await;
    assert_eq!(
        names(&pings),
        SERVICES.iter().map(|s| s.to_string()).collect()
    );
    for p in &pings {
        assert_eq!(p["type"], "io.nats.micro.v1.ping_response");
        assert!(!p["id"].as_str().unwrap().is_empty());
    }
    let infos = clinic.srv("INFO", "", SERVICES.len()).await;
    assert_eq!(
        names(&infos),
        SERVICES.iter().map(|s| s.to_string()).collect()
    );
    // The hub node registers for discovery; its work is on websockets, not endpoints.
    for i in infos.iter().filter(|i| i["name"] != "hub") {
        assert!(
            !i["endpoints"].as_array().unwrap().is_empty(),
            "{} lists endpoints",
            i["name"]
        );
    }
    // nats micro info auth: one instance, the per-name subject.
    let auth_info = clinic.srv("INFO", "auth", 2).await;
    assert_eq!(auth_info.len(), 1);
    let subjects: Vec<&str> = auth_info[0]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    assert!(
        subjects.contains(&carehub_nats::auth::subject::LOGIN),
        "{subjects:?}"
    );

    // nats micro stats auth: counts rise after calls.
    let before = clinic.srv("STATS", "auth", 1).await.remove(0);
    let before_login = requests_of(&before, "login");

    // nats sub 'carehub.events.appointment.>': the live feed sees a new request.
    let mut feed = nc.subscribe("carehub.events.appointment.>").await.unwrap();
    nc.flush().await.unwrap();
    let docs = doctors(&clinic, 1).await;
    let pat = patient(&clinic).await;
    let since = chrono::Utc::now();
    let id = pat
        .requested(json!({"doctor": docs[0].id}), &window_in(3))
        .await;
    let live = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(m) = feed.next().await {
            let v: Value = serde_json::from_slice(&m.payload).unwrap();
            if v.to_string().contains(&id) {
                return (m.subject.to_string(), v);
            }
        }
        panic!("feed ended")
    })
    .await
    .expect("the appointment event on the live feed");
    assert!(
        live.0.starts_with("carehub.events.appointment."),
        "{live:?}"
    );
    // Routing answers the request with an offer to the doctor; once that is out, the
    // appointment stays still (the doctor has not answered), so the replays below see a
    // stream that is not growing.
    tokio::time::timeout(Duration::from_secs(20), async {
        if live.1["kind"] == "offered" {
            return;
        }
        while let Some(m) = feed.next().await {
            let v: Value = serde_json::from_slice(&m.payload).unwrap();
            if v.to_string().contains(&id) && v["kind"] == "offered" {
                return;
            }
        }
        panic!("feed ended")
    })
    .await
    .expect("the offer to the doctor on the live feed");

    let after = clinic.srv("STATS", "auth", 1).await.remove(0);
    assert!(
        requests_of(&after, "login") >= before_login + 2,
        "logins of the doctor and the patient counted: {before_login} -> {after}"
    );
    assert_eq!(before["id"], after["id"]);

    // nats stream ls / info.
    let list = js_api(&nc, "$JS.API.STREAM.LIST".into(), json!({})).await;
    let listed: BTreeSet<String> = list["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["config"]["name"].as_str().unwrap().to_owned())
        .collect();
    for s in STREAMS {
        assert!(listed.contains(s), "{s} in {listed:?}");
    }
    let info = wait::until(
        "the appointment event stored",
        Duration::from_secs(20),
        || async {
            let i = js_api(
                &clinic.nats_client_as("ops").await,
                "$JS.API.STREAM.INFO.CAREHUB_APPOINTMENTS".into(),
                json!({}),
            )
            .await;
            // The request and the offer.
            (i["state"]["messages"].as_u64()? >= 2).then_some(i)
        },
    )
    .await;
    assert_eq!(
        info["config"]["subjects"],
        json!(["carehub.events.appointment.>"])
    );

    // nats consumer ls / info: the services' durable consumers and how far they are.
    let consumers = js_api(
        &nc,
        "$JS.API.CONSUMER.LIST.CAREHUB_DOCTORS".into(),
        json!({}),
    )
    .await;
    let durables: Vec<&str> = consumers["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(durables.contains(&"admin-doctors"), "{consumers}");
    let c = js_api(
        &nc,
        "$JS.API.CONSUMER.INFO.CAREHUB_DOCTORS.admin-doctors".into(),
        json!({}),
    )
    .await;
    assert!(c["delivered"]["stream_seq"].as_u64().unwrap() >= 1, "{c}");

    // Replay (nats stream view / nats sub --all / --since): an ephemeral ordered consumer,
    // from the start and from a time.
    let js = async_nats::jetstream::new(nc.clone());
    let stream = js.get_stream("CAREHUB_APPOINTMENTS").await.unwrap();
    let all = replay(&stream, DeliverPolicy::All).await;
    assert!(all.iter().any(|v| v.to_string().contains(&id)));
    let recent = replay(
        &stream,
        DeliverPolicy::ByStartTime {
            start_time: time::OffsetDateTime::from_unix_timestamp(since.timestamp()).unwrap(),
        },
    )
    .await;
    assert!(recent.iter().any(|v| v.to_string().contains(&id)));
    let later = replay(
        &stream,
        DeliverPolicy::ByStartTime {
            start_time: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        },
    )
    .await;
    assert!(later.is_empty(), "nothing after the future: {later:?}");

    // carehub ops status, as a child process: the same table.
    let out = ops_status(&clinic, &[]).await;
    for s in SERVICES {
        assert!(
            out.lines().any(|l| l.split_whitespace().next() == Some(s)),
            "{s} in\n{out}"
        );
    }
    assert!(out.contains("6 instances of 6 services"), "{out}");
    let json: Value = serde_json::from_str(&ops_status(&clinic, &["--json"]).await).unwrap();
    let rows = json.as_array().unwrap();
    assert_eq!(
        names(rows),
        SERVICES.iter().map(|s| s.to_string()).collect()
    );
    let auth = rows.iter().find(|r| r["name"] == "auth").unwrap();
    assert_eq!(auth["id"], after["id"]);
    assert!(auth["requests"].as_u64().unwrap() >= before_login + 2);
    let login = auth["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "login")
        .unwrap();
    assert!(login["average_processing_time_ns"].as_u64().unwrap() > 0);
    let only = ops_status(&clinic, &["doctor", "--endpoints"]).await;
    assert!(only.contains("1 instances of 1 services"), "{only}");
}

/// Every message of `stream` from `deliver`, through an ephemeral consumer.
async fn replay(
    stream: &async_nats::jetstream::stream::Stream,
    deliver: DeliverPolicy,
) -> Vec<Value> {
    let consumer = stream
        .create_consumer(pull::Config {
            deliver_policy: deliver,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut batch = consumer
        .fetch()
        .max_messages(10_000)
        .expires(Duration::from_millis(300))
        .messages()
        .await
        .unwrap();
    let mut out = Vec::new();
    while let Some(Ok(m)) = batch.next().await {
        out.push(serde_json::from_slice(&m.payload).unwrap());
    }
    out
}

/// Runs `carehub ops status <args>` against the clinic's NATS and returns its stdout.
async fn ops_status(clinic: &Clinic, args: &[&str]) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_carehub"));
    cmd.args(["ops", "status", "--wait", "1"])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(crate::support::nats::server_var())
        .env("CAREHUB_NATS_URL", clinic.nats.url());
    // As an operator would: with the `ops` user's credentials only.
    if let Some(c) = clinic.nats.credentials() {
        cmd.env("CAREHUB_NATS_USER", "ops")
            .env("CAREHUB_NATS_PASSWORD", c.password("ops").unwrap());
    }
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "carehub ops status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
