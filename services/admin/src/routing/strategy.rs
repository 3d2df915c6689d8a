//! The routing strategies as pure functions over a [`Snapshot`] of the members the group
//! (or specialty) actors read from the database: who is listed, in which order, who was
//! already tried, who can take the request now, their loads, and the round-robin cursor.
//!
//! Tie-breaks are deterministic:
//! - round robin takes the first candidate at or after the cursor, wrapping around the member
//!   list, and moves the cursor just past it; members that cannot take the request are skipped
//!   without losing their turn for the next request;
//! - least loaded takes the smallest load; equal loads go to the member listed first (group
//!   order, or doctor id order for a specialty without a group);
//! - broadcast offers every candidate, in member order.

use carehub_nats::appointment::Strategy;

/// One member as a pick sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) id: String,
    /// Already offered this request once (declined or timed out): never offered again.
    pub(crate) tried: bool,
    /// Approved, with a free slot in the requested window.
    pub(crate) available: bool,
    /// Open offers plus confirmed appointments in the window (read only for least loaded).
    pub(crate) load: i64,
}

impl Member {
    fn candidate(&self) -> bool {
        self.available && !self.tried
    }
}

/// What a pick decides from.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    /// In the group's order.
    pub(crate) members: Vec<Member>,
    /// Round robin: the stored cursor (any integer; taken modulo the member count).
    pub(crate) cursor: i64,
}

impl Snapshot {
    /// Whether any member can take the request.
    pub(crate) fn has_candidate(&self) -> bool {
        self.members.iter().any(Member::candidate)
    }

    fn candidates(&self) -> impl Iterator<Item = (usize, &Member)> {
        self.members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.candidate())
    }
}

/// Whom a strategy chose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Choice {
    /// Empty when nobody can take the request.
    pub(crate) doctors: Vec<String>,
    /// Round robin: the cursor to store together with the offers.
    pub(crate) next_cursor: Option<i64>,
}

/// Applies `strategy` to `s`.
pub(crate) fn pick(strategy: Strategy, s: &Snapshot) -> Choice {
    match strategy {
        Strategy::RoundRobin => round_robin(s),
        Strategy::LeastLoaded => least_loaded(s),
        Strategy::Broadcast => broadcast(s),
    }
}

/// The first candidate at or after the cursor (wrapping); the cursor moves past it.
pub(crate) fn round_robin(s: &Snapshot) -> Choice {
    let n = i64::try_from(s.members.len()).unwrap_or(1).max(1);
    let cursor = s.cursor.rem_euclid(n);
    let pos = |i: usize| i64::try_from(i).unwrap_or(0);
    s.candidates()
        .min_by_key(|(i, _)| (pos(*i) - cursor).rem_euclid(n))
        .map(|(i, m)| Choice {
            doctors: vec![m.id.clone()],
            next_cursor: Some((pos(i) + 1).rem_euclid(n)),
        })
        .unwrap_or_default()
}

/// The candidate with the smallest load; ties go to the one listed first.
pub(crate) fn least_loaded(s: &Snapshot) -> Choice {
    s.candidates()
        .min_by_key(|(i, m)| (m.load, *i))
        .map(|(_, m)| Choice {
            doctors: vec![m.id.clone()],
            next_cursor: None,
        })
        .unwrap_or_default()
}

/// Every candidate, in member order.
pub(crate) fn broadcast(s: &Snapshot) -> Choice {
    Choice {
        doctors: s.candidates().map(|(_, m)| m.id.clone()).collect(),
        next_cursor: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn member(id: &str, load: i64) -> Member {
        Member {
            id: id.into(),
            tried: false,
            available: true,
            load,
        }
    }

    fn snapshot(ids: &[&str]) -> Snapshot {
        Snapshot {
            members: ids.iter().map(|id| member(id, 0)).collect(),
            cursor: 0,
        }
    }

    /// Runs `requests` picks, storing the cursor after each as the group actor does.
    fn rotate(mut s: Snapshot, requests: usize) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for _ in 0..requests {
            let c = round_robin(&s);
            let [d] = c.doctors.as_slice() else {
                panic!("round robin picks exactly one");
            };
            *counts.entry(d.clone()).or_insert(0) += 1;
            s.cursor = c.next_cursor.expect("a cursor to store");
        }
        counts
    }

    #[test]
    fn round_robin_spreads_requests_evenly() {
        let counts = rotate(snapshot(&["a", "b", "c", "d"]), 400);
        assert!(counts.values().all(|&n| n == 100), "{counts:?}");
    }

    #[test]
    fn round_robin_goes_in_member_order_from_the_cursor_and_wraps() {
        let mut s = snapshot(&["a", "b", "c"]);
        let mut order = Vec::new();
        for _ in 0..5 {
            let c = round_robin(&s);
            order.push(c.doctors[0].clone());
            s.cursor = c.next_cursor.unwrap();
        }
        assert_eq!(order, ["a", "b", "c", "a", "b"]);
        s.cursor = 2;
        assert_eq!(
            round_robin(&s),
            Choice {
                doctors: vec!["c".into()],
                next_cursor: Some(0),
            }
        );
    }

    #[test]
    fn round_robin_skips_unavailable_and_tried_members_and_stays_fair_among_the_rest() {
        let mut s = snapshot(&["a", "b", "c", "d"]);
        s.members[1].available = false;
        s.members[3].tried = true;
        let counts = rotate(s.clone(), 300);
        assert_eq!(counts.get("a"), Some(&150));
        assert_eq!(counts.get("c"), Some(&150));
        assert_eq!(counts.len(), 2);
        // From a cursor on a skipped member, the next candidate after it is taken.
        s.cursor = 1;
        assert_eq!(round_robin(&s).doctors, ["c"]);
        s.cursor = 3;
        assert_eq!(round_robin(&s).doctors, ["a"]);
    }

    #[test]
    fn round_robin_takes_any_stored_cursor_modulo_the_member_count() {
        let mut s = snapshot(&["a", "b", "c"]);
        s.cursor = 7;
        assert_eq!(round_robin(&s).doctors, ["b"]);
        s.cursor = -1;
        assert_eq!(round_robin(&s).doctors, ["c"]);
    }

    #[test]
    fn least_loaded_picks_the_minimum_and_ties_go_to_the_first_listed() {
        let s = Snapshot {
            members: vec![
                member("a", 3),
                member("b", 1),
                member("c", 2),
                member("d", 1),
            ],
            cursor: 0,
        };
        assert_eq!(
            least_loaded(&s),
            Choice {
                doctors: vec!["b".into()],
                next_cursor: None,
            }
        );
        let mut s2 = s;
        s2.members[1].tried = true;
        assert_eq!(least_loaded(&s2).doctors, ["d"]);
        s2.members[3].available = false;
        assert_eq!(least_loaded(&s2).doctors, ["c"]);
        let level = snapshot(&["x", "y", "z"]);
        assert_eq!(least_loaded(&level).doctors, ["x"]);
    }

    #[test]
    fn broadcast_offers_every_candidate_in_member_order() {
        let mut s = snapshot(&["a", "b", "c", "d"]);
        s.members[2].tried = true;
        assert_eq!(broadcast(&s).doctors, ["a", "b", "d"]);
        assert_eq!(broadcast(&s).next_cursor, None);
    }

    #[test]
    fn nobody_to_pick_gives_an_empty_choice_for_every_strategy() {
        let mut s = snapshot(&["a", "b"]);
        s.members[0].tried = true;
        s.members[1].available = false;
        assert!(!s.has_candidate());
        for strategy in [
            Strategy::RoundRobin,
            Strategy::LeastLoaded,
            Strategy::Broadcast,
        ] {
            assert_eq!(pick(strategy, &s), Choice::default());
            assert_eq!(pick(strategy, &Snapshot::default()), Choice::default());
        }
    }
}
