//! Test harness shared by the integration-test binaries: real processes, never mocks.
//!
//! `net` hands out free ports and a TCP proxy that can cut a link, `nats` runs a private
//! nats-server (through the one launcher, `carehub-natsd`), `postgres` runs one private
//! PostgreSQL cluster per test process and hands out fresh databases, `wait` polls a condition
//! until a deadline instead of sleeping.
//!
//! Nothing here touches the machine's own NATS (4222) or PostgreSQL (5432).

// Each test binary includes this module and uses a different subset of it, so some items are
// dead in every binary but the self-test; `expect` would be unfulfilled there.
#![allow(
    dead_code,
    reason = "each test binary uses a different subset of the harness"
)]

// Test binaries include this file with `#[path = "support.rs"] mod support;`, and a module
// loaded through `#[path]` looks for its children beside itself, as a `mod.rs` would: hence
// the explicit paths.
#[path = "support/nats.rs"]
pub(crate) mod nats;
#[path = "support/net.rs"]
pub(crate) mod net;
#[path = "support/postgres.rs"]
pub(crate) mod postgres;
#[path = "support/wait.rs"]
pub(crate) mod wait;
