//! The `carehub` command: runs any part of carehub, or all of it in one process.
//!
//! Map:
//! - [`cli`] the command line: each `carehub` subcommand and what it does (`src/main.rs` only
//!   parses it and starts the runtime);
//! - [`system`] starts components (auth, gateway, …) from one configuration, each with its own
//!   NATS connection as if it were separate;
//! - `natsd` finds the NATS server for `carehub up`, or starts a local one (`carehub-natsd`);
//! - [`provision`] the operator commands (create users, keys, migrations, demo seed);
//! - `ops` prints the service table over NATS;
//! - `backup` copies the SQLite files;
//! - `demo` furnishes the demo clinic through the API.
//!
//! The benchmarks are a binary of their own (`bench/`, `carehub-bench`).

mod backup;
pub mod cli;
mod demo;
mod natsd;
mod ops;
pub mod provision;
mod replay;
pub mod system;
