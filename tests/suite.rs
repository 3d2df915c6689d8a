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

#[path = "support.rs"]
mod support;

#[path = "suite/harness.rs"]
mod harness;

#[path = "suite/absence.rs"]
mod absence;
#[path = "suite/accounts.rs"]
mod accounts;
#[path = "suite/admin.rs"]
mod admin;
#[path = "suite/appointments.rs"]
mod appointments;
#[path = "suite/authz.rs"]
mod authz;
#[path = "suite/backup.rs"]
mod backup;
#[path = "suite/booking.rs"]
mod booking;
#[path = "suite/cli.rs"]
mod cli;
#[path = "suite/cluster.rs"]
mod cluster;
#[path = "suite/comms.rs"]
mod comms;
#[path = "suite/comms_bursts.rs"]
mod comms_bursts;
#[path = "suite/comms_close.rs"]
mod comms_close;
#[path = "suite/comms_gateway.rs"]
mod comms_gateway;
#[path = "suite/comms_presence.rs"]
mod comms_presence;
#[path = "suite/comms_webrtc.rs"]
mod comms_webrtc;
#[path = "suite/compose.rs"]
mod compose;
#[path = "suite/deploy.rs"]
mod deploy;
#[path = "suite/doctors.rs"]
mod doctors;
#[path = "suite/edge.rs"]
mod edge;
#[path = "suite/faults.rs"]
mod faults;
#[path = "suite/flows.rs"]
mod flows;
#[path = "suite/handoff.rs"]
mod handoff;
#[path = "suite/metrics.rs"]
mod metrics;
#[path = "suite/nats_permissions.rs"]
mod nats_permissions;
#[path = "suite/notifications.rs"]
mod notifications;
#[path = "suite/ops.rs"]
mod ops;
#[path = "suite/patients.rs"]
mod patients;
#[path = "suite/reschedule.rs"]
mod reschedule;
#[path = "suite/resilience.rs"]
mod resilience;
#[path = "suite/revocation.rs"]
mod revocation;
#[path = "suite/rolling.rs"]
mod rolling;
#[path = "suite/routing.rs"]
mod routing;
#[path = "suite/slots_live.rs"]
mod slots_live;
#[path = "suite/throttle.rs"]
mod throttle;
#[path = "suite/tokens.rs"]
mod tokens;
