//! Typed configuration from `CAREHUB_*` variables, read once at start.
//!
//! [`Env`] is a snapshot of variables, so tests (and `carehub up`, which runs every component in
//! one process) can build configuration without touching the process environment.

use carehub_bus::BusConfig;
use carehub_bus::streams::StreamOptions;
use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// A bad configuration value; the message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    pub var: String,
    pub message: String,
}

impl ConfigError {
    /// `Ok` when `ok`, else "`var`: must be greater than zero".
    ///
    /// # Errors
    /// When `ok` is false.
    pub fn positive(var: &str, ok: bool) -> Result<(), Self> {
        if ok {
            Ok(())
        } else {
            Err(Self {
                var: var.into(),
                message: "must be greater than zero".into(),
            })
        }
    }
}

/// A snapshot of configuration variables.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// Every `CAREHUB_*` variable of this process.
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars()
                .filter(|(k, _)| k.starts_with("CAREHUB_"))
                .collect(),
        }
    }

    /// Builds a snapshot from pairs (tests, embedded use).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// Sets a variable in this snapshot.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.vars.insert(key.into(), value.into());
    }

    /// A raw value; empty strings count as unset.
    pub fn raw(&self, var: &str) -> Option<&str> {
        self.vars
            .get(var)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// A parsed value, or `default` when unset.
    ///
    /// # Errors
    /// When the value is set but does not parse; the error names the variable.
    pub fn get<T: FromStr>(&self, var: &str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.raw(var) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|e: T::Err| ConfigError {
                var: var.into(),
                message: format!("cannot parse '{v}': {e}"),
            }),
        }
    }

    /// An optional parsed value.
    ///
    /// # Errors
    /// As [`Env::get`].
    pub(crate) fn opt<T: FromStr>(&self, var: &str) -> Result<Option<T>, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.raw(var) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|e: T::Err| ConfigError {
                var: var.into(),
                message: format!("cannot parse '{v}': {e}"),
            }),
        }
    }

    /// A duration: a number of seconds (fractions allowed) or a number with a unit (`90s`,
    /// `10m`, `7d`, `1h 30m`), or `default`.
    ///
    /// # Errors
    /// When the value is neither.
    pub fn secs(&self, var: &str, default: Duration) -> Result<Duration, ConfigError> {
        match self.raw(var) {
            None => Ok(default),
            Some(v) => parse_duration(v).map_err(|message| ConfigError {
                var: var.into(),
                message,
            }),
        }
    }

    /// A boolean: `1/true/yes/on` or `0/false/no/off`.
    ///
    /// # Errors
    /// When the value is none of those.
    pub fn flag(&self, var: &str, default: bool) -> Result<bool, ConfigError> {
        match self.raw(var).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => Ok(true),
            Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => Ok(false),
            Some(v) => Err(ConfigError {
                var: var.into(),
                message: format!("expected true or false, got '{v}'"),
            }),
        }
    }
}

/// How long published events stay in `outbox_sent` unless configured.
pub(crate) const OUTBOX_RETENTION: Duration = Duration::from_secs(7 * 86_400);

/// How often positions are checked unless configured.
pub(crate) const RECONCILE_INTERVAL: Duration = Duration::from_secs(600);

/// A duration: a number of seconds (fractions allowed) or a number with a unit (`90s`, `10m`,
/// `7d`, `1h 30m`).
///
/// # Errors
/// A sentence saying what was expected.
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return Some(secs)
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| format!("expected a duration, got '{v}'"));
    }
    humantime::parse_duration(v).map_err(|e| {
        format!(
            "expected a number of seconds or a duration such as 90s, 10m or 7d, got '{v}' ({e})"
        )
    })
}

/// Settings every component reads.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    /// Where SQLite files, the signing key file and a child nats-server keep their data.
    pub data_dir: PathBuf,
    pub nats_url: String,
    /// PostgreSQL (or SQLite) URL shared by every service unless a per-service one is set.
    pub(crate) database_url: Option<String>,
    /// Log as JSON lines.
    pub log_json: bool,
    /// How long shutdown may take before in-flight work is abandoned.
    pub shutdown_grace: Duration,
    /// Requests one service instance handles at once.
    pub max_in_flight: usize,
    /// How the JetStream streams are made: copies (1 on one server, 3 in a cluster) and the
    /// duplicate window.
    pub streams: StreamOptions,
    /// How the outbox relays keep and check what they published (`outbox_sent`).
    pub relay: crate::outbox::RelayOptions,
}

/// `CAREHUB_OUTBOX_RETENTION`, `CAREHUB_RECONCILE`, `CAREHUB_RECONCILE_INTERVAL` and
/// `CAREHUB_RECONCILE_COPIES_INTERVAL` (a duration or `off`; by default the interval).
fn reconcile_options(env: &Env) -> Result<crate::outbox::RelayOptions, ConfigError> {
    let retention = env.secs("CAREHUB_OUTBOX_RETENTION", OUTBOX_RETENTION)?;
    if !env.flag("CAREHUB_RECONCILE", true)? {
        return Ok(crate::outbox::RelayOptions {
            retention,
            check_every: None,
            copies_every: None,
        });
    }
    let every = env.secs("CAREHUB_RECONCILE_INTERVAL", RECONCILE_INTERVAL)?;
    ConfigError::positive("CAREHUB_RECONCILE_INTERVAL", !every.is_zero())?;
    let copies_every = if env.raw("CAREHUB_RECONCILE_COPIES_INTERVAL") == Some("off") {
        None
    } else {
        let copies = env.secs("CAREHUB_RECONCILE_COPIES_INTERVAL", every)?;
        ConfigError::positive("CAREHUB_RECONCILE_COPIES_INTERVAL", !copies.is_zero())?;
        Some(copies)
    };
    Ok(crate::outbox::RelayOptions {
        retention,
        check_every: Some(every),
        copies_every,
    })
}

impl CommonConfig {
    /// Reads `CAREHUB_DATA_DIR` (default `./data`), `CAREHUB_NATS_URL`
    /// (default `nats://127.0.0.1:4222`), `CAREHUB_DATABASE_URL`, `CAREHUB_LOG_JSON`,
    /// `CAREHUB_SHUTDOWN_GRACE` (seconds, default 10), `CAREHUB_MAX_IN_FLIGHT` (default 256),
    /// `CAREHUB_STREAM_REPLICAS` (default 1), `CAREHUB_STREAM_DUPLICATE_WINDOW` (default 2 min),
    /// `CAREHUB_OUTBOX_RETENTION` (default 7 days), `CAREHUB_RECONCILE` (default on),
    /// `CAREHUB_RECONCILE_INTERVAL` (default 10 min) and `CAREHUB_RECONCILE_COPIES_INTERVAL`
    /// (default: the interval; `off` turns the copies' passes off).
    ///
    /// # Errors
    /// When a value is set but invalid.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            data_dir: PathBuf::from(env.raw("CAREHUB_DATA_DIR").unwrap_or("./data")),
            nats_url: env
                .raw("CAREHUB_NATS_URL")
                .unwrap_or("nats://127.0.0.1:4222")
                .to_owned(),
            database_url: env.raw("CAREHUB_DATABASE_URL").map(str::to_owned),
            log_json: env.flag("CAREHUB_LOG_JSON", false)?,
            shutdown_grace: env.secs("CAREHUB_SHUTDOWN_GRACE", Duration::from_secs(10))?,
            max_in_flight: env.get("CAREHUB_MAX_IN_FLIGHT", 256usize)?,
            streams: StreamOptions {
                replicas: env.get("CAREHUB_STREAM_REPLICAS", 1usize)?,
                duplicate_window: env.secs(
                    "CAREHUB_STREAM_DUPLICATE_WINDOW",
                    carehub_bus::streams::DUPLICATE_WINDOW,
                )?,
            },
            relay: reconcile_options(env)?,
        })
    }

    /// The database URL for `service`: `CAREHUB_<SERVICE>_DATABASE_URL`, else the shared one,
    /// else `None` (a SQLite file in the data directory).
    pub fn database_url_for(&self, env: &Env, service: &str) -> Option<String> {
        env.raw(&format!(
            "CAREHUB_{}_DATABASE_URL",
            service.to_ascii_uppercase()
        ))
        .map(str::to_owned)
        .or_else(|| self.database_url.clone())
    }

    /// NATS settings for `component`: credentials from `CAREHUB_<COMPONENT>_NATS_USER` /
    /// `_NATS_PASSWORD` (falling back to `CAREHUB_NATS_USER` / `CAREHUB_NATS_PASSWORD`), inbox
    /// prefix `_INBOX_<component>` so each component's replies can be kept private (the NATS
    /// permissions of `nats/conf/permissions.conf` rely on it).
    ///
    /// # Errors
    /// When a user is configured without a password or a password without a user.
    pub fn bus_config(&self, env: &Env, component: &str) -> Result<BusConfig, ConfigError> {
        let upper = component.to_ascii_uppercase();
        let pick = |suffix: &str| {
            let own = format!("CAREHUB_{upper}_{suffix}");
            env.raw(&own)
                .map(|v| (own.clone(), v))
                .or_else(|| {
                    let shared = format!("CAREHUB_{suffix}");
                    env.raw(&shared).map(|v| (shared, v))
                })
                .map(|(var, v)| (var, v.to_owned()))
        };
        let (user, password) = match (pick("NATS_USER"), pick("NATS_PASSWORD")) {
            (Some((_, u)), Some((_, p))) => (Some(u), Some(p)),
            (None, None) => (None, None),
            (Some((var, _)), None) | (None, Some((var, _))) => {
                return Err(ConfigError {
                    var,
                    message: format!(
                        "NATS credentials of {component} need both CAREHUB_{upper}_NATS_USER and CAREHUB_{upper}_NATS_PASSWORD (or the shared CAREHUB_NATS_USER and CAREHUB_NATS_PASSWORD)"
                    ),
                });
            }
        };
        Ok(BusConfig {
            url: self.nats_url.clone(),
            name: format!("carehub-{component}"),
            user,
            password,
            inbox_prefix: Some(format!("_INBOX_{component}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_or_units() {
        let env = Env::from_pairs([
            ("A", "1.5"),
            ("B", "10m"),
            ("C", "7d"),
            ("D", "1h 30m"),
            ("E", "soon"),
            ("F", "-3"),
        ]);
        let d = |v| env.secs(v, Duration::ZERO);
        assert_eq!(d("A").unwrap(), Duration::from_millis(1500));
        assert_eq!(d("B").unwrap(), Duration::from_secs(600));
        assert_eq!(d("C").unwrap(), Duration::from_secs(7 * 86_400));
        assert_eq!(d("D").unwrap(), Duration::from_secs(5400));
        assert_eq!(d("UNSET").unwrap(), Duration::ZERO);
        for bad in ["E", "F"] {
            let err = d(bad).unwrap_err();
            assert_eq!(err.var, bad);
            assert!(err.message.contains("expected"), "{err}");
        }
    }

    #[test]
    fn stream_and_outbox_settings_read_their_variables() {
        let defaults = CommonConfig::from_env(&Env::default()).unwrap();
        assert_eq!(defaults.streams.duplicate_window, Duration::from_secs(120));
        assert_eq!(defaults.relay.retention, Duration::from_secs(7 * 86_400));
        assert_eq!(defaults.relay.check_every, Some(Duration::from_secs(600)));
        let env = Env::from_pairs([
            ("CAREHUB_STREAM_DUPLICATE_WINDOW", "2s"),
            ("CAREHUB_OUTBOX_RETENTION", "1h"),
            ("CAREHUB_STREAM_REPLICAS", "3"),
        ]);
        let set = CommonConfig::from_env(&env).unwrap();
        assert_eq!(set.streams.duplicate_window, Duration::from_secs(2));
        assert_eq!(set.streams.replicas, 3);
        assert_eq!(set.relay.retention, Duration::from_secs(3600));
        let off = Env::from_pairs([("CAREHUB_RECONCILE", "off")]);
        assert_eq!(
            CommonConfig::from_env(&off).unwrap().relay.check_every,
            None
        );
        let zero = Env::from_pairs([("CAREHUB_RECONCILE_INTERVAL", "0")]);
        assert_eq!(
            CommonConfig::from_env(&zero).unwrap_err().var,
            "CAREHUB_RECONCILE_INTERVAL"
        );
        // The copies' passes follow the interval unless set apart, and turn off on their own.
        let every = Env::from_pairs([("CAREHUB_RECONCILE_INTERVAL", "5s")]);
        let relay = CommonConfig::from_env(&every).unwrap().relay;
        assert_eq!(relay.copies_every, Some(Duration::from_secs(5)));
        let apart = Env::from_pairs([
            ("CAREHUB_RECONCILE_INTERVAL", "5s"),
            ("CAREHUB_RECONCILE_COPIES_INTERVAL", "1h"),
        ]);
        let relay = CommonConfig::from_env(&apart).unwrap().relay;
        assert_eq!(relay.copies_every, Some(Duration::from_secs(3600)));
        let copies_off = Env::from_pairs([("CAREHUB_RECONCILE_COPIES_INTERVAL", "off")]);
        let relay = CommonConfig::from_env(&copies_off).unwrap().relay;
        assert_eq!(
            (relay.check_every.is_some(), relay.copies_every),
            (true, None)
        );
        assert_eq!(
            CommonConfig::from_env(&off).unwrap().relay.copies_every,
            None
        );
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let env = Env::from_pairs([("CAREHUB_MAX_IN_FLIGHT", "lots")]);
        let err = CommonConfig::from_env(&env).unwrap_err();
        assert_eq!(err.var, "CAREHUB_MAX_IN_FLIGHT");
        assert!(err.to_string().contains("lots"));
    }

    #[test]
    fn defaults_apply_when_unset_or_empty() {
        let env = Env::from_pairs([("CAREHUB_NATS_URL", "  ")]);
        let c = CommonConfig::from_env(&env).unwrap();
        assert_eq!(c.nats_url, "nats://127.0.0.1:4222");
        assert_eq!(c.max_in_flight, 256);
        assert!(!c.log_json);
    }

    #[test]
    fn per_service_database_url_wins_over_the_shared_one() {
        let env = Env::from_pairs([
            ("CAREHUB_DATABASE_URL", "postgres://shared"),
            ("CAREHUB_AUTH_DATABASE_URL", "postgres://auth-only"),
        ]);
        let c = CommonConfig::from_env(&env).unwrap();
        assert_eq!(
            c.database_url_for(&env, "auth").as_deref(),
            Some("postgres://auth-only")
        );
        assert_eq!(
            c.database_url_for(&env, "doctor").as_deref(),
            Some("postgres://shared")
        );
    }

    #[test]
    fn each_component_gets_its_own_nats_user_and_inbox() {
        let env = Env::from_pairs([
            ("CAREHUB_NATS_USER", "shared"),
            ("CAREHUB_NATS_PASSWORD", "shared-pw"),
            ("CAREHUB_AUTH_NATS_USER", "auth"),
            ("CAREHUB_AUTH_NATS_PASSWORD", "auth-pw"),
        ]);
        let c = CommonConfig::from_env(&env).unwrap();
        let auth = c.bus_config(&env, "auth").unwrap();
        assert_eq!(auth.user.as_deref(), Some("auth"));
        assert_eq!(auth.password.as_deref(), Some("auth-pw"));
        assert_eq!(auth.inbox_prefix.as_deref(), Some("_INBOX_auth"));
        let hub = c.bus_config(&env, "hub").unwrap();
        assert_eq!(hub.user.as_deref(), Some("shared"));
        assert_eq!(hub.inbox_prefix.as_deref(), Some("_INBOX_hub"));
        let none = Env::from_pairs([("CAREHUB_NATS_URL", "nats://x:1")]);
        let plain = CommonConfig::from_env(&none).unwrap();
        assert_eq!(plain.bus_config(&none, "admin").unwrap().user, None);
    }

    #[test]
    fn a_nats_user_without_a_password_is_refused() {
        let env = Env::from_pairs([("CAREHUB_PATIENT_NATS_USER", "patient")]);
        let c = CommonConfig::from_env(&env).unwrap();
        let err = c.bus_config(&env, "patient").unwrap_err();
        assert_eq!(err.var, "CAREHUB_PATIENT_NATS_USER");
        assert!(c.bus_config(&env, "auth").unwrap().user.is_none());
    }

    #[test]
    fn flags_and_seconds_reject_garbage() {
        let env = Env::from_pairs([("A", "maybe"), ("B", "-1"), ("C", "0.5")]);
        assert!(env.flag("A", false).is_err());
        assert!(env.secs("B", Duration::ZERO).is_err());
        assert_eq!(
            env.secs("C", Duration::ZERO).unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(env.opt::<u32>("D").unwrap(), None);
    }
}
