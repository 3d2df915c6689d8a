//! The carehub bus contract: everything that crosses NATS is defined here and only here, as
//! plain data. Sending it is the transport's job (`carehub-bus`, `crates/bus`), which this crate
//! does not depend on.
//!
//! Services, the gateway and the hub depend on this crate and never on each other. Map:
//! - [`rpc`] pairs each request type with its subject and reply ([`Rpc`]), the caller's identity
//!   ([`CallContext`], [`Principal`]) and the header names it travels in;
//! - `error` the stable error codes ([`ErrorCode`], [`WireError`]);
//! - [`streams`] the JetStream streams of durable events;
//! - [`time`] how instants are written (RFC 3339 UTC);
//! - [`auth`], [`doctor`], [`patient`], [`appointment`], [`notify`], [`audit`]: each domain's
//!   requests, replies and events, and its subjects in one `subject` module each;
//! - [`hub`] the websocket frames of the hub;
//! - [`sync`] the version lists and batch gets copies are reconciled with.

/// Pairs a request type with its reply, subject and micro endpoint name:
/// `rpc!(Login => Session, subject::LOGIN, "login");`. Every request of the contract is declared
/// with it.
macro_rules! rpc {
    ($req:ty => $reply:ty, $subject:expr, $endpoint:literal) => {
        impl $crate::rpc::Rpc for $req {
            type Reply = $reply;
            const SUBJECT: &'static str = $subject;
            const ENDPOINT: &'static str = $endpoint;
        }
    };
}

pub mod appointment;
pub mod audit;
pub mod auth;
pub mod doctor;
mod error;
pub mod hub;
pub mod notify;
pub mod patient;
pub mod rpc;
pub mod streams;
pub mod sync;
pub mod time;

pub use error::{ErrorCode, ErrorDetails, WireError};
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
