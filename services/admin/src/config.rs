//! Admin settings from `CAREHUB_*` variables.

use carehub_runtime::{CommonConfig, ConfigError, Env};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Longest a request may wait for a doctor before it expires.
    pub(crate) max_wait: Duration,
    /// A request expires this long before its window starts at the latest.
    pub(crate) min_notice: Duration,
    /// Accept deadline of offers made outside a group (a named doctor, a specialty).
    pub(crate) offer_deadline: Duration,
    /// How often deadlines are checked besides the actors' own timers.
    pub(crate) sweep_every: Duration,
    /// How far ahead a window may reach.
    pub(crate) max_horizon: Duration,
    /// How long an instance's routing lease lasts without renewal; after that, others adopt
    /// its open requests.
    pub(crate) lease: Duration,
    /// How long an `Idempotency-Key` and its stored answer are kept.
    pub(crate) idempotency_ttl: Duration,
    pub(crate) max_in_flight: usize,
    /// How the JetStream streams are made (copies, duplicate window).
    pub(crate) streams: carehub_bus::streams::StreamOptions,
    /// How the outbox relay keeps and checks what it published.
    pub(crate) relay: carehub_runtime::outbox::RelayOptions,
}

impl AdminConfig {
    /// Reads `CAREHUB_REQUEST_MAX_WAIT` (seconds, default 172800 = 48 h),
    /// `CAREHUB_MIN_NOTICE` (3600), `CAREHUB_OFFER_DEADLINE` (14400), `CAREHUB_DEADLINE_SWEEP`
    /// (1), `CAREHUB_BOOKING_HORIZON` (31536000 = 1 year), `CAREHUB_ADMIN_LEASE` (10),
    /// `CAREHUB_IDEMPOTENCY_TTL` (86400 = 24 h).
    ///
    /// # Errors
    /// When a value is set but invalid.
    pub fn from_env(env: &Env, common: &CommonConfig) -> Result<Self, ConfigError> {
        let cfg = Self {
            max_wait: env.secs("CAREHUB_REQUEST_MAX_WAIT", Duration::from_secs(48 * 3600))?,
            min_notice: env.secs("CAREHUB_MIN_NOTICE", Duration::from_secs(3600))?,
            offer_deadline: env.secs("CAREHUB_OFFER_DEADLINE", Duration::from_secs(4 * 3600))?,
            sweep_every: env.secs("CAREHUB_DEADLINE_SWEEP", Duration::from_secs(1))?,
            max_horizon: env.secs("CAREHUB_BOOKING_HORIZON", Duration::from_secs(365 * 86_400))?,
            lease: env.secs("CAREHUB_ADMIN_LEASE", Duration::from_secs(10))?,
            idempotency_ttl: env.secs("CAREHUB_IDEMPOTENCY_TTL", Duration::from_secs(86_400))?,
            max_in_flight: common.max_in_flight,
            streams: common.streams,
            relay: common.relay,
        };
        ConfigError::positive("CAREHUB_OFFER_DEADLINE", !cfg.offer_deadline.is_zero())?;
        if cfg.lease <= cfg.sweep_every {
            return Err(ConfigError {
                var: "CAREHUB_ADMIN_LEASE".into(),
                message: "must be longer than CAREHUB_DEADLINE_SWEEP (the lease is renewed at each sweep)".into(),
            });
        }
        ConfigError::positive("CAREHUB_IDEMPOTENCY_TTL", !cfg.idempotency_ttl.is_zero())?;
        ConfigError::positive("CAREHUB_DEADLINE_SWEEP", !cfg.sweep_every.is_zero())?;
        Ok(cfg)
    }
}
