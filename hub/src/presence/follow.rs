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
//! - Bounds: a socket follows at most [`MAX_FOLLOWED`] appointments (the first ones in the
//!   order above; further ones need a frame naming them), and a node makes at most
//!   [`LOOKUPS`] sign-in listings at a time, so a reconnect storm queues rather than floods
//!   the admin service.

use super::watch::MAX_FOLLOWED;
use crate::Hub;
use crate::registry::Conn;
use carehub_nats::appointment::{
    Appointment, AppointmentEvent, AppointmentStatus, ListAppointments,
};
use carehub_nats::{CallContext, Role};
use futures::StreamExt as _;
use std::sync::Weak;
use tokio_util::sync::CancellationToken;

/// Sign-in listings one node makes at a time.
pub const LOOKUPS: usize = 4;

/// The statuses of an open appointment, in the order they are followed.
const OPEN: [AppointmentStatus; 3] = [
    AppointmentStatus::Confirmed,
    AppointmentStatus::Offered,
    AppointmentStatus::Requested,
];

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

/// Follows the open appointments of a socket that just signed in. Runs in the background:
/// waits for one of the node's [`LOOKUPS`] places, and does nothing once the socket closed.
///
/// Every socket's task waits here (after a node restart thousands sign in at once), so what
/// it holds while waiting is kept small: the listing's state, with its bus requests, is
/// allocated only once the socket has its place.
pub async fn on_sign_in(hub: Hub, conn: Weak<Conn>, request_id: String) {
    let Ok(_place) = hub.follow_lookups().acquire().await else {
        return;
    };
    Box::pin(follow_open(&hub, conn, request_id)).await;
}

/// The sign-in listing of [`on_sign_in`], once it has its place.
async fn follow_open(hub: &Hub, conn: Weak<Conn>, request_id: String) {
    let Some(conn) = conn.upgrade() else { return };
    let principal = conn.principal();
    if principal.role == Role::Admin || conn.closing().is_cancelled() {
        return;
    }
    let ctx = CallContext {
        request_id,
        principal: Some(principal),
        client_ip: None,
    };
    let watches = hub.presence_watches();
    let mut others = Vec::new();
    for status in OPEN {
        let left = MAX_FOLLOWED.saturating_sub(others.len());
        if left == 0 {
            tracing::debug!(conn = conn.id, "followed appointments capped");
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
                break;
            }
        };
        for a in &page.appointments {
            if let Some(who) = other_open(a, &conn.user_id)
                && others.len() < MAX_FOLLOWED
                && watches.follow(&conn, &a.id, who)
            {
                others.push(who.to_owned());
            }
        }
    }
    settle(hub, &conn, others).await;
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
pub async fn listen(hub: Hub, stop: CancellationToken) -> anyhow::Result<()> {
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
