//! The transport under the contract: connects to NATS, sends the contract's requests and
//! events, and serves them. Everything that touches async-nats for carehub is here; what travels
//! is defined in `carehub-nats` alone.
//!
//! Map:
//! - `client` the connection and typed client ([`Bus`]), its connection events and metrics;
//! - [`micro`] registers a service with the NATS micro services protocol and serves its
//!   endpoints ([`MicroService`], [`serve!`]);
//! - [`context`] the caller's context in headers and the current request id;
//! - `error` what a call can end in besides the service's answer ([`BusError`]);
//! - [`streams`] creates the JetStream streams the contract names.

mod client;
pub mod context;
mod error;
pub mod micro;
pub mod streams;

pub use client::{Bus, BusConfig, ConnectionEvent};
pub use context::ContextHeaders;
pub use error::BusError;
pub use micro::{MicroService, ServiceSpec};
