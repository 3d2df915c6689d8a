//! Inputs that validate themselves on construction and do no I/O.

use carehub_nats::WireError;

/// A normalized email address (trimmed, lowercase, one `@`, a dot in the domain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Email(String);

impl Email {
    /// # Errors
    /// When the address is not plausibly deliverable.
    pub(crate) fn parse(raw: &str) -> Result<Self, WireError> {
        let e = raw.trim().to_lowercase();
        let bad = || WireError::validation("email: enter a valid email address");
        if e.len() > 254 || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = e.split_once('@').ok_or_else(bad)?;
        if local.is_empty()
            || local.len() > 64
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
        {
            return Err(bad());
        }
        Ok(Self(e))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new password: 10 to 128 characters, not the email itself. No composition rules
/// (they push people to predictable patterns); length is what counts.
#[derive(Clone)]
pub(crate) struct NewPassword(String);

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(<redacted>)")
    }
}

impl NewPassword {
    pub(crate) const MIN_CHARS: usize = 10;
    pub(crate) const MAX_CHARS: usize = 128;

    /// # Errors
    /// When the password is too short, too long, or equals the email.
    pub(crate) fn parse(raw: &str, email: Option<&Email>) -> Result<Self, WireError> {
        let n = raw.chars().count();
        if n < Self::MIN_CHARS {
            return Err(WireError::validation(format!(
                "password: use at least {} characters",
                Self::MIN_CHARS
            )));
        }
        if n > Self::MAX_CHARS {
            return Err(WireError::validation(format!(
                "password: use at most {} characters",
                Self::MAX_CHARS
            )));
        }
        if email.is_some_and(|e| raw.trim().eq_ignore_ascii_case(e.as_str())) {
            return Err(WireError::validation(
                "password: must not be your email address",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

/// A display name: 1 to 100 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DisplayName(String);

impl DisplayName {
    /// # Errors
    /// When empty, too long, or containing control characters.
    pub(crate) fn parse(raw: &str) -> Result<Self, WireError> {
        let t = raw.trim();
        // The length counts what is sent, as the schema's `maxLength` does.
        if t.is_empty() || raw.chars().count() > 100 || t.chars().any(char::is_control) {
            return Err(WireError::validation(
                "display_name: use 1 to 100 printable characters",
            ));
        }
        Ok(Self(t.to_owned()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// An IANA time zone name the time zone database knows, spelled as the database spells it
/// (`Asia/Tokyo`, `UTC`). Mails and reminders are written in the account's zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeZoneName(chrono_tz::Tz);

impl TimeZoneName {
    /// # Errors
    /// When the name is not one of the database's zones or links.
    pub(crate) fn parse(raw: &str) -> Result<Self, WireError> {
        let name = raw.trim();
        name.parse::<chrono_tz::Tz>().map(Self).map_err(|_| {
            let shown: String = name.chars().take(64).collect();
            WireError::validation(format!(
                "time_zone: '{shown}' is not a known time zone; use an IANA name such as Europe/Berlin"
            ))
        })
    }

    /// The zone an account has when it names none.
    pub(crate) fn utc() -> Self {
        Self(chrono_tz::UTC)
    }

    pub(crate) fn as_str(&self) -> &'static str {
        self.0.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(
            Email::parse("  Ada@Example.ORG ").unwrap().as_str(),
            "ada@example.org"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@x.org",
            "a@b",
            "a@@b.org",
            "a b@c.org",
            "a@.org",
            "a@b..org",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn passwords_need_length_and_must_differ_from_the_email() {
        let email = Email::parse("someone@example.org").unwrap();
        assert!(NewPassword::parse("short", None).is_err());
        assert!(NewPassword::parse(&"x".repeat(129), None).is_err());
        assert!(NewPassword::parse("someone@example.org", Some(&email)).is_err());
        assert!(NewPassword::parse("correct horse battery", Some(&email)).is_ok());
        assert!(
            !format!(
                "{:?}",
                NewPassword::parse("correct horse battery", None).unwrap()
            )
            .contains("horse")
        );
    }

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert_eq!(
            DisplayName::parse("  Dr. Who ").unwrap().as_str(),
            "Dr. Who"
        );
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse("a\u{0007}b").is_err());
        assert!(DisplayName::parse(&"n".repeat(101)).is_err());
        // Surrounding whitespace counts, as in the schema's `maxLength`.
        assert!(DisplayName::parse(&format!(" {}", "n".repeat(100))).is_err());
    }

    #[test]
    fn time_zones_are_iana_names() {
        assert_eq!(
            TimeZoneName::parse(" Asia/Tokyo ").unwrap().as_str(),
            "Asia/Tokyo"
        );
        assert_eq!(TimeZoneName::parse("UTC").unwrap(), TimeZoneName::utc());
        for bad in ["", "Mars/Olympus", "asia/tokyo", "+09:00", "JST "] {
            let e = TimeZoneName::parse(bad).unwrap_err();
            assert!(e.message.starts_with("time_zone:"), "{bad}: {}", e.message);
        }
    }
}
