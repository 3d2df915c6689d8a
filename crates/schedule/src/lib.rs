//! Working hours, time off and free slots: the pure scheduling rules shared by the doctor
//! service (which owns availability) and the admin service (which books against it). No I/O.
//!
//! Map: [`Availability`] is a validated weekly schedule in one IANA time zone with its time off;
//! [`Availability::slots`] lays out free slots in a bounded window ([`MAX_WINDOW_DAYS`]);
//! [`Availability::covers`] says whether a concrete interval may be booked; [`ScheduleError`]
//! names what was wrong with an input.
//!
//! # Local time and daylight saving
//!
//! Weekly hours are local times of the doctor's zone. Each day's range is turned into a real
//! interval of instants and slots are laid out in elapsed time from its start:
//!
//! - a local time that does not exist (the hour skipped when clocks go forward) is moved to the
//!   first instant after the gap, so a 01:00–04:00 range on a day that skips 02:00–03:00 lasts
//!   two real hours and no slot starts inside the gap;
//! - an ambiguous local time (the hour repeated when clocks go back) means its first occurrence,
//!   for the start and the end of a range alike, so a 01:00–04:00 range on a day that repeats
//!   02:00–03:00 lasts four real hours and the repeated hour is neither lost nor counted twice.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;

/// Shortest slot, in minutes.
pub(crate) const MIN_SLOT_MINUTES: u32 = 5;
/// Longest slot, in minutes.
pub(crate) const MAX_SLOT_MINUTES: u32 = 240;
/// Slot lengths are multiples of this many minutes (5, 10, ..., 240).
pub(crate) const SLOT_STEP_MINUTES: u32 = 5;
/// Longest window [`Availability::slots`] answers for, in days.
pub const MAX_WINDOW_DAYS: i64 = 62;
/// Most weekly ranges one schedule may hold.
pub const MAX_WEEKLY_RANGES: usize = 50;

/// Why a schedule, a time off entry or a slot window was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The name is not an IANA time zone known to this build.
    #[error("time_zone: unknown time zone '{0}'")]
    UnknownTimeZone(String),
    /// A weekly range whose end is not after its start.
    #[error("weekly: {weekday} {start}-{end}: the end must be after the start")]
    EmptyRange {
        weekday: Weekday,
        start: NaiveTime,
        end: NaiveTime,
    },
    /// Two weekly ranges of one day overlap.
    #[error("weekly: {weekday} ranges overlap")]
    OverlappingRanges { weekday: Weekday },
    /// More weekly ranges than [`MAX_WEEKLY_RANGES`].
    #[error("weekly: at most {MAX_WEEKLY_RANGES} ranges")]
    TooManyRanges,
    /// A slot length outside 5..=240 minutes or not a multiple of 5.
    #[error(
        "slot_minutes: must be a multiple of {SLOT_STEP_MINUTES} between {MIN_SLOT_MINUTES} and {MAX_SLOT_MINUTES}, got {0}"
    )]
    SlotLength(u32),
    /// A time off entry whose end is not after its start.
    #[error("time off: the end must be after the start")]
    EmptyTimeOff,
    /// A window whose end is not after its start.
    #[error("to: the window's end must be after its start")]
    EmptyWindow,
    /// A window longer than [`MAX_WINDOW_DAYS`].
    #[error("to: the window may span at most {MAX_WINDOW_DAYS} days")]
    WindowTooLong,
}

impl ScheduleError {
    /// A stable machine-readable name for the error, e.g. `unknown_time_zone` (the tests tell
    /// the errors apart by it).
    #[cfg(test)]
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::UnknownTimeZone(_) => "unknown_time_zone",
            Self::EmptyRange { .. } => "empty_range",
            Self::OverlappingRanges { .. } => "overlapping_ranges",
            Self::TooManyRanges => "too_many_ranges",
            Self::SlotLength(_) => "invalid_slot_length",
            Self::EmptyTimeOff => "empty_time_off",
            Self::EmptyWindow => "empty_window",
            Self::WindowTooLong => "window_too_long",
        }
    }
}

/// Parses an IANA time zone name (`Europe/Berlin`).
///
/// # Errors
/// [`ScheduleError::UnknownTimeZone`] for any other name.
pub fn parse_time_zone(name: &str) -> Result<Tz, ScheduleError> {
    name.parse::<Tz>()
        .map_err(|_| ScheduleError::UnknownTimeZone(name.to_owned()))
}

/// One working range on a weekday, in local time; `start < end`, within one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeeklyHours {
    pub weekday: Weekday,
    pub start: NaiveTime,
    pub end: NaiveTime,
}

/// A period the doctor does not work, as concrete instants (`start < end`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeOff {
    pub id: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub reason: String,
}

impl TimeOff {
    /// A validated time off entry.
    ///
    /// # Errors
    /// [`ScheduleError::EmptyTimeOff`] when `end <= start`.
    pub fn new(
        id: impl Into<String>,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        reason: impl Into<String>,
    ) -> Result<Self, ScheduleError> {
        if end <= start {
            return Err(ScheduleError::EmptyTimeOff);
        }
        Ok(Self {
            id: id.into(),
            start,
            end,
            reason: reason.into(),
        })
    }
}

/// A bookable interval `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// A doctor's validated availability: weekly hours in one zone, time off, slot length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Availability {
    time_zone: Tz,
    weekly: Vec<WeeklyHours>,
    time_off: Vec<TimeOff>,
    slot_minutes: u32,
}

/// `intervals` sorted by start with overlapping or touching ones joined, so that a slot is
/// checked against them by binary search.
fn merged(intervals: &[(DateTime<Utc>, DateTime<Utc>)]) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut v: Vec<_> = intervals.iter().copied().filter(|(s, e)| s < e).collect();
    v.sort_unstable();
    let mut out: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::with_capacity(v.len());
    for (s, e) in v {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// Whether `[start, end)` overlaps one of `merged` (disjoint, sorted; see [`merged`]).
fn overlaps_any(
    merged: &[(DateTime<Utc>, DateTime<Utc>)],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> bool {
    let i = merged.partition_point(|&(_, e)| e <= start);
    merged.get(i).is_some_and(|&(s, _)| s < end)
}

/// Whether `[a0, a1)` and `[b0, b1)` share any instant.
fn overlaps<T: PartialOrd + Copy>(a0: T, a1: T, b0: T, b1: T) -> bool {
    a0 < b1 && b0 < a1
}

impl Availability {
    /// Validates and builds an availability. Weekly ranges are kept sorted by weekday and start.
    ///
    /// # Errors
    /// When a range is empty, two ranges of one day overlap, there are more than
    /// [`MAX_WEEKLY_RANGES`] ranges, or the slot length is not a multiple of 5 in 5..=240.
    pub fn new(
        time_zone: Tz,
        mut weekly: Vec<WeeklyHours>,
        time_off: Vec<TimeOff>,
        slot_minutes: u32,
    ) -> Result<Self, ScheduleError> {
        if !(MIN_SLOT_MINUTES..=MAX_SLOT_MINUTES).contains(&slot_minutes)
            || !slot_minutes.is_multiple_of(SLOT_STEP_MINUTES)
        {
            return Err(ScheduleError::SlotLength(slot_minutes));
        }
        if weekly.len() > MAX_WEEKLY_RANGES {
            return Err(ScheduleError::TooManyRanges);
        }
        if let Some(w) = weekly.iter().find(|w| w.end <= w.start) {
            return Err(ScheduleError::EmptyRange {
                weekday: w.weekday,
                start: w.start,
                end: w.end,
            });
        }
        weekly.sort_by_key(|w| (w.weekday.num_days_from_monday(), w.start));
        if let Some(pair) = weekly
            .windows(2)
            .find(|p| p[0].weekday == p[1].weekday && p[1].start < p[0].end)
        {
            return Err(ScheduleError::OverlappingRanges {
                weekday: pair[0].weekday,
            });
        }
        if time_off.iter().any(|t| t.end <= t.start) {
            return Err(ScheduleError::EmptyTimeOff);
        }
        Ok(Self {
            time_zone,
            weekly,
            time_off,
            slot_minutes,
        })
    }

    pub fn time_zone(&self) -> Tz {
        self.time_zone
    }

    /// The weekly ranges, sorted by weekday (Monday first) and start.
    pub fn weekly(&self) -> &[WeeklyHours] {
        &self.weekly
    }

    pub fn slot_minutes(&self) -> u32 {
        self.slot_minutes
    }

    /// The instant a local date and time means, by the rules in the crate documentation:
    /// the first occurrence of an ambiguous time, the end of the gap for a skipped one.
    fn instant(&self, date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
        let local = date.and_time(time);
        match self.time_zone.from_local_datetime(&local) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.with_timezone(&Utc)),
            LocalResult::None => {
                // Inside a gap: the first minute after it. Gaps are shorter than two days
                // (the longest on record skipped one calendar day).
                (1..=2 * 24 * 60).find_map(|m| {
                    let later = local + Duration::minutes(m);
                    match self.time_zone.from_local_datetime(&later) {
                        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => {
                            Some(t.with_timezone(&Utc))
                        }
                        LocalResult::None => None,
                    }
                })
            }
        }
    }

    /// Every working interval (as instants) of the local days that can touch `[from, to)`.
    fn working_intervals(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let first = from.with_timezone(&self.time_zone).date_naive() - Duration::days(1);
        let last = to.with_timezone(&self.time_zone).date_naive() + Duration::days(1);
        let mut out = Vec::new();
        let mut day = first;
        while day <= last {
            for w in self.weekly.iter().filter(|w| w.weekday == day.weekday()) {
                if let (Some(s), Some(e)) = (self.instant(day, w.start), self.instant(day, w.end))
                    && s < e
                    && overlaps(s, e, from, to)
                {
                    out.push((s, e));
                }
            }
            let Some(next) = day.succ_opt() else { break };
            day = next;
        }
        out
    }

    fn in_time_off(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
        self.time_off
            .iter()
            .any(|t| overlaps(start, end, t.start, t.end))
    }

    /// Free slots fully inside `[from, to)`: consecutive slots of `slot_minutes` from the start
    /// of each day's working range (laid out in elapsed time, see the crate documentation),
    /// leaving out every slot that overlaps time off or one of the `busy` intervals, even
    /// partly. Sorted by start.
    ///
    /// # Errors
    /// [`ScheduleError::EmptyWindow`] when `to <= from`, [`ScheduleError::WindowTooLong`] when
    /// the window spans more than [`MAX_WINDOW_DAYS`].
    pub fn slots(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        busy: &[(DateTime<Utc>, DateTime<Utc>)],
    ) -> Result<Vec<Slot>, ScheduleError> {
        if to <= from {
            return Err(ScheduleError::EmptyWindow);
        }
        if to - from > Duration::days(MAX_WINDOW_DAYS) {
            return Err(ScheduleError::WindowTooLong);
        }
        let len = Duration::minutes(i64::from(self.slot_minutes));
        let busy = merged(busy);
        let mut slots = Vec::new();
        for (range_start, range_end) in self.working_intervals(from, to) {
            let mut start = range_start;
            while start + len <= range_end {
                let end = start + len;
                if start >= from
                    && end <= to
                    && !self.in_time_off(start, end)
                    && !overlaps_any(&busy, start, end)
                {
                    slots.push(Slot { start, end });
                }
                start = end;
            }
        }
        slots.sort_unstable();
        slots.dedup();
        Ok(slots)
    }

    /// The slot that starts exactly at `start`, if that is a slot start of this availability:
    /// on the grid of a working range that day (counted from the range's start, in elapsed
    /// time), wholly inside the range, and overlapping no time off.
    pub fn slot_at(&self, start: DateTime<Utc>) -> Option<Slot> {
        let len = Duration::minutes(i64::from(self.slot_minutes));
        let end = start + len;
        self.working_intervals(start, end)
            .into_iter()
            .find(|&(s, e)| {
                s <= start
                    && end <= e
                    && (start - s).num_milliseconds() % len.num_milliseconds() == 0
            })
            .filter(|_| !self.in_time_off(start, end))
            .map(|_| Slot { start, end })
    }

    /// Whether `[start, end)` lies inside one working range and overlaps no time off. Not
    /// bound to the slot grid: any interval inside working hours qualifies.
    pub fn covers(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
        end > start
            && !self.in_time_off(start, end)
            && self
                .working_intervals(start, end)
                .iter()
                .any(|&(s, e)| s <= start && end <= e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn every_day(start: NaiveTime, end: NaiveTime) -> Vec<WeeklyHours> {
        [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ]
        .into_iter()
        .map(|weekday| WeeklyHours {
            weekday,
            start,
            end,
        })
        .collect()
    }

    #[test]
    fn slot_at_accepts_grid_starts_only() {
        let tz = parse_time_zone("Europe/Berlin").unwrap();
        let a = Availability::new(tz, every_day(t(8, 0), t(12, 0)), Vec::new(), 15).unwrap();
        // 08:00 Berlin in December is 07:00 UTC.
        let on = a.slot_at(utc("2026-12-07T07:15:00Z")).unwrap();
        assert_eq!(on.end, utc("2026-12-07T07:30:00Z"));
        assert!(
            a.slot_at(utc("2026-12-07T07:07:00Z")).is_none(),
            "off the grid"
        );
        assert!(
            a.slot_at(utc("2026-12-07T10:45:00Z")).is_some(),
            "the last slot"
        );
        assert!(
            a.slot_at(utc("2026-12-07T11:00:00Z")).is_none(),
            "after hours"
        );
        assert!(
            a.slot_at(utc("2026-12-07T06:45:00Z")).is_none(),
            "before hours"
        );
        let every: Vec<_> = a
            .slots(
                utc("2026-12-07T00:00:00Z"),
                utc("2026-12-08T00:00:00Z"),
                &[],
            )
            .unwrap();
        assert_eq!(every.len(), 16);
        assert!(every.iter().all(|s| a.slot_at(s.start) == Some(*s)));
    }

    fn berlin_night(slot: u32) -> Availability {
        let tz = parse_time_zone("Europe/Berlin").unwrap();
        Availability::new(tz, every_day(t(1, 0), t(4, 0)), vec![], slot).unwrap()
    }

    /// Slots of the Berlin local day `date` (a window from local midnight to local midnight).
    fn local_day(a: &Availability, date: &str) -> Vec<Slot> {
        let d: NaiveDate = date.parse().unwrap();
        let tz = a.time_zone();
        let from = tz
            .from_local_datetime(&d.and_time(t(0, 0)))
            .unwrap()
            .with_timezone(&Utc);
        let to = tz
            .from_local_datetime(&d.succ_opt().unwrap().and_time(t(0, 0)))
            .unwrap()
            .with_timezone(&Utc);
        a.slots(from, to, &[]).unwrap()
    }

    fn total(slots: &[Slot]) -> Duration {
        slots.iter().map(|s| s.end - s.start).sum()
    }

    #[test]
    fn the_spring_forward_day_has_two_hours_of_slots_and_none_in_the_gap() {
        let a = berlin_night(30);
        let slots = local_day(&a, "2026-03-29");
        assert_eq!(total(&slots), Duration::hours(2));
        assert_eq!(slots.len(), 4);
        assert_eq!(slots[0].start, utc("2026-03-29T00:00:00Z")); // 01:00 CET
        assert_eq!(slots[3].end, utc("2026-03-29T02:00:00Z")); // 04:00 CEST
        let tz = a.time_zone();
        for s in &slots {
            let local = s.start.with_timezone(&tz).time();
            assert!(
                !(t(2, 0) <= local && local < t(3, 0)),
                "slot at a local time that does not exist: {local}"
            );
            // Every start maps back to the same instant: it exists locally.
            let back = tz.from_local_datetime(&s.start.with_timezone(&tz).naive_local());
            assert!(!matches!(back, LocalResult::None));
        }
    }

    #[test]
    fn the_fall_back_day_has_four_hours_of_slots_without_double_counting() {
        let a = berlin_night(30);
        let slots = local_day(&a, "2026-10-25");
        assert_eq!(total(&slots), Duration::hours(4));
        assert_eq!(slots.len(), 8);
        assert_eq!(slots[0].start, utc("2026-10-24T23:00:00Z")); // 01:00 CEST
        assert_eq!(slots[7].end, utc("2026-10-25T03:00:00Z")); // 04:00 CET
        for pair in slots.windows(2) {
            assert_eq!(pair[0].end, pair[1].start, "consecutive in real time");
        }
    }

    #[test]
    fn an_ordinary_day_has_three_hours_of_slots() {
        let slots = local_day(&berlin_night(60), "2026-06-10");
        assert_eq!(total(&slots), Duration::hours(3));
        assert_eq!(slots[0].start, utc("2026-06-09T23:00:00Z"));
    }

    #[test]
    fn a_range_starting_in_the_gap_starts_when_the_gap_ends() {
        let tz = parse_time_zone("Europe/Berlin").unwrap();
        let a = Availability::new(tz, every_day(t(2, 30), t(5, 0)), vec![], 30).unwrap();
        let slots = local_day(&a, "2026-03-29");
        assert_eq!(slots[0].start, utc("2026-03-29T01:00:00Z")); // 03:00 CEST
        assert_eq!(total(&slots), Duration::hours(2));
    }

    #[test]
    fn slots_overlapping_time_off_or_busy_intervals_are_left_out_even_partly() {
        let tz = parse_time_zone("UTC").unwrap();
        let off = TimeOff::new(
            "off",
            utc("2026-06-10T09:10:00Z"),
            utc("2026-06-10T09:20:00Z"),
            "",
        )
        .unwrap();
        let a = Availability::new(tz, every_day(t(9, 0), t(12, 0)), vec![off], 60).unwrap();
        let busy = [(utc("2026-06-10T11:59:00Z"), utc("2026-06-10T13:00:00Z"))];
        let slots = a
            .slots(
                utc("2026-06-10T00:00:00Z"),
                utc("2026-06-11T00:00:00Z"),
                &busy,
            )
            .unwrap();
        assert_eq!(
            slots,
            vec![Slot {
                start: utc("2026-06-10T10:00:00Z"),
                end: utc("2026-06-10T11:00:00Z")
            }]
        );
    }

    #[test]
    fn only_slots_fully_inside_the_window_are_returned() {
        let tz = parse_time_zone("UTC").unwrap();
        let a = Availability::new(tz, every_day(t(9, 0), t(12, 0)), vec![], 60).unwrap();
        let slots = a
            .slots(
                utc("2026-06-10T09:30:00Z"),
                utc("2026-06-10T11:30:00Z"),
                &[],
            )
            .unwrap();
        assert_eq!(slots.len(), 1);
        assert_eq!(slots[0].start, utc("2026-06-10T10:00:00Z"));
    }

    #[test]
    fn a_slot_that_does_not_fit_the_rest_of_a_range_is_not_offered() {
        let tz = parse_time_zone("UTC").unwrap();
        let a = Availability::new(tz, every_day(t(9, 0), t(10, 0)), vec![], 45).unwrap();
        let slots = a
            .slots(
                utc("2026-06-10T00:00:00Z"),
                utc("2026-06-11T00:00:00Z"),
                &[],
            )
            .unwrap();
        assert_eq!(slots.len(), 1);
    }

    #[test]
    fn weekly_hours_apply_to_their_weekday_only() {
        let tz = parse_time_zone("America/New_York").unwrap();
        let w = vec![WeeklyHours {
            weekday: Weekday::Wed,
            start: t(9, 0),
            end: t(10, 0),
        }];
        let a = Availability::new(tz, w, vec![], 60).unwrap();
        let slots = a
            .slots(
                utc("2026-06-08T00:00:00Z"),
                utc("2026-06-15T00:00:00Z"),
                &[],
            )
            .unwrap();
        assert_eq!(slots.len(), 1);
        assert_eq!(slots[0].start, utc("2026-06-10T13:00:00Z")); // 09:00 EDT
    }

    #[test]
    fn windows_that_are_empty_reversed_or_too_long_are_refused() {
        let a = berlin_night(30);
        let from = utc("2026-01-01T00:00:00Z");
        assert_eq!(a.slots(from, from, &[]), Err(ScheduleError::EmptyWindow));
        assert_eq!(
            a.slots(from, from - Duration::hours(1), &[]),
            Err(ScheduleError::EmptyWindow)
        );
        assert_eq!(
            a.slots(from, from + Duration::days(MAX_WINDOW_DAYS + 1), &[]),
            Err(ScheduleError::WindowTooLong)
        );
        assert!(
            a.slots(from, from + Duration::days(MAX_WINDOW_DAYS), &[])
                .is_ok()
        );
    }

    #[test]
    fn invalid_schedules_are_refused_with_stable_codes() {
        let tz = parse_time_zone("UTC").unwrap();
        assert_eq!(
            parse_time_zone("Mars/Olympus_Mons").unwrap_err().code(),
            "unknown_time_zone"
        );
        let backwards = Availability::new(tz, every_day(t(10, 0), t(9, 0)), vec![], 30);
        assert_eq!(backwards.unwrap_err().code(), "empty_range");
        let mut w = every_day(t(9, 0), t(12, 0));
        w.push(WeeklyHours {
            weekday: Weekday::Tue,
            start: t(11, 0),
            end: t(13, 0),
        });
        assert_eq!(
            Availability::new(tz, w, vec![], 30).unwrap_err(),
            ScheduleError::OverlappingRanges {
                weekday: Weekday::Tue
            }
        );
        for bad in [0, 4, 7, 245, 1000] {
            assert_eq!(
                Availability::new(tz, vec![], vec![], bad)
                    .unwrap_err()
                    .code(),
                "invalid_slot_length"
            );
        }
        let adjacent = vec![
            WeeklyHours {
                weekday: Weekday::Mon,
                start: t(9, 0),
                end: t(10, 0),
            },
            WeeklyHours {
                weekday: Weekday::Mon,
                start: t(10, 0),
                end: t(11, 0),
            },
        ];
        assert!(Availability::new(tz, adjacent, vec![], 5).is_ok());
        let when = utc("2026-01-01T00:00:00Z");
        assert_eq!(
            TimeOff::new("x", when, when, "").unwrap_err().code(),
            "empty_time_off"
        );
    }

    #[test]
    fn covers_accepts_intervals_inside_working_hours_and_outside_time_off() {
        let off = TimeOff::new(
            "off",
            utc("2026-03-30T08:00:00Z"),
            utc("2026-03-30T09:00:00Z"),
            "",
        )
        .unwrap();
        let tz = parse_time_zone("Europe/Berlin").unwrap();
        let a = Availability::new(tz, every_day(t(9, 0), t(12, 0)), vec![off], 30).unwrap();
        // 09:00–09:20 CEST on 2026-03-30 = 07:00–07:20 UTC, off the slot grid.
        assert!(a.covers(utc("2026-03-30T07:00:00Z"), utc("2026-03-30T07:20:00Z")));
        // Overlaps the time off.
        assert!(!a.covers(utc("2026-03-30T07:30:00Z"), utc("2026-03-30T08:30:00Z")));
        // Runs past the end of working hours (12:00 CEST = 10:00 UTC).
        assert!(!a.covers(utc("2026-03-30T09:30:00Z"), utc("2026-03-30T10:30:00Z")));
        // Before working hours; and an empty interval.
        assert!(!a.covers(utc("2026-03-30T06:00:00Z"), utc("2026-03-30T07:30:00Z")));
        assert!(!a.covers(utc("2026-03-30T07:00:00Z"), utc("2026-03-30T07:00:00Z")));
    }
    #[test]
    fn busy_intervals_are_checked_like_a_scan_of_every_one() {
        let base = utc("2026-03-02T00:00:00Z");
        let m = |x: i64| base + Duration::minutes(x);
        // Nested, overlapping, touching, empty and reversed intervals, unsorted.
        let busy = [
            (m(100), m(130)),
            (m(0), m(15)),
            (m(120), m(125)),
            (m(15), m(30)),
            (m(200), m(200)),
            (m(310), m(300)),
            (m(55), m(65)),
            (m(125), m(180)),
        ];
        let merged = merged(&busy);
        for s in (0..330).step_by(5) {
            for len in [5, 15, 30] {
                let (a, b) = (m(s), m(s + len));
                let scan = busy
                    .iter()
                    .any(|&(b0, b1)| b0 < b1 && overlaps(a, b, b0, b1));
                assert_eq!(overlaps_any(&merged, a, b), scan, "[{s}, {})", s + len);
            }
        }
        assert_eq!(merged.len(), 3, "{merged:?}");
    }
}
