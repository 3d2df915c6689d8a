//! The processes a benchmark runs as its children, so each one's CPU time can be read: a
//! [`Rig`] is a temporary data directory, the nats-server in it and `carehub serve <component>`
//! children; the login benchmark's [`Cluster`] is one `carehub serve auth` and three
//! `carehub serve gateway` on a rig (A and B cache verified tokens, the third does not). The
//! booking and hub benchmarks build their system on a rig as well (`booking::system`).

use super::PASSWORD;
use super::cpu::Procs;
use anyhow::Context as _;
use carehub_natsd::{ChildNats, Launch, NatsCredentials, conf, random_nats_password};
use carehub_runtime::{CommonConfig, Env};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const READY_DEADLINE: Duration = Duration::from_secs(30);
/// The window [`Rig::settle`] measures CPU time over (`/proc` counts in 10 ms ticks).
const QUIET_WINDOW: Duration = Duration::from_millis(500);
/// The share of one core below which [`Rig::settle`] calls the system quiet: idle services
/// still run their timers (outbox relays, leases, reminders).
const QUIET_CPU: f64 = 0.06;

/// How a [`Rig`]'s nats-server is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RigNats {
    /// JetStream on the command line: no users, and the server's default sync (every two
    /// minutes).
    Plain,
    /// The shipped single-node config (`nats/conf/single.conf`) with carehub's users, with its
    /// `sync_interval: always` (every acknowledged message on disk), or without that line
    /// (the server's default).
    Shipped { sync_always: bool },
}

/// A run's temporary data directory, its nats-server and its `carehub serve` children, each
/// logging to `<dir>/<name>.log`. Dropping it kills the children (newest first, so nothing
/// logs a storm of reconnect attempts), then nats-server, and removes the directory.
pub(crate) struct Rig {
    dir: PathBuf,
    /// What every child gets (and only that, plus `PATH` and `RUST_LOG`, so the caller's own
    /// `CAREHUB_*` settings cannot leak in).
    vars: Vec<(String, String)>,
    nats: Option<ChildNats>,
    /// See [`Rig::nats_url`].
    nats_url: String,
    children: Vec<Spawned>,
    /// How long a child may take to become ready.
    deadline: Duration,
}

struct Spawned {
    name: String,
    child: Child,
    log: PathBuf,
}

impl std::fmt::Debug for Rig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rig")
            .field("dir", &self.dir)
            .field("children", &self.children.len())
            .finish_non_exhaustive()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stop_children();
        self.nats = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Rig {
    /// Creates `<tmp>/<name>-<pid>-<stamp>` and starts nats-server in it. Every child gets
    /// `CAREHUB_NATS_URL` and `CAREHUB_DATA_DIR`; children must be ready within `deadline`.
    ///
    /// # Errors
    /// When the directory cannot be created or nats-server does not start in time.
    pub(crate) async fn start(name: &str, deadline: Duration) -> anyhow::Result<Self> {
        Self::start_with(name, deadline, RigNats::Plain).await
    }

    /// [`Rig::start`] with the nats-server configured as `nats` says. With the shipped config
    /// every child connects as its own NATS user, and [`Rig::nats_url`] carries the password
    /// of a user with every right, for the benchmark's own connections.
    ///
    /// # Errors
    /// As [`Rig::start`].
    pub(crate) async fn start_with(
        name: &str,
        deadline: Duration,
        nats: RigNats,
    ) -> anyhow::Result<Self> {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("{name}-{}-{stamp}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut rig = Self {
            dir,
            vars: Vec::new(),
            nats: None,
            nats_url: String::new(),
            children: Vec::new(),
            deadline,
        };
        let (launch, bench_password) = match nats {
            RigNats::Plain => (Launch::plain(&rig.dir), None),
            RigNats::Shipped { sync_always } => {
                let main: String = conf::SINGLE
                    .lines()
                    .filter(|l| sync_always || !l.trim_start().starts_with("sync_interval:"))
                    .map(|l| format!("{l}\n"))
                    .collect();
                anyhow::ensure!(
                    main.contains("sync_interval: always") == sync_always,
                    "nats/conf/single.conf no longer sets sync_interval as this benchmark expects"
                );
                let credentials = NatsCredentials::generate();
                for (var, value) in credentials.client_env() {
                    rig.set_var(&var, value);
                }
                let password = random_nats_password();
                let launch = Launch::carehub(&rig.dir, &main, credentials)
                    .unrestricted_user("bench", password.clone());
                (launch, Some(password))
            }
        };
        let nats = launch
            .ready_within(deadline)
            .start()
            .await
            .context("starting nats-server")?;
        rig.set_var("CAREHUB_NATS_URL", nats.url());
        rig.set_var("CAREHUB_DATA_DIR", rig.dir.display().to_string());
        rig.nats_url = match bench_password {
            Some(password) => format!("nats://bench:{password}@127.0.0.1:{}", nats.port()),
            None => nats.url(),
        };
        rig.nats = Some(nats);
        Ok(rig)
    }

    /// The URL the benchmark itself connects to NATS with (credentials included, if any).
    pub(crate) fn nats_url(&self) -> &str {
        &self.nats_url
    }

    /// The directory every child keeps its data and log in.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Adds a variable every child started from now on gets.
    pub(crate) fn set_var(&mut self, var: &str, value: impl Into<String>) {
        self.vars.push((var.to_owned(), value.into()));
    }

    /// The configuration every child gets.
    pub(crate) fn env(&self) -> Env {
        Env::from_pairs(self.vars.clone())
    }

    /// The process id of the child called `name` (`nats-server` for the NATS server).
    pub(crate) fn pid(&self, name: &str) -> Option<u32> {
        if name == "nats-server" {
            return self.nats.as_ref().and_then(ChildNats::pid);
        }
        self.children
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.child.id())
    }

    /// The process ids of the children whose name starts with `prefix`, oldest first.
    pub(crate) fn pids<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = u32> + 'a {
        self.children
            .iter()
            .filter(move |s| s.name.starts_with(prefix))
            .map(|s| s.child.id())
    }

    /// Waits until the children and nats-server are quiet: together at most [`QUIET_CPU`] of
    /// one core over each of two [`QUIET_WINDOW`]s in a row, so what a step set in motion
    /// (events relayed and consumed, notifications and mails written) is done before the next
    /// step is timed. Returns how long it took, or `None` when `deadline` passed first (the
    /// caller times anyway and says so).
    ///
    /// # Errors
    /// When a child has gone away.
    pub(crate) async fn settle(&self, deadline: Duration) -> anyhow::Result<Option<Duration>> {
        let started = Instant::now();
        let pids: Vec<String> = self
            .pids("")
            .chain(self.pid("nats-server"))
            .map(|p| p.to_string())
            .collect();
        let total = || -> anyhow::Result<u64> { pids.iter().map(|p| super::cpu::ticks(p)).sum() };
        let quiet_ticks =
            (QUIET_WINDOW.as_secs_f64() * QUIET_CPU * super::cpu::TICKS_PER_SEC as f64) as u64;
        let mut quiet_windows = 0;
        let mut before = total()?;
        while started.elapsed() < deadline {
            tokio::time::sleep(QUIET_WINDOW).await;
            let now = total()?;
            quiet_windows = if now.saturating_sub(before) <= quiet_ticks {
                quiet_windows + 1
            } else {
                0
            };
            if quiet_windows == 2 {
                return Ok(Some(started.elapsed()));
            }
            before = now;
        }
        Ok(None)
    }

    /// `carehub serve <component>` as the child `name`, with the rig's variables and `extra`.
    ///
    /// # Errors
    /// When the executable or its log file cannot be had.
    pub(crate) fn spawn_carehub(
        &mut self,
        name: &str,
        component: &str,
        extra: &[(&str, String)],
    ) -> anyhow::Result<()> {
        let exe = crate::carehub_executable()?;
        let mut cmd = Command::new(exe);
        cmd.arg("serve").arg(component).env_clear();
        for var in ["PATH", "RUST_LOG"] {
            if let Some(v) = std::env::var_os(var) {
                cmd.env(var, v);
            }
        }
        cmd.envs(self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd.envs(extra.iter().map(|(k, v)| (*k, v.as_str())));
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
            child,
            log,
        });
        Ok(())
    }

    /// Fails with the end of its log when nats-server or a child has exited.
    ///
    /// # Errors
    /// When one has.
    pub(crate) fn check_children(&mut self) -> anyhow::Result<()> {
        if let Some(nats) = self.nats.as_mut()
            && let Some(status) = nats.exited()
        {
            anyhow::bail!(
                "nats-server exited early ({status}); end of its log:\n{}",
                tail(&nats.log_path())
            );
        }
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

    /// Waits until `<base>/readyz` answers 200, checking between attempts that no child died.
    ///
    /// # Errors
    /// When a child exits early or the gateway is not ready in time.
    pub(crate) async fn wait_ready(
        &mut self,
        http: &reqwest::Client,
        base: &str,
    ) -> anyhow::Result<()> {
        let until = Instant::now() + self.deadline;
        let url = format!("{base}/readyz");
        loop {
            if let Ok(r) = http.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            self.check_children()?;
            anyhow::ensure!(
                Instant::now() < until,
                "{url} did not answer 200 within {:?}",
                self.deadline
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until something accepts connections on `127.0.0.1:port`, checking between
    /// attempts that no child died.
    ///
    /// # Errors
    /// When a child exits early or nothing listens in time.
    pub(crate) async fn wait_for_port(&mut self, port: u16) -> anyhow::Result<()> {
        let until = Instant::now() + self.deadline;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            self.check_children()?;
            anyhow::ensure!(
                Instant::now() < until,
                "nothing listened on port {port} within {:?}",
                self.deadline
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Kills every child, newest first (nats-server stays).
    pub(crate) fn stop_children(&mut self) {
        for s in self.children.iter_mut().rev() {
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
        self.children.clear();
    }
}

/// The login benchmark's system under test. Dropping it kills every child and removes the
/// directory.
#[derive(Debug)]
pub(crate) struct Cluster {
    rig: Rig,
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

impl Cluster {
    /// Starts everything and creates `accounts` active patient accounts (see [`Cluster::email`]).
    ///
    /// # Errors
    /// When nats-server is missing, a port or file cannot be had, or a component does not
    /// become ready in time (the error carries the end of its log).
    pub(crate) async fn start(accounts: usize) -> anyhow::Result<Self> {
        let mut rig = Rig::start("carehub-bench", READY_DEADLINE).await?;
        let key_file = rig.dir().join("auth-signing-keys.json");
        rig.set_var("CAREHUB_AUTH_KEY_FILE", key_file.display().to_string());
        // The edge limiter protects a real deployment; here it would cap the measurement.
        rig.set_var("CAREHUB_RATE_LIMIT_PER_SEC", "1000000");
        rig.set_var("CAREHUB_RATE_LIMIT_BURST", "1000000");
        rig.set_var("CAREHUB_COOKIE_SECURE", "false");
        rig.set_var("CAREHUB_SHUTDOWN_GRACE", "1");
        // Only auth runs behind the gateways here; readiness must not wait for the others.
        rig.set_var("CAREHUB_REQUIRED_SERVICES", "auth");
        let env = rig.env();
        let common = CommonConfig::from_env(&env)?;
        let hash_permits = carehub_auth::AuthConfig::from_env(&env, &common)?.hash_permits;
        let mut cluster = Self {
            rig,
            nats_url: common.nats_url,
            gateway_a: String::new(),
            gateway_b: String::new(),
            gateway_uncached: String::new(),
            hash_permits,
            accounts,
        };

        carehub_auth::keys::ensure_key_file(&key_file)?;
        cluster.create_accounts(&env).await?;
        cluster.rig.spawn_carehub("auth", "auth", &[])?;
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
            cluster.rig.wait_ready(&http, base).await?;
        }
        Ok(cluster)
    }

    /// The email of benchmark account `i` (`0..accounts`).
    pub(crate) fn email(i: usize) -> String {
        format!("bench-{i}@bench.example.org")
    }

    /// The processes whose CPU time counts as the server's.
    pub(crate) fn procs(&self) -> Procs {
        Procs {
            auth: self.rig.pid("auth").unwrap_or(0),
            gateways: self.rig.pids("gateway").collect(),
            nats: self.rig.pid("nats-server").unwrap_or(0),
            groups: Vec::new(),
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
        self.rig.spawn_carehub(
            name,
            "gateway",
            &[
                ("CAREHUB_GATEWAY_ADDR", format!("127.0.0.1:{port}")),
                ("CAREHUB_VERIFY_CACHE_TTL", cache_ttl_secs.to_string()),
            ],
        )?;
        Ok(format!("http://127.0.0.1:{port}"))
    }
}

/// Connects to `url` with the user and password it carries (`nats://user:password@host:port`,
/// as [`Rig::nats_url`] gives them), which async-nats does not send by itself.
///
/// # Errors
/// When the URL is malformed or the server refuses.
pub(crate) async fn nats_connect(url: &str) -> anyhow::Result<async_nats::Client> {
    let addr: async_nats::ServerAddr = url.parse().context("a NATS URL")?;
    let options = match (addr.username(), addr.password()) {
        (Some(user), Some(password)) => {
            async_nats::ConnectOptions::new().user_and_password(user.into(), password.into())
        }
        _ => async_nats::ConnectOptions::new(),
    };
    // Boxed: a connecting client is a large future, awaited inside others.
    Box::pin(options.connect(addr))
        .await
        .context("connecting to nats-server")
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
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join(
        "
",
    )
}
