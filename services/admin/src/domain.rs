//! Validated inputs, free of I/O (the lifecycle rules are in [`crate::lifecycle`]).

use carehub_nats::WireError;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Parses an RFC 3339 time into Unix milliseconds.
///
/// # Errors
/// `validation_failed` naming `field`.
pub(crate) fn parse_time(field: &str, s: &str) -> Result<i64, WireError> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc).timestamp_millis())
        .map_err(|_| {
            WireError::validation(format!(
                "{field}: expected an RFC 3339 time such as 2026-12-01T09:00:00Z"
            ))
        })
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// A patient's preferred window, in the future, at most 31 days long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) start: i64,
    pub(crate) end: i64,
}

/// Longest preferred window.
pub(crate) const MAX_WINDOW: Duration = Duration::from_secs(31 * 86_400);

impl Window {
    /// # Errors
    /// `validation_failed` when malformed, reversed, in the past, too long or too far ahead.
    pub(crate) fn parse(
        start: &str,
        end: &str,
        now: i64,
        horizon: Duration,
    ) -> Result<Self, WireError> {
        let (start, end) = (
            parse_time("window_start", start)?,
            parse_time("window_end", end)?,
        );
        if end <= start {
            return Err(WireError::validation(
                "window_end: must be after window_start",
            ));
        }
        if end <= now {
            return Err(WireError::validation(
                "window_end: the window is in the past",
            ));
        }
        if end - start > ms(MAX_WINDOW) {
            return Err(WireError::validation("window: at most 31 days long"));
        }
        if start > now + ms(horizon) {
            return Err(WireError::validation("window_start: too far ahead"));
        }
        Ok(Self { start, end })
    }

    /// When an unanswered request gives up: the earlier of `now + max_wait` and
    /// `window start − min_notice`.
    ///
    /// # Errors
    /// `validation_failed` when that moment has already passed (the window starts too soon).
    pub(crate) fn final_deadline(
        &self,
        now: i64,
        max_wait: Duration,
        min_notice: Duration,
    ) -> Result<i64, WireError> {
        let deadline = (now + ms(max_wait)).min(self.start - ms(min_notice));
        if deadline <= now {
            return Err(WireError::validation(
                "window: starts too soon to be arranged",
            ));
        }
        Ok(deadline)
    }
}

/// A reason or note typed by a person: not empty after trimming, at most `max` characters as
/// sent (the schema's `maxLength` counts what is sent, surrounding whitespace included).
///
/// # Errors
/// `validation_failed` naming `field`.
pub(crate) fn text(field: &str, s: &str, max: usize) -> Result<String, WireError> {
    let t = s.trim();
    if t.is_empty() || s.chars().count() > max {
        return Err(WireError::validation(format!(
            "{field}: 1 to {max} characters"
        )));
    }
    Ok(t.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use carehub_nats::time::rfc3339;

    const H: i64 = 3_600_000;

    #[test]
    fn typed_text_is_trimmed_and_its_limit_counts_what_was_sent() {
        assert_eq!(text("reason", "  no show ", 20).unwrap(), "no show");
        assert!(text("reason", "   ", 20).is_err());
        assert!(text("reason", &"x".repeat(21), 20).is_err());
        // As the schema's `maxLength`: surrounding whitespace counts.
        assert!(text("reason", &format!(" {}", "x".repeat(20)), 20).is_err());
    }

    #[test]
    fn windows_must_be_forward_future_and_bounded() {
        let now = parse_time("t", "2026-12-01T00:00:00Z").unwrap();
        let horizon = Duration::from_secs(365 * 86_400);
        assert!(
            Window::parse("2026-12-02T10:00:00Z", "2026-12-02T09:00:00Z", now, horizon).is_err()
        );
        assert!(
            Window::parse("2026-11-01T10:00:00Z", "2026-11-01T12:00:00Z", now, horizon).is_err()
        );
        assert!(
            Window::parse("2026-12-02T10:00:00Z", "2027-02-02T12:00:00Z", now, horizon).is_err()
        );
        assert!(
            Window::parse("2028-12-02T10:00:00Z", "2028-12-02T12:00:00Z", now, horizon).is_err()
        );
        assert!(Window::parse("nonsense", "2026-12-02T12:00:00Z", now, horizon).is_err());
        let w = Window::parse(
            "2026-12-02T10:00:00+01:00",
            "2026-12-02T12:00:00Z",
            now,
            horizon,
        )
        .unwrap();
        assert_eq!(rfc3339(w.start), "2026-12-02T09:00:00Z");
    }

    #[test]
    fn the_final_deadline_is_the_earlier_of_max_wait_and_notice_before_the_window() {
        let now = 1_000 * H;
        // At most 48 hours of waiting, and an hour's notice before the window.
        let deadline = |start: i64, end: i64| {
            Window { start, end }.final_deadline(
                now,
                Duration::from_secs(48 * 3600),
                Duration::from_secs(3600),
            )
        };
        assert_eq!(
            deadline(now + 100 * H, now + 102 * H).unwrap(),
            now + 48 * H
        );
        assert_eq!(deadline(now + 5 * H, now + 6 * H).unwrap(), now + 4 * H);
        assert!(deadline(now, now + H / 2).is_err());
    }
}
