//! The carehub under test, as child processes of this executable: a nats-server (JetStream),
//! then one `carehub serve <component>` per component (auth, doctor, patient, notify, admin,
//! gateway), all in a temporary data directory, on SQLite files there or on one PostgreSQL
//! database. Dropping the [`Carehub`] kills every child and removes the directory.

use super::postgres::PrivatePostgres;
use crate::cluster::{Rig, RigNats, free_port};
use carehub_runtime::{CommonConfig, Db};
use std::path::PathBuf;
use std::time::Duration;

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
#[derive(Debug)]
pub(crate) struct Carehub {
    /// The children: variables, process ids, more `carehub serve` children, readiness.
    pub(crate) rig: Rig,
    /// Stopped in `drop` after the services, before the rig removes the directory it lives in.
    postgres: Option<PrivatePostgres>,
    /// `http://127.0.0.1:<port>` of the gateway.
    pub(crate) base: String,
    /// What the benchmark's own NATS connections use (a user with every right).
    pub(crate) nats_url: String,
}

impl Drop for Carehub {
    fn drop(&mut self) {
        self.rig.stop_children();
        self.postgres = None;
    }
}

impl Carehub {
    /// Creates the data directory, starts nats-server from the shipped single-node config
    /// (with `sync_interval: always` or without it), PostgreSQL when asked, and the signing key
    /// file. The services start with [`Carehub::start_services`], so accounts can
    /// be written into the auth database first.
    ///
    /// # Errors
    /// When nats-server or PostgreSQL cannot be started, or a file cannot be written.
    pub(crate) async fn prepare(storage: &Storage, sync_always: bool) -> anyhow::Result<Self> {
        let mut rig = Rig::start_with(
            "carehub-bench-booking",
            READY_DEADLINE,
            RigNats::Shipped { sync_always },
        )
        .await?;
        let gateway_port = free_port()?;
        let key_file = rig.dir().join("auth-signing-keys.json");
        rig.set_var("CAREHUB_AUTH_KEY_FILE", key_file.display().to_string());
        rig.set_var("CAREHUB_GATEWAY_ADDR", format!("127.0.0.1:{gateway_port}"));
        // The edge limiter protects a real deployment; here it would cap the measurement.
        rig.set_var("CAREHUB_RATE_LIMIT_PER_SEC", "1000000");
        rig.set_var("CAREHUB_RATE_LIMIT_BURST", "1000000");
        rig.set_var("CAREHUB_COOKIE_SECURE", "false");
        rig.set_var("CAREHUB_SHUTDOWN_GRACE", "1");
        let nats_url = rig.nats_url().to_owned();
        let mut carehub = Self {
            rig,
            postgres: None,
            base: format!("http://127.0.0.1:{gateway_port}"),
            nats_url,
        };
        match storage {
            Storage::Sqlite => {}
            Storage::PrivatePostgres => {
                let pg = PrivatePostgres::start(carehub.rig.dir()).await?;
                carehub.rig.set_var("CAREHUB_DATABASE_URL", pg.url.clone());
                carehub.postgres = Some(pg);
            }
            Storage::Postgres(url) => carehub.rig.set_var("CAREHUB_DATABASE_URL", url.clone()),
        }
        carehub_auth::keys::ensure_key_file(&key_file)?;
        Ok(carehub)
    }

    /// Opens `service`'s database as that service does.
    ///
    /// # Errors
    /// When the database cannot be reached.
    pub(crate) async fn db(&self, service: &str) -> anyhow::Result<Db> {
        let (url, data_dir) = self.database(service)?;
        Db::connect(service, url.as_deref(), &data_dir).await
    }

    /// What `service` opens its database from: the URL (`None`: a SQLite file) and the data
    /// directory, for [`Db::connect`].
    ///
    /// # Errors
    /// When the configuration is invalid.
    pub(crate) fn database(&self, service: &str) -> anyhow::Result<(Option<String>, PathBuf)> {
        let env = self.rig.env();
        let common = CommonConfig::from_env(&env)?;
        Ok((common.database_url_for(&env, service), common.data_dir))
    }

    /// The process id of the private PostgreSQL cluster's postmaster (`None` on SQLite or an
    /// existing database).
    pub(crate) fn postgres_pid(&self) -> Option<u32> {
        self.postgres.as_ref().and_then(PrivatePostgres::pid)
    }

    /// Starts every component and waits until the gateway's `/readyz` answers 200 (it checks
    /// that every service answers).
    ///
    /// # Errors
    /// When a child exits early or the gateway is not ready in time.
    pub(crate) async fn start_services(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        for c in ["auth", "doctor", "patient", "notify", "admin", "gateway"] {
            self.rig.spawn_carehub(c, c, &[])?;
        }
        self.rig.wait_ready(http, &self.base).await
    }
}
