//! The admin service: it owns appointments and offers, routes every request to a doctor or a
//! doctor group with ractor actors, and keeps the audit trail admins read.
//!
//! Map:
//! - `config` settings;
//! - `domain` validated times and windows;
//! - `lifecycle` the allowed status transitions and who may make each;
//! - `store` every SQL statement by use case (the overlap guards live in the migrations,
//!   per backend);
//! - `routing` the router, group and doctor actors and the pure `routing::strategy` functions;
//! - `service` the operations and their NATS endpoints by use case;
//! - `idempotency` `Idempotency-Key` handling;
//! - `slots` the slot grid;
//! - `events` views and outbox events;
//! - `feeds` starts the durable consumers, and the audit trail into `audit_log`;
//! - `doctors` the durable consumer of doctor events (the local doctor copies);
//! - `people` the durable consumer of account events (names for appointments and the audit log).

mod config;
mod doctors;
mod domain;
mod events;
mod feeds;
mod idempotency;
mod lifecycle;
mod people;
mod routing;
mod service;
mod slots;
mod store;

pub use config::AdminConfig;
pub use service::start;

/// Migrations for SQLite (overlap guard by triggers).
pub(crate) static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
/// Migrations for PostgreSQL (overlap guard by exclusion constraints).
pub(crate) static POSTGRES_MIGRATOR: sqlx::migrate::Migrator =
    sqlx::migrate!("./migrations/postgres");

/// The migrator for a database's backend.
pub fn migrator(db: &carehub_runtime::Db) -> &'static sqlx::migrate::Migrator {
    match db.backend() {
        carehub_runtime::Backend::Sqlite => &SQLITE_MIGRATOR,
        carehub_runtime::Backend::Postgres => &POSTGRES_MIGRATOR,
    }
}

/// Micro service identity shown by `nats micro info admin`.
pub(crate) const SPEC: carehub_bus::ServiceSpec = carehub_bus::ServiceSpec {
    name: carehub_nats::appointment::subject::SERVICE,
    version: env!("CARGO_PKG_VERSION"),
    description: "carehub appointments, offers, routing and audit",
};
