//! Validated doctor inputs. Each parser answers `validation_failed` naming the field.

use carehub_nats::WireError;
use carehub_nats::doctor as wire;
use carehub_schedule::{Availability, ScheduleError, TimeOff, WeeklyHours};
use chrono::NaiveTime;

/// Most specialties a doctor may list.
pub(crate) const MAX_SPECIALTIES: usize = wire::MAX_SPECIALTIES;
/// Longest specialty slug, and longest specialty as given.
pub(crate) const MAX_SLUG_LEN: usize = wire::MAX_SPECIALTY_CHARS;
/// Longest bio, in characters.
pub(crate) const MAX_BIO_CHARS: usize = 2000;
/// Longest time off reason, in characters.
pub(crate) const MAX_REASON_CHARS: usize = 500;
/// Most time off periods that have not ended yet, per doctor.
pub(crate) const MAX_UPCOMING_TIME_OFF: usize = 200;
/// Longest single time off period, in days.
pub(crate) const MAX_TIME_OFF_DAYS: i64 = 366;

/// A schedule error as the wire sees it: `validation_failed`, the message naming the field.
pub(crate) fn schedule_error(e: &ScheduleError) -> WireError {
    WireError::validation(e.to_string())
}

/// Normalizes a specialty to a lowercase slug: spaces and `_` become `-`, runs of `-` collapse,
/// letters and digits stay. `None` when nothing valid is left or it is longer than 50.
pub(crate) fn slug(raw: &str) -> Option<String> {
    let mut out = String::new();
    for c in raw.trim().chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if matches!(c, ' ' | '-' | '_') {
            if !out.is_empty() && !out.ends_with('-') {
                out.push('-');
            }
        } else {
            return None;
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    (!out.is_empty() && out.len() <= MAX_SLUG_LEN).then_some(out)
}

/// At most 10 distinct ISO 639-1 codes, in the order given (a repeated code is kept once).
///
/// # Errors
/// `validation_failed` for too many or one that is not an ISO 639-1 code.
pub(crate) fn languages(raw: &[String]) -> Result<Vec<String>, WireError> {
    use carehub_nats::doctor::{MAX_LANGUAGES, is_language_code};
    let mut out: Vec<String> = Vec::new();
    for code in raw {
        if !is_language_code(code) {
            return Err(WireError::validation(format!(
                "languages: '{}' is not an ISO 639-1 code (two lowercase letters, e.g. 'de')",
                code.chars().take(20).collect::<String>()
            )));
        }
        if !out.contains(code) {
            out.push(code.clone());
        }
    }
    if out.len() > MAX_LANGUAGES {
        return Err(WireError::validation(format!(
            "languages: at most {MAX_LANGUAGES} languages"
        )));
    }
    Ok(out)
}

/// 1..=10 distinct specialty slugs, in the order given, from 1..=10 specialties as given: each
/// at most 50 letters, digits, spaces, `-` and `_`, with a letter or digit (what the OpenAPI
/// document states, so the raw form is checked, not only the slug).
///
/// # Errors
/// `validation_failed` for an empty list, too many, or one that is not a specialty.
pub(crate) fn specialties(raw: &[String]) -> Result<Vec<String>, WireError> {
    if raw.is_empty() || raw.len() > MAX_SPECIALTIES {
        return Err(WireError::validation(format!(
            "specialties: between 1 and {MAX_SPECIALTIES} specialties"
        )));
    }
    let mut out: Vec<String> = Vec::new();
    for r in raw {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_');
        let given = r.chars().count() <= MAX_SLUG_LEN && r.chars().all(allowed);
        let s = given.then(|| slug(r)).flatten().ok_or_else(|| {
            WireError::validation(format!(
                "specialties: '{}' is not a specialty (letters, digits, spaces and '-', at most {MAX_SLUG_LEN})",
                r.chars().take(60).collect::<String>()
            ))
        })?;
        if !out.contains(&s) {
            out.push(s);
        }
    }
    if out.is_empty() || out.len() > MAX_SPECIALTIES {
        return Err(WireError::validation(format!(
            "specialties: between 1 and {MAX_SPECIALTIES} distinct specialties"
        )));
    }
    Ok(out)
}

/// A bio of at most 2000 characters as sent (surrounding whitespace counts, as in the schema's
/// `maxLength`), trimmed.
///
/// # Errors
/// `validation_failed` when longer.
pub(crate) fn bio(raw: &str) -> Result<String, WireError> {
    let b = raw.trim();
    if raw.chars().count() > MAX_BIO_CHARS {
        return Err(WireError::validation(format!(
            "bio: at most {MAX_BIO_CHARS} characters"
        )));
    }
    Ok(b.to_owned())
}

/// A time off reason of at most 500 characters as sent, trimmed.
///
/// # Errors
/// `validation_failed` when longer.
pub(crate) fn reason(raw: &str) -> Result<String, WireError> {
    let r = raw.trim();
    if raw.chars().count() > MAX_REASON_CHARS {
        return Err(WireError::validation(format!(
            "reason: at most {MAX_REASON_CHARS} characters"
        )));
    }
    Ok(r.to_owned())
}

pub(crate) use carehub_nats::time::instant;

fn hhmm(field: &str, raw: &str) -> Result<NaiveTime, WireError> {
    let bad = || WireError::validation(format!("{field}: expected a local time HH:MM"));
    if raw.len() != 5 || raw.as_bytes().get(2) != Some(&b':') {
        return Err(bad());
    }
    NaiveTime::parse_from_str(raw, "%H:%M").map_err(|_| bad())
}

/// `HH:MM`.
pub(crate) fn format_hhmm(t: NaiveTime) -> String {
    t.format("%H:%M").to_string()
}

/// Weekly hours from their wire form.
///
/// # Errors
/// `validation_failed` for a time that is not `HH:MM`.
pub(crate) fn weekly(raw: &[wire::WeeklyHours]) -> Result<Vec<WeeklyHours>, WireError> {
    raw.iter()
        .map(|w| {
            Ok(WeeklyHours {
                weekday: w.weekday.into(),
                start: hhmm("weekly.start", &w.start)?,
                end: hhmm("weekly.end", &w.end)?,
            })
        })
        .collect()
}

/// Weekly hours in their wire form.
pub(crate) fn weekly_wire(w: &[WeeklyHours]) -> Vec<wire::WeeklyHours> {
    w.iter()
        .map(|w| wire::WeeklyHours {
            weekday: w.weekday.into(),
            start: format_hhmm(w.start),
            end: format_hhmm(w.end),
        })
        .collect()
}

/// Builds a validated availability from its stored or requested parts.
///
/// # Errors
/// `validation_failed` naming what is wrong (unknown zone, empty or overlapping ranges, slot
/// length).
pub(crate) fn availability(
    time_zone: &str,
    weekly_raw: &[wire::WeeklyHours],
    time_off: Vec<TimeOff>,
    slot_minutes: u32,
) -> Result<Availability, WireError> {
    let tz = carehub_schedule::parse_time_zone(time_zone).map_err(|e| schedule_error(&e))?;
    let w = weekly(weekly_raw)?;
    Availability::new(tz, w, time_off, slot_minutes).map_err(|e| schedule_error(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specialties_are_normalized_to_distinct_slugs() {
        let s = specialties(&[
            " Family Medicine ".into(),
            "family-medicine".into(),
            "Cardiology".into(),
            "ear__nose  throat".into(),
        ])
        .unwrap();
        assert_eq!(s, ["family-medicine", "cardiology", "ear-nose-throat"]);
        assert!(specialties(&[]).is_err());
        assert!(specialties(&["   ".into()]).is_err());
        assert!(specialties(&["drop table;".into()]).is_err());
        assert!(specialties(&["kardiologie-ä".into()]).is_err());
        assert!(specialties(&["\tcardiology".into()]).is_err());
        assert!(specialties(&[format!("{}a", " ".repeat(50))]).is_err());
        let repeated: Vec<String> = (0..11).map(|_| "cardiology".to_owned()).collect();
        assert!(specialties(&repeated).is_err());
        let eleven: Vec<String> = (0..11).map(|i| format!("s{i}")).collect();
        assert!(specialties(&eleven).is_err());
    }

    #[test]
    fn bios_and_reasons_are_bounded_in_characters() {
        assert!(bio(&"é".repeat(2000)).is_ok());
        assert!(bio(&"é".repeat(2001)).is_err());
        assert!(reason(&"x".repeat(501)).is_err());
        // Surrounding whitespace counts, as in the schema's `maxLength`; what is kept is trimmed.
        assert!(bio(&format!(" {}", "é".repeat(2000))).is_err());
        assert!(reason(&format!("{}\n", "x".repeat(500))).is_err());
        assert_eq!(reason(" away ").unwrap(), "away");
    }

    #[test]
    fn local_times_must_be_hh_mm() {
        assert_eq!(format_hhmm(hhmm("f", "09:05").unwrap()), "09:05");
        for bad in ["9:05", "24:00", "09:60", "09:05:00", "", "ab:cd"] {
            assert!(hhmm("f", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_unknown_zone_is_a_validation_error_naming_the_field() {
        let e = availability("Mars/Base", &[], vec![], 30).unwrap_err();
        assert_eq!(e.code, carehub_nats::ErrorCode::ValidationFailed);
        assert!(e.message.starts_with("time_zone: unknown time zone"));
    }
}
