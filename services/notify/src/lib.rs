//! The notify service: in-app notifications, mail and appointment reminders.
//!
//! It keeps a directory of accounts from the `CAREHUB_USERS` stream (to address mail and name
//! people), turns every `CAREHUB_APPOINTMENTS` event into one notification per person it
//! concerns (stored once per event and person, pushed live on `carehub.push.user.<id>`) plus
//! one mail, schedules reminder mails before confirmed appointments (`CAREHUB_REMINDERS`,
//! default `24h,1h`), and mails password reset links handed over by the auth service.
//!
//! Mail is written to a durable `mail_outbox` table in the same transaction as the notification
//! and delivered by a sender task over SMTP (`CAREHUB_SMTP_URL`, e.g. `smtp://host:25`,
//! `smtp://host:587?tls=required` for STARTTLS or `smtps://host:465`; optional
//! `CAREHUB_SMTP_USERNAME` / `CAREHUB_SMTP_PASSWORD`; sender `CAREHUB_MAIL_FROM`), retried with
//! exponential backoff after temporary (4xx or connection) failures and given up after
//! `CAREHUB_MAIL_MAX_ATTEMPTS` or a permanent (5xx) one. Each mail is claimed with a lease first,
//! so several instances never send the same one twice.
//!
//! **Without `CAREHUB_SMTP_URL`, nothing leaves the machine: each mail is written as
//! `<CAREHUB_DATA_DIR>/mail/<id>.eml`** (or `CAREHUB_MAIL_DIR`), a file any mail client or
//! text editor opens, which is how a developer reads reset links locally.
//!
//! Map:
//! - `config` typed settings;
//! - `domain` the wording of every message, reminder planning and backoff;
//! - `mail` delivery over SMTP or to files;
//! - [`store`] every SQL statement;
//! - `service` the operations, endpoints and tasks (its durable stream consumers run on
//!   [`carehub_runtime::consumer`]).

mod config;
mod domain;
mod mail;
mod service;
pub mod store;

pub use config::NotifyConfig;
pub use service::start;

/// The notify service's migrations (`services/notify/migrations`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Micro service identity shown by `nats micro info notify`.
pub(crate) const SPEC: carehub_bus::ServiceSpec = carehub_bus::ServiceSpec {
    name: carehub_nats::notify::subject::SERVICE,
    version: env!("CARGO_PKG_VERSION"),
    description: "carehub notifications, mail and reminders",
};
