//! The appointment lifecycle as data: which action may move an appointment from which status to
//! which, and who may take it. Closing an appointment (cancel, complete, no-show, an admin's
//! decline, expiry, a doctor's absence) asks [`step`] for the statuses it may start from and the
//! store applies it by compare-and-set on exactly those, so a concurrent change can only make the
//! store refuse; moves and accepting or declining a move ask [`may`] first. The routing steps
//! (offer, escalate, accept, an offer declined or timed out) are compare-and-sets whose SQL
//! filters are the rows listed here for them.
//!
//! The text of a status in the database and on the wire is `as_str()` of the wire enums
//! ([`AppointmentStatus`], [`OfferStatus`], [`Strategy`]); [`Stored`] decodes it once, where a
//! row is read, and an unknown stored value is a decode error (logged, answered as an internal
//! error).
//!
//! Adding a feature's actions (check-in, on-demand visits, waitlist offers, ...):
//! 1. add a variant to [`Action`] and to [`Action::ALL`];
//! 2. add one row to [`TABLE`] per status it may start from, with its target and who may take it
//!    (a new status belongs in `carehub_nats::appointment` first, in its enum and its `ALL`);
//! 3. add the same rows to the expected table in this module's test, which otherwise fails;
//! 4. in the service, ask [`allowed`] / [`may`] (one status) or [`step`] (a compare-and-set over
//!    every status the action may start from) before writing.

use carehub_nats::Role;
use carehub_nats::appointment::{AppointmentStatus, OfferStatus, Strategy};

/// Who takes an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Party {
    Patient,
    Doctor,
    Admin,
    /// The service itself: routing, deadlines, and requests of other services (a doctor's time
    /// off or disabling cancels confirmed appointments).
    System,
}

impl From<Role> for Party {
    fn from(r: Role) -> Self {
        match r {
            Role::Patient => Self::Patient,
            Role::Doctor => Self::Doctor,
            Role::Admin => Self::Admin,
        }
    }
}

/// Something that changes an appointment's status (or keeps it while changing the appointment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Routing offers the request to one or more doctors.
    Offer,
    /// Nobody can take the request: it waits in the admin queue.
    Escalate,
    /// A doctor accepts their offer at a time.
    Accept,
    /// A doctor declines their offer; routing moves on once no offer is pending.
    DeclineOffer,
    /// An offer's deadline passed: for a request routing moves on; for a patient's move of a
    /// confirmed appointment the old time stands.
    TimeOut,
    /// Cancel before the appointment's start (or one that has no start yet).
    Cancel,
    /// Cancel once the start has passed: only admins may cancel a confirmed appointment then.
    CancelStarted,
    /// The doctor's time off or disabling cancels their confirmed appointments.
    CancelForAbsence,
    /// The doctor closes a confirmed appointment after its start, with notes.
    Complete,
    /// The doctor marks that the patient did not come.
    NoShow,
    /// An admin declines an open request.
    AdminDecline,
    /// An admin sends an open request to a new target.
    Reroute,
    /// The request's final deadline passed.
    Expire,
    /// The patient asks for a new window for a confirmed appointment.
    RequestMove,
    /// The doctor proposes a new time for a confirmed appointment.
    ProposeTime,
    /// The other side accepts a pending move: the new time replaces the old.
    AcceptMove,
    /// The other side declines a pending move: the old time stands.
    DeclineMove,
}

impl Action {
    /// Every action (kept complete by `index` below).
    #[cfg(test)]
    pub(crate) const ALL: [Self; 17] = [
        Self::Offer,
        Self::Escalate,
        Self::Accept,
        Self::DeclineOffer,
        Self::TimeOut,
        Self::Cancel,
        Self::CancelStarted,
        Self::CancelForAbsence,
        Self::Complete,
        Self::NoShow,
        Self::AdminDecline,
        Self::Reroute,
        Self::Expire,
        Self::RequestMove,
        Self::ProposeTime,
        Self::AcceptMove,
        Self::DeclineMove,
    ];
}

use AppointmentStatus::{
    Cancelled, Completed, Confirmed, Declined, Expired, NoShow, Offered, Requested,
};
use Party::{Admin, Doctor, Patient, System};

const PEOPLE: &[Party] = &[Patient, Doctor, Admin];

/// One allowed transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Transition {
    pub(crate) from: AppointmentStatus,
    pub(crate) action: Action,
    pub(crate) to: AppointmentStatus,
    /// Who may take it.
    pub(crate) by: &'static [Party],
}

const fn t(
    from: AppointmentStatus,
    action: Action,
    to: AppointmentStatus,
    by: &'static [Party],
) -> Transition {
    Transition {
        from,
        action,
        to,
        by,
    }
}

/// Every allowed transition. A status/action pair not listed here is refused.
#[rustfmt::skip]
pub(crate) const TABLE: &[Transition] = &[
    // An open request.
    t(Requested, Action::Offer, Offered, &[System]),
    t(Requested, Action::Escalate, Requested, &[System]),
    t(Requested, Action::Cancel, Cancelled, PEOPLE),
    t(Requested, Action::CancelStarted, Cancelled, PEOPLE),
    t(Requested, Action::AdminDecline, Declined, &[Admin]),
    t(Requested, Action::Reroute, Requested, &[Admin]),
    t(Requested, Action::Expire, Expired, &[System]),
    // Offered to one doctor or several (broadcast).
    t(Offered, Action::Offer, Offered, &[System]),
    t(Offered, Action::Accept, Confirmed, &[Doctor]),
    // Back to `requested` once the last pending offer closed; `offered` while others remain.
    t(Offered, Action::DeclineOffer, Requested, &[Doctor]),
    t(Offered, Action::TimeOut, Requested, &[System]),
    t(Offered, Action::Cancel, Cancelled, PEOPLE),
    t(Offered, Action::CancelStarted, Cancelled, PEOPLE),
    t(Offered, Action::AdminDecline, Declined, &[Admin]),
    t(Offered, Action::Reroute, Requested, &[Admin]),
    t(Offered, Action::Expire, Expired, &[System]),
    // Confirmed at a time.
    t(Confirmed, Action::Cancel, Cancelled, PEOPLE),
    t(Confirmed, Action::CancelStarted, Cancelled, &[Admin]),
    t(Confirmed, Action::CancelForAbsence, Cancelled, &[System]),
    t(Confirmed, Action::Complete, Completed, &[Doctor]),
    t(Confirmed, Action::NoShow, NoShow, &[Doctor]),
    t(Confirmed, Action::RequestMove, Confirmed, &[Patient]),
    t(Confirmed, Action::ProposeTime, Confirmed, &[Doctor]),
    t(Confirmed, Action::AcceptMove, Confirmed, &[Patient, Doctor]),
    t(Confirmed, Action::DeclineMove, Confirmed, &[Patient, Doctor]),
    t(Confirmed, Action::TimeOut, Confirmed, &[System]),
    // Completed, no-show, cancelled, expired and declined are final: nothing leaves them.
];

/// Where `action` leads from `from`, and who may take it; `None` when nobody may.
pub(crate) fn allowed(
    from: AppointmentStatus,
    action: Action,
) -> Option<(AppointmentStatus, &'static [Party])> {
    TABLE
        .iter()
        .find(|t| t.from == from && t.action == action)
        .map(|t| (t.to, t.by))
}

/// Whether `by` may take `action` on an appointment in status `from`.
pub(crate) fn may(by: Party, from: AppointmentStatus, action: Action) -> bool {
    allowed(from, action).is_some_and(|(_, who)| who.contains(&by))
}

/// A status change to apply by compare-and-set: from any of `from`, to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Step {
    pub(crate) from: Vec<AppointmentStatus>,
    pub(crate) to: AppointmentStatus,
}

/// The statuses `by` may take `action` from, for an action that leads to one status wherever
/// it starts (cancelling, closing, expiring). `None` when `by` may not take it from any status.
pub(crate) fn step(action: Action, by: Party) -> Option<Step> {
    let mut rows = TABLE
        .iter()
        .filter(|t| t.action == action && t.by.contains(&by));
    let first = rows.next()?;
    let mut from = vec![first.from];
    for t in rows {
        debug_assert_eq!(t.to, first.to, "{action:?} leads to several statuses");
        from.push(t.from);
    }
    Some(Step { from, to: first.to })
}

/// A status as stored (text), decoded into its enum where a row is read
/// (`#[sqlx(try_from = "Stored")]`).
#[derive(Debug, sqlx::Type)]
#[sqlx(transparent)]
pub(crate) struct Stored(String);

/// A stored status no enum knows: the database holds a value this version cannot read.
#[derive(Debug, thiserror::Error)]
#[error("unknown stored {kind} `{value}`")]
pub(crate) struct UnknownValue {
    kind: &'static str,
    value: String,
}

fn decode<T: Copy>(
    kind: &'static str,
    all: &[T],
    name: impl Fn(T) -> &'static str,
    s: Stored,
) -> Result<T, UnknownValue> {
    all.iter()
        .copied()
        .find(|v| name(*v) == s.0)
        .ok_or(UnknownValue { kind, value: s.0 })
}

impl TryFrom<Stored> for AppointmentStatus {
    type Error = UnknownValue;
    fn try_from(s: Stored) -> Result<Self, UnknownValue> {
        decode(
            "appointment status",
            &AppointmentStatus::ALL,
            Self::as_str,
            s,
        )
    }
}

impl TryFrom<Stored> for OfferStatus {
    type Error = UnknownValue;
    fn try_from(s: Stored) -> Result<Self, UnknownValue> {
        decode("offer status", &OfferStatus::ALL, Self::as_str, s)
    }
}

impl TryFrom<Stored> for Strategy {
    type Error = UnknownValue;
    fn try_from(s: Stored) -> Result<Self, UnknownValue> {
        decode("group strategy", &Strategy::ALL, Self::as_str, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    // Exhaustive matches: a new variant fails to compile here until the `ALL` lists have it.
    fn status_index(s: AppointmentStatus) -> usize {
        match s {
            Requested => 0,
            Offered => 1,
            Confirmed => 2,
            Completed => 3,
            NoShow => 4,
            Cancelled => 5,
            Expired => 6,
            Declined => 7,
        }
    }

    fn action_index(a: Action) -> usize {
        match a {
            Action::Offer => 0,
            Action::Escalate => 1,
            Action::Accept => 2,
            Action::DeclineOffer => 3,
            Action::TimeOut => 4,
            Action::Cancel => 5,
            Action::CancelStarted => 6,
            Action::CancelForAbsence => 7,
            Action::Complete => 8,
            Action::NoShow => 9,
            Action::AdminDecline => 10,
            Action::Reroute => 11,
            Action::Expire => 12,
            Action::RequestMove => 13,
            Action::ProposeTime => 14,
            Action::AcceptMove => 15,
            Action::DeclineMove => 16,
        }
    }

    fn offer_index(s: OfferStatus) -> usize {
        match s {
            OfferStatus::Pending => 0,
            OfferStatus::Accepted => 1,
            OfferStatus::Declined => 2,
            OfferStatus::Withdrawn => 3,
            OfferStatus::TimedOut => 4,
        }
    }

    fn strategy_index(s: Strategy) -> usize {
        match s {
            Strategy::RoundRobin => 0,
            Strategy::LeastLoaded => 1,
            Strategy::Broadcast => 2,
        }
    }

    #[test]
    fn the_lists_name_every_variant_once_in_order() {
        for (i, s) in AppointmentStatus::ALL.iter().enumerate() {
            assert_eq!(status_index(*s), i);
        }
        for (i, a) in Action::ALL.iter().enumerate() {
            assert_eq!(action_index(*a), i);
        }
        for (i, s) in OfferStatus::ALL.iter().enumerate() {
            assert_eq!(offer_index(*s), i);
        }
        for (i, s) in Strategy::ALL.iter().enumerate() {
            assert_eq!(strategy_index(*s), i);
        }
    }

    #[rustfmt::skip]
    const EXPECTED: &[(AppointmentStatus, Action, AppointmentStatus, &[&str])] = &[
        (Requested, Action::Offer, Offered, &["system"]),
        (Requested, Action::Escalate, Requested, &["system"]),
        (Requested, Action::Cancel, Cancelled, &["patient", "doctor", "admin"]),
        (Requested, Action::CancelStarted, Cancelled, &["patient", "doctor", "admin"]),
        (Requested, Action::AdminDecline, Declined, &["admin"]),
        (Requested, Action::Reroute, Requested, &["admin"]),
        (Requested, Action::Expire, Expired, &["system"]),
        (Offered, Action::Offer, Offered, &["system"]),
        (Offered, Action::Accept, Confirmed, &["doctor"]),
        (Offered, Action::DeclineOffer, Requested, &["doctor"]),
        (Offered, Action::TimeOut, Requested, &["system"]),
        (Offered, Action::Cancel, Cancelled, &["patient", "doctor", "admin"]),
        (Offered, Action::CancelStarted, Cancelled, &["patient", "doctor", "admin"]),
        (Offered, Action::AdminDecline, Declined, &["admin"]),
        (Offered, Action::Reroute, Requested, &["admin"]),
        (Offered, Action::Expire, Expired, &["system"]),
        (Confirmed, Action::Cancel, Cancelled, &["patient", "doctor", "admin"]),
        (Confirmed, Action::CancelStarted, Cancelled, &["admin"]),
        (Confirmed, Action::CancelForAbsence, Cancelled, &["system"]),
        (Confirmed, Action::Complete, Completed, &["doctor"]),
        (Confirmed, Action::NoShow, NoShow, &["doctor"]),
        (Confirmed, Action::RequestMove, Confirmed, &["patient"]),
        (Confirmed, Action::ProposeTime, Confirmed, &["doctor"]),
        (Confirmed, Action::AcceptMove, Confirmed, &["patient", "doctor"]),
        (Confirmed, Action::DeclineMove, Confirmed, &["patient", "doctor"]),
        (Confirmed, Action::TimeOut, Confirmed, &["system"]),
    ];

    /// The whole lifecycle, written out again: every status × action pair not listed must be
    /// refused, every listed one must lead where it says, for exactly these parties.
    fn expected() -> BTreeMap<(usize, usize), (AppointmentStatus, Vec<&'static str>)> {
        let mut m = BTreeMap::new();
        for (from, action, to, by) in EXPECTED {
            let old = m.insert(
                (status_index(*from), action_index(*action)),
                (*to, by.to_vec()),
            );
            assert!(old.is_none(), "{from:?} {action:?} listed twice");
        }
        m
    }

    fn name(p: Party) -> &'static str {
        match p {
            Patient => "patient",
            Doctor => "doctor",
            Admin => "admin",
            System => "system",
        }
    }

    #[test]
    fn every_status_and_action_allows_exactly_the_expected_transition() {
        let expected = expected();
        for from in AppointmentStatus::ALL {
            for action in Action::ALL {
                let got = allowed(from, action).map(|(to, by)| {
                    let mut names: Vec<_> = by.iter().copied().map(name).collect();
                    names.sort_unstable();
                    (to, names)
                });
                let want = expected
                    .get(&(status_index(from), action_index(action)))
                    .map(|(to, by)| {
                        let mut names = by.clone();
                        names.sort_unstable();
                        (*to, names)
                    });
                assert_eq!(got, want, "{from:?} × {action:?}");
            }
        }
        assert_eq!(TABLE.len(), expected.len(), "a transition is listed twice");
    }

    #[test]
    fn final_statuses_allow_nothing() {
        for from in AppointmentStatus::ALL.into_iter().filter(|s| s.is_final()) {
            for action in Action::ALL {
                assert_eq!(allowed(from, action), None, "{from:?} × {action:?}");
            }
        }
    }

    #[test]
    fn a_step_collects_every_status_the_party_may_start_from() {
        let all = |a, p| step(a, p).map(|s| (s.from, s.to));
        assert_eq!(
            all(Action::Cancel, Patient),
            Some((vec![Requested, Offered, Confirmed], Cancelled))
        );
        assert_eq!(
            all(Action::CancelStarted, Doctor),
            Some((vec![Requested, Offered], Cancelled))
        );
        assert_eq!(
            all(Action::CancelStarted, Admin),
            Some((vec![Requested, Offered, Confirmed], Cancelled))
        );
        assert_eq!(
            all(Action::Expire, System),
            Some((vec![Requested, Offered], Expired))
        );
        assert_eq!(
            all(Action::Complete, Doctor),
            Some((vec![Confirmed], Completed))
        );
        assert_eq!(all(Action::Complete, Patient), None);
        assert_eq!(
            all(Action::AdminDecline, Admin),
            Some((vec![Requested, Offered], Declined))
        );
    }

    #[test]
    fn stored_text_decodes_to_the_wire_enums_and_unknown_text_is_an_error() {
        for s in AppointmentStatus::ALL {
            let back = AppointmentStatus::try_from(Stored(s.as_str().into())).unwrap();
            assert_eq!(back, s);
        }
        for s in OfferStatus::ALL {
            assert_eq!(OfferStatus::try_from(Stored(s.as_str().into())).unwrap(), s);
        }
        for s in Strategy::ALL {
            assert_eq!(Strategy::try_from(Stored(s.as_str().into())).unwrap(), s);
        }
        let err = AppointmentStatus::try_from(Stored("archived".into())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown stored appointment status `archived`"
        );
        assert!(OfferStatus::try_from(Stored("".into())).is_err());
    }
}
