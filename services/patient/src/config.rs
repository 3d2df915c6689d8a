//! Patient service settings, read from `CAREHUB_*` variables with defaults in code.

use carehub_runtime::{CommonConfig, ConfigError, Env};

/// Everything the patient service needs to know at start.
#[derive(Debug, Clone)]
pub struct PatientConfig {
    /// How many days after a completed appointment its doctor may still read the record.
    pub(crate) record_access_days: u32,
    pub(crate) max_in_flight: usize,
    /// How the JetStream streams are made (copies, duplicate window).
    pub(crate) streams: carehub_bus::streams::StreamOptions,
    /// How the outbox relay keeps and checks what it published.
    pub(crate) relay: carehub_runtime::outbox::RelayOptions,
}

impl PatientConfig {
    /// Reads `CAREHUB_RECORD_ACCESS_DAYS` (default 30; 0 ends a doctor's access when the
    /// appointment completes).
    ///
    /// # Errors
    /// When a value is set but invalid; the error names the variable.
    pub fn from_env(env: &Env, common: &CommonConfig) -> Result<Self, ConfigError> {
        let record_access_days: u32 = env.get("CAREHUB_RECORD_ACCESS_DAYS", 30)?;
        if record_access_days > 3650 {
            return Err(ConfigError {
                var: "CAREHUB_RECORD_ACCESS_DAYS".into(),
                message: "must be at most 3650 days".into(),
            });
        }
        Ok(Self {
            record_access_days,
            max_in_flight: common.max_in_flight,
            streams: common.streams,
            relay: common.relay,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_window_defaults_to_30_days_and_bad_values_name_the_variable() {
        let common = CommonConfig::from_env(&Env::default()).unwrap();
        let c = PatientConfig::from_env(&Env::default(), &common).unwrap();
        assert_eq!(c.record_access_days, 30);
        let env = Env::from_pairs([("CAREHUB_RECORD_ACCESS_DAYS", "7")]);
        assert_eq!(
            PatientConfig::from_env(&env, &common)
                .unwrap()
                .record_access_days,
            7
        );
        for bad in ["-1", "soon", "9999"] {
            let env = Env::from_pairs([("CAREHUB_RECORD_ACCESS_DAYS", bad)]);
            let e = PatientConfig::from_env(&env, &common).unwrap_err();
            assert_eq!(e.var, "CAREHUB_RECORD_ACCESS_DAYS", "{bad}");
        }
    }
}
