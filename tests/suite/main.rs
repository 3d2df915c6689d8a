//! The black-box suite: carehub started in-process (or as child processes of the built binary
//! where a test kills or multiplies a component) against a private nats-server and a fresh
//! SQLite file or PostgreSQL database, driven over HTTP and NATS like a client would.
//!
//! Every scenario runs on both storage backends: see [`both_backends!`].

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed expectation is a failed test"
)]

#[path = "../support.rs"]
mod support;

mod harness;

mod absence;
mod accounts;
mod admin;
mod appointments;
mod authz;
mod backup;
mod booking;
mod cli;
mod cluster;
mod cluster_loss;
mod compose;
mod deploy;
mod doctors;
mod edge;
mod faults;
mod flows;
mod handoff;
mod hub;
mod hub_bursts;
mod hub_close;
mod hub_gateway;
mod hub_presence;
mod hub_webrtc;
mod metrics;
mod nats_permissions;
mod notifications;
mod ops;
mod outbox;
mod patients;
mod reconcile;
mod reschedule;
mod resilience;
mod revocation;
mod rolling;
mod routing;
mod slots_live;
mod throttle;
mod tokens;
mod upgrade;
