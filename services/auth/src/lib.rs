//! The auth service: accounts, passwords, sessions and token verification, over NATS only
//! (the gateway is its one HTTP face).
//!
//! Map:
//! - `config` typed settings;
//! - `domain` validated inputs (email, password, name);
//! - [`keys`] the signing key file and JWT issue/verify;
//! - [`password`] argon2id hashing off the runtime;
//! - `throttle` the login throttling policy;
//! - `store` every SQL statement;
//! - [`service`] the operations and their NATS endpoints.

mod config;
mod domain;
pub mod keys;
pub mod password;
pub mod service;
mod store;
mod throttle;

pub use config::AuthConfig;
pub use service::{create_user, start};

/// The auth service's migrations (`services/auth/migrations`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Micro service identity shown by `nats micro info auth`.
pub(crate) const SPEC: carehub_bus::ServiceSpec = carehub_bus::ServiceSpec {
    name: carehub_nats::auth::subject::SERVICE,
    version: env!("CARGO_PKG_VERSION"),
    description: "carehub accounts, sessions and token verification",
};
