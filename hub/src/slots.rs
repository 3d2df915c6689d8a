//! Live free-slot updates. A socket watches a doctor's slots in a range (`slots_watch`, at most
//! [`MAX_WATCHES`] doctors per socket); the node hears appointment and doctor events on the bus
//! and sends each watching socket `slots_changed {doctor_id, from, to}`: which range may have
//! changed, never who booked. A slot picker then asks for the free slots again; the push is a
//! hint, the slot query is the truth.
//!
//! An appointment event concerns the watchers of its doctor and the watchers that are its
//! patient (a patient's own appointments are left out of the slots they are shown); a doctor
//! event (hours, slot length, time off) concerns every watcher of that doctor, whole range.

use crate::registry::Conn;
use carehub_nats::appointment::{AppointmentEvent, AppointmentEventKind};
use carehub_nats::doctor::DoctorEvent;
use carehub_nats::hub::ServerFrame;
use carehub_nats::time::rfc3339;
use chrono::DateTime;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use tokio_util::sync::CancellationToken;

/// Doctors one socket may watch at once.
pub(crate) const MAX_WATCHES: usize = 5;
/// The longest watched range (as the longest slot query).
pub(crate) const MAX_RANGE_DAYS: i64 = 62;

/// Appointment events, on the subject the outbox relay publishes them to.
pub(crate) const APPOINTMENT_EVENTS: &str = carehub_nats::streams::APPOINTMENTS.subjects;
/// Doctor events (profile, hours, time off).
pub(crate) const DOCTOR_EVENTS: &str = carehub_nats::streams::DOCTORS.subjects;

/// One watched range, Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Watch {
    doctor_id: String,
    from: i64,
    to: i64,
}

#[derive(Debug)]
struct Socket {
    conn: Weak<Conn>,
    watches: Vec<Watch>,
}

/// The node's slot watches, by socket.
#[derive(Debug, Clone, Default)]
pub(crate) struct SlotWatches {
    sockets: Arc<Mutex<HashMap<u64, Socket>>>,
}

/// Why a watch was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WatchError {
    TooMany,
}

fn ms(t: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.timestamp_millis())
}

impl SlotWatches {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Socket>> {
        self.sockets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Watches `doctor_id` in `[from, to)` for `conn`, replacing its earlier range for that
    /// doctor.
    ///
    /// # Errors
    /// [`WatchError::TooMany`] when the socket already watches [`MAX_WATCHES`] other doctors.
    pub(crate) fn watch(
        &self,
        conn: &Arc<Conn>,
        doctor_id: &str,
        from: i64,
        to: i64,
    ) -> Result<(), WatchError> {
        let mut sockets = self.lock();
        let s = sockets.entry(conn.id).or_insert_with(|| Socket {
            conn: Arc::downgrade(conn),
            watches: Vec::new(),
        });
        let w = Watch {
            doctor_id: doctor_id.to_owned(),
            from,
            to,
        };
        if let Some(old) = s.watches.iter_mut().find(|w| w.doctor_id == doctor_id) {
            *old = w;
        } else if s.watches.len() >= MAX_WATCHES {
            return Err(WatchError::TooMany);
        } else {
            s.watches.push(w);
        }
        Ok(())
    }

    /// Stops watching `doctor_id`; `false` when the socket did not watch it.
    pub(crate) fn unwatch(&self, conn_id: u64, doctor_id: &str) -> bool {
        let mut sockets = self.lock();
        let Some(s) = sockets.get_mut(&conn_id) else {
            return false;
        };
        let before = s.watches.len();
        s.watches.retain(|w| w.doctor_id != doctor_id);
        let removed = s.watches.len() < before;
        if s.watches.is_empty() {
            sockets.remove(&conn_id);
        }
        removed
    }

    /// Forgets a closed socket.
    pub(crate) fn forget(&self, conn_id: u64) {
        self.lock().remove(&conn_id);
    }

    /// Sends `slots_changed` to every socket watching `doctor_id` (or, with `patient_id`, any
    /// doctor while the socket is that patient's) over a range that meets `[from, to)`
    /// (`None`: the whole watched range). Returns how many frames went out.
    fn tell(&self, doctor_id: &str, patient_id: Option<&str>, range: Option<(i64, i64)>) -> usize {
        let mut out = Vec::new();
        {
            let mut sockets = self.lock();
            sockets.retain(|_, s| s.conn.strong_count() > 0);
            for s in sockets.values() {
                let Some(conn) = s.conn.upgrade() else {
                    continue;
                };
                let mine = patient_id.is_some_and(|p| p == conn.user_id);
                for w in &s.watches {
                    if w.doctor_id != doctor_id && !mine {
                        continue;
                    }
                    let (from, to) = match range {
                        Some((f, t)) if f < w.to && w.from < t => (f.max(w.from), t.min(w.to)),
                        Some(_) => continue,
                        None => (w.from, w.to),
                    };
                    out.push((
                        conn.clone(),
                        ServerFrame::SlotsChanged {
                            doctor_id: w.doctor_id.clone(),
                            from: rfc3339(from),
                            to: rfc3339(to),
                        },
                    ));
                }
            }
        }
        let n = out.len();
        for (conn, frame) in out {
            conn.send(&frame);
        }
        n
    }

    /// Applies one appointment event.
    fn appointment(&self, e: &AppointmentEvent) {
        let a = &e.appointment;
        let Some(doctor_id) = a.doctor_id.as_deref() else {
            return;
        };
        let mut times: Vec<i64> = [a.start.as_deref(), a.end.as_deref()]
            .into_iter()
            .flatten()
            .filter_map(ms)
            .collect();
        if let Some(c) = &a.pending_change {
            times.extend(
                [c.start.as_deref(), c.end.as_deref()]
                    .into_iter()
                    .flatten()
                    .filter_map(ms),
            );
        }
        let (Some(&lo), Some(&hi)) = (times.iter().min(), times.iter().max()) else {
            return; // a request that never held a time
        };
        // A move's old time is not in the event: the whole watched range may have changed.
        let range = (e.kind != AppointmentEventKind::Rescheduled).then_some((lo, hi));
        self.tell(doctor_id, Some(&a.patient_id), range);
    }

    /// Listens to appointment and doctor events until `stop`.
    pub(crate) async fn listen(
        self,
        client: async_nats::Client,
        stop: CancellationToken,
    ) -> anyhow::Result<()> {
        let mut appointments = client.subscribe(APPOINTMENT_EVENTS).await?;
        let mut doctors = client.subscribe(DOCTOR_EVENTS).await?;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                m = appointments.next() => match m {
                    Some(m) => match serde_json::from_slice::<AppointmentEvent>(&m.payload) {
                        Ok(e) => self.appointment(&e),
                        Err(e) => tracing::debug!(error = %e, "undecodable appointment event"),
                    },
                    None => break,
                },
                m = doctors.next() => match m {
                    Some(m) => match serde_json::from_slice::<DoctorEvent>(&m.payload) {
                        Ok(e) => {
                            self.tell(&e.doctor.id, None, None);
                        }
                        Err(e) => tracing::debug!(error = %e, "undecodable doctor event"),
                    },
                    None => break,
                },
            }
        }
        Ok(())
    }
}

/// Parses a watch's range.
///
/// # Errors
/// A message for a bad, reversed or too long range.
pub(crate) fn range(from: &str, to: &str) -> Result<(i64, i64), String> {
    let f = ms(from).ok_or("from: expected an RFC 3339 time")?;
    let t = ms(to).ok_or("to: expected an RFC 3339 time")?;
    if t <= f {
        return Err("to: must be after from".into());
    }
    if t - f > MAX_RANGE_DAYS * 86_400_000 {
        return Err(format!("the range may span at most {MAX_RANGE_DAYS} days"));
    }
    Ok((f, t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked() {
        assert!(range("2026-12-07T08:00:00Z", "2026-12-07T09:00:00Z").is_ok());
        assert!(range("2026-12-07T09:00:00Z", "2026-12-07T09:00:00Z").is_err());
        assert!(range("2026-12-07T08:00:00Z", "2027-03-07T08:00:00Z").is_err());
        assert!(range("tomorrow", "2026-12-07T09:00:00Z").is_err());
    }
}
