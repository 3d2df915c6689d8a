//! The carehub bus contract: everything that crosses NATS is defined here and only here.
//!
//! Services, the gateway and the hub depend on this crate and never on each other.
//! Map: [`subject`] names every subject, [`rpc`] pairs each request type with its subject and
//! reply ([`Rpc`]) and carries the caller's identity ([`CallContext`]), [`error`] holds the stable
//! error codes, [`auth`] the auth service's wire types and events, [`bus`] the connect helper and
//! typed client, [`micro`] registers a service with the NATS micro services protocol, [`streams`]
//! declares the JetStream streams of durable events.

pub mod appointment;
pub mod audit;
pub mod auth;
pub mod bus;
pub mod doctor;
pub mod error;
pub mod hub;
pub mod micro;
pub mod notify;
pub mod patient;
pub mod rpc;
pub mod streams;
pub mod subject;

pub use bus::{Bus, BusConfig, ConnectionEvent};
pub use error::{BusError, ErrorCode, WireError};
pub use micro::{MicroService, ServiceSpec};
pub use rpc::{CallContext, Principal, Role, Rpc, UserStatus};

/// Helpers for the contract's own tests.
#[cfg(test)]
pub(crate) mod test_support {
    /// Checks `value` serializes to exactly `snapshot` (a change is a protocol change) and
    /// decodes back to itself.
    pub(crate) fn round_trip<T>(value: &T, snapshot: serde_json::Value)
    where
        T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        assert_eq!(
            serde_json::to_value(value).unwrap(),
            snapshot,
            "snapshot changed"
        );
        let back: T = serde_json::from_value(snapshot).unwrap();
        assert_eq!(&back, value);
    }
}
