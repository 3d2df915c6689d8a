//! `carehub backup` while registrations keep coming: the copies pass SQLite's integrity check,
//! and a carehub started on them has every account acknowledged before the backup began.

use crate::harness::{Backend, Clinic, PASSWORD};
use carehub::system::Component;
use serde_json::{Value, json};
use sqlx::{ConnectOptions as _, Connection as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

fn carehub(args: &[&str], vars: &[(&str, &str)]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_carehub"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(crate::support::nats::server_var());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

async fn output(mut cmd: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap()
}

async fn sqlite(file: &Path) -> sqlx::SqliteConnection {
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(file)
        .read_only(true)
        .connect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_writes_is_intact_and_restores_every_acknowledged_account() {
    let mut clinic = Clinic::start(Backend::Sqlite).await;
    let data_dir = clinic.dir.display().to_string();

    // Three clients register accounts without pause; each acknowledged one is noted with when
    // its answer arrived.
    let acked: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let stop = CancellationToken::new();
    let mut writers = Vec::new();
    for w in 0..3 {
        let (http, url, acked, stop) = (
            clinic.http.clone(),
            clinic.url("/api/auth/register"),
            acked.clone(),
            stop.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.is_cancelled() {
                n += 1;
                let email = format!("w{w}-{n}-{}@example.org", uuid::Uuid::new_v4().simple());
                let r = http
                    .post(&url)
                    .json(&json!({"email": email, "password": PASSWORD, "display_name": "Pat"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
                acked.lock().unwrap().push((Instant::now(), email));
            }
        }));
    }
    crate::support::wait::until(
        "some accounts before the backup",
        std::time::Duration::from_secs(30),
        || async { (acked.lock().unwrap().len() >= 10).then_some(()) },
    )
    .await;

    let dest = clinic.dir.join("backup-1");
    let dest_s = dest.display().to_string();
    let began = Instant::now();
    let out = output(carehub(
        &["backup", &dest_s],
        &[("CAREHUB_DATA_DIR", &data_dir)],
    ))
    .await;
    assert!(
        out.status.success(),
        "backup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Let writes go on a little after the backup, then stop them.
    let after_backup = acked.lock().unwrap().len();
    crate::support::wait::until(
        "writes after the backup",
        std::time::Duration::from_secs(30),
        || async { (acked.lock().unwrap().len() > after_backup + 3).then_some(()) },
    )
    .await;
    stop.cancel();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let before: Vec<&String> = acked
        .iter()
        .filter(|(t, _)| *t < began)
        .map(|(_, e)| e)
        .collect();
    assert!(before.len() >= 10);

    // The manifest lists every service's copy, each intact.
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dest.join("manifest.json")).unwrap())
            .unwrap();
    let files = manifest["files"].as_array().unwrap();
    let services: Vec<&str> = files
        .iter()
        .map(|f| f["service"].as_str().unwrap())
        .collect();
    assert_eq!(
        services,
        ["auth", "doctor", "patient", "notify", "admin", "comms"]
    );
    for f in files {
        let copy = dest.join(f["file"].as_str().unwrap());
        assert_eq!(
            f["size"].as_u64().unwrap(),
            std::fs::metadata(&copy).unwrap().len()
        );
        let mut conn = sqlite(&copy).await;
        let check: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert_eq!(check, ["ok"], "{}", copy.display());
        conn.close().await.unwrap();
    }

    // Never overwrites; PostgreSQL points to pg_dump.
    let again = output(carehub(
        &["backup", &dest_s],
        &[("CAREHUB_DATA_DIR", &data_dir)],
    ))
    .await;
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not empty"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let pg = output(carehub(
        &[
            "backup",
            &clinic.dir.join("backup-pg").display().to_string(),
        ],
        &[
            ("CAREHUB_DATA_DIR", &data_dir),
            (
                "CAREHUB_DATABASE_URL",
                "postgres://carehub@127.0.0.1:1/carehub",
            ),
        ],
    ))
    .await;
    assert!(!pg.status.success());
    assert!(
        String::from_utf8_lossy(&pg.stderr).contains("pg_dump"),
        "{}",
        String::from_utf8_lossy(&pg.stderr)
    );

    // Restore: stop carehub, put the copies in a new data directory, start carehub on it.
    clinic.system.stop().await;
    let restored: PathBuf = clinic.dir.join("restored");
    std::fs::create_dir_all(&restored).unwrap();
    for f in files {
        let name = f["file"].as_str().unwrap();
        std::fs::copy(dest.join(name), restored.join(name)).unwrap();
    }
    let mut conn = sqlite(&restored.join("auth.db")).await;
    let emails: Vec<String> = sqlx::query_scalar("SELECT email FROM users")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    for e in &before {
        assert_eq!(
            emails.iter().filter(|x| x == e).count(),
            1,
            "{e} acknowledged before the backup is in the copy once"
        );
    }
    let base = clinic
        .start_more(
            &[("CAREHUB_DATA_DIR", &restored.display().to_string())],
            &Component::ALL,
        )
        .await
        .unwrap();
    clinic
        .wait_status(&base, "/readyz", None, 200, "the restored carehub ready")
        .await;
    for e in before.iter().step_by(before.len() / 5) {
        let r = clinic
            .http
            .post(format!("{base}/api/auth/login"))
            .json(&json!({"email": e, "password": PASSWORD, "refresh_token_in": "body"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{e} signs in on the restored carehub");
    }
}
