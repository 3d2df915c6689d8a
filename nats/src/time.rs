//! How instants are written on the wire: RFC 3339 in UTC with a `Z`, from Unix milliseconds.
//! Every component formats times with these, so one instant reads the same everywhere. Also the
//! schema of a time zone name, shared by accounts and doctors' availability.

use chrono::{DateTime, SecondsFormat, Utc};

/// Whole seconds, `2026-03-02T09:00:00Z`: slot and appointment times, which sit on the grid.
pub fn rfc3339(ms: i64) -> String {
    rfc3339_of(DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default())
}

/// Milliseconds, `2026-03-02T09:00:00.250Z`: when something happened (messages, calls).
pub fn rfc3339_millis(ms: i64) -> String {
    format(ms, SecondsFormat::Millis)
}

/// As many sub-second digits as the instant has (none, 3, 6 or 9): account timestamps.
pub fn rfc3339_auto(ms: i64) -> String {
    format(ms, SecondsFormat::AutoSi)
}

/// [`rfc3339`] of a `DateTime`. Written digit by digit rather than through chrono's formatter:
/// a week of free slots is a few hundred of these per query, and the formatter was most of
/// that query's own CPU. Years outside 0000-9999 and leap seconds take chrono's way.
pub fn rfc3339_of(t: DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    let year = t.year();
    let (Ok(year @ 0..=9999), false) = (u32::try_from(year), t.nanosecond() >= 1_000_000_000)
    else {
        return t.to_rfc3339_opts(SecondsFormat::Secs, true);
    };
    let mut text = *b"0000-00-00T00:00:00Z";
    let fields = [
        (0, 4, year),
        (5, 2, t.month()),
        (8, 2, t.day()),
        (11, 2, t.hour()),
        (14, 2, t.minute()),
        (17, 2, t.second()),
    ];
    for (at, width, mut value) in fields {
        for digit in text[at..at + width].iter_mut().rev() {
            // `value % 10` is a single digit, so the cast cannot truncate.
            *digit = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    std::str::from_utf8(&text).map_or_else(|_| String::new(), str::to_owned)
}

/// Parses an RFC 3339 instant a caller sent in `field`.
///
/// # Errors
/// `validation_failed` naming the field and showing the expected form.
pub fn instant(field: &str, raw: &str) -> Result<DateTime<Utc>, crate::WireError> {
    DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            crate::WireError::validation(format!(
                "{field}: expected an RFC 3339 time like 2026-03-29T09:00:00Z"
            ))
        })
}

/// The name every account and doctor zone falls back to: accounts made before zones were kept,
/// and events of an older auth instance, read as UTC.
pub(crate) const DEFAULT_TIME_ZONE: &str = "UTC";

/// The OpenAPI schema of a time zone field in a request: every name of the IANA time zone
/// database the services know (the same release of it, so the list is what is accepted).
pub fn time_zone_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name())))
        .examples(["Europe/Berlin"])
        .description(Some("An IANA time zone name, e.g. `Europe/Berlin`"))
        .build()
}

/// An instant out of chrono's range (never a real one) is written as the Unix epoch.
fn format(ms: i64, precision: SecondsFormat) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(precision, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_precision_writes_utc_with_z() {
        let ms = 1_772_442_000_250; // 2026-03-02T09:00:00.250Z
        assert_eq!(rfc3339(ms), "2026-03-02T09:00:00Z");
        assert_eq!(rfc3339_millis(ms), "2026-03-02T09:00:00.250Z");
        assert_eq!(rfc3339_auto(ms), "2026-03-02T09:00:00.250Z");
        assert_eq!(rfc3339_auto(ms - 250), "2026-03-02T09:00:00Z");
        assert_eq!(rfc3339(i64::MAX), "1970-01-01T00:00:00Z");
        let t = DateTime::<Utc>::from_timestamp_millis(ms).unwrap();
        assert_eq!(rfc3339_of(t), rfc3339(ms));
    }

    #[test]
    fn whole_seconds_are_written_as_chrono_writes_them() {
        let chrono = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        // Every few hours and seconds from year 0 to 9999, the ends of chrono's range, and
        // instants before year 0 and after 9999 (chrono's way, with a sign).
        let mut ms = -62_167_219_200_000; // 0000-01-01T00:00:00Z
        while ms < 253_402_300_800_000 {
            let t = DateTime::<Utc>::from_timestamp_millis(ms).unwrap();
            assert_eq!(rfc3339_of(t), chrono(t), "{ms}");
            ms += 7_919_999_999; // about three months, never a whole number of days
        }
        for t in [
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
            DateTime::<Utc>::from_timestamp_millis(-62_167_219_200_001).unwrap(),
            DateTime::<Utc>::from_timestamp_millis(253_402_300_800_000).unwrap(),
            DateTime::<Utc>::from_timestamp(1_483_228_799, 1_500_000_000).unwrap(), // a leap second
        ] {
            assert_eq!(rfc3339_of(t), chrono(t), "{t:?}");
        }
        assert_eq!(rfc3339(1_772_442_059_999), "2026-03-02T09:00:59Z");
    }
}
