//! The `carehub` command: runs any part of carehub, or all of it in one process.
//!
//! Map: [`system`] starts components (auth, gateway) from one configuration, each with its own
//! NATS connection as if it were separate; [`natsd`] finds or starts a local nats-server for
//! `carehub up`; [`admin`] holds the operator commands (create users, keys, migrations, demo
//! seed); [`ops`] prints the service table over NATS; [`backup`] copies the SQLite files;
//! [`demo`] furnishes the demo clinic through the API; [`bench`] measures the running system.

pub mod admin;
pub mod backup;
pub mod bench;
pub mod demo;
pub mod natsd;
pub mod ops;
pub mod system;
