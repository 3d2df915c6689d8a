//! The `carehub` command: runs any part of carehub, or all of it in one process.
//!
//! Map:
//! - [`system`] starts components (auth, gateway, …) from one configuration, each with its own
//!   NATS connection as if it were separate;
//! - [`natsd`] finds or starts a local nats-server for `carehub up`;
//! - [`provision`] the operator commands (create users, keys, migrations, demo seed);
//! - [`ops`] prints the service table over NATS;
//! - [`backup`] copies the SQLite files;
//! - [`demo`] furnishes the demo clinic through the API.
//!
//! The benchmarks are a binary of their own (`bench/`, `carehub-bench`).

pub mod backup;
pub mod demo;
pub mod natsd;
pub mod ops;
pub mod provision;
pub mod system;
