//! The system under test, started as child processes of this executable so each one's CPU
//! time can be read: a nats-server, one `carehub serve auth` and three `carehub serve gateway`
//! (A and B cache verified tokens, the third does not), all in a temporary data directory.
//! Dropping the [`Cluster`] kills every child and removes the directory.

use super::PASSWORD;
use super::cpu::Procs;
use anyhow::Context as _;
use carehub_natsd::{ChildNats, Launch};
use carehub_runtime::{CommonConfig, Env};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const READY_DEADLINE: Duration = Duration::from_secs(30);

/// The running system under test.
pub(crate) struct Cluster {
    dir: PathBuf,
    vars: Vec<(String, String)>,
    /// Stopped in `drop` after the other children.
    nats: Option<ChildNats>,
    children: Vec<Spawned>,
    pub(crate) nats_url: String,
    /// Gateway A: token cache on (`CAREHUB_VERIFY_CACHE_TTL=30`).
    pub(crate) gateway_a: String,
    /// Gateway B: token cache on; watches a revocation made through A.
    pub(crate) gateway_b: String,
    /// Token cache off (`CAREHUB_VERIFY_CACHE_TTL=0`): every request verifies through auth.
    pub(crate) gateway_uncached: String,
    /// Concurrent argon2 computations the auth child allows (its default, the CPU count).
    pub(crate) hash_permits: usize,
    accounts: usize,
}

struct Spawned {
    name: String,
    kind: Kind,
    child: Child,
    log: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Auth,
    Gateway,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("dir", &self.dir)
            .field("gateway_a", &self.gateway_a)
            .finish_non_exhaustive()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Gateways first, nats-server last, so nothing logs a storm of reconnect attempts.
        for s in self.children.iter_mut().rev() {
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
        self.nats = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Cluster {
    /// Starts everything and creates `accounts` active patient accounts (see [`Cluster::email`]).
    ///
    /// # Errors
    /// When nats-server is missing, a port or file cannot be had, or a component does not
    /// become ready in time (the error carries the end of its log).
    pub(crate) async fn start(accounts: usize) -> anyhow::Result<Self> {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("carehub-bench-{}-{stamp}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let nats = match start_nats(&dir, READY_DEADLINE).await {
            Ok(nats) => nats,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let key_file = dir.join("auth-signing-keys.json");
        let vars: Vec<(String, String)> = [
            ("CAREHUB_NATS_URL", nats.url()),
            ("CAREHUB_DATA_DIR", dir.display().to_string()),
            ("CAREHUB_AUTH_KEY_FILE", key_file.display().to_string()),
            // The edge limiter protects a real deployment; here it would cap the measurement.
            ("CAREHUB_RATE_LIMIT_PER_SEC", "1000000".to_owned()),
            ("CAREHUB_RATE_LIMIT_BURST", "1000000".to_owned()),
            ("CAREHUB_COOKIE_SECURE", "false".to_owned()),
            ("CAREHUB_SHUTDOWN_GRACE", "1".to_owned()),
            // Only auth runs behind the gateways here; readiness must not wait for the others.
            ("CAREHUB_REQUIRED_SERVICES", "auth".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let env = Env::from_pairs(vars.clone());
        let common = CommonConfig::from_env(&env)?;
        let hash_permits = carehub_auth::AuthConfig::from_env(&env, &common)?.hash_permits;
        let mut cluster = Self {
            dir,
            vars,
            nats: Some(nats),
            children: Vec::new(),
            nats_url: common.nats_url,
            gateway_a: String::new(),
            gateway_b: String::new(),
            gateway_uncached: String::new(),
            hash_permits,
            accounts,
        };

        carehub_auth::keys::ensure_key_file(&key_file)?;
        cluster.create_accounts(&env).await?;
        cluster.spawn_carehub("auth", &[])?;
        cluster.gateway_a = cluster.spawn_gateway("gateway-a", 30)?;
        cluster.gateway_b = cluster.spawn_gateway("gateway-b", 30)?;
        cluster.gateway_uncached = cluster.spawn_gateway("gateway-uncached", 0)?;
        let http = reqwest::Client::new();
        let bases = [
            &cluster.gateway_a,
            &cluster.gateway_b,
            &cluster.gateway_uncached,
        ]
        .map(String::clone);
        for base in &bases {
            cluster.wait_ready(&http, base).await?;
        }
        Ok(cluster)
    }

    /// The email of benchmark account `i` (`0..accounts`).
    pub(crate) fn email(i: usize) -> String {
        format!("bench-{i}@bench.example.org")
    }

    /// The processes whose CPU time counts as the server's.
    pub(crate) fn procs(&self) -> Procs {
        let pids = |kind| {
            self.children
                .iter()
                .filter(move |s| s.kind == kind)
                .map(|s| s.child.id())
        };
        Procs {
            auth: pids(Kind::Auth).next().unwrap_or(0),
            gateways: pids(Kind::Gateway).collect(),
            nats: self.nats.as_ref().and_then(ChildNats::pid).unwrap_or(0),
        }
    }

    async fn create_accounts(&self, env: &Env) -> anyhow::Result<()> {
        let db = carehub::provision::auth_db(env)
            .await
            .context("opening the benchmark's auth database")?;
        for i in 0..self.accounts {
            carehub_auth::create_user(
                &db,
                &Self::email(i),
                PASSWORD,
                "Bench User",
                carehub_nats::Role::Patient,
            )
            .await
            .with_context(|| format!("creating benchmark account {i}"))?;
        }
        db.close().await;
        Ok(())
    }

    fn spawn_gateway(&mut self, name: &str, cache_ttl_secs: u32) -> anyhow::Result<String> {
        let port = free_port()?;
        self.spawn_carehub(
            name,
            &[
                ("CAREHUB_GATEWAY_ADDR", format!("127.0.0.1:{port}")),
                ("CAREHUB_VERIFY_CACHE_TTL", cache_ttl_secs.to_string()),
            ],
        )?;
        Ok(format!("http://127.0.0.1:{port}"))
    }

    /// `carehub serve <component>` with the cluster's variables (and only those, plus `PATH`
    /// and `RUST_LOG`, so the caller's own `CAREHUB_*` settings cannot leak in).
    fn spawn_carehub(&mut self, name: &str, extra: &[(&str, String)]) -> anyhow::Result<()> {
        let exe = crate::carehub_executable()?;
        let (component, kind) = if name.starts_with("gateway") {
            ("gateway", Kind::Gateway)
        } else {
            (name, Kind::Auth)
        };
        let mut cmd = Command::new(exe);
        cmd.arg("serve").arg(component).env_clear();
        for var in ["PATH", "RUST_LOG"] {
            if let Some(v) = std::env::var_os(var) {
                cmd.env(var, v);
            }
        }
        cmd.envs(self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd.envs(extra.iter().map(|(k, v)| (*k, v.as_str())));
        self.spawn(name, kind, cmd)
    }

    fn spawn(&mut self, name: &str, kind: Kind, mut cmd: Command) -> anyhow::Result<()> {
        let log = self.dir.join(format!("{name}.log"));
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        self.children.push(Spawned {
            name: name.to_owned(),
            kind,
            child,
            log,
        });
        Ok(())
    }

    /// Fails with the child's log when one has exited.
    fn check_children(&mut self) -> anyhow::Result<()> {
        check_nats(self.nats.as_mut())?;
        for s in &mut self.children {
            if let Some(status) = s.child.try_wait()? {
                anyhow::bail!(
                    "{} exited early ({status}); end of its log:\n{}",
                    s.name,
                    tail(&s.log)
                );
            }
        }
        Ok(())
    }

    async fn wait_ready(&mut self, http: &reqwest::Client, base: &str) -> anyhow::Result<()> {
        wait_ready(http, base, READY_DEADLINE, || self.check_children()).await
    }
}

/// Starts the benchmarks' nats-server (JetStream, no users) in `<dir>/nats` on a free port,
/// logging to `<dir>/nats-server.log`, and waits until it greets clients.
///
/// # Errors
/// When nats-server is missing or does not start in time (the error carries its log).
pub(crate) async fn start_nats(dir: &Path, deadline: Duration) -> anyhow::Result<ChildNats> {
    Launch::plain(dir)
        .ready_within(deadline)
        .start()
        .await
        .context("starting nats-server")
}

/// Fails with the end of the nats-server's log when it has exited.
///
/// # Errors
/// When it has.
pub(crate) fn check_nats(nats: Option<&mut ChildNats>) -> anyhow::Result<()> {
    if let Some(nats) = nats
        && let Some(status) = nats.exited()
    {
        anyhow::bail!(
            "nats-server exited early ({status}); end of its log:\n{}",
            tail(&nats.log_path())
        );
    }
    Ok(())
}

/// Waits until something accepts connections on `127.0.0.1:port`, calling `check` between
/// attempts (it fails when a child process died).
///
/// # Errors
/// What `check` returns, or nothing listening within `deadline`.
pub(crate) async fn wait_for_port(
    port: u16,
    deadline: Duration,
    mut check: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let until = Instant::now() + deadline;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        check()?;
        anyhow::ensure!(
            Instant::now() < until,
            "nothing listened on port {port} within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Waits until `<base>/readyz` answers 200, calling `check` between attempts.
///
/// # Errors
/// What `check` returns, or no 200 within `deadline`.
pub(crate) async fn wait_ready(
    http: &reqwest::Client,
    base: &str,
    deadline: Duration,
    mut check: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let until = Instant::now() + deadline;
    let url = format!("{base}/readyz");
    loop {
        if let Ok(r) = http.get(&url).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        check()?;
        anyhow::ensure!(
            Instant::now() < until,
            "{url} did not answer 200 within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A port nothing listens on right now and not handed out before in this process (the OS
/// picks it; a tiny race with other programs).
///
/// # Errors
/// When no socket can be bound.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    carehub_natsd::free_port().context("finding a free port")
}

/// The last lines of a log file, for an error message.
pub(crate) fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join(
        "
",
    )
}
