//! What CI can check of the deployment without a Docker engine: the NATS configs pass
//! `nats-server -t`, docker-compose.yml passes `docker-compose config -q` (and refuses to run
//! without its passwords), and every carehub service of the compose file, run with its exact
//! command and environment as a local process, makes the gateway ready.

use crate::deploy::{Deployment, compose_file};
use crate::support::nats::NatsCredentials;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn nats_server() -> std::path::PathBuf {
    carehub_natsd::nats_server_binary().expect("nats-server is installed")
}

#[test]
fn every_nats_config_passes_nats_server_test_mode() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("nats/conf");
    let creds = NatsCredentials::generate();
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("conf") {
            continue;
        }
        let out = Command::new(nats_server())
            .arg("-c")
            .arg(&path)
            .arg("-t")
            .envs(creds.server_env())
            .env("NATS_CLUSTER_PASSWORD", "pRoutes")
            .env(
                "NATS_ROUTES",
                "[nats-route://route:pRoutes@nats-1:6222, nats-route://route:pRoutes@nats-2:6222]",
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}{}",
            path.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert_eq!(
        checked, 5,
        "permissions, single and three node configs are checked"
    );
    // Without its passwords a config is refused: nothing falls back to an open server.
    let out = Command::new(nats_server())
        .arg("-c")
        .arg(dir.join("single.conf"))
        .arg("-t")
        .env_clear()
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "single.conf passed without passwords"
    );
}

#[test]
fn docker_compose_config_is_valid_with_its_env_file_and_refused_without() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir =
        std::env::temp_dir().join(format!("carehub-compose-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let env_file = dir.join("test.env");
    let made = Command::new("bash")
        .arg(root.join("scripts/compose-env.sh"))
        .arg(&env_file)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let text = std::fs::read_to_string(&env_file).unwrap();
    assert!(text.contains("NATS_GATEWAY_PASSWORD=p"), "{text}");
    let check = |env_file: Option<&Path>| {
        let mut cmd = Command::new("docker-compose");
        cmd.current_dir(root)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        if let Some(f) = env_file {
            cmd.arg("--env-file").arg(f);
        } else {
            // An empty env file: the repository's own .env (if any) must not count.
            let empty = dir.join("empty.env");
            std::fs::write(&empty, "").unwrap();
            cmd.arg("--env-file").arg(empty);
        }
        cmd.arg("-f")
            .arg(compose_file())
            .args(["config", "-q"])
            .output()
            .expect("docker-compose (scripts/install-deps.sh installs it)")
    };
    let ok = check(Some(&env_file));
    assert!(
        ok.status.success(),
        "docker-compose config -q: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let refused = check(None);
    assert!(!refused.status.success(), "compose ran without passwords");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("scripts/compose-env.sh"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let again = Command::new("bash")
        .arg(root.join("scripts/compose-env.sh"))
        .arg(&env_file)
        .output()
        .unwrap();
    assert!(
        !again.status.success(),
        "an existing env file was overwritten"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_compose_service_runs_as_a_local_process_until_the_gateway_is_ready() {
    let mut d = Deployment::start().await;
    assert!(d.exited().is_empty(), "exited: {:?}", d.exited());
    // Streams were created with three copies, as CAREHUB_STREAM_REPLICAS=3 asks.
    // A loaded machine may answer a JetStream API request late while the stream's leader is
    // still being elected; the stream only has to be there within the deadline.
    let js = async_nats::jetstream::new(d.nats.client_as("ops").await);
    let replicas = crate::support::wait::until(
        "CAREHUB_APPOINTMENTS answers its info",
        Duration::from_secs(30),
        || async {
            let mut stream = js.get_stream("CAREHUB_APPOINTMENTS").await.ok()?;
            Some(stream.info().await.ok()?.config.num_replicas)
        },
    )
    .await;
    assert_eq!(replicas, 3);
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/api/auth/register", d.base))
        .json(
            &serde_json::json!({"email": crate::harness::unique_email("compose"),
            "password": crate::harness::PASSWORD, "display_name": "Com Pose"}),
        )
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    assert_eq!(status, 202, "auth answers through the gateway: {body}");
}

/// Every shipped single-node and cluster config makes JetStream acknowledge a message only once
/// it is on disk (`sync_interval: always`), as the running server reports it on `/varz`; and
/// that server is the release the suite is pinned to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_configs_sync_every_acknowledged_message_to_disk() {
    use crate::support::nats::{NatsServer, Secured, conf};
    let monitor = crate::support::net::free_port();
    let server = NatsServer::start_secured_with(Secured {
        main: conf::SINGLE,
        credentials: NatsCredentials::generate(),
        env: Vec::new(),
        args: vec!["-m".into(), monitor.to_string()],
    })
    .await;
    let varz: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{monitor}/varz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        varz["jetstream"]["config"]["sync_always"], true,
        "JetStream settings of single.conf: {}",
        varz["jetstream"]["config"]
    );
    let (a, b, c) = carehub_natsd::NATS_SERVER_VERSION;
    assert_eq!(varz["version"], format!("{a}.{b}.{c}"));
    drop(server);
    for node in conf::NODES {
        let block = node
            .split("jetstream {")
            .nth(1)
            .and_then(|rest| rest.split('}').next())
            .expect("a jetstream block");
        assert!(
            block.lines().any(|l| l.trim() == "sync_interval: always"),
            "a cluster node's jetstream block: {block}"
        );
    }
}
