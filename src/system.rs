//! Starting and stopping carehub components in this process.

use anyhow::Context as _;
use carehub_bus::Bus;
use carehub_runtime::metrics::MetricsConfig;
use carehub_runtime::service::Running;
use carehub_runtime::{CommonConfig, Db, Env};
use std::net::SocketAddr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A part of carehub that can run alone (`carehub serve <component>`) or with the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Component {
    Auth,
    Doctor,
    Patient,
    Notify,
    Admin,
    Gateway,
    /// A hub node (websockets); several may run at once.
    Hub,
}

impl Component {
    /// Every component, in start order (services and hub before the gateway that needs them).
    pub const ALL: [Component; 7] = [
        Component::Auth,
        Component::Doctor,
        Component::Patient,
        Component::Notify,
        Component::Admin,
        Component::Hub,
        Component::Gateway,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Doctor => "doctor",
            Self::Patient => "patient",
            Self::Notify => "notify",
            Self::Admin => "admin",
            Self::Gateway => "gateway",
            Self::Hub => "hub",
        }
    }
}

/// Starts one NATS-only service with its own bus connection and database.
async fn launch(
    c: Component,
    env: &Env,
    common: &CommonConfig,
    bus: Bus,
    db: Db,
) -> anyhow::Result<Running> {
    match c {
        Component::Auth => {
            carehub_auth::start(carehub_auth::AuthConfig::from_env(env, common)?, bus, db).await
        }
        Component::Doctor => {
            carehub_doctor::start(
                carehub_doctor::DoctorConfig::from_env(env, common)?,
                bus,
                db,
            )
            .await
        }
        Component::Patient => {
            let cfg = carehub_patient::PatientConfig::from_env(env, common)?;
            carehub_patient::start(cfg, bus, db).await
        }
        Component::Notify => {
            let cfg = carehub_notify::NotifyConfig::from_env(env, common)?;
            carehub_notify::start(cfg, bus, db).await
        }
        Component::Admin => {
            let cfg = carehub_admin::AdminConfig::from_env(env, common)?;
            carehub_admin::start(cfg, bus, db).await
        }
        Component::Gateway | Component::Hub => {
            anyhow::bail!("{} is not a NATS-only service", c.name())
        }
    }
}

/// Running components. Dropping it does not stop them; call [`System::stop`].
pub struct System {
    /// Where the gateway listens, when it runs here.
    pub gateway_addr: Option<SocketAddr>,
    /// Where the hub listens, when it runs here.
    pub hub_addr: Option<SocketAddr>,
    /// Where Prometheus metrics are served (`CAREHUB_METRICS_ADDR`), when they are on.
    pub metrics_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl std::fmt::Debug for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("System")
            .field("gateway_addr", &self.gateway_addr)
            .field("hub_addr", &self.hub_addr)
            .field("metrics_addr", &self.metrics_addr)
            .finish_non_exhaustive()
    }
}

const CONNECT_DEADLINE: Duration = Duration::from_secs(30);

impl System {
    /// Starts `components` configured by `env`. Each gets its own NATS connection (and the
    /// auth service its own database pool), exactly as when run as separate processes.
    /// With a metrics address (`CAREHUB_METRICS_ADDR`, or `CAREHUB_<COMPONENT>_METRICS_ADDR`
    /// when one component starts alone), one listener serves every component's metrics.
    ///
    /// # Errors
    /// When configuration is invalid, NATS or a database cannot be reached, or a listener
    /// cannot bind. Components already started are stopped again.
    pub async fn start(env: &Env, components: &[Component]) -> anyhow::Result<Self> {
        let common = CommonConfig::from_env(env)?;
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let mut system = Self {
            gateway_addr: None,
            hub_addr: None,
            metrics_addr: None,
            shutdown,
            tracker,
        };
        system.start_metrics(env, components).await?;
        for c in Component::ALL.iter().filter(|c| components.contains(c)) {
            if let Err(e) = system.start_one(env, &common, *c).await {
                system.stop().await;
                return Err(e.context(format!("starting {}", c.name())));
            }
        }
        Ok(system)
    }

    /// Installs the metrics recorder and serves it, when an address is configured. Runs before
    /// any component starts, so every component records into it.
    async fn start_metrics(&mut self, env: &Env, components: &[Component]) -> anyhow::Result<()> {
        let alone = match components {
            [one] => Some(one.name()),
            _ => None,
        };
        let Some(addr) = MetricsConfig::from_env(env, alone)?.addr else {
            return Ok(());
        };
        let handle = carehub_runtime::metrics::install()?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("CAREHUB_METRICS_ADDR: cannot listen on {addr}"))?;
        self.metrics_addr = Some(listener.local_addr()?);
        let stop = self.shutdown.clone();
        self.tracker.spawn(async move {
            if let Err(e) = carehub_runtime::metrics::serve(listener, handle, stop).await {
                tracing::error!(error = %e, "metrics listener stopped with an error");
            }
        });
        Ok(())
    }

    async fn start_one(
        &mut self,
        env: &Env,
        common: &CommonConfig,
        c: Component,
    ) -> anyhow::Result<()> {
        let bus = Bus::connect(&common.bus_config(env, c.name())?, CONNECT_DEADLINE)
            .await
            .with_context(|| format!("connecting to NATS at {}", common.nats_url))?;
        let stop = self.shutdown.clone();
        let grace = common.shutdown_grace;
        match c {
            Component::Gateway => {
                let cfg = carehub_gateway::GatewayConfig::from_env(&self.hub_env(env))?;
                let listener =
                    tokio::net::TcpListener::bind(cfg.addr)
                        .await
                        .with_context(|| {
                            format!("CAREHUB_GATEWAY_ADDR: cannot listen on {}", cfg.addr)
                        })?;
                self.gateway_addr = Some(listener.local_addr()?);
                let gateway = carehub_gateway::Gateway::new(cfg, bus.clone()).await?;
                self.tracker.spawn(async move {
                    if let Err(e) = gateway.serve(listener, stop, grace).await {
                        tracing::error!(error = %e, "gateway stopped with an error");
                    }
                    bus.drain().await;
                    tracing::info!("gateway stopped");
                });
            }
            Component::Hub => {
                let cfg = carehub_hub::HubConfig::from_env(env, common)?;
                let listener = carehub_hub::Hub::bind(&cfg)
                    .with_context(|| format!("CAREHUB_HUB_ADDR: cannot listen on {}", cfg.addr))?;
                self.hub_addr = Some(listener.local_addr()?);
                let url = common.database_url_for(env, carehub_hub::DATABASE);
                let db =
                    Db::connect(carehub_hub::DATABASE, url.as_deref(), &common.data_dir).await?;
                let hub = carehub_hub::Hub::start(cfg, bus.clone(), db.clone()).await?;
                self.tracker.spawn(async move {
                    if let Err(e) = hub.serve(listener, stop, grace).await {
                        tracing::error!(error = %e, "hub stopped with an error");
                    }
                    bus.drain().await;
                    db.close().await;
                    tracing::info!("hub stopped");
                });
            }
            service => {
                let url = common.database_url_for(env, service.name());
                let db = Db::connect(service.name(), url.as_deref(), &common.data_dir).await?;
                let running = launch(service, env, common, bus.clone(), db.clone()).await?;
                self.tracker.spawn(async move {
                    stop.cancelled().await;
                    running.shutdown(grace).await;
                    bus.drain().await;
                    db.close().await;
                    tracing::info!(component = service.name(), "stopped");
                });
            }
        }
        tracing::info!(component = c.name(), "started");
        Ok(())
    }

    /// `env`, plus `CAREHUB_HUB_URL` naming the hub started here when the user set none, so
    /// the gateway forwards `/ws` to it.
    fn hub_env(&self, env: &Env) -> Env {
        let mut env = env.clone();
        if let (None, Some(mut addr)) = (env.raw("CAREHUB_HUB_URL"), self.hub_addr) {
            if addr.ip().is_unspecified() {
                addr.set_ip(if addr.is_ipv4() {
                    std::net::Ipv4Addr::LOCALHOST.into()
                } else {
                    std::net::Ipv6Addr::LOCALHOST.into()
                });
            }
            env.set("CAREHUB_HUB_URL", format!("ws://{addr}/ws"));
        }
        env
    }

    /// A token that stops every component when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until every component has stopped (after the token was cancelled).
    pub(crate) async fn wait(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Stops every component gracefully and waits for them.
    pub async fn stop(&self) {
        self.shutdown.cancel();
        self.wait().await;
    }
}

/// Raises this process's soft limit on open files to its hard limit (a hub node or gateway
/// holds one descriptor per socket, two per forwarded one) and returns the soft limit now in
/// force; 0 when it cannot be read.
pub fn raise_open_files_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 0;
    };
    if soft < hard {
        if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            tracing::warn!(error = %e, soft, hard, "cannot raise the open-files limit");
            return soft;
        }
        return hard;
    }
    soft
}
