//! The upgrade from 5eaba83, the last release before the code's names changed (2026-12-05).
//!
//! `tests/fixtures/upgrade/5eaba83` holds what that release left behind, made by
//! `scripts/make-upgrade-fixture.sh` with its own `carehub up`: on SQLite the whole data
//! directory (the services' files, the JetStream store, signing keys, mail), on PostgreSQL a
//! `pg_dump` and the rest of the data directory; `metadata.json` says what the release served
//! then and where each durable consumer stood. The current `carehub up` starts on a copy and
//! must serve the same accounts, doctor, patient, appointment, notifications and chat; keep
//! every durable consumer with its creation time and position (none recreated, none added,
//! nothing delivered again); mail and notify nothing twice; and take new writes, whose events
//! each consumer then receives once.

use crate::both_backends;
use crate::harness::{Backend, client};
use crate::hub::Ws;
use crate::support::{net::free_port, postgres, wait};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

both_backends!(data_of_5eaba83_serves_unchanged_and_no_consumer_replays);

/// The fixture of the release, one directory per backend.
const FIXTURE: &str = "tests/fixtures/upgrade/5eaba83";
const DEADLINE: Duration = Duration::from_secs(30);

/// Streams by name, durable consumers by `<stream>/<name>`, in the shape of `metadata.json`.
type JetStream = (BTreeMap<String, Value>, BTreeMap<String, Value>);

/// The current `carehub up` (and the nats-server it starts) on an unpacked copy of the fixture.
struct Upgraded {
    dir: PathBuf,
    data: PathBuf,
    up: Option<Child>,
    base: String,
    hub: String,
    http: reqwest::Client,
}

impl Upgraded {
    /// Unpacks the fixture of `backend` into a new directory (and on PostgreSQL restores its
    /// dump into a fresh database), then starts `carehub up` on it.
    async fn start(backend: Backend, fixture: &Path) -> Self {
        let dir =
            std::env::temp_dir().join(format!("carehub-upgrade-{}", uuid::Uuid::new_v4().simple()));
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        run(Command::new("tar")
            .arg("-xJf")
            .arg(fixture.join("data.tar.xz"))
            .arg("-C")
            .arg(&data));
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let url = postgres::fresh_database().await;
                let dump = String::from_utf8(run(Command::new("xz")
                    .arg("-dc")
                    .arg(fixture.join("carehub.sql.xz"))))
                .unwrap();
                // `\restrict` guards against a hostile dump; this one is ours, and psql before
                // 15.14 does not know the command.
                let script: String = dump
                    .lines()
                    .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
                    .map(|l| format!("{l}\n"))
                    .collect();
                let target = url.clone();
                tokio::task::spawn_blocking(move || postgres::run_script(&target, &script))
                    .await
                    .unwrap()
                    .unwrap_or_else(|e| panic!("restoring the release's dump: {e}"));
                Some(url)
            }
        };

        let (nats_port, http_port, hub_port) = (free_port(), free_port(), free_port());
        let log = std::fs::File::create(dir.join("up.log")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_carehub"));
        cmd.arg("up")
            .current_dir(&dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(crate::support::nats::server_var())
            .env("CAREHUB_DATA_DIR", &data)
            .env("CAREHUB_NATS_URL", format!("nats://127.0.0.1:{nats_port}"))
            .env("CAREHUB_GATEWAY_ADDR", format!("127.0.0.1:{http_port}"))
            .env("CAREHUB_HUB_ADDR", format!("127.0.0.1:{hub_port}"))
            .env("CAREHUB_COOKIE_SECURE", "false")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // With the nats-server it starts, one process group: a failed test kills both.
            .process_group(0);
        if let Some(url) = &database {
            cmd.env("CAREHUB_DATABASE_URL", url);
        }
        let up = Upgraded {
            up: Some(cmd.spawn().unwrap()),
            dir,
            data,
            base: format!("http://127.0.0.1:{http_port}"),
            hub: format!("ws://127.0.0.1:{hub_port}/ws"),
            http: client(None),
        };
        let (http, url) = (up.http.clone(), up.url("/readyz"));
        wait::until(
            "carehub up ready on the release's data",
            Duration::from_secs(60),
            || {
                let (http, url) = (http.clone(), url.clone());
                async move { (http.get(url).send().await.ok()?.status() == 200).then_some(()) }
            },
        )
        .await;
        up
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The monitoring address of the nats-server `carehub up` started, from its log.
    async fn monitor(&self) -> String {
        let log = self.data.join("nats-server.log");
        wait::until("the nats-server's monitoring address", DEADLINE, || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let addr = text
                .split("Starting http monitor on ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_owned);
            async move { addr.map(|a| format!("http://{a}")) }
        })
        .await
    }

    /// Streams and durable consumers once a service reads from every consumer, each has taken
    /// and acknowledged all it was given, and nothing moved for a second.
    async fn settled_jetstream(&self) -> JetStream {
        let monitor = self.monitor().await;
        let give_up = tokio::time::Instant::now() + DEADLINE;
        let mut last: Option<(JetStream, tokio::time::Instant)> = None;
        loop {
            let now = jetstream(&self.http, &monitor).await;
            let unsettled: Vec<String> = now
                .1
                .iter()
                .filter_map(|(key, c)| {
                    if c["num_waiting"] == 0 {
                        Some(format!("{key}: no service reads from it"))
                    } else if c["num_pending"] != 0 || c["num_ack_pending"] != 0 {
                        Some(format!("{key}: events not yet applied"))
                    } else {
                        None
                    }
                })
                .collect();
            match &last {
                Some((before, since))
                    if unsettled.is_empty()
                        && *before == now
                        && since.elapsed() >= Duration::from_secs(1) =>
                {
                    return now;
                }
                Some((before, _)) if *before == now => {}
                _ => last = Some((now, tokio::time::Instant::now())),
            }
            assert!(
                tokio::time::Instant::now() < give_up,
                "the durable consumers did not settle within {DEADLINE:?}: {unsettled:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.http
            .post(self.url("/api/auth/login"))
            .json(&json!({"email": email, "password": password, "refresh_token_in": "body"}))
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, token: &str, path: &str) -> Value {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }

    async fn send(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(token)
            .json(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    async fn notifications(&self, token: &str) -> Vec<Value> {
        self.get(token, "/api/notifications").await["notifications"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn mail_files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.data.join("mail"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".eml"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Stops `carehub up` with SIGTERM; returns whether it exited successfully.
    async fn stop(&mut self) -> bool {
        let mut up = self.up.take().unwrap();
        let sent = Command::new("kill")
            .args(["-TERM", &up.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        tokio::task::spawn_blocking(move || up.wait())
            .await
            .unwrap()
            .unwrap()
            .success()
    }
}

impl Drop for Upgraded {
    fn drop(&mut self) {
        if let Some(mut up) = self.up.take() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", up.id())])
                .status();
            let _ = up.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- carehub up on the release's data ---\n{}",
                std::fs::read_to_string(self.dir.join("up.log")).unwrap_or_default()
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `cmd` to its end and returns its stdout; panics when it fails.
fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The file-backed streams and their durable consumers, as the server's `/jsz` reports them.
async fn jetstream(http: &reqwest::Client, monitor: &str) -> JetStream {
    let jsz: Value = http
        .get(format!(
            "{monitor}/jsz?accounts=true&streams=true&consumers=true&config=true"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let position =
        |p: &Value| json!({"consumer_seq": p["consumer_seq"], "stream_seq": p["stream_seq"]});
    let (mut streams, mut consumers) = (BTreeMap::new(), BTreeMap::new());
    let accounts = jsz["account_details"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for s in accounts
        .iter()
        .flat_map(|a| a["stream_detail"].as_array().cloned().unwrap_or_default())
        .filter(|s| s["config"]["storage"] == "file")
    {
        let name = s["name"].as_str().unwrap().to_owned();
        let state = &s["state"];
        streams.insert(
            name.clone(),
            json!({"messages": state["messages"], "first_seq": state["first_seq"],
                "last_seq": state["last_seq"]}),
        );
        for c in s["consumer_detail"].as_array().cloned().unwrap_or_default() {
            if c["config"]["durable_name"]
                .as_str()
                .unwrap_or_default()
                .is_empty()
            {
                continue;
            }
            consumers.insert(
                format!("{name}/{}", c["name"].as_str().unwrap()),
                json!({
                    "created": c["created"],
                    "max_deliver": c["config"]["max_deliver"],
                    "delivered": position(&c["delivered"]),
                    "ack_floor": position(&c["ack_floor"]),
                    "num_pending": c["num_pending"],
                    "num_ack_pending": c["num_ack_pending"],
                    "num_redelivered": c["num_redelivered"],
                    "num_waiting": c["num_waiting"],
                }),
            );
        }
    }
    (streams, consumers)
}

/// Whether `new` serves everything `old` did, unchanged and in the same order. Fields a later
/// release added are allowed; a field `old` had as `null` may be left out.
fn unchanged(old: &Value, new: &Value) -> bool {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => o
            .iter()
            .all(|(k, v)| n.get(k).map_or(v.is_null(), |nv| unchanged(v, nv))),
        (Value::Array(o), Value::Array(n)) => {
            o.len() == n.len() && o.iter().zip(n).all(|(a, b)| unchanged(a, b))
        }
        _ => old == new,
    }
}

fn assert_unchanged(what: &str, old: &Value, new: &Value) {
    assert!(
        unchanged(old, new),
        "{what} changed in the upgrade:\nthen: {old:#}\nnow:  {new:#}"
    );
}

fn created(consumer: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(consumer["created"].as_str().unwrap()).unwrap()
}

fn number(v: &Value) -> u64 {
    v.as_u64().unwrap()
}

/// 10:00–13:00 UTC (within the fixture doctor's Berlin hours) on a Tuesday to Thursday at
/// least two days ahead, so no reminder falls due during the test.
fn window_ahead() -> (String, String) {
    use chrono::{Datelike as _, Weekday};
    let mut day = chrono::Utc::now().date_naive() + chrono::Days::new(2);
    while !matches!(day.weekday(), Weekday::Tue | Weekday::Wed | Weekday::Thu) {
        day = day + chrono::Days::new(1);
    }
    (format!("{day}T10:00:00Z"), format!("{day}T13:00:00Z"))
}

async fn data_of_5eaba83_serves_unchanged_and_no_consumer_replays(b: Backend) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(FIXTURE)
        .join(match b {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        });
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("metadata.json")).unwrap())
            .unwrap();
    let served = &meta["served"];
    let old_id = meta["appointment_id"].as_str().unwrap();
    let starts = chrono::DateTime::parse_from_rfc3339(
        served["appointment"]["appointment"]["start"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert!(
        starts > chrono::Utc::now() + chrono::Days::new(2),
        "the fixture's appointment is close or past, so its reminders fall due: make the \
         fixture again (scripts/make-upgrade-fixture.sh)"
    );
    let mut up = Upgraded::start(b, &fixture).await;

    // Every durable consumer of the release is there, created when it was, where it was, and
    // updated in place to this release's max_deliver; none was added, nothing was delivered
    // again, and nothing was published at start (no outbox sent twice).
    let (streams, consumers) = up.settled_jetstream().await;
    let old_consumers: BTreeMap<String, &Value> = meta["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let key = format!(
                "{}/{}",
                c["stream"].as_str().unwrap(),
                c["name"].as_str().unwrap()
            );
            (key, c)
        })
        .collect();
    assert_eq!(
        consumers.keys().collect::<Vec<_>>(),
        old_consumers.keys().collect::<Vec<_>>(),
        "the durable consumers after the upgrade are the release's"
    );
    for (key, old) in &old_consumers {
        let now = &consumers[key];
        assert_eq!(created(now), created(old), "{key} was created again");
        for field in ["delivered", "ack_floor", "num_redelivered"] {
            assert_eq!(now[field], old[field], "{key}: {field} moved at start");
        }
        assert_eq!(
            now["max_deliver"],
            carehub_runtime::consumer::MAX_DELIVER,
            "{key} was updated in place to this release's settings"
        );
    }
    for (name, old) in meta["streams"].as_object().unwrap() {
        assert_eq!(&streams[name], old, "stream {name} changed at start");
    }

    // The accounts sign in with their passwords, and only with them.
    let mut tokens = BTreeMap::new();
    for (role, account) in meta["accounts"].as_object().unwrap() {
        let email = account["email"].as_str().unwrap();
        let r = up.login(email, account["password"].as_str().unwrap()).await;
        assert_eq!(r.status(), 200, "{role} {email} signs in");
        let session: Value = r.json().await.unwrap();
        assert_eq!(session["user"]["id"], account["id"], "{role}");
        tokens.insert(
            role.clone(),
            session["access_token"].as_str().unwrap().to_owned(),
        );
        let r = up.login(email, "not the password").await;
        assert_eq!(r.status(), 401, "{role} {email} with a wrong password");
    }
    let (admin, doctor, patient) = (&tokens["admin"], &tokens["doctor"], &tokens["patient"]);

    // What the release served is served unchanged; the accounts read UTC as their time zone
    // (auth migration 0005 on the release's rows).
    for (role, token) in &tokens {
        let me = up.get(token, "/api/me").await;
        assert_unchanged(
            &format!("GET /api/me of the {role}"),
            &served["me"][role],
            &me,
        );
        assert_eq!(me["time_zone"], "UTC", "{role}");
    }
    for (what, token, path) in [
        (
            "doctor_profile",
            doctor,
            "/api/doctors/me/profile".to_owned(),
        ),
        (
            "doctor_availability",
            doctor,
            "/api/doctors/me/availability".to_owned(),
        ),
        (
            "patient_profile",
            patient,
            "/api/patients/me/profile".to_owned(),
        ),
        (
            "patient_record",
            patient,
            "/api/patients/me/record".to_owned(),
        ),
        (
            "appointment",
            patient,
            format!("/api/appointments/{old_id}"),
        ),
    ] {
        assert_unchanged(what, &served[what], &up.get(token, &path).await);
    }
    let doctor_id = meta["accounts"]["doctor"]["id"].as_str().unwrap();
    let listed = up.get(admin, "/api/appointments").await;
    assert!(
        listed["appointments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| unchanged(&served["appointment"]["appointment"], a)),
        "the admin lists the appointment: {listed}"
    );
    for (role, token) in &tokens {
        assert_unchanged(
            &format!("the notifications of the {role}"),
            &served["notifications"][role],
            &Value::Array(up.notifications(token).await),
        );
    }
    let mut ws = Ws::signed_in(&up.hub, patient).await;
    ws.send(json!({"type": "chat_history", "room": old_id, "limit": 200}))
        .await;
    let history = ws.next_of("chat_history").await;
    assert_unchanged("the chat history", &served["chat"], &history["messages"]);
    let mail_then: Vec<String> = meta["mail_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(up.mail_files(), mail_then, "no mail was sent again");

    // New writes: the patient edits the profile from the version the release left, chats on,
    // and asks the doctor for another appointment, which the doctor accepts.
    let version = served["patient_profile"]["version"].as_i64().unwrap();
    let etag = format!("\"{version}\"");
    let mut profile = served["patient_profile"].clone();
    profile["phone"] = json!("+49 30 7777777");
    let r = up
        .send(
            reqwest::Method::PUT,
            patient,
            "/api/patients/me/profile",
            &[("If-Match", &etag)],
            &profile,
        )
        .await;
    assert_eq!(r.status(), 200, "profile save: {}", r.text().await.unwrap());
    let saved: Value = r.json().await.unwrap();
    assert_eq!(saved["version"], version + 1);
    assert_eq!(saved["phone"], "+49 30 7777777");

    let last_seq = served["chat"].as_array().unwrap().len();
    let seq = ws
        .chat(old_id, "after-upgrade-1", "Still on for then?")
        .await;
    assert_eq!(
        seq,
        i64::try_from(last_seq).unwrap() + 1,
        "the room goes on"
    );

    let (window_start, window_end) = window_ahead();
    let r = up
        .send(
            reqwest::Method::POST,
            patient,
            "/api/appointments",
            &[("Idempotency-Key", "after-upgrade-request")],
            &json!({"target": {"doctor": doctor_id}, "window_start": window_start,
                "window_end": window_end, "reason": "after the upgrade"}),
        )
        .await;
    assert_eq!(r.status(), 201, "request: {}", r.text().await.unwrap());
    let new_id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait::until("the doctor's offer", DEADLINE, || async {
        let offers = up.get(doctor, "/api/offers").await;
        offers["offers"]
            .as_array()?
            .iter()
            .any(|o| o["appointment"]["id"] == new_id.as_str())
            .then_some(())
    })
    .await;
    let r = up
        .send(
            reqwest::Method::POST,
            doctor,
            &format!("/api/appointments/{new_id}/accept"),
            &[],
            &json!({"start": window_start}),
        )
        .await;
    assert_eq!(r.status(), 200, "accept: {}", r.text().await.unwrap());
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "confirmed");
    wait::until("the confirmation in the app", DEADLINE, || async {
        up.notifications(patient)
            .await
            .iter()
            .any(|n| n["appointment_id"] == new_id.as_str() && n["kind"] == "appointment_confirmed")
            .then_some(())
    })
    .await;

    // Each consumer went on from where it stood: it was given exactly the events published
    // since, once each, and acknowledged them (each of the release's consumers reads the whole
    // of its stream, so every new message is one delivery).
    let (streams_after, consumers_after) = up.settled_jetstream().await;
    for (key, old) in &old_consumers {
        let now = &consumers_after[key];
        let stream = old["stream"].as_str().unwrap();
        let published = number(&streams_after[stream]["last_seq"])
            - number(&meta["streams"][stream]["last_seq"]);
        assert_eq!(created(now), created(old), "{key} was created again");
        assert_eq!(now["num_redelivered"], old["num_redelivered"], "{key}");
        assert_eq!(
            number(&now["delivered"]["consumer_seq"]) - number(&old["delivered"]["consumer_seq"]),
            published,
            "{key} was given each of the {published} new events of {stream} once"
        );
        assert_eq!(
            now["ack_floor"]["stream_seq"], streams_after[stream]["last_seq"],
            "{key} applied everything"
        );
    }
    assert!(
        number(&streams_after["CAREHUB_APPOINTMENTS"]["last_seq"])
            > number(&meta["streams"]["CAREHUB_APPOINTMENTS"]["last_seq"]),
        "the new appointment's events are in the stream"
    );

    // Nothing about the release's appointment was notified again; every new notification is
    // about the new one and has its one mail.
    let mut fresh = 0;
    for (role, token) in &tokens {
        let now = up.notifications(token).await;
        let (old_ones, new_ones): (Vec<Value>, Vec<Value>) = now.into_iter().partition(|n| {
            served["notifications"][role]
                .as_array()
                .unwrap()
                .iter()
                .any(|o| o["id"] == n["id"])
        });
        assert_unchanged(
            &format!("the notifications of the {role}"),
            &served["notifications"][role],
            &Value::Array(old_ones),
        );
        for n in &new_ones {
            assert_eq!(n["appointment_id"], new_id.as_str(), "{role}: {n}");
        }
        fresh += new_ones.len();
    }
    assert!(fresh >= 2, "the new request and confirmation were notified");
    let mail_now = wait::until("one mail per new notification", DEADLINE, || async {
        let files = up.mail_files();
        (files.len() >= mail_then.len() + fresh).then_some(files)
    })
    .await;
    assert_eq!(mail_now.len(), mail_then.len() + fresh, "{mail_now:?}");
    for m in &mail_then {
        assert!(mail_now.contains(m), "the release's mail {m} is kept");
    }

    assert!(up.stop().await, "carehub up exits cleanly on SIGTERM");
}
