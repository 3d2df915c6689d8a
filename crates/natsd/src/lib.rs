//! The one way carehub starts a nats-server: `carehub up` (its local server), the test suite
//! (private servers, secured or not, clusters), the crates' own tests and the benchmarks all
//! launch theirs through [`Launch`]. Shipped in `carehub`, so it depends on nothing test- or
//! benchmark-only.
//!
//! Map:
//! - [`conf`] the configuration files of `nats/conf`, embedded, and writing them out;
//! - `credentials` carehub's NATS users and a generated password for each;
//! - `launch` a child nats-server: command line, log, readiness wait, restart, kill on drop;
//! - `ports` free loopback ports, never the same one twice in a process.

pub mod conf;
mod credentials;
mod launch;
mod ports;

pub(crate) use conf::write_config;
pub use credentials::{NatsCredentials, USERS, random_nats_password};
pub use launch::{
    ChildNats, Launch, NATS_SERVER_INSTALL, NATS_SERVER_VAR, NATS_SERVER_VERSION, greets_as_nats,
    nats_server_binary, nats_server_version, require_current,
};
pub use ports::{claim_port, free_port};
