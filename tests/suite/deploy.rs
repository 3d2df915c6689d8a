//! The deployment as docker-compose.yml describes it, run as local processes: a three-node NATS
//! cluster from `nats/conf/node-*.conf` on loopback ports, and every carehub service of the
//! compose file with its exact command and environment, hosts and ports replaced by loopback
//! ones, named volumes by directories, and the database by a private PostgreSQL database.

use crate::support::nats::{NatsCredentials, NatsServer, Secured, conf};
use crate::support::{net::free_port, postgres, wait};
use serde_norway::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The repository's docker-compose.yml.
pub(crate) fn compose_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docker-compose.yml")
}

/// Three nats-servers clustered on loopback, from the cluster config set.
pub(crate) struct NatsCluster {
    pub nodes: Vec<NatsServer>,
    pub credentials: NatsCredentials,
    pub cluster_password: String,
    /// Monitoring ports (`/connz`, `/healthz`), one per node.
    pub monitor_ports: Vec<u16>,
}

impl NatsCluster {
    /// Starts `nats-1`..`nats-3` and waits until JetStream has a meta leader.
    pub(crate) async fn start() -> NatsCluster {
        let credentials = NatsCredentials::generate();
        let cluster_password = carehub_natsd::random_nats_password();
        let route_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let monitor_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes = format!(
            "[{}]",
            route_ports
                .iter()
                .map(|p| format!("nats-route://route:{cluster_password}@127.0.0.1:{p}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut nodes = Vec::new();
        for (i, main) in conf::NODES.iter().enumerate() {
            nodes.push(
                NatsServer::start_secured_with(Secured {
                    main,
                    credentials: credentials.clone(),
                    env: vec![
                        ("NATS_CLUSTER_PASSWORD".into(), cluster_password.clone()),
                        ("NATS_ROUTES".into(), routes.clone()),
                    ],
                    args: vec![
                        "--cluster".into(),
                        format!("nats://127.0.0.1:{}", route_ports[i]),
                        "-m".into(),
                        monitor_ports[i].to_string(),
                    ],
                })
                .await,
            );
        }
        let cluster = NatsCluster {
            nodes,
            credentials,
            cluster_password,
            monitor_ports,
        };
        cluster.wait_jetstream().await;
        cluster
    }

    /// A client of the whole cluster as carehub's NATS user `user`.
    pub(crate) async fn client_as(&self, user: &str) -> async_nats::Client {
        let addrs: Vec<async_nats::ServerAddr> = self
            .nodes
            .iter()
            .filter_map(|n| n.url().parse().ok())
            .collect();
        self.nodes[0]
            .options_as(user)
            .connect(addrs)
            .await
            .expect("connect to the cluster")
    }

    /// Waits until JetStream answers (a meta leader is elected).
    pub(crate) async fn wait_jetstream(&self) {
        let nc = self.client_as("ops").await;
        wait::until(
            "JetStream ready in the cluster",
            Duration::from_secs(30),
            || {
                let nc = nc.clone();
                async move {
                    let m = nc.request("$JS.API.INFO", "".into()).await.ok()?;
                    let v: serde_json::Value = serde_json::from_slice(&m.payload).ok()?;
                    v.get("error").is_none().then_some(())
                }
            },
        )
        .await;
    }

    /// The index of the node named `name` (`nats-2` is 1).
    pub(crate) fn index_of(name: &str) -> Option<usize> {
        name.strip_prefix("nats-")?
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_sub(1))
    }

    /// The node a client whose connection name is `name` is connected to, from `/connz`.
    pub(crate) async fn node_of_connection(&self, name: &str) -> Option<usize> {
        let http = reqwest::Client::new();
        for (i, port) in self.monitor_ports.iter().enumerate() {
            let url = format!("http://127.0.0.1:{port}/connz?limit=1024");
            let Ok(r) = http.get(url).send().await else {
                continue;
            };
            let Ok(v) = r.json::<serde_json::Value>().await else {
                continue;
            };
            let found = v["connections"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["name"] == name));
            if found {
                return Some(i);
            }
        }
        None
    }
}

/// A process of the deployment.
struct Proc {
    name: String,
    child: Child,
    /// The environment it was started with.
    env: BTreeMap<String, String>,
}

/// carehub running as docker-compose.yml says, against a [`NatsCluster`].
pub(crate) struct Deployment {
    pub nats: NatsCluster,
    pub dir: PathBuf,
    /// The gateway's base URL (`http://127.0.0.1:<port>`).
    pub base: String,
    /// The PostgreSQL database every service uses.
    pub database_url: String,
    procs: Vec<Proc>,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for p in &self.procs {
                let log = self.dir.join(format!("{}.log", p.name));
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: String = text
                    .lines()
                    .rev()
                    .take(30)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n");
                eprintln!("--- {} (last lines) ---\n{tail}", p.name);
            }
        }
        for p in self.procs.iter_mut().rev() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One carehub service of the compose file.
#[derive(Debug, Clone)]
pub(crate) struct ComposeService {
    pub name: String,
    pub command: Vec<String>,
    pub environment: BTreeMap<String, String>,
    /// `volume:/path` mounts of named volumes.
    pub volumes: Vec<(String, String)>,
    /// Services this one waits for, with the condition.
    pub depends_on: BTreeMap<String, String>,
}

/// Every service of the compose file that runs the carehub image, in file order.
pub(crate) fn carehub_services(doc: &Value) -> Vec<ComposeService> {
    let services = doc["services"].as_mapping().expect("services");
    let mut out = Vec::new();
    for (name, svc) in services {
        let name = name.as_str().expect("service name").to_owned();
        let image = svc["image"].as_str().unwrap_or_default();
        if !image.starts_with("carehub:") {
            continue;
        }
        let command = svc["command"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{name}: command must be a list"))
            .iter()
            .map(|c| c.as_str().expect("command word").to_owned())
            .collect();
        let environment = svc["environment"]
            .as_mapping()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        let v = match v {
                            Value::String(s) => s.clone(),
                            Value::Number(n) => n.to_string(),
                            Value::Bool(b) => b.to_string(),
                            other => panic!("{name}: unexpected value {other:?}"),
                        };
                        (k.as_str().expect("variable").to_owned(), v)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let volumes = svc["volumes"]
            .as_sequence()
            .map(|v| {
                v.iter()
                    .filter_map(|v| {
                        let mut parts = v.as_str()?.split(':');
                        Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let depends_on = svc["depends_on"]
            .as_mapping()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().unwrap_or_default().to_owned(),
                            v["condition"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(ComposeService {
            name,
            command,
            environment,
            volumes,
            depends_on,
        });
    }
    out
}

/// Replaces `${VAR}`, `${VAR:?message}` and `${VAR:-default}` as docker-compose does.
///
/// # Panics
/// When a variable without a default is not in `vars`.
pub(crate) fn interpolate(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closing brace") + start;
        let inner = &rest[start + 2..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner.split(":?").next().unwrap_or(inner), None),
        };
        let value = vars
            .get(name)
            .map(String::as_str)
            .or(default)
            .unwrap_or_else(|| panic!("{name} is not set"));
        out.push_str(value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// What `.env` holds in a deployment (scripts/compose-env.sh), for the given passwords.
pub(crate) fn env_file_vars(nats: &NatsCluster) -> BTreeMap<String, String> {
    let mut vars: BTreeMap<String, String> = nats.credentials.server_env().into_iter().collect();
    vars.insert(
        "NATS_CLUSTER_PASSWORD".into(),
        nats.cluster_password.clone(),
    );
    vars.insert(
        "POSTGRES_PASSWORD".into(),
        carehub_natsd::random_nats_password(),
    );
    vars
}

impl Deployment {
    /// Starts the cluster, then every carehub service of docker-compose.yml (one-shot ones to
    /// completion first), and waits until the gateway's `/readyz` answers 200.
    pub(crate) async fn start() -> Deployment {
        Self::start_with(&[]).await
    }

    /// As [`Deployment::start`], with `extra` variables set for every carehub process.
    pub(crate) async fn start_with(extra: &[(&str, &str)]) -> Deployment {
        Self::start_configured(extra, &[]).await
    }

    /// As [`Deployment::start_with`], and `(service, variable, value)` of `per_service` set for
    /// that compose service's process only.
    pub(crate) async fn start_configured(
        extra: &[(&str, &str)],
        per_service: &[(&str, &str, &str)],
    ) -> Deployment {
        let nats = NatsCluster::start().await;
        let text = std::fs::read_to_string(compose_file()).expect("docker-compose.yml");
        let doc: Value = serde_norway::from_str(&text).expect("docker-compose.yml parses");
        let services = carehub_services(&doc);
        assert!(
            !services.is_empty(),
            "no carehub services in the compose file"
        );
        let dir =
            std::env::temp_dir().join(format!("carehub-deploy-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("deployment dir");
        let vars = env_file_vars(&nats);
        let database = postgres::fresh_database().await;

        // Host names of the compose network, as loopback addresses.
        let mut hosts: Vec<(String, String)> = (0..3)
            .map(|i| {
                (
                    format!("nats-{}:4222", i + 1),
                    format!("127.0.0.1:{}", nats.nodes[i].port()),
                )
            })
            .collect();
        let mut listens: BTreeMap<String, (String, String)> = BTreeMap::new();
        for s in &services {
            for v in s.environment.values() {
                if let Some(port) = v.strip_prefix("0.0.0.0:") {
                    let local = format!("127.0.0.1:{}", free_port());
                    hosts.push((format!("{}:{port}", s.name), local.clone()));
                    listens.insert(s.name.clone(), (v.clone(), local));
                }
            }
        }

        let mut deployment = Deployment {
            nats,
            dir: dir.clone(),
            base: String::new(),
            database_url: database.clone(),
            procs: Vec::new(),
        };
        let one_shot: Vec<String> = services
            .iter()
            .flat_map(|s| s.depends_on.iter())
            .filter(|(_, c)| c.as_str() == "service_completed_successfully")
            .map(|(n, _)| n.clone())
            .collect();
        let ordered = services
            .iter()
            .filter(|s| one_shot.contains(&s.name))
            .chain(services.iter().filter(|s| !one_shot.contains(&s.name)));
        for s in ordered {
            let mut env: BTreeMap<String, String> = BTreeMap::new();
            for (k, v) in &s.environment {
                let mut v = interpolate(v, &vars);
                if k == "CAREHUB_DATABASE_URL" {
                    assert!(v.starts_with("postgres://"), "{}: {k}={v}", s.name);
                    v.clone_from(&database);
                }
                for (host, local) in &hosts {
                    v = v.replace(host.as_str(), local);
                }
                if let Some((listen, local)) = listens.get(&s.name)
                    && &v == listen
                {
                    v.clone_from(local);
                }
                for (volume, path) in &s.volumes {
                    let local = dir.join("volumes").join(volume);
                    std::fs::create_dir_all(&local).expect("volume dir");
                    if let Some(rest) = v.strip_prefix(path.as_str()) {
                        v = format!("{}{rest}", local.display());
                    }
                }
                env.insert(k.clone(), v);
            }
            // The image's own environment (Dockerfile ENV): a data directory per container.
            let data = dir.join("data").join(&s.name);
            std::fs::create_dir_all(&data).expect("data dir");
            env.insert("CAREHUB_DATA_DIR".into(), data.display().to_string());
            for (k, v) in extra {
                env.insert((*k).to_owned(), (*v).to_owned());
            }
            for (service, k, v) in per_service {
                if *service == s.name {
                    env.insert((*k).to_owned(), (*v).to_owned());
                }
            }
            let log = std::fs::File::create(dir.join(format!("{}.log", s.name))).expect("log");
            let mut child = Command::new(env!("CARGO_BIN_EXE_carehub"))
                .args(&s.command)
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .envs(crate::support::nats::server_var())
                .envs(&env)
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn carehub");
            if one_shot.contains(&s.name) {
                let status = child.wait().expect("one-shot");
                assert!(status.success(), "{} failed: {status}", s.name);
                continue;
            }
            if s.command == ["serve", "gateway"] {
                let (_, local) = listens.get(&s.name).expect("the gateway listens");
                deployment.base = format!("http://{local}");
            }
            deployment.procs.push(Proc {
                name: s.name.clone(),
                child,
                env,
            });
        }
        assert!(
            !deployment.base.is_empty(),
            "no gateway in the compose file"
        );
        let http = reqwest::Client::new();
        let url = format!("{}/readyz", deployment.base);
        wait::until("the gateway's /readyz", Duration::from_secs(60), || {
            let (http, url) = (http.clone(), url.clone());
            async move { (http.get(url).send().await.ok()?.status() == 200).then_some(()) }
        })
        .await;
        deployment
    }

    /// Runs `carehub <args>` to completion with the environment of compose service `name` (its
    /// database and NATS user), as an operator would in that container.
    pub(crate) fn run_as(&self, name: &str, args: &[&str]) -> std::process::Output {
        let proc = self
            .procs
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no compose service {name}"));
        Command::new(env!("CARGO_BIN_EXE_carehub"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&proc.env)
            .stdin(Stdio::null())
            .output()
            .expect("run carehub")
    }

    /// Sends `signal` (`STOP`, `CONT`) to the carehub process of compose service `name`.
    pub(crate) fn signal(&self, name: &str, signal: &str) {
        let proc = self
            .procs
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no compose service {name}"));
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &proc.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success(), "kill -{signal} {name}");
    }

    /// The names of the carehub processes that exited.
    pub(crate) fn exited(&mut self) -> Vec<String> {
        self.procs
            .iter_mut()
            .filter_map(|p| (!matches!(p.child.try_wait(), Ok(None))).then(|| p.name.clone()))
            .collect()
    }
}
