//! Notify settings, read from `CAREHUB_*` variables with defaults in code.

use carehub_runtime::{CommonConfig, ConfigError, Env};
use std::path::PathBuf;
use std::time::Duration;

/// How to reach the SMTP server.
#[derive(Clone)]
pub(crate) struct SmtpConfig {
    /// `smtp://host:port` (plain), `smtp://host:port?tls=required` (STARTTLS) or
    /// `smtps://host:port` (TLS from the start).
    pub(crate) url: String,
    pub username: Option<String>,
    pub(crate) password: Option<String>,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = self.url.split('@').next_back().unwrap_or_default();
        f.debug_struct("SmtpConfig")
            .field("server", &host)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Everything the notify service needs to know at start.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// Where people open carehub (links in mail).
    pub(crate) public_url: String,
    /// `None`: mail is written as `.eml` files to [`NotifyConfig::mail_dir`].
    pub(crate) smtp: Option<SmtpConfig>,
    pub(crate) mail_from: String,
    pub(crate) mail_dir: PathBuf,
    /// How long before an appointment reminders go out.
    pub(crate) reminders: Vec<Duration>,
    /// The wait after the first failed delivery; it doubles with each further failure.
    pub(crate) mail_retry_base: Duration,
    /// Delivery attempts before a mail is given up.
    pub(crate) mail_max_attempts: u32,
    /// How long a sender may hold a mail before another may take it over.
    pub(crate) mail_lease: Duration,
    pub(crate) max_in_flight: usize,
    /// How the JetStream streams are made (copies, duplicate window).
    pub(crate) streams: carehub_bus::streams::StreamOptions,
    /// How often the consumers check their positions (`None`: never).
    pub(crate) check_every: Option<Duration>,
    /// How often the account copy is reconciled with the auth service (`None`: never).
    pub(crate) copies_every: Option<Duration>,
}

impl NotifyConfig {
    /// Reads `CAREHUB_PUBLIC_URL` (default `http://127.0.0.1:8080`), `CAREHUB_SMTP_URL`,
    /// `CAREHUB_SMTP_USERNAME`, `CAREHUB_SMTP_PASSWORD`, `CAREHUB_MAIL_FROM` (default
    /// `carehub <no-reply@localhost>`), `CAREHUB_MAIL_DIR` (default `<data dir>/mail`),
    /// `CAREHUB_REMINDERS` (default `24h,1h`), `CAREHUB_MAIL_RETRY_BASE` (seconds, default 5),
    /// `CAREHUB_MAIL_MAX_ATTEMPTS` (default 8), `CAREHUB_MAIL_LEASE` (seconds, default 120).
    ///
    /// # Errors
    /// When a value is set but invalid; the error names the variable.
    pub fn from_env(env: &Env, common: &CommonConfig) -> Result<Self, ConfigError> {
        let smtp = env.raw("CAREHUB_SMTP_URL").map(|url| SmtpConfig {
            url: url.trim().to_owned(),
            username: env.raw("CAREHUB_SMTP_USERNAME").map(str::to_owned),
            password: env.raw("CAREHUB_SMTP_PASSWORD").map(str::to_owned),
        });
        if let Some(s) = &smtp
            && !(s.url.starts_with("smtp://") || s.url.starts_with("smtps://"))
        {
            return Err(ConfigError {
                var: "CAREHUB_SMTP_URL".into(),
                message: "expected smtp://host:port or smtps://host:port".into(),
            });
        }
        let reminders =
            crate::domain::parse_offsets(env.raw("CAREHUB_REMINDERS").unwrap_or("24h,1h"))
                .map_err(|message| ConfigError {
                    var: "CAREHUB_REMINDERS".into(),
                    message,
                })?;
        let mail_from = env
            .raw("CAREHUB_MAIL_FROM")
            .unwrap_or("carehub <no-reply@localhost>")
            .to_owned();
        if mail_from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(ConfigError {
                var: "CAREHUB_MAIL_FROM".into(),
                message: format!("'{mail_from}' is not a mail address"),
            });
        }
        let cfg = Self {
            public_url: env
                .raw("CAREHUB_PUBLIC_URL")
                .unwrap_or("http://127.0.0.1:8080")
                .trim()
                .trim_end_matches('/')
                .to_owned(),
            smtp,
            mail_from,
            mail_dir: env
                .raw("CAREHUB_MAIL_DIR")
                .map_or_else(|| common.data_dir.join("mail"), PathBuf::from),
            reminders,
            mail_retry_base: env.secs("CAREHUB_MAIL_RETRY_BASE", Duration::from_secs(5))?,
            mail_max_attempts: env.get("CAREHUB_MAIL_MAX_ATTEMPTS", 8)?,
            mail_lease: env.secs("CAREHUB_MAIL_LEASE", Duration::from_secs(120))?,
            max_in_flight: common.max_in_flight,
            streams: common.streams,
            check_every: common.relay.check_every,
            copies_every: common.relay.copies_every,
        };
        if cfg.mail_max_attempts == 0 {
            return Err(ConfigError {
                var: "CAREHUB_MAIL_MAX_ATTEMPTS".into(),
                message: "must be at least 1".into(),
            });
        }
        if cfg.mail_lease < Duration::from_secs(1) {
            return Err(ConfigError {
                var: "CAREHUB_MAIL_LEASE".into(),
                message: "must be at least 1 second".into(),
            });
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<NotifyConfig, ConfigError> {
        let env = Env::from_pairs(pairs.iter().copied());
        NotifyConfig::from_env(&env, &CommonConfig::from_env(&env).unwrap())
    }

    #[test]
    fn defaults_write_mail_to_the_data_dir_and_remind_a_day_and_an_hour_before() {
        let c = read(&[("CAREHUB_DATA_DIR", "/tmp/x")]).unwrap();
        assert!(c.smtp.is_none());
        assert_eq!(c.mail_dir, PathBuf::from("/tmp/x/mail"));
        assert_eq!(
            c.reminders,
            vec![Duration::from_secs(86_400), Duration::from_secs(3_600)]
        );
        assert_eq!(c.public_url, "http://127.0.0.1:8080");
    }

    #[test]
    fn bad_values_name_their_variable_and_secrets_do_not_print() {
        assert_eq!(
            read(&[("CAREHUB_SMTP_URL", "http://x")]).unwrap_err().var,
            "CAREHUB_SMTP_URL"
        );
        assert_eq!(
            read(&[("CAREHUB_REMINDERS", "1w")]).unwrap_err().var,
            "CAREHUB_REMINDERS"
        );
        assert_eq!(
            read(&[("CAREHUB_MAIL_FROM", "nobody")]).unwrap_err().var,
            "CAREHUB_MAIL_FROM"
        );
        let c = read(&[
            ("CAREHUB_SMTP_URL", "smtps://u:hunter2@mail.example:465"),
            ("CAREHUB_SMTP_PASSWORD", "s3cret"),
        ])
        .unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
