//! Which appointments a socket follows for pushed presence, so that it hears when the other
//! participant of any of its user's open appointments comes or goes without naming it first.
//!
//! - At sign-in the node lists the user's open appointments through the admin service
//!   (`ListAppointments` per status: confirmed, then offered, then requested; newest first),
//!   as the socket's own principal, so the admin service decides what the user may see. An
//!   appointment is followed when it has both a patient and a doctor and the user is one of
//!   them. Admins follow nothing (they are no participant).
//! - Appointment events (`carehub.events.appointment.>`, which every node hears) keep that up
//!   to date for the sockets on this node: an appointment that gains a doctor or is confirmed
//!   is followed by the sockets of both participants; one that ends (cancelled, completed, no
//!   show, expired, declined) or changes doctor is no longer followed by those it no longer
//!   concerns.
//! - One listing per user and node: a socket whose user has a socket on this node whose
//!   follows are settled copies them ([`copy_follows`](super::watch::Watches::copy_follows)), and one that signs in while
//!   its user's listing runs waits for that listing and takes its result. A user with many
//!   tabs, or a node's worth of sockets reconnecting at once, costs the admin service one
//!   listing per user.
//! - Bounds: a socket follows at most [`MAX_FOLLOWED`] appointments (the first ones in the
//!   order above; further ones need a frame naming them), and a node makes at most
//!   [`LOOKUPS`] sign-in listings at a time, so a reconnect storm queues rather than floods
//!   the admin service.

use super::watch::{Followed, MAX_FOLLOWED};
use crate::Hub;
use crate::registry::Conn;
use carehub_nats::appointment::{
    Appointment, AppointmentEvent, AppointmentStatus, ListAppointments,
};
use carehub_nats::{CallContext, Role};
use futures::StreamExt as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

/// Sign-in listings one node makes at a time.
pub(crate) const LOOKUPS: usize = 4;

/// The statuses of an open appointment, in the order they are followed.
const OPEN: [AppointmentStatus; 3] = [
    AppointmentStatus::Confirmed,
    AppointmentStatus::Offered,
    AppointmentStatus::Requested,
];

/// A node's sign-in listings: the places for them, and the users whose listing runs, each
/// with the sockets that signed in meanwhile and wait for its result.
#[derive(Debug)]
pub(crate) struct Listings {
    places: tokio::sync::Semaphore,
    running: Mutex<HashMap<String, Vec<Weak<Conn>>>>,
}

impl Default for Listings {
    fn default() -> Self {
        Self {
            places: tokio::sync::Semaphore::new(LOOKUPS),
            running: Mutex::default(),
        }
    }
}

impl Listings {
    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Weak<Conn>>>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The other participant of `a` for `me`, when `a` is open and has both participants.
fn other_open<'a>(a: &'a Appointment, me: &str) -> Option<&'a str> {
    if a.status.is_final() {
        return None;
    }
    let doctor = a.doctor_id.as_deref()?;
    if a.patient_id == me {
        Some(doctor)
    } else if doctor == me {
        Some(&a.patient_id)
    } else {
        None
    }
}

/// Sets up the follows of a socket that just signed in: copies them from a settled socket of
/// the same user on this node, or joins the listing of its user that runs, or starts one in
/// the background (which waits for one of the node's [`LOOKUPS`] places).
pub(crate) fn on_sign_in(hub: &Hub, conn: &Arc<Conn>, request_id: &str) {
    if conn.principal().role == Role::Admin {
        return;
    }
    let listings = hub.sign_in_listings();
    {
        let mut running = listings.running();
        if let Some(waiting) = running.get_mut(&conn.user_id) {
            waiting.push(Arc::downgrade(conn));
            return;
        }
        let watches = hub.presence_watches();
        let copied = hub
            .registry()
            .conns_of(&conn.user_id)
            .iter()
            .any(|other| other.id != conn.id && watches.copy_follows(other.id, conn));
        if copied {
            // The followed users' states are known already (read when they were first
            // followed, then kept current); the next push tells this socket.
            return;
        }
        running.insert(conn.user_id.clone(), Vec::new());
    }
    let (hub, user_id, first) = (hub.clone(), conn.user_id.clone(), Arc::downgrade(conn));
    let request_id = request_id.to_owned();
    tokio::spawn(
        async move {
            // What waits here is kept small (after a node restart thousands of users sign in
            // at once): the listing's state, with its bus requests, is allocated only once it
            // has its place.
            // (The semaphore is never closed; were it, the listing would run without a place.)
            let _place = hub.sign_in_listings().places.acquire().await.ok();
            Box::pin(list(&hub, user_id, first, request_id)).await;
        }
        .in_current_span(),
    );
}

/// The sign-in listing of the user of `first`, once it has its place; its result goes to
/// `first` and to every socket of the user that signed in while it ran.
async fn list(hub: &Hub, user_id: String, first: Weak<Conn>, request_id: String) {
    // Listed as one of the user's sockets that is still open, so the admin service decides
    // what the user may see.
    let asking = {
        let running = hub.sign_in_listings().running();
        let waiting = running.get(&user_id).map(Vec::as_slice).unwrap_or_default();
        std::iter::once(&first)
            .chain(waiting)
            .filter_map(Weak::upgrade)
            .find(|c| !c.closing().is_cancelled())
    };
    let (listed, complete) = match asking {
        Some(conn) => listed(hub, &conn, request_id).await,
        None => (Vec::new(), false),
    };
    let conns: Vec<Arc<Conn>> = {
        let mut running = hub.sign_in_listings().running();
        let waiting = running.remove(&user_id).unwrap_or_default();
        let watches = hub.presence_watches();
        std::iter::once(first)
            .chain(waiting)
            .filter_map(|c| c.upgrade())
            .inspect(|c| watches.follow_listed(c, &listed, complete))
            .collect()
    };
    let mut others: Vec<String> = listed.iter().map(|(_, who)| who.to_string()).collect();
    others.sort();
    others.dedup();
    for conn in &conns {
        if conn.closing().is_cancelled() {
            // Its own cleanup may have run before these follows were added.
            hub.presence_watches().forget(conn.id);
        }
    }
    for who in others {
        hub.presence_watches().read(hub.presence(), &who).await;
    }
}

/// The open appointments of `conn`'s user that it follows, as `(appointment, other
/// participant)`, newest first per status, at most [`MAX_FOLLOWED`]; and whether the list is
/// complete (`false` when the admin service could not be asked for all of it).
async fn listed(hub: &Hub, conn: &Conn, request_id: String) -> (Vec<Followed>, bool) {
    let ctx = CallContext {
        request_id,
        principal: Some(conn.principal()),
        client_ip: None,
    };
    let mut out: Vec<Followed> = Vec::new();
    for status in OPEN {
        let left = MAX_FOLLOWED.saturating_sub(out.len());
        if left == 0 {
            tracing::debug!(user = conn.user_id, "followed appointments capped");
            break;
        }
        let req = ListAppointments {
            status: Some(status),
            limit: u32::try_from(left).ok(),
            cursor: None,
        };
        let page = match hub.bus().request(&ctx, &req).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "listing appointments for presence failed");
                return (out, false);
            }
        };
        for a in &page.appointments {
            if let Some(who) = other_open(a, &conn.user_id)
                && out.len() < MAX_FOLLOWED
            {
                out.push((a.id.as_str().into(), who.into()));
            }
        }
    }
    (out, true)
}

/// After new follows of `conn`: forgets them again if the socket closed meanwhile (its own
/// cleanup may have run first), else reads the followed users' state now.
async fn settle(hub: &Hub, conn: &Conn, mut others: Vec<String>) {
    if conn.closing().is_cancelled() {
        hub.presence_watches().forget(conn.id);
        return;
    }
    others.sort();
    others.dedup();
    for who in others {
        hub.presence_watches().read(hub.presence(), &who).await;
    }
}

/// Applies one appointment event to the follows of this node's sockets.
async fn apply(hub: &Hub, a: &Appointment) {
    let keep: Vec<(&str, &str)> = match a.doctor_id.as_deref() {
        Some(d) if !a.status.is_final() => vec![(&a.patient_id, d), (d, &a.patient_id)],
        _ => Vec::new(),
    };
    let watches = hub.presence_watches();
    watches.unfollow(&a.id, &keep);
    for (me, other) in keep {
        for conn in hub.registry().conns_of(me) {
            if watches.follow(&conn, &a.id, other) {
                settle(hub, &conn, vec![other.to_owned()]).await;
            }
        }
    }
}

/// Listens to appointment events until `stop`.
///
/// # Errors
/// When the events cannot be subscribed to.
pub(crate) async fn listen(hub: Hub, stop: CancellationToken) -> anyhow::Result<()> {
    let mut events = hub
        .bus()
        .client()
        .subscribe(crate::slots::APPOINTMENT_EVENTS)
        .await?;
    loop {
        let m = tokio::select! {
            () = stop.cancelled() => break,
            m = events.next() => match m { Some(m) => m, None => break },
        };
        match serde_json::from_slice::<AppointmentEvent>(&m.payload) {
            Ok(e) => apply(&hub, &e.appointment).await,
            Err(e) => tracing::debug!(error = %e, "undecodable appointment event"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn appointment(status: AppointmentStatus, doctor: Option<&str>) -> Appointment {
        serde_json::from_value(serde_json::json!({
            "id": "a1", "patient_id": "p", "doctor_id": doctor, "group_id": null,
            "specialty": null, "status": status, "window_start": "2026-01-01T00:00:00Z",
            "window_end": "2026-01-02T00:00:00Z", "start": null, "end": null, "reason": "r",
            "closed_by": null, "close_reason": null, "created_at": "2026-01-01T00:00:00Z",
            "version": 1
        }))
        .unwrap()
    }

    #[test]
    fn only_open_appointments_with_both_participants_are_followed() {
        let a = appointment(AppointmentStatus::Confirmed, Some("d"));
        assert_eq!(other_open(&a, "p"), Some("d"));
        assert_eq!(other_open(&a, "d"), Some("p"));
        assert_eq!(other_open(&a, "x"), None);
        let broadcast = appointment(AppointmentStatus::Offered, None);
        assert_eq!(other_open(&broadcast, "p"), None);
        for ended in [
            AppointmentStatus::Cancelled,
            AppointmentStatus::Completed,
            AppointmentStatus::NoShow,
        ] {
            assert_eq!(other_open(&appointment(ended, Some("d")), "p"), None);
        }
    }
}
