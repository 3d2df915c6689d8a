//! The carehub HTTP gateway: the only door from browsers and apps to the services on the bus.
//!
//! It checks bearer tokens with the auth service (remembering positive answers briefly and
//! forgetting them on revocation), forwards each API call as one typed NATS request with the
//! caller's [`carehub_nats::CallContext`], and gives every failure the same JSON error body. It
//! also rate limits per client, sets security headers, serves the OpenAPI document and a
//! self-contained docs page, and optionally the web client's static files.
//!
//! Map:
//! - `config` settings;
//! - `server` the [`Gateway`] and its router;
//! - `edge` request id, client address, rate limit and response finishing;
//! - `extract` extractors and caller identity;
//! - `tokens` token checks and their cache;
//! - `session` the refresh-token cookie;
//! - `routes` the handlers;
//! - [`openapi`] the document and the docs page;
//! - `error` the one error type;
//! - `state` the shared state;
//! - `tests` router tests against a real nats-server from `carehub-natsd` (test builds only).

mod config;
mod edge;
mod error;
mod extract;
pub mod openapi;
mod routes;
mod server;
mod session;
mod state;
mod tokens;

#[cfg(test)]
mod tests;

pub use config::GatewayConfig;
pub use openapi::openapi;
pub use server::Gateway;
