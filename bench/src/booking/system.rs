//! The carehub under test, as child processes of this executable: a nats-server (JetStream),
//! then one `carehub serve <component>` per component (auth, doctor, patient, notify, admin,
//! gateway), all in a temporary data directory, on SQLite files there or on one PostgreSQL
//! database. Dropping the [`Carehub`] kills every child and removes the directory.

use super::postgres::PrivatePostgres;
use crate::cluster::{check_nats, free_port, start_nats, tail};
use anyhow::Context as _;
use carehub_natsd::ChildNats;
use carehub_runtime::{CommonConfig, Db, Env};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const READY_DEADLINE: Duration = Duration::from_secs(60);

/// Where the services keep their data.
#[derive(Debug, Clone)]
pub(crate) enum Storage {
    /// One SQLite file per service in the data directory.
    Sqlite,
    /// A private PostgreSQL cluster started for the run.
    PrivatePostgres,
    /// An existing, empty PostgreSQL database.
    Postgres(String),
}

/// The running system.
pub(crate) struct Carehub {
    dir: PathBuf,
    vars: Vec<(String, String)>,
    /// Stopped in `drop` after the other children.
    nats: Option<ChildNats>,
    children: Vec<(String, Child, PathBuf)>,
    /// Stopped in `drop` after the services.
    postgres: Option<PrivatePostgres>,
    /// `http://127.0.0.1:<port>` of the gateway.
    pub(crate) base: String,
    pub(crate) nats_url: String,
}

impl std::fmt::Debug for Carehub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Carehub")
            .field("dir", &self.dir)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Drop for Carehub {
    fn drop(&mut self) {
        for (_, child, _) in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.children.clear();
        self.nats = None;
        // The PostgreSQL cluster lives inside `dir`; stop it before deleting its files.
        self.postgres = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Carehub {
    /// Creates the data directory, starts nats-server (and PostgreSQL when asked) and the
    /// signing key file. The services start with [`Carehub::start_services`], so accounts can
    /// be written into the auth database first.
    ///
    /// # Errors
    /// When nats-server or PostgreSQL cannot be started, or a file cannot be written.
    pub(crate) async fn prepare(storage: &Storage) -> anyhow::Result<Self> {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "carehub-bench-booking-{}-{stamp}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let nats = match start_nats(&dir, READY_DEADLINE).await {
            Ok(nats) => nats,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let nats_url = nats.url();
        let gateway_port = free_port()?;
        let key_file = dir.join("auth-signing-keys.json");
        let mut vars: Vec<(String, String)> = [
            ("CAREHUB_NATS_URL", nats_url.clone()),
            ("CAREHUB_DATA_DIR", dir.display().to_string()),
            ("CAREHUB_AUTH_KEY_FILE", key_file.display().to_string()),
            ("CAREHUB_GATEWAY_ADDR", format!("127.0.0.1:{gateway_port}")),
            // The edge limiter protects a real deployment; here it would cap the measurement.
            ("CAREHUB_RATE_LIMIT_PER_SEC", "1000000".to_owned()),
            ("CAREHUB_RATE_LIMIT_BURST", "1000000".to_owned()),
            ("CAREHUB_COOKIE_SECURE", "false".to_owned()),
            ("CAREHUB_SHUTDOWN_GRACE", "1".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mut carehub = Self {
            dir: dir.clone(),
            vars: Vec::new(),
            nats: Some(nats),
            children: Vec::new(),
            postgres: None,
            base: format!("http://127.0.0.1:{gateway_port}"),
            nats_url,
        };
        match storage {
            Storage::Sqlite => {}
            Storage::PrivatePostgres => {
                let pg = PrivatePostgres::start(&dir).await?;
                vars.push(("CAREHUB_DATABASE_URL".into(), pg.url.clone()));
                carehub.postgres = Some(pg);
            }
            Storage::Postgres(url) => vars.push(("CAREHUB_DATABASE_URL".into(), url.clone())),
        }
        carehub.vars = vars;
        carehub_auth::keys::ensure_key_file(&key_file)?;
        Ok(carehub)
    }

    /// The configuration every child gets.
    pub(crate) fn env(&self) -> Env {
        Env::from_pairs(self.vars.clone())
    }

    /// Opens `service`'s database as that service does.
    ///
    /// # Errors
    /// When the database cannot be reached.
    pub(crate) async fn db(&self, service: &str) -> anyhow::Result<Db> {
        let env = self.env();
        let common = CommonConfig::from_env(&env)?;
        let url = common.database_url_for(&env, service);
        Db::connect(service, url.as_deref(), &common.data_dir).await
    }

    /// Starts every component and waits until the gateway's `/readyz` answers 200 (it checks
    /// that every service answers).
    ///
    /// # Errors
    /// When a child exits early or the gateway is not ready in time.
    pub(crate) async fn start_services(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        for c in ["auth", "doctor", "patient", "notify", "admin", "gateway"] {
            self.spawn_carehub(c, c, &[])?;
        }
        let base = self.base.clone();
        crate::cluster::wait_ready(http, &base, READY_DEADLINE, || self.check_children()).await
    }

    /// Adds a variable every child started from now on gets.
    pub(crate) fn set_var(&mut self, var: &str, value: impl Into<String>) {
        self.vars.push((var.to_owned(), value.into()));
    }

    /// The process id of the child called `name` (`nats-server` for the NATS server).
    pub(crate) fn pid(&self, name: &str) -> Option<u32> {
        if name == "nats-server" {
            return self.nats.as_ref().and_then(ChildNats::pid);
        }
        self.children
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, c, _)| c.id())
    }

    /// The directory every child keeps its data and log in.
    pub(crate) fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// `carehub serve <component>` as the child `name`, with this run's variables only (plus
    /// `PATH`, `RUST_LOG`) and `extra`.
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
        self.spawn(name, cmd)
    }

    fn spawn(&mut self, name: &str, mut cmd: Command) -> anyhow::Result<()> {
        let log = self.dir.join(format!("{name}.log"));
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        self.children.push((name.to_owned(), child, log));
        Ok(())
    }

    /// Fails with the child's log when one has exited.
    pub(crate) fn check_children(&mut self) -> anyhow::Result<()> {
        check_nats(self.nats.as_mut())?;
        for (name, child, log) in &mut self.children {
            if let Some(status) = child.try_wait()? {
                anyhow::bail!(
                    "{name} exited early ({status}); end of its log:\n{}",
                    tail(log)
                );
            }
        }
        Ok(())
    }

    /// Waits until something accepts connections on `127.0.0.1:port`.
    ///
    /// # Errors
    /// When a child exits early or nothing listens in time.
    pub(crate) async fn wait_for_port(&mut self, port: u16) -> anyhow::Result<()> {
        crate::cluster::wait_for_port(port, READY_DEADLINE, || self.check_children()).await
    }
}
