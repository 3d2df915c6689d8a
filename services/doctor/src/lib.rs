//! The doctor service: the doctor directory, profiles and availability (weekly hours, time
//! off, slot length) with free-slot search, over NATS only (the gateway is its HTTP face).
//! Approval follows the account stream; every change is a `DoctorEvent` on `CAREHUB_DOCTORS`.
//!
//! Map:
//! - `config` typed settings;
//! - `domain` validated inputs (specialties, bio, weekly hours, instants);
//! - `store` every SQL statement;
//! - `accounts` the durable consumer of account events;
//! - `service` the operations and their NATS endpoints.

mod accounts;
mod config;
mod domain;
mod service;
mod store;

pub use config::DoctorConfig;
pub use service::start;

/// The doctor service's migrations (`services/doctor/migrations`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Micro service identity shown by `nats micro info doctor`.
pub(crate) const SPEC: carehub_bus::ServiceSpec = carehub_bus::ServiceSpec {
    name: carehub_nats::doctor::subject::SERVICE,
    version: env!("CARGO_PKG_VERSION"),
    description: "carehub doctor directory, profiles and availability",
};
