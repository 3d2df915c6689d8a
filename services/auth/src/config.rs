//! Auth settings, read from `CAREHUB_AUTH_*` variables with defaults in code.

use carehub_runtime::{CommonConfig, ConfigError, Env};
use std::path::PathBuf;
use std::time::Duration;

/// Everything the auth service needs to know at start.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// The signing key file (see [`crate::keys`]).
    pub key_file: PathBuf,
    pub(crate) issuer: String,
    pub(crate) audience: String,
    pub(crate) access_ttl: Duration,
    pub(crate) refresh_ttl: Duration,
    /// How long after its first use a refresh token may be exchanged once more, while the
    /// token it was exchanged for is still unused: a renewal whose answer never reached the
    /// client. Zero: every second use ends the session.
    pub(crate) refresh_reuse_grace: Duration,
    pub(crate) reset_ttl: Duration,
    /// Concurrent argon2 computations; more wait their turn. The default leaves one CPU to
    /// everything else, so a flood of logins (or of password guesses) cannot take the whole
    /// machine: every other request keeps a core.
    pub hash_permits: usize,
    /// Failed logins per (account, client address) in one window before 429.
    pub(crate) max_failures_per_address: i64,
    /// Failed logins per account (any address) in one window before back-off starts.
    pub(crate) max_failures_per_account: i64,
    pub(crate) throttle_window: Duration,
    pub(crate) max_in_flight: usize,
    /// How the JetStream streams are made (copies, duplicate window).
    pub(crate) streams: carehub_bus::streams::StreamOptions,
    /// How the outbox relay keeps and checks what it published.
    pub(crate) relay: carehub_runtime::outbox::RelayOptions,
    /// How long `me` may answer from memory (zero: always from the database). Status changes
    /// made by any auth instance drop the entry at once through the account events.
    pub(crate) account_cache_ttl: Duration,
}

/// The longest (and default) window in which a used refresh token may be exchanged once more.
const MAX_REFRESH_REUSE_GRACE: Duration = Duration::from_secs(10);

impl AuthConfig {
    /// Reads `CAREHUB_AUTH_KEY_FILE` (default `<data dir>/auth-signing-keys.json`),
    /// `CAREHUB_AUTH_ISSUER` (`carehub`), `CAREHUB_AUTH_AUDIENCE` (`carehub-api`),
    /// `CAREHUB_ACCESS_TOKEN_TTL` (900 s), `CAREHUB_REFRESH_TOKEN_TTL` (30 days),
    /// `CAREHUB_REFRESH_REUSE_GRACE` (10 s, at most 10 s),
    /// `CAREHUB_PASSWORD_RESET_TTL` (1800 s), `CAREHUB_HASH_PERMITS` (the number of CPUs less one, at least one),
    /// `CAREHUB_LOGIN_MAX_FAILURES` (10), `CAREHUB_LOGIN_MAX_ACCOUNT_FAILURES` (50),
    /// `CAREHUB_LOGIN_WINDOW` (900 s), `CAREHUB_AUTH_ACCOUNT_CACHE_TTL` (10 s).
    ///
    /// # Errors
    /// When a value is set but invalid; the error names the variable.
    pub fn from_env(env: &Env, common: &CommonConfig) -> Result<Self, ConfigError> {
        let cpus = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let cfg = Self {
            key_file: env.raw("CAREHUB_AUTH_KEY_FILE").map_or_else(
                || common.data_dir.join("auth-signing-keys.json"),
                PathBuf::from,
            ),
            issuer: env
                .raw("CAREHUB_AUTH_ISSUER")
                .unwrap_or("carehub")
                .to_owned(),
            audience: env
                .raw("CAREHUB_AUTH_AUDIENCE")
                .unwrap_or("carehub-api")
                .to_owned(),
            access_ttl: env.secs("CAREHUB_ACCESS_TOKEN_TTL", Duration::from_secs(900))?,
            refresh_ttl: env.secs(
                "CAREHUB_REFRESH_TOKEN_TTL",
                Duration::from_secs(30 * 86_400),
            )?,
            refresh_reuse_grace: env
                .secs("CAREHUB_REFRESH_REUSE_GRACE", MAX_REFRESH_REUSE_GRACE)?,
            reset_ttl: env.secs("CAREHUB_PASSWORD_RESET_TTL", Duration::from_secs(1_800))?,
            hash_permits: env.get("CAREHUB_HASH_PERMITS", cpus.saturating_sub(1).max(1))?,
            max_failures_per_address: env.get("CAREHUB_LOGIN_MAX_FAILURES", 10)?,
            max_failures_per_account: env.get("CAREHUB_LOGIN_MAX_ACCOUNT_FAILURES", 50)?,
            throttle_window: env.secs("CAREHUB_LOGIN_WINDOW", Duration::from_secs(900))?,
            max_in_flight: common.max_in_flight,
            streams: common.streams,
            relay: common.relay,
            account_cache_ttl: env
                .secs("CAREHUB_AUTH_ACCOUNT_CACHE_TTL", Duration::from_secs(10))?,
        };
        if cfg.refresh_reuse_grace > MAX_REFRESH_REUSE_GRACE {
            return Err(ConfigError {
                var: "CAREHUB_REFRESH_REUSE_GRACE".into(),
                message: format!(
                    "must be at most {} seconds (a longer window lets a stolen token be replayed)",
                    MAX_REFRESH_REUSE_GRACE.as_secs()
                ),
            });
        }
        let positive = ConfigError::positive;
        positive("CAREHUB_ACCESS_TOKEN_TTL", cfg.access_ttl.as_secs() > 0)?;
        positive("CAREHUB_REFRESH_TOKEN_TTL", cfg.refresh_ttl.as_secs() > 0)?;
        positive("CAREHUB_PASSWORD_RESET_TTL", cfg.reset_ttl.as_secs() > 0)?;
        positive("CAREHUB_HASH_PERMITS", cfg.hash_permits > 0)?;
        positive(
            "CAREHUB_LOGIN_MAX_FAILURES",
            cfg.max_failures_per_address > 0,
        )?;
        positive(
            "CAREHUB_LOGIN_MAX_ACCOUNT_FAILURES",
            cfg.max_failures_per_account > 0,
        )?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<AuthConfig, ConfigError> {
        let env = Env::from_pairs(pairs.iter().copied());
        AuthConfig::from_env(&env, &CommonConfig::from_env(&env).unwrap())
    }

    #[test]
    fn the_refresh_reuse_grace_is_ten_seconds_at_most() {
        assert_eq!(
            config(&[]).unwrap().refresh_reuse_grace,
            Duration::from_secs(10)
        );
        let off = config(&[("CAREHUB_REFRESH_REUSE_GRACE", "0")]).unwrap();
        assert_eq!(off.refresh_reuse_grace, Duration::ZERO);
        let err = config(&[("CAREHUB_REFRESH_REUSE_GRACE", "11")]).unwrap_err();
        assert_eq!(err.var, "CAREHUB_REFRESH_REUSE_GRACE");
        assert!(err.message.contains("at most 10"), "{}", err.message);
    }
}
