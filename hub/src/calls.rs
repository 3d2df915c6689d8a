//! Rules of video calls that need no I/O: when an appointment may have a call, and whether an
//! SDP offer or answer is a real session description.

use chrono::{DateTime, Utc};
use std::io::Cursor;
use std::time::Duration;

/// Largest SDP accepted, in bytes (browsers produce a few KiB).
pub(crate) const MAX_SDP_BYTES: usize = 12_000;
/// Largest ICE candidate line accepted.
pub(crate) const MAX_CANDIDATE_BYTES: usize = 1_024;

/// Why a call is not allowed now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WindowError {
    #[error("the appointment has no fixed time")]
    NoTime,
    #[error("calls open {0} minutes before the appointment")]
    TooEarly(u64),
    #[error("the appointment's call window has closed")]
    TooLate,
}

/// Whether `now` lies within `[start - early, end + late]` of an appointment (RFC 3339 times).
///
/// # Errors
/// When the times are missing or unparsable, or `now` is outside the window.
pub(crate) fn check_window(
    start: Option<&str>,
    end: Option<&str>,
    now: DateTime<Utc>,
    early: Duration,
    late: Duration,
) -> Result<(), WindowError> {
    let parse = |s: Option<&str>| {
        s.and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let (Some(start), Some(end)) = (parse(start), parse(end)) else {
        return Err(WindowError::NoTime);
    };
    let early = chrono::Duration::from_std(early).unwrap_or(chrono::Duration::MAX);
    let late = chrono::Duration::from_std(late).unwrap_or(chrono::Duration::MAX);
    if now < start.checked_sub_signed(early).unwrap_or(start) {
        return Err(WindowError::TooEarly(early.num_minutes().unsigned_abs()));
    }
    if now > end.checked_add_signed(late).unwrap_or(end) {
        return Err(WindowError::TooLate);
    }
    Ok(())
}

/// Checks that `sdp` is a session description with at least one media section.
///
/// # Errors
/// A message saying what is wrong.
pub(crate) fn check_sdp(sdp: &str) -> Result<(), String> {
    if sdp.len() > MAX_SDP_BYTES {
        return Err(format!("SDP longer than {MAX_SDP_BYTES} bytes"));
    }
    let desc = rtc_sdp::SessionDescription::unmarshal(&mut Cursor::new(sdp.as_bytes()))
        .map_err(|e| format!("not a session description: {e}"))?;
    if desc.media_descriptions.is_empty() {
        return Err("the session description has no media section".into());
    }
    Ok(())
}

/// Checks an ICE candidate line (`candidate:...`, or empty for end-of-candidates).
///
/// # Errors
/// A message saying what is wrong.
pub(crate) fn check_candidate(candidate: &str) -> Result<(), String> {
    if candidate.len() > MAX_CANDIDATE_BYTES {
        return Err("candidate too long".into());
    }
    if !candidate.is_empty() && !candidate.starts_with("candidate:") {
        return Err("an ICE candidate starts with 'candidate:'".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const OFFER: &str = "v=0\r\no=- 4215775240449105457 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        a=group:BUNDLE 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n\
        a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
        a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
        a=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\n";

    #[test]
    fn a_browser_like_offer_passes_and_garbage_does_not() {
        check_sdp(OFFER).unwrap();
        assert!(check_sdp("hello").is_err());
        assert!(check_sdp("").is_err());
        assert!(check_sdp("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n").is_err());
        assert!(check_sdp(&"v=0\r\n".repeat(5_000)).is_err());
    }

    #[test]
    fn candidates_must_look_like_candidates() {
        check_candidate("candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host").unwrap();
        check_candidate("").unwrap();
        assert!(check_candidate("<script>").is_err());
    }

    #[test]
    fn calls_are_allowed_only_around_the_appointment() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let (s, e) = (Some("2026-03-01T10:00:00Z"), Some("2026-03-01T10:30:00Z"));
        let early = Duration::from_secs(900);
        let late = Duration::from_secs(600);
        assert_eq!(
            check_window(s, e, t("2026-03-01T09:45:00Z"), early, late),
            Ok(())
        );
        assert_eq!(
            check_window(s, e, t("2026-03-01T10:40:00Z"), early, late),
            Ok(())
        );
        assert_eq!(
            check_window(s, e, t("2026-03-01T09:44:59Z"), early, late),
            Err(WindowError::TooEarly(15))
        );
        assert_eq!(
            check_window(s, e, t("2026-03-01T10:40:01Z"), early, late),
            Err(WindowError::TooLate)
        );
        assert_eq!(
            check_window(None, e, t("2026-03-01T10:00:00Z"), early, late),
            Err(WindowError::NoTime)
        );
    }
}
