//! Doctor service settings, read from `CAREHUB_DOCTOR_*` variables with defaults in code.

use carehub_runtime::{CommonConfig, ConfigError, Env};

/// Everything the doctor service needs to know at start.
#[derive(Debug, Clone)]
pub struct DoctorConfig {
    /// Durable consumer name on the account stream; instances share it.
    pub(crate) consumer: String,
    pub(crate) max_in_flight: usize,
    /// How the JetStream streams are made (copies, duplicate window).
    pub(crate) streams: carehub_bus::streams::StreamOptions,
    /// How the outbox relay keeps and checks what it published.
    pub(crate) relay: carehub_runtime::outbox::RelayOptions,
}

impl DoctorConfig {
    /// Reads `CAREHUB_DOCTOR_CONSUMER` (default `doctor-service`).
    ///
    /// # Errors
    /// When a value is set but invalid; the error names the variable.
    pub fn from_env(env: &Env, common: &CommonConfig) -> Result<Self, ConfigError> {
        let consumer = env
            .raw("CAREHUB_DOCTOR_CONSUMER")
            .unwrap_or("doctor-service")
            .trim()
            .to_owned();
        if !consumer
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ConfigError {
                var: "CAREHUB_DOCTOR_CONSUMER".into(),
                message: "letters, digits, '-' and '_' only".into(),
            });
        }
        Ok(Self {
            consumer,
            max_in_flight: common.max_in_flight,
            streams: common.streams,
            relay: common.relay,
        })
    }
}
