//! Pure rules, no I/O: what an appointment event tells each person, which reminders a
//! confirmed appointment gets, the password reset mail, and the retry backoff. Every time in a
//! message is written in the recipient's time zone, named by its abbreviation or offset.

use carehub_nats::Role;
use carehub_nats::appointment::{Actor, AppointmentEvent, AppointmentEventKind};
pub(crate) use carehub_nats::time::rfc3339;
use chrono::{DateTime, Utc};
pub(crate) use chrono_tz::Tz;
use std::time::Duration;

/// A rendered message: the in-app notification, and the mail made from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    /// `appointment_<event kind>` or `appointment_reminder`.
    pub(crate) kind: String,
    pub(crate) title: String,
    pub(crate) body: String,
}

/// What the directory knows of a person, for wording messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Person {
    pub(crate) display_name: String,
    pub(crate) role: Role,
}

/// The zone a recipient's times are written in: their account's, UTC when the directory does
/// not know them or the name is not one the time zone database knows.
pub(crate) fn zone(name: Option<&str>) -> Tz {
    name.and_then(|n| n.parse().ok()).unwrap_or(chrono_tz::UTC)
}

/// Formats an RFC 3339 time for people in `tz`, named by the zone's abbreviation or offset
/// ("Mon 5 Jan 2026 15:00 CET", "Tue 6 Jan 2026 09:00 -03"); an unparsable value is shown as it is.
pub(crate) fn human_time(rfc3339: &str, tz: Tz) -> String {
    parse(rfc3339).map_or_else(
        || rfc3339.to_owned(),
        |t| {
            t.with_timezone(&tz)
                .format("%a %-d %b %Y %H:%M %Z")
                .to_string()
        },
    )
}

/// Formats an RFC 3339 time as a date in `tz` ("Mon 5 Jan 2026").
pub(crate) fn human_date(rfc3339: &str, tz: Tz) -> String {
    parse(rfc3339).map_or_else(
        || rfc3339.to_owned(),
        |t| t.with_timezone(&tz).format("%a %-d %b %Y").to_string(),
    )
}

/// Formats a window in `tz`; the end shows only its time when it falls on the same local day
/// (and the zone's name once, unless a clock change falls inside the window).
pub(crate) fn human_window(start: &str, end: &str, tz: Tz) -> String {
    match (parse(start), parse(end)) {
        (Some(s), Some(e)) => {
            let (s, e) = (s.with_timezone(&tz), e.with_timezone(&tz));
            let (s_zone, e_zone) = (s.format("%Z").to_string(), e.format("%Z").to_string());
            if s.date_naive() != e.date_naive() {
                format!("{} – {}", human_time(start, tz), human_time(end, tz))
            } else if s_zone == e_zone {
                format!(
                    "{}–{} {e_zone}",
                    s.format("%a %-d %b %Y %H:%M"),
                    e.format("%H:%M")
                )
            } else {
                format!(
                    "{} {s_zone}–{} {e_zone}",
                    s.format("%a %-d %b %Y %H:%M"),
                    e.format("%H:%M")
                )
            }
        }
        _ => format!("{} – {}", human_time(start, tz), human_time(end, tz)),
    }
}

/// Unix milliseconds of an RFC 3339 time.
pub(crate) fn unix_ms(rfc3339: &str) -> Option<i64> {
    parse(rfc3339).map(|t| t.timestamp_millis())
}

fn parse(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// "Dr. X" for a doctor (unless the name already says so), the name itself otherwise.
pub(crate) fn title_name(name: &str, role: Role) -> String {
    let name = name.trim();
    match role {
        Role::Doctor if !name.to_ascii_lowercase().starts_with("dr") => format!("Dr. {name}"),
        _ => name.to_owned(),
    }
}

/// How a message names whoever caused an event: the name the event carries, else the
/// directory's, else a role-based phrase.
pub(crate) fn actor_label(actor: Option<&Actor>, known: Option<&Person>) -> String {
    let Some(actor) = actor else {
        return "the clinic".to_owned();
    };
    let name = actor
        .display_name
        .as_deref()
        .filter(|n| !n.trim().is_empty())
        .or(known.map(|p| p.display_name.as_str()));
    match (actor.role, name) {
        (Role::Admin, Some(n)) => format!("the clinic ({n})"),
        (Role::Admin, None) => "the clinic".to_owned(),
        (role, Some(n)) => title_name(n, role),
        (Role::Doctor, None) => "your doctor".to_owned(),
        (Role::Patient, None) => "the patient".to_owned(),
    }
}

/// Everything the wording of an appointment event depends on besides the event.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wording<'a> {
    /// From [`actor_label`].
    pub(crate) actor: &'a str,
    /// The patient's name, if known.
    pub(crate) patient: Option<&'a str>,
    /// The confirmed doctor's label ("Dr. X"), if known.
    pub(crate) doctor: Option<&'a str>,
}

/// What `event` tells `recipient`, with times in the recipient's zone `tz`.
pub(crate) fn appointment_message(
    event: &AppointmentEvent,
    recipient: &str,
    tz: Tz,
    w: Wording<'_>,
) -> Message {
    use AppointmentEventKind as K;
    let a = &event.appointment;
    let is_patient = recipient == a.patient_id;
    let by_self = event.actor.as_ref().is_some_and(|x| x.user_id == recipient);
    let window = human_window(&a.window_start, &a.window_end, tz);
    let when = a
        .start
        .as_deref()
        .map_or_else(|| window.clone(), |t| human_time(t, tz));
    let date = human_date(a.start.as_deref().unwrap_or(&a.window_start), tz);
    let reason = event
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    let because = reason.map_or_else(String::new, |r| format!(": {r}"));
    let patient = w.patient.unwrap_or("a patient");
    let doctor = w.doctor.unwrap_or("your doctor");
    let by = if by_self {
        "you".to_owned()
    } else {
        w.actor.to_owned()
    };
    let (title, body): (&str, String) = match event.kind {
        K::Requested if is_patient => (
            "Appointment requested",
            format!(
                "We received your request for {window}. You will hear from us when a doctor accepts."
            ),
        ),
        K::Requested => (
            "New appointment request",
            format!("New appointment request from {patient} for {window}."),
        ),
        K::Offered if is_patient => (
            "Request sent to a doctor",
            format!("Your request for {window} was sent to a doctor."),
        ),
        K::Offered => (
            "New appointment request",
            format!(
                "New appointment request for {window} from {patient}{}",
                reason_or(&a.reason, ". Please accept or decline it.")
            ),
        ),
        K::OfferDeclined if is_patient => (
            "Still looking for a doctor",
            format!("A doctor could not take your request for {window}; we are asking another."),
        ),
        K::OfferDeclined => (
            "Offer declined",
            format!("The request for {window} was declined by {by}{because}"),
        ),
        K::OfferTimedOut if is_patient => (
            "Still looking for a doctor",
            format!("Your request for {window} is being passed to another doctor."),
        ),
        K::OfferTimedOut => (
            "Request passed on",
            format!(
                "The appointment request for {window} was passed on because it was not answered in time."
            ),
        ),
        K::Escalated if is_patient => (
            "Still looking for a doctor",
            format!(
                "No doctor has accepted your request for {window} yet; the clinic is looking into it."
            ),
        ),
        K::Escalated => (
            "Request needs attention",
            format!(
                "No doctor accepted the appointment request for {window} from {patient}; it waits in the admin queue."
            ),
        ),
        K::Confirmed if is_patient => (
            "Appointment confirmed",
            format!(
                "{} accepted your request: {when}.",
                capitalize(doctor_or_actor(w, &by))
            ),
        ),
        K::Confirmed => (
            "Appointment confirmed",
            format!("Your appointment with {patient} is confirmed: {when}."),
        ),
        K::ChangeRequested if by_self => (
            "Move requested",
            format!(
                "You asked to move the appointment on {date}; the current time holds until it is answered."
            ),
        ),
        K::ChangeRequested => (
            "Appointment move requested",
            format!(
                "{} asked to move the appointment on {date}. Please accept or decline.",
                capitalize(&by)
            ),
        ),
        K::ChangeDeclined => (
            "Appointment stays as it was",
            format!("The move of the appointment on {date} was not accepted; it stays at {when}."),
        ),
        K::CallEnded => (
            "Video call ended",
            format!("The video call for the appointment on {date} has ended."),
        ),
        K::Rescheduled => (
            "Appointment moved",
            format!("Your appointment was moved to {when} by {by}{because}."),
        ),
        K::Cancelled => (
            "Appointment cancelled",
            format!("Your appointment on {date} was cancelled by {by}{because}."),
        ),
        K::Completed if is_patient => (
            "Appointment completed",
            format!("Your appointment on {date} with {doctor} is complete."),
        ),
        K::Completed => (
            "Appointment completed",
            format!("The appointment on {date} with {patient} is complete."),
        ),
        K::NoShow => (
            "Appointment missed",
            format!("The appointment on {date} was marked as missed by {by}."),
        ),
        K::Expired => (
            "Appointment request expired",
            format!(
                "No doctor could accept the request for {window} in time. Please request another time."
            ),
        ),
        K::Declined => (
            "Appointment request declined",
            format!("The appointment request for {window} was declined by {by}{because}."),
        ),
    };
    Message {
        kind: format!("appointment_{}", event.kind.as_str()),
        title: title.to_owned(),
        body: tidy(&body),
    }
}

fn doctor_or_actor<'a>(w: Wording<'a>, by: &'a str) -> &'a str {
    w.doctor.unwrap_or(by)
}

fn reason_or(reason: &str, otherwise: &str) -> String {
    let r = reason.trim();
    if r.is_empty() {
        otherwise.to_owned()
    } else {
        format!(": {r}")
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next().map_or_else(String::new, |f| {
        f.to_uppercase().collect::<String>() + c.as_str()
    })
}

/// Drops a doubled full stop left by a reason that ends with one.
fn tidy(body: &str) -> String {
    body.replace("..", ".")
        .replace("?.", "?")
        .replace("!.", "!")
}

/// Which reminders an appointment change asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReminderEffect {
    /// Replace unsent reminders with ones for the new start time.
    Schedule,
    /// Drop unsent reminders.
    Withdraw,
    Keep,
}

/// What `kind` does to an appointment's reminders.
pub(crate) fn reminder_effect(kind: AppointmentEventKind) -> ReminderEffect {
    use AppointmentEventKind as K;
    match kind {
        K::Confirmed | K::Rescheduled => ReminderEffect::Schedule,
        K::Cancelled | K::Completed | K::NoShow | K::Expired | K::Declined => {
            ReminderEffect::Withdraw
        }
        K::Requested
        | K::Offered
        | K::OfferDeclined
        | K::OfferTimedOut
        | K::Escalated
        | K::ChangeRequested
        | K::ChangeDeclined
        | K::CallEnded => ReminderEffect::Keep,
    }
}

/// One reminder to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedReminder {
    pub(crate) offset_ms: i64,
    pub(crate) due_at: i64,
}

/// The reminders still ahead for an appointment starting at `start_ms`: one per offset whose
/// time has not passed.
pub(crate) fn plan_reminders(
    start_ms: i64,
    offsets: &[Duration],
    now_ms: i64,
) -> Vec<PlannedReminder> {
    offsets
        .iter()
        .map(|o| i64::try_from(o.as_millis()).unwrap_or(i64::MAX))
        .filter_map(|offset_ms| {
            let due_at = start_ms.checked_sub(offset_ms)?;
            (due_at > now_ms).then_some(PlannedReminder { offset_ms, due_at })
        })
        .collect()
}

/// "1 hour", "24 hours", "30 minutes", "2 days".
pub(crate) fn human_duration(ms: i64) -> String {
    let plural = |n: i64, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    let mins = ms / 60_000;
    if mins >= 2 * 24 * 60 && mins % (24 * 60) == 0 {
        plural(mins / (24 * 60), "day")
    } else if mins >= 60 && mins % 60 == 0 {
        plural(mins / 60, "hour")
    } else if mins >= 1 {
        plural(mins, "minute")
    } else {
        plural(ms / 1000, "second")
    }
}

/// The reminder for an appointment at `start` (RFC 3339), `offset_ms` before it, with the time
/// in the recipient's zone `tz`.
pub(crate) fn reminder_message(
    start: &str,
    offset_ms: i64,
    with_whom: Option<&str>,
    tz: Tz,
) -> Message {
    let with = with_whom.map_or_else(String::new, |n| format!(" with {n}"));
    Message {
        kind: "appointment_reminder".to_owned(),
        title: format!("Reminder: appointment in {}", human_duration(offset_ms)),
        body: format!(
            "Your appointment{with} starts in {}: {}.",
            human_duration(offset_ms),
            human_time(start, tz)
        ),
    }
}

/// Parses `CAREHUB_REMINDERS`: comma-separated offsets like `24h,1h,30m,90s,2d`.
///
/// # Errors
/// When an item is not a positive number followed by `d`, `h`, `m` or `s`.
pub(crate) fn parse_offsets(s: &str) -> Result<Vec<Duration>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, unit) = p.split_at(p.len() - 1);
            let n: u64 = n.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                format!("'{p}': expected a positive number and a unit (d, h, m, s)")
            })?;
            let secs = match unit {
                "d" => n * 86_400,
                "h" => n * 3_600,
                "m" => n * 60,
                "s" => n,
                _ => return Err(format!("'{p}': unit must be d, h, m or s")),
            };
            Ok(Duration::from_secs(secs))
        })
        .collect()
}

/// The password reset mail, its expiry in the recipient's zone `tz`. The link carries the token
/// in the fragment, so it never reaches a server log.
pub(crate) fn reset_mail(
    public_url: &str,
    name: &str,
    token: &str,
    expires_at_ms: i64,
    tz: Tz,
) -> Message {
    let link = format!(
        "{}/reset-password#token={token}",
        public_url.trim_end_matches('/')
    );
    Message {
        kind: "password_reset".to_owned(),
        title: "Reset your carehub password".to_owned(),
        body: format!(
            "Hello {name},\n\nSomeone, hopefully you, asked to reset the password of your carehub account. \
             Open this link to choose a new password:\n\n{link}\n\nThe link works once and expires at {}. \
             If you did not ask for it, ignore this mail: your password stays as it is.",
            human_time(&rfc3339(expires_at_ms), tz)
        ),
    }
}

/// The mail text made from an in-app message.
pub(crate) fn mail_body(msg: &Message, public_url: &str) -> String {
    format!(
        "{}\n\nSee your notifications: {}/notifications\n",
        msg.body,
        public_url.trim_end_matches('/')
    )
}

/// The wait before the next attempt after `attempts` failed ones: `base`, doubling each time,
/// at most one hour.
pub(crate) fn backoff(base: Duration, attempts: u32) -> Duration {
    let factor = 1u32 << attempts.saturating_sub(1).min(20);
    base.saturating_mul(factor).min(Duration::from_secs(3_600))
}

#[cfg(test)]
mod tests {
    use super::*;
    use carehub_nats::appointment::{Appointment, AppointmentStatus};

    fn event(
        kind: AppointmentEventKind,
        actor: Option<Actor>,
        reason: Option<&str>,
    ) -> AppointmentEvent {
        AppointmentEvent {
            event_id: "e1".into(),
            kind,
            at: 0,
            appointment: Appointment {
                id: "a1".into(),
                patient_id: "pat".into(),
                patient_name: None,
                doctor_name: None,
                doctor_id: Some("doc".into()),
                group_id: None,
                specialty: None,
                status: AppointmentStatus::Confirmed,
                window_start: "2026-03-02T09:00:00Z".into(),
                window_end: "2026-03-02T12:00:00Z".into(),
                start: Some("2026-03-02T10:30:00Z".into()),
                end: Some("2026-03-02T11:00:00Z".into()),
                reason: "back pain".into(),
                closed_by: None,
                close_reason: None,
                created_at: "2026-03-01T08:00:00Z".into(),
                version: 3,
                pending_change: None,
                last_call: None,
            },
            doctor_id: Some("doc".into()),
            actor,
            reason: reason.map(str::to_owned),
            notify: vec!["pat".into()],
        }
    }

    fn doctor(name: Option<&str>) -> Actor {
        Actor {
            user_id: "doc".into(),
            role: Role::Doctor,
            display_name: name.map(str::to_owned),
        }
    }

    fn words<'a>(actor: &'a str) -> Wording<'a> {
        Wording {
            actor,
            patient: Some("Ada Lovelace"),
            doctor: None,
        }
    }

    #[test]
    fn a_cancellation_says_when_who_and_why() {
        let e = event(
            AppointmentEventKind::Cancelled,
            Some(doctor(Some("Kofi Mensah"))),
            Some("I am ill"),
        );
        let label = actor_label(e.actor.as_ref(), None);
        assert_eq!(label, "Dr. Kofi Mensah");
        let m = appointment_message(&e, "pat", chrono_tz::UTC, words(&label));
        assert_eq!(m.kind, "appointment_cancelled");
        assert_eq!(m.title, "Appointment cancelled");
        assert_eq!(
            m.body,
            "Your appointment on Mon 2 Mar 2026 was cancelled by Dr. Kofi Mensah: I am ill."
        );
    }

    #[test]
    fn the_one_who_cancelled_reads_you() {
        let mut e = event(AppointmentEventKind::Cancelled, None, None);
        e.actor = Some(Actor {
            user_id: "pat".into(),
            role: Role::Patient,
            display_name: Some("Ada".into()),
        });
        let label = actor_label(e.actor.as_ref(), None);
        let m = appointment_message(&e, "pat", chrono_tz::UTC, words(&label));
        assert_eq!(
            m.body,
            "Your appointment on Mon 2 Mar 2026 was cancelled by you."
        );
    }

    #[test]
    fn a_confirmation_names_the_doctor_and_the_time() {
        let e = event(
            AppointmentEventKind::Confirmed,
            Some(doctor(Some("Dr. Inès Moreau"))),
            None,
        );
        let label = actor_label(e.actor.as_ref(), None);
        let m = appointment_message(&e, "pat", chrono_tz::UTC, words(&label));
        assert_eq!(
            m.body,
            "Dr. Inès Moreau accepted your request: Mon 2 Mar 2026 10:30 UTC."
        );
        let to_doctor = appointment_message(&e, "doc", chrono_tz::UTC, words(&label));
        assert_eq!(
            to_doctor.body,
            "Your appointment with Ada Lovelace is confirmed: Mon 2 Mar 2026 10:30 UTC."
        );
    }

    #[test]
    fn an_offer_tells_the_doctor_the_window_and_the_reason() {
        let mut e = event(AppointmentEventKind::Offered, None, None);
        e.appointment.start = None;
        let label = actor_label(None, None);
        let m = appointment_message(&e, "doc", chrono_tz::UTC, words(&label));
        assert_eq!(m.title, "New appointment request");
        assert_eq!(
            m.body,
            "New appointment request for Mon 2 Mar 2026 09:00–12:00 UTC from Ada Lovelace: back pain"
        );
    }

    #[test]
    fn actors_fall_back_to_the_directory_then_to_their_role() {
        let known = Person {
            display_name: "Sara Lindqvist".into(),
            role: Role::Doctor,
        };
        assert_eq!(
            actor_label(Some(&doctor(None)), Some(&known)),
            "Dr. Sara Lindqvist"
        );
        assert_eq!(actor_label(Some(&doctor(None)), None), "your doctor");
        let admin = Actor {
            user_id: "x".into(),
            role: Role::Admin,
            display_name: Some("Clinic Admin".into()),
        };
        assert_eq!(actor_label(Some(&admin), None), "the clinic (Clinic Admin)");
        assert_eq!(actor_label(None, None), "the clinic");
    }

    #[test]
    fn every_kind_has_a_message_for_both_sides() {
        use AppointmentEventKind as K;
        for kind in [
            K::Requested,
            K::Offered,
            K::OfferDeclined,
            K::OfferTimedOut,
            K::Escalated,
            K::Confirmed,
            K::ChangeRequested,
            K::ChangeDeclined,
            K::CallEnded,
            K::Rescheduled,
            K::Cancelled,
            K::Completed,
            K::NoShow,
            K::Expired,
            K::Declined,
        ] {
            let e = event(kind, Some(doctor(Some("X"))), Some("because."));
            for who in ["pat", "doc"] {
                let m = appointment_message(&e, who, chrono_tz::Asia::Tokyo, words("Dr. X"));
                assert!(!m.title.is_empty() && !m.body.is_empty(), "{kind:?}");
                assert!(!m.body.contains(".."), "{kind:?}: {}", m.body);
                assert_eq!(m.kind, format!("appointment_{}", kind.as_str()));
            }
        }
    }

    #[test]
    fn reminders_are_planned_only_for_offsets_still_ahead() {
        let start = unix_ms("2026-03-02T10:30:00Z").unwrap();
        let offsets = parse_offsets("24h, 1h").unwrap();
        let now = start - 2 * 3_600_000;
        assert_eq!(
            plan_reminders(start, &offsets, now),
            vec![PlannedReminder {
                offset_ms: 3_600_000,
                due_at: start - 3_600_000
            }]
        );
        assert_eq!(
            plan_reminders(start, &offsets, start - 48 * 3_600_000).len(),
            2
        );
        assert!(plan_reminders(start, &offsets, start).is_empty());
        assert_eq!(
            reminder_effect(AppointmentEventKind::Rescheduled),
            ReminderEffect::Schedule
        );
        assert_eq!(
            reminder_effect(AppointmentEventKind::NoShow),
            ReminderEffect::Withdraw
        );
        assert_eq!(
            reminder_effect(AppointmentEventKind::Offered),
            ReminderEffect::Keep
        );
    }

    #[test]
    fn offsets_parse_with_units_and_reject_garbage() {
        assert_eq!(
            parse_offsets("2d,90s,30m").unwrap(),
            vec![
                Duration::from_secs(172_800),
                Duration::from_secs(90),
                Duration::from_secs(1_800)
            ]
        );
        assert!(parse_offsets("1w").is_err());
        assert!(parse_offsets("0h").is_err());
        assert!(parse_offsets("h").is_err());
        assert!(parse_offsets("").unwrap().is_empty());
    }

    #[test]
    fn a_reminder_reads_naturally() {
        let m = reminder_message(
            "2026-03-02T10:30:00Z",
            86_400_000,
            Some("Dr. X"),
            chrono_tz::UTC,
        );
        assert_eq!(m.title, "Reminder: appointment in 24 hours");
        assert_eq!(
            m.body,
            "Your appointment with Dr. X starts in 24 hours: Mon 2 Mar 2026 10:30 UTC."
        );
        assert_eq!(human_duration(3_600_000), "1 hour");
        assert_eq!(human_duration(172_800_000), "2 days");
        assert_eq!(human_duration(1_800_000), "30 minutes");
    }

    #[test]
    fn the_reset_mail_carries_the_link_in_the_fragment() {
        let m = reset_mail(
            "http://127.0.0.1:8080/",
            "Ada",
            "chp_abc",
            0,
            chrono_tz::UTC,
        );
        assert!(
            m.body
                .contains("http://127.0.0.1:8080/reset-password#token=chp_abc\n"),
            "{}",
            m.body
        );
        assert!(m.body.starts_with("Hello Ada,"));
    }

    #[test]
    fn backoff_doubles_from_the_base_and_is_capped() {
        let base = Duration::from_secs(5);
        assert_eq!(backoff(base, 1), Duration::from_secs(5));
        assert_eq!(backoff(base, 2), Duration::from_secs(10));
        assert_eq!(backoff(base, 4), Duration::from_secs(40));
        assert_eq!(backoff(base, 40), Duration::from_secs(3_600));
        assert_eq!(backoff(base, 0), Duration::from_secs(5));
    }

    #[test]
    fn windows_on_one_day_are_compact() {
        assert_eq!(
            human_window(
                "2026-03-02T09:00:00Z",
                "2026-03-03T12:00:00Z",
                chrono_tz::UTC
            ),
            "Mon 2 Mar 2026 09:00 UTC – Tue 3 Mar 2026 12:00 UTC"
        );
        assert_eq!(human_time("garbage", chrono_tz::UTC), "garbage");
    }

    #[test]
    fn times_are_written_in_the_recipients_zone_with_its_abbreviation() {
        let berlin = zone(Some("Europe/Berlin"));
        assert_eq!(
            human_time("2026-01-05T14:00:00Z", berlin),
            "Mon 5 Jan 2026 15:00 CET"
        );
        assert_eq!(
            human_time("2026-03-02T10:30:00Z", zone(Some("Asia/Tokyo"))),
            "Mon 2 Mar 2026 19:30 JST"
        );
        // A zone whose database entry has no abbreviation is named by its offset.
        assert_eq!(
            human_time("2026-01-06T12:00:00Z", zone(Some("America/Sao_Paulo"))),
            "Tue 6 Jan 2026 09:00 -03"
        );
        // Late in the UTC day is already the next day in Tokyo: the date follows the zone.
        assert_eq!(
            human_date("2026-03-02T20:00:00Z", zone(Some("Asia/Tokyo"))),
            "Tue 3 Mar 2026"
        );
    }

    #[test]
    fn a_clock_change_shows_in_the_abbreviation() {
        let berlin = zone(Some("Europe/Berlin"));
        // Clocks go forward at 01:00 UTC on 29 March 2026 (02:00 CET becomes 03:00 CEST).
        assert_eq!(
            human_time("2026-03-29T00:30:00Z", berlin),
            "Sun 29 Mar 2026 01:30 CET"
        );
        assert_eq!(
            human_time("2026-03-29T01:30:00Z", berlin),
            "Sun 29 Mar 2026 03:30 CEST"
        );
        assert_eq!(
            human_window("2026-03-29T00:00:00Z", "2026-03-29T02:00:00Z", berlin),
            "Sun 29 Mar 2026 01:00 CET–04:00 CEST"
        );
        // And back on 25 October: 01:30 UTC is the second 02:30 of the night.
        assert_eq!(
            human_time("2026-10-25T00:30:00Z", berlin),
            "Sun 25 Oct 2026 02:30 CEST"
        );
        assert_eq!(
            human_time("2026-10-25T01:30:00Z", berlin),
            "Sun 25 Oct 2026 02:30 CET"
        );
        assert_eq!(
            human_window("2026-07-01T08:00:00Z", "2026-07-01T10:00:00Z", berlin),
            "Wed 1 Jul 2026 10:00–12:00 CEST"
        );
    }

    #[test]
    fn an_unknown_or_missing_zone_is_written_as_utc() {
        for name in [None, Some("Mars/Olympus"), Some(""), Some("asia/tokyo")] {
            assert_eq!(zone(name), chrono_tz::UTC, "{name:?}");
            assert_eq!(
                human_time("2026-03-02T10:30:00Z", zone(name)),
                "Mon 2 Mar 2026 10:30 UTC"
            );
        }
    }

    #[test]
    fn messages_and_reminders_follow_the_recipients_zone() {
        let e = event(
            AppointmentEventKind::Confirmed,
            Some(doctor(Some("Kofi Mensah"))),
            None,
        );
        let label = actor_label(e.actor.as_ref(), None);
        let tokyo = zone(Some("Asia/Tokyo"));
        let m = appointment_message(&e, "pat", tokyo, words(&label));
        assert_eq!(
            m.body,
            "Dr. Kofi Mensah accepted your request: Mon 2 Mar 2026 19:30 JST."
        );
        let mut offered = event(AppointmentEventKind::Offered, None, None);
        offered.appointment.start = None;
        let m = appointment_message(&offered, "doc", zone(Some("America/New_York")), words("x"));
        assert!(
            m.body.contains("Mon 2 Mar 2026 04:00–07:00 EST"),
            "{}",
            m.body
        );
        let r = reminder_message("2026-03-02T10:30:00Z", 3_600_000, None, tokyo);
        assert_eq!(
            r.body,
            "Your appointment starts in 1 hour: Mon 2 Mar 2026 19:30 JST."
        );
        let reset = reset_mail("http://x", "Ada", "chp_t", 1_772_447_400_000, tokyo);
        assert!(
            reset.body.contains("expires at Mon 2 Mar 2026 19:30 JST."),
            "{}",
            reset.body
        );
    }
}
