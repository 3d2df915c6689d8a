//! Free-slot reasoning over the local copy of a doctor's availability, with the same schedule
//! rules the doctor service uses (`carehub-schedule`).

use crate::store::DoctorRow;
use carehub_nats::doctor::{DoctorSnapshot, SlotList, SlotView};
use carehub_nats::time::rfc3339_of;
use carehub_schedule::{Availability, ScheduleError, TimeOff, WeeklyHours};
use chrono::{DateTime, NaiveTime, Utc};

fn utc(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default()
}

/// The stored snapshot's availability; `None` when it cannot be read.
fn stored(d: &DoctorRow) -> Option<carehub_nats::doctor::Availability> {
    serde_json::from_str::<DoctorSnapshot>(&d.availability)
        .ok()
        .map(|s| s.availability)
}

/// The doctor's availability from the stored snapshot; `None` when it holds no working hours
/// (such a doctor is never offered requests) or cannot be read.
pub(crate) fn availability(d: &DoctorRow) -> Option<Availability> {
    schedule(&stored(d)?)
}

fn schedule(snap: &carehub_nats::doctor::Availability) -> Option<Availability> {
    let tz = carehub_schedule::parse_time_zone(&snap.time_zone).ok()?;
    let weekly = snap
        .weekly
        .iter()
        .map(|w| {
            Some(WeeklyHours {
                weekday: w.weekday.into(),
                start: NaiveTime::parse_from_str(&w.start, "%H:%M").ok()?,
                end: NaiveTime::parse_from_str(&w.end, "%H:%M").ok()?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    if weekly.is_empty() {
        return None;
    }
    let time_off = snap
        .time_off
        .iter()
        .filter_map(|t| {
            let s = DateTime::parse_from_rfc3339(&t.start)
                .ok()?
                .with_timezone(&Utc);
            let e = DateTime::parse_from_rfc3339(&t.end)
                .ok()?
                .with_timezone(&Utc);
            TimeOff::new(t.id.clone(), s, e, t.reason.clone()).ok()
        })
        .collect();
    Availability::new(tz, weekly, time_off, snap.slot_minutes).ok()
}

/// The doctor's free slots in `[from, to)` that start at `now` or later, leaving out `busy`
/// (Unix milliseconds). The stored time off is what was upcoming when the snapshot was taken,
/// so slots that have started are never listed: their time off may be gone from the copy.
/// `None` when the snapshot cannot be read.
///
/// # Errors
/// A reversed or too long window.
pub(crate) fn free(
    d: &DoctorRow,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    busy: &[(i64, i64)],
    now: i64,
) -> Result<Option<SlotList>, ScheduleError> {
    let Some(snap) = stored(d) else {
        return Ok(None);
    };
    let list = |slots: Vec<SlotView>| SlotList {
        doctor_id: d.doctor_id.clone(),
        time_zone: snap.time_zone.clone(),
        slot_minutes: snap.slot_minutes,
        slots,
    };
    let Some(a) = schedule(&snap) else {
        // No working hours: nothing is free.
        return Ok(Some(list(Vec::new())));
    };
    let busy: Vec<_> = busy.iter().map(|&(s, e)| (utc(s), utc(e))).collect();
    let now = utc(now);
    let slots = a
        .slots(from, to, &busy)?
        .into_iter()
        .filter(|s| s.start >= now)
        .map(|s| SlotView {
            start: rfc3339_of(s.start),
            end: rfc3339_of(s.end),
        })
        .collect();
    Ok(Some(list(slots)))
}

/// Whether `[from, to)` holds at least one free slot of the doctor.
pub(crate) fn has_free_slot(d: &DoctorRow, from: i64, to: i64, busy: &[(i64, i64)]) -> bool {
    let Some(a) = availability(d) else {
        return false;
    };
    let busy: Vec<_> = busy.iter().map(|&(s, e)| (utc(s), utc(e))).collect();
    a.slots(utc(from), utc(to), &busy)
        .is_ok_and(|s| !s.is_empty())
}

/// The doctor's slot length in milliseconds (30 minutes when unknown).
pub(crate) fn slot_ms(d: &DoctorRow) -> i64 {
    availability(d).map_or(30, |a| i64::from(a.slot_minutes())) * 60_000
}

/// Where a start stands against the doctor's slot grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GridCheck {
    /// A slot start: the slot ends here (Unix milliseconds).
    Slot { end: i64 },
    /// Inside working hours, but not a slot start.
    OffGrid,
    /// Outside working hours, during time off, or no hours at all.
    Outside,
}

/// Checks `start` against the doctor's slots (slot length, zone and DST as the doctor service
/// lists them).
pub(crate) fn grid(d: &DoctorRow, start: i64) -> GridCheck {
    let Some(a) = availability(d) else {
        return GridCheck::Outside;
    };
    if let Some(s) = a.slot_at(utc(start)) {
        return GridCheck::Slot {
            end: s.end.timestamp_millis(),
        };
    }
    if a.covers(utc(start), utc(start + 1)) {
        GridCheck::OffGrid
    } else {
        GridCheck::Outside
    }
}
