//! The hub: authenticated websockets for chat, live notifications, presence and WebRTC
//! call signaling. Several hub nodes run at once; NATS carries frames between them, so two users
//! on different nodes talk as if on one. The protocol is in `docs/PROTOCOL.md`; its frame types
//! are in `carehub_nats::hub`.
//!
//! Map:
//! - `config` typed settings;
//! - `origin` the allowed-origin rule;
//! - `conn` one socket: upgrade, handshake and writer;
//! - `reader` its frames in;
//! - `refusals` coalesced error frames for refused frames;
//! - `registry` the node's sockets by user and their NATS subscriptions;
//! - `frames` what each frame does;
//! - `slots` live free-slot hints (`slots_watch`, `slots_changed`);
//! - `store` every SQL statement (chat messages, read positions, calls);
//! - `presence` the cross-node presence bucket, pushed presence and whom each socket follows;
//! - `calls` call rules and SDP checks;
//! - [`turn`] ICE servers and TURN REST credentials.

mod calls;
mod config;
mod conn;
mod frames;
mod origin;
mod presence;
mod reader;
mod refusals;
mod registry;
mod slots;
mod store;
pub mod turn;

pub use config::HubConfig;

use anyhow::Context as _;
use carehub_bus::Bus;
use carehub_nats::auth::subject as auth_subject;
use carehub_nats::auth::{Revocation, Revoked};
use carehub_nats::hub::close;
use carehub_runtime::Db;
use futures::StreamExt as _;
use presence::Presence;
use registry::Registry;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The hub's migrations (`hub/migrations`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The hub's database: the SQLite file `comms.db`, the PostgreSQL schema `comms` and the
/// `CAREHUB_COMMS_DATABASE_URL` variable. The name predates the crate's and is kept so that data
/// from earlier releases is found where it is (docs/OPERATIONS.md, "Upgrading").
pub const DATABASE: &str = "comms";

/// Micro service identity shown by `nats micro info hub` (every node answers `$SRV.PING`).
pub const SPEC: carehub_bus::ServiceSpec = carehub_bus::ServiceSpec {
    name: carehub_nats::hub::subject::SERVICE,
    version: env!("CARGO_PKG_VERSION"),
    description: "carehub hub node: websockets for chat, notifications, presence and calls",
};

/// One hub node's shared state. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: HubConfig,
    bus: Bus,
    db: Db,
    registry: Registry,
    presence: Presence,
    presence_watches: presence::watch::Watches,
    /// Sign-in appointment listings ([`presence::follow`]).
    sign_in_listings: presence::follow::Listings,
    slot_watches: slots::SlotWatches,
    /// Taken around chat appends on SQLite (see [`Hub::chat_append_lock`]).
    chat_appends: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("node", &self.inner.cfg.node_id)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// Migrates the hub's database and opens the presence bucket.
    ///
    /// # Errors
    /// When the database or JetStream is unavailable.
    pub async fn start(cfg: HubConfig, bus: Bus, db: Db) -> anyhow::Result<Self> {
        db.migrate(&MIGRATOR).await.context("hub migrations")?;
        let presence = Presence::open(
            bus.client().clone(),
            &cfg.node_id,
            cfg.presence_ttl,
            cfg.stream_replicas,
        )
        .await
        .context("opening the presence bucket")?;
        Ok(Self {
            inner: Arc::new(Inner {
                registry: Registry::new(bus.clone()),
                cfg,
                bus,
                db,
                presence,
                presence_watches: presence::watch::Watches::default(),
                sign_in_listings: presence::follow::Listings::default(),
                slot_watches: slots::SlotWatches::default(),
                chat_appends: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// Binds the websocket listener, with the configured kernel send buffer (accepted sockets
    /// inherit it).
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub fn bind(cfg: &HubConfig) -> std::io::Result<TcpListener> {
        let socket = if cfg.addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        if cfg.send_buffer > 0 {
            socket.set_send_buffer_size(cfg.send_buffer)?;
        }
        socket.bind(cfg.addr)?;
        socket.listen(4_096)
    }

    pub(crate) fn config(&self) -> &HubConfig {
        &self.inner.cfg
    }
    pub(crate) fn bus(&self) -> &Bus {
        &self.inner.bus
    }
    pub(crate) fn db(&self) -> &Db {
        &self.inner.db
    }
    pub(crate) fn registry(&self) -> &Registry {
        &self.inner.registry
    }
    pub(crate) fn slot_watches(&self) -> &slots::SlotWatches {
        &self.inner.slot_watches
    }
    pub(crate) fn presence(&self) -> &Presence {
        &self.inner.presence
    }
    pub(crate) fn presence_watches(&self) -> &presence::watch::Watches {
        &self.inner.presence_watches
    }
    pub(crate) fn sign_in_listings(&self) -> &presence::follow::Listings {
        &self.inner.sign_in_listings
    }

    /// On SQLite, a guard that lets one chat append of this node at a time into the database.
    /// SQLite has a single writer; without it, concurrent appends queue in SQLite's busy
    /// handler, whose growing sleeps (1, 2, 5, 10, ... ms) put a tail of 100 ms and more on
    /// delivery at a few hundred messages per second. PostgreSQL needs no guard.
    pub(crate) async fn chat_append_lock(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.inner.db {
            Db::Sqlite(_) => Some(self.inner.chat_appends.lock().await),
            Db::Postgres(_) => None,
        }
    }

    /// Accepts sockets until `stop` is cancelled, then closes them (code 1001) and waits up to
    /// `grace` for them to finish.
    ///
    /// # Errors
    /// When the node cannot register on the bus or subscribe to revocations.
    pub async fn serve(
        self,
        listener: TcpListener,
        stop: CancellationToken,
        grace: Duration,
    ) -> anyhow::Result<()> {
        let tasks = TaskTracker::new();
        let micro = carehub_bus::MicroService::start(self.bus(), SPEC, 1)
            .await
            .context("registering the hub node")?;
        let revoked = self
            .bus()
            .client()
            .subscribe(auth_subject::REVOKED)
            .await
            .context("subscribing to revocations")?;
        tasks.spawn(revocations(self.registry().clone(), revoked, stop.clone()));
        let watches = self.slot_watches().clone();
        let (client, until) = (self.bus().client().clone(), stop.clone());
        tasks.spawn(async move {
            if let Err(e) = watches.listen(client, until).await {
                tracing::error!(error = %e, "slot updates stopped: subscribing to events failed");
            }
        });
        tasks.spawn(
            self.presence()
                .clone()
                .refresh(self.registry().clone(), stop.clone()),
        );
        let (watches, presence) = (self.presence_watches().clone(), self.presence().clone());
        let (client, until) = (self.bus().client().clone(), stop.clone());
        tasks.spawn(async move {
            if let Err(e) = watches.run(presence, client, until).await {
                tracing::error!(error = %e, "presence pushes stopped: subscribing to changes failed");
            }
        });
        let (hub, until) = (self.clone(), stop.clone());
        tasks.spawn(async move {
            if let Err(e) = presence::follow::listen(hub, until).await {
                tracing::error!(error = %e, "presence follows stopped: subscribing to events failed");
            }
        });
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _peer)) => {
                        let _ = stream.set_nodelay(true);
                        tasks.spawn(conn::serve(self.clone(), stream));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
        drop(listener);
        micro.shutdown(grace).await;
        let users = self.registry().user_ids();
        self.registry().close_all(close::GOING_AWAY);
        tasks.close();
        if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
            tracing::warn!("hub sockets outlived the shutdown grace");
        }
        // Whatever the sockets did not remove, the node removes at once.
        self.presence().stop(&users).await;
        Ok(())
    }
}

/// Closes the sockets of revoked tokens, sessions and users until stopped.
async fn revocations(registry: Registry, mut sub: async_nats::Subscriber, stop: CancellationToken) {
    loop {
        let msg = tokio::select! {
            () = stop.cancelled() => break,
            m = sub.next() => match m { Some(m) => m, None => break },
        };
        let Ok(r) = serde_json::from_slice::<Revoked>(&msg.payload) else {
            tracing::warn!("undecodable revocation event");
            continue;
        };
        let n = registry.close_where(close::REVOKED, |p| match &r.what {
            Revocation::Token { jti, .. } => &p.jti == jti,
            Revocation::Session { session_id, .. } => &p.session_id == session_id,
            Revocation::User { user_id } => &p.user_id == user_id,
        });
        if n > 0 {
            tracing::info!(sockets = n, reason = %r.reason, "closed revoked sockets");
        }
    }
}
