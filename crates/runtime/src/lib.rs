//! What every carehub component shares at run time, so each service's `lib.rs` stays about its
//! domain.
//!
//! Map:
//! - `config` reads typed `CAREHUB_*` settings (naming the variable on error);
//! - [`db`] opens a service's SQLite file or PostgreSQL schema and runs its migrations;
//! - [`telemetry`] sets up `tracing`;
//! - [`metrics`] installs the Prometheus recorder and serves its listener;
//! - [`shutdown`] turns signals into one cancellation token;
//! - [`outbox`] publishes events written in a service's transactions to JetStream;
//! - [`consumer`] runs a durable JetStream consumer: decode, apply, acknowledge, retry, terminate;
//! - [`reconcile`] compares a copy with its owner's version list and repairs what is behind;
//! - [`service`] the handle of a running service instance;
//! - [`cache`] a read-through cache that events invalidate;
//! - [`absence`] the rule for a doctor's absence over confirmed appointments;
//! - `fault` the suite's crash points.

pub mod absence;
pub mod account_copy;
pub mod cache;
mod config;
pub mod consumer;
pub mod db;
mod fault;
pub mod metrics;
pub mod outbox;
pub mod reconcile;
pub mod service;
pub mod shutdown;
pub mod telemetry;

pub use config::{CommonConfig, ConfigError, Env, parse_duration};
pub use db::{Backend, Db, StoreError};
