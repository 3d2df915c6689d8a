//! Wire types of the doctor service: the directory, profiles, availability (weekly hours, time
//! off, slot length), free-slot search, and the durable `DoctorEvent`s on `CAREHUB_DOCTORS`.
//!
//! Requests made for a user travel on `carehub.api.doctor.*` subjects; the caller is the
//! [`crate::CallContext`] principal, never a body field. Times are RFC 3339; weekly hours are
//! local `HH:MM` times of the doctor's IANA time zone. Every type ignores unknown fields.
//!
//! Free slots from the doctor service are working hours minus time off only: bookings are
//! subtracted by the admin service, which owns appointments.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Subjects of the doctor domain.
pub mod subject {
    /// Micro service name of the doctor service.
    pub const SERVICE: &str = "doctor";
    pub(crate) const SEARCH: &str = "carehub.api.doctor.directory.search";
    pub(crate) const GET_PUBLIC: &str = "carehub.api.doctor.directory.get";
    pub(crate) const FREE_SLOTS: &str = "carehub.api.doctor.slots";
    pub(crate) const GET_PROFILE: &str = "carehub.api.doctor.me.profile.get";
    pub(crate) const UPDATE_PROFILE: &str = "carehub.api.doctor.me.profile.update";
    pub(crate) const GET_AVAILABILITY: &str = "carehub.api.doctor.me.availability.get";
    pub(crate) const REPLACE_AVAILABILITY: &str = "carehub.api.doctor.me.availability.replace";
    pub(crate) const ADD_TIME_OFF: &str = "carehub.api.doctor.me.time_off.add";
    pub(crate) const REMOVE_TIME_OFF: &str = "carehub.api.doctor.me.time_off.remove";
    /// Events: `carehub.events.doctor.<kind>` (stream `CAREHUB_DOCTORS`).
    pub(crate) const EVENT_PREFIX: &str = "carehub.events.doctor";
}

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl From<Weekday> for chrono::Weekday {
    fn from(w: Weekday) -> Self {
        match w {
            Weekday::Monday => Self::Mon,
            Weekday::Tuesday => Self::Tue,
            Weekday::Wednesday => Self::Wed,
            Weekday::Thursday => Self::Thu,
            Weekday::Friday => Self::Fri,
            Weekday::Saturday => Self::Sat,
            Weekday::Sunday => Self::Sun,
        }
    }
}

impl From<chrono::Weekday> for Weekday {
    fn from(w: chrono::Weekday) -> Self {
        match w {
            chrono::Weekday::Mon => Self::Monday,
            chrono::Weekday::Tue => Self::Tuesday,
            chrono::Weekday::Wed => Self::Wednesday,
            chrono::Weekday::Thu => Self::Thursday,
            chrono::Weekday::Fri => Self::Friday,
            chrono::Weekday::Sat => Self::Saturday,
            chrono::Weekday::Sun => Self::Sunday,
        }
    }
}

/// One working range on a weekday, in the doctor's local time (`start` before `end`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WeeklyHours {
    pub weekday: Weekday,
    /// Local `HH:MM`.
    #[schema(example = "09:00", pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub start: String,
    /// Local `HH:MM`, after `start` on the same day (a range cannot end at or past midnight:
    /// `00:00` is the start of a day, never an end).
    #[schema(example = "17:00", pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub end: String,
}

/// A period the doctor does not work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TimeOff {
    pub id: String,
    /// RFC 3339 UTC.
    #[schema(format = DateTime)]
    pub start: String,
    /// RFC 3339 UTC, after `start`.
    #[schema(format = DateTime)]
    pub end: String,
    pub reason: String,
}

/// A directory entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DoctorSummary {
    pub id: String,
    /// From the account; a profile update does not change it.
    pub display_name: String,
    pub specialties: Vec<String>,
    /// ISO 639-1 codes of the languages the doctor consults in.
    pub languages: Vec<String>,
}

/// Search the directory of approved doctors, ordered by id, keyset-paginated. The gateway
/// takes it from the query of `GET /api/doctors` as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchDoctors {
    /// A specialty, e.g. `cardiology` (normalized like profile specialties).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specialty: Option<String>,
    /// Case-insensitive substring of the doctor's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    /// Only doctors who consult in this language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(schema_with = language_code)]
    pub language: Option<String>,
    /// Page size, default 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// A page of the directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DoctorPage {
    pub doctors: Vec<DoctorSummary>,
    pub next_cursor: Option<String>,
}

/// An approved doctor's public profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetPublicProfile {
    pub doctor_id: String,
}

/// What any signed-in user may see of an approved doctor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PublicProfile {
    #[serde(flatten)]
    pub summary: DoctorSummary,
    pub bio: String,
    /// IANA time zone of the doctor's working hours.
    pub time_zone: String,
    pub slot_minutes: u32,
    /// Whether a free slot is booked without the doctor accepting.
    pub auto_accept: bool,
}

/// The caller's own profile; an admin may name any doctor with `doctor_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct GetProfile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doctor_id: Option<String>,
}

/// A doctor's profile as the doctor (or an admin) sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DoctorProfile {
    #[serde(flatten)]
    pub summary: DoctorSummary,
    pub bio: String,
    /// Listed in the directory (the account is active).
    pub approved: bool,
    /// The doctor's version; any change increments it.
    pub version: i64,
}

/// Replace the caller's specialties, languages and bio.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UpdateProfile {
    /// 1 to 10 specialties, normalized to lowercase slugs (`Family Medicine` → `family-medicine`;
    /// two that normalize alike are kept once).
    #[schema(schema_with = specialty_list)]
    pub specialties: Vec<String>,
    /// At most 10 distinct ISO 639-1 codes (lowercase, e.g. `de`); when left out, the stored
    /// languages stay as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = language_list)]
    pub languages: Option<Vec<String>>,
    /// At most 2000 characters.
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub bio: String,
    /// When given, the change applies only if the doctor's version is still this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<i64>,
}

/// The caller's own availability; an admin may name any doctor with `doctor_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct GetAvailability {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doctor_id: Option<String>,
}

/// When a doctor works, and how their free slots are booked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Availability {
    pub time_zone: String,
    pub weekly: Vec<WeeklyHours>,
    pub slot_minutes: u32,
    pub auto_accept: bool,
    /// The entries that have not ended (in an event: that had not ended when it was written).
    pub time_off: Vec<TimeOff>,
}

/// A doctor's availability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AvailabilityView {
    pub doctor_id: String,
    #[serde(flatten)]
    pub availability: Availability,
    /// The doctor's version; pass it as `expected_version` to change availability.
    pub version: i64,
}

/// Replace the caller's weekly hours, zone, slot length and booking mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReplaceAvailability {
    /// The `version` the change was based on; a different current version is a 409 `conflict`.
    pub expected_version: i64,
    /// An IANA time zone name, e.g. `Europe/Berlin`.
    #[schema(schema_with = crate::time::time_zone_schema)]
    pub time_zone: String,
    /// At most 50 ranges; ranges of one day must not overlap (touching is fine: 09:00–12:00
    /// and 12:00–17:00).
    #[schema(max_items = 50)]
    pub weekly: Vec<WeeklyHours>,
    /// A multiple of 5 between 5 and 240.
    #[schema(minimum = 5, maximum = 240, multiple_of = 5)]
    pub slot_minutes: u32,
    #[serde(default)]
    pub auto_accept: bool,
}

/// Add a time off period to the caller's availability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AddTimeOff {
    /// RFC 3339.
    #[schema(format = DateTime, example = "2026-08-03T00:00:00Z")]
    pub start: String,
    /// RFC 3339, after `start` and at most 366 days later.
    #[schema(format = DateTime, example = "2026-08-17T00:00:00Z")]
    pub end: String,
    /// At most 500 characters.
    #[serde(default)]
    #[schema(max_length = 500)]
    pub reason: String,
    /// When given, the change applies only if the doctor's version is still this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<i64>,
    /// Over confirmed appointments: without `force` the answer is 409 `appointments_affected`
    /// listing them (`error.details.appointments`); with it they are cancelled (each patient
    /// told why) and the time off is added.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

/// The time off just added and the doctor's new version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TimeOffAdded {
    pub time_off: TimeOff,
    pub version: i64,
}

/// Remove one of the caller's time off periods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveTimeOff {
    pub time_off_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<i64>,
}

/// The doctor's version after a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Versioned {
    pub version: i64,
}

/// Free slots of an approved doctor in `[from, to)` (at most 62 days), as
/// [`crate::appointment::ListFreeSlots`]. Gateways now ask the admin service; the doctor service
/// still answers this subject for gateways of the previous release during a rolling upgrade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreeSlots {
    pub doctor_id: String,
    /// RFC 3339.
    pub from: String,
    /// RFC 3339, after `from`.
    pub to: String,
}

/// One slot `[start, end)`, RFC 3339 UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SlotView {
    #[schema(format = DateTime)]
    pub start: String,
    #[schema(format = DateTime)]
    pub end: String,
}

/// The answer to [`FreeSlots`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SlotList {
    pub doctor_id: String,
    pub time_zone: String,
    pub slot_minutes: u32,
    pub slots: Vec<SlotView>,
}

/// Longest specialty as given (letters, digits, spaces, `-` and `_`).
pub const MAX_SPECIALTY_CHARS: usize = 50;
/// Most specialties a doctor lists.
pub const MAX_SPECIALTIES: usize = 10;
/// Most languages a doctor lists.
pub const MAX_LANGUAGES: usize = 10;

/// Whether `code` is an ISO 639-1 language code as carehub writes them (two lowercase letters).
pub fn is_language_code(code: &str) -> bool {
    code.bytes().all(|b| b.is_ascii_lowercase()) && isolang::Language::from_639_1(code).is_some()
}

/// Every ISO 639-1 code, sorted.
pub(crate) fn language_codes() -> Vec<&'static str> {
    let mut codes: Vec<&'static str> = isolang::languages().filter_map(|l| l.to_639_1()).collect();
    codes.sort_unstable();
    codes.dedup();
    codes
}

/// The schema of one language code: the ISO 639-1 list.
pub fn language_code() -> utoipa::openapi::Object {
    use utoipa::openapi::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(language_codes()))
        .examples(["de"])
        .description(Some("An ISO 639-1 language code, e.g. `de`"))
        .build()
}

/// The schema of [`UpdateProfile::languages`].
fn language_list() -> utoipa::openapi::Array {
    use utoipa::openapi::ArrayBuilder;
    ArrayBuilder::new()
        .items(language_code())
        .max_items(Some(MAX_LANGUAGES))
        .unique_items(true)
        .build()
}

/// The schema of [`UpdateProfile::specialties`] (the derive cannot put a pattern on items).
fn specialty_list() -> utoipa::openapi::Array {
    use utoipa::openapi::{ArrayBuilder, ObjectBuilder, Type};
    let item = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_SPECIALTY_CHARS))
        .pattern(Some(r"^[ _-]*[A-Za-z0-9][A-Za-z0-9 _-]*$"))
        .description(Some(
            "Letters, digits, spaces, `-` and `_`, with at least one letter or digit",
        ));
    ArrayBuilder::new()
        .items(item)
        .min_items(Some(1))
        .max_items(Some(MAX_SPECIALTIES))
        .build()
}

rpc!(SearchDoctors => DoctorPage, subject::SEARCH, "search");
rpc!(GetPublicProfile => PublicProfile, subject::GET_PUBLIC, "get_public");
rpc!(FreeSlots => SlotList, subject::FREE_SLOTS, "free_slots");
rpc!(GetProfile => DoctorProfile, subject::GET_PROFILE, "get_profile");
rpc!(UpdateProfile => DoctorProfile, subject::UPDATE_PROFILE, "update_profile");
rpc!(GetAvailability => AvailabilityView, subject::GET_AVAILABILITY, "get_availability");
rpc!(ReplaceAvailability => AvailabilityView, subject::REPLACE_AVAILABILITY, "replace_availability");
rpc!(AddTimeOff => TimeOffAdded, subject::ADD_TIME_OFF, "add_time_off");
rpc!(RemoveTimeOff => Versioned, subject::REMOVE_TIME_OFF, "remove_time_off");

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoctorEventKind {
    /// Profile, display name or approval changed (also the first event of a doctor).
    ProfileChanged,
    /// Weekly hours, zone, slot length, booking mode or time off changed.
    AvailabilityChanged,
}

impl DoctorEventKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::ProfileChanged => "profile_changed",
            Self::AvailabilityChanged => "availability_changed",
        }
    }

    /// `carehub.events.doctor.<kind>`.
    pub fn subject(self) -> String {
        format!("{}.{}", subject::EVENT_PREFIX, self.as_str())
    }
}

/// Everything other services need to know about a doctor, as of `version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoctorSnapshot {
    pub id: String,
    pub display_name: String,
    pub specialties: Vec<String>,
    pub approved: bool,
    #[serde(flatten)]
    pub availability: Availability,
    /// Increases with every change of this doctor; ignore a snapshot older than one applied.
    pub version: i64,
}

/// One durable doctor event, written in the same transaction as the change; `event_id` is the
/// `Nats-Msg-Id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoctorEvent {
    pub event_id: String,
    pub kind: DoctorEventKind,
    /// Unix milliseconds.
    pub at: i64,
    pub doctor: DoctorSnapshot,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::round_trip;
    use serde_json::json;

    #[test]
    fn weekdays_convert_both_ways() {
        let mut day = chrono::Weekday::Mon;
        for _ in 0..7 {
            assert_eq!(chrono::Weekday::from(Weekday::from(day)), day);
            day = day.succ();
        }
        assert_eq!(Weekday::from(chrono::Weekday::Sun), Weekday::Sunday);
    }

    #[test]
    fn availability_requests_snapshot() {
        round_trip(
            &ReplaceAvailability {
                expected_version: 3,
                time_zone: "Europe/Berlin".into(),
                weekly: vec![WeeklyHours {
                    weekday: Weekday::Monday,
                    start: "09:00".into(),
                    end: "12:30".into(),
                }],
                slot_minutes: 30,
                auto_accept: true,
            },
            json!({"expected_version":3,"time_zone":"Europe/Berlin",
                "weekly":[{"weekday":"monday","start":"09:00","end":"12:30"}],
                "slot_minutes":30,"auto_accept":true}),
        );
        round_trip(
            &AddTimeOff {
                start: "2026-01-01T00:00:00Z".into(),
                end: "2026-01-02T00:00:00Z".into(),
                reason: "holiday".into(),
                expected_version: None,
                force: false,
            },
            json!({"start":"2026-01-01T00:00:00Z","end":"2026-01-02T00:00:00Z","reason":"holiday"}),
        );
        round_trip(
            &AddTimeOff {
                start: "2026-01-01T00:00:00Z".into(),
                end: "2026-01-02T00:00:00Z".into(),
                reason: String::new(),
                expected_version: None,
                force: true,
            },
            json!({"start":"2026-01-01T00:00:00Z","end":"2026-01-02T00:00:00Z","reason":"","force":true}),
        );
        round_trip(
            &SearchDoctors {
                specialty: Some("cardiology".into()),
                ..Default::default()
            },
            json!({"specialty":"cardiology"}),
        );
    }

    #[test]
    fn profiles_are_flat_objects() {
        let summary = DoctorSummary {
            id: "d".into(),
            display_name: "Dr D".into(),
            specialties: vec!["cardiology".into()],
            languages: vec!["de".into()],
        };
        round_trip(
            &PublicProfile {
                summary: summary.clone(),
                bio: "b".into(),
                time_zone: "UTC".into(),
                slot_minutes: 30,
                auto_accept: true,
            },
            json!({"id":"d","display_name":"Dr D","specialties":["cardiology"],"languages":["de"],
                "bio":"b","time_zone":"UTC","slot_minutes":30,"auto_accept":true}),
        );
        round_trip(
            &DoctorProfile {
                summary,
                bio: "b".into(),
                approved: true,
                version: 3,
            },
            json!({"id":"d","display_name":"Dr D","specialties":["cardiology"],"languages":["de"],
                "bio":"b","approved":true,"version":3}),
        );
    }

    #[test]
    fn doctor_event_snapshot() {
        let event = DoctorEvent {
            event_id: "e".into(),
            kind: DoctorEventKind::AvailabilityChanged,
            at: 5,
            doctor: DoctorSnapshot {
                id: "d".into(),
                display_name: "Dr D".into(),
                specialties: vec!["cardiology".into()],
                approved: true,
                availability: Availability {
                    time_zone: "UTC".into(),
                    weekly: vec![],
                    slot_minutes: 30,
                    auto_accept: false,
                    time_off: vec![TimeOff {
                        id: "t".into(),
                        start: "2026-01-01T00:00:00Z".into(),
                        end: "2026-01-02T00:00:00Z".into(),
                        reason: String::new(),
                    }],
                },
                version: 7,
            },
        };
        round_trip(
            &event,
            json!({"event_id":"e","kind":"availability_changed","at":5,"doctor":{"id":"d",
                "display_name":"Dr D","specialties":["cardiology"],"approved":true,"time_zone":"UTC",
                "weekly":[],"slot_minutes":30,"auto_accept":false,"time_off":[{"id":"t",
                "start":"2026-01-01T00:00:00Z","end":"2026-01-02T00:00:00Z","reason":""}],"version":7}}),
        );
        assert_eq!(
            DoctorEventKind::ProfileChanged.subject(),
            "carehub.events.doctor.profile_changed"
        );
    }

    #[test]
    fn every_user_subject_carries_identity() {
        for s in [
            subject::SEARCH,
            subject::GET_PUBLIC,
            subject::FREE_SLOTS,
            subject::GET_PROFILE,
            subject::UPDATE_PROFILE,
            subject::GET_AVAILABILITY,
            subject::REPLACE_AVAILABILITY,
            subject::ADD_TIME_OFF,
            subject::REMOVE_TIME_OFF,
        ] {
            assert!(s.starts_with("carehub.api.doctor."), "{s}");
        }
    }
}
