//! The patient service: each patient's profile and medical record, over NATS only (the gateway
//! is its one HTTP face). Patients read and edit their own; admins and doctors with a current
//! care relation read (never edit) someone's record, and every such read is audited.
//!
//! Map:
//! - `config` typed settings;
//! - `domain` validated inputs and the doctor access rule;
//! - `store` every SQL statement;
//! - `accounts` the durable consumer of account events;
//! - `service` the operations and their NATS endpoints.

mod accounts;
mod config;
mod domain;
mod service;
mod store;

pub use config::PatientConfig;
pub use service::start;

/// The patient service's migrations (`services/patient/migrations`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Micro service identity shown by `nats micro info patient`.
pub(crate) const SPEC: carehub_bus::ServiceSpec = carehub_bus::ServiceSpec {
    name: carehub_nats::patient::subject::SERVICE,
    version: env!("CARGO_PKG_VERSION"),
    description: "carehub patient profiles and medical records",
};
